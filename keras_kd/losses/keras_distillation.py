"""`keras.distillation` loss objects, translated into keras-kd terms (the drop-in migration).

`keras_kd.Distiller(teacher=..., student=..., distillation_losses=..., distillation_loss_weights=...,
student_loss_weight=...)` accepts the arguments of `keras.distillation.Distiller` with their
documented meaning:

    loss = student_loss_weight · student_loss
         + (1 - student_loss_weight) · Σ_i distillation_loss_weights[i] · distillation_losses[i]

- `keras.distillation.LogitsDistillation(temperature=T, loss=...)` becomes a keras-kd logit loss:
  `"kl_divergence"` (the default) and `keras.losses.KLDivergence` become
  `keras_kd.losses.KLDivergence(T)`, i.e. `T² · KL(softmax(t/T) ‖ softmax(s/T))` computed in
  log-space; `"categorical_crossentropy"` and `keras.losses.CategoricalCrossentropy` become
  `keras_kd.losses.SoftTargetCrossEntropy(T)` (`-T² · Σ softmax(t/T) · log_softmax(s/T)`). Any other
  loss is applied as Keras applies it, to the temperature-scaled logits: `mean(loss(t/T, s/T))`
  (`LogitsTermLoss`).

  **Keras 3.15's own KL is wrong**: `keras.losses.get("kl_divergence")` returns the function, not
  the `KLDivergence` class its `LogitsDistillation` tests for, so the default loss is applied to
  *logits* as if they were probabilities (clipped to [1e-7, 1]). On T=2, t=[3, 1, -2],
  s=[-1, 2, 0.5] it returns 15.77, where `T² · KL` is 3.3526 (what keras-kd returns).
- `keras.distillation.FeatureDistillation(loss="mse", teacher_layer_name=..., student_layer_name=...)`
  becomes `LayerOutputDistillation`: `mean(loss(teacher_layer_output, student_layer_output))` on the
  named layers (the final outputs when a name is None), tapped with `Distiller(teacher_features=...,
  student_features=...)`.
"""

import keras
from keras import ops

from keras_kd.losses.logits import KLDivergence, SoftTargetCrossEntropy, TemperatureLoss
from keras_kd.losses.registry import register

_KL_NAMES = ("kl_divergence", "kld", "kl", "kullback_leibler_divergence", "KLDivergence")
_CE_NAMES = ("categorical_crossentropy", "CategoricalCrossentropy")
#: Prefix of the output keys under which the Distiller taps layers for `FeatureDistillation`.
FEATURE_PREFIX = "keras_distillation/"


#: `keras.distillation`'s loss classes, re-exported so that `from keras_kd import Distiller,
#: LogitsDistillation, FeatureDistillation` is the whole migration.
LogitsDistillation = keras.distillation.LogitsDistillation
FeatureDistillation = keras.distillation.FeatureDistillation


def is_keras_distillation_loss(obj):
    """True for a `keras.distillation.DistillationLoss` (Keras ≥ 3.12), False otherwise."""
    base = getattr(getattr(keras, "distillation", None), "DistillationLoss", None)
    return base is not None and isinstance(obj, base)


def _single(loss, what):
    """The one loss of a (possibly nested) `loss` argument; multi-output structures are refused."""
    flat = [item for item in keras.tree.flatten(loss) if item is not None]
    if len(flat) != 1:
        raise ValueError(
            f"keras_kd.Distiller distills one logits output (or a dict with 'logits'), so `{what}` "
            f"must hold one loss. Received: loss={loss!r}. For several outputs, return a dict from the "
            "student and use `feature_losses=[...]`."
        )
    return flat[0]


@register("keras_logits_term")
class LogitsTermLoss(TemperatureLoss):
    """`mean(loss(t/T, s/T))`: a Keras loss applied to temperature-scaled logits, as Keras'
    `LogitsDistillation` applies losses other than KL (e.g. `"mse"`)."""

    def __init__(self, loss="mse", temperature=3.0, reduction="sum_over_batch_size", name="logits_term", dtype=None):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)
        self.loss = keras.losses.get(loss)

    def call(self, y_true, y_pred):
        temperature = ops.cast(self.temperature, "float32")
        values = self.loss(ops.cast(y_true, "float32") / temperature, ops.cast(y_pred, "float32") / temperature)
        return ops.reshape(values, (-1,)) if len(values.shape) == 0 else values

    def get_config(self):
        return {**super().get_config(), "loss": keras.losses.serialize(self.loss)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)


