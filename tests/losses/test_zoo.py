"""The logit-loss zoo: ReverseKL, JSDivergence, MSELogits, DKD, DIST, HardDistillation.

Each loss is checked against an independent NumPy reference on random inputs (rtol 1e-5), on a
hand-computed case, under `mixed_bfloat16`, for `get_config` round trips and registry lookup.
"""

import numpy as np
import pytest

from keras_kd import losses as kd_losses
from keras_kd.losses import functional
from tests.losses.checks import assert_config_round_trip, run_under_mixed_bfloat16

T_HAND = np.array([[3.0, 1.0, -2.0]], dtype="float32")
S_HAND = np.array([[-1.0, 2.0, 0.5]], dtype="float32")


def np_log_softmax(z, T=1.0):
    z = np.asarray(z, dtype=np.float64) / T
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_kl(log_p, log_q):
    return (np.exp(log_p) * (log_p - log_q)).sum(-1)


def ref_reverse_kl(t, s, T):
    return T**2 * np_kl(np_log_softmax(s, T), np_log_softmax(t, T))


def ref_js(t, s, T):
    p, q = np.exp(np_log_softmax(t, T)), np.exp(np_log_softmax(s, T))
    m = (p + q) / 2
    return T**2 * 0.5 * ((p * np.log(p / m)).sum(-1) + (q * np.log(q / m)).sum(-1))


def ref_mse(t, s):
    return ((np.asarray(s, np.float64) - t) ** 2).mean(-1)


def ref_hard(t, s):
    return -np_log_softmax(s)[np.arange(len(t)), np.argmax(t, -1)]


def ref_dkd(t, s, labels, T, alpha, beta):
    """Zhao et al.'s reference code (mdistiller `dkd_loss`), per example, in NumPy."""
    gt = np.eye(t.shape[-1])[labels]
    p_t, p_s = np.exp(np_log_softmax(t, T)), np.exp(np_log_softmax(s, T))
    b_t = np.stack([(p_t * gt).sum(1), (p_t * (1 - gt)).sum(1)], 1)
    b_s = np.stack([(p_s * gt).sum(1), (p_s * (1 - gt)).sum(1)], 1)
    tckd = (b_t * (np.log(b_t) - np.log(b_s))).sum(1)
    nt_t = np.exp(np_log_softmax(t / T - 1000.0 * gt))
    log_nt_s = np_log_softmax(s / T - 1000.0 * gt)
    nckd = (nt_t * (np.log(np.where(nt_t > 0, nt_t, 1.0)) - log_nt_s) * (1 - gt)).sum(1)
    return T**2 * (alpha * tckd + beta * nckd)


def ref_dist(t, s, T, beta, gamma):
    """Huang et al.'s reference code (DIST_KD `DIST.forward`): batch loss as a scalar."""
    y_s, y_t = np.exp(np_log_softmax(s, T)), np.exp(np_log_softmax(t, T))

    def pearson_rows(a, b):
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-8)

    inter = 1 - pearson_rows(y_s, y_t).mean()
    intra = 1 - pearson_rows(y_s.T, y_t.T).mean()
    return T**2 * (beta * inter + gamma * intra)


# name → (class, kwargs, reference(t, s, labels) → batch-mean loss)
CASES = {
    "reverse_kl": (
        kd_losses.ReverseKL,
        {"temperature": 2.0},
        lambda t, s, y: ref_reverse_kl(t, s, 2.0).mean(),
    ),
    "js": (kd_losses.JSDivergence, {"temperature": 3.0}, lambda t, s, y: ref_js(t, s, 3.0).mean()),
    "mse_logits": (kd_losses.MSELogits, {}, lambda t, s, y: ref_mse(t, s).mean()),
    "hard": (kd_losses.HardDistillation, {}, lambda t, s, y: ref_hard(t, s).mean()),
    "dkd": (
        kd_losses.DKD,
        {"temperature": 4.0, "alpha": 1.0, "beta": 8.0},
        lambda t, s, y: ref_dkd(t, s, y, 4.0, 1.0, 8.0).mean(),
    ),
    "dist": (
        kd_losses.DIST,
        {"temperature": 2.0, "beta": 1.0, "gamma": 2.0},
        lambda t, s, y: ref_dist(t, s, 2.0, 1.0, 2.0),
    ),
}


def call_loss(loss, t, s, labels):
    if getattr(loss, "needs_labels", False):
        return loss({"logits": t, "labels": labels}, s)
    return loss(t, s)


@pytest.fixture
def logits(rng):
    t = rng.normal(scale=3.0, size=(16, 7)).astype("float32")
    s = rng.normal(scale=3.0, size=(16, 7)).astype("float32")
    labels = rng.integers(0, 7, size=16)
    return t, s, labels


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_numpy_reference(name, logits):
    cls, kwargs, reference = CASES[name]
    t, s, labels = logits
    value = call_loss(cls(**kwargs), t, s, labels)
    np.testing.assert_allclose(float(value), reference(t, s, labels), rtol=1e-5)


