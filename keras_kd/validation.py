"""Checks run on the first batch before `Distiller.fit` / `evaluate` take a single step.

A distillation run that fails after an hour of teacher forward passes (or, worse, trains on NaN
targets or out-of-range labels without failing) is expensive. `Distiller.fit` calls
`check_first_batch` on the first batch of `x` and of `validation_data`; each problem raises a
Keras-style error that says what was received and what to do:

- an empty dataset;
- cached teacher outputs (`x["teacher_outputs"]`) holding NaN or Inf;
- `teacher=None` with batches that carry no teacher outputs;
- token ids beyond the student's embedding table (a tokenizer whose vocabulary does not match the
  student: see also `check_vocabulary`);
- a student (or teacher) returning no `"logits"`, or teacher / student logits of different shapes
  (class counts), found by running both on a few examples when static shapes are unknown;
- labels that do not fit the student loss: strings or non-integer floats or one-hot rows for
  `SparseCategoricalCrossentropy`, ids outside `[0, num_classes)`, a wrong last axis for
  `CategoricalCrossentropy`;
- a student that outputs probabilities (every row >= 0 and summing to 1: it ends in a softmax)
  instead of logits; a teacher doing so gets a warning;
- a compiled student loss with `from_logits=False` (including the string
  `"sparse_categorical_crossentropy"`), which would apply a softmax to probabilities twice;
- a layer shared by teacher and student: the frozen teacher would silently freeze it in the student
  (an error with `mode="distill"`, a warning in the online modes where both train).

These first-batch checks see a sample. Every batch is then checked inside the compiled step by
`keras_kd.checks` (labels, finite inputs / teacher outputs / sample weights / losses / gradients).

The checks peek at one batch (`dataset.take(1)`, or the first rows of arrays) and run the models
on at most `MAX_ROWS` examples, outside any compiled function. Python generators are not peeked
(that would consume them). Turn the checks off with `distiller.check_first_batch = False`.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_kd import _keras_compat as compat
from keras_kd.data import keys
from keras_kd.teachers.base import as_output_dict

MAX_ROWS = 8  # examples the models are run on during the checks


# ---------------------------------------------------------------- peeking at the first batch
def _empty_error(name):
    return ValueError(
        f"`{name}` is empty: it yields no batch, so there is nothing to distill. Check the data "
        "source and any `filter` / `take` / `skip` / `shard` applied to it."
    )


def _is_array_like(value):
    return isinstance(value, (np.ndarray, tf.Tensor, tf.RaggedTensor)) or (
        hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "__getitem__")
    )


def _rows(structure, count):
    if structure is None:
        return None
    return tf.nest.map_structure(
        lambda a: a[:count] if hasattr(a, "__getitem__") else a, structure
    )  # sparse: whole


def first_batch(x, y=None, sample_weight=None, name="x"):
    """The first `(x, y, sample_weight)` batch of `fit`-style data, or None when it cannot be peeked.

    Raises a `ValueError` when the data is empty. Arrays give their first `MAX_ROWS` rows.
    """
    if isinstance(x, tf.data.Dataset):
        if int(x.cardinality()) == 0:
            raise _empty_error(name)
        for batch in x.take(1):
            return keras.utils.unpack_x_y_sample_weight(batch)
        raise _empty_error(name)
    if isinstance(x, keras.utils.PyDataset):
        if x.num_batches == 0:
            raise _empty_error(name)
        return keras.utils.unpack_x_y_sample_weight(x[0])
    flat = tf.nest.flatten(x)
    if not flat or not all(_is_array_like(a) for a in flat):
        return None  # generators, iterators, distributed datasets: not peeked
    if any(len(a.shape) and a.shape[0] == 0 for a in flat):
        raise _empty_error(name)
    return _rows(x, MAX_ROWS), _rows(y, MAX_ROWS), _rows(sample_weight, MAX_ROWS)


# ---------------------------------------------------------------- individual checks
def _numpy(value):
    if isinstance(value, tf.RaggedTensor):
        value = value.flat_values
    return np.asarray(value)


def check_finite_teacher_outputs(x):
    """Raise when cached teacher outputs carried by batch `x` hold NaN or Inf."""
    cached = keys.cached_teacher_outputs(x)
    if cached is None:
        return
    if not isinstance(cached, dict):
        cached = {"logits": cached}
    for path, value in keras.tree.flatten_with_path(cached):
        array = _numpy(value)
        if not np.issubdtype(array.dtype, np.floating):
            continue
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ValueError(
                f"Cached teacher outputs hold {bad} NaN/Inf value(s) in x[{keys.TEACHER_OUTPUTS!r}]"
                f"{''.join(f'[{p!r}]' for p in path)} of the first batch: distilling from them would make every loss NaN. "
                "Rebuild the cache with `keras_kd.data.cache_teacher_outputs` (it refuses non-finite "
                "outputs) or drop those examples."
            )


def token_id_limit(model):
    """How many token ids `model` takes: the rows of its largest `Embedding` table.

    None when it has no `Embedding`, or when a layer of it maps any id into range before its
    embeddings (a layer with `accepts_any_token_id = True`, e.g. `keras_kd.models.HashedNgrams`,
    which hashes ids into its buckets): then no id is out of range. Used by the first-batch
    checks here and by the in-graph checks (`keras_kd.checks`).
    """
    layers = compat.sublayers(model)
    if any(getattr(layer, "accepts_any_token_id", False) for layer in layers):
        return None
    sizes = [layer.input_dim for layer in layers if isinstance(layer, keras.layers.Embedding)]
    return max(sizes) if sizes else None


def check_token_ids(model, inputs, role="student"):
    """Raise when integer inputs hold ids beyond `model`'s `Embedding` tables (`token_id_limit`)."""
    limit = token_id_limit(model)
    if limit is None:
        return
    ids = [_numpy(a) for a in tf.nest.flatten(inputs) if np.issubdtype(_numpy(a).dtype, np.integer)]
    ids = [a for a in ids if a.size]
    if not ids:
        return
    largest = max(int(a.max()) for a in ids)
    if largest >= limit:
        raise ValueError(
            f"The first batch holds token id {largest}, but the {role}'s largest embedding table has "
            f"{limit} rows (`input_dim`): the tokenizer's vocabulary does not match the {role}. "
            f"Tokenize the {role}'s inputs with its own tokenizer (a separate view goes under "
            f"x[{keys.STUDENT_INPUTS!r}] / x[{keys.TEACHER_INPUTS!r}]) or build its embedding with "
            f"input_dim >= {largest + 1}."
        )


