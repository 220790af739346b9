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


# ---------------------------------------------------------------- images
def _images(batch=3, size=5, channels=1):
    return np.arange(batch * size * size * channels, dtype="float32").reshape(batch, size, size, channels) + 1.0


def test_shift_images_matches_numpy_pad_and_crop():
    images = _images()
    offsets = np.array([[0, 0], [2, 2], [1, 2]], "int32")
    expected = []
    for image, (top, left) in zip(images, offsets, strict=True):
        padded = np.pad(image, [(1, 1), (1, 1), (0, 0)], constant_values=-1.0)
        expected.append(padded[top : top + 5, left : left + 5])
    result = augment.shift_images(images, offsets, max_shift=1, fill_value=-1.0).numpy()
    np.testing.assert_array_equal(result, np.stack(expected))
    # Hand-checked corner: offset (0, 0) moves the content one pixel down and right.
    np.testing.assert_array_equal(result[0, 0, :, 0], [-1, -1, -1, -1, -1])
    np.testing.assert_array_equal(result[0, 1, :, 0], [-1, 1, 2, 3, 4])
    np.testing.assert_array_equal(augment.shift_images(images, [[1, 1]] * 3, 1).numpy(), images)


def test_flip_mix_and_cut_match_numpy():
    images = _images()
    flipped = augment.flip_images(images, [True, False, True]).numpy()
    np.testing.assert_array_equal(flipped[0], images[0][:, ::-1])
    np.testing.assert_array_equal(flipped[1], images[1])

    mixed = augment.mix_images(images, [2, 0, 1], [0.25, 1.0, 0.5]).numpy()
    np.testing.assert_allclose(mixed[0], 0.25 * images[0] + 0.75 * images[2])
    np.testing.assert_allclose(mixed[1], images[1])
    np.testing.assert_allclose(mixed[2], 0.5 * images[2] + 0.5 * images[1])

    cut = augment.cut_and_paste(images, [1, 2, 0], [[1, 2, 3, 5], [0, 0, 0, 0], [0, 0, 5, 5]]).numpy()
    expected = images[0].copy()
    expected[1:3, 2:5] = images[1][1:3, 2:5]
    np.testing.assert_array_equal(cut[0], expected)
    np.testing.assert_array_equal(cut[1], images[1])  # empty box
    np.testing.assert_array_equal(cut[2], images[0])  # whole image


def test_random_shift_draws_offsets_in_range_and_is_seeded():
    images = _images(batch=8, size=6)
    result = augment.RandomShift(2, seed=3)(images).numpy()
    for image, out in zip(images, result, strict=True):
        padded = np.pad(image, [(2, 2), (2, 2), (0, 0)])
        matches = [(t, c) for t in range(5) for c in range(5) if np.array_equal(padded[t : t + 6, c : c + 6], out)]
        assert matches, "each output must be a crop of the padded image"
    again = augment.RandomShift(2, seed=3)(images).numpy()
    np.testing.assert_array_equal(result, again)
    layer = augment.RandomShift(2, seed=3)
    first, second = layer(images).numpy(), layer(images).numpy()
    assert not np.array_equal(first, second)  # a new view per call
    np.testing.assert_array_equal(layer(images, seed=[7, 1]).numpy(), layer(images, seed=[7, 1]).numpy())


def test_flat_and_integer_inputs_keep_shape_and_dtype():
    flat = np.arange(2 * 16, dtype="uint8").reshape(2, 16)
    result = augment.RandomShift(1, seed=0, image_shape=(4, 4))(flat)
    assert result.shape == (2, 16) and result.dtype == tf.uint8
    assert set(np.unique(result.numpy())) <= set(np.unique(flat)) | {0}
    with pytest.raises(ValueError, match="image_shape"):
        augment.RandomFlip(seed=0)(flat.astype("float32"))
    with pytest.raises(ValueError, match="`max_shift` must be a non-negative integer"):
        augment.RandomShift(-1)
    with pytest.raises(ValueError, match=r"`rate` must be in \[0, 1\]"):
        augment.RandomFlip(rate=2.0)


