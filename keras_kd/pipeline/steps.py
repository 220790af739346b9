"""`run_config`: teacher → cache → distill → scratch baseline → compare → export → report.

One code path for `keras-kd distill --config`, `keras-kd demo` (a bundled config) and Python:

```python
from keras_kd import pipeline

result = pipeline.run("my.yaml", quick=True)        # or a validated RunConfig
result.metrics["distilled"]["accuracy"], result.paths["report"]
```
"""

import os
import time

import numpy as np

from keras_kd.pipeline import report as report_lib
from keras_kd.pipeline.common import PipelineResult, build_student, fit_verbose, say
from keras_kd.pipeline.config import ConfigError
from keras_kd.pipeline.data import prepare_data
from keras_kd.pipeline.teachers import (
    ensure_logits,
    load_teacher,
    outputs_of,
)


def _strategy(name):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    from keras_kd import distribute

    return distribute.get_strategy(name)


def _dataset(x, y=None, batch_size=512, shuffle=False, seed=None):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle:
        n = len(y) if y is not None else len(next(iter(x.values())) if isinstance(x, dict) else x)
        data = data.shuffle(n, seed=seed)
    return data.batch(batch_size)


def _concat(a, b):
    if b is None or len(b) == 0:
        return a
    if isinstance(a, dict):
        return {k: np.concatenate([a[k], b[k]]) for k in a}
    return np.concatenate([a, b])


def _model_inputs(teacher, data, split):
    """Inputs for the transfer set: the shared view, or {"teacher_inputs", "student_inputs"}."""
    from keras_kd.data import keys

    x_student = getattr(data, f"x_{split}")
    if teacher.shares_student_inputs:
        return x_student
    return {keys.TEACHER_INPUTS: teacher.view(data, split), keys.STUDENT_INPUTS: x_student}


def _augmentation(config, teacher, data):
    augment = config.data.augment
    if not augment:
        return None, 0
    if data.kind != "text":
        raise ConfigError("`data.augment` perturbs token ids: it applies to text data. "
                          f"Received: {data.kind} data.")
    if not teacher.shares_student_inputs:
        raise ConfigError("`data.augment` perturbs the student's token ids; this teacher reads its own inputs, so "
                          "the two views would differ. Remove `data.augment` or give the teacher the student's "
                          "inputs.")
    from keras_kd.data.augment import TokenAugmentation

    options = dict(augment)
    copies = options.pop("copies", 1)
    try:
        return TokenAugmentation(**options, seed=config.seed), copies
    except (TypeError, ValueError) as error:
        raise ConfigError(f"`data.augment`: {error}") from None


