"""In-graph checks of every value that reaches a `Distiller` training step.

`apply_gradients_checked` is the one place where a `Distiller` step (frozen and online modes)
applies gradients. Before the update it checks, on the whole batch and inside the compiled step
(so it works under XLA, `jit_compile=True`, where `tf.debugging.Assert` cannot run):

- the labels `y`: class ids in `[0, num_classes)` (and whole numbers when stored as floats) for a
  sparse categorical student loss; finite values otherwise;
- `sample_weight`: finite;
- the inputs `x` (student and teacher views): finite floats; integer ids below the largest
  `Embedding` table of the model that reads them;
- the teacher outputs (online or cached): finite;
- every loss term (`loss`, `student_loss`, `distillation_loss`, feature terms): finite;
- every gradient: finite (skipped under a `LossScaleOptimizer`, which skips such steps itself).

Each check is one fused reduction to a boolean. If any fails, the optimizer update is *not*
applied (a `cond` around it: not a zero-gradient step, which would still move Adam's moments) and
the first failing check, its count of bad values and one bad value are written to small variables
(only computed on failure); until that failure is reported, later updates are skipped too, so the
weights stay those before the bad batch. A host-side callback that `Distiller.fit` adds
(`StepCheck`) then raises `BadBatchError` naming the epoch, the batch, the tensor and the value
(`train_on_batch` has no callbacks: call `error_of(distiller)` to get the error and reset):

    BadBatchError: Epoch 0, batch 10 (training step 10): `y` (labels) holds 1 value(s) outside
    [0, 4), e.g. 7. The update of this batch was not applied. ...

The checks are on by default; turn them off with `Distiller(check_values=False)` (or
`distiller.check_values = False` before `fit`). The measured overhead is in
`benchmarks/RESULTS.md` (section "check_overhead").
"""

import re

import keras
import numpy as np
import tensorflow as tf

from keras_kd.data import keys

# ---------------------------------------------------------------- host state


class BadBatchError(ValueError):
    """A value reaching a training step failed a check; that batch's update was not applied."""


def enabled(distiller):
    """Whether `distiller` runs the in-graph checks (`check_values`, default True)."""
    return bool(getattr(distiller, "check_values", True))


class _State:
    """Per-Distiller check state: the names of the checks and the variables the graph writes.

    `code` is 0 while every check passed, else 1 + the index (in `names`) of the first failed
    check; `failed_step` the step counter at that moment; `count` the number of bad values and
    `value` one of them. Kept out of Keras tracking (not model weights, never saved).
    """

    def __init__(self, strategy):
        self.names = []  # code - 1 -> description; append-only so every trace agrees
        self._codes = {}
        with strategy.scope(), tf.init_scope():
            kwargs = {"trainable": False, "aggregation": tf.VariableAggregation.ONLY_FIRST_REPLICA}
            self.code = tf.Variable(0, dtype=tf.int32, name="kd_check_code", **kwargs)
            self.step = tf.Variable(0, dtype=tf.int64, name="kd_check_step", **kwargs)
            self.failed_step = tf.Variable(0, dtype=tf.int64, name="kd_check_failed_step", **kwargs)
            self.count = tf.Variable(0, dtype=tf.int64, name="kd_check_count", **kwargs)
            self.value = tf.Variable(0.0, dtype=tf.float64, name="kd_check_value", **kwargs)

    def code_of(self, name):
        if name not in self._codes:
            self.names.append(name)
            self._codes[name] = len(self.names)
        return self._codes[name]

    def reset(self):
        self.code.assign(0)
        self.count.assign(0)
        self.value.assign(0.0)


def state(distiller):
    """The check state of `distiller`, created on first use."""
    found = distiller.__dict__.get("_kd_check_state")
    if found is None:
        found = _State(distiller.distribute_strategy)
        object.__setattr__(distiller, "_kd_check_state", found)
    return found


