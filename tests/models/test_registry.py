"""`keras_kd.models`: the builder registry and the built-in builders."""

import numpy as np
import pytest

from keras_kd import models


def test_builtins_are_registered():
    assert {"char_cnn", "mlp", "image_cnn"} <= set(models.registered_models())
    assert models.get_builder("mlp") is models.build_mlp


def test_get_model_builds_with_kwargs_and_checks_them():
    model = models.get_model("mlp", input_shape=(4,), num_classes=3, hidden=[5])
    assert model.output_shape == (None, 3)
    assert model.count_params() == 4 * 5 + 5 + 5 * 3 + 3
    with pytest.raises(ValueError, match=r"`kwargs.widht` is not an argument of builder 'build_mlp'. Valid arguments: "
                                         r"input_shape, num_classes, hidden"):
        models.get_model("mlp", input_shape=(4,), num_classes=3, widht=3)
    with pytest.raises(ValueError, match=r"Unknown model builder: 'nope'. Valid names: .*char_cnn"):
        models.get_model("nope")


def test_register_model_and_refuse_a_second_owner():
    @models.register_model("test_tiny_dense")
    def build(num_classes=2):
        import keras

        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(num_classes)])

    assert "test_tiny_dense" in models.registered_models()
    assert models.get_model("test_tiny_dense", num_classes=4).output_shape == (None, 4)
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("test_tiny_dense")(lambda: None)


@pytest.mark.parametrize("name, kwargs, x, n_hidden", [
    ("char_cnn", {"vocabulary_size": 50, "sequence_length": 7, "embed_dim": 4, "filters": 3,
                  "kernel_sizes": (2, 3), "hidden": 5}, np.ones((2, 7), "int32"), 2),
    ("mlp", {"input_shape": (6,), "hidden": (4, 3)}, np.ones((2, 6), "float32"), 2),
    ("image_cnn", {"input_shape": (8, 8, 1), "filters": (2,), "hidden": 4}, np.ones((2, 8, 8, 1), "float32"), 2),
])
def test_builtins_expose_hidden_states(name, kwargs, x, n_hidden):
    plain = models.get_model(name, num_classes=3, **kwargs)
    exposed = models.get_model(name, num_classes=3, expose_hidden=True, **kwargs)
    assert plain.output_shape == (None, 3)
    outputs = exposed(x)
    assert set(outputs) == {"logits", "hidden_states"}
    assert outputs["logits"].shape == (2, 3)
    assert len(outputs["hidden_states"]) == n_hidden
    assert plain.count_params() == exposed.count_params()
