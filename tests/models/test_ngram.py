"""The hashed character n-gram bag (keras_kd.models.ngram): hashing and pooling against hand-computed values."""

import keras
import numpy as np
import pytest

from keras_kd import models
from keras_kd.models.ngram import HashedNgrams, NgramBagPooling, build_ngram_bag, build_ngram_cnn


def test_hashed_ngrams_hand_computed():
    # n=1, t=5: code = 5 + 7919 = 7924 -> 1 + 7924 % 10 = 5;  t=7: 7926 -> 7.
    # n=2, (5, 7): code = (5 + 15838) * 1000003 + 7 + 15838 = 15843063374 -> 1 + 4 = 5.
    # Anything touching padding (id 0) -> 0.
    ids = np.array([[5, 7, 0]], "int32")
    out = HashedNgrams(ngrams=(1, 2), buckets=11)(ids)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), [[5, 7, 0, 5, 0]])


def test_hashed_ngrams_order_matters_and_stays_in_range():
    ids = np.array([[3, 4, 5, 6], [6, 5, 4, 3]], "int32")
    out = keras.ops.convert_to_numpy(HashedNgrams(ngrams=(1, 2, 3), buckets=2**18)(ids))
    assert out.shape == (2, 4 + 3 + 2)
    assert sorted(out[0, :4]) == sorted(out[1, :4])  # same characters: same unigram ids
    assert set(out[0, 4:]).isdisjoint(out[1, 4:])  # reversed text: different bigrams/trigrams
    assert out.min() >= 1 and out.max() < 2**18


def test_pooling_hand_computed():
    embeddings = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], "float32")
    ids = np.array([[1, 2, 0]], "int32")
    np.testing.assert_allclose(NgramBagPooling("sum")(embeddings, ids), [[4.0, 6.0]])
    np.testing.assert_allclose(NgramBagPooling("mean")(embeddings, ids), [[2.0, 3.0]])
    np.testing.assert_allclose(NgramBagPooling("sqrt")(embeddings, ids), [[4 / 2**0.5, 6 / 2**0.5]], rtol=1e-6)
    np.testing.assert_allclose(NgramBagPooling()(embeddings, np.zeros((1, 3), "int32")), [[0.0, 0.0]])


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="`ngrams` must be a non-empty list"):
        HashedNgrams(ngrams=())
    with pytest.raises(ValueError, match="`buckets` must be an integer >= 2"):
        HashedNgrams(buckets=1)
    with pytest.raises(ValueError, match="`pooling` must be one of"):
        NgramBagPooling("max")


def test_builder_registered_params_and_round_trip(tmp_path):
    model = models.get_model("ngram_bag", vocabulary_size=100, sequence_length=6, num_classes=2, buckets=64)
    assert "ngram_bag" in models.registered_models()
    assert model.count_params() == 64 * 2 + (2 * 2 + 2)  # embedding rows are the per-class weights, + head
    ids = np.array([[5, 6, 7, 0, 0, 0], [9, 9, 9, 9, 9, 9]], "int32")
    path = str(tmp_path / "bag.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0), rtol=1e-6)


def test_builder_learns_a_bigram_rule():
    # Label 1 iff the bigram (3, 4) occurs; unigrams alone cannot tell (both classes have 3 and 4).
    rng = np.random.default_rng(0)
    x = rng.integers(5, 20, size=(256, 8)).astype("int32")
    y = rng.integers(0, 2, size=256).astype("int32")
    x[:, 2], x[:, 3] = np.where(y == 1, 3, 4), np.where(y == 1, 4, 3)  # "3 4" vs "4 3"
    keras.utils.set_random_seed(0)
    model = build_ngram_bag(sequence_length=8, buckets=1024, ngrams=(1, 2))
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=20, batch_size=64, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] == 1.0


def test_import_keras_kd_is_enough_to_load_a_saved_ngram_student(tmp_path):
    # A fresh interpreter: in this one the test modules have already imported keras_kd.models.
    import subprocess
    import sys

    path = tmp_path / "student.keras"
    model = build_ngram_bag(sequence_length=6, buckets=64)
    model.save(path)
    ids = np.array([[3, 5, 7, 0, 0, 0]], "int32")
    expected = model.predict(ids, verbose=0)
    code = (
        "import numpy as np, keras, keras_kd\n"
        f"model = keras.saving.load_model({str(path)!r})\n"
        "print(repr(model.predict(np.array([[3, 5, 7, 0, 0, 0]], 'int32'), verbose=0).tolist()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = np.array(eval(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(loaded, expected, rtol=1e-6, atol=1e-6)


def test_ngram_cnn_sums_the_ngram_embeddings_that_start_at_each_position(tmp_path):
    model = models.get_model("ngram_cnn", vocabulary_size=100, sequence_length=5, num_classes=2, buckets=11,
                             embed_dim=3, filters=4, kernel_sizes=(1, 2))
    assert "ngram_cnn" in models.registered_models()
    # table 11 x 3, conv k=1 (3*4 + 4) and k=2 (2*3*4 + 4), head (8 + 1) * 2
    assert model.count_params() == 11 * 3 + (12 + 4) + (24 + 4) + 9 * 2
    ids = np.array([[5, 7, 0, 0, 0]], "int32")
    table = model.get_layer("ngram_embedding").get_weights()[0]
    # hand-computed ids (see test_hashed_ngrams_hand_computed): unigrams 5, 7, 0, 0, 0; bigrams 5, 0, 0, 0
    expected = table[[5, 7, 0, 0, 0]] + np.concatenate([table[[5, 0, 0, 0]], np.zeros((1, 3), "float32")])
    summed = keras.Model(model.input, model.get_layer("ngram_sum").output)(ids)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(summed)[0], expected, rtol=1e-6)
    path = str(tmp_path / "cnn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="Every n-gram order must be <= `sequence_length`"):
        build_ngram_cnn(sequence_length=2, ngrams=(1, 3))
    with pytest.raises(ValueError, match="`kernel_sizes` must be a non-empty list"):
        build_ngram_cnn(kernel_sizes=())
