"""Migration from `keras.distillation`: Keras' own example code runs with only the import changed.

The code below is the example of `keras.distillation.Distiller`'s docstring (Keras 3.15), with the
two KerasHub presets it downloads replaced by small local models and data (and, in the feature
example, the layer names of `FeatureDistillation`'s docstring). Each example runs twice: with
`from keras.distillation import Distiller` (the reference) and with `from keras_kd import Distiller`
(the one-line migration); both must train (finite loss that decreases).
"""

import textwrap

import keras
import numpy as np
import pytest

SETUP = """
import keras
import numpy as np

rng = np.random.default_rng(0)
x_train = rng.normal(size=(256, 8)).astype("float32")
y_train = np.argmax(x_train[:, :4] + 0.5 * x_train[:, 4:], axis=1).astype("int32")

def make_model(widths, name):
    inputs = keras.Input((8,))
    x = inputs
    for i, width in enumerate(widths):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i + 2 - len(widths)}")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x), name=name)

teacher = make_model([64, 16], "teacher")   # layers dense_0, dense_1
teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
teacher.fit(x_train, y_train, epochs=5, verbose=0)
student = make_model([16], "student")       # layer dense_1
"""

# keras.distillation.Distiller's docstring, after the model-loading lines.
SINGLE_LOSS = """
# Single distillation loss
distiller = Distiller(
    teacher=teacher,
    student=student,
    distillation_losses=LogitsDistillation(temperature=3.0),
)

# Compile the distiller (like any Keras model)
distiller.compile(
    optimizer='adam',
    loss='sparse_categorical_crossentropy',
    metrics=['accuracy']
)

# Train the distiller
history = distiller.fit(x_train, y_train, epochs=10)

# Access the trained student model
trained_student = distiller.student
"""

MULTIPLE_LOSSES = """
# Multiple distillation losses
distiller = Distiller(
    teacher=teacher,
    student=student,
    distillation_losses=[
        LogitsDistillation(temperature=3.0),
        FeatureDistillation(
            teacher_layer_name="dense_1",
            student_layer_name="dense_1"
        )
    ],
    distillation_loss_weights=[1.0, 0.5],
)

# Compile with custom settings
distiller.compile(
    optimizer='adam',
    loss='sparse_categorical_crossentropy',
    metrics=['accuracy']
)
history = distiller.fit(x_train, y_train, epochs=10)
trained_student = distiller.student
"""

IMPORTS = {
    "keras": "from keras.distillation import Distiller, FeatureDistillation, LogitsDistillation",
    "keras_kd": "from keras_kd import Distiller, FeatureDistillation, LogitsDistillation",
}


def run(example, source):
    code = textwrap.dedent(SETUP)
    namespace = {}
    keras.utils.set_random_seed(0)
    exec(compile(IMPORTS[source] + "\n" + code + example, f"<{source} example>", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("example", [SINGLE_LOSS, MULTIPLE_LOSSES], ids=["single_loss", "multiple_losses"])
@pytest.mark.parametrize("source", ["keras", "keras_kd"])
def test_keras_distillation_example_trains_with_the_import_changed(example, source):
    namespace = run(example, source)
    losses = namespace["history"].history["loss"] if "loss" in namespace["history"].history else None
    if losses is None:  # keras.distillation logs `total_loss`
        losses = namespace["history"].history["total_loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    student = namespace["trained_student"]
    assert isinstance(student, keras.Model) and student.name == "student"
    if source == "keras_kd":
        import keras_kd

        assert isinstance(namespace["distiller"], keras_kd.Distiller)
        # A plain student with no teacher inside, accurate on the (easy) training task.
        accuracy = np.mean(np.argmax(student.predict(namespace["x_train"], verbose=0), -1) == namespace["y_train"])
        assert accuracy > 0.4, accuracy  # chance is 0.25


def test_positional_keras_order_is_an_error_that_shows_the_keyword_form():
    namespace = run("", "keras_kd")
    from keras_kd import Distiller, LogitsDistillation

    with pytest.raises(ValueError, match=r"look swapped.*Distiller\(student=student, teacher=teacher, \.\.\.\)"):
        Distiller(namespace["teacher"], namespace["student"], distillation_losses=LogitsDistillation())
