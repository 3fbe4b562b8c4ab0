"""Choose extra.max_test_distance without the test people: how many same-person pairs of
*training* people lie within each threshold, and how many extra faces each would drop against
3,708 random training images standing in for the test people's images (peopleDevTest has
3,708). Prints the table of docs/data.md ("Contamination filter").

    python benchmarks/contamination.py                     # FairFace (tinyface data fetch fairface)
    python benchmarks/contamination.py --extra DIR --kind photos

Reads the cache (alignment and teacher embeddings); the first run over a new folder computes
them (FairFace: about 6 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from tinyface.config import EXTRA_KINDS

THRESHOLDS = (0.25, 0.30, 0.33, 0.36, 0.40, 0.45, 0.50)
# The mean length of dlib's raw descriptors over the 9,525 photos of LFW's training people
# (docs/second_teacher.md): it converts the thresholds for the table's "dlib scale" column, and
# for nothing else (the filter compares L2-normalised embeddings, extra.max_test_distance).
DLIB_NORM = 1.42


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", default="fairface", help="an extra.dirs entry (default: %(default)s)")
    parser.add_argument("--kind", default="chips", choices=EXTRA_KINDS,
                        help="extra.kind: the folder holds dlib chips or whole photos (default: %(default)s)")
    parser.add_argument("--reference", type=int, default=3708,
                        help="random training images standing in for the test people's (default: %(default)s)")
    args = parser.parse_args()
    if args.reference < 1:
        parser.error("--reference must be at least 1")

    from tinyface import config
    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import load_dataset
    from tinyface.data.extra import nearest_distances, require_extra
    from tinyface.data.faces import FaceSpec, prepare_faces
    from tinyface.data.splits import train_val_test

    s = config.load(base=config.load_preset("esp32").settings(), overrides={"extra": {"dirs": [args.extra],
                                                                                     "kind": args.kind}})
    dataset = load_dataset(s.data.data_path())
    train = train_val_test(dataset, s.data.val_fraction, s.data.seed).train
    spec = FaceSpec.from_settings(s, teacher=True)
    with FaceCache(s.data.cache_path()) as cache:
        res = prepare_faces([im.path for im in train], spec, cache)
        emb, labels = res.teacher[res.usable], np.array([im.identity for im in train])[res.usable]
        chip = s.extra.chip_padding if args.kind == "chips" else None
        extra = prepare_faces(require_extra(s.extra), dataclasses.replace(spec, source_chip_padding=chip), cache)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        groups.setdefault(name, []).append(i)
    same = np.concatenate([np.linalg.norm(emb[g][:, None] - emb[g][None], axis=2)[np.triu_indices(len(g), 1)]
                           for g in groups.values() if len(g) > 1])
    reference = np.random.default_rng(0).choice(len(emb), min(args.reference, len(emb)), replace=False)
    nearest = nearest_distances(extra.teacher[extra.usable], emb[reference])
    print(f"{len(same):,} same-person pairs of {len(groups):,} training people; {len(nearest):,} extra faces; "
          f"reference: {len(reference):,} training images")
    print("| threshold (dlib scale) | same-person pairs within it | extra faces it would drop |")
    print("|---|---|---|")
    for t in THRESHOLDS:
        print(f"| {t:.2f} ({t * DLIB_NORM:.2f}) | {np.mean(same < t):.1%} | {np.mean(nearest < t):.1%} |")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
