"""PNG plots for a distillation report: confusion matrices, training curves, accuracy vs size.

matplotlib is imported lazily (with the non-interactive Agg backend) inside each function, so the
rest of keras-kd works without it: `pip install "keras-kd[plots]"`.
"""

import os

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            'Plots need matplotlib. Install it with `pip install "keras-kd[plots]"`.'
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_confusion_matrices(matrices, path, class_names=None, normalize=True):
    """One heat map per model, side by side. `matrices`: `{model name: confusion matrix}`."""
    plt = _pyplot()
    names = list(matrices)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        cm = np.asarray(matrices[name], dtype=np.float64)
        shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
        ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        labels = class_names or [str(i) for i in range(cm.shape[0])]
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", color="white" if shown[i, j] > 0.5 else "black")
        ax.set_title(name)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(histories, path, metrics=("loss", "accuracy")):
    """Training (solid) and validation (dashed) curves per metric.

    `histories`: `{run name: keras History or its .history dict}`; metrics absent from a run are
    skipped.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, (name, history) in enumerate(histories.items()):
            logs = getattr(history, "history", history) or {}
            color = f"C{i}"
            if metric in logs:
                epochs = np.arange(1, len(logs[metric]) + 1)
                ax.plot(epochs, logs[metric], color=color, marker="o", label=f"{name} train")
            if f"val_{metric}" in logs:
                epochs = np.arange(1, len(logs[f"val_{metric}"]) + 1)
                ax.plot(epochs, logs[f"val_{metric}"], color=color, ls="--", marker="o", label=f"{name} val")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_vs_size(points, path, size_label="size on disk (KB)"):
    """Scatter of accuracy against model size. `points`: `{name: (size, accuracy)}`; log-scale x."""
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for i, (name, (size, acc)) in enumerate(points.items()):
        ax.scatter([size], [acc], s=60, color=f"C{i}")
        ax.annotate(name, (size, acc), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor log ticks would overlap
    ax.margins(x=0.3, y=0.2)
    ax.set_xlabel(size_label)
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path)
