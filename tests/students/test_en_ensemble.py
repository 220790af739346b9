"""The English example's ensemble teacher: mean of log-probabilities, and the n-gram bag teacher."""

import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _example():
    sys.path.insert(0, str(EXAMPLES))
    import en_sentiment_bert

    return en_sentiment_bert


def test_mean_log_probabilities_is_centred_mean_of_log_softmax():
    en = _example()
    # row 0: p = (1/4, 3/4) and (1/2, 1/2) -> mean log-p differs by ln(3)/2, centred: -ln(3)/4, +ln(3)/4
    # row 1: logits shifted by a constant per model give the same log-probabilities as row 0
    a = np.array([[0.0, np.log(3.0)], [5.0, 5.0 + np.log(3.0)]])
    b = np.array([[0.0, 0.0], [-2.0, -2.0]])
    out = en.mean_log_probabilities(a, b)
    expected = np.log(3.0) / 4 * np.array([[-1.0, 1.0], [-1.0, 1.0]])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32
    # one model: its logits, centred
    np.testing.assert_allclose(en.mean_log_probabilities(np.array([[1.0, 4.0, 7.0]])), [[-3.0, 0.0, 3.0]], rtol=1e-6)


def test_ngram_teacher_learns_a_lexical_rule():
    en = _example()
    rng = np.random.default_rng(0)
    x = rng.integers(1000, 1100, size=(256, 8)).astype("int32")
    y = rng.integers(0, 2, size=256).astype("int32")
    x[:, 3] = np.where(y == 1, 7, 9)  # the label is one token
    model = en.train_ngram_teacher(x, y, buckets=2**10, epochs=8, learning_rate=5e-2)
    assert model.count_params() == 2**10 * 2 + 2 * 2 + 2
    assert np.mean(np.argmax(model.predict(x, verbose=0), -1) == y) == pytest.approx(1.0)