def error_of(distiller, epoch=None, epoch_start_step=None):
    """The `BadBatchError` for the last failed check of `distiller`, or None. Resets the state."""
    found = distiller.__dict__.get("_kd_check_state")
    if found is None:
        return None
    code = int(found.code.numpy())
    if not code:
        return None
    step, count, value = (
        int(found.failed_step.numpy()),
        int(found.count.numpy()),
        found.value.numpy(),
    )
    found.reset()
    name, problem = found.names[code - 1].split("|", 1)
    where = f"training step {step}"
    if epoch is not None and epoch_start_step is not None:
        where = f"Epoch {epoch}, batch {step - epoch_start_step} ({where})"
    else:
        where = where[0].upper() + where[1:]
    shown = int(value) if "outside" in problem and float(value).is_integer() else float(value)
    return BadBatchError(
        f"{where}: `{name}` holds {count} {problem}, e.g. {shown!r}. The update of this batch was not "
        "applied (weights unchanged). Fix or drop these examples; to turn the in-graph checks off "
        "(not recommended) pass `Distiller(check_values=False)`."
    )


class StepCheck(keras.callbacks.Callback):
    """Raise `BadBatchError` after a batch whose in-graph checks failed (added by `Distiller.fit`).

    The failed batch's update was already skipped in the graph, and so is every later update until
    this callback has reported it: the weights stay those before the bad batch. It raises on the
    host with the batch, the tensor and the value. It is `async_safe` (Keras may run it in a thread,
    so the error can surface a step later), which keeps `fit` from waiting on every step.
    """

    async_safe = True

    def __init__(self):
        super().__init__()
        self._epoch = None
        self._epoch_start = None

    def on_train_begin(self, logs=None):
        state(self.model).reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = int(state(self.model).step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        error = error_of(self.model, self._epoch, self._epoch_start)
        if error is not None:
            self.model.stop_training = True
            raise error


_TF_VALUE_ERRORS = (
    # (pattern in TensorFlow's message, tensor, problem): ops that check values themselves when not
    # compiled with XLA, raising before `apply_gradients_checked` runs.
    (
        re.compile(
            r"Received a label value of (-?\d+) which is outside the valid range of \[0, (\d+)\)"
        ),
        "y",
        "a label outside [0, {1})",
    ),
    (
        re.compile(r"indices\[[\d,]+\] = (-?\d+) is not in \[0, (\d+)\)"),
        "x",
        "a token id outside [0, {1}) (an Embedding table)",
    ),
)


def translate_error(distiller, error, step_check=None):
    """A `BadBatchError` naming the batch for a TensorFlow value error raised inside a step, or None."""
    message = str(getattr(error, "message", error))
    for pattern, tensor, problem in _TF_VALUE_ERRORS:
        match = pattern.search(message)
        if match is None:
            continue
        found = distiller.__dict__.get("_kd_check_state")
        where = "A training step"
        if found is not None:
            step = int(found.step.numpy())  # the failing step did not count itself
            where = f"Training step {step}"
            if step_check is not None and step_check._epoch is not None:
                where = f"Epoch {step_check._epoch}, batch {step - step_check._epoch_start} (training step {step})"
        return BadBatchError(
            f"{where}: `{tensor}` holds {problem.format(*match.groups())}, e.g. {int(match.group(1))}. "
            "The update of this batch was not applied. Fix or drop these examples."
        )
    return None


def fit_checked(distiller, fit, *args, **kwargs):
    """`fit(*args, **kwargs)` with the step checks' callback, and TF value errors naming the batch.

    `Distiller.fit` calls it as `checks.fit_checked(self, super().fit, x, y, ...)`.
    """
    kwargs["callbacks"] = prepare_fit(distiller, kwargs.get("callbacks"))
    step_check = next((c for c in kwargs["callbacks"] or [] if isinstance(c, StepCheck)), None)
    try:
        return fit(*args, **kwargs)
    except tf.errors.InvalidArgumentError as error:
        translated = translate_error(distiller, error, step_check) if enabled(distiller) else None
        if translated is None:
            raise
        raise translated from error


def prepare_fit(distiller, callbacks):
    """Called by `Distiller.fit`: the callbacks with `StepCheck` first when the checks are on.

    Also drops a train function traced with the other setting of `check_values`.
    """
    on = enabled(distiller)
    traced = distiller.__dict__.get("_kd_checks_traced")
    if traced is not None and traced != on:
        distiller.train_function = None
    if not on:
        return callbacks
    state(distiller)
    callbacks = (
        list(callbacks or [])
        if not isinstance(callbacks, keras.callbacks.CallbackList)
        else callbacks
    )
    if isinstance(callbacks, list) and not any(isinstance(c, StepCheck) for c in callbacks):
        callbacks.insert(0, StepCheck())
    return callbacks


# ---------------------------------------------------------------- what is checked
def _path_name(root, path):
    return root + "".join(f"[{p!r}]" for p in path)


def _values(tensor):
    if isinstance(tensor, tf.RaggedTensor):
        return tensor.flat_values
    if isinstance(tensor, (tf.SparseTensor, tf.IndexedSlices)):
        return tensor.values  # a sparse gradient (Embedding): check the rows it holds, never densify
    if isinstance(tensor, (tf.Tensor, tf.Variable)) or hasattr(tensor, "dtype"):
        return tf.convert_to_tensor(tensor)
    return None


def _nonfinite(values):
    return tf.logical_not(tf.math.is_finite(values))


# A check is `(name|problem, values, bad-mask function, kind)`; its kind says how its fast test
# (`_any_failed`) and its failure details (`_details`) are built (None: `reduce_any` of its mask).
FINITE = "finite"  # floats of the batch (inputs, labels, outputs, weights, loss terms): NaN/Inf anywhere
GRADIENT = "gradient"  # a gradient: NaN/Inf anywhere; possibly huge, so its details never copy it
IDS = "ids"  # (IDS, size): integers outside [0, size)
_FINITE_KINDS = (FINITE, GRADIENT)


def _finite_checks(structure, root, kind=FINITE):
    """`(name|problem, values, bad-mask function, kind)` for every floating tensor of `structure`."""
    found = []
    for path, tensor in keras.tree.flatten_with_path(structure) if structure is not None else []:
        values = _values(tensor)
        if values is None or not values.dtype.is_floating:
            continue
        found.append((f"{_path_name(root, path)}|NaN/Inf value(s)", values, _nonfinite, kind))
    return found


def _id_checks(structure, root, model):
    """Integer ids at or beyond the largest `Embedding` table of `model` (XLA would clamp them); none
    for a model that hashes its ids first (`keras_kd.validation.token_id_limit`)."""
    from keras_kd.validation import token_id_limit

    size = token_id_limit(model) if isinstance(model, keras.layers.Layer) else None
    if size is None:
        return []
    found = []
    for path, tensor in keras.tree.flatten_with_path(structure):
        values = _values(tensor)
        if values is None or not values.dtype.is_integer:
            continue
        found.append(
            (
                f"{_path_name(root, path)}|token id(s) outside [0, {size}) (the largest Embedding table)",
                values,
                lambda v, size=size: tf.logical_or(v < 0, v >= size),
                (IDS, size),
            )
        )
    return found


def _num_classes(distiller, teacher_outputs):
    logits = None
    if isinstance(teacher_outputs, dict):
        logits = teacher_outputs.get("logits")
    elif (
        isinstance(teacher_outputs, (list, tuple))
        and teacher_outputs
        and isinstance(teacher_outputs[0], dict)
    ):
        logits = teacher_outputs[0].get("logits")
    if logits is not None and logits.shape.rank and logits.shape[-1] is not None:
        return int(logits.shape[-1])
    try:
        return int(keras.tree.flatten(distiller.student.output)[0].shape[-1])
    except (AttributeError, ValueError, TypeError, IndexError):
        return None


def _label_checks(distiller, y, num_classes):
    if y is None or isinstance(y, dict):
        return []
    from keras_kd.validation import _loss_kind  # one definition of the loss kinds

    loss = getattr(distiller, "loss", None)
    kind = _loss_kind(loss)
    labels = _values(y)
    if labels is None:
        return []
    if kind != "sparse":
        return [] if not labels.dtype.is_floating else [("y|NaN/Inf label(s)", labels, _nonfinite, FINITE)]
    if labels.dtype == tf.string:
        raise BadBatchError(
            "The student loss expects integer class ids. Received labels `y` of dtype string: map the "
            "class names to ids first."
        )
    ignore_class = getattr(loss, "ignore_class", None)
    upper = num_classes if num_classes is not None else np.inf
    interval = f"[0, {num_classes})" if num_classes is not None else "[0, inf)"

    def bad_labels(v):
        bad = (
            tf.logical_or(v < 0, tf.cast(v, tf.float64) >= upper)
            if num_classes is not None
            else v < 0
        )
        if v.dtype.is_floating:
            bad = tf.logical_or(bad, tf.logical_or(_nonfinite(v), tf.not_equal(v, tf.round(v))))
        if ignore_class is not None:
            bad = tf.logical_and(bad, tf.not_equal(v, tf.cast(ignore_class, v.dtype)))
        return bad

    return [
        (
            f"y|label(s) outside {interval} (class ids of a student with {num_classes} logits)",
            labels,
            bad_labels,
            (IDS, num_classes) if labels.dtype.is_integer and num_classes is not None and ignore_class is None else None,
        )
    ]


def _all_checks(distiller, optimizer, gradients, variables, batch, teacher_outputs, terms):
    x, y, sample_weight = (
        tuple(batch) + (None,) * (3 - len(batch)) if batch is not None else (None, None, None)
    )
    found = _label_checks(distiller, y, _num_classes(distiller, teacher_outputs))
    found += _finite_checks(sample_weight, "sample_weight")
    if x is not None:
        student_x = keys.student_view(x)
        found += _finite_checks(
            student_x, "x" if not keys.is_distillation_batch(x) else f"x[{keys.STUDENT_INPUTS!r}]"
        )
        found += _id_checks(
            student_x,
            "x" if not keys.is_distillation_batch(x) else f"x[{keys.STUDENT_INPUTS!r}]",
            distiller.student,
        )
        if keys.is_distillation_batch(x) and keys.TEACHER_INPUTS in x:
            found += _finite_checks(x[keys.TEACHER_INPUTS], f"x[{keys.TEACHER_INPUTS!r}]")
        if keys.cached_teacher_outputs(x) is None:
            for teacher in distiller.teachers:
                found += _id_checks(keys.teacher_view(x), "x (teacher view)", teacher)
    cached = x is not None and keys.cached_teacher_outputs(x) is not None
    found += _finite_checks(
        teacher_outputs,
        f"x[{keys.TEACHER_OUTPUTS!r}] (cached teacher outputs)" if cached else "teacher_outputs",
    )
    for name, value in (terms or {}).items():
        found += _finite_checks(value, f"loss term {name}")
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):  # it skips such steps itself
        for gradient, variable in zip(gradients, variables, strict=True):
            if gradient is not None:
                found += _finite_checks(
                    gradient, f"gradient of {getattr(variable, 'path', None) or variable.name}", GRADIENT
                )
    return found


