"""Run configs (YAML) for `keras_kd.pipeline`, validated completely on load.

The reference of every key is `docs/guides/configs.md`. Loading never constructs Python objects
(`yaml.safe_load`) and never imports user code: a `builder` is a registered name
(`keras_kd.models.registered_models()`) unless `module:function` code is explicitly allowed
(`allow_code=True`, `keras-kd distill --allow-code`, or an allow list of `module:function` /
`module:*` entries). Unknown keys, wrong types, non-finite or out-of-range values raise a
`ConfigError` (a `ValueError`) naming the key, the valid keys or range, and the received value.
"""

import copy
import inspect
import math
import numbers
import os


class ConfigError(ValueError):
    """A config value is wrong (the message names the key, the file and the value)."""


# ---------------------------------------------------------------- value checks


class Check:
    """A value check: `check(value, key)` returns the normalized value or raises a Keras-style error."""

    def __init__(self, description, accept, normalize=None):
        self.description = description
        self.accept = accept
        self.normalize = normalize

    def __call__(self, value, key):
        if not self.accept(value):
            raise ConfigError(f"`{key}` must be {self.description}. Received: {key}={value!r}")
        return self.normalize(value) if self.normalize else value


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum=None):
    text = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    return Check(text, lambda v: _is_int(v) and (minimum is None or v >= minimum), int)


def number(low=None, high=None, low_open=False):
    """A finite number, optionally in a range (`inf` and `nan` are refused)."""
    if low is not None and high is not None:
        text = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        text = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        text = "a finite number"

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
STRING_OR_LIST = Check("a path or a list of paths", lambda v: isinstance(v, str) and v or (
    isinstance(v, list) and v and all(isinstance(i, str) for i in v)))
SIZE = Check("a pair [height, width] of integers >= 1",
             lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(i) and i >= 1 for i in v), list)
LAYER_MAP = Check("a mapping {output_name: layer_name}",
                  lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()),
                  dict)


def list_of(check):
    def accept(v):
        return isinstance(v, list) and all(check.accept(item) for item in v)

    return Check(f"a list, each item {check.description}", accept, list)


TFLITE_MODES = ("float", "float16", "dynamic", "int8")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
TASKS = ("classification", "embedding")
MODES = ("distill", "mutual", "teacher_guided")
MULTI_TEACHER = ("mean_targets", "mean_losses")
FORMATS = ("csv", "tsv", "jsonl", "tfrecord", "image_folder", "tfds", "parallel_text")
TOKENIZERS = ("char", "byte", "wordpiece")
# Arguments the pipeline passes to a builder from the data (never an unknown-kwarg error).
DATA_ARGUMENTS = ("num_classes", "vocabulary_size", "sequence_length", "input_shape", "output_dim", "name")


# ---------------------------------------------------------------- sections


REQUIRED = object()


class Section:
    """A validated config section: attributes are the keys; `to_dict()` gives the mapping back.

    Subclasses list `FIELDS = {key: (default, check)}`; a default of `REQUIRED` makes the key
    mandatory; a `Section` subclass as the check makes a nested section.
    """

    FIELDS = {}
    NAME = ""

    def __init__(self, values=None, prefix=None, options=None):
        prefix = self.NAME if prefix is None else prefix
        self.options = options or LoadOptions()
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ConfigError(
                f"`{prefix}` must be a mapping with keys {', '.join(self.FIELDS)}. Received: {prefix}={values!r}"
            )
        unknown = [k for k in values if k not in self.FIELDS]
        if unknown:
            where = f"`{prefix}`" if prefix else "the config"
            raise ConfigError(f"Unknown key `{unknown[0]}` in {where}. Valid keys: {', '.join(self.FIELDS)}.")
        for key, (default, check) in self.FIELDS.items():
            name = f"{prefix}.{key}" if prefix else key
            if key not in values and default is REQUIRED:
                where = f" in `{prefix}`" if prefix else ""
                raise ConfigError(f"`{name}` is required. Valid keys{where}: {', '.join(self.FIELDS)}.")
            if isinstance(check, type) and issubclass(check, Section):
                if default is None and values.get(key) is None:
                    value = None if key in _OPTIONAL_SECTIONS.get(type(self).__name__, ()) else \
                        check(None, prefix=name, options=self.options)
                else:
                    value = check(values.get(key), prefix=name, options=self.options)
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
            if isinstance(value, Section):
                value = value.to_dict()
            elif isinstance(value, list) and value and isinstance(value[0], Section):
                value = [v.to_dict() for v in value]
            out[key] = copy.deepcopy(value)
        return out

    def __repr__(self):
        return f"{type(self).__name__}({self.to_dict()!r})"


