import pathlib

import pytest

from keras_kd.cli import config as config_lib

CONFIGS = sorted((pathlib.Path(__file__).resolve().parents[2] / "examples" / "configs").glob("*.yaml"))
MINIMAL = {"teacher": {"builder": "char_cnn"}, "student": {"builder": "char_cnn"}, "data": {"dataset": "chinese_reviews"}}


def _with(**sections):
    config = {k: dict(v) for k, v in MINIMAL.items()}
    for key, value in sections.items():
        config[key] = value
    return config


def test_there_is_one_config_per_example():
    names = {p.stem for p in CONFIGS}
    assert {"demo", "fashion_mnist", "zh_sentiment", "en_sentiment_bert", "multilingual_embeddings",
            "cross_lingual_sentiment"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_example_config_loads_and_round_trips(path):
    config = config_lib.load_config(path, allow_code=True)  # examples may name their own builders
    assert config.name
    again = config_lib.parse_config(config.to_dict(), allow_code=True)
    assert again.to_dict() == config.to_dict()


def test_defaults():
    from keras_kd import defaults

    config = config_lib.parse_config(MINIMAL, name="x")
    assert config.name == "x"
    assert config.training.epochs == 3 and config.training.batch_size == 64
    assert config.distillation.temperature == defaults.DEFAULT_TEMPERATURE
    assert config.distillation.alpha == defaults.DEFAULT_ALPHA
    assert config.export.tflite == ["float", "dynamic"]
    assert config.run_dirs() == ("saved_models/x", "runs/x")
    assert config.run_dirs("/o", "/r") == ("/o/x", "/r/x")


def test_build_loss_takes_the_temperature():
    config = config_lib.parse_config(_with(distillation={"loss": "kl", "temperature": 2.5}))
    loss = config.distillation.build_loss()
    assert loss.get_config()["temperature"] == 2.5
    # an explicit temperature inside the loss mapping wins
    config = config_lib.parse_config(_with(distillation={"loss": {"name": "kl", "temperature": 1.5}}))
    assert config.distillation.build_loss().get_config()["temperature"] == 1.5


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"trainng": {}}, r"Unknown key `trainng` in the config\. Valid keys: name, seed, task, teacher, teachers, student, data"),
        ({"training": {"epochs": 3, "lr": 0.1}}, r"Unknown key `lr` in `training`\. Valid keys: epochs, batch_size, "),
        ({"training": {"epochs": 0}}, r"`training.epochs` must be an integer >= 1\. Received: training.epochs=0"),
        ({"training": {"batch_size": "64"}}, r"`training.batch_size` must be an integer >= 1\. Received: "
                                              r"training.batch_size='64'"),
        ({"training": {"learning_rate": 0}}, r"`training.learning_rate` must be a finite number > 0"),
        ({"distillation": {"temperature": 0}}, r"`distillation.temperature` must be a finite number > 0\. "
                                                r"Received: distillation.temperature=0"),
        ({"distillation": {"alpha": 1.5}}, r"`distillation.alpha` must be a finite number in \[0, 1\]\. "
                                           r"Received: distillation.alpha=1.5"),
        ({"distillation": {"loss": "kll"}}, r"`distillation.loss` must be a registered logit loss name \(.*kl.*\)"),
        ({"strategy": "gpu"}, r"`strategy` must be one of 'auto', 'default', 'mirrored'"),
        ({"precision": "float8"}, r"`precision` must be one of 'float32', 'mixed_float16', 'mixed_bfloat16'"),
        ({"export": {"tflite": ["int4"]}}, r"`export.tflite` must be a list, each item one of 'float'"),
        ({"data": {}}, r"`data` needs exactly one of `dataset` \(a built-in dataset\) or `source` \(your own files\)"),
        ({"data": {"dataset": "imagenet"}}, r"`data.dataset` must be one of chinese_reviews, .*Received: "
                                            r"data.dataset='imagenet'"),
        ({"teacher": {"builder": "char_cnn", "path": "t.keras"}}, r"`teacher` needs exactly one of `path`, "
                                                                   r"`builder`, `preset`, `transformers`"),
        ({"teacher": {}}, r"`teacher` needs exactly one of .*Received: none of them"),
        ({"teacher": {"builder": "resnet"}}, r"`teacher.builder` must be a registered model \(char_cnn, "
                                             r"image_cnn, mlp"),
        ({"teacher": {"path": "t.keras", "train_epochs": 2}}, r"`teacher.train_epochs` needs a `builder`"),
        ({"student": {"preset": "/x"}}, r"`student.preset` is for teachers"),
        ({"teacher": "t.keras"}, r"`teacher` must be a mapping with keys path, sha256, builder"),
        ({"data": {"dataset": "chinese_reviews", "validation_fraction": 0.95}},
         r"`data.validation_fraction` must be a finite number in \[0, 0.9\]"),
        ({"training": {"jit_compile": "yes"}}, r"`training.jit_compile` must be true, false or 'auto'"),
        ({"data": {"dataset": "chinese_reviews", "augment": {"copies": 2, "drop": 0.1}}},
         r"Unknown key `drop` in `data.augment`\. Valid keys: copies, mask_id, mask_rate, delete_rate"),
        ({"distillation": {"temperature_schedule": {"values": [[0, 4.0], [2, 0.0]], "unit": "epoch"}}},
         r"`distillation.temperature_schedule.values\[1\]\[1\]` must be a finite number > 0\. "),
        ({"distillation": {"alpha_schedule": {"values": [[0, 0.5], [2, 1.5]]}}},
         r"`distillation.alpha_schedule.values\[1\]\[1\]` must be a finite number in \[0, 1\]\. "),
        ({"distillation": {"alpha_schedule": {"start": 0.1}}},
         r"`distillation.alpha_schedule` is a mapping with `values`"),
        ({"distillation": {"alpha_schedule": {"values": [[0, 0.5]], "unit": "batch"}}},
         r"`distillation.alpha_schedule.unit` must be one of"),
        ({"distillation": {"temperature": float("inf")}}, r"`distillation.temperature` must be a finite number > 0\. "
                                                           r"Received: distillation.temperature=inf"),
        ({"distillation": {"alpha": float("nan")}}, r"`distillation.alpha` must be a finite number in \[0, 1\]"),
        ({"distillation": {"loss": "hidden_mse"}}, r"'hidden_mse' is a feature loss: put it under "
                                                    r"`distillation.feature_losses`"),
        ({"distillation": {"loss": {"name": "kl", "temprature": 2}}}, r"`distillation.loss.temprature` is not an "
                                                                       r"argument of KLDivergence"),
        ({"distillation": {"feature_losses": [{"name": "kl"}]}}, r"`distillation.feature_losses\[0\].name` must be a "
                                                                  r"registered feature loss"),
        ({"teacher": {"builder": "char_cnn", "kwargs": {"filter": 3}}}, r"`teacher.kwargs.filter` is not an argument "
                                                                         r"of builder 'char_cnn'"),
        ({"teacher": {"builder": "os:system"}}, r"`teacher.builder` names code \('os:system'\); configs only run "
                                                 r"registered builders"),
        ({"data": {"dataset": "chinese_reviews", "kwargs": {"tst_size": 0.1}}}, r"`data.kwargs.tst_size` is not an "
                                                                                 r"argument of dataset"),
        ({"data": {"source": {"format": "csv"}}}, r"`data.source.train` is required for format csv"),
        ({"data": {"source": {"format": "xls", "train": "a"}}}, r"`data.source.format` must be one of 'csv'"),
        ({"data": {"source": {"format": "tfrecord", "train": "a"}}}, r"`data.source.features` \(the feature spec\)"),
        ({"teacher": {"path": "t.keras", "sha256": "abc"}}, r"`teacher.sha256` must be a 64-character hex SHA-256"),
        ({"teacher": None, "teachers": []}, r"`teachers` must be a non-empty list"),
        ({"quick": {"epochs": 1}}, r"Unknown key `epochs` in `quick`"),
        ({"task": "embedding"}, r"`task: embedding` reads parallel text"),
    ],
)
def test_bad_configs_fail_with_the_message(sections, message):
    config = _with(**sections)
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.parse_config(config)


