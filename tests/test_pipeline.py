"""`keras_kd.pipeline`: teachers from files, probabilities → logits, multi-teacher/feature configs, results."""

import re
import warnings

import numpy as np
import pytest

from keras_kd import pipeline
from keras_kd.pipeline import teachers as pipeline_teachers


def _csv(path, n=8):
    rows = [(f"good {i}", "pos") for i in range(n)] + [(f"bad {i}", "neg") for i in range(n)]
    path.write_text("text,label\n" + "\n".join(f"{t},{y}" for t, y in rows) + "\n")
    return str(path)


def _config(tmp_path, **sections):
    config = {
        "name": "t",
        "teacher": {"builder": "char_cnn", "kwargs": {"embed_dim": 4, "filters": 4, "kernel_sizes": [2], "hidden": 4}},
        "student": {"builder": "char_cnn", "kwargs": {"embed_dim": 2, "filters": 2, "kernel_sizes": [2], "hidden": 0}},
        "data": {"source": {"format": "csv", "train": _csv(tmp_path / "train.csv"), "test_fraction": 0.25},
                 "vocabulary_size": 32, "sequence_length": 8, "validation_fraction": 0.0},
        "training": {"epochs": 1, "batch_size": 8, "jit_compile": False, "steps_per_epoch": 1},
        "baseline": {"enabled": False},
        "export": {"saved_model": False, "tflite": []},
        "output": {"saved_models_dir": str(tmp_path / "out"), "runs_dir": str(tmp_path / "runs")},
    }
    config.update(sections)
    return config


def test_probabilities_are_detected_and_converted_to_logits():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Softmax()])
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    probabilities = model(x).numpy()
    assert pipeline_teachers.looks_like_probabilities(probabilities)
    assert not pipeline_teachers.looks_like_probabilities(np.log(probabilities))
    spec = pipeline.parse_config({"teacher": {"path": "t.keras"}, "student": {"builder": "mlp"},
                                  "data": {"dataset": "mnist_5k"}}).teacher
    teacher = pipeline_teachers.Teacher(model, spec, "keras")
    with pytest.warns(UserWarning, match=r"`teacher` outputs probabilities .* uses log\(probabilities\)"):
        pipeline_teachers.ensure_logits(teacher, x, "teacher")
    logits = pipeline_teachers.outputs_of(teacher.model, x)
    np.testing.assert_allclose(logits, np.log(probabilities), rtol=1e-5, atol=1e-6)
    # a logits teacher is left alone, silently
    plain = pipeline_teachers.Teacher(keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)]), spec, "keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pipeline_teachers.ensure_logits(plain, x, "teacher").model is plain.model


def test_keras_teacher_picks_layers_of_a_sequential_model():
    import keras

    from keras_kd.teachers import KerasTeacher

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="h"), keras.layers.Dense(2, name="out")])
    outputs = KerasTeacher(model, outputs={"logits": None, "hidden_states": ["h"]})(np.ones((2, 4), "float32"))
    assert outputs["logits"].shape == (2, 2) and outputs["hidden_states"][0].shape == (2, 3)
    np.testing.assert_allclose(outputs["logits"], model(np.ones((2, 4), "float32")), rtol=1e-6)


def test_sha256_accepts_the_right_file_and_refuses_another(tmp_path):
    path = tmp_path / "t.keras"
    path.write_bytes(b"teacher bytes")
    import hashlib

    digest = hashlib.sha256(b"teacher bytes").hexdigest()
    pipeline_teachers.check_sha256(str(path), digest, "teacher")
    with pytest.raises(pipeline.ConfigError, match=r"`teacher.sha256`: .* has SHA-256 [0-9a-f]{64}, the config "
                                                   r"expects 0{64}"):
        pipeline_teachers.check_sha256(str(path), "0" * 64, "teacher")


def test_run_returns_metrics_and_paths(tmp_path):
    result = pipeline.run(_config(tmp_path), verbose=0)
    assert result.name == "t" and result.task == "classification" and result.class_names == ["neg", "pos"]
    assert set(result.metrics) == {"teacher", "distilled"}
    assert 0.0 <= result.metrics["distilled"]["accuracy"] <= 1.0
    assert result.metrics["teacher"]["params"] > result.metrics["distilled"]["params"]
    assert (tmp_path / "out" / "t" / "report.md").is_file() and result.paths["report"].endswith("report.md")


