"""Built-in teacher/student builders with a registry, like the losses' (`keras_kd.losses`).

```python
from keras_kd import models

models.registered_models()          # ['char_cnn', 'image_cnn', 'mlp', ...]
student = models.get_model("mlp", input_shape=(28, 28, 1), num_classes=10, hidden=[64])

@models.register_model("my_cnn")    # your own builder, reachable as `builder: my_cnn` in configs
def build_my_cnn(input_shape, num_classes, width=32): ...
```

Every built-in takes `expose_hidden=True` to return `{"logits", "hidden_states"}` for feature losses.
Builder modules are imported here so that their `@register_model` runs; add yours to the list.
"""

from keras_kd.models import ngram, text, vision  # noqa: F401  (registers the built-ins)
from keras_kd.models.registry import (
    builder_parameters,
    check_builder_kwargs,
    get_builder,
    get_model,
    register_model,
    registered_models,
)
from keras_kd.models.text import build_char_cnn
from keras_kd.models.vision import build_image_cnn, build_mlp

__all__ = [
    "build_char_cnn",
    "build_image_cnn",
    "build_mlp",
    "builder_parameters",
    "check_builder_kwargs",
    "get_builder",
    "get_model",
    "register_model",
    "registered_models",
]
