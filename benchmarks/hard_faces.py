"""Faces that are hard to find: found-rate and the teacher's verification accuracy on tight
crops, dark photos and one-sided light, made from LFW *training* people, vs the untouched images.

    python benchmarks/hard_faces.py --out /tmp/hard-faces [--data DIR] [--people 150]
                                    [--images 4] [--validation] [--baseline] [--json]

Writes the test sets under --out (outside the repository; never committed):
``untouched/``, ``tight100/`` (the detector's box cut out exactly), ``tight85/`` (0.85 x the box),
``tight/`` (0.7 x the box), ``dim/`` (underexposed), ``dark/`` (very dark) and ``side/``, one
folder per person, the same images in each, plus a face cache. People come from
``peopleDevTrain.txt`` only (never DevTest), each with at least 2 images in which dlib's detector
finds a face on the untouched photo (the tight crops are cut from that face box). Then, per set:

- found: images whose face was found by any method but the centered fallback, and how;
- teacher accuracy: dlib's ResNet on balanced pairs of these images (every same-person pair,
  as many different-person pairs; the same pairs in every set), at the threshold that is
  best on the untouched set (one threshold, as a deployed model has) and best per set.

``--baseline`` also runs the detector alone (as before the rescue steps), in its own cache.
One draw of 150 people moves the teacher's figures by about a point between seeds (960 pairs):
issue #17's acceptance is read with ``--people 450`` (2,844 pairs; docs/data.md).

``--validation`` takes the people from the builds' *validation* people only (the split every
build makes of peopleDevTrain.txt: 126 of them have 2 images or more), whom no student trains
on: the sets to read a student trained on badly lit faces with (docs/model.md, "Badly lit
faces"). Without it the people are training people, which the students have seen.

The draw (--seed, --validation) is recorded in --out's draw.json: benchmarks/chip_fill.py and
benchmarks/dark_chips.py list the people in this script's order (drawn_people) and so decide
the same pairs, and refuse another --seed or --validation than the sets were drawn with.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tinyface.data.hard_photos import darken, side_light, tight_crop
from tinyface.errors import ConfigError

SETS = ("untouched", "tight100", "tight85", "tight", "dim", "dark", "side")
TIGHT85_BOX = 0.85  # a looser tight crop
TIGHT100_BOX = 1.0  # the detector's face box cut out exactly, as many cameras and face datasets deliver it
DIM_GAIN, DIM_GAMMA, DIM_NOISE = 0.25, 1.8, 1.5  # underexposed: brightest pixel ~64/255
# very dark (darken's defaults), side light (side_light's) and tight (tight_crop's 0.7): tinyface.data.hard_photos
DRAW_FILE = "draw.json"  # under --out: the --seed and --validation the sets were drawn with


def detector_box(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest face box of dlib's detector (upsampled retry), or None."""
    from tinyface.data.align import dlib_models

    detector, _ = dlib_models()
    rects = detector(rgb, 0) or detector(rgb, 1)
    if not rects:
        return None
    r = max(rects, key=lambda r: r.area())
    return r.left(), r.top(), r.right(), r.bottom()


def training_people(data: Path, min_images: int = 2) -> list[tuple[str, int]]:
    """LFW's peopleDevTrain.txt people with at least ``min_images`` images (never DevTest)."""
    from tinyface.data.lfw import PEOPLE_DEV_TRAIN, read_people

    return [(name, n) for name, n in read_people(data / PEOPLE_DEV_TRAIN) if n >= min_images]


def validation_people(data: Path, min_images: int = 2) -> list[tuple[str, int]]:
    """The builds' validation people (tinyface.data.splits, the default settings' fraction and
    seed) with at least ``min_images`` images, in name order."""
    from collections import Counter

    from tinyface import config
    from tinyface.data.dataset import load_dataset
    from tinyface.data.splits import train_val_test

    d = config.load().data
    counts = Counter(im.identity for im in train_val_test(load_dataset(data), d.val_fraction, d.seed).val)
    return sorted((name, n) for name, n in counts.items() if n >= min_images)


