"""Optional hyperparameter search (Optuna TPE) over the distillation's alpha, temperature
and learning rate. Off by default (distill.search_trials = 0). Every trial trains a
student for a third of the epochs and is scored on pairs of *validation* people only.

A search stopped part way (Ctrl-C, SIGTERM, kill -9) loses at most the trial it was training:
every trial scored is saved (:class:`SavedTrials`), and the same build goes on after them, to the
trials and choice of a search never stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


class SavedTrials:
    """The trials a search has scored so far, in ``path`` (JSON, rewritten whole and atomically
    after every trial): ``[{"params", "val_auc", "seconds"}]`` in the order they ran. ``key``
    names the search (the distill stage's fingerprint): trials of another search are never
    taken up."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = Path(path), key

    def load(self) -> list[dict]:
        """The trials saved for this search; none when there are none, or they are damaged or
        of another search."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        trials = saved.get("trials") if isinstance(saved, dict) and saved.get("key") == self.key else None
        if not isinstance(trials, list) or not all(
                isinstance(t, dict) and isinstance(t.get("params"), dict) and isinstance(t.get("val_auc"), float)
                for t in trials):
            return []
        return trials

    def save(self, trials: list[dict]) -> None:
        from tinyface.fsutil import write_json

        write_json(self.path, {"key": self.key, "trials": trials})

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def search_hyperparameters(settings, data, train, trials: int, notify=lambda e, i: None,
                           saved: SavedTrials | None = None, on_resume=None) -> dict:
    """``train(alpha, temperature, learning_rate, epochs)`` trains a student and returns it: the
    pipeline's own training (its loss, branches, neighbours, weight averaging), so that a trial
    differs from the final training in those three settings and its epochs only.

    ``saved``: every trial scored is saved there, and the trials an earlier search saved there
    are taken up instead of trained again. The sampler is asked for them again, in order (it
    suggests the very parameters it suggested then, from the same history) and told their saved
    scores, so the trials after them are those of a search never stopped. ``on_resume(n,
    seconds)`` is called when ``n`` saved trials (``seconds`` of training) are taken up.

    Returns the best {"alpha", "temperature", "learning_rate", "val_auc", "trials"}."""
    try:
        import optuna
    except ImportError:
        from tinyface.errors import ConfigError

        raise ConfigError("distill.search_trials > 0 needs Optuna", hint='pip install "tinyface[search]"') from None
    from tinyface.evaluation import metrics
    from tinyface.model.keras_io import embed

    a, b, same = metrics.sample_pairs(data.val.labels, 1000, seed=2)
    epochs = max(1, settings.distill.epochs // 3)
    done = saved.load() if saved else []

    def score(alpha: float, temperature: float, lr: float) -> float:
        model = train(alpha, temperature, lr, epochs)
        scores = metrics.pair_scores(embed(model, data.val.crops), a, b)
        return float(metrics.auc(*metrics.roc_curve(scores, same)))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.data.seed))
    def taken_up(n: int) -> None:  # the first n saved trials were taken up: said once
        if n and on_resume:
            on_resume(n, sum(float(t.get("seconds", 0.0)) for t in done[:n]))

    reused = 0
    for n in range(trials):
        trial = study.ask()
        alpha = trial.suggest_float("alpha", 0.0, 0.9)
        temperature = trial.suggest_float("temperature", 1.0, 10.0, log=True)
        lr = trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True)
        if n < len(done) and done[n]["params"] == trial.params:
            value = done[n]["val_auc"]
            reused += 1
        else:
            if reused == n:  # the first trial trained here: after those taken up
                taken_up(n)
            del done[n:]  # not what this sampler suggests (another Optuna): trained again from here
            t0 = time.perf_counter()
            value = score(alpha, temperature, lr)
            done.append({"params": dict(trial.params), "val_auc": value,
                         "seconds": round(time.perf_counter() - t0, 3)})
            if saved:
                saved.save(done)
        study.tell(trial, value)
        notify("metric", {"stage": f"search trial {n + 1}/{trials}", "accuracy": value})
    if reused == trials:  # every trial was saved: none trained
        taken_up(trials)
    best = dict(study.best_params)
    best.update(val_auc=float(study.best_value),
                trials=[{"params": t.params, "val_auc": t.value} for t in study.trials if t.value is not None])
    return best
