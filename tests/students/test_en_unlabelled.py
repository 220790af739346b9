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
