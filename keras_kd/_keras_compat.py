"""The one module of keras-kd that touches private Keras APIs.

Everything else in `keras_kd` uses public Keras only (`tests/test_private_api.py` greps for
`keras.src` and for private attributes of Keras objects outside this file). Each use below says why
it is needed and on which Keras versions it was checked; `setup.cfg` pins `keras` to those minor
versions, and `make test-keras-latest` runs the fast suite against the newest Keras 3 release to
widen the range.

Checked on: Keras 3.15.1 (TensorFlow backend, TF 2.21).
"""

import contextlib

import keras
import tensorflow as tf

# Why: feature losses are `keras.layers.Layer`s (they own projections), not `keras.losses.Loss`es, but
# should reduce with `sample_weight` exactly like a `Loss` does. Checked: 3.15.1.
from keras.src.losses.loss import reduce_weighted_values as _reduce_weighted_values

# Why: a custom `train_step` under `tf.distribute` must log the *unscaled* per-replica loss, as
# Keras' own `train_step` does; Keras exports no public function for it. Checked: 3.15.1.
from keras.src.losses.loss import unscale_loss_for_distribution as _unscale_loss_for_distribution

KERAS_VERSIONS_CHECKED = ("3.15",)


# ---------------------------------------------------------------- losses
def unscale_loss_for_distribution(value):
    """The loss value divided back by the number of replicas (for logging)."""
    return _unscale_loss_for_distribution(value)


def reduce_weighted_values(values, sample_weight=None, reduction="sum_over_batch_size", dtype="float32"):
    """Reduce per-example `values` with `sample_weight` the way `keras.losses.Loss` does."""
    return _reduce_weighted_values(values, sample_weight=sample_weight, reduction=reduction, dtype=dtype)


def compiled_loss(model, y, y_pred, sample_weight=None):
    """The loss given to `model.compile(loss=...)` on `(y, y_pred)`, without `model.losses`.

    Why: `Model.compute_loss` (public) also adds `model.losses`, i.e. the teacher's regularization
    losses in a Distiller; the Distiller adds the student's own. `_compile_loss` is the compiled loss
    container. Checked: 3.15.1.
    """
    return model._compile_loss(y, y_pred, sample_weight)


def compiled_metrics(model):
    """The container of `compile(metrics=...)`, or None. Checked: 3.15.1 (`_compile_metrics`)."""
    return model._compile_metrics


def loss_tracker(model):
    """The `keras.metrics.Mean` that `Model` logs as `loss`. Checked: 3.15.1 (`_loss_tracker`)."""
    return model._loss_tracker


def additional_loss(model, loss):
    """One `add_loss`/regularization loss summed and scaled for distribution like Keras' own step.

    Why: the TF trainer's `_aggregate_additional_loss` also scales by the number of replicas.
    Checked: 3.15.1.
    """
    return model._aggregate_additional_loss(loss)


# ---------------------------------------------------------------- models
def functional_graph(model):
    """The Functional graph of a built Functional or Sequential `model`, or None (subclassed).

    Why: Sequential keeps its graph in `_functional`; `_outputs_struct`/`_inputs_struct` keep the
    nested structure (dicts) that `model.outputs`/`model.inputs` flatten. Checked: 3.15.1.
    """
    functional = getattr(model, "_functional", model)
    if functional is None or not hasattr(functional, "_outputs_struct"):
        return None
    return functional


def symbolic_inputs(functional):
    """The symbolic inputs of a Functional graph, with the structure the model was built with."""
    return getattr(functional, "_inputs_struct", functional.inputs)


def sublayers(model):
    """All layers nested in `model` (recursively), without `model`. Checked: 3.15.1 (`_flatten_layers`)."""
    return list(model._flatten_layers(include_self=False))


@contextlib.contextmanager
def unlocked_tracking(layer):
    """Let a built layer track a new attribute (Keras locks tracking once built).

    Why: an adapter's classification head may be attached after the adapter has run; Keras' own
    `_untrack_variable` unlocks `_tracker` the same way. Checked: 3.15.1.
    """
    tracker = getattr(layer, "_tracker", None)
    locked = bool(tracker is not None and tracker.locked)
    if locked:
        tracker.unlock()
    try:
        yield
    finally:
        if locked:
            tracker.lock()


