"""KerasHubTeacher on the real all-MiniLM-L6-v2 weights, against an independent NumPy reference."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd.teachers import KerasHubTeacher
from keras_kd.teachers.keras_hub import masked_mean_pool


def _texts(reference):
    return tf.constant([row["text"] for row in reference["sentences"]])


def test_tokenizer_matches_reference_ids(minilm, minilm_reference):
    x = minilm.tokenize(_texts(minilm_reference))
    for i, row in enumerate(minilm_reference["sentences"]):
        n = len(row["token_ids"])
        np.testing.assert_array_equal(x["token_ids"][i, :n].numpy(), row["token_ids"])
        assert int(tf.reduce_sum(tf.cast(x["padding_mask"][i], "int32"))) == n


def test_embedding_matches_sentence_transformers_reference(minilm, minilm_reference):
    outputs = minilm(minilm.tokenize(_texts(minilm_reference)))
    assert sorted(outputs) == ["embedding"]
    embedding = outputs["embedding"].numpy()
    assert embedding.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=-1), 1.0, atol=1e-5)
    expected = np.array([row["embedding_first8"] for row in minilm_reference["sentences"]])
    np.testing.assert_allclose(embedding[:, :8], expected, atol=1e-3)
    # Raw strings work too (the attached preprocessor runs inside the call).
    np.testing.assert_allclose(
        minilm(_texts(minilm_reference))["embedding"].numpy(), embedding, atol=1e-6
    )


def test_hidden_states_and_attention_scores(minilm, minilm_reference):
    teacher = KerasHubTeacher(
        minilm.backbone,
        minilm.preprocessor,
        output_hidden_states=True,
        output_attentions=True,
        head=2,
    )
    x = minilm.tokenize(_texts(minilm_reference))
    outputs = teacher(x)
    assert sorted(outputs) == ["attentions", "embedding", "hidden_states", "logits"]
    assert [tuple(h.shape) for h in outputs["hidden_states"]] == [(3, 48, 384)] * 7
    assert [tuple(a.shape) for a in outputs["attentions"]] == [(3, 12, 48, 48)] * 6
    assert tuple(outputs["logits"].shape) == (3, 2)
    # The layer-by-layer run is the backbone's own computation.
    sequence = minilm.backbone(x)["sequence_output"]
    np.testing.assert_allclose(outputs["hidden_states"][-1].numpy(), sequence.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        outputs["embedding"].numpy(), minilm(x)["embedding"].numpy(), atol=1e-6
    )
    # Attention rows are distributions over real tokens only.
    scores = outputs["attentions"][0].numpy()
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    mask = x["padding_mask"].numpy()
    assert np.abs(scores[~np.broadcast_to(mask[:, None, None, :], scores.shape)]).max() < 1e-6


def test_padding_mask_is_honoured(minilm, minilm_reference):
    x = minilm.tokenize(_texts(minilm_reference))
    padded = {key: tf.concat([value, tf.zeros_like(value)], axis=1) for key, value in x.items()}
    assert padded["token_ids"].shape[1] == 96
    short, long = minilm(x)["embedding"].numpy(), minilm(padded)["embedding"].numpy()
    np.testing.assert_allclose(long, short, atol=1e-5)
    # Not trivially equal: ignoring the mask in the pooling moves the embedding a lot.
    sequence = minilm.backbone(padded)["sequence_output"]
    unmasked = masked_mean_pool(sequence, tf.ones_like(padded["padding_mask"])).numpy()
    assert np.abs(unmasked - long).max() > 1e-2


def test_hugging_face_input_names_accepted(minilm, minilm_reference):
    x = minilm.tokenize(_texts(minilm_reference))
    hf = {"input_ids": x["token_ids"], "attention_mask": tf.cast(x["padding_mask"], "int32")}
    np.testing.assert_allclose(
        minilm(hf)["embedding"].numpy(), minilm(x)["embedding"].numpy(), atol=1e-6
    )


def _tiny_teacher(**kwargs):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=12,
    )
    return KerasHubTeacher(backbone, **kwargs)


def _tiny_inputs():
    ids = np.array([[2, 5, 7, 3, 0, 0], [2, 9, 3, 0, 0, 0]], dtype="int32")
    return {"token_ids": ids, "padding_mask": ids > 0, "segment_ids": np.zeros_like(ids)}


def test_config_and_keras_file_round_trip(minilm_path, tmp_path):
    teacher = _tiny_teacher(head=3, output_hidden_states=True, pooling="cls", normalize=False)
    x = _tiny_inputs()
    outputs = teacher(x)
    config = teacher.get_config()
    clone = KerasHubTeacher.from_config(config)
    assert clone.get_config() == config
    assert (
        clone.pooling,
        clone.normalize,
        clone.output_hidden_states,
        clone.output_attentions,
    ) == ("cls", False, True, False)
    assert clone.head.units == 3
    path = str(tmp_path / "teacher.keras")
    inputs = {
        k: keras.Input((6,), dtype="bool" if k == "padding_mask" else "int32", name=k) for k in x
    }
    holder = keras.Model(inputs, teacher(inputs)["logits"])
    holder.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), outputs["logits"].numpy(), atol=1e-6)


def test_argument_errors():
    with pytest.raises(
        ValueError, match="`pooling` must be 'mean' or 'cls'. Received: pooling='max'"
    ):
        _tiny_teacher(pooling="max")
    with pytest.raises(ValueError, match="`head` must be None, a number of classes"):
        _tiny_teacher(head=0)
    inputs = {
        "token_ids": keras.Input((None,), dtype="int32"),
        "padding_mask": keras.Input((None,), dtype="int32"),
    }
    plain = keras.Model(
        inputs, {"sequence_output": keras.layers.Embedding(10, 4)(inputs["token_ids"])}
    )
    with pytest.raises(ValueError, match="cannot expose its hidden states"):
        KerasHubTeacher(plain, output_attentions=True)
    teacher = KerasHubTeacher(plain)  # embedding still works
    assert tuple(
        teacher({"token_ids": np.ones((2, 3), "int32"), "padding_mask": np.ones((2, 3), "int32")})[
            "embedding"
        ].shape
    ) == (2, 4)
    with pytest.raises(ValueError, match="has no `preprocessor`"):
        teacher.tokenize(["a"])
