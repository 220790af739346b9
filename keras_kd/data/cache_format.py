"""The on-disk format of a teacher cache: TFRecord shards of serialized rows plus `manifest.json`.

Written by `keras_kd.data.cache` (in process) and `keras_kd.data.beam` (Apache Beam), read by
`keras_kd.data.cache.load_cached_teacher_outputs`.

- Each row (one example: student inputs, teacher outputs, label, weight) is a `tf.train.Example`
  whose features `f0, f1, ...` are the row's tensors in `tf.nest.flatten` order, each stored as
  its raw little-endian bytes (strings as bytes lists). `parse_records` decodes a batch of rows
  with one `tf.io.parse_example` + `tf.io.decode_raw` per tensor.
- `manifest.json` holds the nest structure (`structure`), every tensor's dtype and per-example
  shape (`leaves`), and the list of shards, each with its file name, example count and sha256.
  It is replaced atomically; `complete` is false until the last shard is written.
"""

import hashlib
import json
import mmap
import os
import pathlib
import struct

import numpy as np
import tensorflow as tf

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SHARD_NAME = "shard-{:05d}.tfrecord"
PARTIAL_SUFFIX = ".partial"


# ---------------------------------------------------------------- records
def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def leaf_spec(array):
    """`{"dtype", "shape"}` of one row of a batched NumPy array (strings: dtype "string")."""
    dtype = "string" if array.dtype.kind in ("O", "S", "U") else array.dtype.name
    return {"dtype": dtype, "shape": list(array.shape[1:])}


def _feature_name(index):
    return f"f{index}"


class RecordEncoder:
    """Rows of flat NumPy leaves → serialized `tf.train.Example`s (one raw-bytes feature per leaf).

    Numeric leaves have the same byte length in every row, so an Example is a constant frame with
    the rows' bytes spliced in: the whole batch is encoded with one NumPy copy (no per-row proto
    objects). String leaves go through `tf.train.Example`.
    """

    def __init__(self, specs):
        self.specs = specs
        self.numeric = all(spec["dtype"] != "string" for spec in specs)
        if not self.numeric:
            return
        self.sizes = [
            np.dtype(spec["dtype"]).itemsize * int(np.prod(spec["shape"], dtype=np.int64))
            for spec in specs
        ]
        headers, entries = [], 0
        for index, size in enumerate(self.sizes):
            key = _feature_name(index).encode()
            bytes_list = 1 + len(_varint(size)) + size
            feature = 1 + len(_varint(bytes_list)) + bytes_list
            entry = 2 + len(_varint(len(key))) + len(key) + len(_varint(feature)) + feature
            headers.append(
                b"\x0a"
                + _varint(entry)
                + b"\x0a"
                + _varint(len(key))
                + key
                + b"\x12"
                + _varint(feature)
                + b"\x0a"
                + _varint(bytes_list)
                + b"\x0a"
                + _varint(size)
            )
            entries += 1 + len(_varint(entry)) + entry
        headers[0] = b"\x0a" + _varint(entries) + headers[0]
        self.headers = [np.frombuffer(h, np.uint8) for h in headers]
        self.row_bytes = sum(len(h) for h in headers) + sum(self.sizes)

    def encode(self, leaves):
        """Serialized Examples of the rows of `leaves` (NumPy arrays with the same first axis)."""
        rows = len(leaves[0])
        if not self.numeric:
            return [self._encode_row_proto(leaves, i) for i in range(rows)]
        frame = np.empty((rows, self.row_bytes), np.uint8)
        offset = 0
        for header, size, leaf in zip(self.headers, self.sizes, leaves, strict=True):
            frame[:, offset : offset + len(header)] = header
            offset += len(header)
            frame[:, offset : offset + size] = (
                np.ascontiguousarray(leaf).view(np.uint8).reshape(rows, size)
            )
            offset += size
        buffer, width = frame.tobytes(), self.row_bytes
        return [buffer[i * width : (i + 1) * width] for i in range(rows)]

    def _encode_row_proto(self, leaves, row):
        features = {}
        for index, (spec, leaf) in enumerate(zip(self.specs, leaves, strict=True)):
            value = leaf[row]
            if spec["dtype"] == "string":
                values = [v if isinstance(v, bytes) else str(v).encode() for v in np.ravel(value)]
            else:
                values = [np.ascontiguousarray(value).tobytes()]
            features[_feature_name(index)] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=values)
            )
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_records(serialized, specs):
    """Flat tensors from a batch of serialized records written by `RecordEncoder`."""
    features = {
        _feature_name(i): tf.io.FixedLenFeature(
            spec["shape"] if spec["dtype"] == "string" else [], tf.string
        )
        for i, spec in enumerate(specs)
    }
    parsed = tf.io.parse_example(serialized, features)
    tensors = []
    for i, spec in enumerate(specs):
        tensor = parsed[_feature_name(i)]
        if spec["dtype"] != "string":
            raw = tf.uint8 if spec["dtype"] == "bool" else tf.as_dtype(spec["dtype"])
            tensor = tf.reshape(tf.io.decode_raw(tensor, raw), [-1, *spec["shape"]])
            if spec["dtype"] == "bool":
                tensor = tf.cast(tensor, tf.bool)
        tensors.append(tensor)
    return tensors


