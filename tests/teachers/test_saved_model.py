"""SavedModelTeacher: export a Keras teacher with tf.saved_model.save, wrap it, distill from it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd import Distiller
from keras_kd.teachers import SavedModelTeacher
from tests.test_distiller import FEATURES, make_data, mlp


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A trained MLP teacher exported with two signatures; returns (path, model)."""
    keras.utils.set_random_seed(0)
    x, y = make_data(512, seed=1)
    model = mlp(64, "teacher")
    model.compile(
        keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, epochs=10, batch_size=64, verbose=0)
    hidden = keras.Model(model.inputs, model.layers[0].output)

    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec((None, FEATURES), tf.float32, name="features")])
    def serve(features):
        return {"output_0": model(features, training=False)}

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, FEATURES), tf.float32, name="features"),
            tf.TensorSpec((None,), tf.float32, name="scale"),
        ]
    )
    def features(features, scale):
        return {
            "logits": model(features) * scale[:, None],
            "embedding": hidden(features),
            "extra": features,
        }

    path = str(tmp_path_factory.mktemp("saved") / "teacher")
    tf.saved_model.save(module, path, signatures={"serving_default": serve, "features": features})
    return path, model


def test_round_trip_outputs(exported):
    path, model = exported
    x, _ = make_data(8, seed=3)
    teacher = SavedModelTeacher(path)
    assert teacher.output_map == {"logits": "output_0"}
    np.testing.assert_allclose(teacher(x)["logits"].numpy(), model(x).numpy(), atol=1e-5)
    assert teacher.weights == [] and not teacher.supports_jit

    several = SavedModelTeacher(path, signature="features")
    assert several.output_map == {"logits": "logits", "embedding": "embedding"}
    scale = np.full((8,), 2.0, dtype="float32")
    outputs = several({"features": x, "scale": scale})
    np.testing.assert_allclose(outputs["logits"].numpy(), 2.0 * model(x).numpy(), atol=1e-5)
    assert tuple(outputs["embedding"].shape) == (8, 64)


def test_errors(exported):
    path, _ = exported
    with pytest.raises(
        ValueError,
        match="has no signature 'predict'. Its signatures: \\['features', 'serving_default'\\]",
    ):
        SavedModelTeacher(path, signature="predict")
    with pytest.raises(ValueError, match="`outputs` must map keys among"):
        SavedModelTeacher(path, outputs={"logits": "missing"})
    with pytest.raises(ValueError, match="takes inputs \\['features', 'scale'\\]: pass a dict"):
        SavedModelTeacher(path, signature="features")(np.zeros((1, FEATURES), "float32"))
    with pytest.raises(ValueError, match="missing \\['scale'\\]"):
        SavedModelTeacher(path, signature="features")(
            {"features": np.zeros((1, FEATURES), "float32")}
        )


def test_config_round_trip(exported):
    path, model = exported
    teacher = SavedModelTeacher(path, signature="features", outputs={"logits": "logits"})
    config = teacher.get_config()
    assert (config["path"], config["signature"], config["outputs"]) == (
        path,
        "features",
        {"logits": "logits"},
    )
    clone = SavedModelTeacher.from_config(config)
    x, _ = make_data(4, seed=5)
    batch = {"features": x, "scale": np.ones((4,), "float32")}
    np.testing.assert_allclose(
        clone(batch)["logits"].numpy(), teacher(batch)["logits"].numpy(), atol=1e-6
    )


def test_distill_from_saved_model(exported):
    path, model = exported
    x, y = make_data(512, seed=1)
    distiller = Distiller(mlp(16, "student", seed=3), teacher=SavedModelTeacher(path), alpha=1.0)
    distiller.compile(
        keras.optimizers.Adam(0.01)
    )  # jit_compile="auto" -> no XLA around the SavedModel
    before = distiller.evaluate(x, y, verbose=0, return_dict=True)["teacher_agreement"]
    distiller.fit(x, y, epochs=10, batch_size=64, verbose=0)
    after = distiller.evaluate(x, y, verbose=0, return_dict=True)["teacher_agreement"]
    assert after > max(before + 0.2, 0.8), (before, after)
