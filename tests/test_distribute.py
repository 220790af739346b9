"""Distillation under tf.distribute: default, MirroredStrategy (2 logical CPUs) and
MultiWorkerMirroredStrategy (2 local worker processes on loopback) reach the same weights.

Run as a script (`python tests/test_distribute.py --worker OUT_DIR`) this file is one worker of the
multi-worker test: it reads `TF_CONFIG` and writes its final student weights to OUT_DIR.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

GLOBAL_BATCH = 16
EPOCHS = 2  # 64 examples / 16 = 4 steps per epoch → 8 steps
REPO = pathlib.Path(__file__).resolve().parents[1]


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 4, size=(64,)).astype("int32")
    return x, y


def _build_models():
    import keras

    rng = np.random.default_rng(42)
    teacher = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"), keras.layers.Dense(4)],
        name="teacher",
    )
    student = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, activation="tanh", name="hidden"), keras.layers.Dense(4)],
        name="student",
    )
    for model in (teacher, student):  # same initial weights in every process, whatever the strategy
        model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()])
    return teacher, student


def _hidden_state_term():
    """Distiller kwargs for a hidden-state term with a learned projection (student 8 → teacher 16)."""
    from keras_kd.losses.features import HiddenStateMSE

    return {
        "feature_losses": [HiddenStateMSE(layer_map=[("hidden", "hidden")], weight=0.1)],
        "student_features": {"hidden": "hidden"},
        "teacher_features": {"hidden": "hidden"},
    }


def _distill(strategy, epochs=EPOCHS, jit_compile=False):
    """Distill under `strategy` with a fixed global batch; returns (student + projection weights, history)."""
    import keras
    import tensorflow as tf

    from keras_kd import distribute

    models = {}
    keras.utils.set_random_seed(0)  # the projection's initial weights: same draw in every process

    def build_teacher():  # called first, in the scope: builds both so weights come from one RNG
        models["teacher"], models["student"] = _build_models()
        return models["teacher"]

    distiller = distribute.distiller_in_scope(
        strategy,
        lambda: models["student"],
        build_teacher,
        distiller_kwargs={"alpha": 0.7, **_hidden_state_term()},  # KL + student CE + hidden states
        compile_kwargs={
            "optimizer": lambda: keras.optimizers.SGD(learning_rate=0.1),
            "metrics": ["accuracy"],
            "jit_compile": jit_compile,
        },
    )
    x, y = _data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    history = distiller.fit(dataset, epochs=epochs, verbose=0, validation_data=dataset)
    return distiller.student.get_weights() + distiller.feature_losses[0].get_weights(), history.history


# ------------------------------------------------------------------------------------ strategies
def test_get_strategy_names_and_errors(monkeypatch):
    import pytest
    import tensorflow as tf

    from keras_kd.distribute import get_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    monkeypatch.delenv("KERAS_KD_STRATEGY", raising=False)
    assert get_strategy("default") is tf.distribute.get_strategy()
    assert get_strategy("auto").num_replicas_in_sync == 1  # no GPU, no TF_CONFIG, no TPU
    mirrored = get_strategy({"name": "mirrored"})
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2  # the 2 logical CPUs of conftest.py
    assert get_strategy(mirrored) is mirrored
    with pytest.raises(ValueError, match=r"Unknown strategy: 'mirror'\. Valid names: auto, default"):
        get_strategy("mirror")
    with pytest.raises(ValueError, match=r"strategy='multi_worker' needs a cluster: set the `TF_CONFIG`"):
        get_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match=r"`TF_CONFIG` must be JSON\. Received: TF_CONFIG='\{not json'"):
        get_strategy("auto")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match=r"`TF_CONFIG` must be a JSON object with a `cluster` and a `task`"):
        get_strategy("multi_worker")


def test_tpu_strategy_without_tpu_is_a_clear_error(monkeypatch):
    import pytest

    from keras_kd.distribute import get_strategy

    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    with pytest.raises(RuntimeError, match=r"strategy='tpu' found no reachable TPU\. Run on a TPU VM, set `TPU_NAME`"):
        get_strategy("tpu")


def test_batch_size_helpers():
    import pytest

    from keras_kd.distribute import get_strategy, global_batch_size, per_replica_batch_size

    mirrored = get_strategy("mirrored")
    assert global_batch_size(8, mirrored) == 16
    assert per_replica_batch_size(16, mirrored) == 8
    with pytest.raises(ValueError, match=r"multiple of the number of replicas \(2\)\. Received: global_batch=15"):
        per_replica_batch_size(15, mirrored)


def test_dtype_policy_scope_restores_global_policy():
    import keras

    from keras_kd.distribute import dtype_policy

    with dtype_policy("mixed_bfloat16"):
        layer = keras.layers.Dense(2)
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


# ------------------------------------------------------------------------------------ equivalence
_MIRRORED = []


def _mirrored():
    """One MirroredStrategy for the module: TF reuses collective instance keys across strategy
    objects of one process, so two strategies running models of different sizes collide."""
    from keras_kd.distribute import get_strategy

    if not _MIRRORED:
        _MIRRORED.append(get_strategy("mirrored"))
    return _MIRRORED[0]


def test_mirrored_matches_default_strategy_weights_and_logged_losses():
    import tensorflow as tf

    default_weights, default_history = _distill(tf.distribute.get_strategy())
    mirrored = _mirrored()
    assert mirrored.num_replicas_in_sync == 2
    mirrored_weights, mirrored_history = _distill(mirrored)
    # The training moved the weights (so the comparison below means something) ...
    _, initial_student = _build_models()
    assert len(default_weights) == 6  # student kernel/bias x2 + projection kernel/bias
    moved = zip(default_weights, initial_student.get_weights(), strict=False)  # the student's 4 arrays
    assert max(np.abs(w - w0).max() for w, w0 in moved) > 1e-2
    # ... and both strategies moved them identically: losses are global-batch means.
    for w_default, w_mirrored in zip(default_weights, mirrored_weights, strict=True):
        np.testing.assert_allclose(w_mirrored, w_default, atol=1e-5)
    # Logged losses and metrics are global-batch values, not per-replica ones (the classic trap:
    # a custom train_step that forgets the replica scaling logs loss / num_replicas).
    for key in ("loss", "student_loss", "distillation_loss", "hidden_mse", "accuracy", "teacher_agreement", "val_loss",
                "val_distillation_loss", "val_accuracy"):
        np.testing.assert_allclose(mirrored_history[key], default_history[key], rtol=1e-5, err_msg=key)


def test_first_epoch_loss_equals_numpy_reference_under_mirrored():
    """Under 2 replicas the logged first-step loss is the global-batch loss computed by hand."""
    import keras
    import tensorflow as tf

    from keras_kd import Distiller
    from keras_kd.losses import KLDivergence

    x, y = _data()
    x, y = x[:GLOBAL_BATCH], y[:GLOBAL_BATCH]
    with _mirrored().scope():
        teacher, student = _build_models()
        distiller = Distiller(
            student=student, teacher=teacher, distillation_loss=KLDivergence(temperature=4.0), alpha=0.7
        )
        distiller.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    history = distiller.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH), verbose=0)

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    t, s = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    temperature = 4.0
    log_p, log_q = log_softmax(t / temperature), log_softmax(s / temperature)
    kl = temperature**2 * (np.exp(log_p) * (log_p - log_q)).sum(-1).mean()
    ce = -log_softmax(s)[np.arange(len(y)), y].mean()
    np.testing.assert_allclose(history.history["distillation_loss"][0], kl, rtol=1e-5)
    np.testing.assert_allclose(history.history["student_loss"][0], ce, rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"][0], 0.7 * kl + 0.3 * ce, rtol=1e-5)


def _attention_models():
    """Teacher / student over (6 positions x 8 features) returning logits and attention maps."""
    import keras

    def model(key_dim, name):
        inputs = keras.Input((6, 8))
        mixed, scores = keras.layers.MultiHeadAttention(num_heads=2, key_dim=key_dim)(
            inputs, inputs, return_attention_scores=True
        )
        logits = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling1D()(mixed))
        return keras.Model(inputs, {"logits": logits, "attentions": [scores]}, name=name)

    return model(8, "teacher"), model(4, "student")


def _attention_terms():
    from keras_kd.losses.attention import AttentionKL, AttentionMSE

    return {"feature_losses": [AttentionKL(weight=0.5), AttentionMSE(weight=0.5)]}


@pytest.mark.parametrize(
    "build, term_kwargs, logged",
    [(_build_models, _hidden_state_term, "hidden_mse"), (_attention_models, _attention_terms, "attention_kl")],
    ids=["hidden_states", "attention"],
)
def test_jit_compile_matches_the_plain_step_with_feature_terms_and_schedules(build, term_kwargs, logged):
    """XLA end to end: KL + feature terms (a hidden-state term with a learned projection; MiniLM /
    TinyBERT attention terms) + temperature and alpha schedules give the weights of the non-compiled
    step, and the schedules never retrace the step."""
    import keras
    import tensorflow as tf

    from keras_kd import Distiller
    from keras_kd.callbacks import AlphaScheduler, TemperatureScheduler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64,) + tuple(build()[0].inputs[0].shape[1:])).astype("float32")
    y = rng.integers(0, 4, size=(64,)).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    results = {}
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)  # same initial weights (and projection) in both runs
        teacher, student = build()
        distiller = Distiller(student, teacher, alpha=0.7, **term_kwargs())
        distiller.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), jit_compile=jit_compile)
        traces = []
        step = distiller.train_step
        distiller.train_step = lambda data, step=step, traces=traces: traces.append(1) or step(data)  # when traced
        callbacks = [
            TemperatureScheduler(lambda s: 4.0 - 0.2 * s, unit="step"),
            AlphaScheduler([(0, 0.9), (4, 0.5)], unit="step"),
        ]
        history = distiller.fit(dataset, epochs=3, verbose=0, callbacks=callbacks)
        assert len(traces) == 1, f"jit_compile={jit_compile}: traced {len(traces)} times"
        assert np.all(np.isfinite(history.history[logged])) and history.history[logged][0] > 0
        results[jit_compile] = distiller.student.get_weights() + [
            w for term in distiller.feature_losses for w in term.get_weights()
        ]
    if build is _build_models:
        assert len(results[True]) == 6  # student (4) + the projection 8 → 16 (2)
    for compiled, plain in zip(results[True], results[False], strict=True):
        np.testing.assert_allclose(compiled, plain, atol=1e-5)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_matches_default_strategy(tmp_path):
    import tensorflow as tf

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ)
        env.update(
            TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
            CUDA_VISIBLE_DEVICES="",
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        out = tmp_path / f"worker{index}"
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append(
            (subprocess.Popen([sys.executable, __file__, "--worker", str(out)], env=env, stdout=log, stderr=log), log)
        )
    deadline = time.monotonic() + 150
    try:
        for process, _ in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
            log.close()
    for index, (process, _) in enumerate(processes):
        assert process.returncode == 0, (tmp_path / f"worker{index}.log").read_text()[-3000:]

    default_weights, default_history = _distill(tf.distribute.get_strategy())
    for index in range(2):
        out = tmp_path / f"worker{index}"
        summary = json.loads((out / "summary.json").read_text())
        assert summary["num_replicas_in_sync"] == 2
        for i, w_default in enumerate(default_weights):
            np.testing.assert_allclose(np.load(out / f"weight_{i}.npy"), w_default, atol=1e-5)
        np.testing.assert_allclose(summary["loss"], default_history["loss"], rtol=1e-5)


def _worker_main(out_dir):
    """One worker of the multi-worker test: strategy first (before any other TF op), then train."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_kd.distribute import get_strategy

    strategy = get_strategy("auto")  # TF_CONFIG lists 2 workers → MultiWorkerMirroredStrategy
    import tensorflow as tf

    assert isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy), type(strategy)
    weights, history = _distill(strategy)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, w in enumerate(weights):
        np.save(out / f"weight_{i}.npy", w)
    summary = {"num_replicas_in_sync": strategy.num_replicas_in_sync, "loss": history["loss"]}
    (out / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[2])
    else:
        raise SystemExit(f"usage: {sys.argv[0]} --worker OUT_DIR")