def count_records(path):
    """Number of records in a TFRecord file, read from its framing; raises on a truncated file.

    Walks the 8-byte length headers of a memory map of the file (no per-record system call).
    """
    path = pathlib.Path(path)
    size = path.stat().st_size
    if size == 0:
        return 0
    count, position = 0, 0
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        unpack = struct.Struct("<Q").unpack_from
        while position < size:
            if position + 8 > size:
                raise ValueError(
                    f"Truncated TFRecord shard {path}: a record header is cut at byte {position}."
                )
            position += 16 + unpack(view, position)[0]
            if position > size:
                raise ValueError(
                    f"Truncated TFRecord shard {path}: record {count} needs {position} bytes, the file has {size}."
                )
            count += 1
    return count


def file_sha256(path):
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- structure of a stored element
def structure_to_json(structure):
    """A nest of dicts/tuples/lists with integer leaves → JSON-able tagged form."""
    if isinstance(structure, dict):
        return {"dict": {str(k): structure_to_json(v) for k, v in structure.items()}}
    if isinstance(structure, (list, tuple)):
        return {type(structure).__name__: [structure_to_json(v) for v in structure]}
    return int(structure)


def structure_from_json(data):
    if isinstance(data, dict):
        if "dict" in data:
            return {k: structure_from_json(v) for k, v in data["dict"].items()}
        if "tuple" in data:
            return tuple(structure_from_json(v) for v in data["tuple"])
        return [structure_from_json(v) for v in data["list"]]
    return data


def template(element):
    """`element` with each leaf replaced by its position in `tf.nest.flatten(element)`."""
    return tf.nest.pack_sequence_as(element, list(range(len(tf.nest.flatten(element)))))


# ---------------------------------------------------------------- manifest
def keras_kd_version():
    """The installed keras-kd version (package metadata: no import of `keras_kd` itself, no cycle)."""
    from importlib import metadata

    try:
        return metadata.version("keras-kd")
    except metadata.PackageNotFoundError:
        return "unknown"


def read_manifest(path):
    """The JSON manifest of a cache folder, or None when there is no cache there.

    Raises a `ValueError` naming the file when it exists but is not a valid manifest.
    """
    manifest_path = pathlib.Path(path) / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"The cache manifest {manifest_path} is corrupt (not valid JSON: {error}). Delete {path} (or pass "
            "`overwrite=True`) to rebuild the cache."
        ) from None
    required = ("format_version", "complete", "shards", "leaves", "structure", "num_examples")
    missing = [k for k in required if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        reason = (
            f"it was written by an older keras-kd (format_version={version}, this one reads {FORMAT_VERSION})"
            if isinstance(version, int) and version != FORMAT_VERSION
            else f"it lacks the key(s) {missing}"
        )
        raise ValueError(
            f"The cache manifest {manifest_path} is not a keras-kd {FORMAT_VERSION} cache manifest: {reason}. "
            f"Delete {path} (or pass `overwrite=True`) to rebuild the cache."
        )
    return manifest


def write_manifest(path, manifest):
    """Write `manifest.json` atomically (a crash never leaves half a manifest)."""
    target = pathlib.Path(path) / MANIFEST
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(manifest, indent=1))
    os.replace(temporary, target)


def verify_shards(path, manifest):
    """Check every shard listed in the manifest: present, not truncated, its count and its sha256."""
    path = pathlib.Path(path)
    total = 0
    for entry in manifest["shards"]:
        shard = path / entry["file"]
        if not shard.is_file():
            raise FileNotFoundError(
                f"The cache shard {shard} listed in {path / MANIFEST} is missing. Rebuild the cache "
                "(rerun `cache_teacher_outputs` with `overwrite=True`)."
            )
        count = count_records(shard)
        if count != entry["num_examples"]:
            raise ValueError(
                f"The cache shard {shard} holds {count} examples but {path / MANIFEST} lists "
                f"{entry['num_examples']}. Rebuild the cache."
            )
        if file_sha256(shard) != entry["sha256"]:
            raise ValueError(
                f"The cache shard {shard} does not match its sha256 checksum in {path / MANIFEST} (the file "
                "changed after it was written). Rebuild the cache."
            )
        total += count
    if total != manifest["num_examples"]:
        raise ValueError(
            f"The cache manifest {path / MANIFEST} lists {manifest['num_examples']} examples but its shards "
            f"hold {total}. Rebuild the cache."
        )


def shard_entry(path, index, **extra):
    """The manifest entry of a finished shard file: name, example count, sha256."""
    shard = pathlib.Path(path) / SHARD_NAME.format(index)
    return {
        "file": shard.name,
        "num_examples": count_records(shard),
        "sha256": file_sha256(shard),
        **extra,
    }