def drawn_people(data: Path, seed: int, validation: bool = False) -> list[tuple[str, int]]:
    """The people make_sets goes through, in its order: the training (or, with ``validation``,
    the validation) people with 2 images or more, shuffled by ``seed``. The sets hold the first
    of them with 2 faces found, in this order, which decides the pairs (sample_pairs)."""
    chosen = validation_people(data) if validation else training_people(data)
    random.Random(seed).shuffle(chosen)
    return chosen


def make_sets(data: Path, out: Path, people: int, images: int, seed: int,
              validation: bool = False) -> dict[str, list[tuple[Path, str]]]:
    """Write the sets and ``out``'s draw.json; returns set -> [(path, person)] in the same order
    in every set."""
    from PIL import Image

    from tinyface.data.dataset import read_image
    from tinyface.fsutil import write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / DRAW_FILE, {"seed": seed, "validation": validation})
    listing: dict[str, list[tuple[Path, str]]] = {s: [] for s in SETS}
    used = 0
    for name, _n in drawn_people(data, seed, validation):
        if used >= people:
            break
        srcs = sorted((data / "images" / name).glob("*.jpg"))[:images]
        kept = []
        for src in srcs:
            rgb = read_image(src)
            box = detector_box(rgb)
            if box is not None:
                kept.append((src, rgb, box))
        if len(kept) < 2:
            continue
        used += 1
        for src, rgb, box in kept:
            seed_i = int.from_bytes(src.name.encode()[-8:], "little") ^ seed
            views = {"untouched": None, "tight100": tight_crop(rgb, box, TIGHT100_BOX),
                     "tight85": tight_crop(rgb, box, TIGHT85_BOX), "tight": tight_crop(rgb, box),
                     "dim": darken(rgb, seed_i, DIM_GAIN, DIM_GAMMA, DIM_NOISE), "dark": darken(rgb, seed_i),
                     "side": side_light(rgb, seed_i)}
            for set_name, arr in views.items():
                folder = out / set_name / name
                folder.mkdir(parents=True, exist_ok=True)
                if arr is None:
                    dest = folder / src.name
                    shutil.copy2(src, dest)
                else:
                    dest = folder / (src.stem + ".png")
                    Image.fromarray(arr).save(dest)
                listing[set_name].append((dest, name))
    return listing


def check_draw(out: Path, seed: int, validation: bool) -> None:
    """Refuse to read the sets under ``out`` as drawn with ``seed`` and ``validation`` (a
    follower's --seed and --validation) when its draw.json says otherwise: their people would be
    listed in another order than make_sets wrote them, and decide other pairs. Sets written
    before draw.json are taken as the follower says.

    Raises:
        tinyface.errors.ConfigError: the sets were drawn with another seed or other people.
    """
    import json

    record = out / DRAW_FILE
    if not record.is_file():
        return
    drawn = json.loads(record.read_text(encoding="utf-8"))
    if (drawn["seed"], drawn["validation"]) != (seed, validation):
        raise ConfigError(f"the sets in {out} were drawn with --seed {drawn['seed']}"
                          f"{' --validation' if drawn['validation'] else ''} ({record}): pass the same")


