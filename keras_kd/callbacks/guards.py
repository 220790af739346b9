"""`NonFiniteLossGuard`: stop (or fail) on a NaN/Inf loss or weight and say which one went bad.

Keras' `TerminateOnNaN` only looks at `loss`; a distillation loss is a sum of terms
(`student_loss`, `distillation_loss`, one per feature loss), and knowing which one diverged is
the first step of a fix (a too-low temperature, a feature projection blowing up, a NaN in the
teacher cache, ...). A NaN gradient of a finite loss (e.g. `sqrt` at 0) leaves the loss finite for
one more step but the weights NaN: the guard also checks the trainable weights after each batch
(one compiled reduction to a boolean; the weights are only read back to name the bad ones).

`Distiller(check_values=True)` (the default, `keras_kd.checks`) already refuses such updates inside
the step; the guard is the net for `check_values=False` and for plain Keras models.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_kd import _keras_compat as compat


def _as_float(value):
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return None


@keras.saving.register_keras_serializable(package="keras_kd")
class NonFiniteLossGuard(keras.callbacks.TerminateOnNaN):
    """Stop training when a loss term or a trainable weight becomes NaN or Inf, naming it.

    Checks, after every training batch, `loss` and every logged loss term: `student_loss`,
    `distillation_loss`, each of the Distiller's feature losses (`hidden_mse`, ...), any other log
    key ending in `loss`, and the keys listed in `terms`. The message names the non-finite terms other than the total, e.g.

        Non-finite loss term at epoch 0, batch 3: distillation_loss=nan. Other terms:
        student_loss=0.6931, loss=nan. Training stopped.

    Args:
        terms: extra log keys to watch (feature losses not named `*loss`), optional.
        raise_error: if True raise a `FloatingPointError` with the message; else (default) print
            it and set `model.stop_training = True`, like `keras.callbacks.TerminateOnNaN`.

    When every logged term is finite, the model's trainable weights are checked too (a NaN gradient of
    a finite loss); the message then names the weights, e.g. `Non-finite weights at epoch 0,
    batch 2 although every loss term is finite (...): sequential/dense/kernel hold NaN/Inf.`

    After stopping, `guard.message` and `guard.nonfinite_terms` (the terms, or the weights' paths)
    hold what was found.
    """

    def __init__(self, terms=None, raise_error=False):
        super().__init__(raise_error=raise_error)
        self.terms = list(terms or [])
        self.message = None
        self.nonfinite_terms = []
        self._epoch = 0

    def on_train_begin(self, logs=None):
        # The Distiller logs each feature loss under its term's name (`hidden_mse`, `attention_kl`, ...).
        self._feature_terms = [
            tracker.name for tracker in getattr(self.model, "feature_loss_trackers", [])
        ]
        self._weights_finite = None

    def _nonfinite_weights(self):
        """Paths of the model's trainable weights holding NaN/Inf (one boolean read back when none)."""
        if self.model is None:
            return []
        weights = [
            w for w in self.model.trainable_weights if w.dtype.startswith(("float", "bfloat"))
        ]
        if not weights:
            return []
        if getattr(self, "_weights_finite", None) is None:
            self._weights_finite = tf.function(
                lambda: tf.reduce_all(
                    tf.stack([tf.reduce_all(tf.math.is_finite(w.value)) for w in weights])
                )
            )
        if bool(self._weights_finite()):
            return []
        return [
            w.path
            for w in weights
            if not np.all(np.isfinite(np.asarray(w.numpy(), dtype=np.float64)))
        ]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _watched(self, logs):
        names = set(self.terms) | set(getattr(self, "_feature_terms", []))
        return {
            key: value
            for key, value in logs.items()
            if (key.endswith("loss") or key in names) and not key.startswith("val_")
        }

    def on_batch_end(self, batch, logs=None):
        values = {key: _as_float(value) for key, value in self._watched(logs or {}).items()}
        values = {key: value for key, value in values.items() if value is not None}
        bad = [key for key, value in values.items() if not math.isfinite(value)]
        if not bad:
            weights = self._nonfinite_weights()
            if weights:
                self._stop(
                    weights,
                    f"Non-finite weights at epoch {self._epoch}, batch {batch} although every loss term is "
                    f"finite ({', '.join(f'{key}={value:.4g}' for key, value in values.items())}): "
                    f"{', '.join(weights)} hold NaN/Inf (a NaN gradient of a finite loss, e.g. sqrt or "
                    "norm at 0). Training stopped.",
                )
            return
        named = [key for key in bad if key != "loss"] or bad  # the total only when no term is known
        others = [key for key in values if key not in named]
        self._stop(
            named,
            f"Non-finite loss term at epoch {self._epoch}, batch {batch}: "
            + ", ".join(f"{key}={values[key]}" for key in named)
            + "."
            + (
                " Other terms: " + ", ".join(f"{key}={values[key]:.4g}" for key in others) + "."
                if others
                else ""
            )
            + " Training stopped.",
        )

    def _stop(self, names, message):
        self.nonfinite_terms = names
        self.message = message
        if self.raise_error:
            raise FloatingPointError(self.message)
        compat.print_msg(self.message)
        self.model.stop_training = True

    def get_config(self):
        return {"terms": list(self.terms), "raise_error": self.raise_error}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
