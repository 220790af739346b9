"""Text models on token ids: the character / byte CNN (Kim 2014) used by the demo and examples."""

from keras_kd.models.registry import register_model


@register_model("char_cnn")
def build_char_cnn(vocabulary_size, sequence_length, num_classes=2, embed_dim=64, filters=128,
                   kernel_sizes=(2, 3, 4, 5), hidden=128, dropout=0.3, expose_hidden=False, name="char_cnn"):
    """Kim-style text CNN on token ids: embedding → parallel Conv1D + global max-pool → (dense) → logits.

    With `expose_hidden=True` the model returns `{"logits": ..., "hidden_states": [pooled, ...]}`
    (the pooled convolution features, and the dense layer's output when `hidden > 0`) for feature
    losses; the default returns the logits tensor.
    """
    import keras

    inputs = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocabulary_size, embed_dim, name="embedding")(inputs)
    pooled = [
        keras.layers.GlobalMaxPooling1D()(keras.layers.Conv1D(filters, k, padding="same", activation="relu")(x))
        for k in kernel_sizes
    ]
    x = keras.layers.Concatenate(name="pooled")(pooled) if len(pooled) > 1 else pooled[0]
    hidden_states = [x]
    x = keras.layers.Dropout(dropout)(x)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
        hidden_states.append(x)
        x = keras.layers.Dropout(dropout)(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    outputs = {"logits": logits, "hidden_states": hidden_states} if expose_hidden else logits
    return keras.Model(inputs, outputs, name=name)
