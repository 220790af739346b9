"""What every teacher returns: a dict of outputs with at least `"logits"` (or `"embedding"`)."""

import numbers

import keras
import numpy as np
from keras import ops

from keras_kd import _keras_compat as compat
from keras_kd.outputs import OUTPUT_KEYS, as_output_dict  # noqa: F401  (re-exported)


def mean_log_probabilities(logits, weights=None, center=False):
    """Several teachers' logits as one ensemble target: the weighted mean of their log-probabilities.

    `logits`: a sequence of `(..., classes)` arrays, one per teacher; `weights`: one non-negative
    number per teacher (normalised to sum 1; default equal). Computed in float64, returned as
    float32 log-probabilities (their softmax is the normalised geometric mean of the teachers'
    distributions). `center=True` subtracts each row's mean instead: the same softmax, without the
    per-row offset that a loss on logits (MSE) would otherwise see.
    """
    logits = [np.asarray(z, "float64") for z in logits]
    if not logits:
        raise ValueError("`logits` must hold at least one teacher's logits. Received: logits=[]")
    weights = np.ones(len(logits)) if weights is None else np.asarray(weights, "float64")
    if weights.shape != (len(logits),) or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError(
            f"`weights` must hold {len(logits)} non-negative numbers, not all zero. Received: weights={weights.tolist()}"
        )
    weights = weights / weights.sum()
    total = 0.0
    for w, z in zip(weights, logits, strict=True):
        total = total + w * (z - np.logaddexp.reduce(z, axis=-1, keepdims=True))
    if center:
        total = total - total.mean(-1, keepdims=True)
    return np.asarray(total, "float32")


def make_head(head, name="head"):
    """A classification head from `None`, a number of classes (a `Dense` layer) or a Keras layer."""
    if head is None or isinstance(head, keras.layers.Layer):
        return head
    if isinstance(head, bool) or not isinstance(head, numbers.Integral) or head < 1:
        raise ValueError(
            "`head` must be None, a number of classes >= 1 or a keras.layers.Layer. "
            f"Received: head={head!r}"
        )
    return keras.layers.Dense(int(head), name=name)


def set_trainable(layer, trainable):
    """Set `layer.trainable` so that it reaches every sublayer and weight.

    Plain `layer.trainable = x` does not when `x` is already the layer's value (a layer added to a
    frozen parent keeps its own state) or for weights created while the layer was frozen.
    """
    layer.trainable = not trainable
    layer.trainable = trainable
    for weight in layer.weights:
        weight.trainable = trainable
    return layer


class TeacherAdapter(keras.layers.Layer):
    """Base class of the `keras_kd.teachers` adapters: a frozen Keras layer returning a dict.

    Subclasses implement `teacher_outputs(inputs, training)` returning some of `OUTPUT_KEYS`
    (`"embedding"`, `"hidden_states"`, ...). When the adapter has a `head` (a number of classes or a
    Keras layer), `call` adds `"logits" = head(outputs["embedding"])`: a sentence-embedding backbone
    becomes a classifier teacher (train the head with `keras_kd.teachers.fine_tune_head`).

    Adapters are created frozen (`trainable=False`) and called with `training=False` by `Distiller`.
    """

    def __init__(self, head=None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.head = head

    def __setattr__(self, name, value):
        if name == "head":  # the `head` property tracks the layer itself (see its setter)
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    @property
    def head(self):
        """The classification head on `"embedding"` (a Keras layer) or None."""
        return self._head

    @head.setter
    def head(self, value):
        value = make_head(value)
        if value is not None:
            set_trainable(value, self.trainable)
        # A head may be attached after the adapter has run (built adapters lock their state).
        with compat.unlocked_tracking(self):
            self._head = value

    def teacher_outputs(self, inputs, training=False):
        raise NotImplementedError

    def call(self, inputs, training=False):
        outputs = as_output_dict(self.teacher_outputs(inputs, training=training))
        if self.head is not None:
            if "embedding" not in outputs:
                raise ValueError(
                    f"{type(self).__name__} has a `head` but its model returns no 'embedding' to apply it "
                    f"to. Received outputs: {sorted(outputs)}"
                )
            outputs["logits"] = self.head(outputs["embedding"], training=training)
        return outputs

    def get_config(self):
        config = super().get_config()
        config["head"] = (
            keras.saving.serialize_keras_object(self.head) if self.head is not None else None
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("head") is not None:
            config["head"] = keras.saving.deserialize_keras_object(config["head"])
        return cls.build_from_config_dict(config)

    @classmethod
    def build_from_config_dict(cls, config):
        """Make the adapter from a config whose `head` is already deserialized."""
        return cls(**config)


def masked_mean_pool(sequence, padding_mask, normalize=True):
    """Mean of `sequence` (B, S, D) over positions where `padding_mask` (B, S) is true, L2-normalized."""
    mask = ops.expand_dims(ops.cast(padding_mask, sequence.dtype), axis=-1)
    pooled = ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1e-9)
    if normalize:
        norm = ops.sqrt(ops.sum(ops.square(pooled), axis=-1, keepdims=True))
        pooled = pooled / ops.maximum(norm, 1e-12)
    return pooled


class EncoderTeacher(TeacherAdapter):
    """Base of the text-encoder adapters: a sentence `embedding` pooled from the last hidden states.

    Args:
        pooling: `"mean"` (masked mean over real tokens, the sentence-transformers default) or
            `"cls"` (the first token).
        normalize: L2-normalize `embedding` (default True, as all-MiniLM-L6-v2 does).
        output_hidden_states: also return `hidden_states` (`num_layers + 1` tensors (B, S, D)).
        output_attentions: also return `attentions` (`num_layers` tensors (B, heads, S, S)).
        head: optional classification head on `embedding` (see `TeacherAdapter`).
    """

    def __init__(
        self,
        head=None,
        pooling="mean",
        normalize=True,
        output_hidden_states=False,
        output_attentions=False,
        **kwargs,
    ):
        super().__init__(head=head, **kwargs)
        if pooling not in ("mean", "cls"):
            raise ValueError(f"`pooling` must be 'mean' or 'cls'. Received: pooling={pooling!r}")
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.output_hidden_states = bool(output_hidden_states)
        self.output_attentions = bool(output_attentions)

    def pool(self, sequence, padding_mask):
        """The sentence embedding of the last hidden states `sequence` (B, S, D)."""
        if self.pooling == "cls":
            sequence, padding_mask = sequence[:, :1], padding_mask[:, :1]
        return masked_mean_pool(sequence, padding_mask, normalize=self.normalize)

    def get_config(self):
        config = super().get_config()
        config.update(
            pooling=self.pooling,
            normalize=self.normalize,
            output_hidden_states=self.output_hidden_states,
            output_attentions=self.output_attentions,
        )
        return config
