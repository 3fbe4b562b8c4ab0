"""Is a student's loss on a hard set in the pixels or in the landmarks found on them?

    python benchmarks/hard_faces.py --out /tmp/hard-faces-val --validation --people 200 --images 8
    python benchmarks/hard_faces_landmarks.py --out /tmp/hard-faces-val --model models/esp32 [--set dark ...]

For every image of the sets that hard_faces.py wrote (landmarks from its face cache; an image the
cache lacks, for a set hard_faces.py was not asked for, is aligned here as the pipeline aligns it,
and counted), the bundle's crop is cut three ways, as the pipeline cuts it (tinyface.data.align.cut_chip, fill
past the photo as the students' crops): the untouched photo with its landmarks; the hard photo
with the landmarks found on it (what the device gets); the hard photo with the *untouched* photo's
landmarks (perfect alignment). The bundle's int8 model (TFLite) embeds them, and the script prints
balanced accuracy at the bundle's shipped threshold and at the best one, over balanced pairs drawn
as hard_faces.py draws its own (metrics.sample_pairs: every same-person pair, as many
different-person ones, seed 0), the three cuts of a set on the same pairs. They are not
hard_faces.py's pairs: the people are listed in name order, not in hard_faces.py's draw
(hard_faces.drawn_people, which chip_fill.py and dark_chips.py follow to share its threshold), so
the same-person pairs are hard_faces.py's and the different-person ones are others; no figure here
is compared with hard_faces.py's, and no --data, --seed or --validation is needed to read the sets.
If the hard photo with the untouched landmarks scores as low as with its own, the landmarks are
not what it loses. Tight sets are left out (their photos are other crops: the untouched landmarks
do not apply).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tinyface.data.align import CROP_OUTSIDE, Aligner, Alignment, cut_chip
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec, cached_alignments
from tinyface.errors import DataError
from tinyface.evaluation.metrics import balanced_accuracy, pair_scores, sample_pairs
from tinyface.model.bundle import load_bundle
from tinyface.model.embedder import Embedder

SETS = ("dim", "dark", "side")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the folder hard_faces.py wrote its sets and cache to")
    ap.add_argument("--model", default="models/esp32", help="bundle folder (default: %(default)s)")
    ap.add_argument("--set", dest="sets", action="append", choices=SETS, help=f"hard sets (default: {' '.join(SETS)})")
    args = ap.parse_args()
    if not (args.out / "untouched").is_dir() or not (args.out / "cache").is_dir():
        raise DataError(f"no hard sets in {args.out}", hint=f"run benchmarks/hard_faces.py --out {args.out} first")
    bundle = load_bundle(Path(args.model))
    _, size, _, channels = (int(v) for v in bundle.meta.input_shape)
    padding = float(bundle.meta.crop_padding)
    spec = FaceSpec(crop_size=size, channels=channels, padding=padding)
    embedder = Embedder(bundle.model_bytes, "tflite")

    def cut(rgb: np.ndarray, alignment: Alignment) -> np.ndarray:
        return cut_chip(rgb, alignment, size, padding, channels, outside=CROP_OUTSIDE)

    sets = args.sets or SETS
    untouched = sorted((args.out / "untouched").glob("*/*.*"))
    hard = {name: [next(iter((args.out / name / p.parent.name).glob(p.stem + ".*")), None) for p in untouched]
            for name in sets}
    files = untouched + [h for paths in hard.values() for h in paths if h is not None]
    with FaceCache(args.out / "cache") as cache:  # every landmark in one look-up
        lmk = dict(zip(files, cached_alignments(files, spec, cache), strict=True))
    uncached = [f for f, al in lmk.items() if al is None]
    aligner = Aligner(spec.detector_upsample)  # as prepare_faces' workers align (data.faces._process)
    for f in uncached:
        lmk[f] = aligner.detect(read_image(f))
    base = untouched
    photos = {p: read_image(p) for p in base}
    plain = dict(zip(base, embedder.embed(np.stack([cut(photos[p], lmk[p]) for p in base])), strict=True))
    print(f"{args.model} (TFLite int8) on {args.out}, shipped threshold {bundle.meta.threshold:.4f}; "
          f"{len(files)} images, {len(uncached)} aligned here, the rest from the cache")
    print(f"{'crops':<36} {'images':>6} {'at shipped thr.':>15} {'best':>7}")
    for name in sets:
        rows = [(p, h) for p, h in zip(untouched, hard[name], strict=True) if h is not None]
        # people in name order: hard_faces.py's same-person pairs, other different-person ones (docstring)
        a, b, same = sample_pairs([p.parent.name for p, _ in rows], None, 0)
        rgbs = [read_image(h) for _, h in rows]
        embeddings = {"untouched": np.stack([plain[p] for p, _ in rows]),
                      f"{name}, its own landmarks": embedder.embed(np.stack(
                          [cut(rgb, lmk[h]) for rgb, (_, h) in zip(rgbs, rows, strict=True)])),
                      f"{name}, the untouched landmarks": embedder.embed(np.stack(
                          [cut(rgb, lmk[p]) for rgb, (p, _) in zip(rgbs, rows, strict=True)]))}
        for label, emb in embeddings.items():
            scores = pair_scores(emb, a, b)
            at, best = balanced_accuracy(scores, same, bundle.meta.threshold), balanced_accuracy(scores, same)
            print(f"{label:<36} {len(emb):>6} {at:>15.2%} {best:>7.2%}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
