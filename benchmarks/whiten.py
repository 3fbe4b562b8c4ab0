"""Would whitening the student's embedding within people help verification (run W1)?

    python benchmarks/whiten.py --model models/esp32 --preset esp32 [--people DIR]

Distillation makes the student imitate the teacher; nothing tunes its cosine for telling people
apart. A linear map of the raw embedding, ``x -> A (x - mu)``, would fold exactly into the last
linear layer (the cosine ignores each vector's scale). Here ``A = Sw^-1/2`` with shrinkage,
``Sw_a = (1 - a) Sw + a (tr Sw / d) I``, where ``Sw`` is the within-person covariance of the
int8 model's raw embeddings of the build's *training* people with two or more photos and ``mu``
the mean of every training face (no validation, test or ``--people`` face is used for the fit). On the build's 2,000
seeded validation pairs (TFLite int8, each at its best threshold) it prints the plain embedding,
centering alone, and each ``a``; the ``a`` with the best validation accuracy (ties by AUC) is
compared with the plain embedding by the paired bootstrap over people of compare_runs.py. With
``--people`` (the CelebA subset of docs/data.md) the same on 20,000 of its pairs, and whitening
without centering next to it, for information.
"""

import argparse
from pathlib import Path

import numpy as np

from tinyface.evaluation import metrics
from tinyface.evaluation.metrics import best_accuracy
from tinyface.model.bundle import load_bundle
from tinyface.model.embedder import Embedder
from tinyface.train.build_data import load_build_data
from tinyface.train.stages_eval import VALIDATION_SEED, validation_pairs

from _lib import check_people, compare, people_faces, roc_auc, validation_settings  # benchmarks/, beside this script

SHRINKAGE = (0.1, 0.3, 0.5, 0.7, 0.9)


def within_covariance(emb: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(mean of every face, within-person covariance over the people with two or more faces)``."""
    _, person, counts = np.unique(labels, return_inverse=True, return_counts=True)
    keep = counts[person] >= 2
    x, y = emb[keep], person[keep]
    means = np.zeros((person.max() + 1, emb.shape[1]))
    np.add.at(means, y, x)
    means /= np.maximum(np.bincount(y, minlength=len(means)), 1)[:, None]
    r = x - means[y]
    return emb.mean(0), r.T @ r / (len(x) - len(np.unique(y)))


def whitener(sw: np.ndarray, a: float) -> np.ndarray:
    d = len(sw)
    w, v = np.linalg.eigh((1 - a) * sw + a * np.trace(sw) / d * np.eye(d))
    return v @ np.diag(w ** -0.5) @ v.T


def figures(emb: np.ndarray, a_idx, b_idx, same) -> tuple[np.ndarray, float, float]:
    s = metrics.pair_scores(emb, a_idx, b_idx)
    return s, best_accuracy(s, same), roc_auc(s, same)


def judge(name: str, base: np.ndarray, other: np.ndarray, same, person, a_idx, b_idx) -> None:
    c = compare(base, other, same, person[a_idx], person[b_idx])
    lo, hi = c["accuracy_interval"]
    alo, ahi = c["auc_interval"]
    print(f"  {name} against plain: {c['difference'] * 100:+.2f} points (95% {lo * 100:+.2f} to {hi * 100:+.2f}), "
          f"AUC {c['auc_difference']:+.4f} (95% {alo:+.4f} to {ahi:+.4f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="bundle folder, e.g. models/esp32")
    ap.add_argument("--preset", required=True, help="the preset whose training and validation people to use")
    ap.add_argument("--people", metavar="DIR", help="a folder-per-person selection set, e.g. the CelebA subset "
                                                    "(refused if the model distilled from it, or if it holds LFW "
                                                    "test people)")
    args = ap.parse_args()
    bundle = load_bundle(Path(args.model))
    settings = validation_settings(args.preset, {args.model: bundle})
    check_people(ap, args.people, {args.model: bundle}, settings)  # before minutes of loading the build's people
    data = load_build_data(settings)
    embedder = Embedder(bundle.model_bytes, "tflite")

    def raw(crops):
        return embedder.dequantize(embedder.run(embedder.quantize(crops))).astype(np.float64)

    mu, sw = within_covariance(raw(data.train.crops), data.train.labels)
    val = raw(data.val.crops)
    a_idx, b_idx, same = validation_pairs(data.val.labels)
    _, person = np.unique(data.val.labels, return_inverse=True)
    base, acc, auc = figures(val, a_idx, b_idx, same)
    print(f"{args.model} (TFLite int8), validation people of preset {args.preset}, {len(same):,} pairs:")
    print(f"  plain: {acc:.2%}, AUC {auc:.4f}")
    _, acc, auc = figures(val - mu, a_idx, b_idx, same)
    print(f"  centered on the training faces' mean: {acc:.2%}, AUC {auc:.4f}")
    scored = {a: figures((val - mu) @ whitener(sw, a), a_idx, b_idx, same) for a in SHRINKAGE}
    for a, (_, acc, auc) in scored.items():
        print(f"  centered and whitened, a = {a}: {acc:.2%}, AUC {auc:.4f}")
    chosen = max(SHRINKAGE, key=lambda a: scored[a][1:])
    judge(f"a = {chosen} (chosen)", base, scored[chosen][0], same, person, a_idx, b_idx)
    if not args.people:
        return
    crops, _, labels, skipped = people_faces(args.people, settings, settings.data.workers)
    emb = raw(crops)
    a_idx, b_idx, same = metrics.sample_pairs(labels, 10000, seed=VALIDATION_SEED)
    _, person = np.unique(labels, return_inverse=True)
    base, acc, auc = figures(emb, a_idx, b_idx, same)
    print(f"{args.people}: {len(same):,} pairs ({skipped} photos without a detected face left out):")
    print(f"  plain: {acc:.2%}, AUC {auc:.4f}")
    for a in SHRINKAGE:
        _, acc, auc = figures((emb - mu) @ whitener(sw, a), a_idx, b_idx, same)
        _, acc2, auc2 = figures(emb @ whitener(sw, a), a_idx, b_idx, same)
        print(f"  a = {a}: centered and whitened {acc:.2%}, AUC {auc:.4f}; whitened only {acc2:.2%}, AUC {auc2:.4f}")
    judge(f"a = {chosen} (chosen on validation)", base,
          figures((emb - mu) @ whitener(sw, chosen), a_idx, b_idx, same)[0], same, person, a_idx, b_idx)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
