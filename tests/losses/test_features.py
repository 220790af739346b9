"""Intermediate-layer losses (HiddenStateMSE, CosineEmbedding), projections and layer maps."""

import keras
import numpy as np
import pytest

from keras_kd import layer_mapping
from keras_kd import losses as kd_losses
from keras_kd.losses import functional
from tests.losses.checks import assert_config_round_trip, assert_term_float32_under_mixed_bfloat16


def ref_masked_mean(per_position, mask):
    """per_position: (batch, length); mask: (batch, length) or None."""
    if mask is None:
        return per_position.mean(-1)
    return (per_position * mask).sum(-1) / mask.sum(-1)


def ref_mse(t, s, mask=None):
    return ref_masked_mean(((np.float64(s) - t) ** 2).mean(-1), mask)


def ref_cosine(t, s, mask=None):
    t, s = np.float64(t), np.float64(s)
    cos = (t * s).sum(-1) / (np.linalg.norm(t, axis=-1) * np.linalg.norm(s, axis=-1))
    return ref_masked_mean(1 - cos, mask)


MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype="float32")


@pytest.fixture
def states(rng):
    t = rng.normal(size=(3, 5, 6)).astype("float32")
    s = rng.normal(size=(3, 5, 6)).astype("float32")
    return t, s


@pytest.mark.parametrize(
    "fn, ref", [(functional.hidden_state_mse, ref_mse), (functional.cosine_embedding, ref_cosine)]
)
@pytest.mark.parametrize("mask", [None, MASK])
def test_functions_match_numpy(fn, ref, mask, states):
    t, s = states
    np.testing.assert_allclose(np.asarray(fn(t, s, mask)), ref(t, s, mask), rtol=1e-5)


@pytest.mark.parametrize("fn", [functional.hidden_state_mse, functional.cosine_embedding])
def test_padding_positions_change_nothing(fn, states, rng):
    t, s = states
    t2, s2 = t.copy(), s.copy()
    pad = MASK == 0
    t2[pad] = rng.normal(scale=10.0, size=t2[pad].shape)
    s2[pad] = rng.normal(scale=10.0, size=s2[pad].shape)
    np.testing.assert_allclose(np.asarray(fn(t2, s2, MASK)), np.asarray(fn(t, s, MASK)), rtol=1e-6)
    assert not np.allclose(np.asarray(fn(t2, s2)), np.asarray(fn(t, s)))


def test_hand_computed_cases():
    t = np.array([[[1.0, 0.0], [0.0, 2.0]]], dtype="float32")
    s = np.array([[[0.0, 1.0], [0.0, 4.0]]], dtype="float32")
    # MSE: position 0 → (1 + 1)/2 = 1; position 1 → (0 + 4)/2 = 2; mean 1.5; masked to position 0: 1.
    np.testing.assert_allclose(np.asarray(functional.hidden_state_mse(t, s)), [1.5])
    np.testing.assert_allclose(np.asarray(functional.hidden_state_mse(t, s, [[1, 0]])), [1.0])
    # Cosine: orthogonal → 1, parallel → 0.
    np.testing.assert_allclose(np.asarray(functional.cosine_embedding(t, s)), [0.5], atol=1e-7)


def test_term_with_projection_matches_numpy(rng):
    teacher = {"hidden_states": [rng.normal(size=(3, 5, 6)).astype("float32") for _ in range(4)]}
    student = {
        "hidden_states": [rng.normal(size=(3, 5, 4)).astype("float32") for _ in range(2)],
        "padding_mask": MASK,
    }
    term = kd_losses.HiddenStateMSE(layer_map="uniform", weight=0.5)
    weights = np.array([1.0, 0.0, 2.0], dtype="float32")
    value = float(term(teacher, student, sample_weight=weights))
    assert term.pairs == [(0, 1), (1, 3)]
    assert [tuple(w.shape) for w in term.trainable_weights] == [(4, 6), (6,), (4, 6), (6,)]
    expected = 0
    for (s_layer, t_layer), dense in zip(term.pairs, term.projections, strict=True):
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in dense.weights)
        projected = student["hidden_states"][s_layer] @ kernel + bias
        expected = expected + ref_mse(teacher["hidden_states"][t_layer], projected, MASK)
    np.testing.assert_allclose(value, 0.5 * (weights * expected).sum() / 3, rtol=1e-5)


