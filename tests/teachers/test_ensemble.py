"""keras_kd.teachers.mean_log_probabilities: several teachers' logits as one ensemble target."""

import numpy as np
import pytest

from keras_kd.teachers import mean_log_probabilities


def test_weighted_mean_of_log_probabilities():
    # teacher a: p = (1/4, 3/4) (logits shifted by 5: same probabilities); teacher b: p = (1/2, 1/2)
    a = np.array([[5.0, 5.0 + np.log(3.0)]])
    b = np.array([[0.0, 0.0]])
    expected_a, expected_b = np.log([[0.25, 0.75]]), np.log([[0.5, 0.5]])
    out = mean_log_probabilities([a, b])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (expected_a + expected_b) / 2, rtol=1e-6)
    np.testing.assert_allclose(mean_log_probabilities([a, b], weights=[3, 1]), 0.75 * expected_a + 0.25 * expected_b,
                               rtol=1e-6)
    np.testing.assert_allclose(mean_log_probabilities([a]), expected_a, rtol=1e-6)  # one teacher: its log-softmax
    centred = mean_log_probabilities([a, b], center=True)
    np.testing.assert_allclose(centred, (expected_a + expected_b) / 2 - ((expected_a + expected_b) / 2).mean(), rtol=1e-6)
    np.testing.assert_allclose(mean_log_probabilities([np.array([[1.0, 4.0, 7.0]])], center=True), [[-3.0, 0.0, 3.0]])


@pytest.mark.parametrize(
    "logits, weights, message",
    [
        ([], None, r"`logits` must hold at least one teacher's logits"),
        ([np.zeros((1, 2))] * 2, [1.0], r"`weights` must hold 2 non-negative numbers, not all zero. Received: weights=\[1.0\]"),
        ([np.zeros((1, 2))] * 2, [1.0, -1.0], r"Received: weights=\[1.0, -1.0\]"),
        ([np.zeros((1, 2))] * 2, [0, 0], r"Received: weights=\[0.0, 0.0\]"),
    ],
)
def test_bad_arguments(logits, weights, message):
    with pytest.raises(ValueError, match=message):
        mean_log_probabilities(logits, weights)
