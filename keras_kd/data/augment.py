"""Data augmentation for distillation: perturbed token ids and teacher-labelled unlabelled text.

Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT into Simple Neural Networks")
enlarge the transfer set with masked, replaced and n-gram-sampled copies of each sentence and let
the teacher label them; EDA (Wei & Zou 2019) adds random deletion and swaps. The functions here
work on padded `token_ids` batches with TF ops, so they run inside `tf.data` (`dataset.map`):

- `mask_tokens`: each token → `mask_id` with probability `rate`;
- `delete_tokens`: each token dropped with probability `rate` (the rest shift left, re-padded);
- `swap_tokens`: `num_swaps` random pairs of tokens exchanged;
- `sample_ngram`: with probability `rate`, keep only a random n-gram (n ≤ `max_n`).

`augment_texts` makes the same kinds of copies from raw strings (n-gram sampling, deletion, swaps),
before any tokenizer: every teacher then reads a copy through its own preprocessing.

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

Images (consistent views, Beyer et al. 2022, "Knowledge distillation: A good teacher is patient
and consistent"): `RandomShift`, `RandomFlip`, `MixUp`, `CutMix` and `Compose` are seeded Keras
layers for `Distiller(augmentation=...)`, which applies them once per train batch so the teacher
and the student see the *same* view (function matching), and for
`cache_teacher_outputs(..., views=K, augmentation=...)`, which caches the teacher's outputs for K
views. `MixUp` and `CutMix` set `mixes_examples = True`: a mixed image has no single label, so the
Distiller drops the label term on their batches. Called on a labelled batch
`{"images": ..., "labels": ...}` (the `keras.layers.MixUp` convention) they also mix the labels
with the images' weights (for training without a teacher, e.g. a fair scratch baseline): labels are
one-hot / probability rows, or integer class ids with `num_classes=`. The math is in pure functions (`shift_images`,
`flip_images`, `mix_images`, `cut_and_paste`) that take the random draws as arguments; the layers
draw them from a `keras.random.SeedGenerator` (or from an explicit `seed=` call argument: a
stateless `[2]` seed, so a cache can give view `k` of batch `b` the seed `[k, b]`).
"""

import copy
import functools

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