# ---------------------------------------------------------------- in the step
def _any_failed(found):
    """One scalar boolean: True iff at least one check of `found` fails (the fast path).

    Exact, not a heuristic: every finiteness check contributes `sum(values * 0)` (`_zero_sum`), which
    is 0 when all values are finite and NaN otherwise (no overflow: the products are zeros), and all
    of them are added into ONE scalar tested once; integer range checks are one `max` over the ids cast to
    unsigned (negative ids wrap to huge values). So a step runs about two cheap ops per checked
    tensor and one test, instead of a reduction and a flag per check; which check failed (and its
    count and value) is only worked out in the failure branch (`_record`).
    """
    zeros, flags = [], []
    for _, values, bad, kind in found:
        if kind in _FINITE_KINDS:
            zero = _zero_sum(values)
            zeros.append(zero if zero.dtype == tf.float32 else tf.cast(zero, tf.float32))
        elif isinstance(kind, tuple) and kind[0] == IDS and values.dtype in _UNSIGNED:
            unsigned = tf.cast(values, _UNSIGNED[values.dtype])
            # max of an empty unsigned tensor is 0: an empty batch passes
            flags.append(tf.reduce_max(unsigned) >= tf.cast(kind[1], unsigned.dtype))
        else:
            flags.append(tf.reduce_any(bad(values)))
    failed = None
    if zeros:
        total = zeros[0] if len(zeros) == 1 else tf.add_n(zeros)
        failed = tf.logical_not(tf.math.is_finite(total))
    for flag in flags:
        failed = flag if failed is None else tf.logical_or(failed, flag)
    return failed


