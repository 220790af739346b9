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


def as_examples(data, specs, limit=None):
    """`(inputs, labels)` from `data`: inputs as `{input_name: array with an example axis}`.

    `data` is an array (single input), a list/dict of arrays, an `(x, y)` tuple of those, or a
    `tf.data.Dataset` of `x` or `(x, y[, sample_weight])`, batched or not; `x` may be a
    distillation batch (`keras_kd.data.STUDENT_INPUTS`). `labels` is None when `data` has none.
    At most `limit` examples are read. For a model with exactly two inputs a 2-tuple is read as
    its inputs, not as `(x, y)`: pass labels separately there.
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
        inputs = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        labels = None if any(y is None for y in label_parts) else np.concatenate(label_parts)
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


def representative_dataset(data, specs, num_examples=256):
    """A TFLite calibration generator: one `{input_name: float32 [1, ...]}` dict per example."""
    inputs, _ = as_examples(data, specs, limit=num_examples)
    dtypes = {
        name: spec.dtype.as_numpy_dtype
        for name, spec in zip(input_names(specs), tf.nest.flatten(specs), strict=True)
    }
    count = len(next(iter(inputs.values())))

    def generator():
        for i in range(count):
            yield {name: value[i : i + 1].astype(dtypes[name]) for name, value in inputs.items()}

    return generator


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
            converter.representative_dataset = representative_dataset(
                representative_data, specs, num_calibration_examples
            )
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
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return path
