"""Apache Beam labelling (DirectRunner, 2 workers) writes the cache format `cache_teacher_outputs` writes."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.data import cache, keys

beam_module = pytest.importorskip(
    "apache_beam", reason='the [beam] extra is not installed: pip install "keras-kd[beam]"'
)

from keras_kd.data import beam  # noqa: E402

ROWS_PER_FILE, FILES, BATCH = 32, 2, 16
DIRECT_2_WORKERS = [
    "--runner=DirectRunner",
    "--direct_num_workers=2",
    "--direct_running_mode=multi_threading",
]


def _teacher():
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(
        16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(1)
    )(inputs)
    return keras.Model(
        inputs,
        keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(2))(hidden),
    )


def _student():
    inputs = keras.Input((8,))
    return keras.Model(
        inputs,
        keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(3))(inputs),
    )


@pytest.fixture
def corpus(tmp_path):
    """Two TFRecord files of (x: 8 floats, y: int64) and the teacher saved as .keras."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS_PER_FILE * FILES, 8)).astype("float32")
    y = rng.integers(0, 4, size=len(x)).astype("int64")
    for f in range(FILES):
        with tf.io.TFRecordWriter(str(tmp_path / f"part-{f}.tfrecord")) as writer:
            for i in range(f * ROWS_PER_FILE, (f + 1) * ROWS_PER_FILE):
                features = {
                    "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[i])),
                    "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[y[i]])),
                }
                writer.write(
                    tf.train.Example(
                        features=tf.train.Features(feature=features)
                    ).SerializeToString()
                )
    teacher = _teacher()
    teacher.save(tmp_path / "teacher.keras")
    source = {
        "files": [str(tmp_path / "part-*.tfrecord")],
        "format": "tfrecord",
        "features": {"x": {"shape": [8], "dtype": "float32"}, "y": {"shape": [], "dtype": "int64"}},
        "inputs": "x",
        "label": "y",
    }
    return x, y, teacher, source


