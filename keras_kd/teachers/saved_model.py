"""`SavedModelTeacher`: any TensorFlow SavedModel signature as a teacher.

A SavedModel (from `tf.saved_model.save`, Keras' `model.export`, another team's pipeline) is
loaded with `tf.saved_model.load`; one of its signatures is called on each batch and its named
outputs are mapped to the distillation dict:

```python
teacher = SavedModelTeacher("exported/teacher", signature="serving_default",
                            outputs={"logits": "output_0"})
```
"""

import keras
import tensorflow as tf

from keras_kd.teachers.base import OUTPUT_KEYS, TeacherAdapter


def _load_signature(path, signature):
    loaded = tf.saved_model.load(str(path))
    signatures = dict(getattr(loaded, "signatures", {}))
    if signature not in signatures:
        raise ValueError(
            f"The SavedModel at {path!s} has no signature {signature!r}. "
            f"Its signatures: {sorted(signatures)}"
        )
    return loaded, signatures[signature]


@keras.saving.register_keras_serializable(package="keras_kd")
class SavedModelTeacher(TeacherAdapter):
    """Call a SavedModel signature as a frozen teacher.

    Args:
        path: directory of the SavedModel.
        signature: the signature to call (default `"serving_default"`).
        outputs: a dict mapping keys of `OUTPUT_KEYS` (`"logits"`, `"embedding"`, ...) to names of
            the signature's outputs. Default: the signature's single output becomes `"logits"`; with
            several outputs, those named like `OUTPUT_KEYS` are kept.
        head: optional classification head on `"embedding"` (see `TeacherAdapter`).

    Inputs: a dict keyed by the signature's input names, or a single tensor when the signature has
    one input. The SavedModel's variables are not Keras weights: nothing of it is trained, and the
    teacher is not XLA-compiled (`supports_jit = False`, so `compile(jit_compile="auto")` runs the
    distillation step without XLA).
    """

    def __init__(
        self,
        path,
        signature="serving_default",
        outputs=None,
        head=None,
        name="saved_model_teacher",
        **kwargs,
    ):
        super().__init__(head=head, name=name, **kwargs)
        self.saved_model_path = str(path)
        self.signature = signature
        loaded, function = _load_signature(self.saved_model_path, signature)
        # Kept out of Keras' tracking: the SavedModel's variables are not Keras weights.
        object.__setattr__(self, "_loaded", loaded)
        object.__setattr__(self, "_function", function)
        self.input_names = sorted(function.structured_input_signature[1])
        self.output_names = sorted(function.structured_outputs)
        if outputs is None:
            if len(self.output_names) == 1:
                outputs = {"logits": self.output_names[0]}
            else:
                outputs = {key: key for key in OUTPUT_KEYS if key in self.output_names}
                if not outputs:
                    raise ValueError(
                        f"Signature {signature!r} has outputs {self.output_names}: say which is which with "
                        "`outputs`, e.g. outputs={'logits': 'output_0'}."
                    )
        unknown_keys = sorted(set(outputs) - set(OUTPUT_KEYS))
        missing = sorted(set(outputs.values()) - set(self.output_names))
        if unknown_keys or missing:
            raise ValueError(
                f"`outputs` must map keys among {list(OUTPUT_KEYS)} to outputs of signature {signature!r} "
                f"({self.output_names}). Received: outputs={outputs}"
            )
        self.output_map = dict(outputs)
        self.supports_jit = False

    def teacher_outputs(self, inputs, training=False):
        if not isinstance(inputs, dict):
            if len(self.input_names) != 1:
                raise ValueError(
                    f"Signature {self.signature!r} takes inputs {self.input_names}: pass a dict with these keys."
                )
            inputs = {self.input_names[0]: inputs}
        missing = sorted(set(self.input_names) - set(inputs))
        if missing:
            raise ValueError(
                f"Signature {self.signature!r} takes inputs {self.input_names}; missing {missing}. "
                f"Received keys: {sorted(inputs)}"
            )
        specs = self._function.structured_input_signature[1]
        kwargs = {name: tf.cast(inputs[name], specs[name].dtype) for name in self.input_names}
        results = self._function(**kwargs)
        return {key: results[name] for key, name in self.output_map.items()}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "path": self.saved_model_path,
                "signature": self.signature,
                "outputs": dict(self.output_map),
            }
        )
        return config
