"""`Distiller`: a `keras.Model` whose `train_step` distills a frozen teacher into a student.

    loss = alpha * distillation_loss(teacher_logits, student_logits)
         + (1 - alpha) * student_loss(labels, student_logits)          # from compile(loss=...)
         + sum(feature_losses) + regularization losses

The teacher runs with `training=False` outside the gradient tape and its weights are frozen; with
`teacher=None` the batch must carry precomputed teacher outputs (`keras_kd.data.TEACHER_OUTPUTS`),
so the teacher is never called. `distiller.student` stays a plain Keras model to save and export.
"""

import warnings

import keras
import tensorflow as tf
from keras import ops

from keras_kd import _keras_compat as compat
from keras_kd import checks, defaults, online, validation
from keras_kd import losses as kd_losses
from keras_kd import outputs as schema
from keras_kd.losses import hyperparameters as hp
from keras_kd.losses import keras_distillation
from keras_kd.losses.logits import config_float
from keras_kd.outputs import as_output_dict, with_padding_mask
from keras_kd.validation import check_logits_shapes


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
    functional = compat.functional_graph(model)
    try:
        output = functional.output if functional is not None else None
    except (AttributeError, ValueError):
        return None
    if isinstance(output, dict):
        output = output.get("logits")
    if output is None or isinstance(output, (list, tuple)):
        return None
    return tuple(output.shape)


MODES = ("distill", "mutual", "teacher_guided")
#: keras.distillation.Distiller's default `student_loss_weight` (used in its form).
KERAS_STUDENT_LOSS_WEIGHT = 0.5
#: In keras.distillation's form, these `compile(loss=...)` strings are taken from logits.
KERAS_FORM_LOGITS_LOSSES = {
    "sparse_categorical_crossentropy": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    "categorical_crossentropy": lambda: keras.losses.CategoricalCrossentropy(from_logits=True),
    "binary_crossentropy": lambda: keras.losses.BinaryCrossentropy(from_logits=True),
}
MULTI_TEACHER = ("mean_targets", "mean_losses")
TEACHERS_LOGITS = schema.TEACHERS_LOGITS  # kept for `keras_kd.distiller.TEACHERS_LOGITS` imports


def feature_extractor(model, features, role="student"):
    """`model` returning `{"logits": ..., name: layer output, ...}` for `features={name: layer}`.

    `layer` is a layer name (or index) of a Functional or Sequential `model`; the returned model
    shares its layers (and weights). Subclassed models have no graph to tap: return a dict such as
    `{"logits": logits, "block_1": hidden}` from their `call` instead.
    """
    if not features:
        return model
    functional = compat.functional_graph(model)
    if functional is None:
        raise ValueError(
            f"`{role}_features` needs a built Functional or Sequential `{role}` (e.g. built from "
            f"`keras.Input`). A subclassed {role} exposes intermediate outputs by returning a dict from "
            f"`call`, e.g. {{'logits': logits, 'block_1': hidden}}. Received: {role}={model.name!r} of "
            f"type {type(model).__name__}"
        )
    outputs = as_output_dict(functional.output)
    for key, layer in dict(features).items():
        found = model.get_layer(index=layer) if isinstance(layer, int) else model.get_layer(layer)
        outputs[key] = found.output
    inputs = compat.symbolic_inputs(functional)  # same structure as the model
    return keras.Model(inputs, outputs, name=f"{model.name}_features")


def _parameter_count(model):
    try:
        return int(model.count_params()) if model.built else None
    except ValueError:
        return None


def _check_not_swapped(student, teachers, positional, mode):
    """Refuse `Distiller(teacher, student)` (keras.distillation's order): a "student" larger than
    its "teacher" passed by position. By keyword, a larger student only warns."""
    if len(teachers) != 1 or mode == "mutual":
        return
    student_size, teacher_size = _parameter_count(student), _parameter_count(teachers[0])
    if not teacher_size or student_size is None or student_size <= teacher_size:
        return  # unknown sizes (unbuilt, or weights Keras does not see, e.g. a SavedModel teacher)
    message = (
        f"The `student` ({student.name!r}, {student_size:,} parameters) is larger than the `teacher` "
        f"({teachers[0].name!r}, {teacher_size:,} parameters)"
    )
    keyword_form = "keras_kd.Distiller(student=student, teacher=teacher, ...)"
    if positional:
        raise ValueError(
            f"{message}: the arguments look swapped. keras_kd.Distiller takes the student first, "
            f"keras.distillation.Distiller the teacher first; pass them by keyword: {keyword_form}."
        )
    warnings.warn(f"{message}. If that is not intended, check the arguments: {keyword_form}.", stacklevel=3)