# Nested sections that stay None when absent (instead of taking their defaults).
_OPTIONAL_SECTIONS = {"ModelConfig": ("inputs",), "TeacherConfig": ("inputs",), "StudentConfig": ("inputs",),
                      "DataConfig": ("source",), "RunConfig": ("teacher",)}


class LoadOptions:
    """What a config may do beyond the registry: `allow_code` (any `module:function` builder) or an
    `allow_list` of `module:function` / `module:*` entries."""

    def __init__(self, allow_code=False, allow_list=()):
        self.allow_code = bool(allow_code)
        self.allow_list = tuple(allow_list or ())

    def allows(self, spec):
        module = spec.split(":")[0]
        return self.allow_code or spec in self.allow_list or f"{module}:*" in self.allow_list


def check_builder(spec, key, options):
    """Validate a `builder` value WITHOUT importing anything; returns it."""
    from keras_kd import models

    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"`{key}` must be a registered model name or 'module:function'. Received: {key}={spec!r}")
    if ":" not in spec:
        if spec not in models.registered_models():
            raise ConfigError(
                f"`{key}` must be a registered model ({', '.join(models.registered_models())}) or an allowed "
                f"'module:function'. Received: {key}={spec!r}"
            )
        return spec
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"`{key}` must be 'module:function'. Received: {key}={spec!r}")
    if not options.allows(spec):
        raise ConfigError(
            f"`{key}` names code ({spec!r}); configs only run registered builders "
            f"({', '.join(models.registered_models())}) unless you allow it: `keras-kd distill --allow-code` "
            f"or `--allow {spec}`. Received: {key}={spec!r}"
        )
    return spec


class InputsConfig(Section):
    """A model's own preprocessing (`teacher.inputs` / `student.inputs`); unset keys follow `data`."""

    FIELDS = {
        "tokenizer": (None, optional(choice(*TOKENIZERS))),
        "sequence_length": (None, optional(integer(1))),
        "vocabulary_size": (None, optional(integer(4))),
        "vocabulary": (None, optional(STRING)),
        "lowercase": (None, optional(BOOLEAN)),
        "image_size": (None, optional(SIZE)),
    }


class ModelConfig(Section):
    FIELDS = {
        "path": (None, optional(STRING)),
        "sha256": (None, optional(Check("a 64-character hex SHA-256", lambda v: isinstance(v, str) and len(v) == 64
                                        and all(c in "0123456789abcdefABCDEF" for c in v), str.lower))),
        "builder": (None, optional(STRING)),
        "preset": (None, optional(STRING)),
        "transformers": (None, optional(STRING)),
        "kwargs": (dict, MAPPING),
        "inputs": (None, InputsConfig),
        "features": (None, optional(LAYER_MAP)),
        "train_epochs": (0, integer(0)),
        "fine_tune_backbone": (False, BOOLEAN),
        "learning_rate": (1e-3, number(0, low_open=True)),
        "weight": (1.0, number(0, low_open=True)),
        "outputs": (None, optional(Check("'logits' or 'probabilities' or 'auto'",
                                         lambda v: v in ("logits", "probabilities", "auto")))),
        "signature": ("serving_default", STRING),
        "embedded": (None, optional(STRING)),  # a folder with a trained teacher + card (keras_kd.models.embedded)
        "precomputed": (None, optional(STRING)),  # a .npz of logits per text (keras_kd.teachers.precomputed)
    }
    SOURCES = ("path", "builder", "preset", "transformers", "precomputed")

    def validate(self, prefix):
        given = [k for k in self.SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"`{prefix}` needs exactly one of {', '.join(f'`{k}`' for k in self.SOURCES)}. "
                f"Received: {', '.join(f'{k}={getattr(self, k)!r}' for k in given) or 'none of them'}"
            )
        if self.sha256 and self.path is None and self.precomputed is None:
            raise ConfigError(f"`{prefix}.sha256` checks the file of `{prefix}.path`; there is no `path`.")
        if self.precomputed is not None and (self.train_epochs or self.kwargs or self.inputs is not None):
            raise ConfigError(f"`{prefix}.precomputed` is a file of logits: it takes no `train_epochs`, `kwargs` or "
                              f"`inputs`.")
        if self.train_epochs and self.path is not None:
            raise ConfigError(
                f"`{prefix}.train_epochs` needs a `builder`, `preset` or `transformers` (a loaded model is used "
                f"as is). Received: {prefix}.train_epochs={self.train_epochs}, {prefix}.path={self.path!r}"
            )
        if self.builder is not None:
            check_builder(self.builder, f"{prefix}.builder", self.options)
            if ":" not in self.builder:
                from keras_kd import models

                function = models.get_builder(self.builder)
                names, takes_any = models.builder_parameters(function)
                unknown = [k for k in self.kwargs if k not in names and not takes_any]
                if unknown:
                    raise ConfigError(
                        f"`{prefix}.kwargs.{unknown[0]}` is not an argument of builder {self.builder!r}. "
                        f"Valid arguments: {', '.join(n for n in names if n not in ('name',))}."
                    )
        elif self.kwargs and self.path is not None:
            raise ConfigError(f"`{prefix}.kwargs` are for a `builder`, `preset` or `transformers`; a `path` model "
                              f"is loaded as is. Received: {prefix}.kwargs={self.kwargs!r}")

    @property
    def kind(self):
        if self.path is not None:
            return "saved_model" if os.path.isdir(self.path) else "keras"
        return next(k for k in self.SOURCES if getattr(self, k) is not None)