def _fit(path):
    keras.utils.set_random_seed(
        0
    )  # before the dataset: tf.data's seeded shuffle also reads the global seed
    dataset = cache.load_cached_teacher_outputs(path, batch_size=BATCH, shuffle=True, seed=5)
    distiller = keras_kd.Distiller(_student(), teacher=None, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    distiller.fit(dataset, epochs=2, verbose=0)
    return distiller.student.get_weights()


def test_beam_cache_equals_the_in_process_cache(corpus, tmp_path):
    x, y, teacher, source = corpus
    manifest = beam.label_with_beam(
        {"path": str(tmp_path / "teacher.keras")},
        source,
        tmp_path / "beam_cache",
        batch_size=BATCH,
        shard_size=ROWS_PER_FILE,
        max_batch_size=8,
        pipeline_args=DIRECT_2_WORKERS,
    )
    assert manifest["complete"] and manifest["num_examples"] == 64
    assert [s["num_examples"] for s in manifest["shards"]] == [32, 32]
    assert (
        json.loads((tmp_path / "beam_cache" / "manifest.json").read_text())["shards"]
        == manifest["shards"]
    )

    local = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    in_process = cache.cache_teacher_outputs(
        teacher, local, path=tmp_path / "local_cache", shard_size=ROWS_PER_FILE, verbose=0
    )
    from_beam = cache.load_cached_teacher_outputs(
        tmp_path / "beam_cache"
    )  # the same loader, verified
    a = [
        np.concatenate([b[i] if i else b[0][keys.TEACHER_OUTPUTS]["logits"] for b in in_process])
        for i in (0, 1)
    ]
    b = [
        np.concatenate([e[i] if i else e[0][keys.TEACHER_OUTPUTS]["logits"] for e in from_beam])
        for i in (0, 1)
    ]
    np.testing.assert_allclose(b[0], a[0], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(b[1], y)
    inputs = np.concatenate([e[0][keys.STUDENT_INPUTS] for e in from_beam])
    np.testing.assert_array_equal(inputs, x)

    # A Distiller(teacher=None) trains on either with the same seed to the same weights.
    local_weights, beam_weights = _fit(tmp_path / "local_cache"), _fit(tmp_path / "beam_cache")
    for left, right in zip(local_weights, beam_weights, strict=True):
        np.testing.assert_array_equal(left, right)


def test_text_source_and_config_errors(tmp_path):
    (tmp_path / "a.txt").write_text("1\tgood film\n0\tdull\n")
    source = beam.SourceSpec(files=str(tmp_path / "*.txt"), format="text", label_separator="\t")
    rows = list(source.read(source.list_files()[0]))
    assert rows[1][0] == 1 and rows[1][1][0] == b"dull" and rows[1][1][1] == 0
    with pytest.raises(
        ValueError,
        match=r"`format` must be one of \('text', 'tfrecord', 'images'\). Received: format='csv'",
    ):
        beam.SourceSpec(files="x", format="csv")
    with pytest.raises(FileNotFoundError, match=r"No input file matches `files`"):
        beam.SourceSpec(files=str(tmp_path / "*.nothing")).list_files()
    with pytest.raises(ValueError, match=r"exactly one of `path`.*and `preset`"):
        beam.TeacherSpec()


def test_cli_writes_the_cache_a_yaml_config_describes(corpus, tmp_path):
    import argparse

    import yaml

    from keras_kd.cli import cache as cache_command

    _, _, teacher, source = corpus
    config = {
        "teacher": {"path": str(tmp_path / "teacher.keras")},
        "source": source,
        "output": str(tmp_path / "cli_cache"),
        "cache": {"shard_size": ROWS_PER_FILE, "batch_size": BATCH, "dtype": "float16"},
    }
    (tmp_path / "cache.yaml").write_text(yaml.safe_dump(config))
    from keras_kd.cli.main import main

    command = ["cache", "--config", str(tmp_path / "cache.yaml"), "--runner", "DirectRunner"]
    assert main([*command, "--direct_num_workers=2", "--direct_running_mode=multi_threading"]) == 0
    manifest = cache.read_manifest(tmp_path / "cli_cache")
    assert manifest["dtype"] == "float16" and manifest["num_examples"] == 64
    assert manifest["beam"]["pipeline_args"] == [
        "--runner=DirectRunner",
        "--direct_num_workers=2",
        "--direct_running_mode=multi_threading",
    ]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**config, "cache": {"shards": 2}}))
    with pytest.raises(
        ValueError, match=r"bad\.yaml: unknown key\(s\) under `cache`: \['shards'\]"
    ):
        cache_command.run(
            argparse.Namespace(config=str(tmp_path / "bad.yaml"), runner="DirectRunner")
        )


def test_saved_model_teacher_and_image_source(tmp_path):
    model = _teacher()
    model.export(str(tmp_path / "saved"), verbose=False)
    spec = beam.TeacherSpec(path=str(tmp_path / "saved"))
    assert spec.kind == "saved_model"
    x = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(spec.load()(tf.constant(x)), model.predict(x, verbose=0), atol=1e-5)
    assert (
        spec.fingerprint()["weights_sha256"]
        == beam.TeacherSpec(path=str(tmp_path / "saved")).fingerprint()["weights_sha256"]
    )

    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        pixels = np.full((5, 7, 3), 40 if label == "cat" else 200, np.uint8)
        tf.io.write_file(str(tmp_path / "images" / label / "a.png"), tf.io.encode_png(pixels))
    source = beam.SourceSpec(
        files=str(tmp_path / "images" / "*" / "*.png"), format="images", image_size=[4, 4]
    )
    files = source.list_files()
    [(_, (image, label))] = list(source.read(files[1], classes=["cat", "dog"]))
    assert image.shape == (4, 4, 3) and label == 1
    np.testing.assert_allclose(image, 200.0)
