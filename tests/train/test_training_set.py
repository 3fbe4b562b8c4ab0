"""The training set: originals, teacher views and teacher mixes, each with its own centered target."""

from types import SimpleNamespace

import numpy as np

from tinyface.train.distill import center_targets, training_set


def _data(n=4, views=0, mixes=0, size=8):
    rng = np.random.default_rng(0)
    crops = lambda *shape: rng.integers(0, 256, (*shape, size, size, 1), dtype=np.uint8)  # noqa: E731
    teacher = lambda *shape: rng.normal(size=(*shape, 128)).astype(np.float32)  # noqa: E731
    train = SimpleNamespace(crops=crops(n), teacher=teacher(n), labels=[f"p{i % 2}" for i in range(n)])
    return SimpleNamespace(train=train,
                           train_views=(crops(n, views), teacher(n, views)) if views else None,
                           train_views_labels=train.labels,
                           train_mixes=(crops(n * mixes), teacher(n * mixes)) if mixes else None, extra=None)


def test_originals_alone_get_geometric_augmentation():
    data = _data()
    center = data.train.teacher.mean(axis=0)
    x, t, augment, originals = training_set(data, center)
    assert x is data.train.crops and augment is True
    assert np.array_equal(originals, np.arange(4))
    assert np.allclose(t, center_targets(data.train.teacher, center))


def test_views_and_mixes_follow_the_originals_with_their_own_targets():
    data = _data(views=2, mixes=3)
    center = data.train.teacher.mean(axis=0)
    x, t, augment, originals = training_set(data, center)
    assert len(x) == len(t) == 4 + 4 * 2 + 4 * 3
    assert np.array_equal(originals, np.arange(4))  # views and mixes are not originals
    assert augment == "photometric"  # the views carry the geometry, each with the teacher's own target
    assert np.array_equal(x[4:6], data.train_views[0][0])  # image 0's two views, in order
    assert np.allclose(t[5], center_targets(data.train_views[1][0, 1:2], center)[0])
    assert np.array_equal(x[-12:], data.train_mixes[0])
    assert np.allclose(t[-12:], center_targets(data.train_mixes[1], center))
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0)


def test_extra_faces_are_originals_after_the_views_and_mixes():
    data = _data(views=2, mixes=1)
    rng = np.random.default_rng(1)
    data.extra = SimpleNamespace(crops=rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8),
                                 teacher=rng.normal(size=(3, 128)).astype(np.float32), views=None, mixes=None)
    x, t, _, originals = training_set(data, data.train.teacher.mean(axis=0))
    assert len(x) == 4 + 8 + 4 + 3
    assert np.array_equal(originals, [0, 1, 2, 3, 16, 17, 18])
    assert np.array_equal(x[originals[4:]], data.extra.crops)