class TeacherConfig(ModelConfig):
    pass


class StudentConfig(ModelConfig):
    def validate(self, prefix):
        for key in ("preset", "transformers", "sha256", "precomputed"):
            if getattr(self, key) is not None:
                raise ConfigError(f"`{prefix}.{key}` is for teachers; build the student with `builder` or `path`.")
        super().validate(prefix)


class SourceConfig(Section):
    """`data.source`: the user's own files (see keras_kd.data.sources)."""

    FIELDS = {
        "format": (REQUIRED, choice(*FORMATS)),
        "train": (None, optional(STRING_OR_LIST)),
        "test": (None, optional(STRING_OR_LIST)),
        "unlabelled": (None, optional(STRING_OR_LIST)),
        "test_fraction": (None, optional(number(0, 0.9, low_open=True))),
        "text_column": ("text", STRING),
        "label_column": ("label", STRING),
        "image_size": (None, optional(SIZE)),
        "features": (None, optional(MAPPING)),
        "image_key": (None, optional(STRING)),
        "encoding": ("utf-8", STRING),
        "name": (None, optional(STRING)),
        "data_dir": (None, optional(STRING)),
        "train_split": ("train", STRING),
        "test_split": ("test", STRING),
        "languages": (None, optional(list_of(STRING))),
        "english_column": ("english", STRING),
        "translation_column": ("translation", STRING),
    }

    def validate(self, prefix):
        if self.format == "tfds":
            if not self.name or not self.data_dir:
                raise ConfigError(f"`{prefix}` with format tfds needs `name` and a local `data_dir` (no download). "
                                  f"Received: name={self.name!r}, data_dir={self.data_dir!r}")
        elif self.format == "parallel_text":
            if self.train is None and not self.languages:
                raise ConfigError(f"`{prefix}` with format parallel_text needs `train` (a TSV of english/translation "
                                  "pairs) or `languages` (installed translation catalogs).")
        elif self.train is None:
            raise ConfigError(f"`{prefix}.train` is required for format {self.format}.")
        if self.format == "tfrecord" and not self.features:
            raise ConfigError(f"`{prefix}.features` (the feature spec) is required for format tfrecord, e.g. "
                              "{text: string, label: int64}.")
        if self.test is not None and self.test_fraction is not None:
            raise ConfigError(f"`{prefix}` takes `test` or `test_fraction`, not both. "
                              f"Received: test={self.test!r}, test_fraction={self.test_fraction}")


AUGMENT_KEYS = ("copies", "mask_id", "mask_rate", "delete_rate", "num_swaps", "ngram_rate", "max_n", "pad_id",
                "special_ids", "level", "seed")
# `augment.level: text` perturbs the raw strings (keras_kd.data.augment.augment_texts) and takes only these keys
TEXT_AUGMENT_KEYS = ("copies", "delete_rate", "num_swaps", "ngram_rate", "level", "seed")


