"""Token augmentations (masking, deletion, swap, n-gram sampling) and pseudo-labelling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd.data import augment, cache, keys

CLS, SEP, PAD, MASK = 101, 102, 0, 103
IDS = np.array(
    [
        [CLS, 10, 11, 12, 13, 14, 15, 16, SEP, PAD, PAD, PAD],
        [CLS, 20, 21, SEP, PAD, PAD, PAD, PAD, PAD, PAD, PAD, PAD],
    ],
    dtype="int32",
)
SPECIALS = (CLS, SEP, PAD)


def _real(row):
    return [t for t in row if t not in SPECIALS]


def test_mask_tokens_rates_and_specials():
    assert np.array_equal(augment.mask_tokens(IDS, MASK, rate=0.0, special_ids=SPECIALS), IDS)
    full = augment.mask_tokens(IDS, MASK, rate=1.0, special_ids=SPECIALS).numpy()
    expected = np.where(np.isin(IDS, SPECIALS), IDS, MASK)
    np.testing.assert_array_equal(full, expected)
    big = np.tile(IDS[:1], (500, 1))
    half = augment.mask_tokens(big, MASK, rate=0.3, special_ids=SPECIALS, seed=1).numpy()
    assert 0.25 < (half == MASK).sum() / (500 * 7) < 0.35
    with pytest.raises(ValueError, match=r"`rate` must be in \[0, 1\]. Received: rate=1.5"):
        augment.mask_tokens(IDS, MASK, rate=1.5)


def test_delete_tokens_shifts_and_repads():
    out = augment.delete_tokens(IDS, rate=1.0, special_ids=SPECIALS).numpy()
    np.testing.assert_array_equal(out[0], [CLS, SEP] + [PAD] * 10)
    np.testing.assert_array_equal(augment.delete_tokens(IDS, rate=0.0, special_ids=SPECIALS), IDS)
    some = augment.delete_tokens(
        np.tile(IDS[:1], (50, 1)), rate=0.5, special_ids=SPECIALS, seed=2
    ).numpy()
    for row in some:
        kept = _real(row)
        assert kept == sorted(kept) and set(kept) <= set(
            range(10, 17)
        )  # order kept, nothing invented
        assert row[0] == CLS and list(row).index(SEP) == len(kept) + 1
    assert 2.5 < np.mean([len(_real(r)) for r in some]) < 4.5


def test_swap_tokens_is_a_permutation_of_real_tokens():
    out = augment.swap_tokens(
        np.tile(IDS, (20, 1)), num_swaps=2, special_ids=SPECIALS, seed=3
    ).numpy()
    for row, original in zip(out, np.tile(IDS, (20, 1)), strict=True):
        assert sorted(_real(row)) == sorted(_real(original))
        np.testing.assert_array_equal(
            np.isin(row, SPECIALS), np.isin(original, SPECIALS)
        )  # specials stay put
    assert any(_real(r) != _real(IDS[0]) for r in out[::2])
    one_token = np.array([[CLS, 5, SEP, PAD]], "int32")
    np.testing.assert_array_equal(
        augment.swap_tokens(one_token, 3, special_ids=SPECIALS), one_token
    )


def test_sample_ngram_keeps_a_contiguous_window():
    out = augment.sample_ngram(
        np.tile(IDS[:1], (50, 1)), rate=1.0, max_n=3, special_ids=SPECIALS, seed=4
    ).numpy()
    for row in out:
        kept = _real(row)
        assert 1 <= len(kept) <= 3 and kept == list(range(kept[0], kept[0] + len(kept)))
        assert row[0] == CLS and row[len(kept) + 1] == SEP
    np.testing.assert_array_equal(augment.sample_ngram(IDS, rate=0.0, special_ids=SPECIALS), IDS)


def test_token_augmentation_dict_and_config():
    aug = augment.TokenAugmentation(
        mask_id=MASK, mask_rate=1.0, delete_rate=0.0, num_swaps=1, special_ids=SPECIALS
    )
    out = aug({"token_ids": IDS, "padding_mask": IDS != PAD})
    np.testing.assert_array_equal(out["token_ids"], np.where(np.isin(IDS, SPECIALS), IDS, MASK))
    np.testing.assert_array_equal(out["padding_mask"], IDS != PAD)
    clone = augment.TokenAugmentation.from_config(aug.get_config())
    assert clone.get_config() == aug.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(aug))
    assert restored.get_config() == aug.get_config()
    with pytest.raises(ValueError, match=r"`mask_id` is required when `mask_rate` > 0"):
        augment.TokenAugmentation(mask_rate=0.1)
    with pytest.raises(
        ValueError, match=r"`delete_rate` must be in \[0, 1\]. Received: delete_rate=-0.1"
    ):
        augment.TokenAugmentation(delete_rate=-0.1)


def _teacher():
    inputs = keras.Input((12,), dtype="int32")
    h = keras.layers.Embedding(200, 4)(inputs)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h))
    return keras.Model(inputs, logits)


def test_augment_student_view_leaves_cached_outputs():
    teacher = _teacher()
    ds = tf.data.Dataset.from_tensor_slices((np.tile(IDS, (4, 1)), np.zeros(8, "int32"))).batch(4)
    cached = cache.cache_teacher_outputs(teacher, ds, verbose=0)
    aug = augment.TokenAugmentation(mask_id=MASK, mask_rate=1.0, special_ids=SPECIALS)
    (clean_x, _), *_ = list(cached)
    (aug_x, _), *_ = list(augment.augment_student_view(cached, aug))
    np.testing.assert_array_equal(
        aug_x[keys.TEACHER_OUTPUTS]["logits"], clean_x[keys.TEACHER_OUTPUTS]["logits"]
    )
    assert (aug_x[keys.STUDENT_INPUTS].numpy() == MASK).sum() == 2 * (7 + 2)
    expanded = list(augment.expand_with_augmentations(ds, aug, copies=2))
    assert len(expanded) == 6 and (expanded[3][0].numpy() == MASK).sum() == 2 * (7 + 2)


def test_pseudo_label_unlabelled_text():
    teacher = _teacher()
    x = np.random.default_rng(0).integers(1, 200, size=(40, 12)).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(8)
    labelled = list(augment.pseudo_label(teacher, ds, verbose=0))
    logits = teacher.predict(x, verbose=0)
    got_x = np.concatenate([b[0][keys.STUDENT_INPUTS] for b in labelled])
    got_y = np.concatenate([b[1] for b in labelled])
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, logits.argmax(-1))
    probs = tf.nn.softmax(logits).numpy().max(-1)
    threshold = float(np.median(probs))
    confident = list(
        augment.pseudo_label(teacher, ds, min_confidence=threshold, hard_labels=False, verbose=0)
    )
    kept = np.concatenate([b[keys.STUDENT_INPUTS] for b in confident])
    np.testing.assert_array_equal(kept, x[probs >= threshold])
