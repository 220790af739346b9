"""Label a corpus larger than one machine with Apache Beam: the same sharded cache, written by a cluster.

`label_with_beam(teacher, source, output)` builds and runs a Beam pipeline:

    files ─▶ read examples (one file per worker task, each row keyed by (file, row))
          ─▶ RunInference(TeacherModelHandler)   # batches by size, the teacher loaded once per worker
          ─▶ encode rows (the `keras_kd.data.cache_format` records)
          ─▶ group by shard (file, row // shard_size) ─▶ write each shard, sorted by row
    driver: list the shards (count, sha256) in `manifest.json`

The folder it writes is read by `keras_kd.data.load_cached_teacher_outputs` and trains a
`Distiller(student, teacher=None)` exactly like a cache built in process. Rows keep the order of
the input files, so the cache equals `cache_teacher_outputs` on the same examples.

Teachers (`TeacherSpec`): a `.keras` file, a SavedModel folder (its `serve` endpoint or
`serving_default` signature), or a keras-hub preset (`keras_hub.models.<task_class>.from_preset`).
Sources (`SourceSpec`): text files (one example per line, optionally `label<TAB>text`), TFRecord
files of `tf.train.Example`s (a feature spec), or image files in one folder per class.

Runners: DirectRunner locally (`--direct_num_workers=2 --direct_running_mode=multi_threading`);
on a cluster pass the runner's own flags (Dataflow: `--runner DataflowRunner --project P
--region R --temp_location gs://B/tmp --requirements_file req.txt`; Flink: `--runner FlinkRunner
--flink_master HOST:8081 --environment_type DOCKER`; Spark: `--runner SparkRunner
--spark_master_url spark://HOST:7077`), with `output` and the input files on storage every worker
can read (`gs://`, `hdfs://`, a shared mount). Install with `pip install "keras-kd[beam]"`.
"""

import dataclasses
import glob as _glob
import hashlib
import json
import pathlib
import time

import numpy as np
import tensorflow as tf

from keras_kd.data import cache
from keras_kd.data.cache_format import (
    FORMAT_VERSION,
    MANIFEST,
    RecordEncoder,
    file_sha256,
    keras_kd_version,
    leaf_spec,
    structure_to_json,
    template,
    write_manifest,
)

try:
    import apache_beam as beam
    from apache_beam.ml.inference.base import (
        KeyedModelHandler,
        ModelHandler,
        PredictionResult,
        RunInference,
    )
except ImportError:  # the [beam] extra is optional; `_require_beam` explains
    beam = None
    ModelHandler = object

_EXTRA = 'Apache Beam is not installed: `pip install "keras-kd[beam]"` (apache-beam[tfrecord]).'
SOURCE_FORMATS = ("text", "tfrecord", "images")
_SHARD_LIST = "_shards"


def _require_beam():
    if beam is None:
        raise ImportError(_EXTRA)


@dataclasses.dataclass
class TeacherSpec:
    """Where the teacher comes from: exactly one of `path` (`.keras` or SavedModel folder) and `preset`.

    Args:
        path: a `.keras` file or a SavedModel folder.
        preset: a keras-hub preset name or folder, loaded with `keras_hub.models.<task_class>`.
        task_class: the keras-hub task class (default `"TextClassifier"`).
    """

    path: str = None
    preset: str = None
    task_class: str = "TextClassifier"

    def __post_init__(self):
        if (self.path is None) == (self.preset is None):
            raise ValueError(
                "Give the teacher as exactly one of `path` (a .keras file or a SavedModel folder) and "
                f"`preset` (a keras-hub preset). Received: path={self.path!r}, preset={self.preset!r}"
            )

    @property
    def kind(self):
        if self.preset is not None:
            return "preset"
        return "keras" if str(self.path).endswith(".keras") else "saved_model"

    def load(self):
        """The teacher as a callable on a batch of inputs."""
        import keras

        if self.kind == "keras":
            return keras.saving.load_model(self.path, safe_mode=True)
        if self.kind == "saved_model":
            loaded = tf.saved_model.load(self.path)
            if hasattr(loaded, "serve"):  # `model.export(...)`

                def serve(x):
                    return loaded.serve(x)

                serve.saved_model = loaded  # keeps the restored variables alive
                return serve
            signature = loaded.signatures["serving_default"]

            def call(x):
                arguments = (
                    x
                    if isinstance(x, dict)
                    else {next(iter(signature.structured_input_signature[1])): x}
                )
                result = signature(**arguments)
                return (
                    result
                    if "logits" in result or len(result) != 1
                    else next(iter(result.values()))
                )

            call.saved_model = loaded
            return call
        import keras_hub

        task = getattr(keras_hub.models, self.task_class, None)
        if task is None or not hasattr(task, "from_preset"):
            raise ValueError(
                f"`task_class` must name a keras_hub.models task with `from_preset`. Received: task_class={self.task_class!r}"
            )
        return task.from_preset(self.preset)

    def fingerprint(self):
        """What the cached outputs depend on: the model file's content (or the preset's name)."""
        if self.kind == "keras":
            return cache.object_fingerprint(self.load())
        if self.kind == "saved_model":
            digest = hashlib.sha256()
            for file in sorted(pathlib.Path(self.path).rglob("*")):
                if file.is_file():
                    digest.update(
                        str(file.relative_to(self.path)).encode() + file_sha256(file).encode()
                    )
            return {
                "name": str(self.path),
                "class": "SavedModel",
                "num_params": None,
                "weights_sha256": digest.hexdigest(),
                "config_sha256": digest.hexdigest(),
            }
        return {
            "name": str(self.preset),
            "class": self.task_class,
            "num_params": None,
            "weights_sha256": None,
            "config_sha256": None,
        }


