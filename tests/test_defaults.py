"""The library defaults are chosen by measurement (benchmarks/RESULTS.md, "Library defaults"): pin them.

Changing a value here needs new evidence: rerun `benchmarks/defaults_sweep.py` on MNIST-5k and
Fashion-MNIST and `benchmarks/methods.py`, and update RESULTS.md.
"""

import keras
import numpy as np

import keras_kd
from keras_kd import defaults
from keras_kd import losses as kd_losses


def test_default_values():
    assert defaults.DEFAULT_LOSS == "kl"
    assert defaults.DEFAULT_TEMPERATURE == 1.0
    assert defaults.DEFAULT_ALPHA == 0.9


def test_distiller_and_losses_use_the_defaults():
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    assert isinstance(distiller.distillation_loss, kd_losses.KLDivergence)
    assert float(keras.ops.convert_to_numpy(distiller.temperature)) == 1.0
    assert float(keras.ops.convert_to_numpy(distiller.alpha)) == np.float32(0.9)
    assert float(keras.ops.convert_to_numpy(kd_losses.KLDivergence().temperature)) == 1.0
    assert float(keras.ops.convert_to_numpy(kd_losses.get("kl").temperature)) == 1.0


def test_default_loss_value_matches_numpy():
    # T=1: KL(softmax(t) || softmax(s)), batch mean (T² = 1).
    t = np.array([[3.0, 1.0, -2.0]], "float32")
    s = np.array([[-1.0, 2.0, 0.5]], "float32")
    p, q = np.exp(t) / np.exp(t).sum(), np.exp(s) / np.exp(s).sum()
    expected = float(np.sum(p * (np.log(p) - np.log(q))))
    np.testing.assert_allclose(float(kd_losses.get(defaults.DEFAULT_LOSS)(t, s)), expected, rtol=1e-5)
