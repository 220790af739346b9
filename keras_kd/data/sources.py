"""Your own data: CSV / TSV / JSONL texts, TFRecords, image folders, local TFDS, parallel text.

```python
from keras_kd.data import load_source

data = load_source("csv", train="data/train.csv", test_fraction=0.2, text_column="text", label_column="label")
data.x_train, data.y_train, data.x_test, data.y_test, data.class_names, data.x_unlabelled
```

Labels may be strings or integers; `class_names` keeps them (sorted; integers numerically) and
`y_*` are `int32` indices into it. Rows with an empty label are *unlabelled*: they are returned in
`x_unlabelled` (the pipeline has the teacher label them and adds them to the transfer set). Without
a `test` file a stratified, seeded `test_fraction` (default 0.2) of the labelled rows is held out.

Every error names the file, and the line and column when there is one: a missing column, an empty
file, undecodable bytes (set `encoding`), a label seen only in the test file, a glob that matches
nothing.
"""

import csv
import dataclasses
import glob as globlib
import io
import json
import os

import numpy as np

FORMATS = ("csv", "tsv", "jsonl", "tfrecord", "image_folder", "tfds", "parallel_text")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class DataSourceError(ValueError):
    """A data file is missing, empty or malformed (the message names the file, line and column)."""


@dataclasses.dataclass
class SourceData:
    """What `load_source` returns. `kind` is `"text"`, `"image"`, `"features"` or `"parallel"`.

    For `"parallel"`, `x_*` are `(english, translation)` string pairs (shape `(n, 2)`) and `y_*` are
    empty."""

    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    x_unlabelled: np.ndarray = None

    @property
    def num_classes(self):
        return len(self.class_names)


# ---------------------------------------------------------------- files


def expand_paths(spec, key="train"):
    """Sorted files of a path, a glob or a list of them; an error naming the pattern if none match."""
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    paths = []
    for item in specs:
        item = os.fspath(item)
        matches = sorted(globlib.glob(item)) if any(c in item for c in "*?[") else [item]
        if not matches:
            raise DataSourceError(f"`{key}`: no file matches {item!r}.")
        for path in matches:
            if not os.path.exists(path):
                raise DataSourceError(f"`{key}`: no such file or folder: {path!r}.")
        paths += matches
    return paths


def _decode(path, encoding):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise DataSourceError(
            f"{path}, line {line}, character {column}: bytes {raw[error.start : error.end]!r} are not valid "
            f"{encoding}; set `encoding` (e.g. latin-1) or re-save the file as UTF-8."
        ) from None
    if not text.strip():
        raise DataSourceError(f"{path}: the file is empty.")
    return text.lstrip("\ufeff")