def test_embedded_teacher_of_another_split_is_refused_except_in_a_smoke_run(tmp_path):
    """A full run refuses an embedded teacher whose card names another data split; a smoke run (a
    one-step wiring check on a slice, whose hash never matches) checks only the file and runs."""
    from keras_kd.models import embedded
    from keras_kd.models.ngram import build_ngram_bag
    from keras_kd.pipeline.config import ConfigError

    folder = tmp_path / "teacher"
    folder.mkdir()
    build_ngram_bag(vocabulary_size=32, sequence_length=8, buckets=64).save(str(folder / "teacher.keras"))
    embedded.write_card(str(folder), "teacher.keras", data_sha256="ab" * 32, command="make teacher",
                        accuracy={"test": 0.5})
    config = _config(tmp_path, teacher={"embedded": str(folder), "builder": "ngram_bag", "kwargs": {"buckets": 64}})
    refused = r"`teacher.embedded`: The embedded teacher in .* was trained on another data split"
    with pytest.raises(ConfigError, match=refused):
        pipeline.run(config, verbose=0)
    result = pipeline.run(config, smoke=True, verbose=0)
    # the embedded file's model: 64 buckets x 2 classes + a 2 x 2 head
    assert result.metrics["teacher"]["params"] == 64 * 2 + 6


@pytest.mark.large  # two online teachers + a feature loss: ~1 min on 2 busy cores
def test_multi_teacher_with_weights_and_a_feature_loss(tmp_path):
    teacher = _config(tmp_path)["teacher"]
    hidden = {**teacher, "kwargs": {**teacher["kwargs"], "expose_hidden": True}}
    config = _config(
        tmp_path,
        teacher=None,
        teachers=[{**hidden, "weight": 3.0}, {**hidden, "kwargs": {**hidden["kwargs"], "filters": 6}}],
        student={"builder": "char_cnn", "kwargs": {"embed_dim": 2, "filters": 2, "kernel_sizes": [2], "hidden": 3,
                                                   "expose_hidden": True}},
        distillation={"loss": "kl", "temperature": 2.0, "alpha": 0.5,
                      "feature_losses": [{"name": "hidden_mse", "weight": 0.1}]},
    )
    config.pop("teacher")
    result = pipeline.run(config, verbose=0)
    assert {"teacher 0", "teacher 1", "distilled"} <= set(result.metrics)
    assert "online teacher" in (tmp_path / "out" / "t" / "report.md").read_text()


def test_best_epoch_callback_restores_the_weights_of_the_best_validation_epoch():
    import keras

    from keras_kd.pipeline.steps import _best_epoch_callback

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, use_bias=False)])
    x_val, y_val = np.array([[1.0], [2.0]], "float32"), np.array([1, 1])
    callback = _best_epoch_callback(model, x_val, y_val)
    right, wrong = np.array([[0.0, 1.0]], "float32"), np.array([[1.0, 0.0]], "float32")
    for epoch, weights in enumerate([wrong, right, wrong]):  # validation accuracy 0, 1, 0
        model.set_weights([weights])
        callback.on_epoch_end(epoch)
    assert callback.best_epoch == 2 and callback.best_accuracy == 1.0
    callback.restore()
    np.testing.assert_array_equal(model.get_weights()[0], right)


def test_scratch_baseline_on_the_transfer_set_is_the_cached_set_without_the_teacher(tmp_path):
    import tensorflow as tf

    from keras_kd.pipeline.steps import _scratch_datasets

    config = pipeline.parse_config(_config(tmp_path, baseline={"data": "transfer"}))
    x, logits, y = np.arange(12, dtype="int32").reshape(6, 2), np.ones((6, 2), "float32"), np.arange(6) % 2
    cached = tf.data.Dataset.from_tensor_slices(({"student_inputs": x, "teacher_outputs": {"logits": logits}}, y))
    sets = _scratch_datasets(config, None, cached.batch(4), augmentation=object(), copies=1, has_unlabelled=False,
                             online=False)
    assert list(sets) == ["transfer"]
    batches = list(sets["transfer"])
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    # without augmentation the transfer set is the labelled set: one run on the labels
    assert list(_scratch_datasets(config, _Prepared(x, y), cached, None, 0, False, False)) == ["labels"]


class _Prepared:
    def __init__(self, x, y):
        self.x_train, self.y_train = x, y


def test_scratch_baseline_tries_the_labels_and_the_transfer_set_and_keeps_the_better(tmp_path):
    config = _config(tmp_path, baseline={"enabled": True},
                     training={"epochs": 2, "batch_size": 8, "jit_compile": False, "keep_best_epoch": True,
                               "steps_per_epoch": 1})
    config["data"].update(validation_fraction=0.25, augment={"copies": 1, "delete_rate": 0.2})
    result = pipeline.run(config, verbose=0)
    assert {"teacher", "scratch", "distilled"} <= set(result.metrics)
    report = (tmp_path / "out" / "t" / "report.md").read_text()
    assert re.search(r"Scratch student: the better by validation accuracy of two runs \(the labelled examples: "
                     r"validation accuracy [01]\.\d{3}; the transfer set \(1 augmented copy each\) with the gold "
                     r"labels: validation accuracy [01]\.\d{3}\); kept: .* \(epoch [12] of 2, the best validation "
                     r"epoch\)", report), report
    assert re.search(r"Each student keeps its epoch with the best validation accuracy \(distilled: epoch [12] of 2\)",
                     report)