def check_vocabulary(tokenizer, model, role="student"):
    """Raise when `tokenizer` outgrows `model`'s embedding tables (`token_id_limit`).

    `tokenizer`: an int, or a tokenizer with a `vocabulary_size` attribute or method (keras_kd.data.text,
    keras-hub and Keras `TextVectorization` tokenizers).
    """
    size = getattr(tokenizer, "vocabulary_size", tokenizer)
    size = size() if callable(size) else size
    limit = token_id_limit(model)
    if limit is not None and int(size) > limit:
        raise ValueError(
            f"The tokenizer has a vocabulary of {int(size)} tokens but the {role}'s largest embedding "
            f"table has {limit} rows (`input_dim`): ids >= {limit} would be out of range. "
            f"Use the {role}'s own tokenizer or build its embedding with input_dim >= {int(size)}."
        )


def _loss_kind(loss):
    """ "sparse", "categorical" or None for the compiled student loss."""
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy) or loss in (
        "sparse_categorical_crossentropy",
        keras.losses.sparse_categorical_crossentropy,
    ):
        return "sparse"
    if isinstance(loss, keras.losses.CategoricalCrossentropy) or loss in (
        "categorical_crossentropy",
        keras.losses.categorical_crossentropy,
    ):
        return "categorical"
    return None