def _label(value):
    """None for an empty label, else the label (int when it looks like one, else a stripped string)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    value = str(value).strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def read_delimited(path, text_column="text", label_column="label", delimiter=",", encoding="utf-8"):
    """`(texts, labels, lines)` of a CSV/TSV file with a header row; an empty label is None."""
    text = _decode(path, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise DataSourceError(f"{path}: the file is empty (no header row).")
    header = [h.strip() for h in header]
    for column in (text_column, label_column):
        if column not in header:
            raise DataSourceError(
                f"{path}, line 1: no column {column!r}. Columns: {', '.join(header)}. Set "
                f"`{'text_column' if column == text_column else 'label_column'}` to one of them."
            )
    t, y = header.index(text_column), header.index(label_column)
    texts, labels, lines = [], [], []
    for row in reader:
        line = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(t, y):
            missing = text_column if len(row) <= t else label_column
            raise DataSourceError(
                f"{path}, line {line}, column {missing!r}: missing value "
                f"({len(row)} of {len(header)} columns)."
            )
        if not row[t].strip():
            raise DataSourceError(f"{path}, line {line}, column {text_column!r}: empty text.")
        texts.append(row[t])
        labels.append(_label(row[y]))
        lines.append(line)
    if not texts:
        raise DataSourceError(f"{path}: no data rows after the header.")
    return texts, labels, lines


def read_jsonl(path, text_column="text", label_column="label", encoding="utf-8"):
    """`(texts, labels, lines)` of a JSON-lines file (one object a line); a null/empty/missing label is None."""
    texts, labels, lines, has_label = [], [], [], False
    for line, raw in enumerate(_decode(path, encoding).splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as error:
            raise DataSourceError(
                f"{path}, line {line}: not valid JSON ({error.msg} at character {error.colno})."
            ) from None
        if not isinstance(row, dict):
            raise DataSourceError(
                f"{path}, line {line}: expected a JSON object. Received: {type(row).__name__}"
            )
        if text_column not in row:
            raise DataSourceError(
                f"{path}, line {line}: no key {text_column!r}. Keys: {', '.join(row)}. "
                "Set `text_column`."
            )
        texts.append(str(row[text_column]))
        labels.append(_label(row.get(label_column)))
        has_label = has_label or label_column in row
        lines.append(line)
    if not texts:
        raise DataSourceError(f"{path}: the file is empty.")
    if not has_label:
        raise DataSourceError(
            f"{path}, line {lines[0]}: no key {label_column!r} in any row. Set `label_column`."
        )
    return texts, labels, lines


def _read_rows(paths, fmt, text_column, label_column, encoding):
    texts, labels, where = [], [], []
    for path in paths:
        if fmt == "jsonl":
            t, y, lines = read_jsonl(path, text_column, label_column, encoding)
        else:
            t, y, lines = read_delimited(
                path, text_column, label_column, "," if fmt == "csv" else "\t", encoding
            )
        texts += t
        labels += y
        where += [(path, line) for line in lines]
    return texts, labels, where


def read_image_folder(root, image_size=None):
    """`(images uint8 (n, h, w, c), labels, where)` from `root/<class name>/<image file>`.

    Images are decoded with TensorFlow and resized to `image_size` ([height, width]) when given;
    otherwise every image must have the first one's size.
    """
    import tensorflow as tf

    if not os.path.isdir(root):
        raise DataSourceError(f"{root}: not a folder (image_folder reads class sub-folders).")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DataSourceError(f"{root}: no class sub-folders (expected {root}/<class>/<image>).")
    images, labels, where = [], [], []
    for name in classes:
        for file in sorted(os.listdir(os.path.join(root, name))):
            if not file.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = os.path.join(root, name, file)
            try:
                image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
            except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
                raise DataSourceError(
                    f"{path}: not a readable image ({error.message.splitlines()[0]})."
                ) from None
            if image_size is not None:
                image = tf.cast(tf.image.resize(image, image_size), tf.uint8)
            image = image.numpy()
            if images and image.shape != images[0].shape:
                raise DataSourceError(
                    f"{path}: shape {image.shape} differs from {where[0][0]}'s {images[0].shape}; "
                    "set `image_size: [height, width]` to resize every image."
                )
            images.append(image)
            labels.append(name)
            where.append((path, None))
    if not images:
        raise DataSourceError(
            f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in its class sub-folders."
        )
    return np.stack(images), labels, where


_TF_DTYPES = {
    "string": "string",
    "bytes": "string",
    "int64": "int64",
    "int": "int64",
    "float32": "float32",
    "float": "float32",
}


def _feature_spec(features, key="features"):
    import tensorflow as tf

    spec = {}
    for name, value in features.items():
        if isinstance(value, str):
            dtype, shape = value, []
        elif isinstance(value, dict) and set(value) <= {"dtype", "shape"} and "dtype" in value:
            dtype, shape = value["dtype"], list(value.get("shape", []))
        else:
            raise DataSourceError(
                f"`{key}.{name}` must be a dtype (string, int64, float32) or "
                f"{{dtype: ..., shape: [...]}}. Received: {value!r}"
            )
        if dtype not in _TF_DTYPES:
            raise DataSourceError(
                f"`{key}.{name}` dtype must be one of {', '.join(_TF_DTYPES)}. Received: {dtype!r}"
            )
        spec[name] = tf.io.FixedLenFeature(
            shape, getattr(tf, _TF_DTYPES[dtype]), default_value=None
        )
    return spec


def read_tfrecord(
    paths, features, text_column="text", label_column="label", image_key=None, image_size=None
):
    """`(inputs, labels, where)` from TFRecord files of `tf.train.Example`s parsed with `features`.

    `features` maps feature names to a dtype (`string`, `int64`, `float32`) or `{dtype, shape}`.
    The inputs are `text_column` (strings), or `image_key`: encoded image bytes (decoded) or a float
    feature with a shape (used as is). A label of `""` (string) or `-1` (int) is unlabelled.
    """
    import tensorflow as tf

    spec = _feature_spec(features)
    key = image_key or text_column
    for name in (key, label_column):
        if name not in spec:
            raise DataSourceError(f"`features` has no {name!r}. Features: {', '.join(spec)}.")
    inputs, labels, where = [], [], []
    for path in paths:
        try:
            for index, record in enumerate(tf.data.TFRecordDataset(path)):
                try:
                    example = tf.io.parse_single_example(record, spec)
                except tf.errors.InvalidArgumentError as error:
                    raise DataSourceError(
                        f"{path}, record {index + 1}: does not match `features` "
                        f"({error.message.splitlines()[0]})."
                    ) from None
                value = example[key]
                if image_key and value.dtype == tf.string:
                    value = tf.io.decode_image(value, expand_animations=False)
                    if image_size is not None:
                        value = tf.cast(tf.image.resize(value, image_size), tf.uint8)
                value = value.numpy()
                inputs.append(value.decode("utf-8") if isinstance(value, bytes) else value)
                label = example[label_column].numpy()
                label = label.decode("utf-8") if isinstance(label, bytes) else label.item()
                labels.append(None if label in ("", -1) else _label(label))
                where.append((path, index + 1))
        except tf.errors.DataLossError as error:
            raise DataSourceError(
                f"{path}: not a TFRecord file or truncated ({error.message.splitlines()[0]})."
            ) from None
    if not inputs:
        raise DataSourceError(f"{', '.join(paths)}: no records.")
    return (np.asarray(inputs, dtype=object) if not image_key else np.stack(inputs)), labels, where


def read_tfds(name, data_dir, split, text_column="text", label_column="label", image_key=None):
    """`(inputs, labels, where, class_names)` of a TFDS dataset already prepared in a local `data_dir`."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(
            'format tfds needs tensorflow-datasets: pip install "keras-kd[tfds]"'
        ) from None
    if not os.path.isdir(data_dir):
        raise DataSourceError(
            f"`data_dir`: no such folder: {data_dir!r} (tfds is read locally, never downloaded)."
        )
    try:
        dataset, info = tfds.load(
            name, split=split, data_dir=data_dir, download=False, with_info=True
        )
    except Exception as error:  # tfds raises many types for a missing local copy
        raise DataSourceError(
            f"{data_dir}: no prepared TFDS dataset {name!r} split {split!r} "
            f"({' '.join(str(error).split())[:200]})."
        ) from None
    key = image_key or text_column
    inputs, labels = [], []
    for example in tfds.as_numpy(dataset):
        value = example[key]
        inputs.append(value.decode("utf-8") if isinstance(value, bytes) else value)
        labels.append(int(example[label_column]))
    names = getattr(info.features[label_column], "names", None)
    where = [(f"{name}[{split}]", i + 1) for i in range(len(inputs))]
    return (
        (np.asarray(inputs, dtype=object) if not image_key else np.stack(inputs)),
        labels,
        where,
        names,
    )