def test_summary_states_the_gain_over_scratch_and_the_share_of_the_teacher(capsys):
    from keras_kd.pipeline import report

    rows = [{"model": "teacher", "accuracy": 0.858, "params": 1048582},
            {"model": "scratch student", "accuracy": 0.833, "params": 65542},
            {"model": "distilled student", "accuracy": 0.8355, "params": 65542}]
    report.print_summary(rows, [], "out", "runs", 1.0, notes=["Scratch student: trained on the labels."])
    printed = capsys.readouterr().out
    # (0.8355 - 0.833) * 100 = +0.25 -> "+0.3"; 0.8355 / 0.858 = 97.38 %; 1048582 / 65542 = 16.0
    assert ("Distilled student: +0.3 pt over the scratch student, 97.4 % of the teacher's accuracy with 16.0x fewer "
            "parameters.") in printed
    assert "* Scratch student: trained on the labels." in printed


def _precomputed_setup(tmp_path, copies=2, augmented=True):
    """A config with a builder teacher and a precomputed one, and the precomputed file: logits for the
    train / validation / test texts (and, if `augmented`, the copies the run will make)."""
    from keras_kd.data.augment import augment_texts
    from keras_kd.models import embedded
    from keras_kd.pipeline.config import parse_config
    from keras_kd.pipeline.data import prepare_data
    from keras_kd.teachers import save_precomputed_outputs

    base = _config(tmp_path, data={"source": {"format": "csv", "train": _csv(tmp_path / "train.csv", n=12),
                                              "test_fraction": 0.25},
                                   "vocabulary_size": 32, "sequence_length": 8, "validation_fraction": 0.2,
                                   "augment": {"level": "text", "copies": copies, "delete_rate": 0.2}})
    data = prepare_data(parse_config(base))
    texts = [str(t) for split in ("train", "val", "test") for t in data.raw[split]]
    if augmented:
        texts += [t for copy in augment_texts(list(data.raw["train"]), copies, seed=0, delete_rate=0.2) for t in copy]
    logits = np.array([[0.5 * len(t), float(t.startswith("g"))] for t in texts], "float32")
    path = str(tmp_path / "pre.npz")
    save_precomputed_outputs(path, texts, logits, params=10**6, size_bytes=4 * 10**6, command="rebuild it",
                             data_sha256=embedded.prepared_data_sha256(data))
    teacher = base.pop("teacher")
    base["teachers"] = [teacher, {"precomputed": path, "weight": 3.0}]
    return base, data, dict(zip(texts, logits, strict=True))


def test_text_transfer_set_holds_the_copies_and_the_teachers_mean_log_probabilities(tmp_path):
    """The cached transfer set: the training texts + 2 seeded copies made from the raw text, each labelled
    by the builder teacher (on the student's view) and the precomputed table, weighted 1 : 3."""
    from keras_kd.data import keys
    from keras_kd.data.augment import augment_texts
    from keras_kd.pipeline import steps
    from keras_kd.pipeline.config import parse_config

    mapping, data, table = _precomputed_setup(tmp_path)
    config = parse_config(mapping)
    teachers = [pipeline_teachers.load_teacher(spec, f"teachers[{i}]", data) for i, spec in
                enumerate(config.all_teachers)]
    train_ds, gold = steps._text_transfer_set(config, teachers, data, None, 2, batch_size=1000)
    assert gold is None
    raw = list(data.raw["train"]) + [t for c in augment_texts(list(data.raw["train"]), 2, seed=0, delete_rate=0.2)
                                     for t in c]
    x = data.student_encoder(raw)
    bag = np.asarray(teachers[0].model(x)["logits"] if isinstance(teachers[0].model(x), dict) else teachers[0].model(x))
    pre = np.stack([table[t] for t in raw])

    def log_softmax(z):
        z = z.astype("float64")
        return z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)

    expected = 0.25 * log_softmax(bag) + 0.75 * log_softmax(pre)
    (inputs, y), = list(train_ds.as_numpy_iterator())  # one batch of all rows, shuffled: match rows by input
    order = {row.tobytes(): i for i, row in enumerate(x)}
    rows = [order[r.tobytes()] for r in inputs[keys.STUDENT_INPUTS]]
    assert len(rows) == 3 * len(data.y_train)
    np.testing.assert_allclose(inputs[keys.TEACHER_OUTPUTS]["logits"], expected[rows], atol=1e-5)
    np.testing.assert_array_equal(y, np.tile(data.y_train, 3)[rows])

    # another run seed makes other copies, which the file lacks, unless `data.augment.seed` fixes them
    from keras_kd.pipeline.config import ConfigError, deep_merge

    with pytest.raises(ConfigError, match=r"`teachers\[1\].precomputed`: .*no outputs for \d+ of 30 texts"):
        steps._text_transfer_set(parse_config({**mapping, "seed": 1}), teachers, data, None, 2, batch_size=1000)
    fixed = parse_config(deep_merge(mapping, {"seed": 1, "data": {"augment": {"seed": 0}}}))
    (inputs_1, _), = list(steps._text_transfer_set(fixed, teachers, data, None, 2, batch_size=1000)[0].as_numpy_iterator())
    assert sorted(r.tobytes() for r in inputs_1[keys.STUDENT_INPUTS]) == sorted(r.tobytes() for r in x)


