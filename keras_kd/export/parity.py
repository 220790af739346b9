"""Does the exported student still predict what the Keras student predicts, and what does it cost?

`check_parity(model, tflite_path, data)` runs a `.tflite` file example by example with the LiteRT
interpreter (`pip install "keras-kd[tflite]"`, falling back to `tf.lite.Interpreter`) and returns

    agreement            fraction of examples where argmax(TFLite logits) == argmax(Keras logits)
    max_abs_logit_diff   max |TFLite logits - Keras logits| (after dequantizing int8 logits)
    latency_ms           median wall time of one batch-1 call (set input, invoke, read output)
    size_bytes           the file size
    accuracy             TFLite accuracy on `labels` (and `keras_accuracy`), when labels are given

`compare_exports(...)` measures teacher, Keras student and each TFLite variant side by side and
`format_table(rows)` prints them as a Markdown table (used by `keras-kd export --check` and reports).
"""

import os
import time
import warnings

import numpy as np
import tensorflow as tf

from keras_kd.export.saved_model import input_signature, student_model
from keras_kd.export.tflite import as_examples, input_names
from keras_kd.reports import measure
from keras_kd.reports.metrics import (
    accuracy,
    agreement,
    comparison_table,
    count_params,
    human_bytes,
)
from keras_kd.teachers.base import as_output_dict


# ---------------------------------------------------------------- TFLite side
def load_interpreter(path, num_threads=1):
    """`(interpreter, backend_name)` for a `.tflite` file: ai-edge-litert's, else `tf.lite`'s."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        backend = "ai-edge-litert"
    except ImportError:
        warnings.warn(
            'ai-edge-litert is not installed (pip install "keras-kd[tflite]"): falling back to '
            "tf.lite.Interpreter, which TensorFlow deprecates.",
            stacklevel=2,
        )
        Interpreter = tf.lite.Interpreter
        backend = "tf.lite"
    with warnings.catch_warnings():  # we warned above, once and with the fix
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        return Interpreter(model_path=os.fspath(path), num_threads=num_threads), backend


def _quantize(values, detail):
    scale, zero_point = detail["quantization"]
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer) and scale and np.issubdtype(values.dtype, np.floating):
        info = np.iinfo(dtype)
        values = np.clip(np.round(values / scale + zero_point), info.min, info.max)
    return values.astype(dtype)


def _dequantize(values, detail):
    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


class TFLiteRunner:
    """Run a `.tflite` classifier one example at a time: float inputs in, float32 logits out.

    int8 inputs are quantized and int8 outputs dequantized with each tensor's scale and zero point,
    so a model converted with `integer_io=True` takes the same arrays as a float one.
    """

    def __init__(self, path, num_threads=1):
        self.path = os.fspath(path)
        self.num_threads = num_threads
        self.interpreter, self.backend = load_interpreter(self.path, num_threads=num_threads)
        runner = self.interpreter.get_signature_runner()
        self.inputs = runner.get_input_details()
        self.outputs = runner.get_output_details()
        del runner  # it holds tensor buffers that would block `allocate_tensors`
        self.output = (
            self.outputs["logits"]
            if "logits" in self.outputs
            else next(iter(self.outputs.values()))
        )
        for detail in self.inputs.values():
            if detail["shape"][0] != 1:
                self.interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]])
        self.interpreter.allocate_tensors()

    def _fit_shapes(self, shapes):
        """Resize inputs with unknown dims (variable-length token ids) to this example's shape."""
        current = {
            detail["name"]: tuple(detail["shape"])
            for detail in self.interpreter.get_input_details()
        }
        resized = False
        for name, detail in self.inputs.items():
            shape = tuple(int(d) for d in shapes[name])
            if current.get(detail["name"], shape) == shape:
                continue
            signature = tuple(detail.get("shape_signature", detail["shape"]))
            if len(signature) != len(shape) or any(
                s not in (-1, d) for s, d in zip(signature[1:], shape[1:], strict=True)
            ):
                raise ValueError(
                    f"{self.path} takes input {name!r} of shape {signature} (-1: any size); received an "
                    f"example of shape {shape}."
                )
            self.interpreter.resize_tensor_input(detail["index"], list(shape))
            resized = True
        if resized:
            self.interpreter.allocate_tensors()

    def get_config(self):
        return {"path": self.path, "num_threads": self.num_threads}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def predict(self, inputs):
        """`(logits [n, classes], seconds per example [n])` for `{input_name: array [n, ...]}`."""
        missing = [name for name in self.inputs if name not in inputs]
        if missing:
            raise ValueError(f"{self.path} takes inputs {sorted(self.inputs)}; missing {missing}.")
        count = len(next(iter(inputs.values())))
        logits, seconds = [], np.empty(count)
        for i in range(count):
            self._fit_shapes({name: inputs[name][i : i + 1].shape for name in self.inputs})
            start = time.perf_counter()
            for name, detail in self.inputs.items():
                self.interpreter.set_tensor(
                    detail["index"], _quantize(inputs[name][i : i + 1], detail)
                )
            self.interpreter.invoke()
            logits.append(
                _dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)
            )
            seconds[i] = time.perf_counter() - start
        return np.concatenate(logits), seconds


