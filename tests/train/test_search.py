"""The optional Optuna search: it trains each trial with the training it is given, for a third of
the epochs, and returns the best trial's choice."""

from types import SimpleNamespace

import numpy as np
import pytest

from tinyface import config
from tinyface.train import distill, student
from tinyface.train.search import search_hyperparameters


def test_search_trains_each_trial_with_the_given_training_and_returns_the_best():
    pytest.importorskip("optuna")
    rng = np.random.default_rng(0)
    labels = [f"p{i % 6}" for i in range(48)]
    teacher = rng.normal(size=(48, 128)).astype(np.float32)
    train = SimpleNamespace(crops=rng.integers(0, 256, (48, 32, 32, 1), dtype=np.uint8), teacher=teacher, labels=labels)
    val = SimpleNamespace(crops=rng.integers(0, 256, (24, 32, 32, 1), dtype=np.uint8),
                          labels=[f"v{i % 4}" for i in range(24)])
    views = (rng.integers(0, 256, (48, 2, 32, 32, 1), dtype=np.uint8), rng.normal(size=(48, 2, 128)).astype(np.float32))
    data = SimpleNamespace(train=train, val=val, train_views=views, train_views_labels=labels, train_mixes=None,
                           train_hard=None, extra=None)
    x, t, augment, _ = distill.training_set(data, distill.teacher_center(teacher))
    assert len(x) == len(t) == 48 * 3 and augment == "photometric"
    settings = config.load(None, {"student": {"arch": "tinycnn", "width": 0.5},
                                  "distill": {"epochs": 3, "batch_size": 16}})
    tried = []

    def train(alpha, temperature, lr, epochs):  # what the pipeline passes: its own training
        tried.append((alpha, temperature, lr, epochs))
        model, _ = student.build_student("tinycnn", (32, 32, 1), 128, 0.5)
        weights = distill.LossWeights(1.0, 1.0, alpha, temperature)
        distill.fit(model, x, t, None, None, epochs, 16, lr,
                    distill.make_loss(weights, distill.identity_centroids(t[:48], labels)), augment=augment)
        return model

    best = search_hyperparameters(settings, data, train, trials=2)
    assert set(best) >= {"alpha", "temperature", "learning_rate", "val_auc", "trials"}
    assert len(best["trials"]) == 2 and 0.0 <= best["val_auc"] <= 1.0
    assert 0.0 <= best["alpha"] <= 0.9 and 3e-4 <= best["learning_rate"] <= 1e-2
    # a third of the epochs, and the best trial's settings are the ones returned
    assert [e for *_, e in tried] == [1, 1]
    assert (best["alpha"], best["temperature"], best["learning_rate"]) in [t[:3] for t in tried]

