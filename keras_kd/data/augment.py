"""Data augmentation for distillation: perturbed token ids and teacher-labelled unlabelled text.

Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT into Simple Neural Networks")
enlarge the transfer set with masked, replaced and n-gram-sampled copies of each sentence and let
the teacher label them; EDA (Wei & Zou 2019) adds random deletion and swaps. The functions here
work on padded `token_ids` batches with TF ops, so they run inside `tf.data` (`dataset.map`):

- `mask_tokens`: each token → `mask_id` with probability `rate`;
- `delete_tokens`: each token dropped with probability `rate` (the rest shift left, re-padded);
- `swap_tokens`: `num_swaps` random pairs of tokens exchanged;
- `sample_ngram`: with probability `rate`, keep only a random n-gram (n ≤ `max_n`).

Special tokens (`[CLS]`, `[SEP]`, padding: `special_ids`) are never touched.

Where the teacher runs matters:

- **Online KD** (`Distiller(student, teacher)`): augment a batch dict's `student_inputs` *and*
  `teacher_inputs` (or the shared `x`) and the teacher labels each augmented example: Tang et al.
- **Cached KD**: `augment_student_view` perturbs only the student's view of a cached dataset; the
  teacher's output is the one for the *clean* input (a consistency regularizer, cheaper but not
  the same signal). To cache teacher outputs for augmented copies, augment first
  (`expand_with_augmentations`) and cache after: each copy then has its own teacher output.
- **Unlabelled text**: `pseudo_label(teacher, dataset)` caches the teacher's soft labels (and
  optionally hard labels, confidence-filtered) for text without labels.
"""

import keras
import tensorflow as tf

from keras_kd.data import keys


def _check_rate(rate, name="rate"):
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]. Received: {name}={rate}")


def _editable(token_ids, special_ids):
    """True where a token may be changed (not a special token, not padding)."""
    token_ids = tf.convert_to_tensor(token_ids)
    editable = tf.ones_like(token_ids, dtype=tf.bool)
    for special in special_ids:
        editable &= tf.not_equal(token_ids, special)
    return editable


def mask_tokens(token_ids, mask_id, rate=0.1, special_ids=(0,), seed=None):
    """Replace each non-special token by `mask_id` with probability `rate` (BERT-style masking)."""
    _check_rate(rate)
    token_ids = tf.convert_to_tensor(token_ids)
    draw = tf.random.uniform(tf.shape(token_ids), seed=seed) < rate
    return tf.where(
        draw & _editable(token_ids, special_ids), tf.cast(mask_id, token_ids.dtype), token_ids
    )


def delete_tokens(token_ids, rate=0.1, pad_id=0, special_ids=(0,), seed=None):
    """Drop each non-special token with probability `rate`; survivors shift left, the end is re-padded.

    Works on a padded `(batch, length)` tensor; padding (`pad_id`) is removed and re-added.
    """
    _check_rate(rate)
    token_ids = tf.convert_to_tensor(token_ids)
    drop = (tf.random.uniform(tf.shape(token_ids), seed=seed) < rate) & _editable(
        token_ids, special_ids
    )
    keep = tf.logical_not(drop) & tf.not_equal(token_ids, pad_id)
    kept = tf.ragged.boolean_mask(token_ids, keep)
    return kept.to_tensor(default_value=pad_id, shape=tf.shape(token_ids))


def swap_tokens(token_ids, num_swaps=1, special_ids=(0,), seed=None):
    """Exchange `num_swaps` random pairs of non-special tokens in each row (EDA's random swap)."""
    if not isinstance(num_swaps, int) or num_swaps < 0:
        raise ValueError(
            f"`num_swaps` must be a non-negative integer. Received: num_swaps={num_swaps!r}"
        )
    token_ids = tf.convert_to_tensor(token_ids)
    editable = _editable(token_ids, special_ids)
    # Positions of editable tokens, per row, as a ragged tensor of column indices.
    columns = tf.ragged.boolean_mask(
        tf.broadcast_to(tf.range(tf.shape(token_ids)[1]), tf.shape(token_ids)), editable
    )
    counts = columns.row_lengths()
    rows = tf.range(tf.shape(token_ids)[0], dtype=tf.int64)
    for i in range(num_swaps):
        pick = tf.random.uniform(
            [2, tf.shape(token_ids)[0]], seed=None if seed is None else seed + i
        )
        a = tf.cast(tf.floor(pick[0] * tf.cast(counts, tf.float32)), tf.int64)
        b = tf.cast(tf.floor(pick[1] * tf.cast(counts, tf.float32)), tf.int64)
        valid = counts > 1
        a, b = tf.boolean_mask(a, valid), tf.boolean_mask(b, valid)
        valid_rows = tf.boolean_mask(rows, valid)
        col_a = tf.gather(columns, valid_rows).with_row_splits_dtype(tf.int64)
        pos_a = tf.gather(col_a.values, col_a.row_splits[:-1] + a)
        pos_b = tf.gather(col_a.values, col_a.row_splits[:-1] + b)
        index_a = tf.stack([valid_rows, tf.cast(pos_a, tf.int64)], axis=1)
        index_b = tf.stack([valid_rows, tf.cast(pos_b, tf.int64)], axis=1)
        value_a, value_b = tf.gather_nd(token_ids, index_a), tf.gather_nd(token_ids, index_b)
        token_ids = tf.tensor_scatter_nd_update(token_ids, index_a, value_b)
        token_ids = tf.tensor_scatter_nd_update(token_ids, index_b, value_a)
    return token_ids