class DataConfig(Section):
    NAME = "data"
    FIELDS = {
        "dataset": (None, optional(STRING)),
        "source": (None, SourceConfig),
        "kwargs": (dict, MAPPING),
        "max_examples": (None, optional(integer(1))),
        "max_test_examples": (None, optional(integer(1))),
        "validation_fraction": (0.1, number(0.0, 0.9)),
        "sequence_length": (128, integer(1)),
        "tokenizer": ("char", choice(*TOKENIZERS)),
        "vocabulary_size": (8192, integer(4)),
        "vocabulary": (None, optional(STRING)),
        "lowercase": (False, BOOLEAN),
        "image_size": (None, optional(SIZE)),
        "cache_teacher_outputs": (True, BOOLEAN),
        "cache_dir": (None, optional(STRING)),
        "augment": (None, optional(MAPPING)),
    }

    def validate(self, prefix):
        if (self.dataset is None) == (self.source is None):
            raise ConfigError(f"`{prefix}` needs exactly one of `dataset` (a built-in dataset) or `source` (your own "
                              f"files). Received: dataset={self.dataset!r}, source={self.source!r}")
        if self.augment is not None:
            unknown = [k for k in self.augment if k not in AUGMENT_KEYS]
            if unknown:
                raise ConfigError(
                    f"Unknown key `{unknown[0]}` in `{prefix}.augment`. Valid keys: {', '.join(AUGMENT_KEYS)}."
                )
            level = self.augment.get("level", "tokens")
            if level not in ("tokens", "text"):
                raise ConfigError(f"`{prefix}.augment.level` must be 'tokens' (perturb token ids) or 'text' (perturb the "
                                  f"raw strings). Received: {prefix}.augment.level={level!r}")
            unknown = [k for k in self.augment if k not in TEXT_AUGMENT_KEYS] if level == "text" else []
            if unknown:
                raise ConfigError(f"`{prefix}.augment.{unknown[0]}` applies to token ids; `augment.level: text` takes "
                                  f"{', '.join(TEXT_AUGMENT_KEYS)}.")
            if "seed" in self.augment and level != "text":
                raise ConfigError(f"`{prefix}.augment.seed` fixes the copies made from the raw text (`level: text`); "
                                  f"token-level copies follow the run's `seed`.")
            if "seed" in self.augment and (not _is_int(self.augment["seed"]) or self.augment["seed"] < 0):
                raise ConfigError(f"`{prefix}.augment.seed` must be an integer >= 0. "
                                  f"Received: {prefix}.augment.seed={self.augment['seed']!r}")
            copies = self.augment.get("copies", 1)
            if not _is_int(copies) or copies < 1:
                raise ConfigError(f"`{prefix}.augment.copies` must be an integer >= 1. "
                                  f"Received: {prefix}.augment.copies={copies!r}")
        if self.dataset is not None:
            from keras_kd.data import datasets

            names = sorted(datasets.LOADERS)
            if self.dataset not in names:
                raise ConfigError(
                    f"`{prefix}.dataset` must be one of {', '.join(names)} (or use `data.source` for your own files). "
                    f"Received: {prefix}.dataset={self.dataset!r}"
                )
            function = datasets.LOADERS[self.dataset]
            parameters = inspect.signature(function).parameters
            unknown = [k for k in self.kwargs if k not in parameters]
            if unknown:
                raise ConfigError(f"`{prefix}.kwargs.{unknown[0]}` is not an argument of dataset {self.dataset!r}. "
                                  f"Valid arguments: {', '.join(parameters)}.")
        elif self.kwargs:
            raise ConfigError(f"`{prefix}.kwargs` are arguments of a built-in `dataset`; with `source`, use the "
                              f"source's keys. Received: {prefix}.kwargs={self.kwargs!r}")


def _default(name):
    from keras_kd import defaults

    return float(getattr(defaults, name))


def _schedule_check(key):
    def accept(v):
        return v is None or isinstance(v, dict)

    return Check("a mapping with `values` ([[step, value], ...]) and optional `unit`", accept)


