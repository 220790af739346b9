"""Bag of hashed character n-grams (fastText-style, Joulin et al. 2017) on token ids.

A linear model over character 1–3-grams is a strong text classifier that trains in seconds (on the
Chinese reviews it beats a 1.2 M-parameter char-CNN), which makes it a good, cheap *teacher*: its
knowledge differs from a small CNN student's, and it is a plain Keras model, so it runs inside the
`Distiller`, caches, saves as `.keras` and loads with `safe_mode=True`.

- `HashedNgrams`: `(batch, length)` token ids → `(batch, Σ_n (length - n + 1))` n-gram ids in
  `[1, buckets)`; 0 marks an n-gram that touches padding.
- `NgramBagPooling`: sum of the n-gram embeddings divided by √(number of n-grams) (an L2-style
  length normalisation, as TF-IDF vectors have), masked on id 0.
- `build_ngram_bag` (registered as `"ngram_bag"`): ids → n-gram ids → embedding → pooling →
  (dense) → logits. With `embed_dim=num_classes` and `hidden=0` it is a linear model on n-gram counts.
"""

import keras
from keras import ops

from keras_kd.models.registry import register_model

# Multiplier of the polynomial rolling hash and the modulus that keeps the codes inside int64.
_HASH_MULTIPLIER = 1000003
_HASH_MODULUS = 2305843009213693951  # 2**61 - 1, a Mersenne prime


@keras.saving.register_keras_serializable(package="keras_kd")
class HashedNgrams(keras.layers.Layer):
    """Hash every n-gram of token ids into `buckets` ids (0 is reserved for "touches padding").

    For n-gram `(t_1, …, t_n)`: `code = (…((n·7919 + t_1)·m + n·7919 + t_2)·m …) mod (2**61 − 1)`
    with `m = 1000003`, and the id is `1 + code mod (buckets − 1)`. Output n-grams are ordered by
    n, then by position. Deterministic: the same ids give the same n-gram ids on every machine.

    Args:
        ngrams: the n-gram orders to emit, e.g. `(1, 2, 3)`.
        buckets: number of n-gram ids (the embedding rows of the next layer), > 1.
        pad_id: token id of padding; n-grams containing it get id 0.
    """

    accepts_any_token_id = True  # every id is hashed into range: no token-id limit (keras_kd.validation)

    def __init__(self, ngrams=(1, 2, 3), buckets=2**18, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        ngrams = tuple(int(n) for n in ngrams)
        if not ngrams or any(n < 1 for n in ngrams):
            raise ValueError(f"`ngrams` must be a non-empty list of integers >= 1. Received: ngrams={ngrams}")
        if not isinstance(buckets, int) or buckets < 2:
            raise ValueError(f"`buckets` must be an integer >= 2. Received: buckets={buckets!r}")
        self.ngrams, self.buckets, self.pad_id = ngrams, buckets, int(pad_id)

    def call(self, token_ids):
        ids = ops.cast(token_ids, "int64")
        valid = ops.not_equal(ids, self.pad_id)
        length = ids.shape[1]
        outputs = []
        for n in self.ngrams:
            if length is not None and n > length:
                continue
            stop = ops.shape(ids)[1] - n + 1
            code = ops.zeros_like(ids[:, :stop])
            inside = ops.ones_like(valid[:, :stop])
            for k in range(n):
                code = ops.mod(code * _HASH_MULTIPLIER + ids[:, k : k + stop] + 7919 * n, _HASH_MODULUS)
                inside = ops.logical_and(inside, valid[:, k : k + stop])
            hashed = 1 + ops.mod(code, self.buckets - 1)
            outputs.append(ops.where(inside, hashed, ops.zeros_like(hashed)))
        return ops.cast(ops.concatenate(outputs, axis=1), "int32")

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        total = None if length is None else sum(length - n + 1 for n in self.ngrams if n <= length)
        return (input_shape[0], total)

    def get_config(self):
        config = super().get_config()
        config.update(ngrams=list(self.ngrams), buckets=self.buckets, pad_id=self.pad_id)
        return config


@keras.saving.register_keras_serializable(package="keras_kd")
class NgramBagPooling(keras.layers.Layer):
    """Pool n-gram embeddings `(batch, n, d)` over the ids `(batch, n)` that are not 0.

    `pooling="sqrt"`: sum / √count (default); `"mean"`: sum / count; `"sum"`: sum. A row with no
    n-gram gives zeros.
    """

    POOLINGS = ("sqrt", "mean", "sum")

    def __init__(self, pooling="sqrt", **kwargs):
        super().__init__(**kwargs)
        if pooling not in self.POOLINGS:
            raise ValueError(f"`pooling` must be one of {self.POOLINGS}. Received: pooling={pooling!r}")
        self.pooling = pooling

    def call(self, embeddings, ngram_ids):
        mask = ops.cast(ops.not_equal(ngram_ids, 0), embeddings.dtype)[..., None]
        total = ops.sum(embeddings * mask, axis=1)
        if self.pooling == "sum":
            return total
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)
        return total / (ops.sqrt(count) if self.pooling == "sqrt" else count)

    def compute_output_shape(self, embeddings_shape, ngram_ids_shape=None):
        return (embeddings_shape[0], embeddings_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["pooling"] = self.pooling
        return config


@register_model("ngram_bag")
def build_ngram_bag(vocabulary_size=None, sequence_length=128, num_classes=2, buckets=2**18, ngrams=(1, 2, 3),
                    embed_dim=None, hidden=0, pooling="sqrt", dropout=0.0, pad_id=0, name="ngram_bag"):
    """A bag of hashed character n-grams on token ids: n-gram ids → embedding → pooling → logits.

    Args:
        vocabulary_size: unused (the n-grams of any ids are hashed); accepted so that configs can
            pass the tokenizer's settings to every text builder alike.
        sequence_length: tokens per example.
        buckets: hashed n-gram ids (embedding rows): parameters = `buckets * embed_dim` (+ head).
        ngrams: n-gram orders, e.g. `(1, 2, 3)`.
        embed_dim: embedding width; default `num_classes` (with `hidden=0`: a linear model whose
            embedding rows are the per-class weights — the dense head only mixes them).
        hidden: width of a ReLU layer after pooling (0 = none).
        pooling: `"sqrt"` (sum / √count, default), `"mean"` or `"sum"`.
        dropout: dropout on the pooled vector.
    """
    inputs = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    ngram_ids = HashedNgrams(ngrams, buckets, pad_id=pad_id, name="hashed_ngrams")(inputs)
    x = keras.layers.Embedding(buckets, embed_dim or num_classes, name="ngram_embedding")(ngram_ids)
    x = NgramBagPooling(pooling, name="pooling")(x, ngram_ids)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name=name)


