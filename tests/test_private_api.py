"""No private Keras API outside `keras_kd/_keras_compat.py` (issue 14).

Greps every module of `keras_kd/` for `keras.src` and, with `ast`, for private attributes of Keras
objects: attribute access (`model._compile_loss`), `getattr`/`hasattr`/`setattr` with such a name,
and overrides of private Keras methods (`def _make_function`). A private Keras name is one that
starts with a single underscore and appears on a Keras model, layer, loss, metric, optimizer,
variable, distribution strategy or export archive (collected at test time, so a new Keras release
updates the list).
"""

import ast
import pathlib

import keras
import tensorflow as tf

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_kd"
COMPAT = PACKAGE / "_keras_compat.py"


def _private(obj):
    return {name for name in dir(obj) if name.startswith("_") and not name.startswith("__")}


def keras_private_names():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    strategy = tf.distribute.get_strategy()
    names = set()
    for obj in (
        model,
        sequential,
        keras.layers.Dense(2),
        keras.losses.MeanSquaredError(),
        keras.metrics.Mean(),
        optimizer,
        keras.Variable(1.0),
        keras.callbacks.Callback(),
        strategy,
        strategy.extended,
        keras.export.ExportArchive(),
    ):
        names |= _private(obj)
    return names


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != COMPAT:
            yield path, path.read_text(encoding="utf-8")


def _violations(path, source, private):
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
        ):
            found.append(f"{path.name}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in private:
                    found.append(f"{path.name}:{item.lineno} overrides {node.name}.{item.name}")
    return found


def test_no_keras_src_outside_compat():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path, source in _sources()
        for number, line in enumerate(source.splitlines(), 1)
        if "keras.src" in line
    ]
    assert offenders == [], f"`keras.src` used outside keras_kd/_keras_compat.py: {offenders}"


def test_no_private_keras_attributes_outside_compat():
    private = keras_private_names()
    assert {"_compile_loss", "_functional", "_tracker", "_make_function"} <= private  # the scan sees them
    offenders = [v for path, source in _sources() for v in _violations(path, source, private)]
    assert offenders == [], f"private Keras attributes used outside keras_kd/_keras_compat.py: {offenders}"


def test_scanner_flags_private_access():
    private = keras_private_names()
    source = (
        "class M(keras.Model):\n"
        "    def _make_function(self, f):\n"
        "        return self._compile_loss\n"
        "x = getattr(model, '_functional', model)\n"
    )
    found = _violations(pathlib.Path("fake.py"), source, private)
    assert len(found) == 3, found
