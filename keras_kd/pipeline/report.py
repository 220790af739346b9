"""The run report: comparison rows (accuracy, macro P/R/F1, ECE, agreement, size, latency), exports,
`report.md` with plots. Used by `keras_kd.pipeline` (and so by `keras-kd distill` and `keras-kd demo`)
and by `keras-kd report`.
"""

import datetime
import os
import shutil
import textwrap

import numpy as np

from keras_kd.reports import measure, metrics

TABLE_COLUMNS = ("model", "accuracy", "macro P", "macro R", "macro F1", "ECE", "teacher agreement",
                 "params", "size on disk", "CPU latency / example")


def timestamped(prefix):
    """`prefix-YYYYmmdd-HHMMSS` (UTC)."""
    return f"{prefix}-{datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def keras_latency_ms(model, example, repeats=50):
    """Median milliseconds of one compiled batch-1 call of a Keras model on CPU (`reports.measure`)."""
    return 1e3 * measure.keras_latency(model, example, repeats=repeats)


def weights_size(model):
    """Bytes of the model's weights as a `.weights.h5` file, without optimizer state (`reports.measure`)."""
    return measure.weights_size(model)


def model_row(name, model, x_test, y_test, size_path=None, reference_logits=None, class_names=None, logits=None,
              latency_example=None):
    """One table row for a Keras classifier: accuracy, macro P/R/F1, ECE, agreement, params, size, latency.

    Size on disk is that of `size_path` when given, else of the weights alone (`weights_size`).
    `logits` (precomputed test logits) and `latency_example` (one input batch) are for models that do
    not take `x_test` directly (a BERT teacher on its own tokens). With `model=None` (an ensemble, a
    table of precomputed outputs) the row holds the metrics of `logits` only: params, size and latency
    are left to the caller (None, ""). The row also carries the test logits under `_logits` and the
    per-class report under `_report`.
    """
    if logits is None:
        if model is None:
            raise ValueError("`model_row(model=None)` needs the test `logits`.")
        logits = model.predict(x_test, batch_size=512, verbose=0)
    logits = np.asarray(logits, dtype=np.float32)
    report = metrics.classification_report(y_test, logits, class_names=class_names, num_classes=logits.shape[-1])
    example = latency_example
    if example is None:
        example = x_test[:1] if not isinstance(x_test, dict) else {k: v[:1] for k, v in x_test.items()}
    row = {
        "model": name,
        "accuracy": report["accuracy"],
        "macro P": report["macro avg"]["precision"],
        "macro R": report["macro avg"]["recall"],
        "macro F1": report["macro avg"]["f1"],
        "ECE": metrics.expected_calibration_error(y_test, logits, from_logits=True),
        "teacher agreement": metrics.agreement(logits, reference_logits) if reference_logits is not None else None,
        "params": None if model is None else metrics.count_params(model),
        "size on disk": "" if model is None else metrics.human_bytes(
            metrics.size_on_disk(size_path) if size_path else weights_size(model)),
        "CPU latency / example": "" if model is None else f"{keras_latency_ms(model, example):.2f} ms",
        "_logits": logits,
        "_report": report,
    }
    return row


def export_student(student, out_dir, representative_data=None, preprocessor=None, class_names=None,
                   saved_model=True, tflite_modes=("float", "dynamic", "int8")):
    """Write the student's SavedModel and `.tflite` files under `out_dir`; `{label: path}` of what was written.

    With a `preprocessor` (tokenizer) the SavedModel takes raw strings; `.tflite` files take token ids.
    """
    from keras_kd import export

    written = {}
    if saved_model:
        path = os.path.join(out_dir, "student_savedmodel")
        if os.path.isdir(path):  # this run's own output folder: replace the previous run's export
            shutil.rmtree(path)
        written["SavedModel"] = export.saved_model(student, path, preprocessor=preprocessor, class_names=class_names)
    for mode in tflite_modes:
        if mode == "int8" and representative_data is None:
            continue
        quantization = None if mode == "float" else mode
        path = os.path.join(out_dir, f"student_{mode}.tflite")
        written[f"TFLite {mode}"] = export.tflite(
            student, path, quantization=quantization,
            representative_data=representative_data if mode == "int8" else None,
        )
    return written


