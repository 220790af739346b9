"""`keras-kd cache --config FILE.yaml --runner DirectRunner [beam pipeline options]`: label a corpus on Beam.

Runs `keras_kd.data.beam.label_with_beam` as the YAML file says and writes a sharded teacher cache
that `keras_kd.data.load_cached_teacher_outputs` reads. The config:

    teacher: {path: teacher.keras}          # or {path: saved_model_dir} or {preset: NAME, task_class: TextClassifier}
    source:                                 # keras_kd.data.beam.SourceSpec
      files: ["corpus/*.tfrecord"]
      format: tfrecord                      # text | tfrecord | images
      features: {x: {shape: [8], dtype: float32}, y: {shape: [], dtype: int64}}
      inputs: x
      label: y
    output: cache_dir
    cache: {outputs: [logits], dtype: float32, top_k: null, top_k_temperature: 1.0, shard_size: 100000,
            min_batch_size: 1, max_batch_size: 256}

Every other option is passed to Beam, e.g. `--direct_num_workers=2
--direct_running_mode=multi_threading`, or a cluster runner's flags (see docs/guides/cache.md).
"""

_KEYS = {"teacher", "source", "output", "cache"}
_CACHE_KEYS = {
    "outputs",
    "dtype",
    "top_k",
    "top_k_temperature",
    "shard_size",
    "batch_size",
    "min_batch_size",
    "max_batch_size",
}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "cache",
        help="label a corpus with the teacher on Apache Beam into a sharded cache",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--config", required=True, help="YAML file (teacher, source, output, cache)"
    )
    parser.add_argument(
        "--runner", default="DirectRunner", help="Beam runner (default DirectRunner)"
    )
    parser.set_defaults(func=run, accepts_extra_args=True)
    return parser


def load_config(path):
    """The validated YAML config (a dict); errors name the file and the key."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the config ({error.strerror}).") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error}).") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the config must be a mapping with keys {sorted(_KEYS)}.")
    unknown = set(config) - _KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; expected {sorted(_KEYS)}.")
    for key in ("teacher", "source", "output"):
        if key not in config:
            raise ValueError(f"{path}: missing key `{key}`.")
    for key in ("teacher", "source"):
        if not isinstance(config[key], dict):
            raise ValueError(f"{path}: `{key}` must be a mapping. Received: {key}={config[key]!r}")
    options = config.get("cache") or {}
    unknown = set(options) - _CACHE_KEYS
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) under `cache`: {sorted(unknown)}; expected {sorted(_CACHE_KEYS)}."
        )
    return config


def run(args):
    from keras_kd.data import beam

    config = load_config(args.config)  # errors name the file and key; main prints them on one line
    teacher = beam.TeacherSpec(**config["teacher"])
    source = beam.SourceSpec(**config["source"])
    pipeline_args = [f"--runner={args.runner}", *getattr(args, "extra_args", [])]
    manifest = beam.label_with_beam(
        teacher,
        source,
        config["output"],
        pipeline_args=pipeline_args,
        **(config.get("cache") or {}),
    )
    print(
        f"Wrote {manifest['num_examples']} examples in {len(manifest['shards'])} shard(s) to {config['output']} "
        f"({manifest['beam']['seconds']:.0f} s on {args.runner})."
    )
    return 0
