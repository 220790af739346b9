"""keras_kd.reports.measure: the one place size and latency are measured."""

import os

import keras
import numpy as np
import pytest

from keras_kd.reports import measure, metrics


def _mlp():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(3)])


def test_metrics_reexports_the_same_functions():
    assert metrics.size_on_disk is measure.size_on_disk
    assert metrics.latency_per_example is measure.latency_per_example
    assert metrics.human_bytes is measure.human_bytes


def test_weights_size_ignores_optimizer_state(tmp_path):
    model = _mlp()
    plain = measure.weights_size(model)
    model.save_weights(tmp_path / "plain.weights.h5")
    assert plain == os.path.getsize(tmp_path / "plain.weights.h5")
    # (4*8 + 8) + (8*3 + 3) = 67 float32 weights: the file holds them plus HDF5 overhead.
    assert plain > 67 * 4

    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 3)), epochs=1, verbose=0)  # creates Adam's slots
    model.save_weights(tmp_path / "compiled.weights.h5")
    assert os.path.getsize(tmp_path / "compiled.weights.h5") > plain  # the slots are in that file
    assert measure.weights_size(model) == plain


def test_weights_size_of_a_layer_counts_raw_bytes():
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    assert measure.weights_size(layer) == (4 * 3 + 3) * 4


def test_latency_per_example_counts_calls_and_validates():
    calls = []
    assert measure.latency_per_example(calls.append, np.zeros((1, 4)), warmup=2, repeats=5) >= 0
    assert len(calls) == 7
    with pytest.raises(ValueError, match=r"`repeats` must be >= 1. Received: repeats=0"):
        measure.latency_per_example(calls.append, None, repeats=0)
    with pytest.raises(ValueError, match=r"`warmup` must be >= 0. Received: warmup=-1"):
        measure.latency_per_example(calls.append, None, warmup=-1)


def test_keras_latency_times_a_compiled_call():
    model = _mlp()
    seconds = measure.keras_latency(model, np.zeros((1, 4), "float32"), repeats=5)
    assert 0 < seconds < 1.0


def test_median_ms():
    assert measure.median_ms([0.001, 0.003, 0.002]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="`seconds` is empty"):
        measure.median_ms([])


def test_human_bytes():
    assert measure.human_bytes(512) == "512 B"
    assert measure.human_bytes(1536) == "1.5 KB"
    assert measure.human_bytes(5 * 1024**4) == "5120.0 GB"
