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


def test_out_of_fold_logits_come_from_the_bag_that_did_not_see_the_review():
    en = _example()
    rng = np.random.default_rng(0)
    x = rng.integers(1000, 1100, size=(40, 6)).astype("int32")
    y = rng.integers(0, 2, size=40).astype("int32")
    x[:, 2] = np.where(y == 1, 7, 9)
    # rows: the 40 reviews, a copy of reviews 0-9 (review 0-9), then 5 rows of no review (-1)
    token_ids = np.concatenate([x, x[:10], rng.integers(1000, 1100, size=(5, 6)).astype("int32")])
    review = np.concatenate([np.arange(40), np.arange(10), np.full(5, -1)]).astype("int32")
    logits = np.full((55, 2), 7.0, "float32")
    config = {"buckets": 2**8, "epochs": 2, "learning_rate": 5e-2}
    out = en.out_of_fold_logits(x, y, token_ids, review, logits, folds=2, seed=3, **config)
    np.testing.assert_array_equal(out[50:], logits[50:])  # rows of no review keep their logits
    fold = np.random.default_rng(3).permutation(40) % 2
    for f in range(2):  # the bag trained on the other fold, with the same seed, gives the same logits
        bag = en.train_ngram_teacher(x[fold != f], y[fold != f], seed=3, **config)
        rows = np.flatnonzero((review >= 0) & (fold[np.maximum(review, 0)] == f))
        assert len(rows) > 20
        np.testing.assert_allclose(out[rows], bag.predict(token_ids[rows], verbose=0), rtol=1e-5, atol=1e-6)
    # a copy (here identical ids) gets its review's fold; equal up to float round-off (rows predicted in
    # different batches can differ in the last bits on some CPUs' kernels)
    np.testing.assert_allclose(out[40:50], out[:10], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`folds` must be at least 2"):
        en.out_of_fold_logits(x, y, token_ids, review, logits, folds=1)


def test_mean_log_probabilities_weights():
    en = _example()
    a = np.array([[0.0, np.log(3.0)]])  # log p = (-ln 4, ln 3 - ln 4)
    b = np.array([[0.0, 0.0]])  # log p = (-ln 2, -ln 2)
    # weights 2:1 -> 2/3 of a's log-probabilities + 1/3 of b's; centred: the difference is 2/3 ln 3
    np.testing.assert_allclose(en.mean_log_probabilities(a, b, weights=[2, 1]), [[-np.log(3) / 3, np.log(3) / 3]], rtol=1e-6)
