"""Optional hyperparameter search (Optuna TPE) over the distillation's alpha, temperature
and learning rate. Off by default (distill.search_trials = 0). Every trial trains a
student for a third of the epochs and is scored on pairs of *validation* people only.
"""

from __future__ import annotations


def search_hyperparameters(settings, data, train, trials: int, notify=lambda e, i: None) -> dict:
    """``train(alpha, temperature, learning_rate, epochs)`` trains a student and returns it: the
    pipeline's own training (its loss, branches, neighbours, weight averaging), so that a trial
    differs from the final training in those three settings and its epochs only.

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

    def objective(trial):
        alpha = trial.suggest_float("alpha", 0.0, 0.9)
        temperature = trial.suggest_float("temperature", 1.0, 10.0, log=True)
        lr = trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True)
        model = train(alpha, temperature, lr, epochs)
        scores = metrics.pair_scores(embed(model, data.val.crops), a, b)
        auc = metrics.auc(*metrics.roc_curve(scores, same))
        notify("metric", {"stage": f"search trial {trial.number + 1}/{trials}", "accuracy": auc})
        return auc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.data.seed))
    study.optimize(objective, n_trials=trials)
    best = dict(study.best_params)
    best.update(val_auc=float(study.best_value),
                trials=[{"params": t.params, "val_auc": t.value} for t in study.trials if t.value is not None])
    return best
