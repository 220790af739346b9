"""Attention losses: AttentionTransfer (Zagoruyko & Komodakis 2017), TinyBERT MSE, MiniLM KL."""

import numpy as np
import pytest

from keras_kd import losses as kd_losses
from keras_kd.losses import functional
from tests.losses.checks import assert_config_round_trip, assert_term_float32_under_mixed_bfloat16

MASK = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype="float32")


def ref_at(t, s, mask=None, p=2):
    """The reference code's `at(x) = normalize(x.pow(p).mean(channels))`, `(at(s) - at(t))².mean()`."""

    def at(x):
        a = (np.abs(np.float64(x)) ** p).mean(-1).reshape(len(x), -1)
        if mask is not None:
            a = a * mask
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    diff = (at(s) - at(t)) ** 2
    return diff.mean(-1) if mask is None else diff.sum(-1) / mask.sum(-1)


def ref_att_mse(t, s, mask=None):
    err = (np.float64(s) - t) ** 2
    if mask is None:
        return err.mean((1, 2, 3))
    pairs = np.broadcast_to(mask[:, None, :, None] * mask[:, None, None, :], err.shape)
    return (err * pairs).sum((1, 2, 3)) / pairs.sum((1, 2, 3))


def ref_att_kl(t, s, mask=None):
    t, s = np.float64(t), np.float64(s)
    if mask is None:
        return (t * np.log(t / s)).sum(-1).mean((1, 2))
    keys = mask[:, None, None, :] > 0
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 on padded keys, discarded by `where`
        rows = np.where(keys, t * np.log(np.where(keys, t / s, 1.0)), 0).sum(-1)
    queries = np.broadcast_to(mask[:, None, :], rows.shape)
    return (rows * queries).sum((1, 2)) / queries.sum((1, 2))


def masked_softmax(scores, mask):
    scores = np.where(mask[:, None, None, :] > 0, scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype("float32")


@pytest.fixture
def maps(rng):
    t_scores = rng.normal(size=(2, 3, 4, 4)).astype("float32")
    s_scores = rng.normal(size=(2, 3, 4, 4)).astype("float32")
    return t_scores, s_scores


def test_attention_transfer_matches_numpy(rng):
    t = rng.normal(size=(2, 4, 4, 8)).astype("float32")  # images: (batch, h, w, c), channels differ
    s = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(functional.attention_transfer(t, s)), ref_at(t, s), rtol=1e-5
    )
    t_seq, s_seq = t.reshape(2, 4, 32), s.reshape(2, 4, 12)  # sequences with padding
    np.testing.assert_allclose(
        np.asarray(functional.attention_transfer(t_seq, s_seq, MASK)),
        ref_at(t_seq, s_seq, MASK),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        np.asarray(functional.attention_transfer(t, s, p=1.0)), ref_at(t, s, p=1), rtol=1e-5
    )


def test_attention_transfer_hand_computed_case():
    # Maps: teacher mean_c F² = [1, 0] → Q = [1, 0]; student [1, 1]/√2 → mean of squared diff over 2 positions.
    t = np.array([[[1.0], [0.0]]], dtype="float32")
    s = np.array([[[1.0], [-1.0]]], dtype="float32")
    q = 1 / np.sqrt(2)
    np.testing.assert_allclose(
        np.asarray(functional.attention_transfer(t, s)), [((q - 1) ** 2 + q**2) / 2], rtol=1e-6
    )


@pytest.mark.parametrize("mask", [None, MASK])
def test_attention_mse_and_kl_match_numpy(mask, maps):
    t_scores, s_scores = maps
    m = np.ones_like(MASK) if mask is None else mask
    t, s = masked_softmax(t_scores, m), masked_softmax(s_scores, m)
    np.testing.assert_allclose(
        np.asarray(functional.attention_mse(t, s, mask)), ref_att_mse(t, s, mask), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(functional.attention_kl(t, s, mask)), ref_att_kl(t, s, mask), rtol=1e-5
    )
    # Scores with from_logits=True give the same KL as their masked softmax.
    np.testing.assert_allclose(
        np.asarray(functional.attention_kl(t_scores, s_scores, mask, from_logits=True)),
        ref_att_kl(t, s, mask),
        rtol=1e-5,
    )


