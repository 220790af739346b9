"""KerasTeacher: any Keras model, intermediate layers by name, frozen, serializable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd import Distiller
from keras_kd.teachers import KerasTeacher
from tests.test_distiller import NUM_CLASSES, make_data, mlp


def functional_teacher():
    inputs = keras.Input((12,), name="x")
    h1 = keras.layers.Dense(16, activation="relu", name="block_1")(inputs)
    h2 = keras.layers.Dense(8, activation="relu", name="block_2")(h1)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(h2)
    return keras.Model(inputs, logits, name="teacher")


def test_named_layers_become_outputs():
    model = functional_teacher()
    teacher = KerasTeacher(
        model,
        outputs={"logits": None, "hidden_states": ["block_1", "block_2"], "embedding": "block_2"},
    )
    x, _ = make_data(5)
    outputs = teacher(x)
    assert sorted(outputs) == ["embedding", "hidden_states", "logits"]
    h1 = np.maximum(
        x @ model.get_layer("block_1").kernel.numpy() + model.get_layer("block_1").bias.numpy(), 0
    )
    h2 = np.maximum(
        h1 @ model.get_layer("block_2").kernel.numpy() + model.get_layer("block_2").bias.numpy(), 0
    )
    np.testing.assert_allclose(outputs["hidden_states"][0].numpy(), h1, atol=1e-5)
    np.testing.assert_allclose(outputs["hidden_states"][1].numpy(), h2, atol=1e-5)
    np.testing.assert_allclose(outputs["embedding"].numpy(), h2, atol=1e-5)
    np.testing.assert_allclose(outputs["logits"].numpy(), model(x).numpy(), atol=1e-5)
    assert not teacher.trainable and not model.trainable and teacher.trainable_weights == []


def test_plain_model_output_and_head():
    model = mlp(8, "plain")
    x, _ = make_data(4)
    np.testing.assert_allclose(
        KerasTeacher(model)(x)["logits"].numpy(), model(x).numpy(), atol=1e-6
    )
    with_head = KerasTeacher(functional_teacher(), outputs={"embedding": "block_1"}, head=3)
    assert tuple(with_head(x)["logits"].shape) == (4, 3)


def test_errors():
    model = functional_teacher()
    with pytest.raises(
        ValueError, match="The teacher has no layer named 'nope'. Its layers: \\['x', 'block_1'"
    ):
        KerasTeacher(model, outputs={"hidden_states": ["nope"]})
    with pytest.raises(
        ValueError, match="`outputs` keys must be among .* Received unknown keys: \\['features'\\]"
    ):
        KerasTeacher(model, outputs={"features": "block_1"})
    with pytest.raises(TypeError, match="`outputs` must be a dict"):
        KerasTeacher(model, outputs=["block_1"])
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        KerasTeacher(keras.layers.Dense(2))


def test_config_and_save_round_trip(tmp_path):
    model = functional_teacher()
    teacher = KerasTeacher(model, outputs={"logits": "logits", "hidden_states": ["block_1"]})
    x, _ = make_data(6)
    config = teacher.get_config()
    assert config["outputs"] == {"logits": "logits", "hidden_states": ["block_1"]}
    clone = KerasTeacher.from_config(config)
    clone.model.set_weights(model.get_weights())
    np.testing.assert_allclose(
        clone(x)["hidden_states"][0].numpy(), teacher(x)["hidden_states"][0].numpy(), atol=1e-6
    )
    # Inside a saved Distiller, the adapter and its weights come back.
    distiller = Distiller(mlp(8, "student"), teacher=teacher)
    distiller.compile("adam")
    distiller(x)
    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.teacher(x)["logits"].numpy(), model(x).numpy(), atol=1e-6)


def test_distills_with_feature_outputs():
    x, y = make_data(256)
    model = functional_teacher()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    teacher = KerasTeacher(model, outputs={"logits": None, "hidden_states": ["block_1", "block_2"]})
    distiller = Distiller(mlp(16, "student"), teacher=teacher, alpha=1.0)
    distiller.compile(keras.optimizers.Adam(0.01), jit_compile=False)
    before = distiller.evaluate(x, y, verbose=0, return_dict=True)["teacher_agreement"]
    distiller.fit(x, y, epochs=20, batch_size=32, verbose=0)
    after = distiller.evaluate(x, y, verbose=0, return_dict=True)["teacher_agreement"]
    assert after > max(before + 0.2, 0.8), (before, after)
    np.testing.assert_allclose(
        teacher(x)["logits"].numpy(), model(x).numpy(), atol=1e-6
    )  # teacher untouched


def test_separate_views_online_and_cached():
    """Teacher and student take different inputs of the same examples, online and through the cache."""
    from keras_kd.data import keys
    from keras_kd.data.cache import cache_teacher_outputs

    x, y = make_data(128)
    model = functional_teacher()
    teacher = KerasTeacher(model)
    student_view = x[:, :6] * 2.0  # the student's own "tokenization" of each example
    views = {keys.TEACHER_INPUTS: x, keys.STUDENT_INPUTS: student_view}
    dataset = tf.data.Dataset.from_tensor_slices((views, y)).batch(32)
    student = keras.Sequential([keras.Input((6,)), keras.layers.Dense(NUM_CLASSES)], name="student")

    online = Distiller(student, teacher=teacher)
    online.compile("adam", jit_compile=False)
    batch_x, _ = next(iter(dataset))
    np.testing.assert_allclose(
        online.teacher_outputs(batch_x)["logits"].numpy(), model(x[:32]).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        online.predict(batch_x, verbose=0), student(student_view[:32]).numpy(), atol=1e-6
    )
    online.fit(dataset, epochs=1, verbose=0)

    cached = cache_teacher_outputs(teacher, dataset, verbose=0)
    cached_x, _ = next(iter(cached))
    np.testing.assert_allclose(
        cached_x[keys.TEACHER_OUTPUTS]["logits"].numpy(), model(x[:32]).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(cached_x[keys.STUDENT_INPUTS].numpy(), student_view[:32], atol=1e-6)
    offline = Distiller(student, teacher=None)
    offline.compile("adam", jit_compile=False)
    assert np.isfinite(offline.fit(cached, epochs=1, verbose=0).history["loss"][-1])


def test_head_attached_after_the_teacher_ran():
    teacher = KerasTeacher(functional_teacher(), outputs={"embedding": "block_2"})
    x, _ = make_data(4)
    assert sorted(teacher(x)) == ["embedding"]  # built: Keras locks its state
    teacher.head = 3
    assert tuple(teacher(x)["logits"].shape) == (4, 3)
    teacher.head = keras.layers.Dense(5)  # a layer object, as fine_tune_head assigns
    outputs = teacher(x)
    assert tuple(outputs["logits"].shape) == (4, 5)
    assert teacher.head.trainable is False and teacher.trainable_weights == []
    assert teacher.head in teacher._flatten_layers()  # tracked: saved with the teacher
    with pytest.raises(ValueError, match="You cannot add new elements of state"):
        teacher.extra = keras.layers.Dense(1)  # the lock is back
