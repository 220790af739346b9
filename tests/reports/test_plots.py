import numpy as np

from keras_kd.reports import plots


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_write_pngs(tmp_path):
    cm = np.array([[5, 1], [2, 7]])
    path = plots.plot_confusion_matrices({"teacher": cm, "student": cm}, tmp_path / "cm.png", ["neg", "pos"])
    assert _is_png(path)
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.6, 0.8]}
    assert _is_png(plots.plot_training_curves({"student": history}, tmp_path / "curves.png"))
    assert _is_png(plots.plot_accuracy_vs_size({"t": (1000.0, 0.84), "s": (50.0, 0.8)}, tmp_path / "size.png"))
