"""Test setup: quiet TF, two logical CPU devices (for MirroredStrategy tests), seeded RNGs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # TF already initialized by another plugin: keep what is there
    pass

import keras  # noqa: E402

_tests_since_gc = 0


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(1234)
    yield
    # A full `gc.collect()` after every test costs seconds on a large heap: collect every 25 tests.
    global _tests_since_gc
    _tests_since_gc += 1
    free_memory = _tests_since_gc >= 25
    if free_memory:
        _tests_since_gc = 0
    keras.backend.clear_session(free_memory=free_memory)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
