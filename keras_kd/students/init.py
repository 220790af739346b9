"""Student initialisation from a teacher's weights.

Sanh et al. 2019 (DistilBERT) initialise the student from the teacher by taking one layer out of
two; with a student narrower than the teacher the token-embedding table can still be carried over
by projecting it onto its top principal components (PCA):

    E ∈ R^{V×d},  μ = mean_rows(E),  E − μ = U S Vᵀ (SVD),  E_student = (E − μ) V[:, :k] ∈ R^{V×k}

which keeps the directions along which the teacher's token vectors vary most (the student then
reads the teacher's WordPiece ids). `method="random"` is a Gaussian random projection
(Johnson–Lindenstrauss) and `"truncate"` keeps the first k columns, as baselines.
"""

import numpy as np

METHODS = ("pca", "random", "truncate")


def embedding_from_teacher(
    teacher_embedding_matrix, dim, method="pca", center=True, scale=None, seed=0
):
    """Project a teacher's `(vocab, d)` token-embedding table down to `(vocab, dim)`.

    Args:
        teacher_embedding_matrix: array-like `(vocab, d)`, e.g.
            `backbone.token_embedding.embeddings.numpy()` of a keras-hub BERT.
        dim: the student's embedding size, `1 <= dim <= d`.
        method: `"pca"` (top-`dim` principal components; component signs fixed so the largest
            absolute loading of each is positive, so results are deterministic), `"random"`
            (Gaussian projection with `N(0, 1/dim)` entries, seeded) or `"truncate"` (first
            `dim` columns).
        center: subtract the mean row first (`"pca"` always centres).
        scale: if given, rescale the result so its overall standard deviation is `scale`
            (e.g. 0.05, a usual embedding initialiser scale); None keeps the projected values.
        seed: seed of `"random"`.

    Returns:
        A float32 `(vocab, dim)` NumPy array.
    """
    matrix = np.asarray(teacher_embedding_matrix, dtype="float64")
    if matrix.ndim != 2:
        raise ValueError(
            f"`teacher_embedding_matrix` must be 2-D (vocab, d). Received: shape={matrix.shape}"
        )
    if not np.all(np.isfinite(matrix)):
        raise ValueError("`teacher_embedding_matrix` contains NaN or infinite values.")
    if (
        isinstance(dim, bool)
        or not isinstance(dim, (int, np.integer))
        or not 1 <= dim <= matrix.shape[1]
    ):
        raise ValueError(
            f"`dim` must be an integer in [1, {matrix.shape[1]}] (the teacher's width). Received: dim={dim}"
        )
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}. Received: method={method!r}")
    if scale is not None and not scale > 0:
        raise ValueError(f"`scale` must be positive or None. Received: scale={scale}")
    if method == "pca" or center:
        matrix = matrix - matrix.mean(axis=0, keepdims=True)
    if method == "pca":
        _, _, vt = np.linalg.svd(matrix, full_matrices=False)
        components = vt[:dim].T  # (d, dim)
        signs = np.sign(components[np.argmax(np.abs(components), axis=0), np.arange(dim)])
        out = matrix @ (components * np.where(signs == 0, 1.0, signs))
    elif method == "random":
        rng = np.random.default_rng(seed)
        out = matrix @ rng.normal(0.0, 1.0 / np.sqrt(dim), size=(matrix.shape[1], dim))
    else:
        out = matrix[:, :dim]
    if scale is not None:
        std = out.std()
        out = out * (scale / std) if std > 0 else out
    return out.astype("float32")


def embedding_layer_from_teacher(
    teacher_embedding_matrix, dim, method="pca", trainable=True, name="embedding", **kwargs
):
    """A `keras.layers.Embedding(vocab, dim)` initialised with `embedding_from_teacher(...)`.

    Extra keyword arguments go to `embedding_from_teacher` (`center`, `scale`, `seed`).
    """
    import keras

    table = embedding_from_teacher(teacher_embedding_matrix, dim, method=method, **kwargs)
    return keras.layers.Embedding(
        table.shape[0],
        dim,
        embeddings_initializer=keras.initializers.Constant(table),
        trainable=trainable,
        name=name,
    )


