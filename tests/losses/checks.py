"""Shared checks for the loss tests: mixed-precision runs and config round trips."""

import keras
import numpy as np

from keras_kd import losses as kd_losses


def run_under_mixed_bfloat16(fn, teacher, student):
    """`fn(teacher, student)` on bfloat16 copies under `mixed_bfloat16`.

    Returns the value and the bfloat16-rounded inputs as float32 NumPy arrays, on which a float32
    NumPy reference must agree with the loss to float32 precision.
    """
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        t16, s16 = keras.ops.cast(teacher, "bfloat16"), keras.ops.cast(student, "bfloat16")
        value = fn(t16, s16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rounded = [keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")) for x in (t16, s16)]
    return value, rounded


def assert_config_round_trip(name, cls, kwargs):
    """Registry lookup by name and by config dict, `from_config` and Keras (de)serialization."""
    loss = kd_losses.get(name, **kwargs)
    assert type(loss) is cls
    config = loss.get_config()
    assert cls.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls and restored.get_config() == config
    from_dict = kd_losses.get({"name": name, **kwargs})
    assert type(from_dict) is cls and from_dict.get_config() == config


def assert_term_float32_under_mixed_bfloat16(cls, key, teacher, student, mask, reference):
    """A feature/attention term on bfloat16 `[teacher]` / `[student]` lists under `key` returns a
    float32 value equal to `reference(t, s, mask).mean()` on the rounded inputs."""
    value, (t_r, s_r) = run_under_mixed_bfloat16(
        lambda t16, s16: cls()({key: [t16]}, {key: [s16], "padding_mask": mask}), teacher, student
    )
    assert value.dtype == "float32"
    np.testing.assert_allclose(float(value), reference(t_r, s_r, mask).mean(), rtol=1e-5)