class DistillationConfig(Section):
    NAME = "distillation"
    FIELDS = {
        "loss": ("kl", STRING_OR_MAPPING),
        "temperature": (lambda: _default("DEFAULT_TEMPERATURE"), number(0, low_open=True)),
        "alpha": (lambda: _default("DEFAULT_ALPHA"), number(0.0, 1.0)),
        "feature_losses": (list, list_of(MAPPING)),
        "temperature_schedule": (None, _schedule_check("temperature_schedule")),
        "alpha_schedule": (None, _schedule_check("alpha_schedule")),
        "mode": ("distill", choice(*MODES)),
        "multi_teacher": ("mean_targets", choice(*MULTI_TEACHER)),
    }

    def validate(self, prefix):
        import keras

        from keras_kd import losses
        from keras_kd.losses.features import FeatureLoss

        for key in ("temperature_schedule", "alpha_schedule"):
            if getattr(self, key) is not None:
                self._check_schedule(key, prefix)
        name = self.loss if isinstance(self.loss, str) else self.loss.get("name")
        valid = [n for n in losses.registered_names()
                 if issubclass(losses.registry.get_class(n), keras.losses.Loss)]
        if name not in valid:
            extra = ""
            if name in losses.registered_names():
                extra = f" {name!r} is a feature loss: put it under `{prefix}.feature_losses`."
            raise ConfigError(
                f"`{prefix}.loss` must be a registered logit loss name ({', '.join(valid)}) or a mapping with "
                f"such a `name`.{extra} Received: {prefix}.loss={self.loss!r}"
            )
        if isinstance(self.loss, dict):
            _check_class_kwargs(losses.registry.get_class(name), self.loss, f"{prefix}.loss")
        feature_names = [n for n in losses.registered_names() if issubclass(losses.registry.get_class(n), FeatureLoss)]
        for i, spec in enumerate(self.feature_losses):
            key = f"{prefix}.feature_losses[{i}]"
            if spec.get("name") not in feature_names:
                raise ConfigError(f"`{key}.name` must be a registered feature loss ({', '.join(feature_names)}). "
                                  f"Received: {key}.name={spec.get('name')!r}")
            _check_class_kwargs(losses.registry.get_class(spec["name"]), spec, key)

    def _check_schedule(self, key, prefix):
        spec = getattr(self, key)
        unknown = [k for k in spec if k not in ("values", "unit")]
        values = spec.get("values")
        if unknown or not isinstance(values, list) or not values:
            raise ConfigError(f"`{prefix}.{key}` is a mapping with `values` (a list of [step, value] pairs) and "
                              f"optional `unit` (step or epoch). Received: {prefix}.{key}={spec!r}")
        if spec.get("unit", "step") not in ("step", "epoch"):
            raise ConfigError(f"`{prefix}.{key}.unit` must be one of 'step', 'epoch'. "
                              f"Received: {prefix}.{key}.unit={spec.get('unit')!r}")
        check = number(0, low_open=True) if key == "temperature_schedule" else number(0.0, 1.0)
        for i, pair in enumerate(values):
            if not (isinstance(pair, list) and len(pair) == 2 and _is_int(pair[0]) and pair[0] >= 0):
                raise ConfigError(f"`{prefix}.{key}.values[{i}]` must be a pair [step, value]. "
                                  f"Received: {prefix}.{key}.values[{i}]={pair!r}")
            check(pair[1], f"{prefix}.{key}.values[{i}][1]")

    def build_scheduler(self, key):
        """The `TemperatureScheduler` / `AlphaScheduler` callback for `key`, or None."""
        spec = getattr(self, key)
        if spec is None:
            return None
        from keras_kd.callbacks import AlphaScheduler, TemperatureScheduler

        cls = TemperatureScheduler if key == "temperature_schedule" else AlphaScheduler
        return cls([tuple(pair) for pair in spec["values"]], unit=spec.get("unit", "step"))

    def build_loss(self):
        """The distillation loss object (the temperature applies when the loss takes one)."""
        from keras_kd import losses

        config = {"name": self.loss} if isinstance(self.loss, str) else dict(self.loss)
        cls = losses.registry.get_class(config["name"])
        if "temperature" not in config and _accepts(cls, "temperature"):
            config["temperature"] = self.temperature
        return losses.get(config)

    def build_feature_losses(self):
        from keras_kd import losses

        return [losses.get(_as_layer_map(dict(spec))) for spec in self.feature_losses]


def _as_layer_map(spec):
    if isinstance(spec.get("layer_map"), list):
        spec["layer_map"] = [tuple(p) if isinstance(p, list) else p for p in spec["layer_map"]]
    return spec