@dataclasses.dataclass
class SourceSpec:
    """The corpus: `files` (glob patterns) in one of `SOURCE_FORMATS`.

    Args:
        files: glob pattern(s); matched files are read in sorted order.
        format: `"text"` (one example per line), `"tfrecord"` (`tf.train.Example`s) or `"images"`
            (the label is the index of the file's folder among the sorted folder names).
        label_separator: text: split each line once on it into `label, text` (labels are integers).
        features: tfrecord: `{name: {"shape": [...], "dtype": "float32"}}` to parse.
        inputs: tfrecord: the feature(s) the models take (a name, or a list for a dict of inputs).
        label: tfrecord: the label feature (optional).
        image_size: images: `[height, width]` to resize to (float32 pixels in [0, 255]).
    """

    files: list
    format: str = "text"
    label_separator: str = None
    features: dict = None
    inputs: object = None
    label: str = None
    image_size: list = None

    def __post_init__(self):
        if isinstance(self.files, str):
            self.files = [self.files]
        if self.format not in SOURCE_FORMATS:
            raise ValueError(
                f"`format` must be one of {SOURCE_FORMATS}. Received: format={self.format!r}"
            )
        if self.format == "tfrecord" and (not self.features or self.inputs is None):
            raise ValueError(
                "A tfrecord source needs `features` ({name: {shape, dtype}}) and `inputs` (the feature(s) the "
                f"models take). Received: features={self.features!r}, inputs={self.inputs!r}"
            )
        if self.format == "images" and not self.image_size:
            raise ValueError(
                f"An images source needs `image_size: [height, width]`. Received: image_size={self.image_size!r}"
            )

    def list_files(self):
        matched = sorted(
            {
                f
                for pattern in self.files
                for f in (tf.io.gfile.glob(pattern) or _glob.glob(pattern))
            }
        )
        if not matched:
            raise FileNotFoundError(
                f"No input file matches `files`. Received: files={self.files!r}"
            )
        return matched

    def read(self, file, classes=None):
        """`(row, (inputs, label))` for every example of one file (label None without labels)."""
        if self.format == "text":
            with tf.io.gfile.GFile(file, "rb") as handle:
                for row, line in enumerate(handle.read().decode("utf-8").splitlines()):
                    if self.label_separator is None:
                        yield row, (np.asarray(line.encode("utf-8"), dtype=object), None)
                        continue
                    label, _, text = line.partition(self.label_separator)
                    yield row, (np.asarray(text.encode("utf-8"), dtype=object), np.int32(label))
        elif self.format == "tfrecord":
            spec = {
                name: tf.io.FixedLenFeature(
                    feature.get("shape", []), tf.as_dtype(feature.get("dtype", "float32"))
                )
                for name, feature in self.features.items()
            }
            for row, record in enumerate(tf.data.TFRecordDataset(file)):
                parsed = {k: v.numpy() for k, v in tf.io.parse_single_example(record, spec).items()}
                inputs = (
                    parsed[self.inputs]
                    if isinstance(self.inputs, str)
                    else {name: parsed[name] for name in self.inputs}
                )
                yield row, (inputs, None if self.label is None else parsed[self.label])
        else:
            image = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
            image = tf.image.resize(tf.cast(image, tf.float32), self.image_size).numpy()
            yield 0, (image, np.int32(classes.index(pathlib.Path(file).parent.name)))


