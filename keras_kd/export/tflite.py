"""Convert a distilled student to TensorFlow Lite (LiteRT): float32, float16, dynamic-range or int8.

    quantization   weights    activations   needs                 typical size
    None           float32    float32       -                     1x
    "float16"      float16    float32       -                     1/2
    "dynamic"      int8       float32       -                     1/4
    "int8"         int8       int8          representative data   1/4, integer-only kernels

The path is Keras' own: `ExportArchive` -> temporary SavedModel -> `tf.lite.TFLiteConverter`.
The `.tflite` model has one signature, `serving_default`, taking the student's inputs (same names
as the SavedModel) and returning `logits` only (a softmax/argmax on device is one line and keeps int8
models integer end to end).

int8 is full-integer quantization (`TFLITE_BUILTINS_INT8`), calibrated on `representative_data`
(a few hundred *training* examples). Its inputs and outputs stay float32 by default: the model
quantizes its inputs and dequantizes its logits itself, so callers feed the same arrays as to the
Keras model. `integer_io=True` makes float inputs and the logits int8 instead (for integer-only
accelerators); `keras_kd.export.check_parity` quantizes/dequantizes with the tensors' scale and
zero point in both cases.

Text students: tokenizers (tf.strings / tensorflow-text ops) are not TFLite builtins, so the
`.tflite` model takes token ids and tokenization stays outside it (run the same tokenizer in the
app); the SavedModel export can carry tokenization inside the graph instead.
"""

import os
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from keras_kd.data import keys
from keras_kd.export.saved_model import (
    SERVING_SIGNATURE,
    build_archive,
    input_signature,
    student_logits,
    student_model,
)

QUANTIZATIONS = (None, "float16", "dynamic", "int8")


def check_quantization(quantization):
    """Normalize `quantization` (`None`/"none" -> None) or raise listing the valid values."""
    if isinstance(quantization, str) and quantization.lower() in ("none", "float32"):
        return None
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            "`quantization` must be one of None, 'float16', 'dynamic', 'int8'. "
            f"Received: quantization={quantization!r}"
        )
    return quantization


# ---------------------------------------------------------------- data in, one example at a time
def input_names(specs):
    """The model's input names in signature order (`input_signature` names every spec)."""
    if isinstance(specs, dict):
        return list(specs)
    return [spec.name for spec in tf.nest.flatten(specs)]


def _as_named(x, specs):
    """A batch `x` (array, list or dict, maybe a distillation batch) as `{input_name: array}`."""
    x = keys.student_view(x)
    names = input_names(specs)
    if isinstance(x, dict):
        missing = [name for name in names if name not in x]
        if missing:
            raise ValueError(
                f"The data lacks the model inputs {missing}. Received keys: {sorted(x)}"
            )
        return {name: np.asarray(x[name]) for name in names}
    flat = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(flat) != len(names):
        raise ValueError(f"The model takes {len(names)} inputs {names}; the data has {len(flat)}.")
    return {name: np.asarray(value) for name, value in zip(names, flat, strict=True)}


def _concatenate(arrays):
    """Concatenate on the batch axis; batches padded to different lengths (`padded_batch` of
    variable-length token ids) are first padded with zeros to the longest, as `padded_batch` does."""
    arrays = [np.asarray(a) for a in arrays]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1 and len({len(shape) for shape in shapes}) == 1:
        longest = tuple(max(dims) for dims in zip(*shapes, strict=True))
        arrays = [
            np.pad(a, [(0, 0)] + [(0, n - d) for d, n in zip(a.shape[1:], longest, strict=True)])
            for a in arrays
        ]
    return np.concatenate(arrays)


def as_examples(data, specs, limit=None):
    """`(inputs, labels)` from `data`: inputs as `{input_name: array with an example axis}`.

    `data` is an array (single input), a list/dict of arrays, an `(x, y)` tuple of those, or a
    `tf.data.Dataset` of `x` or `(x, y[, sample_weight])`, batched or not; `x` may be a
    distillation batch (`keras_kd.data.STUDENT_INPUTS`). `labels` is None when `data` has none.
    At most `limit` examples are read. For a model with exactly two inputs a 2-tuple is read as
    its inputs, not as `(x, y)`: pass labels separately there. Batches of variable-length inputs
    padded to different lengths are zero-padded to the longest.
    """
    flat_specs = {
        name: spec for name, spec in zip(input_names(specs), tf.nest.flatten(specs), strict=True)
    }
    if isinstance(data, tf.data.Dataset):
        parts, label_parts, count = [], [], 0
        for element in data.as_numpy_iterator():
            if isinstance(element, tuple):  # (x,), (x, y) or (x, y, sample_weight)
                x, y = element[0], element[1] if len(element) > 1 else None
            else:
                x, y = element, None
            x = _as_named(x, specs)
            first = next(iter(x))
            if x[first].ndim == len(flat_specs[first].shape) - 1:  # unbatched element
                x = {name: value[None] for name, value in x.items()}
                y = None if y is None else np.asarray(y)[None]
            parts.append(x)
            label_parts.append(y)
            count += len(x[first])
            if limit is not None and count >= limit:
                break
        if not parts:
            raise ValueError("`data` is an empty dataset.")
        inputs = {name: _concatenate([p[name] for p in parts]) for name in parts[0]}
        labels = None if any(y is None for y in label_parts) else _concatenate(label_parts)
    else:
        labels = None
        if isinstance(data, tuple) and len(data) == 2 and len(input_names(specs)) != 2:
            data, labels = data
        inputs = _as_named(data, specs)
        labels = None if labels is None else np.asarray(labels)
    if limit is not None:
        inputs = {name: value[:limit] for name, value in inputs.items()}
        labels = None if labels is None else labels[:limit]
    return inputs, labels