_UNSIGNED = {tf.int32: tf.uint32, tf.int64: tf.uint64, tf.int16: tf.uint16, tf.int8: tf.uint8}


def _zero_sum(values):
    """A scalar: 0 when every value of the float tensor `values` is finite, NaN otherwise.

    `x * 0` is 0 for a finite `x` and NaN for NaN/Inf, so this is `sum(values * 0)`: one elementwise
    op and one reduction, which XLA fuses into one pass. (A product with a column of zeros reads the
    tensor once too, but measured slower in `benchmarks/check_overhead.py`, under XLA especially.)
    """
    zero = tf.zeros([], values.dtype)
    if values.shape.rank == 0:
        return values * zero
    return tf.reduce_sum(values * zero)


def _details(found):
    """`(counts, values)`: per check, its number of bad values (int64) and one of them (float64).

    Built in the failure branch only, and fused so that tracing it stays cheap however many checks
    there are: every check's mask is computed once; the batch-sized tensors (inputs, labels,
    outputs, weights, loss terms) are flattened into one vector whose per-check counts and first
    bad values come from a few segment ops. Gradients (kind `GRADIENT`, possibly huge) are never
    copied: their count is one reduction and their value NaN or Inf.
    """
    counts, values = [None] * len(found), [None] * len(found)
    masks, flat_values, segments, batch_checks = [], [], [], []
    for i, (_, tensor, bad, kind) in enumerate(found):
        mask = bad(tensor)
        if kind == GRADIENT:
            counts[i] = tf.reduce_sum(tf.cast(mask, tf.int64))
            values[i] = tf.where(
                tf.reduce_any(tf.math.is_nan(tensor)),
                tf.constant(np.nan, tf.float64),
                tf.constant(np.inf, tf.float64),
            )
            continue
        mask = tf.reshape(mask, [-1])
        masks.append(mask)
        flat_values.append(tf.cast(tf.reshape(tensor, [-1]), tf.float64))
        segments.append(tf.fill(tf.shape(mask), len(batch_checks)))
        batch_checks.append(i)
    if batch_checks:
        n = len(batch_checks)
        mask = tf.concat(masks + [tf.ones([n], tf.bool)], 0)  # one sentinel per check: never empty
        value = tf.concat(flat_values + [tf.zeros([n], tf.float64)], 0)
        segment = tf.concat(segments + [tf.range(n, dtype=tf.int32)], 0)
        bad_counts = tf.math.unsorted_segment_sum(tf.cast(mask, tf.int64), segment, n) - 1
        position = tf.range(tf.size(mask, out_type=tf.int32), dtype=tf.int32)
        # first bad position of each check (its sentinel when none)
        first = tf.math.unsorted_segment_min(
            tf.where(mask, position, tf.size(mask, out_type=tf.int32)), segment, n
        )
        bad_values = tf.gather(value, first)
        for j, i in enumerate(batch_checks):
            counts[i], values[i] = bad_counts[j], bad_values[j]
    return tf.stack(counts), tf.stack(values)


