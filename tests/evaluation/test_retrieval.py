"""Translation retrieval metrics against hand-computed values."""

import numpy as np
import pytest

from keras_kd.evaluation import retrieval_ranks, translation_retrieval


def test_hand_computed():
    source = [[1.0, 0.0], [0.0, 1.0]]
    # cos(s0, t0)=0.994 > cos(s0, t1)=0.981; cos(s1, t0)=0.110 < cos(s1, t1)=0.196: both right.
    result = translation_retrieval(source, [[0.9, 0.1], [1.0, 0.2]])
    assert result == {"top1": 1.0, "top5": 1.0, "mean_rank": 0.0, "n": 2}
    swapped = translation_retrieval(source, [[1.0, 0.2], [0.9, 0.1]], ks=(1, 2))
    assert swapped == {"top1": 0.0, "top2": 1.0, "mean_rank": 1.0, "n": 2}


def test_ranks_three_way_and_scale_invariance():
    source = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = np.array([[0.0, 3.0], [0.1, 1.0], [2.0, 2.1]])
    # s0: cosines 0, 0.0995, 0.689 -> its target (index 0) is last: rank 2.
    # s1: cosines 1, 0.995, 0.724 -> target 1 second: rank 1. s2: 0.707, 0.774, 0.9997 -> rank 0.
    np.testing.assert_array_equal(retrieval_ranks(source, target), [2, 1, 0])
    result = translation_retrieval(source * 7, target, ks=(1, 2, 3))
    assert result["top1"] == pytest.approx(1 / 3) and result["top2"] == pytest.approx(2 / 3)
    assert result["top3"] == 1.0 and result["mean_rank"] == pytest.approx(1.0)


def test_ties_count_against():
    constant = np.ones((4, 3))
    assert translation_retrieval(constant, constant)["top1"] == 0.0


def test_errors():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 2\) and \(3, 2\)"):
        translation_retrieval(np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"`source_embeddings` must be a 2-D array"):
        translation_retrieval(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"`ks` must hold positive integers"):
        translation_retrieval(np.eye(2), np.eye(2), ks=(0,))
    with pytest.raises(ValueError, match=r"NaN"):
        translation_retrieval(np.array([[np.nan, 1.0]]), np.ones((1, 2)))
