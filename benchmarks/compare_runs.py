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

import numpy as np


def main() -> None:
    import argparse

    from tinyface.evaluation import metrics
    from tinyface.evaluation.metrics import best_accuracy
    from tinyface.model.embedder import Embedder
    from tinyface.train.build_data import load_build_data
    from tinyface.train.stages_eval import VALIDATION_SAME, VALIDATION_SEED

    from _lib import (  # benchmarks/, beside this script
        BOOTSTRAP,
        check_people,
        compare,
        load_bundles,
        people_faces,
        roc_auc,
        validation_settings,
    )

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
                         "preset's validation people (refused if a --model distilled from it, or if it holds LFW "
                         "test people); the teacher's figures come first")
    args = ap.parse_args()
    if args.same < 1:
        ap.error("--same must be at least 1")
    if len(set(args.model)) < len(args.model):
        ap.error("a --model was given twice: compare different bundles")
    bundles = load_bundles(args.model)
    settings = validation_settings(args.preset, bundles)
    check_people(ap, args.people, bundles, settings)
    if args.people:
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