def _passed_details(found):
    """What `_details(found)` gives when every check passes: zero counts; values 0 (Inf for gradients)."""
    values = [np.inf if kind == GRADIENT else 0.0 for _, _, _, kind in found]
    return tf.zeros([len(found)], tf.int64), tf.constant(values, tf.float64)


def _record(check_state, found, flags=None, details=None):
    """Write the first failed check into `check_state` (kept if an earlier failure is unread).

    Runs in the failure branch only: which check failed, its count and its value cost nothing on a
    step whose checks pass. `flags`: every replica's per-check flags (multi-replica), else the
    counts decide; `details`: this replica's `_details(found)` when already computed.
    """
    counts, values = details if details is not None else _details(found)
    if flags is None:
        flags = counts > 0
    index = tf.argmax(tf.cast(flags, tf.int32), output_type=tf.int32)
    _store(check_state, found, index, tf.gather(counts, index), tf.gather(values, index))


def _store(check_state, found, index, count, value):
    """Write failed check `index` of `found`, its count and value, unless an earlier failure is unread."""
    codes = tf.constant([check_state.code_of(name) for name, _, _, _ in found], tf.int32)
    first = tf.equal(check_state.code, 0)
    check_state.code.assign(tf.where(first, tf.gather(codes, index), check_state.code))
    check_state.failed_step.assign(tf.where(first, check_state.step, check_state.failed_step))
    check_state.count.assign(tf.where(first, count, check_state.count))
    check_state.value.assign(tf.where(first, value, check_state.value))


def _apply(optimizer, gradients, variables):
    optimizer.apply_gradients(zip(gradients, variables, strict=True))