def test_equal_widths_need_no_projection(states):
    t, s = states
    term = kd_losses.CosineEmbedding(layer_map={"feat": "feat"})
    value = term({"feat": t}, {"feat": s})
    assert not term.trainable_weights
    np.testing.assert_allclose(float(value), ref_cosine(t, s).mean(), rtol=1e-5)


def test_width_mismatch_without_projection_is_an_error(rng):
    term = kd_losses.HiddenStateMSE(projection=False)
    with pytest.raises(ValueError, match="has width 4 and teacher layer -1 width 6"):
        term(
            {"hidden_states": [np.zeros((2, 6), "float32")]},
            {"hidden_states": [np.zeros((2, 4), "float32")]},
        )


def test_unknown_output_name_lists_the_available_ones():
    term = kd_losses.HiddenStateMSE(layer_map={"block_3": -1})
    with pytest.raises(
        ValueError, match=r"No output named 'block_3'. Available outputs: \['logits'\]"
    ):
        term(
            {"hidden_states": [np.zeros((2, 4), "float32")]},
            {"logits": np.zeros((2, 4), "float32")},
        )


def test_projection_argument_is_validated():
    with pytest.raises(
        ValueError, match="`projection` must be 'auto', True or False. Received: projection='yes'"
    ):
        kd_losses.HiddenStateMSE(projection="yes")


@pytest.mark.parametrize("cls", [kd_losses.HiddenStateMSE, kd_losses.CosineEmbedding])
def test_float32_under_mixed_bfloat16(cls, states):
    t, s = states
    ref = ref_mse if cls is kd_losses.HiddenStateMSE else ref_cosine
    assert_term_float32_under_mixed_bfloat16(cls, "hidden_states", t, s, MASK, ref)


@pytest.mark.parametrize(
    "name, cls, kwargs",
    [
        (
            "hidden_mse",
            kd_losses.HiddenStateMSE,
            {"layer_map": {0: 2, "emb": "emb"}, "weight": 2.0},
        ),
        (
            "cosine_embedding",
            kd_losses.CosineEmbedding,
            {"layer_map": "last_k", "projection": True},
        ),
    ],
)
def test_config_round_trip_and_registry(name, cls, kwargs):
    assert_config_round_trip(name, cls, kwargs)


# ---------------------------------------------------------------- layer mapping
def test_uniform_and_last_k_maps():
    assert layer_mapping.uniform(4, 12) == {0: 2, 1: 5, 2: 8, 3: 11}
    assert layer_mapping.uniform(3, 3) == {0: 0, 1: 1, 2: 2}
    assert layer_mapping.last_k(4, 12) == {0: 8, 1: 9, 2: 10, 3: 11}
    assert layer_mapping.last_k(4, 12, k=1) == {3: 11}
    assert layer_mapping.resolve({0: 1}) == [(0, 1)]
    assert layer_mapping.resolve([["a", "b"]]) == [("a", "b")]
    assert layer_mapping.resolve("uniform", 2, 4) == [(0, 1), (1, 3)]


def test_layer_map_errors():
    with pytest.raises(
        ValueError,
        match="teacher at least as deep as the student. Received: num_student=5, num_teacher=2",
    ):
        layer_mapping.uniform(5, 2)
    with pytest.raises(
        ValueError, match=r"`k` must be an int in \[1, num_student=2\]. Received: k=3"
    ):
        layer_mapping.last_k(2, 4, k=3)
    with pytest.raises(ValueError, match="Unknown layer map strategy: 'middle'"):
        kd_losses.HiddenStateMSE(layer_map="middle")
    with pytest.raises(ValueError, match="needs list outputs"):
        kd_losses.HiddenStateMSE(layer_map="uniform")(
            {"h": np.zeros((1, 2))}, {"h": np.zeros((1, 2))}
        )


def test_gradients_stay_finite_for_zero_features():
    import tensorflow as tf

    zeros = tf.zeros((2, 3, 4))
    student = tf.Variable(tf.zeros((2, 3, 4)))
    for fn in (functional.cosine_embedding, functional.attention_transfer):
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(fn(zeros, student))
        assert np.isfinite(np.asarray(tape.gradient(value, student))).all()
