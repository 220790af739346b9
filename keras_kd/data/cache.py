"""Offline distillation: run the teacher once, reuse its outputs every epoch.

Online KD pays the teacher's forward pass on every batch of every epoch; a teacher is usually many
times the student's cost. `cache_teacher_outputs(teacher, dataset)` runs it once (batched,
`training=False`, with a progress bar) and returns a `tf.data.Dataset` of

    ({"student_inputs": x_student, "teacher_outputs": {"logits": t, ...}}, y[, sample_weight])

that `keras_kd.Distiller(student, teacher=None)` trains on without ever calling a teacher.

- **Alignment.** Inputs are stored next to the outputs computed from them, so shuffling the cached
  dataset (`shuffle=True`, once per epoch, after caching) can never mis-align them. Shuffle or
  augment the *source* dataset only if you want that one random draw frozen into the cache.
- **Augmented views (function matching).** `views=K, augmentation=fn` stores the teacher's outputs
  for K augmented views of every example (Beyer et al. 2022: teacher and student see the same
  view); with `seed`, view `v` of batch `b` is drawn from a seed derived from `(seed, b, v)`, so a
  rerun (or a resumed run) stores the same views. Long student schedules never call the teacher.
- **Disk: a streaming, sharded format.** With `path`, every batch is written as it comes out of
  the teacher into TFRecord shards (`shard-00000.tfrecord`, ...; one `tf.train.Example` per row,
  each tensor a raw-bytes feature) listed in `manifest.json` with their example counts and sha256
  checksums. Memory stays flat whatever the corpus size. TFRecord (not `tf.data` snapshot files)
  because it is a stable, documented format that Apache Beam writes too (`keras_kd.data.beam`
  labels corpora on a cluster into the same format), that can be appended shard by shard, and whose
  shards can be checksummed, counted and read in parallel by any tool.
- **Resume.** The manifest is rewritten after every finished shard. A killed run is resumed by
  calling `cache_teacher_outputs` again with the same arguments: finished shards are verified
  (checksum, count, and the hash of the input batches they came from) and kept, the teacher only
  runs on the rest.
- **Fingerprint.** The manifest records what the stored values depend on: the teacher's full config
  (names, initializers and `trainable` flags excluded) and weights, or a callable teacher's code and
  the models and arrays it holds; a sha256 of every input batch, hashed as it streams past; and
  every option that changes the stored values (`outputs`, `top_k`, `top_k_temperature`, `dtype`,
  `views`, `augmentation`, its seed). A cache that does not match is refused, never reused.
- **Loading** (`load_cached_teacher_outputs`) verifies every shard's checksum and count; reading
  interleaves the shards in parallel and shuffles across them. Several caches of the same inputs
  (one per teacher) combine into one multi-teacher dataset: `load_cached_teacher_outputs([a, b])`.
- **Top-k.** For large vocabularies `top_k=k` stores only the k largest logits, their indices and
  one number for the rest of the distribution; see `expand_top_k` for the reconstruction and its
  error bound.
- **Precision.** `dtype="float16"` halves the storage; logits round to ~3 significant digits
  (relative error ≤ 2⁻¹¹). Cached outputs are cast back to float32 when batches are read.
- Without `path` the outputs are kept in memory (fast; for transfer sets that fit in RAM).
- Outputs computed by anything else (NumPy from a non-TF model): `with_teacher_outputs(x, t, y)`.
"""

import hashlib
import inspect
import json
import math
import os
import pathlib
import shutil
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_kd.data import keys
from keras_kd.data.cache_format import (
    FORMAT_VERSION,
    MANIFEST,
    PARTIAL_SUFFIX,
    SHARD_NAME,
    RecordEncoder,
    keras_kd_version,
    leaf_spec,
    parse_records,
    read_manifest,
    shard_entry,
    structure_from_json,
    structure_to_json,
    template,
    verify_shards,
    write_manifest,
)
from keras_kd.teachers.base import as_output_dict

DEFAULT_SHARD_SIZE = 100_000  # examples (rows) per shard
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
    _update_digest(digest, arrays)
    return digest.hexdigest()


def _update_digest(digest, arrays):
    for array in arrays:
        array = np.asarray(array)
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())


# Config keys that do not change what a model computes from its weights.
_CONFIG_NOISE = ("name", "trainable", "build_config", "compile_config")
_CONFIG_NOISE_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def _canonical_config(layer):
    """The layer's serialized config without names, `trainable` flags or initializers.

    Layer names are replaced by their order of appearance, so two identical architectures built
    in one session (`dense_3` vs `dense_7`) fingerprint alike.
    """
    try:
        config = keras.saving.serialize_keras_object(layer)
    except Exception as error:  # an unserializable custom layer: its class and weights still count
        return {"unserializable": f"{type(layer).__module__}.{type(layer).__qualname__}: {error}"}
    names = {}

    def collect(node):
        if isinstance(node, dict):
            config_dict = node.get("config")
            if isinstance(config_dict, dict) and isinstance(config_dict.get("name"), str):
                names.setdefault(config_dict["name"], f"layer_{len(names)}")
            for value in node.values():
                collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                collect(value)

    def clean(node):
        if isinstance(node, dict):
            return {
                k: clean(v)
                for k, v in node.items()
                if k not in _CONFIG_NOISE and not k.endswith(_CONFIG_NOISE_SUFFIXES)
            }
        if isinstance(node, (list, tuple)):
            return [clean(v) for v in node]
        if isinstance(node, str):
            return names.get(node, node)
        return node

    collect(config)
    return clean(config)