def test_attention_hand_computed_case():
    # One head, two tokens, second one padded: only the (0, 0) entry counts.
    t = np.array([[[[0.6, 0.4], [0.5, 0.5]]]], dtype="float32")
    s = np.array([[[[0.2, 0.8], [0.9, 0.1]]]], dtype="float32")
    np.testing.assert_allclose(
        np.asarray(functional.attention_mse(t, s)), [(0.16 * 2 + 0.16 * 2) / 4], rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(functional.attention_mse(t, s, [[1, 0]])), [0.16], rtol=1e-5
    )
    # KL on the single real key: both rows renormalize to [1] over it → 0 after masking the key.
    kl_full = (
        0.6 * np.log(0.6 / 0.2)
        + 0.4 * np.log(0.4 / 0.8)
        + 0.5 * np.log(0.5 / 0.9)
        + 0.5 * np.log(0.5 / 0.1)
    ) / 2
    np.testing.assert_allclose(np.asarray(functional.attention_kl(t, s)), [kl_full], rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(functional.attention_kl(np.log(t), np.log(s), [[1, 0]], from_logits=True)),
        [0.0],
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "fn",
    [
        functional.attention_mse,
        functional.attention_kl,
        lambda t, s, m: functional.attention_kl(t, s, m, from_logits=True),
    ],
)
def test_padding_changes_nothing(fn, maps, rng):
    t, s = (masked_softmax(x, MASK) for x in maps)
    t2, s2 = t.copy(), s.copy()
    # Padded query rows and padded key columns get arbitrary values.
    t2[0, :, 3, :] = rng.random((3, 4))
    s2[0, :, :, 3] = rng.random((3, 4))
    np.testing.assert_allclose(np.asarray(fn(t2, s2, MASK)), np.asarray(fn(t, s, MASK)), rtol=1e-6)
    assert not np.allclose(np.asarray(fn(t2, s2, None)), np.asarray(fn(t, s, None)))


def test_attention_transfer_padding_changes_nothing(rng):
    t, s = (
        rng.normal(size=(2, 4, 5)).astype("float32"),
        rng.normal(size=(2, 4, 3)).astype("float32"),
    )
    t2 = t.copy()
    t2[0, 3] = 100.0
    np.testing.assert_allclose(
        np.asarray(functional.attention_transfer(t2, s, MASK)),
        np.asarray(functional.attention_transfer(t, s, MASK)),
        rtol=1e-6,
    )


def test_terms_select_layers_and_read_the_padding_mask(maps):
    t, s = (masked_softmax(x, MASK) for x in maps)
    teacher = {"attentions": [s, s, t]}
    student = {"attentions": [t, s], "padding_mask": MASK}
    term = kd_losses.AttentionKL(layer_map="last_k", weight=3.0)
    value = float(term(teacher, student))
    assert term.pairs == [(0, 1), (1, 2)]
    expected = 3.0 * (ref_att_kl(s, t, MASK) + ref_att_kl(t, s, MASK)).mean()
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    mse = kd_losses.AttentionMSE(layer_map={1: 0})
    np.testing.assert_allclose(float(mse(teacher, student)), 0.0, atol=1e-7)
    assert not term.trainable_weights and not mse.trainable_weights


def test_attention_terms_refuse_projections():
    with pytest.raises(
        ValueError, match="`AttentionMSE` compares maps of equal shape and has no projection"
    ):
        kd_losses.AttentionMSE(projection=True)


@pytest.mark.parametrize("cls", [kd_losses.AttentionMSE, kd_losses.AttentionKL])
def test_float32_under_mixed_bfloat16(cls, maps):
    t, s = (masked_softmax(x, MASK) for x in maps)
    ref = ref_att_mse if cls is kd_losses.AttentionMSE else ref_att_kl
    assert_term_float32_under_mixed_bfloat16(cls, "attentions", t, s, MASK, ref)


@pytest.mark.parametrize(
    "name, cls, kwargs",
    [
        (
            "attention_transfer",
            kd_losses.AttentionTransfer,
            {"layer_map": [[0, 1]], "p": 1.0, "weight": 500.0},
        ),
        ("attention_mse", kd_losses.AttentionMSE, {"layer_map": "uniform"}),
        ("attention_kl", kd_losses.AttentionKL, {"from_logits": True, "mask_key": "mask"}),
    ],
)
def test_config_round_trip_and_registry(name, cls, kwargs):
    assert_config_round_trip(name, cls, kwargs)