MIN_CALIBRATION_EXAMPLES = 32  # fewer: a warning (activation ranges from too few examples)


def check_representative_data(inputs, specs):
    """Raise unless `{input_name: array}` fits `specs` and holds finite values; returns the count.

    Checked: at least one example, the same number of examples for every input, each example's
    shape against the model's input shape (unknown dims match anything), numeric values, and no
    NaN/Inf (a NaN calibration gives NaN ranges, and the converter then writes a float model).
    """
    counts = {name: len(value) if np.ndim(value) else 0 for name, value in inputs.items()}
    if not counts or not max(counts.values()):
        raise ValueError(
            "`representative_data` is empty: int8 calibration needs a few hundred training examples. "
            f"Received inputs with {counts or 'no'} examples."
        )
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"`representative_data` inputs must have the same number of examples. Received: {counts}"
        )
    for name, spec in zip(input_names(specs), tf.nest.flatten(specs), strict=True):
        value = inputs[name]
        expected = tuple(spec.shape[1:])
        got = tuple(value.shape[1:])
        if len(got) != len(expected) or any(
            e is not None and e != g for e, g in zip(expected, got, strict=True)
        ):
            raise ValueError(
                f"`representative_data` does not fit the model's input {name!r}: each example must have "
                f"shape {expected} (the input shape {tuple(spec.shape)} without the batch axis), but "
                f"received examples of shape {got} (data of shape {tuple(value.shape)}). Reshape it like "
                "the data the model was trained on."
            )
        if value.dtype.kind not in "biuf":
            raise ValueError(
                f"`representative_data` for input {name!r} must be numeric ({spec.dtype.name}). "
                f"Received dtype {value.dtype}."
            )
        if value.dtype.kind == "f":
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            if bad:
                raise ValueError(
                    f"`representative_data` for input {name!r} holds {bad} NaN/Inf value(s) of "
                    f"{value.size}: calibration would give non-finite ranges (and the converter a float "
                    "model). Pass finite training examples."
                )
    count = next(iter(counts.values()))
    if count < MIN_CALIBRATION_EXAMPLES:
        warnings.warn(
            f"`representative_data` has only {count} example(s): int8 activation ranges calibrated on "
            f"so few are often too narrow. Pass a few hundred training examples.",
            stacklevel=3,
        )
    return count


def representative_dataset(data, specs, num_examples=256):
    """A TFLite calibration generator: one `{input_name: float32 [1, ...]}` dict per example.

    Raises a `ValueError` for data that does not fit the model (see `check_representative_data`).
    """
    try:
        inputs, _ = as_examples(data, specs, limit=num_examples)
    except ValueError as error:
        raise ValueError(
            f"`representative_data` cannot be read as the model's inputs: {error}"
        ) from None
    count = check_representative_data(inputs, specs)
    dtypes = {
        name: spec.dtype.as_numpy_dtype
        for name, spec in zip(input_names(specs), tf.nest.flatten(specs), strict=True)
    }

    def generator():
        for i in range(count):
            yield {name: value[i : i + 1].astype(dtypes[name]) for name, value in inputs.items()}

    return generator


# ---------------------------------------------------------------- what was written
def _interpreter(flatbuffer):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        return Interpreter(model_content=flatbuffer)


def tensor_types(flatbuffer):
    """`(types of the model's inner tensors, types of its inputs/outputs)` of a `.tflite` flatbuffer.

    Each is `{dtype name: [tensor names]}`.
    """
    interpreter = _interpreter(flatbuffer)
    io = {d["index"] for d in interpreter.get_input_details() + interpreter.get_output_details()}
    inner, outer = {}, {}
    for detail in interpreter.get_tensor_details():
        target = outer if detail["index"] in io else inner
        target.setdefault(np.dtype(detail["dtype"]).name, []).append(detail["name"])
    return inner, outer