def augment_text(text, rng, delete_rate=0.1, num_swaps=2, ngram_rate=0.25):
    """One perturbed copy of a string, character by character (Tang et al. 2019 on raw text).

    In this order: with probability `ngram_rate` keep a random contiguous span of at least a third
    of the characters (n-gram sampling); drop each character with probability `delete_rate` (at
    least one stays); exchange `num_swaps` random pairs of neighbours. `rng` is a
    `numpy.random.Generator`: the same generator state gives the same copy.

    Working on strings (not token ids) lets every teacher read the copy through its own
    preprocessing (a word segmenter, a WordPiece vocabulary) and a cache of teacher outputs be keyed
    by the text itself.
    """
    chars = list(str(text))
    if len(chars) > 4 and rng.random() < ngram_rate:
        n = int(rng.integers(max(2, len(chars) // 3), len(chars) + 1))
        start = int(rng.integers(0, len(chars) - n + 1))
        chars = chars[start : start + n]
    chars = [c for c in chars if rng.random() >= delete_rate] or chars[:1]
    for _ in range(num_swaps):
        if len(chars) > 1:
            i = int(rng.integers(0, len(chars) - 1))
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def augment_texts(texts, copies=1, seed=0, delete_rate=0.1, num_swaps=2, ngram_rate=0.25):
    """`copies` perturbed copies of every string (`augment_text`): a list of `copies` lists, each
    aligned with `texts`. One generator seeded with `seed` draws copy 1 of every text, then copy 2, ...,
    so the result depends only on the texts, their order and the arguments."""
    import numpy as np

    _check_rate(delete_rate, "delete_rate")
    _check_rate(ngram_rate, "ngram_rate")
    if int(copies) < 1 or int(copies) != copies:
        raise ValueError(f"`copies` must be an integer >= 1. Received: copies={copies!r}")
    if int(num_swaps) < 0 or int(num_swaps) != num_swaps:
        raise ValueError(f"`num_swaps` must be an integer >= 0. Received: num_swaps={num_swaps!r}")
    rng = np.random.default_rng(seed)
    return [[augment_text(t, rng, delete_rate, int(num_swaps), ngram_rate) for t in texts] for _ in range(int(copies))]


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
    run afterwards (online or `cache_teacher_outputs`) labels exactly what the student sees. The
    batches of a copy are augmented one after the other, so its random draws follow the batch
    order: the same seeds give the same transfer set in every run (a parallel map would let its
    threads draw from the shared random state in whatever order they run).
    """

    def augment_all(x, *rest, augmentation=augmentation):
        if keys.is_distillation_batch(x):
            x = {k: (v if k == keys.TEACHER_OUTPUTS else augmentation(v)) for k, v in x.items()}
        else:
            x = augmentation(x)
        return (x, *rest) if rest else x

    expanded = dataset
    for index in range(copies):
        expanded = expanded.concatenate(
            dataset.map(functools.partial(augment_all, augmentation=_reseeded(augmentation, index)))
        )
    return expanded


def _reseeded(augmentation, index):
    """`augmentation` with an op-level seed of its own for augmented copy `index`.

    Each `dataset.map` traces a new graph whose random ops get the same seeds (from the op seed, or
    from the global seed and the op's position), so without this every copy would repeat the same
    draws: K identical copies instead of K different ones.
    """
    if not hasattr(augmentation, "seed"):
        return augmentation
    view = copy.copy(augmentation)
    view.seed = (augmentation.seed or 0) + 104729 * (index + 1)
    return view


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


# ---------------------------------------------------------------- images
def _as_images(images, image_shape):
    """`images` as a `(batch, height, width, channels)` float tensor, and a function undoing that."""
    images = tf.convert_to_tensor(images)
    original_shape, original_dtype = tf.shape(images), images.dtype
    if not images.dtype.is_floating:
        images = tf.cast(images, "float32")
    if image_shape is not None:
        images = tf.reshape(images, [-1, *image_shape])
    if images.shape.rank == 3:
        images = images[..., None]
    if images.shape.rank != 4:
        raise ValueError(
            "Image augmentations expect images of shape (batch, height, width[, channels]), or flat "
            "vectors with `image_shape=(height, width[, channels])`. "
            f"Received: inputs of shape {tuple(images.shape)}, image_shape={image_shape}"
        )

    def restore(result):
        result = tf.reshape(result, original_shape)
        return result if original_dtype.is_floating else tf.cast(tf.round(result), original_dtype)

    return images, restore


def shift_images(images, offsets, max_shift, fill_value=0.0):
    """Translate each image by whole pixels: pad by `max_shift` with `fill_value`, crop at `offsets`.

    Args:
        images: `(batch, height, width, channels)`.
        offsets: `(batch, 2)` integers in `[0, 2 * max_shift]`: the crop's top-left corner in the padded
            image; `(max_shift, max_shift)` is the identity, row offset `max_shift + d` moves the
            content up by `d` pixels.
        max_shift: padding on each side.
    """
    images = tf.convert_to_tensor(images)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    pad = [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]]
    padded = tf.pad(images, pad, constant_values=tf.cast(fill_value, images.dtype))
    offsets = tf.cast(offsets, "int32")
    rows = offsets[:, :1] + tf.range(height)[None, :]
    columns = offsets[:, 1:] + tf.range(width)[None, :]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, columns, axis=2, batch_dims=1)


def flip_images(images, flip):
    """Mirror the images where `flip` (`(batch,)` bools) is true, left to right."""
    images = tf.convert_to_tensor(images)
    return tf.where(tf.reshape(flip, [-1, 1, 1, 1]), tf.reverse(images, axis=[2]), images)


def mix_images(images, partners, weights):
    """Mixup (Zhang et al. 2018): `weights[i] · images[i] + (1 - weights[i]) · images[partners[i]]`."""
    images = tf.convert_to_tensor(images)
    weights = tf.reshape(tf.cast(weights, images.dtype), [-1, 1, 1, 1])
    return weights * images + (1.0 - weights) * tf.gather(images, partners)


def cut_and_paste(images, partners, boxes):
    """CutMix (Yun et al. 2019): paste the box `[top, left, bottom, right)` of `images[partners[i]]`
    into `images[i]`. `boxes` is `(batch, 4)` integers in pixels."""
    images = tf.convert_to_tensor(images)
    boxes = tf.cast(boxes, "int32")
    rows = tf.range(tf.shape(images)[1])[None, :, None]
    columns = tf.range(tf.shape(images)[2])[None, None, :]
    top, left, bottom, right = (boxes[:, i, None, None] for i in range(4))
    inside = (rows >= top) & (rows < bottom) & (columns >= left) & (columns < right)
    return tf.where(inside[..., None], tf.gather(images, partners), images)


def mix_labels(labels, partners, weights):
    """Mixup's targets: `weights[i] · labels[i] + (1 - weights[i]) · labels[partners[i]]`.

    `labels` is `(batch, classes)` (one-hot or probabilities); `weights` the images' mixing weights
    (for CutMix: the fraction of each image that is *not* pasted, `1 - box_fraction`).
    """
    labels = tf.convert_to_tensor(labels)
    weights = tf.reshape(tf.cast(weights, labels.dtype), [-1, 1])
    return weights * labels + (1.0 - weights) * tf.gather(labels, partners)


def box_fraction(boxes, height, width):
    """The fraction of a `height × width` image covered by each box `[top, left, bottom, right)`."""
    boxes = tf.cast(boxes, "float32")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return area / tf.cast(height * width, "float32")


def _gamma(shape, concentration, seed, proposals=8):
    """Gamma(c, 1) draws by Marsaglia & Tsang (2000), vectorized over a fixed number of proposals.

    Written with stateless normal/uniform ops only, so it compiles under XLA (`jit_compile=True`),
    where `tf.random.stateless_gamma` does not. Each proposal is accepted with probability > 0.95
    for c ≥ 1; if all `proposals` are rejected (probability < 1e-10) the draw is the mean, c.
    For c < 1: Gamma(c) = Gamma(c + 1) · U^(1/c).
    """
    boost = concentration < 1.0
    c = concentration + 1.0 if boost else concentration
    d = c - 1.0 / 3.0
    scale = 1.0 / (9.0 * d) ** 0.5
    seeds = tf.random.experimental.stateless_split(seed, 3)
    x = tf.random.stateless_normal([proposals, *shape], seeds[0])
    u = tf.random.stateless_uniform([proposals, *shape], seeds[1], minval=1e-12, maxval=1.0)
    v = (1.0 + scale * x) ** 3
    safe_v = tf.maximum(v, 1e-12)
    accept = (v > 0) & (tf.math.log(u) < 0.5 * x**2 + d - d * safe_v + d * tf.math.log(safe_v))
    first = tf.argmax(tf.cast(accept, "int32"), axis=0)  # index of the first accepted proposal
    value = tf.reduce_sum(tf.one_hot(first, proposals, axis=0) * d * safe_v, axis=0)
    value = tf.where(tf.reduce_any(accept, axis=0), value, c)
    if boost:
        value *= tf.random.stateless_uniform(shape, seeds[2], minval=1e-12, maxval=1.0) ** (
            1.0 / concentration
        )
    return value


def _beta(shape, concentration, seed):
    """Beta(c, c) draws from a stateless seed (the ratio of two gammas)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    a = _gamma(shape, concentration, seeds[0])
    b = _gamma(shape, concentration, seeds[1])
    return a / (a + b)


def _partners(batch, seed):
    """A random permutation of `range(batch)` from a stateless seed."""
    return tf.argsort(tf.random.stateless_uniform([batch], seed))


class ImageAugmentation(keras.layers.Layer):
    """Base of the seeded image augmentations: draws, then calls a pure function.

    Inputs are `(batch, height, width[, channels])` images, or flat `(batch, features)` vectors
    with `image_shape` (e.g. `(28, 28)` for an MLP on MNIST); the output has the input's shape and
    dtype. Call with `seed=[a, b]` (a stateless seed) for draws that depend on that seed only;
    without it, draws come from the layer's `keras.random.SeedGenerator(seed)`, so a layer built
    with the same `seed` gives the same sequence of views.
    """

    #: True for augmentations that blend several examples into one (the label term is dropped).
    mixes_examples = False

    def __init__(self, seed=None, image_shape=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = seed
        self.image_shape = tuple(int(d) for d in image_shape) if image_shape is not None else None
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _stateless_seed(self, seed):
        if seed is None:
            seed = self.seed_generator.next()
        elif isinstance(seed, int):
            seed = [seed, 0]
        return tf.cast(seed, "int64")

    def call(self, inputs, seed=None):
        if isinstance(inputs, dict) and "images" in inputs:
            return self._call_labelled(inputs, self._stateless_seed(seed))
        images, restore = _as_images(inputs, self.image_shape)
        return restore(self.augment_images(images, self._stateless_seed(seed)))

    def _call_labelled(self, inputs, seed):
        """`{"images", "labels", ...}` → the same dict with augmented images (labels unchanged here)."""
        images, restore = _as_images(inputs["images"], self.image_shape)
        return {**inputs, "images": restore(self.augment_images(images, seed))}

    def augment_images(self, images, seed):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "image_shape": self.image_shape}


@keras.saving.register_keras_serializable(package="keras_kd")
class RandomShift(ImageAugmentation):
    """Random translation by up to `max_shift` pixels in each direction (pad-and-crop).

    The 28×28 equivalent of the "random crop with padding" of CIFAR training; `fill_value` fills
    the uncovered border (0 = background for MNIST / Fashion-MNIST).
    """

    def __init__(self, max_shift=2, fill_value=0.0, seed=None, image_shape=None, **kwargs):
        super().__init__(seed=seed, image_shape=image_shape, **kwargs)
        if not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(
                f"`max_shift` must be a non-negative integer. Received: max_shift={max_shift!r}"
            )
        self.max_shift, self.fill_value = max_shift, float(fill_value)

    def augment_images(self, images, seed):
        offsets = tf.random.stateless_uniform(
            [tf.shape(images)[0], 2], seed, minval=0, maxval=2 * self.max_shift + 1, dtype="int32"
        )
        return shift_images(images, offsets, self.max_shift, self.fill_value)

    def get_config(self):
        return {**super().get_config(), "max_shift": self.max_shift, "fill_value": self.fill_value}


@keras.saving.register_keras_serializable(package="keras_kd")
class RandomFlip(ImageAugmentation):
    """Mirror each image left to right with probability `rate` (not for digits or text images)."""

    def __init__(self, rate=0.5, seed=None, image_shape=None, **kwargs):
        super().__init__(seed=seed, image_shape=image_shape, **kwargs)
        _check_rate(rate)
        self.rate = float(rate)

    def augment_images(self, images, seed):
        return flip_images(
            images, tf.random.stateless_uniform([tf.shape(images)[0]], seed) < self.rate
        )

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class _MixingAugmentation(ImageAugmentation):
    """Base of augmentations that mix pairs of examples with a Beta(`concentration`, `concentration`)
    weight; `mixes_examples = True`.

    Subclasses implement `mix(images, seed)` → `(mixed images, partners, weights)`, where
    `weights[i]` is the share of image `i` that is its own; `augment_images` keeps the images, and
    a labelled batch `{"images", "labels"}` gets `mix_labels(labels, partners, weights)` too.
    """

    mixes_examples = True

    def __init__(self, concentration=1.0, num_classes=None, seed=None, image_shape=None, **kwargs):
        super().__init__(seed=seed, image_shape=image_shape, **kwargs)
        if not float(concentration) > 0:
            raise ValueError(
                f"`concentration` must be > 0. Received: concentration={concentration}"
            )
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(
                f"`num_classes` must be an integer >= 2 or None. Received: num_classes={num_classes!r}"
            )
        self.concentration = float(concentration)
        self.num_classes = num_classes

    def mix(self, images, seed):
        raise NotImplementedError

    def augment_images(self, images, seed):
        return self.mix(images, seed)[0]

    def _call_labelled(self, inputs, seed):
        if "labels" not in inputs:
            raise ValueError(
                f"A batch dict for {type(self).__name__} needs `labels` next to `images` (to mix them). "
                f"Received keys: {sorted(inputs)}"
            )
        labels = tf.convert_to_tensor(inputs["labels"])
        if labels.dtype.is_integer:
            if self.num_classes is None:
                raise ValueError(
                    f"{type(self).__name__} got integer labels of shape {tuple(labels.shape)}; mixing needs "
                    "one-hot (or probability) rows, or `num_classes=` to one-hot the class ids. "
                    f"Received: labels dtype {labels.dtype.name}, num_classes=None"
                )
            labels = tf.one_hot(tf.reshape(labels, [-1]), self.num_classes)
        elif labels.shape.rank != 2:
            raise ValueError(
                f"{type(self).__name__} mixes labels of shape (batch, classes) or integer class ids. "
                f"Received: labels of shape {tuple(labels.shape)}"
            )
        images, restore = _as_images(inputs["images"], self.image_shape)
        mixed, partners, weights = self.mix(images, seed)
        return {**inputs, "images": restore(mixed), "labels": mix_labels(labels, partners, weights)}

    def get_config(self):
        return {
            **super().get_config(),
            "concentration": self.concentration,
            "num_classes": self.num_classes,
        }


@keras.saving.register_keras_serializable(package="keras_kd")
class MixUp(_MixingAugmentation):
    """Mixup: each image blended with a random partner of its batch.

    The weight of image `i` is drawn per example from Beta(`concentration`, `concentration`)
    (1.0 = uniform). On an image tensor it mixes the inputs only; `mixes_examples = True`: in a
    `Distiller` the batch is learned from the teacher's outputs on the mixed images alone (function
    matching, Beyer et al. 2022). On a labelled batch `{"images": x, "labels": y}` it returns the
    mixed images and the labels mixed with the same weights (Zhang et al. 2018), for training
    without a teacher; integer `y` needs `num_classes`.
    """

    def mix(self, images, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2)
        batch = tf.shape(images)[0]
        weights = _beta([batch], self.concentration, seeds[0])
        partners = _partners(batch, seeds[1])
        return mix_images(images, partners, weights), partners, weights


@keras.saving.register_keras_serializable(package="keras_kd")
class CutMix(_MixingAugmentation):
    """CutMix: a random box of a random partner pasted into each image.

    The box covers a fraction `1 - lambda` of the image, `lambda ~ Beta(concentration,
    concentration)` per example, centred uniformly and clipped at the border (Yun et al. 2019).
    `mixes_examples = True` (see `MixUp`). On a labelled batch the label weight of image `i` is the
    share of it left uncovered after clipping, `1 - box_fraction(box)` (Yun et al. 2019).
    """

    def mix(self, images, seed):
        seeds = tf.random.experimental.stateless_split(seed, 3)
        batch = tf.shape(images)[0]
        size = tf.cast(tf.shape(images)[1:3], "float32")
        cut = (
            tf.sqrt(1.0 - _beta([batch], self.concentration, seeds[0]))[:, None] * size
        )  # (batch, 2)
        centre = tf.random.stateless_uniform([batch, 2], seeds[1]) * size
        low = tf.clip_by_value(tf.round(centre - cut / 2), 0.0, size)
        high = tf.clip_by_value(tf.round(centre + cut / 2), 0.0, size)
        boxes = tf.cast(tf.concat([low, high], axis=1), "int32")
        partners = _partners(batch, seeds[2])
        weights = 1.0 - box_fraction(boxes, tf.shape(images)[1], tf.shape(images)[2])
        return cut_and_paste(images, partners, boxes), partners, weights


@keras.saving.register_keras_serializable(package="keras_kd")
class Compose(keras.layers.Layer):
    """Apply several augmentations in order; `mixes_examples` if any of them mixes examples.

    With `seed=[a, b]` each step gets its own seed split from it.
    """

    def __init__(self, augmentations, **kwargs):
        super().__init__(**kwargs)
        self.augmentations = [
            keras.saving.deserialize_keras_object(a) if isinstance(a, dict) else a
            for a in augmentations
        ]
        for augmentation in self.augmentations:
            if not callable(augmentation):
                raise TypeError(f"Each augmentation must be callable. Received: {augmentation!r}")
        self.mixes_examples = any(getattr(a, "mixes_examples", False) for a in self.augmentations)

    def call(self, inputs, seed=None):
        seeds = None
        if seed is not None:
            seed = [seed, 0] if isinstance(seed, int) else seed
            seeds = tf.random.experimental.stateless_split(
                tf.cast(seed, "int64"), len(self.augmentations)
            )
        for i, augmentation in enumerate(self.augmentations):
            inputs = augmentation(inputs) if seeds is None else augmentation(inputs, seed=seeds[i])
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "augmentations": [keras.saving.serialize_keras_object(a) for a in self.augmentations],
        }


IMAGE_AUGMENTATIONS = {"shift": RandomShift, "flip": RandomFlip, "mixup": MixUp, "cutmix": CutMix}


def image_augmentation(spec, seed=None, image_shape=None):
    """An image augmentation from a config value.

    `spec` is a callable (returned as is), None / `"none"` (None), a name (`"shift"`, `"flip"`,
    `"mixup"`, `"cutmix"`), names joined by `+` (`"shift+flip+mixup"`), or a list of names and
    dicts (`[{"name": "shift", "max_shift": 3}, "flip"]`). Each step gets `seed + i` (when a seed
    is given) and `image_shape`.
    """
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str):
        if spec.strip().lower() == "none":
            return None
        spec = [part.strip() for part in spec.split("+")]
    if isinstance(spec, dict):
        spec = [spec]
    steps = []
    for i, item in enumerate(spec):
        kwargs = dict(item) if isinstance(item, dict) else {"name": item}
        name = kwargs.pop("name", None)
        if name not in IMAGE_AUGMENTATIONS:
            raise ValueError(
                f"Unknown image augmentation {name!r}. Expected one of {sorted(IMAGE_AUGMENTATIONS)}. "
                f"Received: spec={spec!r}"
            )
        kwargs.setdefault("seed", None if seed is None else seed + i)
        kwargs.setdefault("image_shape", image_shape)
        steps.append(IMAGE_AUGMENTATIONS[name](**kwargs))
    return steps[0] if len(steps) == 1 else Compose(steps)