def test_mixup_outputs_are_convex_combinations_of_two_examples():
    images = np.random.default_rng(0).random((16, 4, 4, 1)).astype("float32")
    layer = augment.MixUp(seed=0)
    assert layer.mixes_examples and not augment.RandomShift().mixes_examples
    mixed = layer(images).numpy()
    weights = []
    for out in mixed:
        found = False
        for i in range(16):
            for j in range(16):
                d = images[i] - images[j]
                if i == j or not np.any(d):
                    continue
                w = float(np.sum((out - images[j]) * d) / np.sum(d * d))
                if 0 <= w <= 1 and np.allclose(out, w * images[i] + (1 - w) * images[j], atol=1e-5):
                    weights.append(w)
                    found = True
                    break
            if found:
                break
        assert found or any(np.allclose(out, image) for image in images)
    assert len(weights) >= 8 and 0.2 < np.mean(weights) < 0.8  # Beta(1, 1) has mean 0.5


def test_cutmix_pastes_a_box_from_a_partner():
    images = np.stack([np.full((8, 8, 1), float(i)) for i in range(6)]).astype("float32")
    layer = augment.CutMix(seed=1)
    assert layer.mixes_examples
    cut = layer(images).numpy()
    for i, out in enumerate(cut):
        values = np.unique(out)
        assert len(values) <= 2 and i in values or len(values) == 1
        pasted = out[..., 0] != i
        if pasted.any():  # the pasted region is one axis-aligned box
            rows, cols = np.where(pasted)
            assert pasted[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()


def test_compose_config_round_trip_and_spec():
    composed = augment.image_augmentation("shift+flip+mixup", seed=5, image_shape=(4, 4))
    assert isinstance(composed, augment.Compose) and composed.mixes_examples
    assert [type(a).__name__ for a in composed.augmentations] == ["RandomShift", "RandomFlip", "MixUp"]
    assert [a.seed for a in composed.augmentations] == [5, 6, 7]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(composed))
    assert restored.mixes_examples and restored.augmentations[0].image_shape == (4, 4)
    x = np.random.default_rng(1).random((4, 16)).astype("float32")
    np.testing.assert_array_equal(composed(x, seed=[1, 2]).numpy(), restored(x, seed=[1, 2]).numpy())
    assert not augment.image_augmentation([{"name": "shift", "max_shift": 3}, "flip"]).mixes_examples
    assert augment.image_augmentation("none") is None
    with pytest.raises(ValueError, match="Unknown image augmentation 'rotate'"):
        augment.image_augmentation("shift+rotate")


