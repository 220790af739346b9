"""`keras_kd.data.sources`: loaders of the user's own files, and their error messages."""

import json

import numpy as np
import pytest

from keras_kd.data import sources
from keras_kd.data.sources import DataSourceError, load_source


def _csv(path, rows, header="text,label", delimiter=","):
    path.write_text("\n".join([header] + [delimiter.join(r) for r in rows]) + "\n", encoding="utf-8")
    return path


ROWS = [(f"good {i}", "pos") for i in range(10)] + [(f"bad {i}", "neg") for i in range(10)]


def test_csv_string_labels_stratified_seeded_split(tmp_path):
    path = _csv(tmp_path / "train.csv", ROWS + [("no label", "")])
    data = load_source("csv", train=str(path), test_fraction=0.2, seed=3)
    assert data.kind == "text" and data.class_names == ["neg", "pos"]
    assert len(data.y_train) == 16 and len(data.y_test) == 4
    assert np.bincount(data.y_test).tolist() == [2, 2]  # stratified
    assert list(data.x_unlabelled) == ["no label"]
    for x, y in zip(data.x_train, data.y_train, strict=True):
        assert data.class_names[y] == ("pos" if x.startswith("good") else "neg")
    again = load_source("csv", train=str(path), test_fraction=0.2, seed=3)
    assert list(again.x_test) == list(data.x_test)
    other = load_source("csv", train=str(path), test_fraction=0.2, seed=4)
    assert list(other.x_test) != list(data.x_test)


def test_tsv_and_jsonl_with_a_test_file_and_int_labels(tmp_path):
    train = _csv(tmp_path / "train.tsv", [(f"t{i}", str(i % 3)) for i in range(9)],
                 header="text\tlabel", delimiter="\t")
    test = _csv(tmp_path / "test.tsv", [("u", "2"), ("v", "0")], header="text\tlabel", delimiter="\t")
    data = load_source("tsv", train=str(train), test=str(test))
    assert data.class_names == ["0", "1", "2"] and data.y_test.tolist() == [2, 0]
    lines = [json.dumps({"text": f"x{i}", "label": ["cat", "dog"][i % 2]}) for i in range(6)]
    lines.append(json.dumps({"text": "unknown", "label": None}))
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    data = load_source("jsonl", train=str(tmp_path / "*.jsonl"), test_fraction=0.5)  # round(1.5) = 2 per class
    assert data.class_names == ["cat", "dog"] and len(data.y_test) == 4 and list(data.x_unlabelled) == ["unknown"]


@pytest.mark.parametrize("content, kwargs, message", [
    ("text,y\na,1\n", {}, r"train.csv, line 1: no column 'label'. Columns: text, y. Set `label_column`"),
    ("", {}, r"train.csv: the file is empty"),
    ("text,label\n", {}, r"train.csv: no data rows after the header"),
    ("text,label\nok,1\n\xff\xfe,0\n", {}, r"train.csv, line 3, character 1: bytes b'\\xff' are not valid utf-8; "
                                           r"set `encoding`"),
    ("text,label\nok\n", {}, r"train.csv, line 2, column 'label': missing value"),
])
def test_bad_files_name_file_line_and_column(tmp_path, content, kwargs, message):
    path = tmp_path / "train.csv"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DataSourceError, match=message):
        load_source("csv", train=str(path), **kwargs)


def test_label_seen_only_in_test_and_missing_files(tmp_path):
    train = _csv(tmp_path / "train.csv", ROWS)
    test = _csv(tmp_path / "test.csv", [("x", "pos"), ("y", "neutral")])
    with pytest.raises(DataSourceError, match=r"test.csv, line 3, column 'label': label 'neutral' never appears in "
                                              r"the training data \(training labels: neg, pos\)"):
        load_source("csv", train=str(train), test=str(test))
    with pytest.raises(DataSourceError, match=r"`train`: no file matches '.*nothing\*.csv'"):
        load_source("csv", train=str(tmp_path / "nothing*.csv"))
    with pytest.raises(DataSourceError, match=r"`train`: no such file or folder: '.*missing.csv'"):
        load_source("csv", train=str(tmp_path / "missing.csv"))


def _image_folder(root, classes=("cat", "dog", "fish"), per_class=4, size=(6, 5)):
    import tensorflow as tf

    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((*size, 3), 40 * c + i, "uint8")
            (root / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    return root


def test_image_folder_reads_class_subfolders_and_resizes(tmp_path):
    root = _image_folder(tmp_path / "images")
    data = load_source("image_folder", train=str(root), test_fraction=0.25, image_size=[4, 4])
    assert data.kind == "image" and data.class_names == ["cat", "dog", "fish"]
    assert data.x_train.shape == (9, 4, 4, 3) and data.x_train.dtype == np.uint8
    assert np.bincount(data.y_test).tolist() == [1, 1, 1]
    # pixel values follow the class folder
    for x, y in zip(data.x_train, data.y_train, strict=True):
        assert 40 * y <= x[0, 0, 0] < 40 * y + 4
    with pytest.raises(DataSourceError, match="no class sub-folders"):
        (tmp_path / "empty").mkdir()
        load_source("image_folder", train=str(tmp_path / "empty"))


def test_tfrecord_with_a_feature_spec(tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(8):
            feature = {"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"t{i}".encode()])),
                       "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[[b"a", b"b"][i % 2]]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    data = load_source("tfrecord", train=path, features={"text": "string", "label": "string"}, test_fraction=0.25)
    assert data.kind == "text" and data.class_names == ["a", "b"] and len(data.y_train) == 6
    with pytest.raises(DataSourceError, match=r"`features` has no 'label'"):
        load_source("tfrecord", train=path, features={"text": "string"})
    with pytest.raises(DataSourceError, match=r"data.tfrecord, record 1: does not match `features`"):
        load_source("tfrecord", train=path, features={"text": "string", "label": "int64"})


def test_parallel_text_tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    rows = [f"english {i}\tanderes {i}" for i in range(20)]
    path.write_text("english\ttranslation\n" + "\n".join(rows) + "\n")
    data = load_source("parallel_text", train=str(path), test_fraction=0.25, seed=0)
    assert data.kind == "parallel" and data.x_train.shape == (15, 2) and data.x_test.shape == (5, 2)
    assert not {e for e, _ in data.x_train} & {e for e, _ in data.x_test}


def test_exported_from_keras_kd_data():
    import keras_kd.data

    assert keras_kd.data.load_source is sources.load_source