# Ops holding the weights: full-integer int8 runs them on int8 tensors.
WEIGHT_OPS = (
    "FULLY_CONNECTED",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV",
    "BATCH_MATMUL",
    "CONV_3D",
)


def float_weight_ops(flatbuffer):
    """`[(op name, output tensor name)]` of the weight ops (`WEIGHT_OPS`) that compute in float."""
    interpreter = _interpreter(flatbuffer)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():  # TFLite's interpreter (not Keras): the op list
        if op["op_name"] not in WEIGHT_OPS:
            continue
        for index in op["outputs"]:
            detail = tensors.get(int(index))
            if detail is not None and np.issubdtype(np.dtype(detail["dtype"]), np.floating):
                found.append((op["op_name"], detail["name"]))
    return found


def _large_float_weights(student):
    """True when some float weight is large enough (>= 1024 values) for TFLite to quantize it."""
    return any("float" in str(w.dtype) and int(np.prod(w.shape)) >= 1024 for w in student.weights)


def check_written_types(flatbuffer, quantization, student):
    """Raise when the converted model's tensor types do not match `quantization`.

    int8: int8 tensors and no weight op (dense, convolution) computing in float; float16: float16 weights;
    dynamic: int8 weights (when the model has weights large enough to be quantized).
    """
    if quantization is None:
        return
    inner, _ = tensor_types(flatbuffer)
    if quantization == "int8":
        floats = float_weight_ops(flatbuffer)
        if floats or "int8" not in inner:
            raise ValueError(
                "The converted model is not full-integer int8: "
                + (
                    f"{len(floats)} weight op(s) compute in float (e.g. {floats[:2]})"
                    if floats
                    else "it has no int8 tensor"
                )
                + ". It was not written. The representative data probably gave no usable ranges "
                "(constant, NaN or too few examples), or the model holds ops without an int8 kernel; "
                "check `representative_data`, or use quantization='dynamic'."
            )
    elif quantization in ("float16", "dynamic") and _large_float_weights(student):
        expected = "float16" if quantization == "float16" else "int8"
        if expected not in inner:
            raise ValueError(
                f"The converted model has no {expected} tensor although quantization={quantization!r} "
                f"was requested (tensor types: {sorted(inner)}). It was not written."
            )


# ---------------------------------------------------------------- conversion
def tflite(
    model,
    path,
    quantization=None,
    representative_data=None,
    *,
    signature=None,
    integer_io=False,
    num_calibration_examples=256,
    select_tf_ops=False,
):
    """Convert the student to a `.tflite` file at `path`; returns `path` as a string.

    Args:
        model: the student `keras.Model`, or a `keras_kd.Distiller` (only `.student` is converted).
        path: the `.tflite` file to write (parent folders are created).
        quantization: None (float32), "float16", "dynamic" (int8 weights, float activations) or
            "int8" (full-integer, calibrated on `representative_data`).
        representative_data: calibration inputs for "int8", drawn from the training data (see
            `as_examples` for the accepted forms); the first `num_calibration_examples` are used.
        signature: optional input signature (see `keras_kd.export.saved_model`).
        integer_io: with "int8", make float inputs and the logits int8 (default: float32 I/O).
        select_tf_ops: allow TF ops that are not TFLite builtins (needs the Flex delegate on device).
    """
    quantization = check_quantization(quantization)
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "`quantization='int8'` needs `representative_data`: a few hundred training examples to "
            "calibrate activation ranges. Received: representative_data=None"
        )
    if integer_io and quantization != "int8":
        raise ValueError(
            f"`integer_io=True` needs `quantization='int8'`. Received: quantization={quantization!r}"
        )
    student = student_model(model)
    specs = input_signature(student, signature)
    flat_specs = tf.nest.flatten(specs)
    calibration = None
    if quantization == "int8":  # validated before the (slow) conversion
        calibration = representative_dataset(representative_data, specs, num_calibration_examples)

    def serve(*args):
        return {
            "logits": student_logits(student, list(args) if isinstance(specs, list) else args[0])
        }

    positional = list(specs) if isinstance(specs, list) else [specs]
    with tempfile.TemporaryDirectory() as tmp:
        build_archive(student, {SERVING_SIGNATURE: (serve, positional)}).write_out(
            tmp, verbose=False
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(
            tmp, signature_keys=[SERVING_SIGNATURE]
        )
        supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantization == "int8":
            converter.representative_dataset = calibration
            supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if integer_io:
                if all(spec.dtype.is_floating for spec in flat_specs):
                    converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        if select_tf_ops:
            supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        converter.target_spec.supported_ops = supported_ops
        with warnings.catch_warnings():  # int8 calibration runs TF's own (deprecated) interpreter
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            flatbuffer = converter.convert()
    check_written_types(flatbuffer, quantization, student)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return path
