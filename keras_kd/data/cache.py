"""Offline distillation: run the teacher once, reuse its outputs every epoch.

Online KD pays the teacher's forward pass on every batch of every epoch; a teacher is usually many
times the student's cost. `cache_teacher_outputs(teacher, dataset)` runs it once (batched,
`training=False`, with a progress bar) and returns a `tf.data.Dataset` of

    ({"student_inputs": x_student, "teacher_outputs": {"logits": t, ...}}, y[, sample_weight])

that `keras_kd.Distiller(student, teacher=None)` trains on without ever calling a teacher.

- **Alignment.** Inputs are stored next to the outputs computed from them, so shuffling the cached
  dataset (`shuffle=True`, once per epoch, after caching) can never mis-align them. Shuffle or
  augment the *source* dataset only if you want that one random draw frozen into the cache.
- **Augmentation trade-off.** Cached outputs belong to the un-augmented input. Augmenting the
  student's view afterwards (`keras_kd.data.augment`, via `dataset.map`) trains the student to match
  the teacher's output for the clean text: a label-preserving regularizer, but not the teacher's
  view of the augmented input. When the augmentation changes the answer (heavy masking, cropping),
  use online KD (`Distiller(student, teacher)`) so the teacher sees what the student sees.
- **Disk.** With `path`, the cache is written with `tf.data.Dataset.save` next to a JSON manifest
  (teacher name and weights fingerprint, dataset fingerprint, outputs, dtype, top-k) and reloaded
  next time without running, or even building, the teacher (`teacher=None`). A cache built for
  another teacher or dataset is refused.
- **Top-k.** For large vocabularies `top_k=k` stores only the k largest logits, their indices and
  one number for the rest of the distribution; see `expand_top_k` for the reconstruction and its
  error bound.
- **Precision.** `dtype="float16"` halves the storage; logits round to ~3 significant digits
  (relative error ≤ 2⁻¹¹). Cached outputs are cast back to float32 when batches are read.
- Outputs computed by anything else (NumPy from a non-TF model): `with_teacher_outputs(x, t, y)`.
"""

import hashlib
import json
import math
import os
import pathlib
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from keras.src.trainers.data_adapters import data_adapter_utils

from keras_kd.data import keys
from keras_kd.teachers.base import as_output_dict

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA_DIR = "data"
TOP_K_KEYS = ("top_k_values", "top_k_indices", "rest_fill")
_DTYPES = ("float16", "float32")


# ---------------------------------------------------------------- top-k
def _scatter_last_axis(base, indices, updates):
    """`base` with `base[..., indices[..., i]] = updates[..., i]`, for any number of leading axes.

    Memory stays O(size of `base`) (no `(…, k, n)` one-hot), so it scales to large vocabularies.
    """
    n, k = tf.shape(base)[-1], tf.shape(indices)[-1]
    flat_base = tf.reshape(base, [-1, n])
    flat_indices = tf.reshape(tf.cast(indices, tf.int32), [-1, k])
    rows = tf.broadcast_to(tf.range(tf.shape(flat_base)[0])[:, tf.newaxis], tf.shape(flat_indices))
    scattered = tf.tensor_scatter_nd_update(
        flat_base, tf.stack([rows, flat_indices], axis=-1), tf.reshape(updates, [-1, k])
    )
    result = tf.reshape(scattered, tf.shape(base))
    result.set_shape(base.shape)
    return result


def compress_top_k(logits, k, temperature=1.0):
    """Keep the `k` largest logits: `{"top_k_values", "top_k_indices", "rest_fill"}` (NumPy or TF in, TF out).

    `rest_fill` is the single logit `c` that, put on each of the other `n - k` classes, keeps the
    probability mass of those classes at `temperature` T exactly:
    `(n - k) · exp(c / T) = Σ_{j ∉ top-k} exp(z_j / T)`, i.e.
    `c = T · (logsumexp(z_rest / T) - log(n - k))`.
    """
    logits = tf.convert_to_tensor(logits, dtype=tf.float32)
    n = logits.shape[-1]
    if not isinstance(k, int) or not 0 < k < n:
        raise ValueError(
            f"`top_k` must be an integer in [1, {n - 1}] (fewer than the {n} classes). Received: top_k={k!r}"
        )
    values, indices = tf.math.top_k(logits, k=k)
    scaled_rest = _scatter_last_axis(
        logits / temperature, indices, tf.fill(tf.shape(values), -np.inf)
    )
    rest_fill = temperature * (tf.reduce_logsumexp(scaled_rest, axis=-1) - math.log(n - k))
    return {
        "top_k_values": values,
        "top_k_indices": tf.cast(indices, tf.int32),
        "rest_fill": rest_fill,
    }