def logits_loss(distillation):
    """The keras-kd loss for a `keras.distillation.LogitsDistillation`."""
    temperature = distillation.temperature
    loss = _single(distillation.loss, "LogitsDistillation(loss=...)")
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", None)
    if isinstance(loss, keras.losses.KLDivergence) or name in _KL_NAMES:
        return KLDivergence(temperature=temperature)
    if isinstance(loss, keras.losses.CategoricalCrossentropy) or name in _CE_NAMES:
        return SoftTargetCrossEntropy(temperature=temperature)
    return LogitsTermLoss(loss=loss, temperature=temperature)


@keras.saving.register_keras_serializable(package="keras_kd")
class LayerOutputDistillation(keras.layers.Layer):
    """`weight · mean(loss(teacher_outputs[teacher_key], student_outputs[student_key]))`.

    The term Keras' `FeatureDistillation` computes, as a keras-kd feature term (called as
    `term(teacher_outputs, student_outputs, sample_weight=None)`; `sample_weight` is ignored, as in
    Keras).
    """

    def __init__(self, loss="mse", teacher_key="logits", student_key="logits", weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.loss = keras.losses.get(loss)
        self.teacher_key = teacher_key
        self.student_key = student_key
        self.weight = float(weight)

    def call(self, teacher_outputs, student_outputs, sample_weight=None):
        teacher = ops.cast(teacher_outputs[self.teacher_key], "float32")
        student = ops.cast(student_outputs[self.student_key], "float32")
        return self.weight * ops.mean(self.loss(teacher, student))

    def get_config(self):
        return {
            **super().get_config(),
            "loss": keras.losses.serialize(self.loss),
            "teacher_key": self.teacher_key,
            "student_key": self.student_key,
            "weight": self.weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)


def translate(distillation_losses, distillation_loss_weights=None):
    """Translate `keras.distillation`-style losses into keras-kd terms.

    Returns `(logits_terms, feature_terms, teacher_features, student_features)`:
    `logits_terms` is a list of `(loss, weight)` on logits; `feature_terms` a list of
    `LayerOutputDistillation` layers (weights included); the two dicts map the output keys they read
    to layer names, for `Distiller(teacher_features=..., student_features=...)`. keras-kd losses
    (`keras_kd.losses.*`, names) pass through as logits terms.
    """
    losses = list(distillation_losses) if isinstance(distillation_losses, (list, tuple)) else [distillation_losses]
    if not losses:
        raise ValueError("`distillation_losses` must hold at least one loss. Received: distillation_losses=[]")
    if distillation_loss_weights is None:
        weights = [1.0] * len(losses)
    else:
        weights = list(distillation_loss_weights)
        if len(weights) != len(losses):
            raise ValueError(
                f"`distillation_loss_weights` must hold one weight per distillation loss ({len(losses)}). "
                f"Received: distillation_loss_weights={distillation_loss_weights!r}"
            )
    logits_terms, feature_terms, teacher_features, student_features = [], [], {}, {}
    for index, (loss, weight) in enumerate(zip(losses, weights, strict=True)):
        weight = float(weight)
        if not weight >= 0:
            raise ValueError(f"`distillation_loss_weights` must be >= 0. Received: {weight}")
        if loss is None:
            raise ValueError(
                "`distillation_losses` cannot be None: pass a loss such as "
                "keras.distillation.LogitsDistillation(temperature=3.0)."
            )
        kind = type(loss).__name__
        if is_keras_distillation_loss(loss) and hasattr(loss, "teacher_layer_name"):  # FeatureDistillation
            feature_loss = _single(loss.loss, "FeatureDistillation(loss=...)")
            keys = []
            for layer, found in (
                (loss.teacher_layer_name, teacher_features),
                (loss.student_layer_name, student_features),
            ):
                if layer is None:
                    keys.append("logits")
                else:
                    key = FEATURE_PREFIX + layer
                    found[key] = layer
                    keys.append(key)
            feature_terms.append(
                LayerOutputDistillation(
                    loss=feature_loss,
                    teacher_key=keys[0],
                    student_key=keys[1],
                    weight=weight,
                    name=f"feature_distillation_{index}",
                )
            )
        elif is_keras_distillation_loss(loss) and hasattr(loss, "temperature"):  # LogitsDistillation
            logits_terms.append((logits_loss(loss), weight))
        elif is_keras_distillation_loss(loss):
            raise TypeError(
                f"keras_kd.Distiller translates keras.distillation's LogitsDistillation and "
                f"FeatureDistillation; a custom {kind} (its own `compute_loss`) is not supported: write "
                "it as a keras.losses.Loss on (teacher_logits, student_logits) or a feature term. "
                f"Received: {loss!r}"
            )
        else:
            logits_terms.append((loss, weight))
    return logits_terms, feature_terms, teacher_features, student_features
