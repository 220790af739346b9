"""Student initialisation from a teacher: PCA embedding projection and layer copying."""

import keras
import numpy as np
import pytest

from keras_kd import students


def test_pca_hand_computed():
    # Points on the x axis spread more (±2) than on the y axis (±1): the first component is x.
    table = np.array([[2.0, 0.0], [0.0, 1.0], [-2.0, 0.0], [0.0, -1.0]])
    np.testing.assert_allclose(
        students.embedding_from_teacher(table, 1)[:, 0], [2, 0, -2, 0], atol=1e-6
    )
    # Along the diagonal, after centring (mean (1, 1)): projection = ±sqrt(2), 0.
    diagonal = np.array([[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(
        students.embedding_from_teacher(diagonal, 1)[:, 0], [np.sqrt(2), -np.sqrt(2), 0], atol=1e-6
    )


def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 6)) @ np.diag([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    out = students.embedding_from_teacher(table, 3)
    centred = table - table.mean(0)
    singular = np.linalg.svd(centred, compute_uv=False)
    # Projections onto the top components: orthogonal columns whose norms are the singular values.
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), singular[:3], rtol=1e-5)
    gram = out.T @ out
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-3)
    # Full-rank PCA is a rotation: pairwise distances are kept.
    full = students.embedding_from_teacher(table, 6)
    np.testing.assert_allclose(
        np.linalg.norm(full[0] - full[1]), np.linalg.norm(table[0] - table[1]), rtol=1e-5
    )
    assert out.dtype == np.float32 and out.shape == (50, 3)


def test_other_methods_and_scale():
    table = np.arange(12, dtype="float64").reshape(4, 3)
    np.testing.assert_allclose(
        students.embedding_from_teacher(table, 2, method="truncate", center=False), table[:, :2]
    )
    np.testing.assert_allclose(
        students.embedding_from_teacher(table, 2, method="truncate"), table[:, :2] - [4.5, 5.5]
    )
    a = students.embedding_from_teacher(table, 2, method="random", seed=1)
    np.testing.assert_array_equal(
        a, students.embedding_from_teacher(table, 2, method="random", seed=1)
    )
    scaled = students.embedding_from_teacher(table, 2, scale=0.05)
    assert abs(float(scaled.std()) - 0.05) < 1e-6


def test_errors():
    with pytest.raises(ValueError, match=r"`dim` must be an integer in \[1, 3\].*dim=4"):
        students.embedding_from_teacher(np.ones((4, 3)), 4)
    with pytest.raises(ValueError, match=r"`method` must be one of.*method='svd'"):
        students.embedding_from_teacher(np.ones((4, 3)), 2, method="svd")
    with pytest.raises(ValueError, match=r"must be 2-D"):
        students.embedding_from_teacher(np.ones(4), 2)
    with pytest.raises(ValueError, match=r"NaN"):
        students.embedding_from_teacher(np.array([[np.nan, 1.0]]), 1)


def test_embedding_layer_reads_the_projected_table():
    table = np.array([[2.0, 0.0], [0.0, 1.0], [-2.0, 0.0], [0.0, -1.0]])
    layer = students.embedding_layer_from_teacher(table, 1, name="wp")
    out = keras.ops.convert_to_numpy(layer(np.array([[0, 2]])))
    np.testing.assert_allclose(out[0, :, 0], [2.0, -2.0], atol=1e-6)
    assert layer.name == "wp" and layer.trainable


def test_select_layers():
    assert students.select_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert students.select_layers(6, 3) == [0, 2, 4]
    assert students.select_layers(6, 4) == [0, 1, 3, 4]
    assert students.select_layers(6, 1) == [0]
    with pytest.raises(ValueError, match=r"cannot take more layers.*num_source=2, num_target=3"):
        students.select_layers(2, 3)


def test_copy_layers():
    teacher = [keras.layers.Dense(3, name=f"t{i}") for i in range(4)]
    student = [keras.layers.Dense(3, name=f"s{i}") for i in range(2)]
    for layer in teacher + student:
        layer.build((None, 3))
    for i, layer in enumerate(teacher):
        layer.kernel.assign(np.full((3, 3), float(i)))
    assert students.copy_layers(teacher, student) == [0, 2]
    np.testing.assert_array_equal(student[1].kernel.numpy(), np.full((3, 3), 2.0))
    students.copy_layers(teacher, student, indices=[3, 1])
    np.testing.assert_array_equal(student[0].kernel.numpy(), np.full((3, 3), 3.0))
    wide = keras.layers.Dense(4, name="wide")
    wide.build((None, 3))
    with pytest.raises(ValueError, match=r"Cannot copy 't0' into 'wide'.*shape \(3, 3\).*\(3, 4\)"):
        students.copy_weights(teacher[0], wide)
    with pytest.raises(ValueError, match=r"`indices` must be in \[0, 3\]"):
        students.copy_layers(teacher, student, indices=[0, 4])


def test_trim_vocabulary_hand_computed():
    # Teacher ids used: 0 (padding) x3, 5 x2, 7 x1, 9 x1; keep padding and [UNK]=1 first.
    ids = np.array([[5, 7, 0, 0], [9, 5, 0, 0]])
    kept, lookup = students.trim_vocabulary(ids, keep_ids=(0, 1), unknown_id=1, vocab_size=12)
    np.testing.assert_array_equal(kept, [0, 1, 5, 7, 9])
    np.testing.assert_array_equal(lookup, [0, 1, 1, 1, 1, 2, 1, 3, 1, 4, 1, 1])
    np.testing.assert_array_equal(lookup[ids], [[2, 3, 0, 0], [4, 2, 0, 0]])
    assert lookup.dtype == np.int32
    # An unseen teacher id (11) maps to [UNK]; min_count=2 keeps only 5 among the rest.
    kept, lookup = students.trim_vocabulary(ids, keep_ids=(0, 1), unknown_id=1, min_count=2)
    np.testing.assert_array_equal(kept, [0, 1, 5])
    np.testing.assert_array_equal(lookup[[5, 7, 9]], [2, 1, 1])
    assert len(lookup) == 10  # max id + 1 without vocab_size
    # The kept rows of a teacher table give the student's table: its row i is the teacher's kept[i].
    table = np.arange(20.0).reshape(10, 2)
    np.testing.assert_array_equal(table[kept][lookup[[5]]], [[10.0, 11.0]])


def test_trim_vocabulary_errors():
    with pytest.raises(ValueError, match=r"`unknown_id` must be one of `keep_ids` \[0\]"):
        students.trim_vocabulary(np.array([1, 2]), keep_ids=(0,), unknown_id=3)
    with pytest.raises(ValueError, match=r"must be an integer array"):
        students.trim_vocabulary(np.array([1.5]))
    with pytest.raises(ValueError, match=r"`vocab_size` must cover every id: ids go up to 9"):
        students.trim_vocabulary(np.array([9]), vocab_size=5)
    with pytest.raises(ValueError, match=r"`min_count` must be a positive integer"):
        students.trim_vocabulary(np.array([1]), min_count=0)
    with pytest.raises(ValueError, match=r"`keep_ids` must be distinct"):
        students.trim_vocabulary(np.array([1]), keep_ids=(0, 0))