# ---------------------------------------------------------------- Keras side
def _structured(inputs, specs):
    """`{input_name: array}` back in the structure the model was built with."""
    if isinstance(specs, dict):
        return inputs
    names = input_names(specs)
    return [inputs[name] for name in names] if isinstance(specs, list) else inputs[names[0]]


def keras_logits(model, inputs, specs, batch_size=256):
    """Logits of a Keras model (student or teacher) for `{input_name: array}`, as float32 NumPy."""
    outputs = model.predict(_structured(inputs, specs), batch_size=batch_size, verbose=0)
    return np.asarray(as_output_dict(outputs)["logits"], dtype=np.float32)


def keras_latency(model, inputs, specs, repeats=100):
    """Median seconds of a compiled batch-1 `model(x, training=False)` call, output read back."""
    example = _structured({name: value[:1] for name, value in inputs.items()}, specs)
    return measure.keras_latency(model, example, repeats=repeats)


def keras_weights_size(model):
    """Bytes of the model's `.weights.h5` file without optimizer state (`keras_kd.reports.measure`)."""
    return measure.weights_size(model)


def _accuracy(logits, labels):
    return None if labels is None else accuracy(np.asarray(labels).reshape(-1), logits)


# ---------------------------------------------------------------- parity and report
def check_parity(
    model, tflite_path, data, labels=None, *, max_examples=None, num_threads=1, signature=None
):
    """Compare a `.tflite` export with the Keras student on `data` (see the module docstring).

    Args:
        model: the Keras student (or a `keras_kd.Distiller`) the file was exported from.
        tflite_path: the `.tflite` file.
        data: held-out inputs: an array, a list/dict of arrays, an `(x, y)` tuple or a
            `tf.data.Dataset` (see `keras_kd.export.tflite.as_examples`).
        labels: optional integer labels (taken from `data` when it carries them).
        max_examples: use at most this many examples.
        num_threads: interpreter threads (1 = the per-core latency of a phone-like setting).

    Returns:
        A dict: `agreement`, `max_abs_logit_diff`, `mean_abs_logit_diff`, `latency_ms`,
        `latency_ms_mean`, `size_bytes`, `num_examples`, `interpreter`, and with labels
        `accuracy` and `keras_accuracy`.
    """
    return _tflite_parity(
        _Evaluation(model, data, labels, max_examples, signature), tflite_path, num_threads
    )


class _Evaluation:
    """The student, its held-out inputs `{name: array}`, labels (or None) and its Keras logits."""

    def __init__(self, model, data, labels, max_examples, signature):
        self.student = student_model(model)
        self.specs = input_signature(self.student, signature)
        self.inputs, data_labels = as_examples(data, self.specs, limit=max_examples)
        count = len(next(iter(self.inputs.values())))
        self.labels = data_labels if labels is None else np.asarray(labels)[:count]
        self.reference = keras_logits(self.student, self.inputs, self.specs)


