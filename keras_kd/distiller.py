"""`Distiller`: a `keras.Model` whose `train_step` distills a frozen teacher into a student.

    loss = alpha * distillation_loss(teacher_logits, student_logits)
         + (1 - alpha) * student_loss(labels, student_logits)          # from compile(loss=...)
         + sum(feature_losses) + regularization losses

The teacher runs with `training=False` outside the gradient tape and its weights are frozen; with
`teacher=None` the batch must carry precomputed teacher outputs (`keras_kd.data.TEACHER_OUTPUTS`),
so the teacher is never called. `distiller.student` stays a plain Keras model to save and export.
"""

import keras
import tensorflow as tf
from keras import ops
from keras.src.losses.loss import unscale_loss_for_distribution
from keras.src.trainers.data_adapters import data_adapter_utils

from keras_kd import losses as kd_losses
from keras_kd.data import keys
from keras_kd.losses.logits import config_float
from keras_kd.teachers.base import as_output_dict


def _check_model(value, name, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, keras.layers.Layer):
        expected = "a keras.Model (or a keras_kd.teachers adapter)" if name == "teacher" else "a keras.Model"
        if allow_none:
            expected += " or None (to train on cached teacher outputs)"
        raise TypeError(f"`{name}` must be {expected}. Received: {name}={value!r} of type {type(value).__name__}")


def _static_logits_shape(model):
    """The static shape of a built Functional/Sequential model's logits, or None if unknown."""
    functional = getattr(model, "_functional", model)  # Sequential wraps a Functional model
    try:
        output = functional.output if hasattr(functional, "_outputs_struct") else None
    except (AttributeError, ValueError):
        return None
    if isinstance(output, dict):
        output = output.get("logits")
    if output is None or isinstance(output, (list, tuple)):
        return None
    return tuple(output.shape)


