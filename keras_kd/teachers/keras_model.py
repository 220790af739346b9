"""`KerasTeacher`: any Keras model as a teacher, with intermediate layers picked by name.

```python
teacher = KerasTeacher(model, outputs={"logits": None,                # the model's own output
                                       "hidden_states": ["block_1", "block_2"],
                                       "embedding": "pool"})
teacher(x)  # {"logits": ..., "hidden_states": [..., ...], "embedding": ...}
```

The intermediate outputs come from a feature-extraction Functional model that shares the
teacher's layers (Keras' `keras.Model(model.inputs, layer.output)` recipe), so the model runs once.
"""

import keras

from keras_kd.teachers.base import OUTPUT_KEYS, TeacherAdapter, as_output_dict


def _layer_output(model, name):
    try:
        layer = model.get_layer(name)
    except ValueError as error:
        names = [layer.name for layer in model.layers]
        raise ValueError(f"The teacher has no layer named {name!r}. Its layers: {names}") from error
    try:
        return layer.output
    except (AttributeError, ValueError) as error:  # called several times, or never in the graph
        raise ValueError(
            f"Layer {name!r} has no single output in the teacher's graph ({error}). Pick a layer "
            "called exactly once in a Functional or Sequential model."
        ) from error


def _check_outputs(outputs):
    if outputs is None:
        return None
    if not isinstance(outputs, dict):
        raise TypeError(
            "`outputs` must be a dict such as {'logits': None, 'hidden_states': ['layer_a', 'layer_b']}. "
            f"Received: outputs={outputs!r}"
        )
    unknown = sorted(set(outputs) - set(OUTPUT_KEYS))
    if unknown:
        raise ValueError(
            f"`outputs` keys must be among {list(OUTPUT_KEYS)}. Received unknown keys: {unknown}"
        )
    return {
        key: (list(value) if isinstance(value, (list, tuple)) else value)
        for key, value in outputs.items()
    }


@keras.saving.register_keras_serializable(package="keras_kd")
class KerasTeacher(TeacherAdapter):
    """Wrap a Keras model so it returns the distillation dict, frozen and with `training=False`.

    Args:
        model: a built Functional or Sequential `keras.Model` (a subclassed model works when
            `outputs` is None: its output is used as is).
        outputs: None (the model's output: a tensor becomes `{"logits": ...}`, a dict is kept), or
            a dict mapping keys of `OUTPUT_KEYS` to layer names: a name (or None for the model's
            own output) for `"logits"`/`"embedding"`, a list of names for `"hidden_states"` /
            `"attentions"`.
        head: optional classification head on `"embedding"` (see `TeacherAdapter`).
    """

    def __init__(self, model, outputs=None, head=None, name=None, **kwargs):
        super().__init__(head=head, name=name or f"keras_teacher_{model.name}", **kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        self.model = model
        self.layer_outputs = _check_outputs(outputs)
        self.model.trainable = False
        self._extractor = None
        if self.layer_outputs is not None:
            if not model.built or not hasattr(model, "inputs") or not model.inputs:
                raise ValueError(
                    "Picking intermediate layers by name needs a built Functional or Sequential model "
                    "with known inputs. Build it (call it on data or give it a `keras.Input`) first."
                )
            try:
                own = model.output
            except AttributeError:  # a Sequential model never called on a tensor: its built graph's output
                own = model.outputs[0]

            def resolve(name):
                return own if name is None else _layer_output(model, name)

            targets = {
                key: [resolve(n) for n in value] if isinstance(value, list) else resolve(value)
                for key, value in self.layer_outputs.items()
            }
            self._extractor = keras.Model(model.inputs, targets, name=f"{model.name}_features")

    def teacher_outputs(self, inputs, training=False):
        if self._extractor is None:
            return as_output_dict(self.model(inputs, training=training))
        return dict(self._extractor(inputs, training=training))

    def get_config(self):
        config = super().get_config()
        outputs = None
        if self.layer_outputs is not None:
            outputs = {
                k: list(v) if isinstance(v, (list, tuple)) else v
                for k, v in self.layer_outputs.items()
            }
        config.update(
            {"model": keras.saving.serialize_keras_object(self.model), "outputs": outputs}
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return super().from_config(config)