def _json_sha256(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


def _held_state(obj):
    """The values a callable holds (closure cells, public attributes), for its fingerprint."""
    if inspect.ismethod(obj):
        return {"__self__": obj.__self__}
    if inspect.isfunction(obj):
        cells = obj.__closure__ or ()
        held = {
            name: cell.cell_contents
            for name, cell in zip(obj.__code__.co_freevars, cells, strict=True)
        }
        held.update(
            {
                name: obj.__globals__[name]
                for name in obj.__code__.co_names
                if name in obj.__globals__
            }
        )
        return held
    return (
        {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        if hasattr(obj, "__dict__")
        else {}
    )


def _code_text(obj):
    target = (
        obj.__func__ if inspect.ismethod(obj) else obj if inspect.isfunction(obj) else type(obj)
    )
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        call = vars(target).get("__call__") if isinstance(target, type) else None
        code = getattr(target, "__code__", None) or getattr(call, "__code__", None)
        return repr((code.co_code, code.co_consts)) if code is not None else repr(target)


def _value_fingerprint(value, depth):
    if isinstance(value, keras.layers.Layer):
        return object_fingerprint(value)
    if isinstance(value, (np.ndarray, np.generic, tf.Tensor, tf.Variable)) or keras.ops.is_tensor(
        value
    ):
        return _sha256([keras.ops.convert_to_numpy(value)])
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, (list, tuple)) and depth < 2:
        return [_value_fingerprint(v, depth + 1) for v in value]
    if isinstance(value, dict) and depth < 2:
        return {str(k): _value_fingerprint(v, depth + 1) for k, v in value.items()}
    if inspect.ismodule(value):
        return value.__name__
    if (
        callable(value)
        and depth < 2
        and not inspect.isbuiltin(value)
        and not inspect.isclass(value)
    ):
        return object_fingerprint(value, depth + 1)
    return f"{type(value).__module__}.{type(value).__qualname__}"


def object_fingerprint(obj, depth=0):
    """`{"name", "class", "num_params", "weights_sha256", "config_sha256"}` of a model or callable.

    A Keras layer/model: its canonical config (`_canonical_config`) and every weight. Any other
    callable (a function, a bound method, an object with `__call__`): its source code and the
    models, arrays and plain values it holds (closure cells, referenced globals, public
    attributes); state kept in private (`_x`) attributes is not part of it.
    """
    if isinstance(obj, keras.layers.Layer):
        weights = obj.weights
        return {
            "name": obj.name,
            "class": type(obj).__name__,
            "num_params": int(sum(int(np.prod(w.shape)) for w in weights)),
            "weights_sha256": _sha256(keras.ops.convert_to_numpy(w) for w in weights)
            if weights
            else None,
            "config_sha256": _json_sha256(_canonical_config(obj)),
        }
    if inspect.ismethod(obj) and isinstance(obj.__self__, keras.layers.Layer):
        found = object_fingerprint(obj.__self__)
        return {
            **found,
            "name": f"{found['name']}.{obj.__name__}",
            "config_sha256": _json_sha256([found["config_sha256"], obj.__name__]),
        }
    held = {k: _value_fingerprint(v, depth) for k, v in sorted(_held_state(obj).items())}
    models = [v for v in held.values() if isinstance(v, dict) and "weights_sha256" in v]
    return {
        "name": getattr(obj, "__qualname__", type(obj).__qualname__),
        "class": type(obj).__name__,
        "num_params": sum(m["num_params"] for m in models),
        "weights_sha256": _json_sha256([m["weights_sha256"] for m in models]) if models else None,
        "config_sha256": _json_sha256({"code": _code_text(obj), "held": held}),
    }


def teacher_fingerprint(teacher):
    """`object_fingerprint` of the teacher (kept under this name for existing callers)."""
    return object_fingerprint(teacher)


def dataset_fingerprint(dataset):
    """`{"cardinality", "element_spec", "first_batch_sha256"}` of a (batched) dataset (cheap checks).

    The sha256 of *every* batch is computed while the teacher runs (or, when a cache is reused,
    in one pass over the inputs) and stored per shard in the manifest.
    """
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


def _check_dataset(dataset):
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "`dataset` must be a batched tf.data.Dataset. For NumPy arrays use "
            f"`tf.data.Dataset.from_tensor_slices((x, y)).batch(n)`. Received: dataset of type {type(dataset).__name__}"
        )
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(
            "`dataset` is infinite (its cardinality is INFINITE, e.g. after `.repeat()`): caching it would "
            "never end. Pass a finite dataset (drop `.repeat()` or add `.take(n)`); the cached dataset can be "
            f"repeated afterwards. Received: dataset={dataset!r}"
        )


