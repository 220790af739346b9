"""Which student layer learns from which teacher layer, for stacks of different depth.

A layer map is a dict `{student_layer: teacher_layer}`, where a layer is an index into the models'
`hidden_states` / `attentions` lists or the name of an output (see `keras_kd.losses.features`).
`uniform` and `last_k` build such maps for an `M`-layer student and an `N`-layer teacher; `resolve`
turns any of the accepted forms into a list of `(student, teacher)` pairs.
"""

STRATEGIES = ("uniform", "last_k")


def _check_depths(num_student, num_teacher):
    for key, value in (("num_student", num_student), ("num_teacher", num_teacher)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive int. Received: {key}={value!r}")
    if num_student > num_teacher:
        raise ValueError(
            "A layer map needs a teacher at least as deep as the student. "
            f"Received: num_student={num_student}, num_teacher={num_teacher}"
        )


def uniform(num_student, num_teacher):
    """TinyBERT's uniform strategy (Jiao et al. 2020): student layer `m` ← teacher layer `m·N/M`.

    With 0-based indices: `{i: (i + 1) * N // M - 1}`. Example: `uniform(4, 12)` →
    `{0: 2, 1: 5, 2: 8, 3: 11}`.
    """
    _check_depths(num_student, num_teacher)
    return {i: (i + 1) * num_teacher // num_student - 1 for i in range(num_student)}


def last_k(num_student, num_teacher, k=None):
    """The last `k` student layers ← the last `k` teacher layers (default `k = M`; MiniLM uses k=1).

    Example: `last_k(4, 12)` → `{0: 8, 1: 9, 2: 10, 3: 11}`; `last_k(4, 12, k=1)` → `{3: 11}`.
    """
    _check_depths(num_student, num_teacher)
    k = num_student if k is None else k
    if not isinstance(k, int) or not 1 <= k <= num_student:
        raise ValueError(f"`k` must be an int in [1, num_student={num_student}]. Received: k={k!r}")
    return {num_student - k + i: num_teacher - k + i for i in range(k)}


def resolve(layer_map, num_student=None, num_teacher=None):
    """A list of `(student, teacher)` pairs from a dict, a list of pairs or a strategy name.

    Strategy names (`"uniform"`, `"last_k"`) need the depths `num_student` and `num_teacher`.
    """
    if isinstance(layer_map, str):
        if layer_map not in STRATEGIES:
            raise ValueError(
                f"Unknown layer map strategy: {layer_map!r}. Valid strategies: {', '.join(STRATEGIES)}."
            )
        if num_student is None or num_teacher is None:
            raise ValueError(
                f"The {layer_map!r} layer map needs list outputs (e.g. `hidden_states`) on both models "
                "to count their layers."
            )
        layer_map = (
            uniform(num_student, num_teacher)
            if layer_map == "uniform"
            else last_k(num_student, num_teacher)
        )
    pairs = (
        list(layer_map.items())
        if isinstance(layer_map, dict)
        else [tuple(pair) for pair in layer_map]
    )
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError(
            "`layer_map` must be a non-empty dict {student_layer: teacher_layer}, a list of "
            f"(student_layer, teacher_layer) pairs or one of {STRATEGIES}. Received: layer_map={layer_map!r}"
        )
    return pairs
