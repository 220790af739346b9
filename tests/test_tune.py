"""keras_kd.tune: T / alpha / loss search on cached teacher outputs (KerasTuner)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("keras_tuner")

from keras_kd import defaults, tune  # noqa: E402
from keras_kd.data import with_teacher_outputs  # noqa: E402


def _student():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])


def _task():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    w = rng.normal(size=(8, 3)).astype("float32")
    teacher_logits = 3.0 * x @ w
    y = teacher_logits.argmax(-1).astype("int32")
    cached = with_teacher_outputs(x[:64], teacher_logits[:64], y[:64], batch_size=32)
    return cached, (x[64:], y[64:])


def test_two_trials_on_cached_outputs(tmp_path):
    cached, validation = _task()
    result = tune.search(
        _student,
        cached,
        validation,
        temperatures=(1.0, 2.0),
        alphas=(0.5, 1.0),
        losses=("kl", "mse_logits"),
        max_trials=2,
        epochs=1,
        seed=0,
        directory=str(tmp_path / "trials"),
        log_dir=str(tmp_path / "tb"),
        jit_compile=False,
    )
    assert len(result.rows) == 2
    scores = [row["val_accuracy"] for row in result.rows]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    for row in result.rows:
        assert row["loss"] in ("kl", "mse_logits") and row["temperature"] in (1.0, 2.0)
        assert row["alpha"] in (0.5, 1.0) and row["seconds"] > 0
    table = result.to_markdown()
    assert table.splitlines()[0] == "| trial | loss | temperature | alpha | val_accuracy | seconds |"
    assert len(table.splitlines()) == 4
    kwargs = result.best_distiller_kwargs()
    assert kwargs["alpha"] == result.best["alpha"]
    # TensorBoard: one folder per trial with its hyperparameters (HParams dashboard).
    logged = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "tb") for f in files if "tfevents" in f]
    assert any(b"hparams" in open(path, "rb").read() for path in logged)


def test_make_loss_sets_temperature_only_where_it_exists():
    assert float(keras.ops.convert_to_numpy(tune.make_loss("kl", 2.0).temperature)) == 2.0
    assert getattr(tune.make_loss("mse_logits", 2.0), "temperature", None) is None


def test_default_row_finds_the_defaults():
    rows = [
        {"loss": "js", "temperature": 1.0, "alpha": 0.5, "val_accuracy": 0.9},
        {
            "loss": defaults.DEFAULT_LOSS,
            "temperature": defaults.DEFAULT_TEMPERATURE,
            "alpha": defaults.DEFAULT_ALPHA,
            "val_accuracy": 0.8,
        },
    ]
    assert tune.default_row(rows) is rows[1]
    assert tune.default_row(rows[:1]) is None


def test_bad_arguments_fail_before_any_trial():
    cached, validation = _task()
    uncached = tf.data.Dataset.from_tensor_slices((validation[0], validation[1])).batch(8)
    with pytest.raises(ValueError, match="must carry cached teacher outputs"):
        tune.search(_student, uncached, validation)
    with pytest.raises(TypeError, match="must be a tf.data.Dataset"):
        tune.search(_student, validation, validation)
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\]. Received: alpha=1.5"):
        tune.search(_student, cached, validation, alphas=(0.5, 1.5))
    with pytest.raises(ValueError, match="Unknown distillation loss 'nope'"):
        tune.search(_student, cached, validation, losses=("kl", "nope"))
    with pytest.raises(ValueError, match="`max_trials` must be a positive integer"):
        tune.search(_student, cached, validation, max_trials=0)
    with pytest.raises(ValueError, match="`validation_batch_size` must be a positive integer or None"):
        tune.search(_student, cached, validation, validation_batch_size=0)
    with pytest.raises(ValueError, match="`tuner` must be one of"):
        tune.search(_student, cached, validation, tuner="hyperband")
    with pytest.raises(
        ValueError, match=r"`steps_per_execution` must be a positive integer. Received: steps_per_execution=0"
    ):
        tune.search(_student, cached, validation, steps_per_execution=0)


def _seeded_student():
    """The same initial weights on every call (seeded initializers)."""
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(6, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
            keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
        ]
    )


def test_trials_reuse_one_compiled_distiller_per_loss_group_with_the_same_results(tmp_path, monkeypatch):
    """All trials whose loss has a temperature share one traced Distiller (a `LossSwitch` selects the
    loss), those without one another; the trials' results are those of a search that builds and
    compiles a fresh Distiller with the trial's own loss for every trial."""
    import gc

    from keras_kd import Distiller

    cached, validation = _task()
    runs = {}
    from keras_kd import validation as first_batch

    for reuse in (True, False):
        compiled, checked, cleared = [], [], []
        clear_ = keras.backend.clear_session
        monkeypatch.setattr(
            keras.backend, "clear_session", lambda *a, _c=clear_, _seen=cleared, **k: (_seen.append(1), _c(*a, **k))[1]
        )
        compile_ = Distiller.compile
        monkeypatch.setattr(
            Distiller,
            "compile",
            lambda self, *a, _c=compile_, _seen=compiled, **k: (_seen.append(self), _c(self, *a, **k))[1],
        )
        check_ = first_batch.check_first_batch
        monkeypatch.setattr(
            first_batch,
            "check_first_batch",
            lambda model, *a, _c=check_, _seen=checked, **k: (_seen.append(k.get("name", "x")), _c(model, *a, **k))[1],
        )
        result = tune.search(
            _seeded_student, cached, validation, temperatures=(1.0, 4.0), alphas=(0.5,),
            losses=("kl", "mse_logits", "js"), tuner="grid", max_trials=4, epochs=1,
            directory=str(tmp_path / f"trials_{reuse}"), jit_compile=False, reuse_compiled=reuse,
        )
        monkeypatch.undo()
        trials = result.tuner.oracle.trials.values()
        runs[reuse] = {
            tuple(sorted(t.hyperparameters.values.items())): [
                [obs.value for obs in t.metrics.get_history(name)] for name in ("val_loss", "distillation_loss")
            ]
            for t in trials
        }
        assert len(result.rows) == 4
        # the grid's order: kl T=1, mse_logits T=1, js T=1, kl T=4 (both groups, a switch from kl to js, a new T)
        assert [(r["loss"], r["temperature"]) for r in sorted(result.rows, key=lambda r: int(r["trial"]))] == [
            ("kl", 1.0), ("mse_logits", 1.0), ("js", 1.0), ("kl", 4.0)
        ]
        # with reuse: two Distillers compiled (and traced): one for kl + js, one for mse_logits; else one per
        # trial (+ the tuner's first build)
        assert len(compiled) == (2 if reuse else 5)
        # first-batch checks of the training and validation data: in every trial, or in each pooled
        # Distiller's first trial only (the same data, the same student architecture)
        assert checked == ["x", "validation_data"] * (2 if reuse else 4)
        assert gc.get_freeze_count() == 0  # the search unfroze the objects it froze
        # KerasTuner clears the session before each trial's build; the pooled Distillers' trials keep it
        # (clearing it drops the instantiated train and test functions, rebuilt at a cost in every trial)
        assert len(cleared) == (0 if reuse else 4)
        # the best trial's weights (saved from the pooled Distiller) load into a fresh Distiller of its loss
        best = result.tuner.get_best_models(num_models=1)[0]
        assert best.distillation_loss.name.startswith(result.best["loss"].split("_")[0])
    assert runs[True].keys() == runs[False].keys() and len(runs[True]) == 4
    for key, histories in runs[True].items():
        # a fresh student (weights of a new `build_student()`), a fresh Adam state, this trial's loss, T and alpha
        np.testing.assert_allclose(histories, runs[False][key], rtol=1e-6, err_msg=str(key))