def _check_views(views, augmentation):
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ValueError(f"`views` must be an integer >= 1. Received: views={views!r}")
    if views > 1 and augmentation is None:
        raise ValueError(
            f"`views={views}` needs an `augmentation` (a callable on a batch of inputs): without one every view "
            "would be the same input. Received: augmentation=None"
        )
    if augmentation is not None and not callable(augmentation):
        raise TypeError(
            f"`augmentation` must be a callable on a batch of inputs. Received: augmentation={augmentation!r}"
        )


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


def _unpack(data):
    """`x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)` → `(x, y, sample_weight)`."""
    if not isinstance(data, tuple):
        return data, None, None
    if not 1 <= len(data) <= 3:
        raise ValueError(
            f"Each dataset element must be x, (x, y) or (x, y, sample_weight). Received a tuple of {len(data)} entries."
        )
    return tuple(data) + (None,) * (3 - len(data))


def _element(student_inputs, outputs, y, sample_weight):
    x = {keys.STUDENT_INPUTS: student_inputs, keys.TEACHER_OUTPUTS: outputs}
    if y is None:
        if sample_weight is not None:
            raise ValueError(
                "`sample_weight` needs labels `y`: received sample weights without labels."
            )
        return (x,)
    return (x, y) if sample_weight is None else (x, y, sample_weight)


# ---------------------------------------------------------------- the teacher pass (streaming)
def _predict_fn(teacher):
    if isinstance(teacher, keras.layers.Layer):
        return tf.function(lambda x: teacher(x, training=False), reduce_retracing=True)
    if callable(teacher):
        return teacher
    raise TypeError(f"`teacher` must be a keras.Model or a callable. Received: teacher={teacher!r}")


def _view_seed(seed, batch_index, view):
    return (int(seed) * 1_000_003 + batch_index * 1_009 + view) % (2**31 - 1)


def _augmenter(augmentation, seed):
    """`apply(x, batch_index, view)`: one augmented view, reproducible per (seed, batch, view)."""
    try:
        takes_seed = "seed" in inspect.signature(augmentation).parameters
    except (TypeError, ValueError):
        takes_seed = False

    def apply(x, batch_index, view):
        if seed is not None:
            view_seed = _view_seed(seed, batch_index, view)
            if takes_seed:
                return augmentation(x, seed=view_seed)
            keras.utils.set_random_seed(view_seed)  # TF ops with global seeding, Python, NumPy
            for variable in getattr(
                augmentation, "variables", ()
            ):  # Keras random layers' SeedGenerators
                if variable.name == "seed_generator_state":
                    variable.assign(np.array([view_seed, 0], dtype=variable.dtype))
        return augmentation(x)

    return apply


def _augment_inputs(apply, x, batch_index, view):
    if keys.is_distillation_batch(x):
        if keys.TEACHER_INPUTS in x:
            raise ValueError(
                f"`views`/`augmentation` give the teacher and the student the same augmented view, so batches must "
                f"not carry separate {keys.TEACHER_INPUTS!r}. Received keys: {sorted(x)}"
            )
        return {**x, keys.STUDENT_INPUTS: apply(x[keys.STUDENT_INPUTS], batch_index, view)}
    return apply(x, batch_index, view)


class _TeacherPass:
    """Runs the teacher over a dataset batch by batch; nothing but the current batch is kept."""

    def __init__(
        self, teacher, outputs, top_k, top_k_temperature, dtype, views, augmentation, seed
    ):
        self.predict = _predict_fn(teacher)
        self.outputs, self.top_k, self.top_k_temperature, self.dtype = (
            outputs,
            top_k,
            top_k_temperature,
            dtype,
        )
        self.views = views
        self.augment = None if augmentation is None else _augmenter(augmentation, seed)
        self.num_classes = None
        self.batch_size = None

    def run(self, batch_index, data):
        """The flat leaves to store for one source batch (all its views, view after view)."""
        x, y, sample_weight = _unpack(data)
        per_view = [self._one_view(batch_index, v, x, y, sample_weight) for v in range(self.views)]
        if len(per_view) == 1:
            return per_view[0]
        return tf.nest.map_structure(lambda *parts: np.concatenate(parts, axis=0), *per_view)

    def _one_view(self, batch_index, view, x, y, sample_weight):
        if self.augment is not None:
            x = _augment_inputs(self.augment, x, batch_index, view)
        result = _select_outputs(as_output_dict(self.predict(keys.teacher_view(x))), self.outputs)
        if "logits" in result:
            self.num_classes = int(result["logits"].shape[-1])
        if self.top_k:
            result["logits"] = compress_top_k(result["logits"], self.top_k, self.top_k_temperature)
        result = tf.nest.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), result)
        where = f"in batch {batch_index}" + (f", view {view}" if self.views > 1 else "")
        for name, value in result.items():
            for array in tf.nest.flatten(value):
                _check_finite(name, array, where)
                _check_finite(
                    name, _store_dtype(array, self.dtype), f"{where} after casting to {self.dtype}"
                )
        self.batch_size = self.batch_size or int(np.shape(tf.nest.flatten(result)[0])[0])
        to_numpy = lambda t: np.asarray(keras.ops.convert_to_numpy(t))  # noqa: E731
        return _tuples(
            _element(
                tf.nest.map_structure(to_numpy, keys.student_view(x)),
                tf.nest.map_structure(lambda a: _store_dtype(a, self.dtype), result),
                None if y is None else tf.nest.map_structure(to_numpy, y),
                None if sample_weight is None else to_numpy(sample_weight),
            )
        )