# ---------------------------------------------------------------- labels and splits


def encode_labels(
    train_labels, test_labels=(), test_where=(), label_column="label", class_names=None
):
    """`(y_train, y_test, class_names)`: int32 indices (-1 for unlabelled) into the sorted class names.

    A label in the test set that the training set never has is an error naming its file and line.
    """
    known = sorted(
        {label for label in train_labels if label is not None},
        key=lambda v: (isinstance(v, str), v),
    )
    if class_names is None:
        if not known:
            raise DataSourceError("The training data has no labelled rows.")
        class_names = known
    index = {label: i for i, label in enumerate(class_names)}
    for i, label in enumerate(test_labels):
        if label is not None and label not in index:
            path, line = test_where[i] if i < len(test_where) else ("the test data", None)
            at = f", line {line}" if line else ""
            raise DataSourceError(
                f"{path}{at}, column {label_column!r}: label {label!r} never appears in the training data "
                f"(training labels: {', '.join(map(str, class_names))})."
            )

    def encode(labels):
        return np.asarray(
            [-1 if label is None else index[label] for label in labels], dtype="int32"
        )

    return encode(train_labels), encode(test_labels), [str(c) for c in class_names]


def _take(x, indices):
    return x[indices] if isinstance(x, np.ndarray) else np.asarray(x, dtype=object)[indices]