def test_run_with_a_precomputed_teacher_reports_the_ensemble_and_refuses_texts_it_lacks(tmp_path):
    from keras_kd.pipeline.config import ConfigError

    mapping, data, table = _precomputed_setup(tmp_path)
    result = pipeline.run(mapping, verbose=0)
    rows = {row["model"]: row for row in result.rows}
    assert [r["model"] for r in result.rows][:3] == ["teacher", "teacher 0", "teacher 1"]
    expected = np.mean([np.argmax(table[str(t)]) == y for t, y in zip(data.raw["test"], data.y_test, strict=True)])
    assert rows["teacher 1"]["accuracy"] == pytest.approx(expected)
    assert rows["teacher 1"]["params"] == 10**6 and rows["teacher 1"]["CPU latency / example"] == "precomputed"
    assert rows["teacher 1"]["size on disk"] == "3.8 MB"
    assert rows["teacher"]["params"] == 10**6 + rows["teacher 0"]["params"]
    report = (tmp_path / "out" / "t" / "report.md").read_text()
    assert "2 augmented copies each (made from the raw text), teacher outputs cached once" in report


    with pytest.warns(UserWarning, match=r"`teachers\[1\].precomputed`: smoke run on a slice"):
        smoke = pipeline.run(_precomputed_setup(tmp_path, augmented=False)[0], smoke=True, verbose=0)
    assert smoke.rows[0]["model"] == "teacher"  # a one-step wiring check runs without the copies' logits
    with pytest.raises(ConfigError, match=r"`data.cache_dir` stores a token-level transfer set"):
        pipeline.run({**mapping, "data": {**mapping["data"], "cache_dir": str(tmp_path / "c")}}, verbose=0)
    missing, _, _ = _precomputed_setup(tmp_path, augmented=False)
    with pytest.raises(ConfigError, match=r"`teachers\[1\].precomputed`: The precomputed teacher has no outputs for "
                                          r"\d+ of \d+ texts .*rebuild them: rebuild it"):
        pipeline.run(missing, verbose=0)
    other = _precomputed_setup(tmp_path, copies=3)[0]  # another split: 3 copies is fine, the hash is not
    other["data"]["validation_fraction"] = 0.3
    with pytest.raises(ConfigError, match=r"`teachers\[1\].precomputed`: .*trained on another data split"):
        pipeline.run(other, verbose=0)


@pytest.mark.parametrize("change, message", [
    ({"data": {"augment": {"level": "chars"}}}, r"`data.augment.level` must be 'tokens' .* Received: "
                                                 r"data.augment.level='chars'"),
    ({"data": {"augment": {"level": "text", "mask_rate": 0.1}}}, r"`data.augment.mask_rate` applies to token ids; "
                                                                 r"`augment.level: text` takes copies, delete_rate"),
    ({"data": {"augment": {"copies": 2, "seed": 1}}}, r"`data.augment.seed` fixes the copies made from the raw "
                                                       r"text \(`level: text`\)"),
    ({"data": {"augment": {"level": "text", "seed": -1}}}, r"`data.augment.seed` must be an integer >= 0. "
                                                           r"Received: data.augment.seed=-1"),
    ({"teacher": {"precomputed": "x.npz", "train_epochs": 2}}, r"`teacher.precomputed` is a file of logits"),
    ({"teacher": {"precomputed": "x.npz"}, "distillation": {"mode": "mutual"}}, r"A `precomputed` teacher is a "
                                                                                r"table of cached outputs"),
    ({"student": {"precomputed": "x.npz"}}, r"`student.precomputed` is for teachers"),
])
def test_config_errors_of_text_augmentation_and_precomputed_teachers(tmp_path, change, message):
    from keras_kd.pipeline.config import ConfigError, deep_merge, parse_config

    mapping = _config(tmp_path)
    for key in change:
        if key in ("teacher", "student"):
            mapping[key] = {}
    with pytest.raises(ConfigError, match=message):
        parse_config(deep_merge(mapping, change))