def _stack(rows):
    if isinstance(rows[0], dict):
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    return np.stack(rows)


class TeacherModelHandler(ModelHandler):
    """Beam `ModelHandler` running a keras-kd teacher on batches of `(inputs, label)` examples.

    Each prediction is the example's row encoded as a cache record (student inputs, the selected
    teacher outputs after top-k / dtype conversion and finiteness checks, label), exactly as
    `cache_teacher_outputs` stores it, plus the row's tensor specs.
    """

    def __init__(
        self,
        teacher_spec,
        *,
        outputs=("logits",),
        top_k=None,
        top_k_temperature=1.0,
        dtype="float32",
        min_batch_size=1,
        max_batch_size=256,
    ):
        _require_beam()
        super().__init__()
        self.teacher_spec = teacher_spec
        self.options = dict(
            outputs=tuple(outputs), top_k=top_k, top_k_temperature=top_k_temperature, dtype=dtype
        )
        self.min_batch_size, self.max_batch_size = min_batch_size, max_batch_size

    def load_model(self):
        """The teacher wrapped once per worker (one traced function, no retracing per batch)."""
        return cache._TeacherPass(
            self.teacher_spec.load(), views=1, augmentation=None, seed=None, **self.options
        )

    def batch_elements_kwargs(self):
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def run_inference(self, batch, model, inference_args=None):
        inputs = _stack([example[0] for example in batch])
        labels = [example[1] for example in batch]
        data = (inputs,) if labels[0] is None else (inputs, np.stack(labels))
        element = model.run(0, data)  # model: the `_TeacherPass` from `load_model`
        leaves = tf.nest.flatten(element)
        specs = [leaf_spec(leaf) for leaf in leaves]
        meta = json.dumps(
            {
                "structure": structure_to_json(template(element)),
                "leaves": specs,
                "num_classes": model.num_classes,
            }
        )
        records = RecordEncoder(specs).encode(leaves)
        return [
            PredictionResult(example, (record, meta))
            for example, record in zip(batch, records, strict=True)
        ]


class _WriteShard(beam.DoFn if beam is not None else object):
    def __init__(self, output):
        self.output = output

    def process(self, element):
        (file_rank, chunk), rows = element
        rows = sorted(rows)
        name = f"shard-{file_rank:05d}-{chunk:05d}.tfrecord"
        path = f"{self.output}/{name}"
        with tf.io.TFRecordWriter(path) as writer:
            for _, record, _ in rows:
                writer.write(record)
        metas = {meta for _, _, meta in rows}
        yield json.dumps(
            {
                "key": [file_rank, chunk],
                "file": name,
                "num_examples": len(rows),
                "sha256": file_sha256(path),
                "metas": sorted(metas),
            }
        )