def sample_ngram(token_ids, rate=0.25, max_n=5, pad_id=0, special_ids=(0,), seed=None):
    """With probability `rate` per row, keep only a random n-gram (1 ≤ n ≤ `max_n`) of its tokens.

    Tang et al. 2019's n-gram sampling; special tokens stay in place around the kept n-gram.
    """
    _check_rate(rate)
    if not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"`max_n` must be a positive integer. Received: max_n={max_n!r}")
    token_ids = tf.convert_to_tensor(token_ids)
    editable = _editable(token_ids, special_ids)
    batch = tf.shape(token_ids)[0]
    draws = tf.random.uniform([3, batch], seed=seed)
    counts = tf.reduce_sum(tf.cast(editable, tf.int32), axis=1)
    n = tf.minimum(1 + tf.cast(tf.floor(draws[0] * max_n), tf.int32), tf.maximum(counts, 1))
    start = tf.cast(tf.floor(draws[1] * tf.cast(counts - n + 1, tf.float32)), tf.int32)
    sampled = draws[2] < rate
    rank = tf.cumsum(tf.cast(editable, tf.int32), axis=1) - 1  # index among editable tokens
    inside = (rank >= start[:, None]) & (rank < (start + n)[:, None])
    keep = tf.logical_not(editable) | inside | tf.logical_not(sampled)[:, None]
    keep &= tf.not_equal(token_ids, pad_id)
    return tf.ragged.boolean_mask(token_ids, keep).to_tensor(
        default_value=pad_id, shape=tf.shape(token_ids)
    )


@keras.saving.register_keras_serializable(package="keras_kd")
class TokenAugmentation:
    """A configurable pipeline of the augmentations above for `{"token_ids", "padding_mask", ...}` dicts.

    Applied in order: n-gram sampling, deletion, swaps, masking. `padding_mask` is recomputed
    from the new ids (`!= pad_id`). Use with `dataset.map` or `augment_student_view`.

    Args:
        mask_id: id written by masking (e.g. `[MASK]` = 103 in BERT's vocabulary); None disables it.
        mask_rate, delete_rate, ngram_rate: probabilities in [0, 1].
        num_swaps: pairs of tokens swapped per example.
        max_n: longest n-gram kept by n-gram sampling.
        pad_id: padding id; `special_ids` (default: `pad_id` only) are never changed.
        seed: op-level seed.
    """

    def __init__(
        self,
        mask_id=None,
        mask_rate=0.0,
        delete_rate=0.0,
        num_swaps=0,
        ngram_rate=0.0,
        max_n=5,
        pad_id=0,
        special_ids=None,
        seed=None,
    ):
        for name, value in (
            ("mask_rate", mask_rate),
            ("delete_rate", delete_rate),
            ("ngram_rate", ngram_rate),
        ):
            _check_rate(value, name)
        if mask_rate > 0 and mask_id is None:
            raise ValueError(
                f"`mask_id` is required when `mask_rate` > 0. Received: mask_rate={mask_rate}, mask_id=None"
            )
        if not isinstance(num_swaps, int) or num_swaps < 0:
            raise ValueError(
                f"`num_swaps` must be a non-negative integer. Received: num_swaps={num_swaps!r}"
            )
        self.mask_id, self.mask_rate, self.delete_rate = (
            mask_id,
            float(mask_rate),
            float(delete_rate),
        )
        self.num_swaps, self.ngram_rate, self.max_n = num_swaps, float(ngram_rate), max_n
        self.pad_id, self.seed = pad_id, seed
        self.special_ids = tuple(special_ids) if special_ids is not None else (pad_id,)

    def augment_ids(self, token_ids):
        """Augmented copy of a `(batch, length)` id tensor."""
        specials = self.special_ids
        if self.ngram_rate:
            token_ids = sample_ngram(
                token_ids, self.ngram_rate, self.max_n, self.pad_id, specials, self.seed
            )
        if self.delete_rate:
            token_ids = delete_tokens(token_ids, self.delete_rate, self.pad_id, specials, self.seed)
        if self.num_swaps:
            token_ids = swap_tokens(token_ids, self.num_swaps, specials, self.seed)
        if self.mask_rate:
            token_ids = mask_tokens(token_ids, self.mask_id, self.mask_rate, specials, self.seed)
        return token_ids

    def __call__(self, inputs):
        if not isinstance(inputs, dict):
            return self.augment_ids(inputs)
        outputs = dict(inputs)
        outputs["token_ids"] = self.augment_ids(inputs["token_ids"])
        if "padding_mask" in inputs:
            outputs["padding_mask"] = tf.not_equal(outputs["token_ids"], self.pad_id)
        return outputs

    def get_config(self):
        return {
            "mask_id": self.mask_id,
            "mask_rate": self.mask_rate,
            "delete_rate": self.delete_rate,
            "num_swaps": self.num_swaps,
            "ngram_rate": self.ngram_rate,
            "max_n": self.max_n,
            "pad_id": self.pad_id,
            "special_ids": list(self.special_ids),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def augment_student_view(dataset, augmentation):
    """Apply `augmentation` to the student's inputs only, e.g. on a cached dataset.

    Trade-off: the cached teacher outputs stay those of the clean input (see module docstring).
    Works on batches whose `x` is a distillation dict (`student_inputs`) or plain inputs.
    """

    def apply(x, *rest):
        if keys.is_distillation_batch(x):
            x = {**x, keys.STUDENT_INPUTS: augmentation(x[keys.STUDENT_INPUTS])}
        else:
            x = augmentation(x)
        return (x, *rest) if rest else x

    return dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)


