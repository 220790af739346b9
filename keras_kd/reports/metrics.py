"""Evaluation figures for a teacher/student comparison, in NumPy: accuracy, per-class P/R/F1,
confusion matrix, teacher–student agreement, calibration (ECE), parameter count (size on disk and
CPU latency come from `keras_kd.reports.measure`); and `comparison_table(rows)` to print them side by side.

Labels are integer class ids; predictions are integer ids or logits/probabilities (argmax is taken
on the last axis when they have one more dimension than the labels).
"""

import numpy as np

# Size and latency are measured in one place, `keras_kd.reports.measure`; re-exported here.
from keras_kd.reports.measure import human_bytes, latency_per_example, size_on_disk  # noqa: F401


def _as_class_ids(values):
    values = np.asarray(values)
    if values.ndim >= 2:
        return np.argmax(values, axis=-1)
    return values.astype(np.int64)


def _check_same_length(y_true, y_pred):
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must hold one entry per example. "
            f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )


def accuracy(y_true, y_pred):
    """Fraction of examples whose predicted class equals the label."""
    y_true, y_pred = _as_class_ids(y_true), _as_class_ids(y_pred)
    _check_same_length(y_true, y_pred)
    if y_true.size == 0:
        return float("nan")
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes=None):
    """`cm[i, j]` = number of examples of class `i` predicted as class `j`."""
    y_true, y_pred = _as_class_ids(y_true), _as_class_ids(y_pred)
    _check_same_length(y_true, y_pred)
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def _safe_divide(numerator, denominator):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def precision_recall_f1(y_true, y_pred, num_classes=None):
    """Per-class precision, recall, F1 and support (NumPy arrays), as sklearn's
    `precision_recall_fscore_support(average=None)` with `zero_division=0`."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    true_positive = np.diag(cm).astype(np.float64)
    precision = _safe_divide(true_positive, cm.sum(axis=0))
    recall = _safe_divide(true_positive, cm.sum(axis=1))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return precision, recall, f1, cm.sum(axis=1)


def classification_report(y_true, y_pred, class_names=None, num_classes=None):
    """A dict like sklearn's `classification_report(output_dict=True)`.

    Keys: one per class name (`{"precision", "recall", "f1", "support"}`), `"accuracy"`,
    `"macro avg"` (unweighted mean over classes) and `"weighted avg"` (weighted by support).
    """
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    precision, recall, f1, support = precision_recall_f1(y_true, y_pred, num_classes)
    if class_names is None:
        class_names = [str(i) for i in range(len(support))]
    if len(class_names) != len(support):
        raise ValueError(
            f"`class_names` must name each of the {len(support)} classes. Received: class_names={class_names}"
        )
    report = {}
    for i, name in enumerate(class_names):
        report[name] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
    total = int(support.sum())
    report["accuracy"] = accuracy(y_true, y_pred)
    report["macro avg"] = {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "support": total,
    }
    weights = support / max(total, 1)
    report["weighted avg"] = {
        "precision": float(np.sum(precision * weights)),
        "recall": float(np.sum(recall * weights)),
        "f1": float(np.sum(f1 * weights)),
        "support": total,
    }
    return report


def format_classification_report(report, digits=3):
    """The dict from `classification_report` as sklearn-style plain text."""
    names = [k for k in report if k not in ("accuracy", "macro avg", "weighted avg")]
    width = max(len(n) for n in names + ["weighted avg"])
    lines = [f"{'':>{width}}  precision  recall  f1-score  support", ""]
    for name in names + ["macro avg", "weighted avg"]:
        row = report[name]
        if name == "macro avg":
            acc = report["accuracy"]
            lines += ["", f"{'accuracy':>{width}}  {'':>9}  {'':>6}  {acc:>8.{digits}f}  {row['support']:>7}"]
        lines.append(
            f"{name:>{width}}  {row['precision']:>9.{digits}f}  {row['recall']:>6.{digits}f}  "
            f"{row['f1']:>8.{digits}f}  {row['support']:>7}"
        )
    return "\n".join(lines)


def agreement(predictions_a, predictions_b):
    """Fraction of examples where two models predict the same class (teacher–student agreement)."""
    return accuracy(_as_class_ids(predictions_a), _as_class_ids(predictions_b))


def softmax(logits, axis=-1):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def expected_calibration_error(y_true, probabilities, num_bins=15, from_logits=False):
    """Expected calibration error (Guo et al. 2017, "On Calibration of Modern Neural Networks").

    `ECE = Σ_b (|B_b| / n) · |acc(B_b) − conf(B_b)|` over `num_bins` equal-width confidence bins
    `(lo, hi]`, where confidence is the top-class probability.
    """
    if num_bins < 1:
        raise ValueError(f"`num_bins` must be >= 1. Received: num_bins={num_bins}")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if from_logits:
        probabilities = softmax(probabilities)
    y_true = _as_class_ids(y_true)
    confidence = probabilities.max(axis=-1)
    correct = (probabilities.argmax(axis=-1) == y_true).astype(np.float64)
    _check_same_length(y_true, confidence)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    ece = 0.0
    for b in range(num_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def count_params(model):
    """Number of weights of a Keras model (trainable and not)."""
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


def _format_cell(value):
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3f}" if abs(value) < 100 else f"{float(value):,.1f}"
    return str(value)


def comparison_table(rows, columns=None, fmt="markdown"):
    """Rows (dicts) side by side as a Markdown (`fmt="markdown"`) or plain-text (`"text"`) table.

    `columns` picks and orders the keys (default: keys of the first row, then new keys in order of
    appearance); missing values are left blank; ints get thousands separators, floats 3 decimals.
    """
    if fmt not in ("markdown", "text"):
        raise ValueError(f"`fmt` must be 'markdown' or 'text'. Received: fmt={fmt!r}")
    rows = list(rows)
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    cells = [[_format_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values, numeric_right=True):
        out = []
        for i, v in enumerate(values):
            out.append(v.ljust(widths[i]) if i == 0 or not numeric_right else v.rjust(widths[i]))
        return out

    header = line([str(c) for c in columns], numeric_right=False)
    if fmt == "markdown":
        rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
        lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
        lines += ["| " + " | ".join(line(r)) + " |" for r in cells]
    else:
        lines = ["  ".join(header), "  ".join("-" * w for w in widths)]
        lines += ["  ".join(line(r)) for r in cells]
    return "\n".join(lines)