def accept_string_inputs(layer):
    """Let `layer` be called on Python/`tf.string` inputs as they are (a tokenizer layer).

    Why: Keras autocasts a layer's positional arguments to tensors of its dtype and refuses
    non-tensor positional arguments; keras-hub's tokenizers set these two flags too. Checked: 3.15.1.
    """
    layer._convert_input_args = False
    layer._allow_non_tensor_positional_args = True


def save_weights_only(model, path, objects_to_skip=None):
    """Write `model`'s weights to `path`, skipping `objects_to_skip` (e.g. a teacher inside).

    Why: `Model.save_weights` has no `objects_to_skip`. Checked: 3.15.1 (`saving_lib`).
    """
    from keras.src.saving import saving_lib

    saving_lib.save_weights_only(model, path, objects_to_skip=objects_to_skip)


# ---------------------------------------------------------------- export
def input_signature(model):
    """The input signature Keras' own export infers for `model`. Checked: 3.15.1 (`export_utils`)."""
    from keras.src.export.export_utils import get_input_signature

    return get_input_signature(model)


def tensor_spec(x, dynamic_batch=True):
    """A `tf.TensorSpec` from a `keras.InputSpec`/KerasTensor/spec. Checked: 3.15.1 (`export_utils`)."""
    from keras.src.export.export_utils import make_tf_tensor_spec

    return make_tf_tensor_spec(x, dynamic_batch=dynamic_batch)


def replace_archive_variables(archive, transform):
    """Apply `transform` to each variable list an `ExportArchive` tracks for saving.

    Why: `ExportArchive` keeps Keras variables next to the `tf.Variable`s its endpoints read; listing
    the `tf.Variable`s writes each once. Checked: 3.15.1 (`_tf_trackable`).
    """
    trackable = archive._tf_trackable
    for collection in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(trackable, collection, transform(getattr(trackable, collection)))


# ---------------------------------------------------------------- messages
def print_msg(message):
    """Print like Keras' callbacks do (respects `keras.config.disable_interactive_logging`)."""
    from keras.src.utils import io_utils

    io_utils.print_msg(message)


# ---------------------------------------------------------------- trainer
def evaluate_called_by_fit(evaluate_kwargs):
    """Whether `Model.evaluate` runs `fit`'s per-epoch validation pass: Keras' `fit` passes the
    private flag `_use_cached_eval_dataset=True` (on data `fit` was given). Checked: 3.15.1."""
    return bool(evaluate_kwargs.get("_use_cached_eval_dataset", False))


# ---------------------------------------------------------------- distribution
def explicit_strategy(model):
    """The strategy `model` was created under, or None (Keras' default). Checked: 3.15.1."""
    return model._distribute_strategy


def in_multi_worker_mode(strategy):
    """True for a MultiWorkerMirroredStrategy with more than one worker. Checked: TF 2.21."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


class TrainerOverrides:
    """Mixin before `keras.Model`: overrides of Keras' private trainer hooks, kept here.

    A subclass sets `builds_before_callbacks` (property or attribute) to True when it has state that
    must exist before `fit` runs callbacks (e.g. feature-loss projections whose optimizer slots
    `BackupAndRestore` loads). Checked: 3.15.1.
    """

    builds_before_callbacks = False

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 builds from `strategy.reduce("MEAN", first_batch)`, which fails under
        # MultiWorkerMirroredStrategy; building needs shapes only: use the first local replica's batch.
        # Without a strategy Keras defers building to the first step; state created in the step must
        # exist before callbacks run when `builds_before_callbacks`.
        early = bool(self.builds_before_callbacks)
        if iterator is not None and (self._distribute_strategy is not None or early):
            local = self.distribute_strategy.experimental_local_results
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: local(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v, next(it)
                )
                break
            iterator = None
        if self._distribute_strategy is None and early and data_batch is not None:
            self._symbolic_build(data_batch=data_batch)
            return
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _make_function(self, step_function):
        # Keras 3.15 reduces the step's logs with `strategy.reduce("MEAN", v, axis=0)` under
        # multi-worker MultiWorkerMirroredStrategy, which fails on scalars (tensorflow#72388): give
        # each scalar a length-1 axis there (the mean over replicas of identical values is unchanged).
        if in_multi_worker_mode(self.distribute_strategy):
            step = step_function

            def step_function(data):
                return tf.nest.map_structure(
                    lambda v: keras.ops.reshape(v, (1,)) if len(v.shape) == 0 else v, step(data)
                )

        return super()._make_function(step_function)
