"""Import optional dependencies lazily, with an error that names the extra to install.

    keras_hub = require("keras_hub", extra="hub")        # inside the function that needs it

raises, when keras-hub is missing:

    ImportError: `keras_hub` is required for this feature but is not installed.
    Install it with: pip install "keras-kd[hub]"
"""

import importlib

# Module → extra of setup.cfg that provides it (used when `extra` is not given).
EXTRAS = {
    "keras_hub": "hub",
    "safetensors": "hub",
    "transformers": "hf",
    "tf_keras": "hf",
    "ai_edge_litert": "tflite",
    "tensorflow_datasets": "tfds",
    "matplotlib": "plots",
    "snownlp": "data",
    "django": "data",
    "mlxtend": "data",
}


def require(module, extra=None, feature=None):
    """Import and return `module`; on failure raise an `ImportError` naming the pip extra.

    Args:
        module: the dotted module name, e.g. `"keras_hub"`.
        extra: the `keras-kd` extra that installs it (default: looked up in `EXTRAS`).
        feature: what needs it, for the message (e.g. `"keras_kd.teachers.KerasHubTeacher"`).
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = extra or EXTRAS.get(module.split(".")[0])
        needed_by = f"by {feature}" if feature else "for this feature"
        install = f'pip install "keras-kd[{extra}]"' if extra else f"pip install {module.split('.')[0]}"
        raise ImportError(
            f"`{module}` is required {needed_by} but is not installed. Install it with: {install}"
        ) from e