def _input_digest(data):
    """sha256 of one source batch (everything the teacher and the cache see)."""
    return _sha256(
        np.asarray(t) for t in tf.nest.flatten(tf.nest.map_structure(lambda t: t.numpy(), data))
    )


# ---------------------------------------------------------------- manifest
def _options(outputs, top_k, top_k_temperature, dtype, views, augmentation, seed, shard_size):
    """Every option that changes the stored values or the shard layout."""
    return {
        "outputs": list(outputs),
        "top_k": top_k,
        "top_k_temperature": float(top_k_temperature) if top_k else None,
        "dtype": dtype,
        "views": views,
        "augmentation": None if augmentation is None else object_fingerprint(augmentation),
        "augmentation_seed": seed if augmentation is not None else None,
        "shard_size": shard_size,
    }


def new_manifest(teacher_info, options, source, num_classes, batch_size):
    return {
        "format_version": FORMAT_VERSION,
        "keras_kd_version": keras_kd_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "complete": False,
        "teacher": teacher_info,
        **options,
        "dataset": source,
        "num_classes": num_classes,
        "batch_size": batch_size,
        "num_examples": 0,
        "structure": None,
        "leaves": None,
        "shards": [],
    }


def _options_mismatch(manifest, options, ignore=()):
    for field, value in options.items():
        if field not in ignore and manifest.get(field) != value:
            return field, manifest.get(field), value
    return None


def _hint(path):
    return f"Delete {path} or pass `overwrite=True` to rebuild the cache."


def _check_teacher(manifest, path, teacher):
    expected, found = manifest["teacher"], object_fingerprint(teacher)
    for field, what in (
        ("class", "class"),
        ("weights_sha256", "weights"),
        ("config_sha256", "config"),
    ):
        if expected.get(field) != found[field]:
            raise ValueError(
                f"The teacher cache at {path} was built for teacher {expected['name']!r} ({expected['class']}, "
                f"{expected['num_params']} parameters, weights sha256 {str(expected['weights_sha256'])[:12]}, "
                f"config sha256 {str(expected.get('config_sha256'))[:12]}), not for the teacher passed: "
                f"{found['name']!r} ({found['class']}, {found['num_params']} parameters, weights sha256 "
                f"{str(found['weights_sha256'])[:12]}, config sha256 {str(found['config_sha256'])[:12]}): the "
                f"{what} differs. {_hint(path)}"
            )


def _check_options(manifest, path, options):
    mismatch = _options_mismatch(manifest, options, ignore=("shard_size",))  # layout only
    if mismatch:
        field, cached, requested = mismatch
        raise ValueError(
            f"The teacher cache at {path} holds {field}={cached!r}, not {field}={requested!r}. {_hint(path)}"
        )


def _check_inputs(manifest, path, dataset, dataset_info):
    """Refuse a cache built from other inputs: cheap fields first, then every batch's hash."""
    expected = manifest["dataset"]
    for field in ("cardinality", "element_spec", "first_batch_sha256"):
        if expected.get(field) != dataset_info[field]:
            shuffled = (
                " A source dataset shuffled at every iteration never matches: shuffle after caching "
                "(`shuffle=True`) instead."
                if field == "first_batch_sha256"
                else ""
            )
            raise ValueError(
                f"The teacher cache at {path} was built for a different dataset ({field} differs: cached "
                f"{str(expected.get(field))[:80]}, received {str(dataset_info[field])[:80]}).{shuffled} {_hint(path)}"
            )
    batches = iter(dataset)
    first_batch = 0
    for entry in manifest["shards"]:
        digest = hashlib.sha256()
        for _ in range(entry["num_batches"]):
            data = next(batches, None)
            if data is None:
                break
            digest.update(_input_digest(data).encode())
        if digest.hexdigest() != entry["inputs_sha256"]:
            raise ValueError(
                f"The teacher cache at {path} was built for a different dataset (inputs_sha256 differs: batches "
                f"{first_batch}-{first_batch + entry['num_batches'] - 1}, stored in {path / entry['file']}, hash "
                f"differently). {_hint(path)}"
            )
        first_batch += entry["num_batches"]
    if next(batches, None) is not None:
        raise ValueError(
            f"The teacher cache at {path} was built for a different dataset (the dataset has more than the "
            f"{first_batch} batches cached). {_hint(path)}"
        )