def test_allowed_code_and_allow_list():
    config = _with(student={"builder": "os:path"})
    with pytest.raises(config_lib.ConfigError, match="names code"):
        config_lib.parse_config(config)
    assert config_lib.parse_config(config, allow_code=True).student.builder == "os:path"
    assert config_lib.parse_config(config, allow_list=["os:path"]).student.builder == "os:path"
    assert config_lib.parse_config(config, allow_list=["os:*"]).student.builder == "os:path"
    with pytest.raises(config_lib.ConfigError, match="names code"):
        config_lib.parse_config(config, allow_list=["os:system"])


def test_quick_section_and_overrides_merge():
    mapping = _with(training={"epochs": 5, "batch_size": 32}, quick={"training": {"epochs": 1}})
    assert config_lib.parse_config(mapping).training.epochs == 5
    quick = config_lib.parse_config(mapping, quick=True, overrides={"seed": 7})
    assert (quick.training.epochs, quick.training.batch_size, quick.seed) == (1, 32, 7)


def test_multi_teacher_and_features():
    config = config_lib.parse_config({
        "teachers": [{"builder": "char_cnn", "weight": 2.0}, {"builder": "char_cnn", "kwargs": {"hidden": 8}}],
        "student": {"builder": "char_cnn", "kwargs": {"expose_hidden": True}},
        "data": {"dataset": "chinese_reviews"},
        "distillation": {"mode": "distill", "feature_losses": [{"name": "hidden_mse", "weight": 0.5}]},
    })
    assert [t.weight for t in config.all_teachers] == [2.0, 1.0]
    (loss,) = config.distillation.build_feature_losses()
    assert type(loss).__name__ == "HiddenStateMSE" and loss.weight == 0.5


