"""Neighbour batches (distill.neighbours): each anchor's nearest original faces, batches of
anchors then partners, and the relation loss over those pairs."""

import numpy as np
import pytest

from tinyface.train import distill
from tinyface.vectors import l2_normalize


def _targets(n=40, seed=0):
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32))


def test_partners_are_the_nearest_originals_and_never_the_face_itself():
    t = _targets()
    pool = np.arange(0, 40, 2)  # every other row is an original
    t[1] = l2_normalize(t[4] + 0.05 * t[1])  # row 1 (not an original) looks like original 4
    partners = distill.nearest_partners(t, pool, 3, chunk=7)
    assert partners.shape == (40, 3) and partners.dtype == np.int32
    assert set(partners.ravel()) <= set(pool.tolist())
    assert all(i not in partners[i] for i in range(40))
    assert 4 in partners[1]
    sims = t @ t[pool].T
    for i in range(40):
        expected = {int(pool[j]) for j in np.argsort(-np.where(pool == i, -2, sims[i]))[:3]}
        assert set(partners[i].tolist()) == expected


def test_partners_need_more_originals_than_asked_for():
    with pytest.raises(ValueError, match="3 faces"):
        distill.nearest_partners(_targets(), np.arange(3), 3)


def test_paired_batches_hold_anchors_then_one_of_their_partners():
    n, k, batch = 40, 3, 8
    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(4, 1).repeat(4, 2)  # crop i is filled with i
    t = _targets(n)
    partners = distill.nearest_partners(t, np.arange(n), k)
    ds = distill.make_dataset(x, t, batch, False, seed=3, shuffle=True, partners=partners)
    batches = list(ds)
    assert len(batches) == n // batch  # as many steps as random batches
    seen = set()
    for crops, targets in batches:
        rows = np.rint(crops.numpy()[:, 0, 0, 0] * 128 + 128).astype(int)
        anchors, mates = rows[:batch // 2], rows[batch // 2:]
        assert all(m in partners[a] for a, m in zip(anchors, mates, strict=True))
        assert np.allclose(targets.numpy(), t[rows])
        seen |= set(anchors.tolist())
    assert len(seen) == n // 2  # distinct anchors, half the faces an epoch
    again = [c.numpy() for c, _ in distill.make_dataset(x, t, batch, False, seed=3, shuffle=True, partners=partners)]
    assert all(np.array_equal(a, b[0].numpy()) for a, b in zip(again, batches, strict=True))  # seeded


def test_paired_loss_adds_the_pairs_relation_term():
    rng = np.random.default_rng(2)
    t, s = _targets(8, 1), l2_normalize(rng.normal(size=(8, 128)).astype(np.float32))
    w = distill.LossWeights(cosine=1.0, relation=0.5)
    plain = float(distill.make_loss(w)(t, s))
    paired = float(distill.make_loss(w, paired=True)(t, s))
    pair_term = np.mean((np.sum(s[:4] * s[4:], 1) - np.sum(t[:4] * t[4:], 1)) ** 2)
    assert paired == pytest.approx(plain + 0.5 * pair_term, rel=1e-5)
    assert float(distill.make_loss(w, paired=True)(t, t)) == pytest.approx(0.0, abs=1e-6)


def test_a_build_with_fewer_faces_than_neighbours_stops_in_one_line():
    from tinyface.errors import ConfigError
    from tinyface.train.pipeline import _TrainingSet

    t = _targets(5)
    training = _TrainingSet(np.zeros((5, 4, 4, 1), np.uint8), t, True, t, originals=np.arange(3), neighbours=3)
    with pytest.raises(ConfigError, match="distill.neighbours = 3 needs more than that many training faces"):
        training.partners()
    assert _TrainingSet(np.zeros((5, 4, 4, 1), np.uint8), t, True, t, originals=np.arange(3)).partners() is None


def test_the_neighbour_search_shows_as_a_step_then_the_epochs_again():
    from tinyface.train.pipeline import _TrainingSet

    t = _targets(40)
    training = _TrainingSet(np.zeros((40, 4, 4, 1), np.uint8), t, True, t, originals=np.arange(0, 40, 2),
                            neighbours=3)
    events = []
    partners = training.partners(lambda event, info: events.append((event, info)), epochs=7)
    assert partners.shape == (40, 3)
    assert events[0] == ("step", {"name": "nearest faces (distill.neighbours)", "total": 40})
    assert sum(info["n"] for event, info in events if event == "advance") == 40
    assert events[-1] == ("step", {"name": "epochs", "total": 7})
    events.clear()
    assert training.partners(lambda event, info: events.append(event), epochs=7) is partners and not events
