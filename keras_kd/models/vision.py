"""Image / feature-vector models: an MLP and a small CNN for 28×28-like images."""

from keras_kd.models.registry import register_model


def _outputs(logits, hidden_states, expose_hidden):
    return {"logits": logits, "hidden_states": hidden_states} if expose_hidden else logits


@register_model("mlp")
def build_mlp(input_shape, num_classes, hidden=(256,), dropout=0.2, expose_hidden=False, name="mlp"):
    """Flatten → Dense(relu) blocks → logits, for small images or feature vectors.

    With `expose_hidden=True` the model returns `{"logits", "hidden_states"}` (one per Dense block).
    """
    import keras

    inputs = keras.Input(tuple(input_shape), name="inputs")
    x = keras.layers.Flatten()(inputs)
    hidden_states = []
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
        hidden_states.append(x)
        x = keras.layers.Dropout(dropout)(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, _outputs(logits, hidden_states, expose_hidden), name=name)


@register_model("image_cnn")
def build_image_cnn(input_shape, num_classes, filters=(32, 64), hidden=128, dropout=0.3, expose_hidden=False,
                    name="image_cnn"):
    """Conv(3x3, relu) + max-pool blocks → dense → logits, for 28×28-like images.

    With `expose_hidden=True` the model returns `{"logits", "hidden_states"}` (each block's pooled
    feature map, then the dense layer's output when `hidden > 0`).
    """
    import keras

    inputs = keras.Input(tuple(input_shape), name="inputs")
    x = inputs
    hidden_states = []
    for f in filters:
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        hidden_states.append(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout)(x)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu")(x)
        hidden_states.append(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, _outputs(logits, hidden_states, expose_hidden), name=name)
