"""`TransformersTeacher`: a Hugging Face `transformers` 4.x TensorFlow model as a teacher.

```python
teacher = TransformersTeacher.from_pretrained("path/to/bert-folder", output_hidden_states=True)
x = teacher.tokenize(["a great film", "a dull film"])  # input_ids, attention_mask, token_type_ids
teacher(x)  # {"embedding": (2, D), "hidden_states": [...], "logits" (classification models or head)}
```

`transformers` TF classes are tf-keras (Keras 2) models, not Keras 3 layers: the adapter is a Keras 3
layer that calls the tf-keras model and holds no Keras-3 weights of it (so nothing of it is trained,
tracked or saved by Keras 3). Needs the `[hf]` extra (`transformers>=4.46,<5`, `tf-keras`).
Weights load from a local folder's `model.safetensors` without PyTorch.
"""

import os

import keras
import tensorflow as tf

from keras_kd.teachers.base import EncoderTeacher
from keras_kd.teachers.keras_hub import HF_TO_KERAS_HUB_KEYS

KERAS_HUB_TO_HF_KEYS = {value: key for key, value in HF_TO_KERAS_HUB_KEYS.items()}
TASKS = ("base", "sequence_classification")


def import_transformers():
    """Import `transformers` with its TF classes, leaving `TF_USE_LEGACY_KERAS` as it was.

    transformers 4.x sets `TF_USE_LEGACY_KERAS=1` in the process environment when its TF code is
    imported; left there it would turn `tf.keras` into Keras 2 for the rest of the process and for
    every subprocess. The TF classes use `tf_keras` directly, so the variable is restored at once.
    """
    previous = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import transformers
        import transformers.modeling_tf_utils  # noqa: F401  (the import that sets the variable)
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            'TransformersTeacher needs transformers 4.x and tf-keras: pip install "keras-kd[hf]"'
        ) from error
    finally:
        if previous is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = previous
    return transformers


def load_tf_model(path, task="base"):
    """A `TFAutoModel` (or `...ForSequenceClassification`) from `path`, preferring safetensors, no torch.

    Some `safetensors` releases cannot be iterated by transformers 4.x's TF loader; a local
    `model.safetensors` is then read as NumPy and loaded with transformers' own PyTorch-to-TF name
    mapping.
    """
    transformers = import_transformers()
    auto = (
        transformers.TFAutoModel
        if task == "base"
        else transformers.TFAutoModelForSequenceClassification
    )
    local_file = os.path.join(str(path), "model.safetensors")
    try:
        return auto.from_pretrained(str(path), use_safetensors=True)
    except TypeError:
        if not os.path.isfile(local_file):
            raise
    from safetensors.numpy import load_file
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    model = auto.from_config(transformers.AutoConfig.from_pretrained(str(path)))
    model.build_in_name_scope()
    model, info = load_pytorch_state_dict_in_tf2_model(
        model,
        load_file(local_file),
        tf_inputs=False,
        allow_missing_keys=True,
        output_loading_info=True,
    )
    if info["missing_keys"] or info["mismatched_keys"]:
        raise ValueError(f"Could not load all weights of {path}: {info}")
    return model


@keras.saving.register_keras_serializable(package="keras_kd")
class TransformersTeacher(EncoderTeacher):
    """A `transformers` TF model wrapped as a frozen Keras 3 teacher.

    Args:
        model: a `transformers.TFPreTrainedModel` (e.g. `TFBertModel`,
            `TFBertForSequenceClassification`).
        tokenizer: optional `transformers` tokenizer for `tokenize`.
        head: optional head on `embedding` (see `TeacherAdapter`); a sequence-classification model
            already gives `logits`.
        pooling, normalize: as in `KerasHubTeacher` (`embedding` = masked mean, L2-normalized).
        output_hidden_states: return `hidden_states` (`num_layers + 1` tensors (B, S, D)).
        output_attentions: return `attentions` (`num_layers` tensors (B, heads, S, S)).
        path, task: where `from_pretrained` loaded it from (kept for `get_config`).

    Inputs: a dict of `input_ids`, `attention_mask`(, `token_type_ids`); keras-hub names
    (`token_ids`, `padding_mask`, `segment_ids`) are accepted too.
    """

    def __init__(
        self,
        model,
        tokenizer=None,
        path=None,
        task="base",
        name="transformers_teacher",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)  # head, pooling, normalize, output_*: EncoderTeacher
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
        # Not tracked by Keras 3: a tf-keras model's variables are not Keras 3 weights.
        object.__setattr__(self, "hf_model", model)
        object.__setattr__(self, "tokenizer", tokenizer)
        self.model_path = None if path is None else str(path)
        self.task = task

    @classmethod
    def from_pretrained(cls, path, task="base", **kwargs):
        """Load model and tokenizer from a local folder (or a hub name, with network).

        `task="sequence_classification"` loads `TFAutoModelForSequenceClassification` (its `logits`
        become the teacher's). Other keyword arguments go to `TransformersTeacher`.
        """
        transformers = import_transformers()
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
        model = load_tf_model(path, task)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        return cls(model, tokenizer=tokenizer, path=path, task=task, **kwargs)

    def tokenize(self, texts, max_length=128):
        """`input_ids`, `attention_mask`, `token_type_ids` for a list of strings (NumPy, padded)."""
        if self.tokenizer is None:
            raise ValueError("This TransformersTeacher has no `tokenizer`: pass tokenized inputs.")
        encoded = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        return {key: value.astype("int32") for key, value in encoded.items()}

    def teacher_outputs(self, inputs, training=False):
        if not isinstance(inputs, dict):
            raise ValueError(
                "TransformersTeacher takes a dict of token ids (input_ids, attention_mask, ...); "
                "use `teacher.tokenize(texts)`."
            )
        inputs = {
            KERAS_HUB_TO_HF_KEYS.get(key, key): tf.cast(value, "int32")
            for key, value in inputs.items()
        }
        result = self.hf_model(
            inputs,
            training=False,
            output_hidden_states=True,
            output_attentions=self.output_attentions,
        )
        sequence = result.hidden_states[-1]
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = tf.ones_like(inputs["input_ids"])
        outputs = {}
        outputs["embedding"] = self.pool(sequence, mask)
        if self.output_hidden_states:
            outputs["hidden_states"] = list(result.hidden_states)
        if self.output_attentions:
            outputs["attentions"] = list(result.attentions)
        if getattr(result, "logits", None) is not None:
            outputs["logits"] = result.logits
        return outputs

    def get_config(self):
        if self.model_path is None:
            raise ValueError(
                "Only a TransformersTeacher made with `from_pretrained(path)` can be serialized."
            )
        config = super().get_config()
        config.update(path=self.model_path, task=self.task)
        return config

    @classmethod
    def build_from_config_dict(cls, config):
        config = dict(config)
        return cls.from_pretrained(config.pop("path"), task=config.pop("task"), **config)
