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
    """sum p * (log p - log q), with 0 * (anything) = 0 where p underflows or logits are -inf."""
    p = ops.exp(log_p)
    terms = ops.where(p > 0, p * (log_p - log_q), ops.zeros_like(p))
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
