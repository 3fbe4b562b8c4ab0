"""Is one build better than another on validation pairs, or within the noise of 2,000 pairs?

    python benchmarks/compare_runs.py --preset esp32 --model models/esp32 --model RUN [--model ...]

The first ``--model`` is the reference. Every bundle's int8 model embeds the preset's validation
faces in TFLM, and each decides the build's 2,000 seeded validation pairs at its own best
threshold, as the build's report does. Against the reference, for each other bundle: the
difference in pair accuracy; the pairs only one of the two decides right and McNemar's exact
two-sided p on them; a 95% interval of the difference from a paired bootstrap (the pairs drawn
again with replacement, each model's best threshold chosen again on every draw); the same
interval for the ROC AUC. An interval that holds 0 says the two are not told apart by these pairs.
The two models decide the same pairs, so their difference is much less noisy than either figure
alone; a rule such as "+0.5 points of validation pairs" should read these intervals.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP = 2000


def best_accuracy(scores: np.ndarray, same: np.ndarray) -> float:
    """Pair accuracy at the best threshold (tinyface.evaluation.metrics.best_threshold's), in
    O(n log n): accept every pair scoring at or above a cut between two distinct scores."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], same[order].astype(bool)
    # accepting the first k pairs (k = 0..n): genuine ones accepted, impostors below rejected
    right = np.concatenate([[0], np.cumsum(y)]) + ((~y).sum() - np.concatenate([[0], np.cumsum(~y)]))
    cuts = np.concatenate([[True], s[1:] != s[:-1], [True]])  # ties fall on one side together
    return float(right[cuts].max() / len(y))


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (ties count half), from the ranks of the genuine pairs' scores."""
    y = same.astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranks = (first + (counts + 1) / 2.0)[inverse]  # average 1-based rank of each tie group
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p for ``only_a`` pairs that only model A decides right and
    ``only_b`` that only B does (a binomial test of the discordant pairs at one half)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def paired_intervals(ref: np.ndarray, other: np.ndarray, same: np.ndarray, draws: int = BOOTSTRAP,
                     seed: int = 0) -> dict:
    """95% paired-bootstrap intervals of ``other`` minus ``ref`` (pair scores of two models on
    the same pairs): ``{"accuracy": (lo, hi), "auc": (lo, hi)}``."""
    rng = np.random.default_rng(seed)
    n = len(same)
    acc, area = np.empty(draws), np.empty(draws)
    for i in range(draws):
        rows = rng.integers(0, n, n)
        s = same[rows]
        acc[i] = best_accuracy(other[rows], s) - best_accuracy(ref[rows], s)
        area[i] = roc_auc(other[rows], s) - roc_auc(ref[rows], s)
    return {"accuracy": tuple(np.percentile(acc, [2.5, 97.5])), "auc": tuple(np.percentile(area, [2.5, 97.5]))}


def compare(ref: np.ndarray, other: np.ndarray, same: np.ndarray, draws: int = BOOTSTRAP) -> dict:
    """Every figure this script prints for ``other`` against ``ref`` (pair scores, same pairs)."""
    from tinyface.evaluation.metrics import best_threshold

    right_ref = (ref >= best_threshold(ref, same)) == same
    right_other = (other >= best_threshold(other, same)) == same
    only_ref, only_other = int((right_ref & ~right_other).sum()), int((right_other & ~right_ref).sum())
    return {"accuracy": float(right_other.mean()), "difference": float(right_other.mean() - right_ref.mean()),
            "auc": roc_auc(other, same), "auc_difference": roc_auc(other, same) - roc_auc(ref, same),
            "only_reference_right": only_ref, "only_this_right": only_other,
            "mcnemar_p": mcnemar_p(only_ref, only_other), **{f"{k}_interval": v for k, v in
                                                              paired_intervals(ref, other, same, draws).items()}}


def main() -> None:
    from identify_threshold import models_on_validation  # benchmarks/, beside this script
    from tinyface.evaluation import metrics
    from tinyface.model.embedder import Embedder
    from tinyface.train.stages_eval import validation_pairs

    bundles, preset, _, data = models_on_validation(__doc__)
    a, b, same = validation_pairs(data.val.labels)
    scores = {folder: metrics.pair_scores(Embedder(bundle.model_bytes, "tflm").embed(data.val.crops), a, b)
              for folder, bundle in bundles.items()}
    (ref_name, ref), *others = scores.items()
    print(f"preset {preset}: {len(same):,} validation pairs ({int(same.sum())} same), TFLM int8, "
          f"{BOOTSTRAP} paired bootstrap draws")
    print(f"  {ref_name}: pairs {best_accuracy(ref, same):.2%}, AUC {roc_auc(ref, same):.4f} (the reference)")
    for name, other in others:
        c = compare(ref, other, same)
        lo, hi = c["accuracy_interval"]
        alo, ahi = c["auc_interval"]
        verdict = "within the noise" if lo <= 0 <= hi else ("better" if lo > 0 else "worse")
        print(f"  {name}: pairs {c['accuracy']:.2%} ({c['difference'] * 100:+.2f} points, 95% {lo * 100:+.2f} to "
              f"{hi * 100:+.2f}; only the reference right on {c['only_reference_right']}, only this on "
              f"{c['only_this_right']}, McNemar p {c['mcnemar_p']:.2f}), AUC {c['auc']:.4f} "
              f"({c['auc_difference']:+.4f}, 95% {alo:+.4f} to {ahi:+.4f}): {verdict}")


if __name__ == "__main__":
    main()