def test_schedules_build_callbacks():
    from keras_kd.callbacks import AlphaScheduler, TemperatureScheduler

    config = config_lib.parse_config(_with(distillation={
        "temperature_schedule": {"values": [[0, 8.0], [2, 4.0]], "unit": "epoch"},
        "alpha_schedule": {"values": [[0, 0.2], [100, 0.9]]},
    }))
    temperature = config.distillation.build_scheduler("temperature_schedule")
    assert isinstance(temperature, TemperatureScheduler) and temperature.unit == "epoch"
    assert temperature.schedule == [(0, 8.0), (2, 4.0)]
    assert isinstance(config.distillation.build_scheduler("alpha_schedule"), AlphaScheduler)


def test_not_a_mapping():
    with pytest.raises(ValueError, match="A keras-kd config must be a YAML mapping"):
        config_lib.parse_config(["teacher"])


def test_python_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ValueError, match=r"yaml.safe_load.*never builds Python objects"):
        config_lib.load_config(path)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("teacher: {builder: char_cnn}\nstudent: {builder: char_cnn}\n"
                    "data: {dataset: chinese_reviews}\ntraining: {epochs: -1}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: `training.epochs` must be an integer >= 1"):
        config_lib.load_config(path)
    path.write_text("teacher: [unclosed\n")
    with pytest.raises(ValueError, match=r"bad\.yaml is not valid YAML"):
        config_lib.load_config(path)


def test_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "my_run.yaml"
    path.write_text("teacher: {builder: char_cnn}\nstudent: {builder: char_cnn}\ndata: {dataset: chinese_reviews}\n")
    assert config_lib.load_config(path).name == "my_run"


def test_bundled_demo_config_is_the_example_config():
    from keras_kd import pipeline

    bundled = pathlib.Path(pipeline.bundled_config("demo")).read_bytes()
    example = (pathlib.Path(__file__).resolve().parents[2] / "examples" / "configs" / "demo.yaml").read_bytes()
    assert bundled == example
    with pytest.raises(config_lib.ConfigError, match="No bundled config 'nope'. Bundled configs: demo"):
        pipeline.bundled_config("nope")