def _check_class_kwargs(cls, spec, key):
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        parameters = dict(parameters)
        for base in cls.__mro__[1:]:
            if "__init__" in vars(base):
                parameters.update(inspect.signature(base.__init__).parameters)
    valid = [n for n in parameters if n not in ("self", "kwargs", "args")]
    unknown = [k for k in spec if k != "name" and k not in valid]
    if unknown:
        raise ConfigError(f"`{key}.{unknown[0]}` is not an argument of {cls.__name__}. Valid: {', '.join(valid)}.")
    for arg in ("temperature",):
        if arg in spec:
            number(0, low_open=True)(spec[arg], f"{key}.{arg}")
    if "weight" in spec:
        number(0)(spec["weight"], f"{key}.weight")


def _accepts(cls, argument):
    return argument in inspect.signature(cls.__init__).parameters


class TrainingConfig(Section):
    NAME = "training"
    FIELDS = {
        "epochs": (3, integer(1)),
        "batch_size": (64, integer(1)),
        "optimizer": ("adam", choice(*OPTIMIZERS)),
        "learning_rate": (1e-3, number(0, low_open=True)),
        "lr_schedule": ("constant", choice("constant", "cosine")),
        "jit_compile": ("auto", Check("true, false or 'auto'", lambda v: v in (True, False, "auto"))),
        "steps_per_epoch": (None, optional(integer(1))),
        # each student (distilled and scratch) keeps the weights of its epoch with the best validation accuracy
        "keep_best_epoch": (False, BOOLEAN),
    }

    def build_optimizer(self, decay_steps=None):
        """The optimizer; with `lr_schedule: cosine` and `decay_steps`, its learning rate decays to 0 over them."""
        import keras

        classes = {
            "adam": keras.optimizers.Adam,
            "adamw": keras.optimizers.AdamW,
            "sgd": keras.optimizers.SGD,
            "rmsprop": keras.optimizers.RMSprop,
        }
        learning_rate = self.learning_rate
        if self.lr_schedule == "cosine" and decay_steps:
            learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, int(decay_steps))
        return classes[self.optimizer](learning_rate=learning_rate)


class BaselineConfig(Section):
    """`baseline`: the same student trained from scratch on the labels, for comparison.

    `data` (with `data.augment`): `labels` trains on the labelled examples only (`epochs`, default
    `training.epochs`); `transfer` on the distilled student's transfer set with the gold labels (the
    labelled examples plus the same augmented copies; `training.epochs`, the same optimizer and
    schedule as the distilled student); `best` trains both and keeps the one with the better
    validation accuracy. Without augmentation the two are the same and the baseline trains once.
    """

    NAME = "baseline"
    FIELDS = {
        "enabled": (True, BOOLEAN),
        "epochs": (None, optional(integer(1))),
        "data": ("best", choice("best", "labels", "transfer")),
    }


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
        "save_teacher": (False, BOOLEAN),
    }


def _teacher_list(value, key):
    if not isinstance(value, list) or not value:
        raise ConfigError(f"`{key}` must be a non-empty list of teacher mappings. Received: {key}={value!r}")
    return value


