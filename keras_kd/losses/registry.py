"""Short names for distillation losses, so configs can say `loss: kl` instead of a class path.

`register(*names)` decorates a `keras.losses.Loss` subclass: it becomes Keras-serializable under the
`keras_kd` package and reachable by each short name through `get`.
"""

import keras

_REGISTRY = {}


def register(*names):
    """Class decorator: register a loss under one or more short names (and for Keras saving)."""

    def decorator(cls):
        cls = keras.saving.register_keras_serializable(package="keras_kd")(cls)
        for name in names:
            if name in _REGISTRY and _REGISTRY[name] is not cls:
                raise ValueError(f"Loss name {name!r} is already registered to {_REGISTRY[name]}.")
            _REGISTRY[name] = cls
        return cls

    return decorator


def registered_names():
    """All short names, sorted."""
    return sorted(_REGISTRY)


def get_class(name):
    """The class registered under `name`; a clear error listing valid names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown distillation loss: {name!r}. Valid names: {', '.join(registered_names())}."
        )
    return _REGISTRY[name]


def get(identifier, **kwargs):
    """Resolve a loss from a short name, a config dict or an instance.

    - `"kl"` / `"kl_divergence"` → `KLDivergence(**kwargs)`;
    - `{"name": "kl", "temperature": 2.0}` or `{"class_name": ..., "config": ...}` → built from it;
    - a `keras.losses.Loss` instance (or any callable) → returned as is.

    `kwargs` complete a name or a config dict. A key given both in the config dict and in
    `kwargs` with different values (`get({"name": "kl", "temperature": 2.0}, temperature=4.0)`) is an
    error: neither silently wins.
    """
    if isinstance(identifier, str):
        return get_class(identifier)(**kwargs)
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            return keras.saving.deserialize_keras_object(identifier)
        config = dict(identifier)
        if "name" not in config:
            raise ValueError(
                "A loss config dict needs a `name` key naming the loss. "
                f"Received: {identifier!r}. Valid names: {', '.join(registered_names())}."
            )
        name = config.pop("name")
        conflicts = sorted(key for key, value in kwargs.items() if key in config and config[key] != value)
        if conflicts:
            key = conflicts[0]
            raise ValueError(
                f"`{key}` is given twice with different values: {config[key]!r} in the loss config "
                f"{identifier!r} and {kwargs[key]!r} as an argument (e.g. a config's "
                f"`distillation.{key}`). Give it in one place."
            )
        return get_class(name)(**{**config, **kwargs})
    if callable(identifier):
        return identifier
    raise TypeError(
        "A distillation loss must be a registered name, a config dict or a `keras.losses.Loss`. "
        f"Received: {identifier!r} of type {type(identifier).__name__}."
    )