@register_model("ngram_cnn")
def build_ngram_cnn(vocabulary_size=None, sequence_length=128, num_classes=2, buckets=8192, ngrams=(1, 2),
                    embed_dim=8, filters=64, kernel_sizes=(1, 2, 3), dropout=0.2, pad_id=0, name="ngram_cnn"):
    """A small CNN on hashed character n-gram embeddings: a student that can learn the function of an
    n-gram-bag teacher from many teacher-labelled examples (measured as the demo's student in
    docs/guides/text-classification.md: no gain over the linear `build_ngram_bag` student there).

    At each position the embeddings of the n-grams that start there (one shared table of `buckets`
    rows; the n-gram ids of `HashedNgrams`, 0 where an n-gram touches padding) are summed, then
    Conv1D per kernel size (ReLU, "same" padding) + global max-pool → concatenation → dropout →
    logits. Parameters: `buckets * embed_dim` + convolutions + head.

    Args:
        vocabulary_size: unused (ids are hashed), accepted like `build_ngram_bag`.
        sequence_length: tokens per example (>= the largest n-gram order).
        buckets: rows of the shared n-gram embedding table, > 1.
        ngrams: n-gram orders embedded at each position, e.g. `(1, 2)`.
        embed_dim, filters, kernel_sizes: embedding width, filters per kernel size, kernel sizes.
        dropout: dropout on the pooled features (0 = none).
    """
    ngrams = tuple(int(n) for n in ngrams)
    if sequence_length is not None and max(ngrams, default=0) > sequence_length:
        raise ValueError(f"Every n-gram order must be <= `sequence_length`. Received: ngrams={ngrams}, "
                         f"sequence_length={sequence_length}")
    if not kernel_sizes:
        raise ValueError(f"`kernel_sizes` must be a non-empty list. Received: kernel_sizes={kernel_sizes!r}")
    inputs = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    table = keras.layers.Embedding(buckets, embed_dim, name="ngram_embedding")
    parts = []
    for n in ngrams:
        x = table(HashedNgrams((n,), buckets, pad_id=pad_id, name=f"hashed_{n}grams")(inputs))
        parts.append(keras.layers.ZeroPadding1D((0, n - 1), name=f"align_{n}grams")(x) if n > 1 else x)
    x = keras.layers.Add(name="ngram_sum")(parts) if len(parts) > 1 else parts[0]
    pooled = [keras.layers.GlobalMaxPooling1D(name=f"max_pool_{k}")(
        keras.layers.Conv1D(filters, k, padding="same", activation="relu", name=f"conv_{k}")(x))
        for k in kernel_sizes]
    x = keras.layers.Concatenate(name="pooled")(pooled) if len(pooled) > 1 else pooled[0]
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name=name)
