"""The English example's unlabelled-text reader (sentences of movie reviews inside a source archive)."""

import io
import pathlib
import sys
import tarfile

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _sdist(path, csv_text):
    import en_sentiment_bert

    data = csv_text.encode("utf-8-sig")
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(en_sentiment_bert.UNLABELLED_MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_load_unlabelled_splits_filters_dedupes_and_excludes(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    import en_sentiment_bert

    csv_text = (
        '"1","the film is a joy to watch . \n'
        'too short \n'
        'the  film is a joy to watch . \n'            # same sentence after whitespace folding
        'The Rock Is Destined To Shine . \n"\n'      # equals a Rotten Tomatoes review (case folded)
        '"0","a dull , lifeless and overlong mess ."\n'
    )
    path = _sdist(tmp_path / "p.tar.gz", csv_text)
    sentences = en_sentiment_bert.load_unlabelled(path, exclude=["the rock is destined to shine ."])
    assert sorted(sentences) == ["a dull , lifeless and overlong mess .", "the film is a joy to watch ."]
    assert en_sentiment_bert.load_unlabelled(path, exclude=["the rock is destined to shine ."]) == sentences


class _CountingTeacher:
    """Stands in for the MiniLM teacher: ids = word lengths + 1000, logits = [sum of ids, count], one pass counted."""

    def __init__(self):
        self.passes = 0

    def tokenize(self, texts):
        rows = [[1000 + len(w) for w in t.decode().split()][:8] for t in texts.numpy()]
        return {"token_ids": [r + [0] * (8 - len(r)) for r in rows]}

    def __call__(self, x, training=False):
        import tensorflow as tf

        self.passes += 1
        ids = tf.cast(x["token_ids"], tf.float32)
        logits = tf.stack([tf.reduce_sum(ids, 1), tf.reduce_sum(tf.cast(x["padding_mask"], tf.float32), 1)], 1)
        return {"logits": logits, "embedding": tf.zeros((tf.shape(ids)[0], 384))}


def test_labelled_cache_is_reused_only_for_the_same_texts(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    import en_sentiment_bert
    import numpy as np

    teacher, path = _CountingTeacher(), tmp_path / "part.npz"
    labels = np.array([1, -1], "int32")
    first = en_sentiment_bert._labelled(teacher, path, ["a bb", "ccc"], labels, -2, "test")
    np.testing.assert_array_equal(first["token_ids"], [[1001, 1002, 0, 0, 0, 0, 0, 0], [1003, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(first["logits"], [[2003.0, 2.0], [1003.0, 1.0]])
    np.testing.assert_array_equal(first["copy"], [-2, -2])
    np.testing.assert_array_equal(first["labels"], labels)
    traced = teacher.passes  # tf.function traces the teacher once per padded width
    again = en_sentiment_bert._labelled(teacher, path, ["x yy", "zzz"], labels, -2, "test")  # same ids: cached
    assert teacher.passes == traced
    np.testing.assert_allclose(again["logits"], first["logits"])
    changed = en_sentiment_bert._labelled(teacher, path, ["a bb cc", "ccc"], labels, -2, "test")  # stale: relabelled
    assert teacher.passes > traced
    np.testing.assert_allclose(changed["logits"], [[3005.0, 3.0], [1003.0, 1.0]])