def test_save_weights_best_writes_only_the_best_trials_so_far_with_the_same_results(tmp_path):
    """`save_weights="best"` (the default) keeps each trial's best epoch in memory and writes it only
    when the trial ends as the best so far: the same trials and scores as KerasTuner's per-epoch
    writes (`"all"`), the same best model from `get_best_models()`, a clear error for a trial
    whose weights were not written."""
    cached, validation = _task()
    runs = {}
    for save in ("best", "all"):
        directory = tmp_path / save
        result = tune.search(
            _seeded_student, cached, validation, temperatures=(1.0, 2.0, 4.0), alphas=(0.5, 1.0), losses=("kl",),
            tuner="grid", max_trials=6, epochs=2, learning_rate=0.05, directory=str(directory), project_name="p",
            jit_compile=False, save_weights=save,
        )
        trials = sorted(result.tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
        written = sorted(
            name[len("trial_"):] for name in os.listdir(directory / "p")
            if os.path.exists(directory / "p" / name / "checkpoint.weights.h5")
        )
        best_model = result.tuner.get_best_models(num_models=1)[0]
        runs[save] = (
            [(t.trial_id, t.score, [o.value for o in t.metrics.get_history("val_loss")]) for t in trials],
            written,
            [w.numpy() for w in best_model.student.weights],
            result,
        )
    (histories, written, best_weights, result), (histories_all, written_all, best_weights_all, _) = (
        runs["best"], runs["all"]
    )
    assert histories == histories_all and len(histories) == 6
    assert written_all == [trial_id for trial_id, _, _ in histories_all]  # every trial wrote
    # written: each trial that scored at least as well as every earlier trial (ties included)
    expected, best = [], -np.inf
    for trial_id, score, _ in histories:
        if score >= best:
            expected.append(trial_id)
            best = score
    assert [score for _, score, _ in histories] == [0.46875, 0.46875, 0.5, 0.4375, 0.46875, 0.5]
    assert written == expected == ["0", "1", "2", "5"]  # 3 and 4 scored below trial 2
    for mine, theirs in zip(best_weights, best_weights_all, strict=True):
        np.testing.assert_array_equal(mine, theirs)  # the best epoch of the best trial, from memory
    unsaved = next(t for t in result.tuner.oracle.trials.values() if t.trial_id not in written)
    with pytest.raises(ValueError, match=f"The weights of trial {unsaved.trial_id} were not saved.*save_weights=.all."):
        result.tuner.load_model(unsaved)
    with pytest.raises(ValueError, match=r"`save_weights` must be one of \('best', 'all'\). Received: save_weights='none'"):
        tune.search(_seeded_student, cached, validation, save_weights="none")


def test_best_epoch_in_memory_keeps_the_best_epochs_weights():
    """The in-memory stand-in for KerasTuner's `SaveBestEpoch` keeps the weights of the best epoch,
    not the last one (a tie keeps the first), and every epoch's when the objective is not logged."""
    import keras_tuner

    model = _seeded_student()
    keeper = tune._BestEpochInMemory(keras_tuner.Objective("val_accuracy", "max"), "unused.weights.h5")
    keeper.set_model(model)
    kernel = model.weights[0]
    for epoch, (value, score) in enumerate([(1.0, 0.5), (2.0, 0.75), (3.0, 0.75), (4.0, 0.25)]):
        kernel.assign(np.full(kernel.shape, value, "float32"))
        keeper.on_epoch_end(epoch, {"val_accuracy": score, "val_loss": 1.0})
    assert keeper.best_value == 0.75
    np.testing.assert_array_equal(keeper.weights[0], np.full(kernel.shape, 2.0, "float32"))
    kernel.assign(np.full(kernel.shape, 5.0, "float32"))
    keeper.on_epoch_end(4, {"val_loss": 1.0})
    np.testing.assert_array_equal(keeper.weights[0], np.full(kernel.shape, 5.0, "float32"))


def test_loss_switch_computes_the_selected_loss_only():
    """`LossSwitch` returns the selected loss' value (KL checked against NumPy), reads one shared
    temperature, and refuses mixed groups and unknown names."""
    rng = np.random.default_rng(3)
    teacher = rng.normal(size=(4, 5)).astype("float32")
    student = rng.normal(size=(4, 5)).astype("float32")
    switch = tune.LossSwitch(["kl", "js"], temperature=2.0)
    assert switch.selected == "kl"

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    t, s = log_softmax(teacher / 2.0), log_softmax(student / 2.0)
    expected_kl = 4.0 * np.mean(np.sum(np.exp(t) * (t - s), axis=-1))
    np.testing.assert_allclose(float(switch(teacher, student)), expected_kl, rtol=1e-5)
    switch.select("js", 4.0)
    assert switch.selected == "js"
    assert float(keras.ops.convert_to_numpy(switch.losses[0].temperature)) == 4.0  # shared with kl
    js = tune.make_loss("js", 4.0)
    np.testing.assert_allclose(float(switch(teacher, student)), float(js(teacher, student)), rtol=1e-6)
    with pytest.raises(ValueError, match="all have a temperature or all have none"):
        tune.LossSwitch(["kl", "mse_logits"])
    with pytest.raises(ValueError, match="Unknown loss 'dist' for this LossSwitch"):
        switch.select("dist")


def test_validation_batch_size_and_steps_per_execution_change_the_cost_not_the_scores(tmp_path):
    """The validation arrays are scored in batches of `validation_batch_size` (Keras' fit default is
    32), and `steps_per_execution` steps run per call: the same trials, the same scores."""
    cached, validation = _task()
    assert tune.VALIDATION_BATCH_SIZE > 32
    scores = {}
    for size, steps in ((4, 1), (None, 1), (None, 2)):
        result = tune.search(
            _seeded_student, cached, validation, temperatures=(1.0, 4.0), alphas=(0.5,), losses=("kl",),
            tuner="grid", max_trials=2, epochs=2, validation_batch_size=size, steps_per_execution=steps,
            directory=str(tmp_path / f"{size}_{steps}"), jit_compile=False,
        )
        trials = result.tuner.oracle.trials.values()
        scores[size, steps] = {
            t.hyperparameters.values["temperature"]: [
                [obs.value for obs in t.metrics.get_history(name)] for name in ("val_accuracy", "val_loss")
            ]
            for t in trials
        }
    reference = scores[None, 1]
    assert reference.keys() == {1.0, 4.0}
    for other in (scores[4, 1], scores[None, 2]):
        assert other.keys() == reference.keys()
        for key, (accuracy, loss) in other.items():
            assert accuracy == reference[key][0]
            np.testing.assert_allclose(loss, reference[key][1], rtol=1e-5)


def test_validation_arrays_are_batched_once_into_the_same_batches():
    _, (x, y) = _task()
    dataset = tune._validation_dataset((x, y), 12)
    batches = list(dataset.as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [12, 12, 8]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    weighted = list(tune._validation_dataset([x, y, np.ones(len(y))], 32).as_numpy_iterator())
    assert len(weighted) == 1 and len(weighted[0]) == 3
    # Left to fit as given: Keras' default batch size, a dataset, non-array inputs.
    assert tune._validation_dataset((x, y), None) == (x, y)
    ready = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    assert tune._validation_dataset(ready, 12) is ready
    listed = (x.tolist(), y.tolist())
    assert tune._validation_dataset(listed, 12) is listed


def test_cli_tune_on_a_csv_source(tmp_path):
    """`keras-kd tune --config`: the config's teacher labels the training split once, the trials train
    the config's student on those outputs, and `tune.md` lists them best first."""
    from keras_kd import models
    from keras_kd.cli import main

    texts = {"pos": ["good great fine", "love it", "very nice", "great stuff", "so good", "fine fine"],
             "neg": ["bad awful", "hate it", "very poor", "awful stuff", "so bad", "poor poor"],
             "meh": ["okay i guess", "neutral", "so so", "average", "it is ok", "fair"]}
    source = tmp_path / "train.csv"
    source.write_text("text,label\n" + "\n".join(f"{t},{y}" for y, rows in texts.items() for t in rows) + "\n")
    teacher = models.get_model("char_cnn", vocabulary_size=64, sequence_length=16, num_classes=3, embed_dim=8,
                               filters=8, kernel_sizes=(2,), hidden=0)
    teacher.save(str(tmp_path / "teacher.keras"))
    config = tmp_path / "run.yaml"
    config.write_text(
        f"teacher: {{path: {tmp_path / 'teacher.keras'}}}\n"
        "student: {builder: char_cnn, kwargs: {embed_dim: 4, filters: 4, kernel_sizes: [2], hidden: 0}}\n"
        f"data:\n  source: {{format: csv, train: {source}, test_fraction: 0.25}}\n"
        "  tokenizer: char\n  vocabulary_size: 64\n  sequence_length: 16\n  validation_fraction: 0.25\n"
        "training: {epochs: 1, batch_size: 8, jit_compile: false}\n"
    )
    code = main.main(["tune", "--config", str(config), "--trials", "2", "--seed", "0",
                      "--output-dir", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs")])
    assert code == 0
    lines = (tmp_path / "out" / "run" / "tune.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| trial")]
    assert len(rows) == 2