# ---------------------------------------------------------------- writing
class _ShardWriter:
    """Streams the teacher's outputs into shards; the manifest is rewritten after every shard."""

    def __init__(self, path, manifest, shard_size):
        self.path, self.manifest, self.shard_size = pathlib.Path(path), manifest, shard_size
        self.writer = self.encoder = None
        self.rows = self.batches = 0
        self.digest = hashlib.sha256()

    @property
    def index(self):
        return len(self.manifest["shards"])

    def _partial(self):
        return self.path / (SHARD_NAME.format(self.index) + PARTIAL_SUFFIX)

    def keep(self, entry):
        self.manifest["shards"].append(entry)
        self.manifest["num_examples"] += entry["num_examples"]

    def write(self, element, input_digest):
        leaves = tf.nest.flatten(element)
        if self.manifest["structure"] is None:
            self.manifest["structure"] = structure_to_json(template(element))
            self.manifest["leaves"] = [leaf_spec(leaf) for leaf in leaves]
        specs = [leaf_spec(leaf) for leaf in leaves]
        if specs != self.manifest["leaves"]:
            raise ValueError(
                "Every batch must have the same per-example shapes and dtypes to be cached on disk. Expected "
                f"{self.manifest['leaves']}, received {specs} (pad variable-length inputs to one length)."
            )
        if self.writer is None:
            self.writer = tf.io.TFRecordWriter(str(self._partial()))
            self.encoder = self.encoder or RecordEncoder(specs)
        for record in self.encoder.encode(leaves):
            self.writer.write(record)
        self.rows += len(leaves[0])
        self.batches += 1
        self.digest.update(input_digest.encode())
        if self.rows >= self.shard_size:
            self.close_shard()

    def close_shard(self):
        if self.writer is None:
            return
        self.writer.close()
        os.replace(self._partial(), self.path / SHARD_NAME.format(self.index))
        first = sum(entry["num_batches"] for entry in self.manifest["shards"])
        self.keep(
            shard_entry(
                self.path,
                self.index,
                first_batch=first,
                num_batches=self.batches,
                inputs_sha256=self.digest.hexdigest(),
            )
        )
        write_manifest(self.path, self.manifest)
        self.writer, self.rows, self.batches, self.digest = None, 0, 0, hashlib.sha256()

    def abort(self):
        if self.writer is not None:
            self.writer.close()
            self._partial().unlink(missing_ok=True)


def _resumable_shards(path, manifest, teacher_info, options):
    """The verified prefix of shards of an unfinished cache built with the same teacher and options."""
    if manifest is None or manifest.get("complete") or manifest.get("teacher") != teacher_info:
        return []
    if _options_mismatch(manifest, options) or manifest.get("format_version") != FORMAT_VERSION:
        return []
    kept = []
    for entry in manifest["shards"]:
        try:
            verify_shards(path, {"shards": [entry], "num_examples": entry["num_examples"]})
        except (OSError, ValueError):
            break
        kept.append(entry)
    return kept


class _Restart(Exception):
    """The inputs of a finished shard changed since the interrupted run: start over."""


def _write_cache(path, run, dataset, manifest, kept, shard_size, progbar):
    writer = _ShardWriter(path, manifest, shard_size)
    batches = iter(dataset)
    batch_index = 0
    try:
        for entry in kept:  # resume: check the inputs of each finished shard, skip the teacher
            digest = hashlib.sha256()
            for _ in range(entry["num_batches"]):
                data = next(batches, None)
                if data is None:
                    raise _Restart
                digest.update(_input_digest(data).encode())
                batch_index += 1
                progbar.update(batch_index)
            if digest.hexdigest() != entry["inputs_sha256"]:
                raise _Restart
            writer.keep(entry)
        for data in batches:
            writer.write(run(batch_index, data), _input_digest(data))
            batch_index += 1
            progbar.update(batch_index)
        writer.close_shard()
    except BaseException:
        writer.abort()
        raise
    if not manifest["shards"]:
        raise ValueError("`dataset` is empty: there is nothing to run the teacher on.")
    manifest["complete"] = True
    manifest["dataset"]["num_batches"] = batch_index
    manifest["dataset"]["inputs_sha256"] = _json_sha256(
        [entry["inputs_sha256"] for entry in manifest["shards"]]
    )
    write_manifest(path, manifest)
    return manifest


def _clear(path):
    """Remove a cache's files (shards, manifest) but nothing else in the folder."""
    path = pathlib.Path(path)
    if not path.exists():
        return
    for item in path.iterdir():
        if item.name.startswith("shard-") or item.name.startswith(MANIFEST) or item.name == "data":
            shutil.rmtree(item) if item.is_dir() else item.unlink()


def _build_on_disk(
    path, teacher, dataset, dataset_info, options, previous, shard_size, verbose, run_kwargs
):
    """Write (or resume) the sharded cache at `path`; returns its complete manifest."""
    teacher_info = object_fingerprint(teacher)
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*" + PARTIAL_SUFFIX):
        leftover.unlink()
    kept = _resumable_shards(path, previous, teacher_info, options)
    if kept and verbose:
        print(
            f"Resuming the teacher cache at {path}: {len(kept)} finished shard(s) verified and kept."
        )

    def write(kept):
        _clear_unlisted(path, kept)
        manifest = new_manifest(teacher_info, options, dict(dataset_info), None, None)
        if kept:  # what the finished shards already recorded
            for field in ("num_classes", "batch_size", "structure", "leaves"):
                manifest[field] = previous[field]
        run = _Recorder(_TeacherPass(teacher, **run_kwargs), manifest)
        return _write_cache(
            path, run, dataset, manifest, kept, shard_size, _progbar(dataset, verbose)
        )

    try:
        return write(kept)
    except _Restart:
        warnings.warn(
            f"The inputs of the finished shards in {path} changed since the interrupted run: rebuilding the "
            "whole cache.",
            stacklevel=3,
        )
        return write([])