def _tflite_parity(evaluation, tflite_path, num_threads):
    runner = TFLiteRunner(tflite_path, num_threads=num_threads)
    logits, seconds = runner.predict(evaluation.inputs)
    difference = np.abs(logits - evaluation.reference)
    result = {
        "agreement": agreement(logits, evaluation.reference),
        "max_abs_logit_diff": float(difference.max()),
        "mean_abs_logit_diff": float(difference.mean()),
        "latency_ms": measure.median_ms(seconds),
        "latency_ms_mean": float(np.mean(seconds) * 1e3),
        "size_bytes": measure.size_on_disk(tflite_path),
        "num_examples": len(logits),
        "interpreter": runner.backend,
    }
    if evaluation.labels is not None:
        result["accuracy"] = _accuracy(logits, evaluation.labels)
        result["keras_accuracy"] = _accuracy(evaluation.reference, evaluation.labels)
    return result


def compare_exports(
    student,
    tflite_paths,
    data,
    labels=None,
    *,
    teacher=None,
    max_examples=512,
    latency_repeats=100,
    num_threads=1,
    signature=None,
):
    """Rows for `format_table`: teacher, Keras student and each TFLite file, measured in one run.

    `tflite_paths` maps a row name (e.g. "TFLite int8") to a `.tflite` file; the teacher takes
    the same inputs as the student. Agreement is with the Keras student's argmax. Keras latency is
    the median of `latency_repeats` compiled batch-1 calls (TF's own thread pool), TFLite latency the
    median batch-1 `invoke` over the examples with `num_threads` threads. Keras sizes are the
    `.weights.h5` file of the weights alone (no optimizer state), TFLite sizes the `.tflite` file.
    """
    evaluation = _Evaluation(student, data, labels, max_examples, signature)
    student, specs, inputs, labels = (
        evaluation.student,
        evaluation.specs,
        evaluation.inputs,
        evaluation.labels,
    )
    reference = evaluation.reference

    def keras_row(name, model):
        logits = keras_logits(model, inputs, specs)
        return {
            "model": name,
            "params": count_params(model),
            "size_bytes": keras_weights_size(model),
            "latency_ms": keras_latency(model, inputs, specs, latency_repeats) * 1e3,
            "agreement": agreement(logits, reference),
            "max_abs_logit_diff": float(np.abs(logits - reference).max()),
            "accuracy": _accuracy(logits, labels),
        }

    rows = []
    if teacher is not None:
        rows.append(keras_row("Keras teacher", teacher))
        rows[-1]["max_abs_logit_diff"] = None  # a different model: logit distance is not parity
    rows.append(keras_row("Keras student", student))
    for name, path in tflite_paths.items():
        parity = _tflite_parity(evaluation, path, num_threads)
        rows.append(
            {
                "model": name,
                "params": count_params(student),
                "size_bytes": parity["size_bytes"],
                "latency_ms": parity["latency_ms"],
                "agreement": parity["agreement"],
                "max_abs_logit_diff": parity["max_abs_logit_diff"],
                "accuracy": parity.get("accuracy"),
            }
        )
    return rows


TABLE_COLUMNS = (
    ("model", "model", str),
    ("params", "params", lambda v: f"{v:,}"),
    ("size_bytes", "size on disk", human_bytes),
    ("latency_ms", "latency / example", lambda v: f"{v:.3f} ms"),
    ("agreement", "agreement with Keras student", lambda v: f"{100 * v:.2f} %"),
    ("max_abs_logit_diff", "max abs logit diff", lambda v: f"{v:.2e}"),
    ("accuracy", "accuracy", lambda v: f"{100 * v:.2f} %"),
)


def format_table(rows, fmt="markdown"):
    """`compare_exports` rows as a Markdown (or `fmt="text"`) table; empty columns are dropped."""
    columns = [c for c in TABLE_COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    display = [
        {
            title: fmt_value(row[key]) if row.get(key) is not None else "–"
            for key, title, fmt_value in columns
        }
        for row in rows
    ]
    return comparison_table(display, columns=[title for _, title, _ in columns], fmt=fmt)


def print_report(*args, **kwargs):
    """`compare_exports(*args, **kwargs)` printed with `format_table`; returns the rows."""
    rows = compare_exports(*args, **kwargs)
    print(format_table(rows))
    return rows


__all__ = [
    "TFLiteRunner",
    "check_parity",
    "compare_exports",
    "format_table",
    "load_interpreter",
    "print_report",
]
