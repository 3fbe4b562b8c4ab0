"""The training set: originals, teacher views and teacher mixes, each with its own centered target."""

from types import SimpleNamespace

import numpy as np

from tinyface.train.distill import center_targets, make_loss, LossWeights, training_identities, training_set


def _data(n=4, views=0, mixes=0, size=8):
    rng = np.random.default_rng(0)
    crops = lambda *shape: rng.integers(0, 256, (*shape, size, size, 1), dtype=np.uint8)  # noqa: E731
    teacher = lambda *shape: rng.normal(size=(*shape, 128)).astype(np.float32)  # noqa: E731
    train = SimpleNamespace(crops=crops(n), teacher=teacher(n), labels=[f"p{i % 2}" for i in range(n)])
    return SimpleNamespace(train=train,
                           train_views=(crops(n, views), teacher(n, views)) if views else None,
                           train_views_labels=train.labels,
                           train_mixes=(crops(n * mixes), teacher(n * mixes)) if mixes else None,
                           train_hard=None, extra=None)


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
                                 teacher=rng.normal(size=(3, 128)).astype(np.float32), views=None, mixes=None,
                                 identities=[None] * 3, view_identities=[])
    x, t, _, originals = training_set(data, data.train.teacher.mean(axis=0))
    assert len(x) == 4 + 8 + 4 + 3
    assert np.array_equal(originals, [0, 1, 2, 3, 16, 17, 18])
    assert np.array_equal(x[originals[4:]], data.extra.crops)


def test_identities_follow_the_rows_and_need_two_photos():
    """LFW's people and the extra faces' people folders get an index per row (views too);
    mixes, faces of no one and people with one photo get -1; centroids are of the targets."""
    data = _data(n=5, views=2, mixes=1)  # labels p0 p1 p0 p1 p0
    data.train.labels = ["p0", "p1", "p0", "solo", "p0"]
    data.train_views_labels = data.train.labels
    rng = np.random.default_rng(1)
    data.extra = SimpleNamespace(crops=rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8),
                                 teacher=rng.normal(size=(4, 128)).astype(np.float32), views=None, mixes=None,
                                 identities=["extra1:pins_A", None, "extra1:pins_A", "extra1:pins_B"],
                                 view_identities=[])
    center = data.train.teacher.mean(axis=0)
    x, t, _, _ = training_set(data, center)
    ids, people = training_identities(data, t)
    assert len(ids) == len(x) == 5 + 10 + 5 + 4
    names = sorted(["p0", "extra1:pins_A"])  # p1, solo and pins_B have one photo each
    p0, a = names.index("p0"), names.index("extra1:pins_A")
    assert ids[:5].tolist() == [p0, -1, p0, -1, p0]
    assert ids[5:15].tolist() == [p0, p0, -1, -1, p0, p0, -1, -1, p0, p0]  # each photo's two views
    assert (ids[15:20] == -1).all()  # mixes: faces of no one
    assert ids[20:].tolist() == [a, -1, a, -1]
    rows = np.flatnonzero(ids == p0)
    expected = t[rows].mean(axis=0)
    assert np.allclose(people[p0], expected / np.linalg.norm(expected), atol=1e-6)


def test_identity_term_rewards_the_right_person_by_a_margin():
    import tensorflow as tf

    people = np.eye(3, 128, dtype=np.float32)
    t = np.eye(3, 128, dtype=np.float32)
    y = np.concatenate([t, np.array([[0], [1], [-1]], np.float32)], axis=1)
    plain = make_loss(LossWeights())
    with_id = make_loss(LossWeights(), people=people, identity_weight=1.0, identity_margin=0.2)
    right = tf.constant(t)
    wrong = tf.constant(t[[1, 0, 2]])
    assert float(with_id(y, right)) - float(plain(y[:, :-1], right)) < 0.01  # the right person, by far
    assert float(with_id(y, wrong)) - float(plain(y[:, :-1], wrong)) > 10.0  # another person's centroid
    # a batch with no person: the distillation terms alone
    none = y.copy()
    none[:, -1] = -1
    assert np.isclose(float(with_id(none, wrong)), float(plain(y[:, :-1], wrong)))
