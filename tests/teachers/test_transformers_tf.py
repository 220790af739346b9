"""TransformersTeacher on the real MiniLM weights agrees with KerasHubTeacher (needs the [hf] extra)."""

import os

import numpy as np
import pytest

pytest.importorskip(
    "transformers", reason='the [hf] extra is not installed: pip install "keras-kd[hf]"'
)
pytest.importorskip(
    "tf_keras", reason='the [hf] extra is not installed: pip install "keras-kd[hf]"'
)

from keras_kd.teachers import TransformersTeacher  # noqa: E402


@pytest.fixture(scope="module")
def hf_teacher(minilm_path):
    return TransformersTeacher.from_pretrained(
        minilm_path, output_hidden_states=True, output_attentions=True
    )


def test_agrees_with_keras_hub(hf_teacher, minilm, minilm_reference):
    texts = [row["text"] for row in minilm_reference["sentences"]]
    hf_inputs = hf_teacher.tokenize(texts, max_length=48)
    kh_inputs = minilm.tokenize(np.array(texts))
    np.testing.assert_array_equal(hf_inputs["input_ids"], kh_inputs["token_ids"].numpy())
    hf, kh = hf_teacher(hf_inputs)["embedding"].numpy(), minilm(kh_inputs)["embedding"].numpy()
    cosine = (hf * kh).sum(-1) / np.linalg.norm(hf, axis=-1) / np.linalg.norm(kh, axis=-1)
    assert cosine.min() >= 0.999, cosine
    expected = np.array([row["embedding_first8"] for row in minilm_reference["sentences"]])
    np.testing.assert_allclose(hf[:, :8], expected, atol=1e-3)
    # keras-hub input names work too.
    np.testing.assert_allclose(hf_teacher(kh_inputs)["embedding"].numpy(), hf, atol=1e-5)


def test_outputs_shapes_frozen_and_environment(hf_teacher):
    outputs = hf_teacher(hf_teacher.tokenize(["a great film", "a dull film"], max_length=16))
    assert sorted(outputs) == ["attentions", "embedding", "hidden_states"]
    assert [tuple(h.shape) for h in outputs["hidden_states"]] == [(2, 16, 384)] * 7
    assert [tuple(a.shape) for a in outputs["attentions"]] == [(2, 12, 16, 16)] * 6
    assert hf_teacher.weights == []  # the tf-keras model's variables are not Keras 3 weights
    assert "TF_USE_LEGACY_KERAS" not in os.environ or os.environ["TF_USE_LEGACY_KERAS"] != "1"


def test_config_round_trip_and_errors(hf_teacher, minilm_path):
    config = hf_teacher.get_config()
    assert (config["path"], config["task"], config["output_attentions"]) == (
        minilm_path,
        "base",
        True,
    )
    clone = TransformersTeacher.from_config({**config, "output_attentions": False, "head": None})
    x = hf_teacher.tokenize(["fine"], max_length=8)
    np.testing.assert_allclose(
        clone(x)["embedding"].numpy(), hf_teacher(x)["embedding"].numpy(), atol=1e-6
    )
    assert "attentions" not in clone(x)
    with pytest.raises(
        ValueError, match="`task` must be one of \\('base', 'sequence_classification'\\)"
    ):
        TransformersTeacher.from_pretrained(minilm_path, task="qa")
    with pytest.raises(ValueError, match="takes a dict of token ids"):
        hf_teacher(np.zeros((1, 4), "int32"))