def tflite_rows(student, exports, x_test, y_test, max_examples=None):
    """Rows for each `.tflite` export: accuracy on the test set, agreement with the Keras student, size, latency."""
    from keras_kd.export import check_parity

    rows = []
    for label, path in exports.items():
        if not path.endswith(".tflite"):
            continue
        parity = check_parity(student, path, (x_test, y_test), max_examples=max_examples)
        rows.append({
            "export": label,
            "file": os.path.basename(path),
            "accuracy": parity["accuracy"],
            "agreement with Keras student": parity["agreement"],
            "max abs logit diff": f"{parity['max_abs_logit_diff']:.1e}",
            "size on disk": metrics.human_bytes(parity["size_bytes"]),
            "latency / example (1 thread)": f"{parity['latency_ms']:.3f} ms",
        })
    return rows


def write_report(out_dir, title, rows, export_rows=(), notes=(), class_names=None, histories=None,
                 predictions=None, runs_dir=None):
    """Write `out_dir/report.md` and its PNG plots; returns the report's path.

    `rows` come from `model_row` (the `_report` entry gives the per-class tables); `predictions`
    maps a model name to `(y_true, logits)` for the confusion matrices; `histories` maps a name to a
    Keras `History` for the training curves.
    """
    os.makedirs(out_dir, exist_ok=True)
    lines = [f"# {title}", ""]
    lines += ["## Test set", "", metrics.comparison_table(rows, columns=TABLE_COLUMNS), ""]
    lines += [f"- {note}" for note in notes]
    if export_rows:
        lines += ["", "## Exported student", "", metrics.comparison_table(export_rows), ""]
    for row in rows:
        if "_report" in row:
            lines += ["", f"## {row['model']}: per-class report", "", "```",
                      metrics.format_classification_report(row.pop("_report")), "```"]
    images = _plots(out_dir, rows, class_names, histories, predictions)
    if images:
        lines += ["", "## Plots", ""] + [f"![{name}]({os.path.basename(path)})" for name, path in images]
    if runs_dir:
        lines += ["", f"TensorBoard: `tensorboard --logdir {runs_dir}`"]
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _plots(out_dir, rows, class_names, histories, predictions):
    try:
        from keras_kd.reports import plots
    except ImportError:  # pragma: no cover
        return []
    images = []
    try:
        if predictions:
            matrices = {name: metrics.confusion_matrix(y, logits, num_classes=np.shape(logits)[-1])
                        for name, (y, logits) in predictions.items()}
            images.append(("confusion matrices", plots.plot_confusion_matrices(
                matrices, os.path.join(out_dir, "confusion_matrices.png"), class_names)))
        if histories:
            images.append(("training curves", plots.plot_training_curves(
                histories, os.path.join(out_dir, "training_curves.png"))))
        points = {}
        for row in rows:
            size = row.get("size on disk")
            if size:
                points[row["model"]] = (kilobytes(size), row["accuracy"])
        if points:
            images.append(("accuracy vs size", plots.plot_accuracy_vs_size(
                points, os.path.join(out_dir, "accuracy_vs_size.png"))))
    except ImportError as error:
        print(f"  (no plots: {error})")
    return images


def kilobytes(human):
    """Kilobytes of a `human_bytes` string (`'4.2 MB'` -> 4300.8)."""
    value, unit = human.split()
    return float(value) * {"B": 1 / 1024, "KB": 1, "MB": 1024, "GB": 1024**2}[unit]


def print_summary(rows, export_rows, out_dir, runs_dir, elapsed, notes=()):
    """The demo's closing table, `notes` under it (how the students were trained) and where everything
    was written."""
    printable = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    print()
    print(metrics.comparison_table(printable, columns=TABLE_COLUMNS, fmt="text"))
    by_name = {row["model"]: row for row in printable}
    teacher, scratch, distilled = (by_name.get(k) for k in ("teacher", "scratch student", "distilled student"))
    if teacher and scratch and distilled and teacher.get("accuracy") and teacher.get("params"):
        print(f"\nDistilled student: {100 * (distilled['accuracy'] - scratch['accuracy']):+.1f} pt over the scratch "
              f"student, {100 * distilled['accuracy'] / teacher['accuracy']:.1f} % of the teacher's accuracy with "
              f"{teacher['params'] / distilled['params']:.1f}x fewer parameters.")
    for note in notes:
        print(textwrap.fill(note, width=110, initial_indent="* ", subsequent_indent="  "))
    if export_rows:
        print()
        print(metrics.comparison_table(export_rows, fmt="text"))
    print(f"\nWall time: {elapsed:.0f} s")
    print(f"Report, plots, SavedModel and .tflite files: {out_dir}/ (report.md)")
    print(f"TensorBoard: tensorboard --logdir {runs_dir}")