class _Recorder:
    """Wraps `_TeacherPass.run` to copy the teacher's batch size and class count into the manifest."""

    def __init__(self, run, manifest):
        self.run, self.manifest = run, manifest

    def __call__(self, batch_index, data):
        element = self.run.run(batch_index, data)
        self.manifest["num_classes"] = self.manifest["num_classes"] or self.run.num_classes
        self.manifest["batch_size"] = self.manifest["batch_size"] or self.run.batch_size
        return element


def _clear_unlisted(path, kept):
    listed = {entry["file"] for entry in kept}
    for shard in path.glob("shard-*"):
        if shard.name not in listed:
            shard.unlink()
    if not kept:
        (path / MANIFEST).unlink(missing_ok=True)
        if (path / "data").is_dir():  # a format-1 cache (tf.data.Dataset.save)
            shutil.rmtree(path / "data")


def _progbar(dataset, verbose):
    cardinality = int(dataset.cardinality())
    return keras.utils.Progbar(
        cardinality if cardinality > 0 else None, verbose=verbose, unit_name="batch"
    )


# ---------------------------------------------------------------- reading
def _plain(fn):
    """`fn` traced as written: no AutoGraph conversion (it has no Python control flow on tensors).

    AutoGraph would convert every function it calls (tf.nest, the parser): seconds of fixed cost per
    dataset for nothing.
    """
    return tf.autograph.experimental.do_not_convert(fn)