def check_labels(y, num_classes, loss):
    """Raise when labels `y` do not fit the student loss `loss` with `num_classes` logits."""
    kind = _loss_kind(loss)
    if y is None or kind is None or num_classes is None or isinstance(y, dict):
        return
    labels = _numpy(y)
    name = (
        type(loss).__name__
        if isinstance(loss, keras.losses.Loss)
        else str(getattr(loss, "__name__", loss))
    )
    if kind == "categorical":
        if labels.ndim < 2 or labels.shape[-1] != num_classes:
            raise ValueError(
                f"`{name}` expects one-hot (or soft) labels with {num_classes} columns, one per class "
                f"of the student's logits. Received labels of shape {labels.shape}. For integer class "
                "ids use keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
            )
        return
    if labels.dtype.kind in "OSU":
        raise ValueError(
            f"`{name}` expects integer class ids. Received labels of dtype {labels.dtype} "
            f"(e.g. {labels.flat[0]!r}): map the class names to ids 0..{num_classes - 1} first."
        )
    if labels.ndim >= 2 and labels.shape[-1] == num_classes and num_classes > 1:
        raise ValueError(
            f"`{name}` expects integer class ids of shape {labels.shape[:-1]}, but the labels look "
            f"one-hot: shape {labels.shape}, one column per class. Pass `argmax` labels or use "
            "keras.losses.CategoricalCrossentropy(from_logits=True)."
        )
    if np.issubdtype(labels.dtype, np.floating):
        fractional = labels[np.isfinite(labels) & (labels != np.round(labels))]
        if fractional.size or not np.all(np.isfinite(labels)):
            example = (
                fractional.flat[0] if fractional.size else labels[~np.isfinite(labels)].flat[0]
            )
            raise ValueError(
                f"`{name}` expects integer class ids. Received float labels with non-integer values "
                f"(e.g. {example!r}). Pass int labels, or use keras.losses.CategoricalCrossentropy "
                "for soft labels."
            )
    ignore_class = getattr(loss, "ignore_class", None)
    valid = labels if ignore_class is None else labels[labels != ignore_class]
    if valid.size and (valid.min() < 0 or valid.max() >= num_classes):
        bad = valid.min() if valid.min() < 0 else valid.max()
        raise ValueError(
            f"Labels must be class ids in [0, {num_classes}) for a student with {num_classes} logits. "
            f"Received a label {bad!r} in the first batch. Check the label mapping, or build the "
            "student (and teacher) with more classes."
        )


def _logits(outputs, role):
    outputs = as_output_dict(outputs) if not isinstance(outputs, dict) else outputs
    if "logits" not in outputs:
        raise ValueError(
            f"The {role} must return logits (a tensor) or a dict with a 'logits' key. Received a dict "
            f"with keys {sorted(outputs)}."
        )
    return outputs["logits"]


def _looks_like_probabilities(values):
    values = _numpy(values).astype(np.float64)
    if (
        values.ndim < 2
        or values.shape[-1] < 2
        or not values.size
        or not np.all(np.isfinite(values))
    ):
        return False
    return bool(np.all(values >= 0) and np.allclose(values.sum(axis=-1), 1.0, atol=1e-3))


PROBABILITIES_FIX = (
    "Remove the final softmax (e.g. `Dense(num_classes)` with no activation) and apply it at "
    "inference (`keras_kd.export.saved_model` adds `probabilities` to the serving outputs)."
)


def check_logits_not_probabilities(logits, role="student"):
    """Raise (student) or warn (teacher) when `logits` are probabilities: rows >= 0 summing to 1."""
    if not _looks_like_probabilities(logits):
        return
    message = (
        f"The {role}'s outputs look like probabilities, not logits: every row of the first batch is "
        f">= 0 and sums to 1 (its last layer is probably a softmax). The Distiller softens logits with "
        f"the temperature; a softmax of probabilities is close to uniform, so distillation would "
        f"silently learn little. {PROBABILITIES_FIX}"
    )
    if role == "student":
        raise ValueError(message)
    warnings.warn(message, stacklevel=3)


