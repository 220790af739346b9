"""The batch and output schema of keras-kd, defined once.

**Model outputs.** A teacher or student returns logits (a tensor) or a dict of outputs:

- `LOGITS` (`"logits"`): class scores before softmax, (batch, classes);
- `HIDDEN_STATES` (`"hidden_states"`): a list of intermediate representations (feature losses);
- `ATTENTIONS` (`"attentions"`): a list of attention maps (batch, heads, queries, keys);
- `EMBEDDING` (`"embedding"`): a pooled (batch, dim) representation (embedding distillation);
- `PADDING_MASK` (`"padding_mask"`): copied from the inputs, 1 for real tokens, so feature losses
  ignore padded positions.

**Batches.** A batch `x` is either the inputs both models take, or a dict with some of these keys:

- `STUDENT_INPUTS` (`"student_inputs"`): what the student is called on;
- `TEACHER_INPUTS` (`"teacher_inputs"`): what the teacher is called on, when it differs;
- `TEACHER_OUTPUTS` (`"teacher_outputs"`): precomputed teacher outputs (a dict as above, from
  `keras_kd.data.cache_teacher_outputs` or any other source): the teacher is then never called.

**Loss inputs.** Losses with `needs_labels = True` (DKD) get `y_true = {LOGITS: teacher_logits,
LABELS: y}`; a multi-teacher Distiller keeps each teacher's logits under `TEACHERS_LOGITS`.
"""

LOGITS = "logits"
HIDDEN_STATES = "hidden_states"
ATTENTIONS = "attentions"
EMBEDDING = "embedding"
PADDING_MASK = "padding_mask"
#: The output keys a model (teacher adapter) may return.
OUTPUT_KEYS = (LOGITS, HIDDEN_STATES, ATTENTIONS, EMBEDDING)

LABELS = "labels"
TEACHERS_LOGITS = "teachers_logits"

STUDENT_INPUTS = "student_inputs"
TEACHER_INPUTS = "teacher_inputs"
TEACHER_OUTPUTS = "teacher_outputs"
#: Reserved keys of a distillation batch's `x` dict.
RESERVED = (STUDENT_INPUTS, TEACHER_INPUTS, TEACHER_OUTPUTS)


# ---------------------------------------------------------------- outputs
def as_output_dict(outputs):
    """Normalize a model's outputs to a dict: a tensor becomes `{"logits": tensor}`."""
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        raise ValueError(
            "Teacher and student must return logits (a tensor) or a dict with a 'logits' key; "
            f"received a {type(outputs).__name__} of {len(outputs)} outputs. Return a dict such as "
            "{'logits': ..., 'hidden_states': [...]} to expose several outputs."
        )
    return {LOGITS: outputs}


def with_padding_mask(outputs, inputs):
    """Copy `inputs["padding_mask"]` into `outputs` (a dict), for feature losses that honour padding."""
    if isinstance(inputs, dict) and PADDING_MASK in inputs and PADDING_MASK not in outputs:
        outputs[PADDING_MASK] = inputs[PADDING_MASK]
    return outputs


# ---------------------------------------------------------------- batches
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