def _restore(batches, num_classes, top_k, gather=None):
    """Float32 teacher outputs, top-k expanded to dense logits, prefetched; one `map` per batch.

    `gather`: for in-memory caches, turns a batch of indices into the batch itself (same map).
    """

    def to_float32(t):
        return tf.cast(t, tf.float32) if t.dtype in (tf.float16, tf.bfloat16) else t

    def restore(*element):
        if gather is not None:
            element = gather(element[0])
        x, rest = (element[0], element[1:]) if isinstance(element, tuple) else (element, ())
        outputs = dict(x[keys.TEACHER_OUTPUTS])
        if top_k:
            outputs["logits"] = expand_top_k(outputs.pop("logits"), num_classes)
        outputs = tf.nest.map_structure(to_float32, outputs)
        x = {**x, keys.TEACHER_OUTPUTS: outputs}
        return (x, *rest) if rest else x

    return batches.map(_plain(restore), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


def _in_memory(element, batch_size, shuffle, seed, num_classes, top_k):
    """Batches of in-memory arrays, gathered by (shuffled) index batches: no per-example overhead."""
    tensors = tf.nest.map_structure(tf.convert_to_tensor, _tuples(element))
    if len(tensors) == 1:
        tensors = tensors[0]
    count = int(tf.nest.flatten(tensors)[0].shape[0])
    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(max(count, 1), seed=seed, reshuffle_each_iteration=True)

    def gather(index):
        return tf.nest.map_structure(lambda t: tf.gather(t, index), tensors)

    return _restore(indices.batch(batch_size), num_classes, top_k, gather)


def _stored_batches(path, manifest, batch_size, shuffle, seed, shuffle_buffer, num_parallel_reads):
    """Batches of the stored elements of one cache folder (teacher outputs still as stored)."""
    files = [str(pathlib.Path(path) / entry["file"]) for entry in manifest["shards"]]
    if shuffle:
        records = tf.data.Dataset.from_tensor_slices(files).shuffle(
            len(files), seed=seed, reshuffle_each_iteration=True
        )
        records = records.interleave(
            tf.data.TFRecordDataset,
            cycle_length=max(1, min(len(files), num_parallel_reads or 8)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        buffer = shuffle_buffer or min(max(manifest["num_examples"], 1), 100_000)
        records = records.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    else:  # the order written: shards one after the other
        records = tf.data.TFRecordDataset(files, buffer_size=1 << 20)
    records = records.apply(tf.data.experimental.assert_cardinality(manifest["num_examples"]))
    specs = manifest["leaves"]
    template = structure_from_json(manifest["structure"])

    def parse(serialized):
        element = tf.nest.pack_sequence_as(template, parse_records(serialized, specs))
        return element[0] if len(element) == 1 else element

    return records.batch(batch_size).map(_plain(parse), num_parallel_calls=tf.data.AUTOTUNE)


def _open_manifest(path):
    manifest = read_manifest(path)
    if manifest is None:
        raise FileNotFoundError(
            f"No teacher cache at {path} (no {MANIFEST}). Build it with cache_teacher_outputs."
        )
    if not manifest["complete"]:
        raise ValueError(
            f"The teacher cache at {path} is incomplete: {path}/{MANIFEST} lists {len(manifest['shards'])} finished "
            "shard(s) of a run that stopped. Rerun `cache_teacher_outputs` with the same teacher, dataset and "
            "options to resume it."
        )
    return manifest


def load_cached_teacher_outputs(
    path,
    batch_size=None,
    shuffle=False,
    seed=None,
    *,
    verify=True,
    shuffle_buffer=None,
    num_parallel_reads=None,
    teacher_weights=None,
    temperature=1.0,
):
    """Reload a cache written by `cache_teacher_outputs(..., path=path)` (or `keras_kd.data.beam`).

    No teacher is needed. Every shard is checked against the manifest first (`verify=True`):
    a missing or truncated shard, a count or checksum mismatch, or a corrupt manifest raises an
    error naming the file.

    Args:
        path: the cache folder, or a list of cache folders built from the same inputs by several
            teachers: the batches then carry the weighted mean of the teachers' soft targets as
            `"logits"` (`T · log Σ w_i softmax(t_i / T)`, as `Distiller(multi_teacher="mean_targets")`
            computes online; pass the distillation `temperature`) and every teacher's logits under
            `"teachers_logits"` (for `multi_teacher="mean_losses"`).
        batch_size: batch size (default: the source's).
        shuffle: shuffle every epoch: shard order, a parallel interleave of the shards, then a
            shuffle buffer of `shuffle_buffer` examples (default: all, up to 100,000).
        seed: shuffle seed (same seed, same order).
        verify: check counts and sha256 checksums of every shard before reading.
        num_parallel_reads: shards read at once when shuffling (default 8).
        teacher_weights, temperature: with several caches, the teachers' weights (default equal)
            and the temperature of the mean.
    """
    if isinstance(path, (list, tuple)):
        return _load_several(
            path, batch_size, shuffle, seed, verify, shuffle_buffer, teacher_weights, temperature
        )
    manifest = _open_manifest(path)
    if verify:
        verify_shards(path, manifest)
    batches = _stored_batches(
        path,
        manifest,
        batch_size or manifest["batch_size"],
        shuffle,
        seed,
        shuffle_buffer,
        num_parallel_reads,
    )
    return _restore(batches, manifest["num_classes"], manifest["top_k"])


def _load_several(
    paths, batch_size, shuffle, seed, verify, shuffle_buffer, teacher_weights, temperature
):
    if len(paths) < 2:
        raise ValueError(
            f"Pass one cache path, or a list of at least two. Received: path={paths!r}"
        )
    manifests = [_open_manifest(p) for p in paths]
    counts = {str(p): m["num_examples"] for p, m in zip(paths, manifests, strict=True)}
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"Caches combined for several teachers must hold the same examples. Received counts: {counts}"
        )
    sources = {m["dataset"].get("inputs_sha256") for m in manifests}
    if len(sources) > 1 and None not in sources:
        raise ValueError(
            "Caches combined for several teachers must be built from the same inputs, in the same order; "
            f"their inputs_sha256 differ: {[str(p) for p in paths]}"
        )
    weights = (
        np.ones(len(paths)) if teacher_weights is None else np.asarray(teacher_weights, "float64")
    )
    if weights.shape != (len(paths),) or not np.all(weights > 0):
        raise ValueError(
            f"`teacher_weights` must be {len(paths)} positive numbers, one per cache. Received: teacher_weights={teacher_weights!r}"
        )
    log_weights = tf.constant(np.log(weights / weights.sum()), tf.float32)
    streams = []
    for p, m in zip(paths, manifests, strict=True):
        if verify:
            verify_shards(p, m)
        stored = _stored_batches(p, m, 1024, False, None, None, None)
        streams.append(_restore(stored, m["num_classes"], m["top_k"]))

    def merge(*elements):
        first = elements[0]
        x, rest = (first, ()) if isinstance(first, dict) else (first[0], tuple(first[1:]))
        logits = [
            (e if isinstance(e, dict) else e[0])[keys.TEACHER_OUTPUTS]["logits"] for e in elements
        ]
        log_probs = tf.stack([tf.nn.log_softmax(t / temperature, axis=-1) for t in logits])
        weights_shape = [-1] + [1] * (len(log_probs.shape) - 1)
        outputs = dict(x[keys.TEACHER_OUTPUTS])
        outputs["logits"] = temperature * tf.reduce_logsumexp(
            log_probs + tf.reshape(log_weights, weights_shape), 0
        )
        outputs["teachers_logits"] = tuple(logits)
        x = {**x, keys.TEACHER_OUTPUTS: outputs}
        return (x, *rest) if rest else x

    examples = (
        tf.data.Dataset.zip(tuple(streams))
        .map(_plain(merge), num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .apply(tf.data.experimental.assert_cardinality(manifests[0]["num_examples"]))
    )
    if shuffle:
        buffer = shuffle_buffer or min(max(manifests[0]["num_examples"], 1), 100_000)
        examples = examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return examples.batch(batch_size or manifests[0]["batch_size"]).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- public API
def run_teacher(
    teacher,
    dataset,
    outputs=("logits",),
    top_k=None,
    top_k_temperature=1.0,
    dtype="float32",
    verbose=1,
    views=1,
    augmentation=None,
    seed=None,
):
    """Run `teacher` once over a batched `dataset`, keeping its outputs in memory.

    Returns `(element, batch_size, num_classes)`: the unbatched NumPy element to cache, the source's
    batch size and the size of the logits' last axis (None without logits).

    Each element of `dataset` is `x`, `(x, y)` or `(x, y, sample_weight)`; the teacher sees
    `keys.teacher_view(x)`, the cache keeps `keys.student_view(x)`.
    """
    run = _TeacherPass(teacher, outputs, top_k, top_k_temperature, dtype, views, augmentation, seed)
    progbar = _progbar(dataset, verbose)
    parts = []
    for step, data in enumerate(dataset):
        parts.append(run.run(step, data))
        progbar.update(step + 1)
    if not parts:
        raise ValueError("`dataset` is empty: there is nothing to run the teacher on.")
    element = tf.nest.map_structure(lambda *arrays: np.concatenate(arrays, axis=0), *parts)
    return element, run.batch_size, run.num_classes


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
    views=1,
    augmentation=None,
    shard_size=DEFAULT_SHARD_SIZE,
    overwrite=False,
    verbose=1,
):
    """Run `teacher` once over `dataset` and return a dataset carrying its outputs.

    Args:
        teacher: a `keras.Model` / `keras_kd.teachers` adapter (called with `training=False`), or
            any callable returning logits or a dict of outputs. May be None when `path` holds a cache.
        dataset: a finite, batched `tf.data.Dataset` of `x`, `(x, y)` or `(x, y, sample_weight)`;
            `x` may be a dict with `teacher_inputs` / `student_inputs` (see `keras_kd.data.keys`).
            Iterated once (twice when a cache at `path` is checked against it).
        outputs: teacher outputs to keep (`"logits"`, `"hidden_states"`, ...).
        top_k: keep only the k largest logits (+ indices + one tail value); expanded back to dense
            logits when batches are read. See `expand_top_k` for the error bound.
        top_k_temperature: the temperature at which the tail mass is kept exact (use the
            distillation temperature).
        path: folder for the sharded on-disk cache (TFRecord shards + `manifest.json`). A complete
            cache there for this teacher, dataset and options is loaded instead of recomputed; an
            unfinished one is resumed; one built for anything else is refused.
        dtype: `"float32"` or `"float16"` storage for float outputs.
        batch_size: batch size of the returned dataset (default: the source's).
        shuffle: shuffle examples every epoch (after caching: inputs and outputs stay aligned).
        seed: shuffle seed, and the seed of the augmented views.
        views: number of augmented views stored per example (function matching); needs
            `augmentation`. View `v` of each batch follows view `v - 1`.
        augmentation: a callable on a batch of inputs (a Keras preprocessing layer, a
            `keras_kd.data.augment` augmentation, any function); applied to the student's inputs,
            which the teacher then sees too. A callable with a `seed` argument is called with one
            seed per (batch, view); otherwise Keras/TF/NumPy global seeds and the callable's Keras
            seed generators are reset to that seed before each view (when `seed` is given).
        shard_size: examples per shard on disk (shards end at batch boundaries).
        overwrite: rebuild a cache found at `path` even if it matches.
        verbose: 0 = silent, 1 = progress bar.

    Returns:
        A `tf.data.Dataset` of `({"student_inputs": x_s, "teacher_outputs": {...}}, y[, sample_weight])`
        for `keras_kd.Distiller(student, teacher=None)`.
    """
    _check_dtype(dtype)
    _check_views(views, augmentation)
    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    if top_k is not None and "logits" not in outputs:
        raise ValueError(
            f"`top_k` compresses the 'logits' output, which is not cached. Received: outputs={outputs}"
        )
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(
            f"`shard_size` must be a positive integer. Received: shard_size={shard_size!r}"
        )
    _check_dataset(dataset)
    run_kwargs = dict(
        outputs=outputs,
        top_k=top_k,
        top_k_temperature=top_k_temperature,
        dtype=dtype,
        views=views,
        augmentation=augmentation,
        seed=seed,
    )
    if path is None:
        if teacher is None:
            raise ValueError(
                "`teacher` is None and there is no `path` to load a cache from: pass the teacher to build the cache."
            )
        element, source_batch_size, num_classes = run_teacher(
            teacher, dataset, verbose=verbose, **run_kwargs
        )
        return _in_memory(
            element, batch_size or source_batch_size, shuffle, seed, num_classes, top_k
        )

    path = pathlib.Path(path)
    options = _options(
        outputs, top_k, top_k_temperature, dtype, views, augmentation, seed, shard_size
    )
    dataset_info = dataset_fingerprint(dataset)
    if overwrite:
        _clear(path)
    manifest = read_manifest(path)
    if manifest is not None and manifest["complete"]:
        if teacher is not None:
            _check_teacher(manifest, path, teacher)
        _check_options(manifest, path, options)
        _check_inputs(manifest, path, dataset, dataset_info)
        return load_cached_teacher_outputs(path, batch_size=batch_size, shuffle=shuffle, seed=seed)
    if teacher is None:
        state = "an unfinished cache" if manifest is not None else "no cache"
        raise ValueError(
            f"`teacher` is None and there is {state} at {path}: pass the teacher to build the cache."
        )
    _build_on_disk(
        path, teacher, dataset, dataset_info, options, manifest, shard_size, verbose, run_kwargs
    )
    return load_cached_teacher_outputs(
        path, batch_size=batch_size, shuffle=shuffle, seed=seed, verify=False
    )


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
    return _in_memory(_element(x, outputs, y, sample_weight), batch_size, shuffle, seed, None, None)


def cache_size_bytes(path):
    """Bytes used on disk by a cache folder."""
    return sum(os.path.getsize(p) for p in pathlib.Path(path).rglob("*") if p.is_file())