def check_loss_from_logits(loss):
    """Raise when the compiled student loss expects probabilities (`from_logits=False`)."""
    kind = _loss_kind(loss)
    if kind is None:
        return
    from_logits = getattr(loss, "from_logits", None)
    if isinstance(loss, keras.losses.Loss):
        from_logits = loss.get_config().get("from_logits", from_logits)
    if from_logits:
        return
    name = (
        type(loss).__name__
        if isinstance(loss, keras.losses.Loss)
        else repr(getattr(loss, "__name__", loss))
    )
    fixed = "SparseCategoricalCrossentropy" if kind == "sparse" else "CategoricalCrossentropy"
    raise ValueError(
        f"`loss` must take logits: the Distiller's student outputs logits, but compile(loss={name}) has "
        f"from_logits=False, so it would treat them as probabilities. Use "
        f"`keras.losses.{fixed}(from_logits=True)` (the default when `loss` is not given)."
    )


def check_shared_layers(distiller):
    """Raise (frozen teacher) or warn (online modes) when teacher and student share weights."""
    student = distiller.student
    student_layers = {}
    for layer in compat.sublayers(student):
        for variable in layer.weights:
            student_layers.setdefault(id(variable), layer.name)
    shared = []
    for teacher in distiller.teachers:
        if not isinstance(teacher, keras.layers.Layer):
            continue
        for variable in teacher.weights:
            name = student_layers.get(id(variable))
            if name is not None and name not in shared:
                shared.append(name)
    if not shared:
        return
    if distiller.mode == "distill":
        raise ValueError(
            f"Teacher and student share the layer(s) {shared}: the Distiller freezes the teacher, which "
            "silently freezes these layers in the student too. Give the student its own copy (e.g. "
            "`keras.models.clone_model` of the layer, then `set_weights`), or, to keep a shared frozen "
            "layer on purpose, set `distiller.check_first_batch = False`."
        )
    warnings.warn(
        f"Teacher and student share the layer(s) {shared}: in mode={distiller.mode!r} both optimizers "
        "update them.",
        stacklevel=3,
    )


# ---------------------------------------------------------------- entry point
def check_first_batch(distiller, x, y=None, sample_weight=None, name="x", training=True):
    """Run every check on the first batch of `x` (see the module docstring). Returns the batch or None.

    `training=True` (fit) requires teacher outputs for every batch; `training=False` (evaluate)
    does not.
    """
    batch = first_batch(x, y, sample_weight, name=name)
    if batch is None:
        return None
    bx, by, _ = batch
    check_shared_layers(distiller)
    if training:
        check_loss_from_logits(getattr(distiller, "loss", None))
    check_finite_teacher_outputs(bx)
    if training and not distiller._has_teacher_outputs(bx):
        distiller.teacher_outputs(bx)  # raises the "no teacher, no cached outputs" error
    small = _rows(bx, MAX_ROWS)
    check_token_ids(distiller.student, keys.student_view(small), role="student")
    with distiller.distribute_strategy.scope():
        student_logits = _logits(distiller._student_outputs(small, training=False), "student")
        check_logits_not_probabilities(student_logits, "student")
        if distiller._has_teacher_outputs(small):
            if keys.cached_teacher_outputs(small) is None:
                for teacher in distiller.teachers:
                    check_token_ids(teacher, keys.teacher_view(small), role="teacher")
            teacher_logits = _logits(distiller.teacher_outputs(small), "teacher")
            _check_shapes(teacher_logits.shape, student_logits.shape)
            check_logits_not_probabilities(teacher_logits, "teacher")
    num_classes = student_logits.shape[-1]
    check_labels(by, num_classes, getattr(distiller, "loss", None))
    return batch


def check_logits_shapes(teacher_shape, student_shape):
    """Raise when the class axes of teacher and student logits are both known and differ."""
    if teacher_shape is None or student_shape is None:
        return
    teacher_shape, student_shape = tuple(teacher_shape), tuple(student_shape)
    t_dim, s_dim = teacher_shape[-1], student_shape[-1]
    if len(teacher_shape) != len(student_shape) or (
        t_dim is not None and s_dim is not None and t_dim != s_dim
    ):
        raise ValueError(
            "Teacher and student logits must have the same shape (same number of classes). "
            f"Received: teacher logits shape={teacher_shape}, student logits shape={student_shape}"
        )


def _check_shapes(teacher_shape, student_shape):
    unbatched = lambda shape: (None,) + tuple(shape)[1:]  # noqa: E731 (as in the symbolic build's message)
    check_logits_shapes(unbatched(teacher_shape), unbatched(student_shape))
