"""Is one build better than another on validation pairs, or within the noise of 2,000 pairs?

    python benchmarks/compare_runs.py --preset esp32 --model models/esp32 --model RUN [--model ...] [--same N]
    python benchmarks/compare_runs.py --preset esp32 --model models/esp32 --model RUN --people DIR [--same N]

The first ``--model`` is the reference. Every bundle's int8 model embeds the preset's validation
faces in TFLM, and each decides the build's 2,000 seeded validation pairs at its own best
threshold, as the build's report does. Against the reference, for each other bundle: the
difference in pair accuracy; the pairs only one of the two decides right and McNemar's exact
two-sided p on them; a 95% interval of the difference from a paired bootstrap over *people*; the
same interval for the ROC AUC. An interval that holds 0 says the two are not told apart here.

The pairs are not independent: a person's photos recur in many of them, so drawing pairs again
would understate the noise (more so the more pairs are drawn from the same photos). Each bootstrap
draw instead draws the validation people again with replacement and weighs every pair by how often
its people were drawn (a same-person pair by its person's count, a different-people pair by the
product of the two), and chooses each model's best threshold again on those weights. The two
models decide the same pairs, so their difference is much less noisy than either figure alone; a
rule such as "+0.5 points of validation pairs" should read these intervals. McNemar's p treats
the pairs as independent: it is the optimistic one.

``--people DIR`` draws the pairs from a second selection set instead: a folder with one
sub-folder of photos per person (the CelebA subset of docs/data.md, 299 people no preset trains
on), detected, aligned and cut as the preset cuts, cached like LFW; photos without a detected face
are left out. Its people are many more, with many photos each, than the build's validation
people with two or more photos (126 for `esp32`), so its intervals are narrower. The teacher's
figures on the same pairs are printed first, as the set's ceiling.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tinyface.evaluation.metrics import auc, best_accuracy, best_threshold, roc_curve

BOOTSTRAP = 2000


def roc_auc(scores: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None) -> float:
    """(Weighted) area under the ROC curve, as the build's reports compute it (tinyface.evaluation.
    metrics): the chance that a genuine pair outscores an impostor pair, ties counting half."""
    return auc(*roc_curve(scores, same, weights))


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p for ``only_a`` pairs that only model A decides right and
    ``only_b`` that only B does (a binomial test of the discordant pairs at one half)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n  # exact ints: no overflow
    return min(1.0, 2.0 * tail)


def paired_intervals(ref: np.ndarray, other: np.ndarray, same: np.ndarray, person_a: np.ndarray,
                     person_b: np.ndarray, draws: int = BOOTSTRAP, seed: int = 0) -> dict:
    """95% intervals of ``other`` minus ``ref`` (pair scores of two models on the same pairs)
    from a bootstrap over people (module docstring); ``person_a``/``person_b``: each pair's two
    people as indices. Returns ``{"accuracy": (lo, hi), "auc": (lo, hi)}``."""
    rng = np.random.default_rng(seed)
    # the people behind the pairs, numbered 0..P-1 (a person in no pair is not drawn)
    _, numbered = np.unique(np.concatenate([person_a, person_b]), return_inverse=True)
    person_a, person_b = numbered[:len(same)], numbered[len(same):]
    people = int(numbered.max()) + 1
    acc, area = np.empty(draws), np.empty(draws)
    for i in range(draws):
        drawn = np.bincount(rng.integers(0, people, people), minlength=people).astype(float)
        w = np.where(same, drawn[person_a], drawn[person_a] * drawn[person_b])
        if not (w * same).any() or not (w * ~same).any():  # a draw without one kind of pair
            acc[i] = area[i] = np.nan
            continue
        acc[i] = best_accuracy(other, same, w) - best_accuracy(ref, same, w)
        area[i] = roc_auc(other, same, w) - roc_auc(ref, same, w)
    return {"accuracy": tuple(np.nanpercentile(acc, [2.5, 97.5])),
            "auc": tuple(np.nanpercentile(area, [2.5, 97.5]))}


def compare(ref: np.ndarray, other: np.ndarray, same: np.ndarray, person_a: np.ndarray, person_b: np.ndarray,
            draws: int = BOOTSTRAP) -> dict:
    """Every figure this script prints for ``other`` against ``ref`` (pair scores, same pairs)."""
    right_ref = (ref >= best_threshold(ref, same)) == same
    right_other = (other >= best_threshold(other, same)) == same
    only_ref, only_other = int((right_ref & ~right_other).sum()), int((right_other & ~right_ref).sum())
    area = roc_auc(other, same)
    return {"accuracy": float(right_other.mean()), "difference": float(right_other.mean() - right_ref.mean()),
            "auc": area, "auc_difference": area - roc_auc(ref, same),
            "only_reference_right": only_ref, "only_this_right": only_other,
            "mcnemar_p": mcnemar_p(only_ref, only_other), **{f"{k}_interval": v for k, v in
                                                              paired_intervals(ref, other, same, person_a, person_b, draws).items()}}


def people_faces(folder, settings, workers: int = 0):
    """The faces of a folder-per-person set, cut as ``settings`` cut the validation faces:
    ``(crops, teacher embeddings, labels, skipped)``, only photos with a detected face. Progress
    on stderr (a bar, or a line every few seconds into a file): a first pass aligns and embeds
    every photo (minutes for CelebA's 6,300), later ones read the cache. A folder holding LFW test
    people (named after one, as the build's name filter matches them) is refused: choices made
    on it would be made on the held-out test."""
    from tinyface.console import progress_bar
    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import load_dataset
    from tinyface.data.faces import FaceSpec, prepare_faces

    dataset = load_dataset(Path(folder))
    paths = [image.path for image in dataset.images]
    test_people = _lfw_test_people(settings)
    if test_people:
        from tinyface.data.extra import named_after

        held = named_after(paths, test_people)
        if held.any():
            names = sorted({path.parent.name for path, h in zip(paths, held) if h})
            raise SystemExit(f"{folder}: {len(names)} of its people are LFW test people (peopleDevTest.txt), e.g. "
                             f"{names[0]}: a selection set must not hold the held-out test's people")
    with FaceCache(settings.data.cache_path()) as cache, progress_bar("photos", len(paths)) as advance:
        res = prepare_faces(paths, FaceSpec.from_settings(settings, teacher=True), cache, workers=workers,
                            progress=advance)
    keep = res.ok & res.detected
    labels = [image.identity for image, good in zip(dataset.images, keep) if good]
    return res.crops[keep], res.teacher[keep], labels, int(len(paths) - keep.sum())


def _lfw_test_people(settings) -> list[str]:
    """The people of peopleDevTest.txt in the settings' LFW folder ([] when it has none)."""
    from tinyface.data import lfw

    people_file = settings.data.data_path() / lfw.PEOPLE_DEV_TEST
    return [name for name, _ in lfw.read_people(people_file)] if people_file.is_file() else []


def distilled_from(bundle, folder) -> list[str]:
    """The names in ``bundle``'s model.json (``extra.extra_faces``, as its build's ``extra.dirs``
    wrote them) of the extra-face folders that hold ``folder`` or lie inside it: a set the model
    distilled from, which cannot judge it. Bundles built before that field was written record
    nothing (their extra faces are in their build's report)."""
    from tinyface.config import ExtraSettings

    names = [str(d) for d in bundle.meta.extra.get("extra_faces", [])]
    here = Path(folder).resolve()
    paths = [path.resolve() for path in ExtraSettings(dirs=names).paths()]
    return [name for name, path in zip(names, paths) if here.is_relative_to(path) or path.is_relative_to(here)]


def main() -> None:
    import argparse

    from identify_threshold import validation_settings  # benchmarks/, beside this script
    from tinyface.evaluation import metrics
    from tinyface.model.bundle import load_bundle
    from tinyface.model.embedder import Embedder
    from tinyface.train.build_data import load_build_data
    from tinyface.train.stages_eval import VALIDATION_SEED, VALIDATION_SAME

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True,
                    help="bundle folder (repeatable; the first is the reference), e.g. models/esp32")
    ap.add_argument("--preset", required=True, help="the preset whose validation people to use, e.g. esp32")
    ap.add_argument("--same", type=int, default=VALIDATION_SAME,
                    help=f"same-person pairs to draw, and as many different ones (default {VALIDATION_SAME:,}: the "
                         "build's pairs; more pairs of the same people narrow the intervals less than their number "
                         "suggests)")
    ap.add_argument("--people", metavar="DIR",
                    help="draw the pairs from this folder-per-person set (e.g. the CelebA subset) instead of the "
                         "preset's validation people; the teacher's figures come first")
    args = ap.parse_args()
    if args.same < 1:
        ap.error("--same must be at least 1")
    if len(set(args.model)) < len(args.model):
        ap.error("a --model was given twice: compare different bundles")
    bundles = {folder: load_bundle(Path(folder)) for folder in args.model}
    settings = validation_settings(args.preset, bundles)
    if args.people:
        if not Path(args.people).is_dir():
            ap.error(f"--people {args.people}: no such folder")
        for folder, bundle in bundles.items():
            if seen := distilled_from(bundle, args.people):
                ap.error(f"--people {args.people}: {folder} distilled from it (extra faces {', '.join(seen)}): "
                         "judge it on a set it has not seen")
        crops, teacher, labels, skipped = people_faces(args.people, settings, settings.data.workers)
        where = f"{args.people} ({skipped} photos without a detected face left out)"
    else:
        data = load_build_data(settings)
        crops, teacher, labels, where = data.val.crops, None, data.val.labels, "validation"
    a, b, same = metrics.sample_pairs(labels, args.same, seed=VALIDATION_SEED)
    scores = {folder: metrics.pair_scores(Embedder(bundle.model_bytes, "tflm").embed(crops), a, b)
              for folder, bundle in bundles.items()}
    _, person = np.unique(labels, return_inverse=True)
    (ref_name, ref), *others = scores.items()
    print(f"preset {args.preset}: {len(same):,} pairs of {where} ({int(same.sum()):,} same), TFLM int8, "
          f"{len(np.unique(person[np.concatenate([a, b])]))} people, {BOOTSTRAP} paired bootstrap draws over people")
    if teacher is not None:
        t = metrics.pair_scores(teacher, a, b)
        print(f"  teacher (dlib ResNet): pairs {best_accuracy(t, same):.2%}, AUC {roc_auc(t, same):.4f}")
    print(f"  {ref_name}: pairs {best_accuracy(ref, same):.2%}, AUC {roc_auc(ref, same):.4f} (the reference)")
    for name, other in others:
        c = compare(ref, other, same, person[a], person[b])
        lo, hi = c["accuracy_interval"]
        alo, ahi = c["auc_interval"]
        verdict = "within the noise" if lo <= 0 <= hi else ("better" if lo > 0 else "worse")
        print(f"  {name}: pairs {c['accuracy']:.2%} ({c['difference'] * 100:+.2f} points, 95% {lo * 100:+.2f} to "
              f"{hi * 100:+.2f}; only the reference right on {c['only_reference_right']}, only this on "
              f"{c['only_this_right']}, McNemar p {c['mcnemar_p']:.2f}), AUC {c['auc']:.4f} "
              f"({c['auc_difference']:+.4f}, 95% {alo:+.4f} to {ahi:+.4f}): {verdict}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