def expand_top_k(compressed, num_classes):
    """Dense logits from `compress_top_k`'s output: the top k as stored, every other class `rest_fill`.

    Error bound (Hinton KD at the temperature `T` used when compressing): softmax(ẑ/T) keeps the
    teacher's top-k probabilities and its remaining mass `m` exactly and spreads `m` uniformly over
    the other `n - k` classes, so for any student distribution q (both at temperature T)

        |KL(p ‖ q) − KL(p̂ ‖ q)| ≤ m · (log(n − k) + max_{j∉top-k} log q_j − min_{j∉top-k} log q_j)

    (the first term bounds the lost entropy of the tail, the second the tail's cross-entropy
    change). It vanishes as the teacher's tail mass `m` does; `KLDivergence` multiplies it by T².
    """
    values = tf.cast(compressed["top_k_values"], tf.float32)
    fill = tf.cast(compressed["rest_fill"], tf.float32)[..., tf.newaxis]
    base = fill * tf.ones([num_classes], tf.float32)
    base.set_shape(values.shape[:-1].concatenate([num_classes]))
    return _scatter_last_axis(base, compressed["top_k_indices"], values)


# ---------------------------------------------------------------- fingerprints
def _sha256(arrays):
    digest = hashlib.sha256()
    for array in arrays:
        array = np.asarray(array)
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
    return digest.hexdigest()


def teacher_fingerprint(teacher):
    """`{"name", "class", "num_params", "weights_sha256"}` identifying a teacher and its weights."""
    weights = getattr(teacher, "weights", None) or []
    return {
        "name": getattr(teacher, "name", type(teacher).__name__),
        "class": type(teacher).__name__,
        "num_params": int(sum(int(np.prod(w.shape)) for w in weights)),
        "weights_sha256": _sha256(keras.ops.convert_to_numpy(w) for w in weights)
        if weights
        else None,
    }


def dataset_fingerprint(dataset):
    """`{"cardinality", "element_spec", "first_batch_sha256"}` of a (batched) dataset."""
    first = next(iter(dataset.take(1)), None)
    flat = [] if first is None else [t.numpy() for t in tf.nest.flatten(first)]
    return {
        "cardinality": int(dataset.cardinality()),
        "element_spec": repr(dataset.element_spec),
        "first_batch_sha256": _sha256(flat),
    }


# ---------------------------------------------------------------- checks
def _check_finite(name, array, where):
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise ValueError(
            f"Teacher output {name!r} has {bad} NaN/Inf values {where}. A cache of non-finite teacher outputs "
            "would poison every epoch: check the teacher and its inputs (or use dtype='float32' if the "
            "values overflow float16)."
        )


def _check_dtype(dtype):
    if dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be one of {_DTYPES}. Received: dtype={dtype!r}")


def _select_outputs(outputs, names):
    missing = [name for name in names if name not in outputs]
    if missing:
        raise ValueError(
            f"The teacher has no output {missing[0]!r}. Available outputs: {sorted(outputs)}. "
            f"Received: outputs={tuple(names)}"
        )
    return {name: outputs[name] for name in names}