class RunConfig(Section):
    """A whole run config."""

    NAME = ""
    FIELDS = {
        "name": (None, optional(STRING)),
        "seed": (0, integer(0)),
        "task": ("classification", choice(*TASKS)),
        "teacher": (None, TeacherConfig),
        "teachers": (None, optional(Check("a non-empty list of teacher mappings",
                                          lambda v: isinstance(v, list) and len(v) > 0))),
        "student": (REQUIRED, StudentConfig),
        "data": (REQUIRED, DataConfig),
        "distillation": (None, DistillationConfig),
        "training": (None, TrainingConfig),
        "baseline": (None, BaselineConfig),
        "strategy": ("default", choice(*STRATEGIES)),
        "precision": ("float32", choice(*PRECISIONS)),
        "export": (None, ExportConfig),
        "output": (None, OutputConfig),
        "quick": (None, optional(MAPPING)),
    }

    def validate(self, prefix):
        if (self.teacher is None) == (self.teachers is None):
            raise ConfigError("The config needs exactly one of `teacher` (a mapping) or `teachers` (a list of "
                              "mappings, each with an optional `weight`).")
        if self.teachers is not None:
            self.teachers = [TeacherConfig(t, prefix=f"teachers[{i}]", options=self.options)
                             for i, t in enumerate(self.teachers)]
        if self.quick is not None:
            unknown = [k for k in self.quick if k not in self.FIELDS or k in ("quick", "name")]
            if unknown:
                raise ConfigError(f"Unknown key `{unknown[0]}` in `quick`. Valid keys: "
                                  f"{', '.join(k for k in self.FIELDS if k not in ('quick', 'name'))}.")
        if self.task == "embedding":
            if self.data.source is None or self.data.source.format != "parallel_text":
                raise ConfigError("`task: embedding` reads parallel text: set `data.source.format: parallel_text`.")
            if len(self.all_teachers) != 1:
                raise ConfigError("`task: embedding` takes a single `teacher`.")
        elif self.data.source is not None and self.data.source.format == "parallel_text":
            raise ConfigError("`data.source.format: parallel_text` is for `task: embedding`. Received: "
                              f"task={self.task!r}")
        online = (self.distillation.mode != "distill" or bool(self.distillation.feature_losses)
                  or not self.data.cache_teacher_outputs)
        if online and any(t.kind == "precomputed" for t in self.all_teachers):
            raise ConfigError("A `precomputed` teacher is a table of cached outputs: it needs "
                              "`data.cache_teacher_outputs: true`, `distillation.mode: distill` and no feature losses.")
        if (self.distillation.mode != "distill" or len(self.all_teachers) > 1 or self.distillation.feature_losses) \
                and any(t.kind in ("preset", "transformers") for t in self.all_teachers):
            raise ConfigError("Online teachers (`distillation.mode`, several teachers, feature losses) must read "
                              "the student's inputs: use `.keras`/builder teachers.")

    @property
    def all_teachers(self):
        return [self.teacher] if self.teacher is not None else list(self.teachers)

    def to_dict(self):
        out = super().to_dict()
        if self.teachers is not None:
            out["teachers"] = [t.to_dict() for t in self.teachers]
        return {k: v for k, v in out.items() if v is not None or k in ("name",)}

    def run_dirs(self, output_dir=None, runs_dir=None):
        """`(saved_models/<name>, runs/<name>)`, overridable from the command line."""
        return (
            os.path.join(output_dir or self.output.saved_models_dir, self.name),
            os.path.join(runs_dir or self.output.runs_dir, self.name),
        )


# ---------------------------------------------------------------- loading


def deep_merge(base, overrides):
    """`base` with `overrides` merged in (mappings recursively; anything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_config(mapping, name=None, quick=False, allow_code=False, allow_list=(), overrides=None):
    """Validate a config mapping (as loaded from YAML) into a `RunConfig`.

    `quick=True` merges the config's `quick:` section over it (smaller data, fewer epochs);
    `overrides` is a mapping merged last (e.g. `{"seed": 3}`).
    """
    if not isinstance(mapping, dict):
        raise ConfigError(
            f"A keras-kd config must be a YAML mapping with sections {', '.join(RunConfig.FIELDS)}. "
            f"Received: {type(mapping).__name__}"
        )
    if quick:
        quick_section = mapping.get("quick")
        if quick_section is not None and isinstance(quick_section, dict):
            mapping = deep_merge(mapping, quick_section)
    if overrides:
        mapping = deep_merge(mapping, overrides)
    config = RunConfig(mapping, options=LoadOptions(allow_code=allow_code, allow_list=allow_list))
    if config.name is None:
        config.name = name or "run"
    return config


def load_yaml(path):
    """`yaml.safe_load` of a file, refusing Python tags with a clear message."""
    import yaml

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such config file.")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as error:
        raise ConfigError(
            f"{path}: {error.problem} ({str(error.problem_mark).strip()}). keras-kd reads configs with "
            "`yaml.safe_load`, which never builds Python objects: remove `!!python/...` or other custom "
            "tags and write plain values (names, numbers, lists, mappings)."
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None


def load_config(path, quick=False, allow_code=False, allow_list=(), overrides=None):
    """Read and validate a YAML config file; the run name defaults to the file's stem.

    Relative paths inside the config (data files, teacher files) are resolved against the current
    directory, like the command line's.
    """
    mapping = load_yaml(path)
    try:
        return parse_config(mapping, name=os.path.splitext(os.path.basename(os.fspath(path)))[0], quick=quick,
                            allow_code=allow_code, allow_list=allow_list, overrides=overrides)
    except ConfigError as error:
        raise ConfigError(f"{os.fspath(path)}: {error}") from None
