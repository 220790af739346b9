"""Distillation losses as pure functions (optax-style).

Every function takes the teacher's output first and the student's second, works on the last axis,
returns one value per example (no batch reduction: the `keras.losses.Loss` wrappers in
`keras_kd.losses` reduce, apply `sample_weight` and scale for `tf.distribute`), and computes in
float32 whatever the input dtype (float16 / bfloat16 logits under mixed precision are upcast first).
Probabilities are never logged: everything is done with `log_softmax`.
"""

from keras import ops


def _float32(x):
    x = ops.convert_to_tensor(x)
    if x.dtype != "float32":
        x = ops.cast(x, "float32")
    return x


def _scaled_log_softmax(logits, temperature, axis=-1):
    temperature = _float32(temperature)
    return ops.log_softmax(_float32(logits) / temperature, axis=axis)


def _plogp_minus_plogq(log_p, log_q, axis=-1):
    """sum p * (log p - log q), with 0 * (anything) = 0 where p underflows or logits are -inf.

    Only exact zeros are masked: a NaN teacher or student logit stays NaN in the value (so
    `NonFiniteLossGuard` sees it) instead of being silently zeroed while the gradient goes NaN.
    """
    p = ops.exp(log_p)
    terms = ops.where(p == 0, ops.zeros_like(p), p * (log_p - log_q))
    return ops.sum(terms, axis=axis)


def kl_divergence(teacher_logits, student_logits, temperature=1.0, axis=-1):
    """Hinton et al. 2015, "Distilling the Knowledge in a Neural Network".

    `T² · KL(softmax(t/T) ‖ softmax(s/T))` per example, in log-space. The `T²` factor keeps the
    gradient magnitude independent of `T` (Hinton 2015, section 2).

    Example: T=2, t=[3, 1, -2], s=[-1, 2, 0.5] → 3.3526.
    """
    log_p = _scaled_log_softmax(teacher_logits, temperature, axis)
    log_q = _scaled_log_softmax(student_logits, temperature, axis)
    temperature = _float32(temperature)
    return ops.square(temperature) * _plogp_minus_plogq(log_p, log_q, axis)


def soft_target_cross_entropy(teacher_logits, student_logits, temperature=1.0, axis=-1):
    """Hinton et al. 2015: cross-entropy with the teacher's softened distribution as the target.

    `-T² · Σ softmax(t/T) · log_softmax(s/T)` per example. Equals `kl_divergence` plus the teacher's
    entropy `T²·H(softmax(t/T))`, a constant for the student: same gradients, different value.
    """
    log_p = _scaled_log_softmax(teacher_logits, temperature, axis)
    log_q = _scaled_log_softmax(student_logits, temperature, axis)
    temperature = _float32(temperature)
    p = ops.exp(log_p)
    return -ops.square(temperature) * ops.sum(p * log_q, axis=axis)


_LOG_2 = 0.6931471805599453
# Logit added to masked-out classes: exp(-1e9) is 0 in float32 but stays finite (no NaN gradient).
_MASKED_LOGIT = -1e9


def reverse_kl(teacher_logits, student_logits, temperature=1.0, axis=-1):
    """Reverse KL, the mode-seeking direction (used by MiniLLM, Gu et al. 2024, for generative KD).

    `T² · KL(softmax(s/T) ‖ softmax(t/T))` per example, in log-space: the student is penalized for
    putting mass where the teacher has little, rather than for missing the teacher's modes.
    """
    return kl_divergence(student_logits, teacher_logits, temperature, axis)


def js_divergence(teacher_logits, student_logits, temperature=1.0, axis=-1):
    """Jensen-Shannon divergence between the softened teacher and student distributions.

    `T² · ½ [KL(p ‖ m) + KL(q ‖ m)]` with `p = softmax(t/T)`, `q = softmax(s/T)`, `m = (p + q) / 2`;
    `log m = logaddexp(log p, log q) - log 2`, so nothing leaves log-space. Symmetric and bounded by
    `T² · log 2`.
    """
    log_p = _scaled_log_softmax(teacher_logits, temperature, axis)
    log_q = _scaled_log_softmax(student_logits, temperature, axis)
    log_m = ops.logaddexp(log_p, log_q) - _LOG_2
    temperature = _float32(temperature)
    js = 0.5 * (_plogp_minus_plogq(log_p, log_m, axis) + _plogp_minus_plogq(log_q, log_m, axis))
    return ops.square(temperature) * js