# Hand-computed on t=[3, 1, -2], s=[-1, 2, 0.5] (T=2 where a temperature applies, label 0 for DKD).
HAND = {
    # 4 · Σ q (log q - log p) with p = softmax(t/2), q = softmax(s/2)
    "reverse_kl": (kd_losses.ReverseKL(temperature=2.0), 2.894038),
    "js": (kd_losses.JSDivergence(temperature=2.0), 0.713643),
    # ((-1-3)² + (2-1)² + (0.5+2)²) / 3 = (16 + 1 + 6.25) / 3
    "mse_logits": (kd_losses.MSELogits(), 23.25 / 3),
    # argmax t = 0: -log_softmax(s)[0] = log(e^-1 + e^2 + e^0.5) + 1
    "hard": (kd_losses.HardDistillation(), np.log(np.exp(-1) + np.exp(2) + np.exp(0.5)) + 1),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_computed_case(name):
    loss, expected = HAND[name]
    np.testing.assert_allclose(float(loss(T_HAND, S_HAND)), expected, rtol=1e-5)


def test_dkd_hand_computed_case():
    # T=1, label 0. Teacher p = softmax([3,1,-2]), student q = softmax([-1,2,.5]).
    p = np.exp([3, 1, -2]) / np.exp([3, 1, -2]).sum()
    q = np.exp([-1, 2, 0.5]) / np.exp([-1, 2, 0.5]).sum()
    tckd = p[0] * np.log(p[0] / q[0]) + (1 - p[0]) * np.log((1 - p[0]) / (1 - q[0]))
    p_nt, q_nt = p[1:] / p[1:].sum(), q[1:] / q[1:].sum()
    nckd = (p_nt * np.log(p_nt / q_nt)).sum()
    loss = kd_losses.DKD(temperature=1.0, alpha=2.0, beta=3.0)
    value = loss({"logits": T_HAND, "labels": np.array([0])}, S_HAND)
    np.testing.assert_allclose(float(value), 2 * tckd + 3 * nckd, rtol=1e-5)
    # One-hot labels give the same value as sparse ones.
    one_hot = loss({"logits": T_HAND, "labels": np.array([[1.0, 0.0, 0.0]])}, S_HAND)
    np.testing.assert_allclose(float(one_hot), float(value), rtol=1e-6)


def test_dkd_equals_kd_when_weights_are_the_class_probability():
    # Zhao et al. eq. 3: KD = TCKD + (1 - p_g^T) · NCKD.
    t, s = T_HAND, S_HAND
    p_g = np.exp(np_log_softmax(t, 2.0))[0, 0]
    dkd = kd_losses.DKD(temperature=2.0, alpha=1.0, beta=1.0 - p_g)({"logits": t, "labels": [0]}, s)
    kd = kd_losses.KLDivergence(temperature=2.0)(t, s)
    np.testing.assert_allclose(float(dkd), float(kd), rtol=1e-5)


def test_dist_hand_computed_case():
    # Two examples, T=1: perfectly correlated rows and columns → 0; anti-correlated teacher → 2 each.
    s = np.array([[2.0, 0.0], [0.0, 2.0]], dtype="float32")
    np.testing.assert_allclose(float(kd_losses.DIST()(s, s)), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        float(kd_losses.DIST(beta=1.0, gamma=0.5)(s[::-1], s)), 2.0 + 0.5 * 2.0, rtol=1e-5
    )


def test_dkd_requires_labels():
    with pytest.raises(ValueError, match="needs the ground-truth labels"):
        kd_losses.DKD()(T_HAND, S_HAND)
    assert kd_losses.DKD.needs_labels and not getattr(kd_losses.KLDivergence, "needs_labels", False)


@pytest.mark.parametrize("name", ["reverse_kl", "js", "dkd", "dist"])
@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_temperature_is_validated(name, bad):
    with pytest.raises(ValueError, match=f"`temperature` must be > 0. Received: temperature={bad}"):
        kd_losses.get(name, temperature=bad)


def test_dkd_weights_are_validated():
    with pytest.raises(ValueError, match="`beta` must be >= 0. Received: beta=-1"):
        kd_losses.DKD(beta=-1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_round_trip_and_registry(name):
    cls, kwargs, _ = CASES[name]
    assert_config_round_trip(name, cls, kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_under_mixed_bfloat16(name, logits):
    cls, kwargs, reference = CASES[name]
    t, s, labels = logits
    value, (t_r, s_r) = run_under_mixed_bfloat16(
        lambda t16, s16: call_loss(cls(**kwargs), t16, s16, labels), t, s
    )
    assert value.dtype == "float32"
    # Same math on the bfloat16-rounded inputs: the loss itself runs in float32.
    np.testing.assert_allclose(float(value), reference(t_r, s_r, labels), rtol=1e-5)


@pytest.mark.parametrize(
    "fn",
    [
        functional.reverse_kl,
        functional.js_divergence,
        functional.mse_logits,
        functional.hard_distillation,
    ],
)
def test_functions_return_one_value_per_example(fn, logits):
    t, s, _ = logits
    assert tuple(fn(t, s).shape) == (16,)


def test_sample_weight_weights_examples(logits):
    t, s, _ = logits
    weights = np.zeros(16, dtype="float32")
    weights[3] = 16.0
    value = kd_losses.JSDivergence(temperature=3.0)(t, s, sample_weight=weights)
    np.testing.assert_allclose(float(value), ref_js(t[3:4], s[3:4], 3.0)[0], rtol=1e-5)