def check_logits_shapes(teacher_shape, student_shape):
    """Raise when the class axes of teacher and student logits are both known and differ."""
    if teacher_shape is None or student_shape is None:
        return
    teacher_shape, student_shape = tuple(teacher_shape), tuple(student_shape)
    t_dim, s_dim = teacher_shape[-1], student_shape[-1]
    if len(teacher_shape) != len(student_shape) or (t_dim is not None and s_dim is not None and t_dim != s_dim):
        raise ValueError(
            "Teacher and student logits must have the same shape (same number of classes). "
            f"Received: teacher logits shape={teacher_shape}, student logits shape={student_shape}"
        )


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(keras.Model):
    """Distill a frozen `teacher` into `student` with `fit`.

    Args:
        student: a `keras.Model` producing logits, or a dict with a `"logits"` key (plus any
            intermediate outputs the feature losses use).
        teacher: a `keras.Model` (or `keras_kd.teachers` adapter) producing logits or a dict of
            outputs; or `None` when every batch carries cached teacher outputs.
        distillation_loss: a `keras.losses.Loss` called as `loss(teacher_logits, student_logits)`,
            or a registered name (`"kl"`, ...). Defaults to `KLDivergence(temperature=4.0)`.
        alpha: weight of the distillation loss in [0, 1]; the student loss on labels gets
            `1 - alpha`. Batches without labels use the distillation loss alone.
        feature_losses: optional list of intermediate-layer loss terms, each a `keras.layers.Layer`
            called as `term(teacher_outputs, student_outputs, sample_weight=...)` returning a
            weighted scalar; each is logged under its `name`.

    `compile(loss=...)` sets the student loss (default: sparse categorical cross-entropy from
    logits); `metrics` are the student's. `fit` logs `loss`, `student_loss`, `distillation_loss`,
    the student metrics and `teacher_agreement` (argmax agreement). `evaluate` reports the student:
    its `loss` is the student loss on labels, plus `distillation_loss` and `teacher_agreement` when
    teacher outputs are available.
    """

    def __init__(
        self,
        student,
        teacher=None,
        distillation_loss=None,
        alpha=0.9,
        feature_losses=None,
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        _check_model(student, "student")
        _check_model(teacher, "teacher", allow_none=True)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha}")
        if student.built and not student.trainable_weights:
            raise ValueError(
                "`student` has no trainable weights: nothing to distill into. "
                "Set `student.trainable = True` or pass an unfrozen model."
            )
        if teacher is not None:
            check_logits_shapes(_static_logits_shape(teacher), _static_logits_shape(student))
            teacher.trainable = False
        self.student = student
        self.teacher = teacher
        if distillation_loss is None:
            distillation_loss = kd_losses.KLDivergence(temperature=4.0)
        self.distillation_loss = kd_losses.get(distillation_loss)
        self.feature_losses = list(feature_losses or [])
        for term in self.feature_losses:
            if not callable(term):
                raise TypeError(f"Each feature loss must be callable. Received: {term!r}")

        # Schedules change these variables from callbacks: compiled steps never retrace.
        self._alpha = self.add_weight(
            name="alpha", shape=(), initializer=keras.initializers.Constant(float(alpha)), trainable=False
        )
        self._temperature = None
        temperature = getattr(self.distillation_loss, "temperature", None)
        if temperature is not None:
            self._temperature = self.add_weight(
                name="temperature",
                shape=(),
                initializer=keras.initializers.Constant(config_float(temperature)),
                trainable=False,
            )
            self.distillation_loss.temperature = self._temperature

        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.teacher_agreement_tracker = keras.metrics.Mean(name="teacher_agreement")
        self.feature_loss_trackers = [
            keras.metrics.Mean(name=getattr(term, "name", f"feature_loss_{i}"))
            for i, term in enumerate(self.feature_losses)
        ]
        # The steps call the student directly, never `self`: the Distiller is built when its models are.
        self.built = bool(student.built)

    # ---------------------------------------------------------------- properties
    @property
    def alpha(self):
        """The distillation weight, a non-trainable `keras.Variable` (assign to schedule it)."""
        return self._alpha

    @property
    def temperature(self):
        """The distillation loss' temperature variable, or None for losses without one."""
        return self._temperature

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`; `loss` is the student loss on labels.

        Defaults to `SparseCategoricalCrossentropy(from_logits=True)`; `metrics` are computed on the
        student's logits.
        """
        if self.student.built and not self.student.trainable_weights:
            raise ValueError(
                "`student` has no trainable weights: nothing to distill into. "
                "Set `student.trainable = True` or pass an unfrozen model."
            )
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Re-compile from a saved `.keras` file (our `compile` is custom, so Keras skips it)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ---------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        """The student's logits (what `predict` returns)."""
        return self._student_outputs(inputs, training=training)["logits"]

    def _student_outputs(self, x, training):
        return as_output_dict(self.student(keys.student_view(x), training=training))

    def teacher_outputs(self, x):
        """The teacher's outputs for batch `x` as a dict, with no gradient.

        Uses cached outputs carried by the batch when present; otherwise calls the teacher
        with `training=False`.
        """
        cached = keys.cached_teacher_outputs(x)
        if cached is not None:
            outputs = as_output_dict(cached)
        elif self.teacher is None:
            raise ValueError(
                "This Distiller has no teacher (`teacher=None`), so every batch must carry "
                f"precomputed teacher outputs under x[{keys.TEACHER_OUTPUTS!r}] "
                "(see `keras_kd.data.cache_teacher_outputs`)."
            )
        else:
            outputs = as_output_dict(self.teacher(keys.teacher_view(x), training=False))
        return {k: tf.nest.map_structure(tf.stop_gradient, v) for k, v in outputs.items()}

    def _has_teacher_outputs(self, x):
        return self.teacher is not None or keys.cached_teacher_outputs(x) is not None

    # ---------------------------------------------------------------- losses
    def compute_distillation_losses(self, y, student_outputs, teacher_outputs, sample_weight=None):
        """All loss terms of one batch, as a dict of scalars scaled for `tf.distribute`.

        Keys: `loss` (the total that is differentiated), `student_loss`, `distillation_loss`
        and one per feature loss.
        """
        student_logits = student_outputs["logits"]
        teacher_logits = teacher_outputs["logits"]
        check_logits_shapes(teacher_logits.shape, student_logits.shape)
        terms = {}
        distill = self.distillation_loss(teacher_logits, student_logits, sample_weight=sample_weight)
        terms["distillation_loss"] = ops.cast(distill, "float32")
        if y is not None:
            terms["student_loss"] = ops.cast(self._compile_loss(y, student_logits, sample_weight), "float32")
            alpha = ops.cast(self._alpha, "float32")
            total = alpha * terms["distillation_loss"] + (1.0 - alpha) * terms["student_loss"]
        else:
            total = terms["distillation_loss"]
        for term in self.feature_losses:
            name = getattr(term, "name", None) or f"feature_loss_{len(terms)}"
            value = ops.cast(term(teacher_outputs, student_outputs, sample_weight=sample_weight), "float32")
            terms[name] = value
            total = total + value
        for regularization in self.losses:
            total = total + ops.cast(self._aggregate_additional_loss(regularization), "float32")
        terms["loss"] = total
        return terms

    def _update_trackers(self, terms, batch_size):
        self._loss_tracker.update_state(unscale_loss_for_distribution(terms["loss"]), sample_weight=batch_size)
        if "student_loss" in terms:
            self.student_loss_tracker.update_state(
                unscale_loss_for_distribution(terms["student_loss"]), sample_weight=batch_size
            )
        self.distillation_loss_tracker.update_state(
            unscale_loss_for_distribution(terms["distillation_loss"]), sample_weight=batch_size
        )
        for tracker in self.feature_loss_trackers:
            if tracker.name in terms:
                tracker.update_state(unscale_loss_for_distribution(terms[tracker.name]), sample_weight=batch_size)

    def _update_agreement(self, student_logits, teacher_logits):
        agree = ops.equal(ops.argmax(student_logits, axis=-1), ops.argmax(teacher_logits, axis=-1))
        self.teacher_agreement_tracker.update_state(ops.cast(agree, "float32"))

    @staticmethod
    def _batch_size(logits):
        return ops.shape(logits)[0]

    # ---------------------------------------------------------------- steps
    def train_step(self, data):
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        teacher_outputs = self.teacher_outputs(x)  # outside the tape: no gradient, no tape memory
        with tf.GradientTape() as tape:
            student_outputs = self._student_outputs(x, training=True)
            terms = self.compute_distillation_losses(y, student_outputs, teacher_outputs, sample_weight)
            loss = terms["loss"]
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
        trainable_weights = self.trainable_weights
        gradients = tape.gradient(loss, trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, trainable_weights))

        student_logits = student_outputs["logits"]
        self._update_trackers(terms, self._batch_size(student_logits))
        self._update_agreement(student_logits, teacher_outputs["logits"])
        if y is not None and self._compile_metrics is not None:
            self._compile_metrics.update_state(y, student_logits, sample_weight)
        return self.get_metrics_result()

    def test_step(self, data):
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        student_outputs = self._student_outputs(x, training=False)
        student_logits = student_outputs["logits"]
        batch_size = self._batch_size(student_logits)
        results = {}
        if y is not None:
            student_loss = self._compile_loss(y, student_logits, sample_weight)
            self._loss_tracker.update_state(unscale_loss_for_distribution(student_loss), sample_weight=batch_size)
            self.student_loss_tracker.update_state(
                unscale_loss_for_distribution(student_loss), sample_weight=batch_size
            )
            if self._compile_metrics is not None:
                self._compile_metrics.update_state(y, student_logits, sample_weight)
            results["loss"] = self._loss_tracker.result()
            results["student_loss"] = self.student_loss_tracker.result()
            if self._compile_metrics is not None:
                results.update(self._compile_metrics.result())
        if self._has_teacher_outputs(x):
            teacher_outputs = self.teacher_outputs(x)
            teacher_logits = teacher_outputs["logits"]
            check_logits_shapes(teacher_logits.shape, student_logits.shape)
            distill = self.distillation_loss(teacher_logits, student_logits, sample_weight=sample_weight)
            self.distillation_loss_tracker.update_state(
                unscale_loss_for_distribution(ops.cast(distill, "float32")), sample_weight=batch_size
            )
            self._update_agreement(student_logits, teacher_logits)
            results["distillation_loss"] = self.distillation_loss_tracker.result()
            results["teacher_agreement"] = self.teacher_agreement_tracker.result()
        return results

    def predict_step(self, data):
        x, _, _ = data_adapter_utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # ---------------------------------------------------------------- serialization
    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "student": serialize(self.student),
            "teacher": serialize(self.teacher) if self.teacher is not None else None,
            "distillation_loss": serialize(self.distillation_loss),
            "alpha": config_float(self._alpha),
            "feature_losses": [serialize(term) for term in self.feature_losses],
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        deserialize = keras.saving.deserialize_keras_object
        for key in ("student", "teacher", "distillation_loss"):
            if config.get(key) is not None:
                config[key] = deserialize(config[key], custom_objects=custom_objects)
        config["feature_losses"] = [
            deserialize(term, custom_objects=custom_objects) for term in config.get("feature_losses") or []
        ]
        return cls(**config)