def mse_logits(teacher_logits, student_logits, axis=-1):
    """Logit regression, Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?".

    `mean_c (s_c - t_c)²` per example (the high-temperature limit of KD, Hinton 2015 section 2.1).
    """
    return ops.mean(ops.square(_float32(student_logits) - _float32(teacher_logits)), axis=axis)


def _label_mask(labels, logits):
    """A float32 one-hot mask of the ground-truth class from sparse (or one-hot) `labels`."""
    labels = ops.convert_to_tensor(labels)
    num_classes = ops.shape(logits)[-1]
    if len(labels.shape) == len(logits.shape):
        if labels.shape[-1] == 1:
            labels = ops.squeeze(labels, axis=-1)
        else:  # one-hot or soft labels: the target class is the argmax
            labels = ops.argmax(labels, axis=-1)
    return ops.one_hot(ops.cast(labels, "int32"), num_classes, dtype="float32")


def dkd(teacher_logits, student_logits, labels, temperature=4.0, alpha=1.0, beta=8.0):
    """Decoupled KD, Zhao et al. 2022, "Decoupled Knowledge Distillation" (CVPR).

    KD splits into a target-class term and a non-target term that are weighted separately:

        TCKD = T² · KL([p_g, 1 - p_g]^T ‖ [p_g, 1 - p_g]^S)      binary target/rest probabilities
        NCKD = T² · KL(p̂^T ‖ p̂^S)      p̂ = softmax over the non-target classes only
        DKD  = alpha · TCKD + beta · NCKD

    with `p = softmax(z/T)` and `g` the ground-truth class (`labels`: sparse ids, or one-hot).
    `log(1 - p_g)` is the log-sum-exp of the non-target log-probabilities, so it stays accurate when
    `p_g → 1`. Classes are on the last axis of 2-D logits.
    """
    mask = _label_mask(labels, teacher_logits)
    log_p_t = _scaled_log_softmax(teacher_logits, temperature)
    log_p_s = _scaled_log_softmax(student_logits, temperature)

    def binary(log_p):
        log_target = ops.sum(log_p * mask, axis=-1, keepdims=True)
        log_rest = ops.logsumexp(ops.where(mask > 0, _MASKED_LOGIT, log_p), axis=-1, keepdims=True)
        return ops.concatenate([log_target, log_rest], axis=-1)

    tckd = _plogp_minus_plogq(binary(log_p_t), binary(log_p_s))
    # Non-target distribution: drop the target class (its logit → -1e9) and renormalize.
    log_nt_t = ops.log_softmax(ops.where(mask > 0, _MASKED_LOGIT, log_p_t), axis=-1)
    log_nt_s = ops.log_softmax(ops.where(mask > 0, _MASKED_LOGIT, log_p_s), axis=-1)
    nckd = _plogp_minus_plogq(log_nt_t, log_nt_s)
    temperature = _float32(temperature)
    return ops.square(temperature) * (_float32(alpha) * tckd + _float32(beta) * nckd)


def _safe_norm(x, axis, keepdims=False, tiny=1e-24):
    """L2 norm with a finite gradient at 0 (sqrt of a sum clipped at `tiny`, not after)."""
    return ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=keepdims), tiny))


def _pearson(a, b, axis, eps=1e-8):
    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    norms = _safe_norm(a, axis) * _safe_norm(b, axis)
    return ops.sum(a * b, axis=axis) / (norms + eps)


