"""The metrics the benchmarks used to define for themselves, now tinyface.evaluation.metrics':
a weighted ROC curve (benchmarks/compare_runs.py's bootstrap AUC), balanced accuracy
(benchmarks/hard_faces_landmarks.py) and every same-person pair with as many different ones
(benchmarks/hard_faces.py's balanced pairs)."""

import random

import numpy as np
import pytest

from tinyface.evaluation import metrics


def _pairs(n=300, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.3
    scores = rng.normal(0, 1, n) + 1.2 * same
    return (np.round(scores, 1) if ties else scores), same


def _mann_whitney(scores, same, weights):
    """The weighted AUC as compare_runs.py defined it: the chance that a genuine pair outscores an
    impostor pair, ties counting half."""
    w, y = np.asarray(weights, float), same.astype(bool)
    levels, inverse = np.unique(scores, return_inverse=True)
    impostors = np.bincount(inverse, weights=w * ~y, minlength=len(levels))
    below = np.concatenate([[0.0], np.cumsum(impostors)[:-1]])
    return float((w * y * (below + impostors / 2.0)[inverse]).sum() / ((w * y).sum() * (w * ~y).sum()))


@pytest.mark.parametrize("ties", [False, True])
def test_weights_count_each_pair_that_many_times_in_the_roc_curve(ties):
    scores, same = _pairs(seed=3, ties=ties)
    w = np.random.default_rng(4).integers(0, 4, len(scores))
    rows = np.repeat(np.arange(len(scores)), w)
    weighted = metrics.roc_curve(scores, same, w)
    repeated = metrics.roc_curve(scores[rows], same[rows])
    kept = np.isin(np.unique(scores)[::-1], np.unique(scores[rows]))  # levels whose pairs all weigh 0 repeat a point
    assert np.allclose(weighted[0][1:][kept], repeated[0][1:]) and np.allclose(weighted[1][1:][kept], repeated[1][1:])
    assert metrics.auc(*weighted) == pytest.approx(metrics.auc(*repeated), abs=1e-12)
    assert metrics.auc(*weighted) == pytest.approx(_mann_whitney(scores, same, w), abs=1e-12)
    unweighted = metrics.roc_curve(scores, same)
    ones = metrics.roc_curve(scores, same, np.ones(len(scores)))
    assert np.array_equal(unweighted[0], ones[0]) and np.array_equal(unweighted[1], ones[1])


def test_balanced_accuracy_at_a_threshold_is_the_verifications():
    scores, same = _pairs(seed=5)
    for threshold in (-1.0, 0.3, 0.9, 5.0):
        v = metrics.verification(scores, same, threshold)
        assert metrics.balanced_accuracy(scores, same, threshold) == v.balanced_accuracy
        assert v.balanced_accuracy == (v.true_accept_rate + 1 - v.false_accept_rate) / 2


@pytest.mark.parametrize("seed, ties", [(6, False), (7, True), (8, True)])
def test_balanced_accuracy_at_the_best_threshold_is_the_best_of_every_threshold(seed, ties):
    scores, same = _pairs(n=200, seed=seed, ties=ties)

    def at(t):
        return 0.5 * (np.mean(scores[same] >= t) + np.mean(scores[~same] < t))

    best = max(at(t) for t in np.unique(scores))
    assert metrics.balanced_accuracy(scores, same) == pytest.approx(best, abs=1e-15)
    assert metrics.balanced_accuracy(scores, same) > 0.5  # better than a coin on separated scores


def _balanced_pairs(labels, seed):
    """benchmarks/hard_faces.py's balanced pairs, as it defined them."""
    groups = {}
    for i, name in enumerate(labels):
        groups.setdefault(name, []).append(i)
    same = [(a, b) for g in groups.values() for k, a in enumerate(g) for b in g[k + 1:]]
    rng = random.Random(seed)
    names = list(groups)
    diff = set()
    while len(diff) < len(same):
        pa, pb = rng.sample(names, 2)
        i, j = rng.choice(groups[pa]), rng.choice(groups[pb])
        diff.add((min(i, j), max(i, j)))
    return same, sorted(diff)


@pytest.mark.parametrize("seed", range(5))
def test_every_same_pair_and_as_many_different_ones(seed):
    rng = random.Random(100 + seed)
    labels = [f"p{rng.randrange(12)}" for _ in range(60)]
    a, b, flags = metrics.sample_pairs(labels, None, seed)
    pairs = list(zip(a.tolist(), b.tolist()))
    same = [(i, j) for i in range(60) for j in range(i + 1, 60) if labels[i] == labels[j]]
    assert sorted(p for p, f in zip(pairs, flags) if f) == same  # every one, once
    assert flags.sum() == (~flags).sum() and len(set(pairs)) == len(pairs)
    assert all(labels[i] != labels[j] for (i, j), f in zip(pairs, flags) if not f)
    old_same, old_diff = _balanced_pairs(labels, seed)  # the very pairs hard_faces.py drew
    assert sorted(old_same) == same and [p for p, f in zip(pairs, flags) if not f] == old_diff
    again = metrics.sample_pairs(labels, None, seed)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, flags), again))
