"""A teacher given by its outputs: logits computed once, elsewhere, for a fixed set of texts.

Some teachers are too large to ship or too slow to run where the student trains (a fine-tuned
transformer reading a preprocessed view of the text). Offline distillation only needs their
outputs, so keras-kd can ship those instead: `save_precomputed_outputs` writes one `.npz` file with
the logits, a 16-byte BLAKE2b key of every text they belong to, and a card (the command that made
them, the teacher's size and accuracy, the SHA-256 of the data split the teacher was trained on).

`PrecomputedTeacher.from_file(path)` reads it back as a frozen Keras model whose input is a row
index into the table: `teacher.indices(texts)` maps texts to rows and refuses, with the count and
the first missing text, any text the file has no logits for. A teacher of one split is never
silently applied to another: `from_file(..., data_sha256=...)` also checks the card's split hash.

```python
teacher = PrecomputedTeacher.from_file("outputs.npz")
logits = teacher(teacher.indices(["a review", "another"]))["logits"]
```
"""

import hashlib
import json

import keras
import numpy as np

FORMAT = "keras-kd precomputed teacher outputs v1"


def text_key(text):
    """The 16-byte BLAKE2b digest of a text's UTF-8 bytes: the key of its row."""
    return hashlib.blake2b(str(text).encode("utf-8"), digest_size=16).digest()


def _keys(texts):
    return np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(-1, 16)


def save_precomputed_outputs(path, texts, logits, **card):
    """Write `logits` (`(n, classes)`) of the `n` `texts` and a JSON-serialisable `card` to `path` (.npz).

    Duplicate texts keep one row (their logits must agree). Recommended card entries: `command`,
    `description`, `params` (the teacher's parameter count), `size_bytes`, `accuracy`, `data_sha256`.
    Returns the number of rows written.
    """
    logits = np.asarray(logits, dtype="float32")
    texts = [str(t) for t in texts]
    if logits.ndim != 2 or len(logits) != len(texts):
        raise ValueError(f"`logits` must be a (len(texts), classes) array. Received: shape {logits.shape} for "
                         f"{len(texts)} texts")
    if not np.all(np.isfinite(logits)):
        raise ValueError("`logits` contain NaN or infinite values.")
    rows = {}
    for i, text in enumerate(texts):
        j = rows.setdefault(text, i)
        if j != i and not np.allclose(logits[i], logits[j], atol=1e-4):
            raise ValueError(f"Text {text[:40]!r} appears twice with different logits ({logits[j]} and {logits[i]}).")
    order = sorted(rows.values())
    card = {"format": FORMAT, **card}
    with open(path, "wb") as f:
        np.savez_compressed(f, keys=_keys([texts[i] for i in order]), logits=logits[order],
                            card=np.array(json.dumps(card, sort_keys=True)))
    return len(order)


class PrecomputedTeacher(keras.Model):
    """A frozen lookup table of teacher logits; its input is a row index (`indices(texts)`).

    `card` is the file's card; `source_params` the parameter count of the model that computed the
    logits (from the card), which reports show instead of the table's size.
    """

    def __init__(self, keys, logits, card=None, **kwargs):
        kwargs.setdefault("name", "precomputed_teacher")
        super().__init__(**kwargs)
        keys = np.asarray(keys, dtype=np.uint8)
        logits = np.asarray(logits, dtype="float32")
        if keys.ndim != 2 or keys.shape[1] != 16 or len(keys) != len(logits) or logits.ndim != 2:
            raise ValueError(f"`keys` must be (n, 16) uint8 and `logits` (n, classes). Received: {keys.shape}, "
                             f"{logits.shape}")
        self.card = dict(card or {})
        self.source_params = self.card.get("params")
        self._rows = {bytes(k): i for i, k in enumerate(keys)}
        # one extra row of zeros (uniform probabilities): `indices(..., missing="uniform")` points there
        table = np.concatenate([logits, np.zeros((1, logits.shape[1]), "float32")])
        self.table = self.add_weight(shape=table.shape, initializer=keras.initializers.Constant(table),
                                     trainable=False, name="logits_table")
        self.trainable = False

    @classmethod
    def from_file(cls, path, data_sha256=None):
        """Load a file written by `save_precomputed_outputs`; with `data_sha256`, refuse it unless its
        card records that data split."""
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("keys", "logits", "card") if k not in f.files]
            if missing:
                raise ValueError(f"{path} is not a precomputed-outputs file (no {missing[0]!r} array); write it "
                                 "with keras_kd.teachers.save_precomputed_outputs.")
            card = json.loads(str(f["card"]))
            keys, logits = f["keys"], f["logits"]
        if card.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown format {card.get('format')!r}; expected {FORMAT!r}.")
        if data_sha256 is not None and card.get("data_sha256") != data_sha256:
            raise ValueError(f"The teacher outputs in {path} were computed by a teacher trained on another data split "
                             f"(card data_sha256 {card.get('data_sha256')}, this run's {data_sha256}): that teacher "
                             f"may have seen this run's test examples. Rebuild them: {card.get('command', '?')}")
        return cls(keys, logits, card)

    @property
    def num_rows(self):
        return len(self._rows)

    def indices(self, texts, missing="error"):
        """Row indices (int32) of `texts`. A text without a row raises a `ValueError` naming how many have
        none and the first one; with `missing="uniform"` (a wiring check on other texts, not training)
        it gets uniform logits (zeros) instead."""
        if missing not in ("error", "uniform"):
            raise ValueError(f"`missing` must be 'error' or 'uniform'. Received: missing={missing!r}")
        texts = [str(t) for t in texts]
        rows = [self._rows.get(text_key(t), -1) for t in texts]
        if missing == "uniform":
            return np.asarray([r if r >= 0 else len(self._rows) for r in rows], dtype="int32")
        missing = [t for t, r in zip(texts, rows, strict=True) if r < 0]
        if missing:
            raise ValueError(f"The precomputed teacher has no outputs for {len(missing)} of {len(texts)} texts "
                             f"(first: {missing[0][:60]!r}). They were computed for other texts (another split, "
                             f"augmentation or preprocessing); rebuild them: {self.card.get('command', '?')}")
        return np.asarray(rows, dtype="int32")

    def call(self, inputs, training=False):
        return {"logits": keras.ops.take(self.table, keras.ops.cast(inputs, "int32"), axis=0)}