def load_source(
    format,
    train=None,
    test=None,
    unlabelled=None,
    test_fraction=None,
    text_column="text",
    label_column="label",
    image_size=None,
    features=None,
    image_key=None,
    encoding="utf-8",
    name=None,
    data_dir=None,
    train_split="train",
    test_split="test",
    languages=None,
    english_column="english",
    translation_column="translation",
    seed=0,
):
    """Load a data source (see the module docstring); returns a `SourceData`."""
    from keras_kd.data.datasets import stratified_split

    if format not in FORMATS:
        raise DataSourceError(
            f"`format` must be one of {', '.join(FORMATS)}. Received: format={format!r}"
        )
    if format == "parallel_text":
        return _load_parallel(
            train, test, test_fraction, languages, english_column, translation_column, seed
        )
    image_size = list(image_size) if image_size is not None else None
    class_names = None

    def read(spec, key, split=None):
        if format == "tfds":
            inputs, labels, where, names = read_tfds(
                name, data_dir, split, text_column, label_column, image_key
            )
            return inputs, labels, where, names
        paths = expand_paths(spec, key)
        if format in ("csv", "tsv", "jsonl"):
            texts, labels, where = _read_rows(paths, format, text_column, label_column, encoding)
            return np.asarray(texts, dtype=object), labels, where, None
        if format == "tfrecord":
            return (
                *read_tfrecord(paths, features, text_column, label_column, image_key, image_size),
                None,
            )
        parts = [read_image_folder(p, image_size) for p in paths]
        return (
            np.concatenate([p[0] for p in parts]),
            sum((p[1] for p in parts), []),
            sum((p[2] for p in parts), []),
            None,
        )

    x_train, labels_train, _, class_names = read(train, "train", train_split)
    if format == "tfds" and test is None and test_fraction is None:
        x_test, labels_test, where_test, _ = read(None, "test", test_split)
    elif test is not None:
        x_test, labels_test, where_test, _ = read(test, "test", test_split)
    else:
        x_test, labels_test, where_test = None, [], []
    if unlabelled is not None:
        x_extra, _, _, _ = read(unlabelled, "unlabelled")
    else:
        x_extra = None
    y_train, y_test, class_names = encode_labels(
        labels_train, labels_test, where_test, label_column, class_names
    )
    labelled = np.flatnonzero(y_train >= 0)
    x_unlabelled = _take(x_train, np.flatnonzero(y_train < 0))
    if x_extra is not None:
        x_unlabelled = np.concatenate([x_unlabelled, x_extra]) if len(x_unlabelled) else x_extra
    x_train, y_train = _take(x_train, labelled), y_train[labelled]
    if x_test is None:
        fraction = 0.2 if test_fraction is None else float(test_fraction)
        fit, held = stratified_split(y_train, test_size=fraction, seed=seed)
        if len(held) == 0 or len(fit) == 0:
            raise DataSourceError(
                f"`test_fraction={fraction}` of {len(y_train)} labelled rows leaves an empty split; "
                "add rows or give a `test` file."
            )
        x_train, y_train, x_test, y_test = (
            _take(x_train, fit),
            y_train[fit],
            _take(x_train, held),
            y_train[held],
        )
    else:
        keep = np.flatnonzero(y_test >= 0)  # unlabelled test rows cannot be scored
        x_test, y_test = _take(x_test, keep), y_test[keep]
    kind = (
        "text"
        if format in ("csv", "tsv", "jsonl") or (format in ("tfrecord", "tfds") and not image_key)
        else "image"
    )
    if kind == "image" and np.asarray(x_train).dtype != np.uint8 and format != "image_folder":
        kind = "features" if np.asarray(x_train).ndim == 2 else "image"
    return SourceData(
        kind,
        x_train,
        y_train,
        x_test,
        y_test,
        class_names,
        x_unlabelled if len(x_unlabelled) else None,
    )


def _load_parallel(train, test, test_fraction, languages, english_column, translation_column, seed):
    """English/translation pairs from a TSV (`keras_kd.data.parallel.read_parallel_file`) or installed
    catalogs (`load_parallel(languages)`); a seeded `test_fraction` of pairs is held out by English string."""
    from keras_kd.data import parallel

    def read(spec, key):
        pairs = []
        for path in expand_paths(spec, key):
            _decode(path, "utf-8")  # empty / undecodable files: an error naming the line
            try:
                pairs += parallel.read_parallel_file(
                    path, english_column, translation_column, skip_header=True
                )
            except ValueError as error:  # e.g. a missing column in the header
                raise DataSourceError(f"{path}: {error}") from None
        return pairs

    if train is not None:
        pairs = read(train, "train")
    else:
        by_language = parallel.load_parallel(list(languages))
        pairs = [pair for language in sorted(by_language) for pair in by_language[language]]
    if not pairs:
        raise DataSourceError("parallel_text: no (english, translation) pairs found.")
    if test is not None:
        train_pairs, test_pairs = pairs, read(test, "test")
    else:
        english = sorted({e for e, _ in pairs})
        rng = np.random.default_rng(seed)
        n_test = max(
            1, int(round(len(english) * (0.1 if test_fraction is None else float(test_fraction))))
        )
        held = set(rng.permutation(np.asarray(english, dtype=object))[:n_test])
        train_pairs = [p for p in pairs if p[0] not in held]
        test_pairs = [p for p in pairs if p[0] in held]
    empty = np.zeros((0,), "int32")
    return SourceData(
        "parallel",
        np.asarray(train_pairs, dtype=object).reshape(-1, 2),
        empty,
        np.asarray(test_pairs, dtype=object).reshape(-1, 2),
        empty,
        [],
    )
