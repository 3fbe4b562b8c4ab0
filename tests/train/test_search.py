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



def _scored_data():
    """Validation data whose pairs a model of random weights scores: enough for the search's
    bookkeeping, which is what the take-up tests check."""
    rng = np.random.default_rng(1)
    val = SimpleNamespace(crops=rng.integers(0, 256, (24, 8, 8, 1), dtype=np.uint8),
                          labels=[f"v{i % 4}" for i in range(24)])
    return SimpleNamespace(val=val)


def _model_of(alpha, temperature, lr):
    """A model that depends on the parameters only, at no training cost."""
    import tf_keras as keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    seed = int(1e6 * (alpha + temperature + lr))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


class _Stop(Exception):
    pass


def test_a_search_stopped_goes_on_after_its_trials_saved_to_the_trials_of_one_never_stopped(tmp_path):
    """Each trial scored is saved; a search that finds them asks its sampler for them again (in
    order: the same suggestions) and trains only the trials after them, which are those of a
    search never stopped (a sampler told of them without being asked would suggest others)."""
    pytest.importorskip("optuna")
    from tinyface.train.search import SavedTrials

    settings = config.load(None, {"distill": {"epochs": 3}})
    data = _scored_data()

    def trainer(log, stop_at=None):
        def train(alpha, temperature, lr, epochs):
            if len(log) == stop_at:
                raise _Stop
            log.append((alpha, temperature, lr))
            return _model_of(alpha, temperature, lr)
        return train

    whole = []
    never_stopped = search_hyperparameters(settings, data, trainer(whole), trials=4,
                                           saved=SavedTrials(tmp_path / "whole.json", "k"))
    saved = SavedTrials(tmp_path / "search.json", "k")
    first = []
    with pytest.raises(_Stop):
        search_hyperparameters(settings, data, trainer(first, stop_at=2), trials=4, saved=saved)
    assert [t["params"] for t in saved.load()] == [dict(zip(("alpha", "temperature", "learning_rate"), p, strict=True))
                                                    for p in whole[:2]]
    second, resumed = [], []
    best = search_hyperparameters(settings, data, trainer(second), trials=4, saved=saved,
                                  on_resume=lambda n, seconds: resumed.append((n, seconds)))
    assert second == whole[2:]  # only the trials after those saved were trained
    assert best == never_stopped
    assert len(resumed) == 1 and resumed[0][0] == 2 and resumed[0][1] >= 0
    # another search's trials (another key) are not taken up
    other = []
    search_hyperparameters(settings, data, trainer(other), trials=4, saved=SavedTrials(saved.path, "other"))
    assert other == whole


def test_a_search_whose_trials_were_all_saved_trains_none_and_says_so(tmp_path):
    pytest.importorskip("optuna")
    from tinyface.train.search import SavedTrials

    settings = config.load(None, {"distill": {"epochs": 3}})
    saved = SavedTrials(tmp_path / "search.json", "k")
    trained = []

    def train(alpha, temperature, lr, epochs):
        trained.append(lr)
        return _model_of(alpha, temperature, lr)

    first = search_hyperparameters(settings, _scored_data(), train, trials=2, saved=saved)
    resumed = []
    again = search_hyperparameters(settings, _scored_data(), train, trials=2, saved=saved,
                                   on_resume=lambda n, seconds: resumed.append(n))
    assert len(trained) == 2 and again == first and resumed == [2]
    saved.path.write_text("{not json")  # damaged: started over, not a failure
    search_hyperparameters(settings, _scored_data(), train, trials=2, saved=saved)
    assert len(trained) == 4