def dist(teacher_logits, student_logits, temperature=1.0, beta=1.0, gamma=1.0):
    """DIST, Huang et al. 2022, "Knowledge Distillation from A Stronger Teacher" (NeurIPS).

    Matches relations instead of exact probabilities, with `y = softmax(z/T)` on (batch, classes):

        inter = T² · (1 - pearson(y^S_i, y^T_i))              per example i (row)
        intra = T² · mean_c (1 - pearson(y^S_{:,c}, y^T_{:,c}))   over the batch, per class c
        DIST  = beta · inter + gamma · intra

    Returns one value per example: its inter term plus the batch's intra term (the same for every
    example), so the batch mean is the paper's loss. The intra term couples the examples of a batch:
    with `tf.distribute` it is computed per replica, and `sample_weight` weights only the inter term.
    """
    y_t = ops.exp(_scaled_log_softmax(teacher_logits, temperature))
    y_s = ops.exp(_scaled_log_softmax(student_logits, temperature))
    inter = 1.0 - _pearson(y_s, y_t, axis=-1)
    intra = 1.0 - ops.mean(_pearson(y_s, y_t, axis=0))
    temperature = _float32(temperature)
    return ops.square(temperature) * (_float32(beta) * inter + _float32(gamma) * intra)


def hard_distillation(teacher_logits, student_logits, axis=-1):
    """Hard-label distillation, Touvron et al. 2021 (DeiT, "Training data-efficient image
    transformers & distillation through attention", section 5.2).

    Cross-entropy with the teacher's argmax as the label: `-log_softmax(s)[argmax t]` per example.
    """
    num_classes = ops.shape(teacher_logits)[axis]
    hard = ops.one_hot(ops.argmax(_float32(teacher_logits), axis=axis), num_classes, axis=axis, dtype="float32")
    return -ops.sum(hard * ops.log_softmax(_float32(student_logits), axis=axis), axis=axis)


# ---------------------------------------------------------------- intermediate layers
# Feature functions take (batch, [positions...], features) tensors and an optional padding `mask`
# (batch, positions) with 1 for real tokens and 0 for padding; padded positions change nothing.


def _masked_mean_per_example(values, mask=None):
    """Mean over every axis but the batch axis; with a (batch, positions) `mask`, over real positions."""
    values = _float32(values)
    batch_axes = tuple(range(1, len(values.shape)))
    if mask is None or len(values.shape) < 2:
        return ops.mean(values, axis=batch_axes) if batch_axes else values
    mask = _float32(mask)
    while len(mask.shape) < len(values.shape):
        mask = ops.expand_dims(mask, -1)
    mask = ops.broadcast_to(mask, ops.shape(values))
    return ops.sum(values * mask, axis=batch_axes) / ops.maximum(ops.sum(mask, axis=batch_axes), 1.0)


def hidden_state_mse(teacher_features, student_features, mask=None):
    """FitNets hint loss, Romero et al. 2015 (and TinyBERT's hidden-state loss, Jiao et al. 2020).

    `mean_{positions, d} (h^S - h^T)²` per example over real (unpadded) positions; the student's
    features are projected to the teacher's width beforehand by `HiddenStateMSE`.
    """
    error = ops.mean(ops.square(_float32(student_features) - _float32(teacher_features)), axis=-1)
    return _masked_mean_per_example(error, mask)


def cosine_embedding(teacher_features, student_features, mask=None, eps=1e-12):
    """Cosine embedding loss (DistilBERT, Sanh et al. 2019): `mean_positions (1 - cos(h^S, h^T))`."""
    t, s = _float32(teacher_features), _float32(student_features)
    dot = ops.sum(t * s, axis=-1)
    norms = _safe_norm(t, -1) * _safe_norm(s, -1)
    return _masked_mean_per_example(1.0 - dot / ops.maximum(norms, eps), mask)


def _attention_map(features, mask, p, eps=1e-12):
    """AT's spatial map: `mean_c |F|^p`, flattened, padding zeroed, L2-normalized per example."""
    a = ops.mean(ops.power(ops.abs(_float32(features)), p), axis=-1)
    if mask is not None:
        a = a * _float32(mask)
    a = ops.reshape(a, (ops.shape(a)[0], -1))
    return a / ops.maximum(_safe_norm(a, -1, keepdims=True), eps)