def _train_teacher(teacher, config, data, batch_size, smoke, runs_dir, verbose):
    import keras

    spec = config
    epochs = 1 if smoke else spec.train_epochs
    callbacks = [keras.callbacks.TensorBoard(os.path.join(runs_dir, "teacher"), write_graph=False)]
    has_val = len(data.y_val) > 0
    if teacher.kind in ("preset", "transformers"):
        from keras_kd.teachers.finetune import fine_tune_head

        def view(split):
            x = teacher.view(data, split)
            return _dataset(x, getattr(data, f"y_{split}"), batch_size=32 if not smoke else 16)

        history = keras.callbacks.History()
        fine_tune_head(teacher.model, view("train").take(1) if smoke else view("train"), num_classes=data.num_classes,
                       epochs=epochs, fine_tune_backbone=spec.fine_tune_backbone and not smoke,
                       learning_rate=spec.learning_rate, validation_data=view("val") if has_val else None,
                       callbacks=[history, *callbacks], verbose=2 if verbose else 0)
        return history
    model = teacher.model
    model.compile(keras.optimizers.Adam(spec.learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False if smoke else "auto")
    history = model.fit(teacher.view(data, "train"), data.y_train,
                        validation_data=(teacher.view(data, "val"), data.y_val) if has_val else None,
                        epochs=epochs, batch_size=batch_size, steps_per_epoch=1 if smoke else None,
                        verbose=fit_verbose(verbose, smoke), callbacks=callbacks)
    model.trainable = False
    return history


def run_config(config, smoke=False, output_dir=None, runs_dir=None, verbose=1, options=None):
    """Run a validated `RunConfig`; returns a `PipelineResult`. See the module docstring."""
    import keras

    started = time.perf_counter()
    options = options or config.options
    keras.utils.set_random_seed(config.seed)
    out_dir, run_dir = config.run_dirs(output_dir, runs_dir)
    os.makedirs(out_dir, exist_ok=True)
    if config.precision != "float32":
        keras.mixed_precision.set_global_policy(config.precision)
    source = config.data.dataset or f"{config.data.source.format} data"
    say(f"{config.name}: loading {source}{' (smoke: tiny slice, 1 step)' if smoke else ''}", verbose)
    data = prepare_data(config, smoke=smoke)
    if verbose:
        print(f"  {len(data.raw['train'])} train / {len(data.raw['val'])} validation / {len(data.raw['test'])} test"
              + (f" / {len(data.raw['unlabelled'])} unlabelled" if len(data.raw["unlabelled"]) else "")
              + " examples", flush=True)
    if config.task == "embedding":
        from keras_kd.pipeline.embedding import run_embedding

        return run_embedding(config, data, out_dir, run_dir, smoke, verbose, options, started)
    return _run_classification(config, data, out_dir, run_dir, smoke, verbose, options, started)


def _run_classification(config, data, out_dir, run_dir, smoke, verbose, options, started):
    import keras

    import keras_kd
    from keras_kd.callbacks import DistillationTensorBoard
    from keras_kd.data.cache import cache_teacher_outputs, with_teacher_outputs

    training, distillation = config.training, config.distillation
    strategy = _strategy(config.strategy)
    specs = config.all_teachers
    keys_of = ["teacher"] if config.teacher is not None else [f"teachers[{i}]" for i in range(len(specs))]
    with strategy.scope():
        teachers = [load_teacher(spec, key, data, options, smoke) for spec, key in zip(specs, keys_of, strict=True)]
    histories = {}
    for teacher, key in zip(teachers, keys_of, strict=True):
        if teacher.config.train_epochs and teacher.kind != "embedded":
            say(f"Training the {key} ({1 if smoke else teacher.config.train_epochs} epoch(s))", verbose)
            histories["teacher"] = _train_teacher(teacher, teacher.config, data, training.batch_size, smoke, run_dir,
                                                  verbose)
        ensure_logits(teacher, _first(teacher.view(data, "train"), 8), key)

    text_copies = _text_copies(config, data)
    cached = config.data.cache_teacher_outputs and distillation.mode == "distill" and not distillation.feature_losses
    # several teachers are cached as one target (their mean log-probabilities) when one of them reads its own
    # inputs (a precomputed table, another tokenizer) or the copies are made from the raw text; otherwise online
    by_text = cached and (text_copies > 0 or (len(teachers) > 1 and distillation.multi_teacher == "mean_targets"
                                              and not all(t.shares_student_inputs for t in teachers)))
    online = not cached or (len(teachers) > 1 and not by_text)
    if online and not all(t.shares_student_inputs for t in teachers):
        raise ConfigError("An online teacher (several teachers, `distillation.mode`, feature losses or "
                          "`data.cache_teacher_outputs: false`) must read the student's inputs; remove `inputs` "
                          "from the teacher or cache its outputs.")
    teacher = teachers[0]
    global_batch = training.batch_size * strategy.num_replicas_in_sync

    # unlabelled rows: the teacher (ensemble) labels them and they join the transfer set
    x_extra = y_extra = None
    if len(data.raw["unlabelled"]):
        logits = _ensemble_logits(teachers, data, "unlabelled")
        x_extra, y_extra = _model_inputs(teacher, data, "unlabelled"), np.argmax(logits, -1).astype("int32")
        say(f"The teacher labels {len(y_extra)} unlabelled examples (added to the transfer set)", verbose)

    augmentation, copies = (None, text_copies) if by_text else _augmentation(config, teacher, data)
    x_transfer = _concat(_model_inputs(teacher, data, "train"), x_extra)
    y_transfer = _concat(data.y_train, y_extra)
    gold_transfer = None
    # the teachers' validation logits, once: the cached validation set (by text) and the teacher's accuracy
    val_logits = _ensemble_logits(teachers, data, "val") if len(data.y_val) else None
    if by_text and config.data.cache_dir:
        raise ConfigError("`data.cache_dir` stores a token-level transfer set; this one (copies made from the raw "
                          "text, or several teachers cached as one target) is labelled in memory: remove `cache_dir`.")
    if by_text:
        say("Labelling the transfer set with the teacher" + ("s (their mean log-probabilities)" if len(teachers) > 1
                                                              else "") + ", cached once"
            + (f": {len(y_transfer)} examples + {copies} augmented copies each (made from the raw text)"
               if copies else ""), verbose)
        train_ds, gold_transfer = _text_transfer_set(config, teachers, data, y_extra, copies, global_batch)
        val_ds = (with_teacher_outputs(data.x_val, val_logits, data.y_val, batch_size=64)
                  if val_logits is not None else None)
    elif not online:
        say("Labelling the transfer set with the teacher (its logits cached once)"
             + (f": {len(y_transfer)} examples + {copies} augmented copies each" if copies else ""), verbose)
        source = _dataset(x_transfer, y_transfer, batch_size=512 if teacher.shares_student_inputs else 64)
        if augmentation is not None:
            from keras_kd.data.augment import expand_with_augmentations

            source = expand_with_augmentations(source, augmentation, copies=copies)
        cache_dir = config.data.cache_dir
        train_ds = cache_teacher_outputs(teacher.model, source, batch_size=global_batch, shuffle=True, seed=config.seed,
                                         path=os.path.join(cache_dir, "train") if cache_dir else None,
                                         verbose=1 if verbose and not smoke and verbose != 2 else 0)
        val_ds = cache_teacher_outputs(teacher.model, _dataset(_model_inputs(teacher, data, "val"), data.y_val, 64),
                                       verbose=0) if len(data.y_val) else None
    else:
        if augmentation is not None:
            raise ConfigError("`data.augment` needs `data.cache_teacher_outputs: true` and a single offline teacher "
                              "(the teacher labels the augmented copies once).")
        train_ds = _dataset(x_transfer, y_transfer, global_batch, shuffle=True, seed=config.seed)
        val_ds = _dataset(data.x_val, data.y_val, 512) if len(data.y_val) else None

    teacher_test_logits = _ensemble_logits(teachers, data, "test")
    teacher_val_accuracy = (float(np.mean(np.argmax(val_logits, -1) == data.y_val))
                            if val_logits is not None else None)

    # the scratch baseline: the same student on the gold labels (see `BaselineConfig` for `baseline.data`)
    scratch, scratch_note = None, None
    student_epochs = 1 if smoke else training.epochs
    has_val = len(data.y_val) > 0
    if config.baseline.enabled:
        scratch, scratch_note = _train_scratch(config, data, strategy, train_ds, augmentation, copies,
                                               x_extra is not None, online, student_epochs, run_dir, smoke, verbose,
                                               options, histories, gold_transfer)

    say(f"Distilling into the student ({student_epochs} epoch(s))", verbose)
    keras.utils.set_random_seed(config.seed + 1)
    with strategy.scope():
        student = build_student(config, data, options, "student_distilled")
        kwargs = dict(distillation_loss=distillation.build_loss(), alpha=distillation.alpha,
                      feature_losses=distillation.build_feature_losses() or None)
        if online:
            models = [t.model for t in teachers]
            kwargs.update(teacher=models if len(models) > 1 else models[0], mode=distillation.mode,
                          multi_teacher=distillation.multi_teacher,
                          student_features=config.student.features, teacher_features=teacher.config.features)
            if len(models) > 1:
                kwargs["teacher_weights"] = [t.config.weight for t in teachers]
        else:
            kwargs["teacher"] = None
        distiller = keras_kd.Distiller(student, **kwargs)
        steps = training.steps_per_epoch or int(train_ds.cardinality())
        distiller.compile(optimizer=training.build_optimizer(decay_steps=student_epochs * steps if steps > 0 else None),
                          metrics=["accuracy"],
                          jit_compile=False if smoke else training.jit_compile)
    callbacks = [DistillationTensorBoard(
        log_dir=os.path.join(run_dir, "distilled"), run_name=config.name, config=config.to_dict(),
        teacher_metrics={"val_accuracy": teacher_val_accuracy} if teacher_val_accuracy is not None else None)]
    callbacks += [c for c in (distillation.build_scheduler("temperature_schedule"),
                              distillation.build_scheduler("alpha_schedule")) if c is not None]
    best_epoch = _best_epoch_callback(student, data.x_val, data.y_val) if training.keep_best_epoch and has_val else None
    histories["distilled"] = distiller.fit(train_ds, validation_data=val_ds, epochs=student_epochs,
                                           steps_per_epoch=1 if smoke else training.steps_per_epoch, shuffle=False,
                                           verbose=fit_verbose(verbose, smoke),
                                           callbacks=callbacks + ([best_epoch] if best_epoch else []))
    if best_epoch is not None:
        best_epoch.restore()

    say("Evaluating on the test set, exporting the student (SavedModel + TFLite), writing the report", verbose)
    paths = {"output_dir": out_dir, "runs_dir": run_dir}
    if config.output.save_teacher and teacher.kind in ("keras", "builder", "embedded") and len(teachers) == 1:
        paths["teacher"] = os.path.join(out_dir, "teacher.keras")
        keras.saving.save_model(teacher.model, paths["teacher"])
    paths["student"] = os.path.join(out_dir, "student.keras")
    keras.saving.save_model(student, paths["student"])
    rows = _teacher_rows(teachers, data, teacher_test_logits)
    if scratch is not None:
        paths["scratch"] = os.path.join(out_dir, "student_scratch.keras")
        keras.saving.save_model(scratch, paths["scratch"])
        rows.append(report_lib.model_row("scratch student", scratch, data.x_test, data.y_test,
                                         class_names=data.class_names, reference_logits=teacher_test_logits,
                                         logits=outputs_of(scratch, data.x_test)))
    rows.append(report_lib.model_row("distilled student", student, data.x_test, data.y_test,
                                     class_names=data.class_names, reference_logits=teacher_test_logits,
                                     logits=outputs_of(student, data.x_test)))
    representative = data.x_train[:256] if len(data.x_train) else None
    exports = report_lib.export_student(
        student, out_dir, representative_data=representative, preprocessor=data.tokenizer,
        class_names=data.class_names, saved_model=config.export.saved_model,
        tflite_modes=tuple(m for m in config.export.tflite if not (smoke and m == "int8")),
    )
    for label, path in exports.items():
        paths["saved_model" if label == "SavedModel" else label.lower().replace(" ", "_")] = path
    export_rows = report_lib.tflite_rows(student, exports, data.x_test, data.y_test)
    elapsed = time.perf_counter() - started
    t = distillation
    notes = [
        f"Config: {config.name} (seed {config.seed}); teacher: {', '.join(_describe(x) for x in teachers)}; "
        f"{len(y_transfer)} transfer examples" + (f" + {copies} augmented copies each" if copies else "")
        + (" (made from the raw text)" if by_text and copies else "")
        + (", teacher outputs cached once" if not online else f", online teacher (mode {t.mode})")
        + f"; loss {t.loss if isinstance(t.loss, str) else t.loss.get('name')}, T={t.temperature:g}, "
        f"alpha={t.alpha:g}.",
    ]
    if scratch_note:
        notes.append(scratch_note)
    if training.keep_best_epoch and has_val:
        notes.append(f"Each student keeps its epoch with the best validation accuracy (distilled: epoch "
                     f"{best_epoch.best_epoch} of {student_epochs}).")
    if len(rows) >= 2 and rows[0].get("params") and rows[-1].get("params"):
        notes.append(f"Parameter ratio teacher/student: {rows[0]['params'] / rows[-1]['params']:.1f}x.")
    notes.append(f"Wall time {elapsed:.0f} s{' (smoke run)' if smoke else ''}.")
    metrics = {}
    roles = {"teacher": "teacher", "scratch student": "scratch", "distilled student": "distilled"}
    for row in rows:
        metrics[roles.get(row["model"], row["model"])] = {
            k: row[k] for k in ("accuracy", "macro F1", "ECE", "teacher agreement", "params") if k in row}
    paths["report"] = report_lib.write_report(
        out_dir, title=f"keras-kd: {config.name}", rows=rows, export_rows=export_rows, notes=notes,
        class_names=data.class_names, histories=histories,
        predictions={row["model"]: (data.y_test, row.pop("_logits")) for row in rows}, runs_dir=run_dir,
    )
    if verbose:
        report_lib.print_summary(rows, export_rows, out_dir, run_dir, elapsed,
                                 notes=[n for n in notes if n.startswith(("Scratch student", "Each student"))])
    return PipelineResult(config.name, config.task, metrics, paths, list(data.class_names), elapsed,
                          [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])


def _best_epoch_callback(student, x_val, y_val):
    """A Keras callback that keeps the student's weights of the epoch with the best validation accuracy
    (measured on `x_val` with the student alone, so the distilled and scratch students are chosen alike);
    `callback.restore()` puts them back after `fit`."""
    import keras

    class BestEpoch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best_accuracy, self.best_epoch, self.best_weights = -1.0, 0, None

        def on_epoch_end(self, epoch, logs=None):
            accuracy = float(np.mean(np.argmax(outputs_of(student, x_val), -1) == y_val))
            if accuracy > self.best_accuracy:
                self.best_accuracy, self.best_epoch = accuracy, epoch + 1
                self.best_weights = [np.array(w) for w in student.get_weights()]

        def restore(self):
            if self.best_weights is not None:
                student.set_weights(self.best_weights)

    return BestEpoch()


def _scratch_datasets(config, data, train_ds, augmentation, copies, has_unlabelled, online, gold_transfer=None):
    """`{"labels": ..., "transfer": ...}`: the datasets the scratch student may train on (`baseline.data`).
    `gold_transfer`: the labelled part of a transfer set made from the raw text, with the gold labels."""
    from keras_kd.data import keys

    training = config.training
    choice = config.baseline.data if augmentation is not None or copies else "labels"
    sets = {}
    if choice in ("labels", "best"):
        sets["labels"] = _dataset(data.x_train, data.y_train, training.batch_size, shuffle=True, seed=config.seed)
    if choice in ("transfer", "best"):
        if gold_transfer is not None:
            sets["transfer"] = gold_transfer
        elif not online and not has_unlabelled:  # the distilled student's cached transfer set, minus the teacher
            sets["transfer"] = train_ds.map(lambda x, *rest: (x[keys.STUDENT_INPUTS], *rest[:1]))
        else:  # the labelled examples and their augmented copies (unlabelled rows have no gold label)
            from keras_kd.data.augment import expand_with_augmentations

            source = expand_with_augmentations(_dataset(data.x_train, data.y_train, 512), augmentation, copies=copies)
            n = len(data.y_train) * (copies + 1)
            sets["transfer"] = source.unbatch().shuffle(n, seed=config.seed).batch(training.batch_size)
    return sets


def _train_scratch(config, data, strategy, train_ds, augmentation, copies, has_unlabelled, online, student_epochs,
                   run_dir, smoke, verbose, options, histories, gold_transfer=None):
    """Train the scratch student on each dataset `baseline.data` asks for; returns the one with the best
    validation accuracy and a note saying what was trained."""
    import keras

    training, has_val = config.training, len(data.y_val) > 0
    sets = _scratch_datasets(config, data, train_ds, augmentation, copies, has_unlabelled, online, gold_transfer)
    labels_epochs = 1 if smoke else (config.baseline.epochs or training.epochs)
    described = {"labels": "the labelled examples", "transfer": f"the transfer set ({copies} augmented "
                 f"cop{'y' if copies == 1 else 'ies'} each) with the gold labels"}
    trained = []
    for kind, dataset in sets.items():
        epochs = labels_epochs if kind == "labels" else student_epochs
        say(f"Training the student from scratch on {described[kind]} ({epochs} epoch(s)): the baseline", verbose)
        keras.utils.set_random_seed(config.seed + 1)
        with strategy.scope():
            model = build_student(config, data, options, "student_scratch")
            steps = training.steps_per_epoch or int(dataset.cardinality())
            model.compile(training.build_optimizer(decay_steps=epochs * steps if steps > 0 else None),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"], jit_compile=False if smoke else training.jit_compile)
        best_epoch = _best_epoch_callback(model, data.x_val, data.y_val) if training.keep_best_epoch and has_val else None
        history = model.fit(
            dataset, validation_data=(data.x_val, data.y_val) if has_val else None, epochs=epochs,
            steps_per_epoch=1 if smoke else training.steps_per_epoch, verbose=fit_verbose(verbose, smoke),
            callbacks=[keras.callbacks.TensorBoard(os.path.join(run_dir, "scratch" if kind == "labels" else
                                                                "scratch_transfer"), write_graph=False)]
            + ([best_epoch] if best_epoch else []))
        if best_epoch is not None:
            best_epoch.restore()
        accuracy = (float(np.mean(np.argmax(outputs_of(model, data.x_val), -1) == data.y_val)) if has_val else 0.0)
        trained.append((accuracy, kind, model, history, epochs, best_epoch))
    accuracy, kind, model, history, epochs, best_epoch = max(trained, key=lambda t: t[0])  # ties: the first
    histories["scratch"] = history
    picked = f" (epoch {best_epoch.best_epoch} of {epochs}, the best validation epoch)" if best_epoch else ""
    if len(trained) == 1:
        return model, f"Scratch student: trained on {described[kind]}{picked}, same optimizer and learning-rate schedule."
    tried = "; ".join(f"{described[k]}: validation accuracy {a:.3f}" for a, k, *_ in trained)
    return model, (f"Scratch student: the better by validation accuracy of two runs ({tried}); kept: {described[kind]}"
                   f"{picked}, same optimizer and learning-rate schedule as the distilled student.")


def _describe(teacher):
    spec = teacher.config
    return {"keras": f"{spec.path}", "saved_model": f"SavedModel {spec.path}", "preset": f"preset {spec.preset}",
            "transformers": f"transformers {spec.transformers}", "builder": f"{spec.builder}",
            "embedded": f"{spec.builder or 'teacher'} embedded in {getattr(spec, 'embedded', None)}",
            "precomputed": f"outputs precomputed in {spec.precomputed}"}[teacher.kind]


def _first(x, n):
    if x is None:
        return None
    return {k: v[:n] for k, v in x.items()} if isinstance(x, dict) else x[:n]


def _ensemble_logits(teachers, data, split):
    """The teachers' logits on a split (several teachers: their weighted mean of log-probabilities)."""
    return _teachers_logits(teachers, data.raw[split], getattr(data, f"x_{split}"))


def _text_copies(config, data):
    """The number of augmented copies `data.augment` makes from the raw text (`level: text`), else 0."""
    augment = config.data.augment or {}
    if augment.get("level", "tokens") != "text":
        return 0
    if data.kind != "text":
        raise ConfigError(f"`data.augment.level: text` perturbs strings: it applies to text data. Received: {data.kind} data.")
    return int(augment.get("copies", 1))


def _text_transfer_set(config, teachers, data, y_extra, copies, batch_size):
    """The transfer set made from raw text: the training texts (and the teacher-labelled unlabelled texts)
    plus `copies` augmented copies of each (`augment_texts`, seeded by `data.augment.seed`, else the run's
    seed), every one labelled once by the teachers (each
    through its own view; several: their weighted mean log-probabilities). Returns the cached distillation
    dataset and, when there are unlabelled texts, the labelled rows with their gold labels (the scratch
    baseline's transfer set; without unlabelled texts it is the cached set minus the teacher)."""
    from keras_kd.data.augment import augment_texts
    from keras_kd.data.cache import with_teacher_outputs

    base = list(data.raw["train"]) + list(data.raw["unlabelled"] if y_extra is not None else [])
    y_base = _concat(data.y_train, y_extra)
    options = {k: v for k, v in (config.data.augment or {}).items() if k not in ("level", "copies", "seed")}
    seed = (config.data.augment or {}).get("seed", config.seed)  # fixed: the copies a precomputed teacher labelled
    raw = base + [t for copy in (augment_texts(base, copies, seed=seed, **options) if copies else []) for t in copy]
    y = np.tile(y_base, copies + 1)
    x = data.student_encoder(raw)
    logits = _teachers_logits(teachers, raw, x)
    train_ds = with_teacher_outputs(x, logits, y, batch_size=batch_size, shuffle=True, seed=config.seed)
    gold = None
    if y_extra is not None:
        labelled = np.tile(np.arange(len(base)) < len(data.y_train), copies + 1)
        gold = _dataset(x[labelled], y[labelled], config.training.batch_size, shuffle=True, seed=config.seed)
    return train_ds, gold


def _teachers_logits(teachers, raw, x_student):
    """The teachers' logits on raw examples (each through its own view; several: weighted mean log-probabilities)."""
    logits = [outputs_of(t.model, x_student if t.shares_student_inputs else t.encode(raw)) for t in teachers]
    if len(logits) == 1:
        return logits[0]
    from keras_kd.teachers import mean_log_probabilities

    return mean_log_probabilities(logits, [t.config.weight for t in teachers])


def _teacher_rows(teachers, data, test_logits):
    """Report rows of the teacher(s): one teacher is `teacher`; several are `teacher 0`, `teacher 1`, ... after
    a `teacher` row for their ensemble (the target the student learns; params and size summed). A precomputed
    teacher's row shows the size of the model that computed its outputs and no latency."""
    from keras_kd.reports import metrics

    rows = []
    for i, t in enumerate(teachers):
        name = "teacher" if len(teachers) == 1 else f"teacher {i}"
        logits = test_logits if len(teachers) == 1 else outputs_of(t.model, t.view(data, "test"))
        if t.kind == "precomputed":  # nothing to measure here: the card gives the source model's size
            row = report_lib.model_row(name, None, data.x_test, data.y_test, class_names=data.class_names,
                                       logits=logits)
            card = t.model.card
            row["params"] = card.get("params") or metrics.count_params(t.model)
            row["size on disk"] = metrics.human_bytes(card["size_bytes"]) if card.get("size_bytes") else ""
            row["CPU latency / example"] = "precomputed"
        else:
            latency_example = None if t.shares_student_inputs else _first(t.view(data, "test"), 1)
            row = report_lib.model_row(name, t.model, data.x_test, data.y_test, class_names=data.class_names,
                                       logits=logits, latency_example=latency_example)
        rows.append(row)
    if len(teachers) == 1:
        return rows
    ensemble = report_lib.model_row("teacher", None, data.x_test, data.y_test, class_names=data.class_names,
                                    logits=test_logits)
    ensemble["params"] = sum(r["params"] for r in rows)
    sizes = [r["size on disk"] for r in rows]
    ensemble["size on disk"] = (metrics.human_bytes(sum(report_lib.kilobytes(v) * 1024 for v in sizes))
                                if all(sizes) else "")
    return [ensemble, *rows]