def expand_with_augmentations(dataset, augmentation, copies=1):
    """The dataset followed by `copies` augmented passes over it (a larger transfer set to cache).

    Each batch's whole `x` (both views when `x` is a distillation dict) is augmented, so a teacher
    run afterwards (online or `cache_teacher_outputs`) labels exactly what the student sees.
    """

    def augment_all(x, *rest):
        if keys.is_distillation_batch(x):
            x = {k: (v if k == keys.TEACHER_OUTPUTS else augmentation(v)) for k, v in x.items()}
        else:
            x = augmentation(x)
        return (x, *rest) if rest else x

    expanded = dataset
    for _ in range(copies):
        expanded = expanded.concatenate(
            dataset.map(augment_all, num_parallel_calls=tf.data.AUTOTUNE)
        )
    return expanded


def pseudo_label(
    teacher, dataset, *, hard_labels=True, min_confidence=None, batch_size=None, **cache_kwargs
):
    """Teacher-labelled unlabelled data: cache the teacher's soft labels (and hard labels).

    Args:
        teacher: the teacher (see `cache_teacher_outputs`).
        dataset: a batched `tf.data.Dataset` of inputs `x` (labels, if any, are ignored).
        hard_labels: also yield `y = argmax(teacher logits)`, so the student loss has labels and the
            result can be concatenated with a labelled cached dataset.
        min_confidence: keep only examples whose top teacher probability is ≥ this value.
        batch_size: batch size of the result (default: the source's).
        **cache_kwargs: passed to `cache_teacher_outputs` (`path`, `dtype`, `top_k`, `verbose`, ...).

    Returns:
        A dataset of `{"student_inputs", "teacher_outputs"}` (and `y` when `hard_labels`).
    """
    from keras_kd.data.cache import cache_teacher_outputs

    if min_confidence is not None and not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(
            f"`min_confidence` must be in [0, 1]. Received: min_confidence={min_confidence}"
        )
    inputs_only = dataset.map(lambda *element: element[0])
    first = next(iter(inputs_only.take(1)))
    source_batch_size = int(tf.shape(tf.nest.flatten(keys.student_view(first))[0])[0])
    cached = cache_teacher_outputs(teacher, inputs_only, **cache_kwargs)
    examples = cached.unbatch()
    if min_confidence is not None:
        threshold = float(min_confidence)

        def confident(x):
            return tf.reduce_max(tf.nn.softmax(x[keys.TEACHER_OUTPUTS]["logits"])) >= threshold

        examples = examples.filter(confident)
    if hard_labels:
        examples = examples.map(
            lambda x: (
                x,
                tf.argmax(x[keys.TEACHER_OUTPUTS]["logits"], axis=-1, output_type=tf.int32),
            )
        )
    return examples.batch(batch_size or source_batch_size).prefetch(tf.data.AUTOTUNE)