class _RecordInputs(keras.layers.Layer):
    """Stores the last batch it saw in a variable (readable after a compiled step)."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.seen = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="seen")

    def call(self, inputs):
        self.seen.assign(inputs)
        return inputs


def _recording_model(batch, name):
    inputs = keras.Input((6, 6, 1), batch_size=batch)
    recorder = _RecordInputs((batch, 6, 6, 1), name=f"{name}_record")
    x = keras.layers.Flatten()(recorder(inputs))
    return keras.Model(inputs, keras.layers.Dense(3)(x), name=name), recorder


@pytest.mark.parametrize("spec", ["shift+flip+mixup", "cutmix"])
def test_teacher_and_student_see_bit_identical_views(spec):
    import keras_kd

    batch = 8
    x = np.random.default_rng(0).random((batch, 6, 6, 1)).astype("float32")
    y = np.arange(batch) % 3
    teacher, teacher_seen = _recording_model(batch, "teacher")
    student, student_seen = _recording_model(batch, "student")
    distiller = keras_kd.Distiller(student, teacher, augmentation=augment.image_augmentation(spec, seed=0))
    distiller.compile(optimizer="adam", jit_compile=False)
    distiller.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
    seen_by_teacher, seen_by_student = teacher_seen.seen.numpy(), student_seen.seen.numpy()
    np.testing.assert_array_equal(seen_by_teacher, seen_by_student)  # bit-identical, not just close
    assert not np.array_equal(seen_by_student, x)  # and it is an augmented view


@pytest.mark.parametrize("concentration", [0.4, 1.0, 2.0])
def test_beta_draws_have_the_beta_moments(concentration):
    draws = augment._beta([20000], concentration, tf.constant([3, 4], "int64")).numpy()
    assert draws.min() >= 0 and draws.max() <= 1
    assert abs(draws.mean() - 0.5) < 0.01
    np.testing.assert_allclose(draws.var(), 1 / (4 * (2 * concentration + 1)), rtol=0.05)  # Var Beta(c, c)


def test_image_augmentations_compile_under_xla():
    x = np.random.default_rng(0).random((4, 6, 6, 1)).astype("float32")
    layer = augment.image_augmentation("shift+flip+mixup+cutmix", seed=0)
    compiled = tf.function(lambda images, seed: layer(images, seed=seed), jit_compile=True)
    seed = tf.constant([1, 2], "int64")
    # XLA may use another random-bit algorithm than the CPU kernels: same seed, same view *within* a mode.
    result = compiled(x, seed).numpy()
    np.testing.assert_array_equal(result, compiled(x, seed).numpy())
    assert result.shape == x.shape and np.isfinite(result).all() and 0 <= result.min() <= result.max() <= 1


def test_expand_with_augmentations_gives_different_copies():
    # Each dataset.map re-traces the augmentation with the same op seeds: copies must be reseeded.
    import numpy as np
    import tensorflow as tf

    from keras_kd.data.augment import TokenAugmentation, expand_with_augmentations

    x = (np.arange(40 * 20).reshape(40, 20) % 50 + 3).astype("int32")
    for seed in (0, None):
        augmentation = TokenAugmentation(delete_rate=0.2, num_swaps=2, seed=seed)
        out = np.concatenate(list(expand_with_augmentations(
            tf.data.Dataset.from_tensor_slices(x).batch(10), augmentation, copies=3).as_numpy_iterator()))
        original, *copies = out.reshape(4, 40, 20)
        np.testing.assert_array_equal(original, x)
        assert not np.array_equal(copies[0], copies[1]) and not np.array_equal(copies[1], copies[2]), seed
        assert augmentation.seed == seed  # the caller's augmentation is not changed


# ---------------------------------------------------------------- label mixing (scratch baselines)
def test_mix_labels_and_box_fraction_match_hand_computed_values():
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], "float32")
    mixed = augment.mix_labels(labels, [1, 2, 0], [0.75, 0.5, 0.0]).numpy()
    # 0.75·[1, 0] + 0.25·[0, 1];  0.5·[0, 1] + 0.5·[.5, .5];  0·[.5, .5] + 1·[1, 0]
    np.testing.assert_allclose(mixed, [[0.75, 0.25], [0.25, 0.75], [1.0, 0.0]])
    fractions = augment.box_fraction([[0, 0, 2, 2], [1, 1, 4, 3], [2, 2, 2, 4]], 4, 4).numpy()
    np.testing.assert_allclose(fractions, [4 / 16, 6 / 16, 0.0])


@pytest.mark.parametrize("layer_class", [augment.MixUp, augment.CutMix])
def test_mixing_a_labelled_batch_mixes_labels_with_the_image_weights(layer_class):
    # Image i is filled with its class id c_i: after mixing, an image's mean pixel is
    # w·c_i + (1 - w)·c_partner, which must equal the expected class id under its mixed label.
    classes = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 3], "int32")
    images = np.stack([np.full((8, 8, 1), float(c)) for c in classes]).astype("float32")
    layer = layer_class(num_classes=10, seed=4)
    out = layer({"images": images, "labels": classes}, seed=[5, 6])
    assert set(out) == {"images", "labels"}
    labels = out["labels"].numpy()
    assert labels.shape == (12, 10)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    assert (labels > 0).sum(axis=1).max() <= 2  # at most two classes per example
    np.testing.assert_allclose(out["images"].numpy().mean(axis=(1, 2, 3)), labels @ np.arange(10), atol=1e-5)
    assert not np.allclose(labels, np.eye(10)[classes])  # something was mixed
    # The images are the ones the same draw gives on an image tensor (the input-only mode for KD).
    np.testing.assert_array_equal(out["images"].numpy(), layer(images, seed=[5, 6]).numpy())
    # One-hot labels in, the same mixture out.
    onehot = layer({"images": images, "labels": np.eye(10, dtype="float32")[classes]}, seed=[5, 6])
    np.testing.assert_allclose(onehot["labels"].numpy(), labels, rtol=1e-6)


def test_labelled_mixing_errors_and_composition():
    images = np.random.default_rng(0).random((4, 6, 6, 1)).astype("float32")
    with pytest.raises(ValueError, match="integer labels of shape \\(4,\\); mixing needs one-hot"):
        augment.MixUp(seed=0)({"images": images, "labels": np.arange(4)})
    with pytest.raises(ValueError, match="needs `labels` next to `images`"):
        augment.CutMix(seed=0)({"images": images})
    with pytest.raises(ValueError, match="`num_classes` must be an integer >= 2 or None. Received: num_classes=1"):
        augment.MixUp(num_classes=1)
    with pytest.raises(ValueError, match=r"labels of shape \(batch, classes\)"):
        augment.MixUp(seed=0)({"images": images, "labels": np.zeros((4, 2, 2), "float32")})
    # Shift/flip move the images and pass labels through; mixup then mixes both.
    composed = augment.image_augmentation(["shift", "flip", {"name": "mixup", "num_classes": 3}], seed=1)
    out = composed({"images": images, "labels": np.array([0, 1, 2, 1])}, seed=[1, 2])
    assert out["images"].shape == images.shape and out["labels"].shape == (4, 3)
    np.testing.assert_array_equal(out["images"].numpy(), composed(images, seed=[1, 2]).numpy())
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(composed))
    assert restored.augmentations[2].num_classes == 3


def test_augmented_copies_are_reproducible_with_the_same_seeds():
    """Every copy's random draws follow the element order: the same seeds give the same transfer set
    (the batches of a parallel map would draw from the shared random state in thread order)."""
    ids = np.random.default_rng(0).integers(1, 8192, size=(4096, 128)).astype("int32")

    def transfer_set():
        keras.utils.set_random_seed(0)
        augmentation = augment.TokenAugmentation(delete_rate=0.1, num_swaps=2, ngram_rate=0.25, max_n=64, seed=0)
        dataset = tf.data.Dataset.from_tensor_slices(ids).batch(256)
        return np.concatenate(list(augment.expand_with_augmentations(dataset, augmentation, copies=4).as_numpy_iterator()))

    first, second = transfer_set(), transfer_set()
    np.testing.assert_array_equal(first[:4096], ids)  # the originals first
    assert not np.array_equal(first[4096:8192], first[8192:12288])  # copies differ from each other
    np.testing.assert_array_equal(first, second)


# ---------------------------------------------------------------- copies made from the raw text


def test_augment_text_follows_the_generator_draws():
    """A fake generator makes each draw explicit: n-gram sampling keeps chars [1, 5), deletion drops the
    second survivor, one swap exchanges positions 0 and 1."""
    from keras_kd.data.augment import augment_text

    class Draws:
        def __init__(self, uniforms, integers):
            self.uniforms, self.ints = list(uniforms), list(integers)

        def random(self):
            return self.uniforms.pop(0)

        def integers(self, low, high):
            value = self.ints.pop(0)
            assert low <= value < high
            return value

    # n-gram draw 0.1 < 0.25 -> n = 4 (low bound max(2, 7 // 3) = 2), start 1 -> "bcde";
    # deletion draws per char: keep, drop, keep, keep -> "bde"; swap at 0 -> "dbe"
    rng = Draws([0.1, 0.9, 0.05, 0.5, 0.7], [4, 1, 0])
    assert augment_text("abcdefg", rng, delete_rate=0.1, num_swaps=1, ngram_rate=0.25) == "dbe"
    assert not rng.uniforms and not rng.ints
    # a text of <= 4 characters is never n-gram sampled; deleting everything keeps the first character
    assert augment_text("abc", Draws([0.0, 0.0, 0.0], []), delete_rate=1.0, num_swaps=0) == "a"


def test_augment_texts_is_seeded_and_aligned_with_the_texts():
    from keras_kd.data.augment import augment_text, augment_texts

    texts = ["今天的房间很干净", "服务太差了，再也不来", "ok"]
    copies = augment_texts(texts, copies=3, seed=7)
    assert len(copies) == 3 and all(len(c) == len(texts) for c in copies)
    assert copies == augment_texts(texts, copies=3, seed=7)
    assert copies != augment_texts(texts, copies=3, seed=8)
    rng = np.random.default_rng(7)  # one generator: copy 1 of every text, then copy 2, ...
    assert copies == [[augment_text(t, rng) for t in texts] for _ in range(3)]
    assert augment_texts(texts, copies=1, delete_rate=0.0, num_swaps=0, ngram_rate=0.0) == [texts]
    with pytest.raises(ValueError, match=r"`copies` must be an integer >= 1. Received: copies=0"):
        augment_texts(texts, copies=0)
    with pytest.raises(ValueError, match=r"`delete_rate` must be in \[0, 1\]"):
        augment_texts(texts, delete_rate=1.5)