def attention_transfer(teacher_features, student_features, mask=None, p=2.0):
    """Activation-based attention transfer, Zagoruyko & Komodakis 2017 ("Paying More Attention to
    Attention", ICLR).

    With `Q = vec(mean_c |F|^p) / ‖vec(mean_c |F|^p)‖₂` over the spatial (or sequence) positions of
    channels-last features: `mean_positions (Q^S - Q^T)²` per example (the reference code's
    `(at(x) - at(y)).pow(2).mean()`; the paper weights it by β/2 with β = 1000). Channel counts may
    differ; spatial sizes must match. Padded positions are zeroed and excluded from the mean.
    """
    diff = ops.square(_attention_map(student_features, mask, p) - _attention_map(teacher_features, mask, p))
    if mask is None:
        return ops.mean(diff, axis=-1)
    mask = ops.reshape(_float32(mask), (ops.shape(diff)[0], -1))
    return ops.sum(diff, axis=-1) / ops.maximum(ops.sum(mask, axis=-1), 1.0)


def _attention_masks(mask):
    """(batch, 1, q, 1) query and (batch, 1, 1, k) key masks from a (batch, length) padding mask."""
    mask = _float32(mask)
    return mask[:, None, :, None], mask[:, None, None, :]


def attention_mse(teacher_attention, student_attention, mask=None):
    """TinyBERT attention loss, Jiao et al. 2020: `mean_{h, q, k} (A^S - A^T)²` per example.

    Attention maps are (batch, heads, queries, keys); with a padding `mask` only real query/key
    pairs count.
    """
    error = ops.square(_float32(student_attention) - _float32(teacher_attention))
    if mask is None:
        return ops.mean(error, axis=(1, 2, 3))
    query_mask, key_mask = _attention_masks(mask)
    pairs = ops.broadcast_to(query_mask * key_mask, ops.shape(error))
    return ops.sum(error * pairs, axis=(1, 2, 3)) / ops.maximum(ops.sum(pairs, axis=(1, 2, 3)), 1.0)


def attention_kl(teacher_attention, student_attention, mask=None, from_logits=False):
    """MiniLM self-attention distillation, Wang et al. 2020: `mean_{h, q} KL(A^T_{h,q} ‖ A^S_{h,q})`.

    Maps are (batch, heads, queries, keys) attention probabilities, or attention scores with
    `from_logits=True` (then log-softmaxed over the real keys only). With a padding `mask`, padded
    keys are dropped from each distribution and padded queries from the mean.
    """
    t, s = _float32(teacher_attention), _float32(student_attention)
    if mask is None:
        query_mask = key_mask = None
    else:
        query_mask, key_mask = _attention_masks(mask)
    if from_logits:
        if key_mask is not None:
            t = ops.where(key_mask > 0, t, _MASKED_LOGIT)
            s = ops.where(key_mask > 0, s, _MASKED_LOGIT)
        log_t, log_s = ops.log_softmax(t, axis=-1), ops.log_softmax(s, axis=-1)
    else:
        tiny = 1e-30
        log_t, log_s = ops.log(ops.maximum(t, tiny)), ops.log(ops.maximum(s, tiny))
        if key_mask is not None:
            log_t = ops.where(key_mask > 0, log_t, _MASKED_LOGIT)
            log_s = ops.where(key_mask > 0, log_s, _MASKED_LOGIT)
    rows = _plogp_minus_plogq(log_t, log_s)  # (batch, heads, queries)
    if query_mask is None:
        return ops.mean(rows, axis=(1, 2))
    query_mask = ops.broadcast_to(query_mask[..., 0], ops.shape(rows))
    return ops.sum(rows * query_mask, axis=(1, 2)) / ops.maximum(ops.sum(query_mask, axis=(1, 2)), 1.0)
