"""`NonFiniteLossGuard`: stop (or fail) on a NaN/Inf loss and say which loss term went bad.

Keras' `TerminateOnNaN` only looks at `loss`; a distillation loss is a sum of terms
(`student_loss`, `distillation_loss`, one per feature loss), and knowing which one diverged is
the first step of a fix (a too-low temperature, a feature projection blowing up, a NaN in the
teacher cache, ...).
"""

import math

import keras
import numpy as np
from keras.src.utils import io_utils


def _as_float(value):
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return None


@keras.saving.register_keras_serializable(package="keras_kd")
class NonFiniteLossGuard(keras.callbacks.TerminateOnNaN):
    """Stop training when a loss term becomes NaN or Inf, naming the term(s).

    Checks, after every training batch, `loss` and every logged loss term: `student_loss`,
    `distillation_loss`, each of the Distiller's feature losses (`hidden_mse`, ...), any other log
    key ending in `loss`, and the keys listed in `terms`. The message names the non-finite terms other than the total, e.g.

        Non-finite loss term at epoch 0, batch 3: distillation_loss=nan. Other terms:
        student_loss=0.6931, loss=nan. Training stopped.

    Args:
        terms: extra log keys to watch (feature losses not named `*loss`), optional.
        raise_error: if True raise a `FloatingPointError` with the message; else (default) print
            it and set `model.stop_training = True`, like `keras.callbacks.TerminateOnNaN`.

    After stopping, `guard.message` and `guard.nonfinite_terms` hold what was found.
    """

    def __init__(self, terms=None, raise_error=False):
        super().__init__(raise_error=raise_error)
        self.terms = list(terms or [])
        self.message = None
        self.nonfinite_terms = []
        self._epoch = 0

    def on_train_begin(self, logs=None):
        # The Distiller logs each feature loss under its term's name (`hidden_mse`, `attention_kl`, ...).
        self._feature_terms = [tracker.name for tracker in getattr(self.model, "feature_loss_trackers", [])]

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
            return
        named = [key for key in bad if key != "loss"] or bad  # the total only when no term is known
        others = [key for key in values if key not in named]
        self.nonfinite_terms = named
        self.message = (
            f"Non-finite loss term at epoch {self._epoch}, batch {batch}: "
            + ", ".join(f"{key}={values[key]}" for key in named)
            + "."
            + (" Other terms: " + ", ".join(f"{key}={values[key]:.4g}" for key in others) + "." if others else "")
            + " Training stopped."
        )
        if self.raise_error:
            raise FloatingPointError(self.message)
        io_utils.print_msg(self.message)
        self.model.stop_training = True

    def get_config(self):
        return {"terms": list(self.terms), "raise_error": self.raise_error}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