def _tuples(structure):
    """Lists → tuples, so `from_tensor_slices` slices each entry instead of stacking them."""
    if isinstance(structure, dict):
        return {k: _tuples(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return tuple(_tuples(v) for v in structure)
    return structure


def _store_dtype(array, dtype):
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        return array
    with np.errstate(over="ignore"):  # overflow to inf is reported by _check_finite
        return array.astype(dtype)


# ---------------------------------------------------------------- the cached pipeline
def _batch_stored(stored, batch_size, shuffle, seed):
    """Batches of an unbatched stored dataset (a cache read from disk), shuffled per epoch if asked."""
    if shuffle:
        stored = stored.shuffle(
            max(int(stored.cardinality()), 1), seed=seed, reshuffle_each_iteration=True
        )
    return stored.batch(batch_size)


def _batch_arrays(element, batch_size, shuffle, seed):
    """Batches of in-memory arrays, gathered by (shuffled) index batches: no per-example overhead."""
    tensors = tf.nest.map_structure(tf.convert_to_tensor, _tuples(element))
    if len(tensors) == 1:
        tensors = tensors[0]
    count = int(tf.nest.flatten(tensors)[0].shape[0])
    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(max(count, 1), seed=seed, reshuffle_each_iteration=True)
    return indices.batch(batch_size).map(
        lambda index: tf.nest.map_structure(lambda t: tf.gather(t, index), tensors),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _restore(batches, num_classes, top_k):
    """Float32 teacher outputs, top-k expanded to dense logits, prefetched."""

    def to_float32(t):
        return tf.cast(t, tf.float32) if t.dtype in (tf.float16, tf.bfloat16) else t

    def restore(x, *rest):
        outputs = dict(x[keys.TEACHER_OUTPUTS])
        if top_k:
            outputs["logits"] = expand_top_k(outputs.pop("logits"), num_classes)
        outputs = tf.nest.map_structure(to_float32, outputs)
        x = {**x, keys.TEACHER_OUTPUTS: outputs}
        return (x, *rest) if rest else x

    return batches.map(restore, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _element(student_inputs, outputs, y, sample_weight):
    x = {keys.STUDENT_INPUTS: student_inputs, keys.TEACHER_OUTPUTS: outputs}
    if y is None:
        if sample_weight is not None:
            raise ValueError(
                "`sample_weight` needs labels `y`: received sample weights without labels."
            )
        return (x,)
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def _from_arrays(element):
    element = _tuples(element)
    if len(element) == 1:
        return tf.data.Dataset.from_tensor_slices(element[0])
    return tf.data.Dataset.from_tensor_slices(element)


def _predict_fn(teacher):
    if isinstance(teacher, keras.layers.Layer):
        return tf.function(lambda x: teacher(x, training=False), reduce_retracing=True)
    if callable(teacher):
        return teacher
    raise TypeError(f"`teacher` must be a keras.Model or a callable. Received: teacher={teacher!r}")


def run_teacher(
    teacher,
    dataset,
    outputs=("logits",),
    top_k=None,
    top_k_temperature=1.0,
    dtype="float32",
    verbose=1,
):
    """Run `teacher` once over a batched `dataset`.

    Returns `(element, batch_size, num_classes)`: the unbatched NumPy element to cache, the source's
    batch size and the size of the logits' last axis (None without logits).

    Each element of `dataset` is `x`, `(x, y)` or `(x, y, sample_weight)`; the teacher sees
    `keys.teacher_view(x)`, the cache keeps `keys.student_view(x)`.
    """
    predict = _predict_fn(teacher)
    cardinality = int(dataset.cardinality())
    progbar = keras.utils.Progbar(
        cardinality if cardinality > 0 else None, verbose=verbose, unit_name="batch"
    )
    columns = {"x": [], "t": [], "y": [], "w": []}
    batch_size = num_classes = None
    for step, data in enumerate(dataset):
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        result = _select_outputs(as_output_dict(predict(keys.teacher_view(x))), outputs)
        if "logits" in result:
            num_classes = int(result["logits"].shape[-1])
        if top_k:
            result["logits"] = compress_top_k(result["logits"], top_k, top_k_temperature)
        result = tf.nest.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), result)
        for name, value in result.items():
            for array in tf.nest.flatten(value):
                _check_finite(name, array, f"in batch {step}")
                _check_finite(
                    name, _store_dtype(array, dtype), f"in batch {step} after casting to {dtype}"
                )
        batch_size = batch_size or int(np.shape(tf.nest.flatten(result)[0])[0])
        columns["x"].append(tf.nest.map_structure(lambda t: t.numpy(), keys.student_view(x)))
        columns["t"].append(tf.nest.map_structure(lambda a: _store_dtype(a, dtype), result))
        columns["y"].append(None if y is None else tf.nest.map_structure(lambda t: t.numpy(), y))
        columns["w"].append(None if sample_weight is None else sample_weight.numpy())
        progbar.update(step + 1)
    if not columns["x"]:
        raise ValueError("`dataset` is empty: there is nothing to run the teacher on.")

    def concat(batches):
        if batches[0] is None:
            return None
        return tf.nest.map_structure(lambda *parts: np.concatenate(parts, axis=0), *batches)

    element = _element(
        concat(columns["x"]), concat(columns["t"]), concat(columns["y"]), concat(columns["w"])
    )
    return element, batch_size, num_classes


def _manifest(
    teacher, dataset_info, outputs, top_k, top_k_temperature, dtype, num_classes, batch_size, count
):
    from keras_kd import __version__

    return {
        "format_version": FORMAT_VERSION,
        "keras_kd_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "teacher": teacher_fingerprint(teacher),
        "dataset": dataset_info,
        "outputs": list(outputs),
        "dtype": dtype,
        "top_k": top_k,
        "top_k_temperature": top_k_temperature if top_k else None,
        "num_classes": num_classes,
        "batch_size": batch_size,
        "num_examples": count,
    }


def read_manifest(path):
    """The JSON manifest of a cache folder, or None when there is no cache there."""
    manifest = pathlib.Path(path) / MANIFEST
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def _check_manifest(manifest, path, teacher, dataset_info, outputs, top_k, dtype):
    hint = f"Delete {path} or pass `overwrite=True` to rebuild the cache."
    if teacher is not None:
        expected, found = manifest["teacher"], teacher_fingerprint(teacher)
        if (
            expected["weights_sha256"] != found["weights_sha256"]
            or expected["class"] != found["class"]
        ):
            raise ValueError(
                f"The teacher cache at {path} was built for teacher {expected['name']!r} ({expected['class']}, "
                f"{expected['num_params']} parameters, weights sha256 {str(expected['weights_sha256'])[:12]}), "
                f"not for the teacher passed: {found['name']!r} ({found['class']}, {found['num_params']} parameters, "
                f"weights sha256 {str(found['weights_sha256'])[:12]}). {hint}"
            )
    if dataset_info is not None:
        expected = manifest["dataset"]
        for field in ("cardinality", "element_spec", "first_batch_sha256"):
            if expected[field] != dataset_info[field]:
                shuffled = (
                    " A source dataset shuffled at every iteration never matches: shuffle after caching "
                    "(`shuffle=True`) instead."
                    if field == "first_batch_sha256"
                    else ""
                )
                raise ValueError(
                    f"The teacher cache at {path} was built for a different dataset ({field} differs: cached "
                    f"{str(expected[field])[:80]}, received {str(dataset_info[field])[:80]}).{shuffled} {hint}"
                )
    requested = {"outputs": list(outputs), "top_k": top_k, "dtype": dtype}
    for field, value in requested.items():
        if manifest[field] != value:
            raise ValueError(
                f"The teacher cache at {path} holds {field}={manifest[field]!r}, not {field}={value!r}. {hint}"
            )


def load_cached_teacher_outputs(path, batch_size=None, shuffle=False, seed=None):
    """Reload a cache written by `cache_teacher_outputs(..., path=path)`; no teacher needed."""
    manifest = read_manifest(path)
    if manifest is None:
        raise FileNotFoundError(
            f"No teacher cache at {path} (no {MANIFEST}). Build it with cache_teacher_outputs."
        )
    stored = tf.data.Dataset.load(str(pathlib.Path(path) / DATA_DIR))
    return _restore(
        _batch_stored(stored, batch_size or manifest["batch_size"], shuffle, seed),
        manifest["num_classes"],
        manifest["top_k"],
    )


def cache_teacher_outputs(
    teacher,
    dataset,
    *,
    outputs=("logits",),
    top_k=None,
    top_k_temperature=1.0,
    path=None,
    dtype="float32",
    batch_size=None,
    shuffle=False,
    seed=None,
    overwrite=False,
    verbose=1,
):
    """Run `teacher` once over `dataset` and return a dataset carrying its outputs.

    Args:
        teacher: a `keras.Model` / `keras_kd.teachers` adapter (called with `training=False`), or
            any callable returning logits or a dict of outputs. May be None when `path` holds a cache.
        dataset: a batched `tf.data.Dataset` of `x`, `(x, y)` or `(x, y, sample_weight)`; `x` may be
            a dict with `teacher_inputs` / `student_inputs` (see `keras_kd.data.keys`). Iterated once.
        outputs: teacher outputs to keep (`"logits"`, `"hidden_states"`, ...).
        top_k: keep only the k largest logits (+ indices + one tail value); expanded back to dense
            logits when batches are read. See `expand_top_k` for the error bound.
        top_k_temperature: the temperature at which the tail mass is kept exact (use the
            distillation temperature).
        path: folder to persist the cache in (`tf.data.Dataset.save` + `manifest.json`). When it
            already holds a cache for this teacher and dataset, that cache is loaded instead.
        dtype: `"float32"` or `"float16"` storage for float outputs.
        batch_size: batch size of the returned dataset (default: the source's).
        shuffle: shuffle examples every epoch (after caching: inputs and outputs stay aligned).
        seed: shuffle seed.
        overwrite: rebuild a cache found at `path` even if it matches.
        verbose: 0 = silent, 1 = progress bar.

    Returns:
        A `tf.data.Dataset` of `({"student_inputs": x_s, "teacher_outputs": {...}}, y[, sample_weight])`
        for `keras_kd.Distiller(student, teacher=None)`.
    """
    _check_dtype(dtype)
    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    if top_k is not None and "logits" not in outputs:
        raise ValueError(
            f"`top_k` compresses the 'logits' output, which is not cached. Received: outputs={outputs}"
        )
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "`dataset` must be a batched tf.data.Dataset. For NumPy arrays use "
            f"`tf.data.Dataset.from_tensor_slices((x, y)).batch(n)`. Received: dataset of type {type(dataset).__name__}"
        )
    dataset_info = dataset_fingerprint(dataset)
    if path is not None:
        path = pathlib.Path(path)
        manifest = read_manifest(path)
        if manifest is not None and not overwrite:
            _check_manifest(manifest, path, teacher, dataset_info, outputs, top_k, dtype)
            return load_cached_teacher_outputs(
                path, batch_size=batch_size, shuffle=shuffle, seed=seed
            )
    if teacher is None:
        where = f"no cache at {path}" if path is not None else "no `path` to load a cache from"
        raise ValueError(
            f"`teacher` is None and there is {where}: pass the teacher to build the cache."
        )

    element, source_batch_size, num_classes = run_teacher(
        teacher, dataset, outputs, top_k, top_k_temperature, dtype, verbose
    )
    cached_outputs = element[0][keys.TEACHER_OUTPUTS]
    count = len(tf.nest.flatten(cached_outputs)[0])
    batch_size = batch_size or source_batch_size
    if path is not None:
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        _from_arrays(element).save(str(path / DATA_DIR))
        manifest = _manifest(
            teacher,
            dataset_info,
            outputs,
            top_k,
            top_k_temperature,
            dtype,
            num_classes,
            source_batch_size,
            count,
        )
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return _restore(_batch_arrays(element, batch_size, shuffle, seed), num_classes, top_k)


def with_teacher_outputs(
    x,
    teacher_outputs,
    y=None,
    sample_weight=None,
    *,
    batch_size=32,
    shuffle=False,
    seed=None,
    dtype="float32",
):
    """A distillation dataset from teacher outputs computed by anything (NumPy, another framework).

    Args:
        x: the student's inputs (array or dict of arrays), one row per example.
        teacher_outputs: logits (array `(n, classes)`) or a dict of outputs (`{"logits": ...}`).
        y, sample_weight: optional labels and weights.

    Returns:
        A batched `tf.data.Dataset` of `({"student_inputs": x, "teacher_outputs": {...}}, y[, sample_weight])`.
    """
    _check_dtype(dtype)
    outputs = as_output_dict(teacher_outputs)
    outputs = tf.nest.map_structure(
        lambda a: _store_dtype(keras.ops.convert_to_numpy(a), dtype), outputs
    )
    n = len(tf.nest.flatten(x)[0])
    for name, value in outputs.items():
        for array in tf.nest.flatten(value):
            _check_finite(name, array, "in `teacher_outputs`")
            if len(array) != n:
                raise ValueError(
                    f"`teacher_outputs[{name!r}]` must have one row per example of `x`. "
                    f"Received: {n} examples and {len(array)} rows"
                )
    return _restore(
        _batch_arrays(_element(x, outputs, y, sample_weight), batch_size, shuffle, seed), None, None
    )


def cache_size_bytes(path):
    """Bytes used on disk by a cache folder."""
    return sum(os.path.getsize(p) for p in pathlib.Path(path).rglob("*") if p.is_file())
