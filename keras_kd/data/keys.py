"""Reserved keys of a distillation batch's `x` dict.

A batch `x` is either the inputs both models take, or a dict with some of these keys:

- `STUDENT_INPUTS`: what the student is called on (its own tokenization, resolution, ...);
- `TEACHER_INPUTS`: what the teacher is called on, when it differs from the student's view;
- `TEACHER_OUTPUTS`: precomputed teacher outputs (a dict with `"logits"`, maybe `"hidden_states"`,
  ...) from `keras_kd.data.cache_teacher_outputs` or any other source (NumPy arrays from a
  non-TF model): the teacher is then never called.
"""

STUDENT_INPUTS = "student_inputs"
TEACHER_INPUTS = "teacher_inputs"
TEACHER_OUTPUTS = "teacher_outputs"
RESERVED = (STUDENT_INPUTS, TEACHER_INPUTS, TEACHER_OUTPUTS)


def is_distillation_batch(x):
    """True when `x` is a dict that uses the reserved keys."""
    return isinstance(x, dict) and any(key in x for key in RESERVED)


def student_view(x):
    """The student's inputs inside a batch `x`."""
    if is_distillation_batch(x):
        if STUDENT_INPUTS not in x:
            raise ValueError(
                f"A batch dict with {sorted(k for k in x if k in RESERVED)} must also hold the "
                f"student's inputs under {STUDENT_INPUTS!r}. Received keys: {sorted(x)}."
            )
        return x[STUDENT_INPUTS]
    return x


def teacher_view(x):
    """The teacher's inputs inside a batch `x` (the student's when no separate view is given)."""
    if is_distillation_batch(x):
        return x.get(TEACHER_INPUTS, x.get(STUDENT_INPUTS))
    return x


def cached_teacher_outputs(x):
    """Precomputed teacher outputs inside a batch `x`, or None."""
    if is_distillation_batch(x):
        return x.get(TEACHER_OUTPUTS)
    return None