def _as_teacher_list(teacher):
    if isinstance(teacher, (list, tuple)):
        if not teacher:
            raise ValueError("`teacher` must be a model, a non-empty list of models or None. Received: teacher=[]")
        for model in teacher:
            _check_model(model, "teacher")
        return list(teacher)
    _check_model(teacher, "teacher", allow_none=True)
    return [] if teacher is None else [teacher]


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(compat.TrainerOverrides, keras.Model):
    """Distill a frozen `teacher` into `student` with `fit`.

    Args:
        student: a `keras.Model` producing logits, or a dict with a `"logits"` key (plus any
            intermediate outputs the feature losses use).
        teacher: a `keras.Model` (or `keras_kd.teachers` adapter) producing logits or a dict of
            outputs; or `None` when every batch carries cached teacher outputs.
        distillation_loss: a `keras.losses.Loss` called as `loss(teacher_logits, student_logits)`,
            or a registered name (`"kl"`, ...). Defaults to `keras_kd.defaults.DEFAULT_LOSS` (`"kl"`) at
            `keras_kd.defaults.DEFAULT_TEMPERATURE`.
        alpha: weight of the distillation loss in [0, 1] (a Python number, a scalar tensor or a
            `keras.Variable`, whose current value is taken; default
            `keras_kd.defaults.DEFAULT_ALPHA`); the student loss on labels gets `1 - alpha`.
            Batches without labels use the distillation loss alone. `distiller.alpha` is a
            variable whose `assign` validates the value (schedules assign it).
        feature_losses: optional list of intermediate-layer loss terms, each a `keras.layers.Layer`
            called as `term(teacher_outputs, student_outputs, sample_weight=...)` returning a
            weighted scalar; each is logged under its `name` (see `keras_kd.losses.features`). Names
            and config dicts (`"hidden_mse"`, `{"name": "attention_kl", ...}`) are resolved too.
        teacher_weights: with a list of teachers, their weights (> 0, normalized to sum to 1;
            default equal).
        multi_teacher: how several teachers combine. `"mean_targets"`: the student learns from the
            weighted mean of the teachers' soft targets `softmax(t_i/T)` (passed to the loss as the
            logits `T · log Σ w_i softmax(t_i/T)`, T = the loss' temperature or 1);
            `"mean_losses"`: the weighted mean of the per-teacher distillation losses. Feature
            losses see the first teacher's outputs.
        mode: `"distill"` (default): the teacher is frozen. `"mutual"` (Deep Mutual Learning,
            Zhang et al. 2018): teacher(s) and student train together, each on
            `alpha · distillation_loss(peers, itself) + (1 - alpha) · student loss on labels`, the
            peers' logits held constant (several peers: mean of their losses).
            `"teacher_guided"`: the teacher is fine-tuned on the labels alone while the student
            distills from it. Both need labels and teacher models; the teacher trains with its own
            optimizer (`compile(teacher_optimizer=...)`, by default the student's optimizer with
            the learning rate times `teacher_lr_multiplier`) and its loss is logged as
            `teacher_loss` (`teacher_<i>_loss` with several teachers).
        student_features / teacher_features: `{output_name: layer_name}` to expose intermediate
            layers of a Functional or Sequential model to feature losses (a feature-extraction
            model sharing the layers is built internally; `distiller.student` is unchanged).
            Subclassed models return a dict from `call` instead.
        teacher_lr_multiplier: teacher learning rate / student learning rate in the online modes
            (default 1.0 for `"mutual"`, 0.1 for `"teacher_guided"`).
        augmentation: optional callable (e.g. a `keras.layers.Layer` or a `keras_kd.data.augment`
            image augmentation) applied in `train_step` once per batch to the shared inputs; the
            teacher and the student then see the *same* augmented view (function matching, Beyer et
            al. 2022). An augmentation with `mixes_examples = True` (mixup, cutmix) mixes examples,
            so the label term is dropped on its batches: the student learns the teacher's outputs on
            the mixed inputs only. Cached teacher outputs and separate `teacher_inputs` cannot be
            augmented online (cache augmented views with `cache_teacher_outputs(views=K, ...)`).
        distillation_losses, distillation_loss_weights, student_loss_weight: the arguments of
            `keras.distillation.Distiller`, with its meaning: `loss = student_loss_weight ·
            student_loss + (1 - student_loss_weight) · Σ_i distillation_loss_weights[i] ·
            distillation_losses[i]` (`student_loss_weight` defaults to Keras' 0.5 in this form).
            `keras.distillation.LogitsDistillation` / `FeatureDistillation` objects are translated
            (see `keras_kd.losses.keras_distillation`), with a correct KL: Keras 3.15's
            `LogitsDistillation(loss="kl_divergence")` returns 15.77 on T=2, t=[3, 1, -2],
            s=[-1, 2, 0.5], where `T² · KL` is 3.3526. In this form a string cross-entropy given to
            `compile(loss=...)` is taken from logits (the student outputs logits). Not combined with
            `distillation_loss` / `alpha`.
        check_values: run the in-graph step checks (`keras_kd.checks`: non-finite values, labels
            and token ids out of range, refused before the update) in every training step (default
            True). Also an attribute: `distiller.check_values = False` before `fit`.

    `keras_kd.Distiller` takes the student first; `keras.distillation.Distiller` takes the teacher
    first. Pass both by keyword (`Distiller(teacher=teacher, student=student, ...)`): a positional
    call whose "student" has more parameters than its "teacher" is refused as swapped (by keyword,
    a larger student only warns).

    Losses with `needs_labels = True` (e.g. `keras_kd.losses.DKD`) are called with
    `y_true={"logits": teacher_logits, "labels": y}`.

    `compile(loss=...)` sets the student loss (default: sparse categorical cross-entropy from
    logits); `metrics` are the student's. `fit` logs `loss`, `student_loss`, `distillation_loss`,
    the student metrics and `teacher_agreement` (argmax agreement). `evaluate` reports the student:
    its `loss` is the student loss on labels, plus `distillation_loss` and `teacher_agreement` when
    teacher outputs are available.
    """

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls, *args, **kwargs)
        # How many arguments came by position: `Distiller(teacher, student)` (keras.distillation's
        # order) is detected in `__init__` from this.
        object.__setattr__(instance, "_kd_positional_count", len(args))
        return instance

    def __init__(
        self,
        student,
        teacher=None,
        distillation_loss=None,
        alpha=defaults.DEFAULT_ALPHA,
        feature_losses=None,
        teacher_weights=None,
        multi_teacher="mean_targets",
        mode="distill",
        student_features=None,
        teacher_features=None,
        teacher_lr_multiplier=None,
        augmentation=None,
        distillation_losses=None,
        distillation_loss_weights=None,
        student_loss_weight=None,
        check_values=True,
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not isinstance(check_values, bool):
            raise TypeError(f"`check_values` must be True or False. Received: check_values={check_values!r}")
        self.check_values = check_values
        _check_model(student, "student")
        teachers = _as_teacher_list(teacher)
        _check_not_swapped(student, teachers, positional=getattr(self, "_kd_positional_count", 0) >= 2, mode=mode)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
        if mode != "distill" and not teachers:
            raise ValueError(
                f"`mode={mode!r}` trains the teacher, so it needs teacher models (cached outputs cannot "
                "learn). Received: teacher=None"
            )
        if multi_teacher not in MULTI_TEACHER:
            raise ValueError(f"`multi_teacher` must be one of {MULTI_TEACHER}. Received: multi_teacher={multi_teacher!r}")
        if teacher_weights is not None:
            teacher_weights = [float(w) for w in teacher_weights]
            if len(teacher_weights) != len(teachers) or not all(w > 0 for w in teacher_weights):
                raise ValueError(
                    f"`teacher_weights` must hold one weight > 0 per teacher ({len(teachers)}). "
                    f"Received: teacher_weights={teacher_weights}"
                )
        if teacher_lr_multiplier is not None and not float(teacher_lr_multiplier) > 0:
            raise ValueError(f"`teacher_lr_multiplier` must be > 0. Received: teacher_lr_multiplier={teacher_lr_multiplier}")
        if (student_features or teacher_features) and not all(
            isinstance(features or {}, dict) for features in (student_features, teacher_features)
        ):
            raise TypeError("`student_features` and `teacher_features` must be dicts {output_name: layer_name}.")

        # keras.distillation's form: translate its losses and weights into ours.
        self._keras_form = None
        extra_logits_terms, keras_feature_terms = [], []
        derived_student_features, derived_teacher_features = {}, {}
        if distillation_losses is not None or student_loss_weight is not None or distillation_loss_weights is not None:
            given = [
                f"{n}={v!r}"
                for n, v in (("distillation_loss", distillation_loss), ("alpha", alpha))
                if v is not None and not (n == "alpha" and v is defaults.DEFAULT_ALPHA)
            ]
            if given:
                raise ValueError(
                    "`distillation_loss`/`alpha` are keras_kd's form and `distillation_losses`/"
                    "`student_loss_weight` keras.distillation's: use one form (`alpha` = 1 - "
                    f"`student_loss_weight`). Received: {given[0]}"
                )
            if distillation_losses is None:
                raise ValueError(
                    "`distillation_losses` is required with `student_loss_weight`/`distillation_loss_weights` "
                    "(keras.distillation's form), e.g. keras.distillation.LogitsDistillation(temperature=3.0)."
                )
            self._keras_form = {
                "distillation_losses": distillation_losses,
                "distillation_loss_weights": distillation_loss_weights,
                "student_loss_weight": student_loss_weight,
            }
            student_loss_weight = hp.check_alpha(
                KERAS_STUDENT_LOSS_WEIGHT if student_loss_weight is None else student_loss_weight, "student_loss_weight"
            )
            alpha = 1.0 - student_loss_weight
            logits_terms, keras_feature_terms, derived_teacher_features, derived_student_features = (
                keras_distillation.translate(distillation_losses, distillation_loss_weights)
            )
            if logits_terms:
                (distillation_loss, self._distillation_weight), extra_logits_terms = logits_terms[0], logits_terms[1:]
            else:
                distillation_loss, self._distillation_weight = None, 0.0
        else:
            self._distillation_weight = 1.0
            if distillation_loss is None:
                distillation_loss = kd_losses.get(defaults.DEFAULT_LOSS)
        alpha = hp.check_alpha(alpha)
        if student.built and not student.trainable_weights:
            raise ValueError(
                "`student` has no trainable weights: nothing to distill into. "
                "Set `student.trainable = True` or pass an unfrozen model."
            )
        for model in teachers:
            check_logits_shapes(_static_logits_shape(model), _static_logits_shape(student))
            model.trainable = mode != "distill"  # only the online modes train the teacher
        self.student = student
        self.teacher = list(teacher) if isinstance(teacher, (list, tuple)) else teacher
        self.mode = mode
        self.multi_teacher = multi_teacher
        self.teacher_weights = teacher_weights
        weights = teacher_weights or [1.0] * len(teachers)
        self._teacher_weights = [w / sum(weights) for w in weights]
        self.teacher_lr_multiplier = (
            float(teacher_lr_multiplier)
            if teacher_lr_multiplier is not None
            else (0.1 if mode == "teacher_guided" else 1.0)
        )
        self._given_features = (dict(student_features or {}), dict(teacher_features or {}))
        self.student_features = {**self._given_features[0], **derived_student_features}
        self.teacher_features = {**self._given_features[1], **derived_teacher_features}
        # Feature-extraction views share the models' layers; kept out of Keras tracking so that
        # weights and saving see only `student` and `teacher`.
        object.__setattr__(self, "_student_model", feature_extractor(student, self.student_features, "student"))
        object.__setattr__(
            self,
            "_teacher_models",
            [feature_extractor(m, self.teacher_features, "teacher") if i == 0 else m for i, m in enumerate(teachers)],
        )
        if augmentation is not None and not callable(augmentation):
            raise TypeError(f"`augmentation` must be callable or None. Received: augmentation={augmentation!r}")
        self.augmentation = augmentation
        self.teacher_optimizer = None
        self.distillation_loss = None if distillation_loss is None else kd_losses.get(distillation_loss)
        if isinstance(self.distillation_loss, kd_losses.FeatureLoss):
            raise TypeError(
                f"{type(self.distillation_loss).__name__} matches intermediate layers: pass it in "
                "`feature_losses=[...]`, not as `distillation_loss`."
            )
        self._extra_logits_terms = [(kd_losses.get(loss), weight) for loss, weight in extra_logits_terms]
        self.keras_feature_terms = keras_feature_terms
        self.feature_losses = [kd_losses.get(term) for term in feature_losses or []]
        for term in self.feature_losses:
            if not callable(term):
                raise TypeError(f"Each feature loss must be callable. Received: {term!r}")
        term_names = [getattr(term, "name", None) for term in self.feature_losses]
        repeated = sorted({n for n in term_names if n is not None and term_names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"Feature losses are logged by name, so names must be distinct. Received repeated names: "
                f"{repeated}. Pass `name=...` to each term."
            )

        # Schedules assign these variables from callbacks (compiled steps never retrace); their
        # `assign` validates. The temperature is the distillation loss' own variable.
        self._alpha = hp.CheckedVariable(alpha, "alpha")
        self._temperature = None
        if self.distillation_loss is not None:
            if hasattr(self.distillation_loss, "temperature_variable"):
                self._temperature = self.distillation_loss.temperature_variable
            elif getattr(self.distillation_loss, "temperature", None) is not None:  # a custom loss
                self._temperature = hp.CheckedVariable(self.distillation_loss.temperature, "temperature")
                self.distillation_loss.temperature = self._temperature

        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.teacher_agreement_tracker = keras.metrics.Mean(name="teacher_agreement")
        self.feature_loss_trackers = [
            keras.metrics.Mean(name=getattr(term, "name", f"feature_loss_{i}"))
            for i, term in enumerate(self.feature_losses)
        ]
        self.teacher_loss_trackers = [
            keras.metrics.Mean(name="teacher_loss" if len(teachers) == 1 else f"teacher_{i}_loss")
            for i in range(len(teachers) if mode != "distill" else 0)
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

    @property
    def teachers(self):
        """The teacher models as a list (empty with `teacher=None`)."""
        if self.teacher is None:
            return []
        return list(self.teacher) if isinstance(self.teacher, (list, tuple)) else [self.teacher]

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss=None, metrics=None, teacher_optimizer=None, **kwargs):
        """Like `keras.Model.compile`; `loss` is the student loss on labels.

        Defaults to `SparseCategoricalCrossentropy(from_logits=True)`; `metrics` are computed on the
        student's logits. `teacher_optimizer` (modes `"mutual"` / `"teacher_guided"` only) trains
        the teacher; by default a copy of `optimizer` with its learning rate times
        `teacher_lr_multiplier`.
        """
        if self.student.built and not self.student.trainable_weights:
            raise ValueError(
                "`student` has no trainable weights: nothing to distill into. "
                "Set `student.trainable = True` or pass an unfrozen model."
            )
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        elif self._keras_form is not None and isinstance(loss, str) and loss in KERAS_FORM_LOGITS_LOSSES:
            # keras.distillation's examples pass "sparse_categorical_crossentropy" for students that
            # output logits (Keras then applies it to logits as if they were probabilities).
            loss = KERAS_FORM_LOGITS_LOSSES[loss]()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        if self.mode != "distill":
            self.teacher_optimizer = online.make_teacher_optimizer(self, teacher_optimizer)
        elif teacher_optimizer is not None:
            raise ValueError("`teacher_optimizer` is only used with mode='mutual' or 'teacher_guided'.")

    def compile_from_config(self, config):
        """Re-compile from a saved `.keras` file (our `compile` is custom, so Keras skips it)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ---------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        """The student's logits (what `predict` returns).

        The first call (Keras' symbolic build, before the optimizer is built) also builds the
        feature losses' projections from the teacher's and student's output shapes.
        """
        student_outputs = self._student_outputs(inputs, training=training)
        unbuilt = [term for term in self.feature_losses if not getattr(term, "built", True)]
        if unbuilt and self._has_teacher_outputs(inputs):
            teacher_outputs = self.teacher_outputs(inputs)
            for term in unbuilt:
                term(teacher_outputs, student_outputs)
        return student_outputs["logits"]

    def _student_outputs(self, x, training):
        inputs = schema.student_view(x)
        return with_padding_mask(as_output_dict(self._student_model(inputs, training=training)), inputs)

    def _call_teachers(self, x, training):
        inputs = schema.teacher_view(x)
        return [
            with_padding_mask(as_output_dict(model(inputs, training=training)), inputs)
            for model in self._teacher_models
        ]

    def _merge_teacher_outputs(self, per_teacher):
        """One outputs dict: the first teacher's, with the weighted mean soft targets as `logits`."""
        if len(per_teacher) == 1:
            return per_teacher[0]
        outputs = dict(per_teacher[0])
        logits = [teacher["logits"] for teacher in per_teacher]
        temperature = 1.0 if self._temperature is None else ops.cast(self._temperature, "float32")
        log_probs = ops.stack([ops.log_softmax(ops.cast(t, "float32") / temperature, axis=-1) for t in logits])
        log_weights = ops.reshape(
            ops.log(ops.convert_to_tensor(self._teacher_weights, "float32")), (-1,) + (1,) * (len(log_probs.shape) - 1)
        )
        outputs["logits"] = temperature * ops.logsumexp(log_probs + log_weights, axis=0)
        outputs[schema.TEACHERS_LOGITS] = logits
        return outputs

    def teacher_outputs(self, x):
        """The teacher's outputs for batch `x` as a dict, with no gradient.

        Uses cached outputs carried by the batch when present; otherwise calls the teacher
        with `training=False`.
        """
        cached = schema.cached_teacher_outputs(x)
        if cached is not None:
            outputs = as_output_dict(cached)
        elif self.teacher is None:
            raise ValueError(
                "This Distiller has no teacher (`teacher=None`), so every batch must carry "
                f"precomputed teacher outputs under x[{schema.TEACHER_OUTPUTS!r}] "
                "(see `keras_kd.data.cache_teacher_outputs`)."
            )
        else:
            outputs = self._merge_teacher_outputs(self._call_teachers(x, training=False))
        return {k: tf.nest.map_structure(tf.stop_gradient, v) for k, v in outputs.items()}

    def _has_teacher_outputs(self, x):
        return self.teacher is not None or schema.cached_teacher_outputs(x) is not None

    def _augment(self, x, y):
        """One augmented view of the batch, shared by teacher and student (training only)."""
        if self.augmentation is None:
            return x, y
        if schema.cached_teacher_outputs(x) is not None or (
            schema.is_distillation_batch(x) and schema.TEACHER_INPUTS in x
        ):
            raise ValueError(
                "`augmentation` gives the teacher and the student one shared view, so batches must not carry "
                f"cached {schema.TEACHER_OUTPUTS!r} or separate {schema.TEACHER_INPUTS!r}. To augment with a cached "
                "teacher, cache augmented views: `cache_teacher_outputs(teacher, dataset, views=K, augmentation=...)`."
            )
        if schema.is_distillation_batch(x):
            x = {**x, schema.STUDENT_INPUTS: self.augmentation(x[schema.STUDENT_INPUTS])}
        else:
            x = self.augmentation(x)
        if getattr(self.augmentation, "mixes_examples", False):
            y = None  # mixed inputs have no single label: distillation term only (function matching)
        return x, y

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
        terms["distillation_loss"] = self.distillation_value(teacher_outputs, student_outputs, y, sample_weight)
        if y is not None:
            terms["student_loss"] = ops.cast(compat.compiled_loss(self, y, student_logits, sample_weight), "float32")
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
            total = total + ops.cast(compat.additional_loss(self, regularization), "float32")
        terms["loss"] = total
        return terms

    @property
    def _needs_labels(self):
        losses = [self.distillation_loss] + [loss for loss, _ in self._extra_logits_terms]
        return any(getattr(loss, "needs_labels", False) for loss in losses)

    def _distill_one(self, teacher_logits, student_logits, y, sample_weight, loss=None):
        loss = self.distillation_loss if loss is None else loss
        if getattr(loss, "needs_labels", False):
            if y is None:
                raise ValueError(
                    f"The distillation loss {type(loss).__name__} needs labels "
                    "(`needs_labels = True`), but the batch has no `y`."
                )
            teacher_logits = {schema.LOGITS: teacher_logits, schema.LABELS: y}
        return ops.cast(loss(teacher_logits, student_logits, sample_weight=sample_weight), "float32")

    def _logits_term(self, loss, teacher_outputs, student_logits, y, sample_weight):
        if self.multi_teacher == "mean_losses" and schema.TEACHERS_LOGITS in teacher_outputs:
            values = [
                weight * self._distill_one(logits, student_logits, y, sample_weight, loss)
                for weight, logits in zip(self._teacher_weights, teacher_outputs[schema.TEACHERS_LOGITS], strict=True)
            ]
            return ops.sum(ops.stack(values))
        return self._distill_one(teacher_outputs[schema.LOGITS], student_logits, y, sample_weight, loss)

    def distillation_value(self, teacher_outputs, student_outputs, y=None, sample_weight=None):
        """The distillation loss of one batch (several teachers: per `multi_teacher`).

        `student_outputs` is the student's outputs dict (or its logits). In keras.distillation's
        form this is `Σ_i distillation_loss_weights[i] · distillation_losses[i]`.
        """
        if not isinstance(student_outputs, dict):
            student_outputs = {schema.LOGITS: student_outputs}
        student_logits = student_outputs[schema.LOGITS]
        total = ops.zeros((), "float32")
        if self.distillation_loss is not None:
            total = self._logits_term(self.distillation_loss, teacher_outputs, student_logits, y, sample_weight)
            if self._distillation_weight != 1.0:
                total = self._distillation_weight * total
        for loss, weight in self._extra_logits_terms:
            total = total + weight * self._logits_term(loss, teacher_outputs, student_logits, y, sample_weight)
        for term in self.keras_feature_terms:
            total = total + ops.cast(term(teacher_outputs, student_outputs), "float32")
        return total

    def _update_trackers(self, terms, batch_size):
        compat.loss_tracker(self).update_state(compat.unscale_loss_for_distribution(terms["loss"]), sample_weight=batch_size)
        if "student_loss" in terms:
            self.student_loss_tracker.update_state(
                compat.unscale_loss_for_distribution(terms["student_loss"]), sample_weight=batch_size
            )
        self.distillation_loss_tracker.update_state(
            compat.unscale_loss_for_distribution(terms["distillation_loss"]), sample_weight=batch_size
        )
        for tracker in self.feature_loss_trackers:
            if tracker.name in terms:
                tracker.update_state(compat.unscale_loss_for_distribution(terms[tracker.name]), sample_weight=batch_size)

    def _update_agreement(self, student_logits, teacher_logits):
        agree = ops.equal(ops.argmax(student_logits, axis=-1), ops.argmax(teacher_logits, axis=-1))
        self.teacher_agreement_tracker.update_state(ops.cast(agree, "float32"))

    @staticmethod
    def _batch_size(logits):
        return ops.shape(logits)[0]

    # ---------------------------------------------------------------- steps
    def train_step(self, data):
        if self.mode != "distill":
            return online.train_step(self, data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y = self._augment(x, y)
        teacher_outputs = self.teacher_outputs(x)  # outside the tape: no gradient, no tape memory
        with tf.GradientTape() as tape:
            student_outputs = self._student_outputs(x, training=True)
            terms = self.compute_distillation_losses(y, student_outputs, teacher_outputs, sample_weight)
            loss = terms["loss"]
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
        trainable_weights = self.trainable_weights
        gradients = tape.gradient(loss, trainable_weights)
        checks.apply_gradients_checked(
            self, self.optimizer, gradients, trainable_weights, (x, y, sample_weight), teacher_outputs, terms
        )

        student_logits = student_outputs["logits"]
        self._update_trackers(terms, self._batch_size(student_logits))
        self._update_agreement(student_logits, teacher_outputs["logits"])
        if y is not None:
            return self.compute_metrics(x, y, student_logits, sample_weight)
        return self.get_metrics_result()

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        student_outputs = self._student_outputs(x, training=False)
        student_logits = student_outputs["logits"]
        batch_size = self._batch_size(student_logits)
        results = {}
        if y is not None:
            student_loss = compat.compiled_loss(self, y, student_logits, sample_weight)
            compat.loss_tracker(self).update_state(compat.unscale_loss_for_distribution(student_loss), sample_weight=batch_size)
            self.student_loss_tracker.update_state(
                compat.unscale_loss_for_distribution(student_loss), sample_weight=batch_size
            )
            metrics = compat.compiled_metrics(self)
            if metrics is not None:
                metrics.update_state(y, student_logits, sample_weight)
            results["loss"] = compat.loss_tracker(self).result()
            results["student_loss"] = self.student_loss_tracker.result()
            if metrics is not None:
                results.update(metrics.result())
        if self._has_teacher_outputs(x):
            teacher_outputs = self.teacher_outputs(x)
            teacher_logits = teacher_outputs["logits"]
            check_logits_shapes(teacher_logits.shape, student_logits.shape)
            if y is not None or not self._needs_labels:  # DKD & co. need labels
                distill = self.distillation_value(teacher_outputs, student_outputs, y, sample_weight)
                self.distillation_loss_tracker.update_state(
                    compat.unscale_loss_for_distribution(distill), sample_weight=batch_size
                )
                results["distillation_loss"] = self.distillation_loss_tracker.result()
            self._update_agreement(student_logits, teacher_logits)
            results["teacher_agreement"] = self.teacher_agreement_tracker.result()
        return results

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # ---------------------------------------------------------------- checks before training
    check_first_batch = True  # set False on an instance to skip `keras_kd.validation` in fit/evaluate

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after `keras_kd.validation.check_first_batch` on `x` and `validation_data`."""
        if self.check_first_batch:
            validation.check_first_batch(self, x, y, kwargs.get("sample_weight"))
            if kwargs.get("validation_data") is not None:
                val = kwargs["validation_data"]
                val = keras.utils.unpack_x_y_sample_weight(val) if isinstance(val, tuple) else (val,)
                validation.check_first_batch(self, *val, name="validation_data", training=False)
        return checks.fit_checked(self, super().fit, x, y, *args, **kwargs)  # + StepCheck callback

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, after `keras_kd.validation.check_first_batch` on `x` (not in `fit`'s
        per-epoch validation passes: `fit` checked `validation_data` before training)."""
        if self.check_first_batch and not compat.evaluate_called_by_fit(kwargs):
            validation.check_first_batch(self, x, y, kwargs.get("sample_weight"), training=False)
        return super().evaluate(x, y, *args, **kwargs)

    def get_metrics_result(self):
        """The metrics' results; compiled metrics are left out until a labelled batch has built them
        (`fit(x)` without labels never updates them)."""
        compiled = compat.compiled_metrics(self)
        results = {}
        for metric in self.metrics:
            if metric is compiled and not metric.built:
                continue
            result = metric.result()
            results.update(result if isinstance(result, dict) else {metric.name: result})
        return results

    @property
    def builds_before_callbacks(self):
        """Feature-loss projections must exist before callbacks (BackupAndRestore) run."""
        return any(not getattr(term, "built", True) for term in self.feature_losses)

    # ---------------------------------------------------------------- serialization
    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        config = {
            "name": self.name,
            "student": serialize(self.student),
            "teacher": (
                [serialize(model) for model in self.teacher]
                if isinstance(self.teacher, (list, tuple))
                else serialize(self.teacher) if self.teacher is not None else None
            ),
            "distillation_loss": serialize(self.distillation_loss),
            "alpha": config_float(self._alpha),
            "feature_losses": [serialize(term) for term in self.feature_losses],
            "teacher_weights": self.teacher_weights,
            "multi_teacher": self.multi_teacher,
            "mode": self.mode,
            "student_features": dict(self._given_features[0]),
            "teacher_features": dict(self._given_features[1]),
            "teacher_lr_multiplier": self.teacher_lr_multiplier,
            "augmentation": (
                keras.saving.serialize_keras_object(self.augmentation)
                if isinstance(self.augmentation, keras.layers.Layer)
                else None
            ),
            "check_values": self.check_values,
        }
        if self._keras_form is not None:
            del config["alpha"]  # `student_loss_weight` carries it
            config.update(self._keras_form_config())
        return config

    def _keras_form_config(self):
        """keras.distillation's arguments, when the Distiller was built from them."""
        if self._keras_form is None:
            return {}
        losses = self._keras_form["distillation_losses"]
        weights = self._keras_form["distillation_loss_weights"]
        return {
            "distillation_loss": None,
            "distillation_losses": [
                keras.saving.serialize_keras_object(loss)
                for loss in (losses if isinstance(losses, (list, tuple)) else [losses])
            ],
            "distillation_loss_weights": None if weights is None else [float(w) for w in weights],
            "student_loss_weight": 1.0 - config_float(self._alpha),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        deserialize = keras.saving.deserialize_keras_object
        for key in ("student", "teacher", "distillation_loss", "augmentation"):
            if isinstance(config.get(key), list):
                config[key] = [deserialize(item, custom_objects=custom_objects) for item in config[key]]
            elif config.get(key) is not None:
                config[key] = deserialize(config[key], custom_objects=custom_objects)
        for key in ("feature_losses", "distillation_losses"):
            if config.get(key) is not None:
                config[key] = [deserialize(term, custom_objects=custom_objects) for term in config[key]]
        return cls(**config)