def apply_gradients_checked(
    distiller, optimizer, gradients, variables, batch=None, teacher_outputs=None, terms=None
):
    """Check the step's values and apply `gradients` to `variables` only if every check passes.

    Args:
        distiller: the `Distiller` running the step (`distiller.check_values` turns checks off).
        optimizer: the optimizer that owns `variables`.
        gradients, variables: lists of the same length.
        batch: `(x, y, sample_weight)` of the step (after augmentation).
        teacher_outputs: the teacher's outputs dict for the batch (a list of dicts in the online
            modes), or None.
        terms: the dict of loss terms (`loss`, `student_loss`, ...).

    See the module docstring for what is checked and how a failure is reported.
    """
    gradients, variables = list(gradients), list(variables)
    on = enabled(distiller)
    object.__setattr__(distiller, "_kd_checks_traced", on)
    if not on:
        _apply(optimizer, gradients, variables)
        return
    if not optimizer.built:
        optimizer.build(variables)
    check_state = state(distiller)
    found = _all_checks(distiller, optimizer, gradients, variables, batch, teacher_outputs, terms)
    if not found:
        _apply(optimizer, gradients, variables)
        return
    any_failed = _any_failed(found)  # one fused test; which check failed is found only on failure
    context = tf.distribute.get_replica_context()
    replicas = 1 if context is None else context.num_replicas_in_sync
    flags = details = None  # per-check flags and details: built in the failure branch on one replica
    if replicas > 1:
        # Every replica needs every replica's per-check flags (all skip together, and the error
        # names the check that failed anywhere): exact details (their counts give the flags) only
        # where the fast test failed, computed once and reused by `_record`.
        details = tf.cond(any_failed, lambda: _details(found), lambda: _passed_details(found))
    if (
        context is None
        or tf.__internal__.distribute.strategy_supports_no_merge_call()
        or replicas == 1
    ):
        if replicas > 1:  # all replicas skip together
            flags = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(details[0] > 0, tf.int32)) > 0
            any_failed = tf.reduce_any(flags)
        # A failure not yet reported on the host keeps skipping updates (StepCheck resets it), so
        # the weights stay those before the bad batch even when the host reads the state later.
        failed = tf.logical_or(any_failed, tf.not_equal(check_state.code, 0))
        tf.cond(
            failed,
            lambda: _record(check_state, found, flags, details),
            lambda: _apply(optimizer, gradients, variables),
        )
        if (
            optimizer is distiller.optimizer
        ):  # once per step (the online modes also apply the teacher's)
            check_state.step.assign_add(1)
        return
    _apply_cross_replica(
        context,
        check_state,
        optimizer,
        gradients,
        variables,
        found,
        details,
        optimizer is distiller.optimizer,
    )


def _apply_cross_replica(context, check_state, optimizer, gradients, variables, found, details, counts_step):
    """As `keras.optimizers.LossScaleOptimizer`: a cond whose branch calls `merge_call` must run in
    cross-replica context, so decide there from every replica's counts. The error reports the
    failed check's bad values summed over the replicas and the first bad value of the first
    replica that holds one (`details`: each replica's `_details`, zeros where its checks passed)."""

    def merge(distribution, gradients, counts, values):
        # [replicas, checks]: every replica's counts and values, on the host's device
        local_counts = tf.stack([tf.identity(c) for c in distribution.experimental_local_results(counts)])
        failed = tf.logical_or(tf.reduce_any(local_counts > 0), tf.not_equal(check_state.code, 0))

        def apply_fn():
            distribution.extended.call_for_each_replica(
                _apply, args=(optimizer, gradients, variables)
            )

        def record_fn():
            index = tf.argmax(tf.cast(tf.reduce_any(local_counts > 0, axis=0), tf.int32), output_type=tf.int32)
            local_values = tf.stack([tf.identity(v) for v in distribution.experimental_local_results(values)])
            column = tf.gather(local_counts, index, axis=1)
            replica = tf.argmax(tf.cast(column > 0, tf.int32), output_type=tf.int32)
            value = tf.gather_nd(local_values, tf.stack([replica, index]))
            _store(check_state, found, index, tf.reduce_sum(column), value)

        tf.cond(failed, record_fn, apply_fn)
        if counts_step:
            check_state.step.assign_add(1)

    # Per-replica values (gradients, details) must pass through `merge_call` to be usable there.
    context.merge_call(merge, args=(gradients, *details))