def select_layers(num_source, num_target):
    """Which of `num_source` teacher layers a `num_target`-layer student copies, evenly spaced.

    DistilBERT takes every other layer: `select_layers(12, 6)` → `[0, 2, 4, 6, 8, 10]`;
    `select_layers(6, 3)` → `[0, 2, 4]`; `select_layers(6, 1)` → `[0]`.
    """
    for name, value in (("num_source", num_source), ("num_target", num_target)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    if num_target > num_source:
        raise ValueError(
            "A student cannot take more layers than the teacher has. "
            f"Received: num_source={num_source}, num_target={num_target}"
        )
    return [int(i * num_source // num_target) for i in range(num_target)]


def copy_weights(source_layer, target_layer):
    """Copy every weight of `source_layer` into `target_layer` (same structure and shapes)."""
    source, target = source_layer.weights, target_layer.weights
    if len(source) != len(target):
        raise ValueError(
            f"Cannot copy {source_layer.name!r} into {target_layer.name!r}: {len(source)} weights vs "
            f"{len(target)}. Build both layers first (call them once) and give them the same structure."
        )
    for s, t in zip(source, target, strict=True):
        if tuple(s.shape) != tuple(t.shape):
            raise ValueError(
                f"Cannot copy {source_layer.name!r} into {target_layer.name!r}: weight {s.name!r} has "
                f"shape {tuple(s.shape)} but {t.name!r} has {tuple(t.shape)}."
            )
    for s, t in zip(source, target, strict=True):
        t.assign(s)
    return target_layer


def copy_layers(source_layers, target_layers, indices=None):
    """DistilBERT-style: copy teacher layers into the student's, layer by layer.

    Args:
        source_layers: the teacher's layers (e.g. `backbone.transformer_layers`).
        target_layers: the student's layers of the same kinds and shapes.
        indices: which source layer each target layer takes; default
            `select_layers(len(source_layers), len(target_layers))`.

    Returns:
        The list of source indices used.
    """
    source_layers, target_layers = list(source_layers), list(target_layers)
    if indices is None:
        indices = select_layers(len(source_layers), len(target_layers))
    indices = list(indices)
    if len(indices) != len(target_layers):
        raise ValueError(
            f"`indices` must give one source layer per target layer ({len(target_layers)}). "
            f"Received: indices={indices}"
        )
    if any(not 0 <= i < len(source_layers) for i in indices):
        raise ValueError(
            f"`indices` must be in [0, {len(source_layers) - 1}]. Received: indices={indices}"
        )
    for i, target in zip(indices, target_layers, strict=True):
        copy_weights(source_layers[i], target)
    return indices


def trim_vocabulary(token_ids, keep_ids=(0,), unknown_id=None, min_count=1, vocab_size=None):
    """A smaller student vocabulary: the teacher's token ids that occur in `token_ids`.

    A student that reads the teacher's tokenizer need not embed all of its vocabulary (30,522
    WordPieces for BERT): keeping the ids seen in the student's training texts leaves room for a
    wider embedding at the same parameter count. Use the result as

        kept, lookup = trim_vocabulary(train_ids, keep_ids=(0, 100), unknown_id=100, vocab_size=30522)
        student_ids = lookup[teacher_ids]                               # remapped inputs
        table = embedding_from_teacher(teacher_table[kept], dim)        # the kept rows only

    Args:
        token_ids: integer array (any shape) of teacher token ids, e.g. the tokenized training set.
        keep_ids: ids always kept (padding first, so it stays 0; `[UNK]`, `[MASK]`, ...).
        unknown_id: teacher id that ids outside the trimmed vocabulary map to; it must be in
            `keep_ids` (default: the first kept id, i.e. padding).
        min_count: keep an id only if it occurs at least this many times.
        vocab_size: the teacher's vocabulary size, so `lookup` covers every teacher id (also
            those absent from `token_ids`, e.g. in test texts); default `max id + 1`.

    Returns:
        `(kept, lookup)`: `kept` holds the kept teacher ids, `keep_ids` first then the others in
        increasing order (the student's id `i` is the teacher's `kept[i]`); `lookup` (int32) maps
        every teacher id to its student id, dropped ids to `unknown_id`'s.
    """
    ids = np.asarray(token_ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`token_ids` must be an integer array. Received dtype={ids.dtype}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"`token_ids` must be >= 0. Received a minimum of {int(ids.min())}")
    keep_ids = [int(i) for i in keep_ids]
    if not keep_ids or min(keep_ids) < 0 or len(set(keep_ids)) != len(keep_ids):
        raise ValueError(
            f"`keep_ids` must be distinct ids >= 0, at least one. Received: keep_ids={keep_ids}"
        )
    if unknown_id is None:
        unknown_id = keep_ids[0]
    if unknown_id not in keep_ids:
        raise ValueError(
            f"`unknown_id` must be one of `keep_ids` {keep_ids}. Received: unknown_id={unknown_id}"
        )
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(
            f"`min_count` must be a positive integer. Received: min_count={min_count!r}"
        )
    size = max(int(ids.max()) + 1 if ids.size else 0, max(keep_ids) + 1)
    if vocab_size is not None:
        if size > int(vocab_size):
            raise ValueError(
                f"`vocab_size` must cover every id: ids go up to {size - 1}. Received: vocab_size={vocab_size}"
            )
        size = int(vocab_size)
    counts = np.bincount(ids.ravel(), minlength=size)
    forced = set(keep_ids)
    seen = [i for i in np.flatnonzero(counts >= min_count).tolist() if i not in forced]
    kept = np.asarray(keep_ids + seen, dtype="int64")
    new_ids = {teacher_id: i for i, teacher_id in enumerate(kept.tolist())}
    lookup = np.full(size, new_ids[unknown_id], dtype="int32")
    lookup[kept] = np.arange(len(kept), dtype="int32")
    return kept, lookup
