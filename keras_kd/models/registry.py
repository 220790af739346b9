"""Short names for model builders, so configs can say `builder: char_cnn` instead of a code path.

`register_model(name)` decorates a function returning a `keras.Model`; `get_model(name, **kwargs)`
calls it; `registered_models()` lists the names. Configs may only name registered builders unless
the user explicitly allows `module:function` code (`keras-kd distill --allow-code`).
"""

import inspect

_REGISTRY = {}


def register_model(name):
    """Function decorator: register a model builder under `name`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")

    def decorator(function):
        if name in _REGISTRY and _REGISTRY[name] is not function:
            raise ValueError(f"Model name {name!r} is already registered to {_REGISTRY[name].__module__}."
                             f"{_REGISTRY[name].__name__}.")
        _REGISTRY[name] = function
        return function

    return decorator


def registered_models():
    """All registered builder names, sorted."""
    return sorted(_REGISTRY)


def get_builder(name):
    """The builder function registered under `name`; a clear error listing valid names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model builder: {name!r}. Valid names: {', '.join(registered_models())}.")
    return _REGISTRY[name]


def builder_parameters(function):
    """`(names, takes_any)`: the keyword arguments a builder accepts, and whether it has `**kwargs`."""
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    names = [n for n, p in parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    return names, takes_any


def check_builder_kwargs(function, kwargs, key="kwargs"):
    """Raise a `ValueError` naming the first keyword argument `function` does not accept."""
    names, takes_any = builder_parameters(function)
    if takes_any:
        return
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        raise ValueError(
            f"`{key}.{unknown[0]}` is not an argument of builder {function.__name__!r}. "
            f"Valid arguments: {', '.join(names)}."
        )


def get_model(name, **kwargs):
    """Build the model registered under `name` with `kwargs` (checked against its signature)."""
    function = get_builder(name)
    check_builder_kwargs(function, kwargs)
    return function(**kwargs)