def measure(listing, cache_dir: Path, workers: int, rescue: bool, seed: int) -> dict:
    from tinyface.data.align import Aligner
    from tinyface.data.cache import FaceCache
    from tinyface.data.faces import FaceSpec, prepare_faces
    from tinyface.evaluation.metrics import accuracy_at, best_accuracy, best_threshold, pair_scores, sample_pairs

    labels = [name for _, name in listing["untouched"]]
    a, b, same = sample_pairs(labels, None, seed)  # every same-person pair, as many different ones
    results, scores = {}, {}
    with FaceCache(cache_dir) as cache:
        for set_name in SETS:
            paths = [p for p, _ in listing[set_name]]
            faces = prepare_faces(paths, FaceSpec(teacher=True), cache, workers=workers,
                                  aligner_factory=lambda up: Aligner(up, rescue=rescue))
            n = int(faces.ok.sum())
            found = int(faces.usable.sum())
            scores[set_name] = pair_scores(faces.teacher, a, b)
            results[set_name] = {"images": n, "found": found, "found_percent": round(100 * found / max(n, 1), 2),
                                 "methods": faces.method_counts()}
    threshold = best_threshold(scores["untouched"], same)
    for set_name in SETS:
        s = scores[set_name]
        results[set_name]["teacher_accuracy_percent"] = round(100 * accuracy_at(s, same, threshold), 2)
        results[set_name]["teacher_accuracy_own_threshold_percent"] = round(100 * best_accuracy(s, same), 2)
    return {"pairs": int(len(same)), "same_pairs": int(same.sum()), "threshold": round(threshold, 4), "sets": results}


def print_table(title: str, result: dict) -> None:
    print(f"{title}: {result['pairs']} pairs ({result['same_pairs']} same), threshold {result['threshold']} "
          "(best on untouched)")
    print(f"{'set':<10} {'images':>6} {'found':>8} {'teacher acc':>11} {'(own thr.)':>10}  methods")
    base = result["sets"]["untouched"]["teacher_accuracy_percent"]
    for set_name, r in result["sets"].items():
        delta = r["teacher_accuracy_percent"] - base
        methods = ", ".join(f"{m} {n}" for m, n in sorted(r["methods"].items(), key=lambda kv: -kv[1]))
        print(f"{set_name:<10} {r['images']:>6} {r['found_percent']:>7.2f}% {r['teacher_accuracy_percent']:>6.2f}% "
              f"({delta:+.2f}) {r['teacher_accuracy_own_threshold_percent']:>9.2f}%  {methods}")


def main() -> None:
    from tinyface.config import default_data_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_data_dir()),
                    help="LFW folder, with peopleDevTrain.txt (default: %(default)s: $TINYFACE_DATA, else "
                         "~/.cache/tinyface/datasets/lfw)")
    ap.add_argument("--out", required=True, help="where the sets and their cache go (outside the repository)")
    ap.add_argument("--people", type=int, default=150,
                    help="people to draw, each with 2 or more images with a face found (default: %(default)s)")
    ap.add_argument("--images", type=int, default=4, help="at most this many images per person (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0,
                    help="the draw of the people, the noise of the hard photos and the pairs (default: %(default)s)")
    ap.add_argument("--validation", action="store_true",
                    help="the builds' validation people (no student trains on them), not training people")
    ap.add_argument("--workers", type=int, default=os.cpu_count(),
                    help="processes that align and embed the sets (default: %(default)s: one per core)")
    ap.add_argument("--baseline", action="store_true", help="also the detector alone (before the rescue steps)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    out = Path(args.out).expanduser().resolve()
    repo = Path(__file__).resolve().parents[1]
    if out == repo or repo in out.parents:
        raise ConfigError("--out must be outside the repository (the sets are never committed)")
    data = Path(args.data)
    for set_name in SETS:
        shutil.rmtree(out / set_name, ignore_errors=True)
    listing = make_sets(data, out, args.people, args.images, args.seed, args.validation)
    report = {"people": len({n for _, n in listing["untouched"]}), "rescue": measure(
        listing, out / "cache", args.workers, True, args.seed)}
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="hard-faces-baseline-") as tmp:
            report["detector_only"] = measure(listing, Path(tmp), args.workers, False, args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    role = "validation" if args.validation else "training"
    print(f"{report['people']} LFW {role} people (peopleDevTrain.txt), sets in {out}")
    print_table("with the rescue steps", report["rescue"])
    if "detector_only" in report:
        print_table("detector alone", report["detector_only"])


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
