"""benchmarks/whiten.py: the within-person whitening of run W1."""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import whiten  # noqa: E402  (benchmarks/ is not a package)


def _faces(people=30, per=6, d=8, seed=0):
    """Embeddings whose people vary along the first axis far more than along the others."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (people, d))
    spread = np.ones(d) * 0.1
    spread[0] = 3.0
    emb = np.repeat(centres, per, axis=0) + rng.normal(0, 1, (people * per, d)) * spread
    labels = [f"p{i}" for i in range(people) for _ in range(per)]
    return emb, labels


def test_within_covariance_ignores_people_with_one_photo_and_sees_the_noisy_axis():
    emb, labels = _faces()
    lone = np.full((1, emb.shape[1]), 100.0)  # one photo of another person: no within-person spread
    mu, sw = whiten.within_covariance(np.vstack([emb, lone]), labels + ["alone"])
    assert np.allclose(mu, np.vstack([emb, lone]).mean(0))
    assert sw[0, 0] > 100 * sw[1, 1]
    _, sw_without = whiten.within_covariance(emb, labels)
    assert np.allclose(sw, sw_without)


def test_whitener_without_shrinkage_makes_the_within_covariance_the_identity():
    emb, labels = _faces()
    _, sw = whiten.within_covariance(emb, labels)
    a = whiten.whitener(sw, 0.0)
    assert np.allclose(a @ sw @ a.T, np.eye(len(sw)), atol=1e-8)
    full = whiten.whitener(sw, 1.0)  # all shrinkage: a multiple of the identity
    assert np.allclose(full, full[0, 0] * np.eye(len(sw)))


def test_whitening_helps_where_people_vary_along_one_axis():
    """The case it is for: the plain cosine is swamped by the noisy axis, the whitened one is not."""
    from tinyface.evaluation import metrics

    emb, labels = _faces(seed=1)
    mu, sw = whiten.within_covariance(emb, labels)
    test, test_labels = _faces(seed=2)
    a, b, same = metrics.sample_pairs(test_labels, 200, seed=0)
    _, plain, _ = whiten.figures(test, a, b, same)
    _, white, _ = whiten.figures((test - mu) @ whiten.whitener(sw, 0.1), a, b, same)
    assert white > plain + 0.05