def build_pipeline(pipeline, teacher_spec, source_spec, output, files, *, shard_size, handler):
    """Add the labelling transforms to `pipeline`; the shard list lands in `output/_shards*`."""
    classes = (
        sorted({pathlib.Path(f).parent.name for f in files})
        if source_spec.format == "images"
        else None
    )

    def read(ranked):
        rank, file = ranked
        for row, example in source_spec.read(file, classes):
            yield (rank, row), example

    def to_shard(keyed):
        (rank, row), prediction = keyed
        record, meta = prediction.inference
        if source_spec.format == "images":  # one image per file: group files into shards
            return (0, rank // shard_size), (rank, record, meta)
        return (rank, row // shard_size), (row, record, meta)

    return (
        pipeline
        | "Files" >> beam.Create(list(enumerate(files)))
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(read)
        | "Teacher" >> RunInference(KeyedModelHandler(handler))
        | "ShardKey" >> beam.Map(to_shard)
        | "Group" >> beam.GroupByKey()
        | "Write" >> beam.ParDo(_WriteShard(output))
        | "List" >> beam.io.WriteToText(f"{output}/{_SHARD_LIST}", file_name_suffix=".jsonl")
    )


def label_with_beam(
    teacher,
    source,
    output,
    *,
    outputs=("logits",),
    top_k=None,
    top_k_temperature=1.0,
    dtype="float32",
    batch_size=None,
    shard_size=cache.DEFAULT_SHARD_SIZE,
    min_batch_size=1,
    max_batch_size=256,
    pipeline_args=None,
):
    """Run the teacher over `source` on Beam and write a sharded cache to `output`.

    Args:
        teacher: a `TeacherSpec` (or a dict of its fields).
        source: a `SourceSpec` (or a dict of its fields).
        output: the cache folder (local or any filesystem TF and Beam can write).
        outputs, top_k, top_k_temperature, dtype: as in `cache_teacher_outputs`.
        batch_size: the batch size recorded in the manifest (read batches; default `max_batch_size`).
        shard_size: examples per shard (shards never span two input files).
        min_batch_size, max_batch_size: RunInference's batching by size.
        pipeline_args: Beam pipeline options, e.g. `["--runner=DirectRunner",
            "--direct_num_workers=2", "--direct_running_mode=multi_threading"]`.

    Returns:
        The manifest (a dict), also written to `output/manifest.json`.
    """
    _require_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    teacher = teacher if isinstance(teacher, TeacherSpec) else TeacherSpec(**teacher)
    source = source if isinstance(source, SourceSpec) else SourceSpec(**source)
    cache._check_dtype(dtype)
    files = source.list_files()
    output = str(output)
    tf.io.gfile.makedirs(output)
    for stale in tf.io.gfile.glob(f"{output}/shard-*") + tf.io.gfile.glob(
        f"{output}/{_SHARD_LIST}*"
    ):
        tf.io.gfile.remove(stale)
    if tf.io.gfile.exists(f"{output}/{MANIFEST}"):
        tf.io.gfile.remove(f"{output}/{MANIFEST}")
    handler = TeacherModelHandler(
        teacher,
        outputs=outputs,
        top_k=top_k,
        top_k_temperature=top_k_temperature,
        dtype=dtype,
        min_batch_size=min_batch_size,
        max_batch_size=max_batch_size,
    )
    started = time.time()
    options = PipelineOptions(pipeline_args or ["--runner=DirectRunner"])
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(
            pipeline, teacher, source, output, files, shard_size=shard_size, handler=handler
        )
    manifest = _manifest(
        output,
        teacher,
        source,
        files,
        outputs,
        top_k,
        top_k_temperature,
        dtype,
        batch_size or max_batch_size,
        shard_size,
    )
    manifest["beam"] = {
        "pipeline_args": list(pipeline_args or []),
        "seconds": round(time.time() - started, 1),
    }
    write_manifest(output, manifest)
    return manifest


def _manifest(
    output, teacher, source, files, outputs, top_k, top_k_temperature, dtype, batch_size, shard_size
):
    entries = []
    for listing in tf.io.gfile.glob(f"{output}/{_SHARD_LIST}*"):
        with tf.io.gfile.GFile(listing) as handle:
            entries += [json.loads(line) for line in handle if line.strip()]
        tf.io.gfile.remove(listing)
    if not entries:
        raise ValueError(
            f"The input files hold no example: nothing to label. Received: files={source.files!r}"
        )
    entries.sort(key=lambda entry: entry["key"])
    metas = {meta for entry in entries for meta in entry.pop("metas")}
    layouts = {
        json.dumps({k: v for k, v in json.loads(m).items() if k != "num_classes"}) for m in metas
    }
    if len(layouts) != 1:
        raise ValueError(
            "The examples do not all have the same tensor shapes and dtypes (pad texts or set `image_size`): "
            f"{sorted(layouts)[:2]}"
        )
    meta = json.loads(sorted(metas)[0])
    options = cache._options(outputs, top_k, top_k_temperature, dtype, 1, None, None, shard_size)
    file_list = [{"path": f, "bytes": tf.io.gfile.stat(f).length} for f in files]
    return {
        "format_version": FORMAT_VERSION,
        "keras_kd_version": keras_kd_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "complete": True,
        "teacher": teacher.fingerprint(),
        **options,
        "dataset": {
            "source": "beam",
            "format": source.format,
            "files": file_list,
            "inputs_sha256": cache._json_sha256(file_list),
        },
        "num_classes": meta["num_classes"],
        "batch_size": batch_size,
        "num_examples": sum(entry["num_examples"] for entry in entries),
        "structure": meta["structure"],
        "leaves": meta["leaves"],
        "shards": [{k: v for k, v in entry.items() if k != "key"} for entry in entries],
    }
