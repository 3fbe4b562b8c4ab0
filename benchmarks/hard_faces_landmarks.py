"""Is a student's loss on a hard set in the pixels or in the landmarks found on them?

    python benchmarks/hard_faces.py --out /tmp/hard-faces-val --validation --people 200 --images 8
    python benchmarks/hard_faces_landmarks.py --out /tmp/hard-faces-val --model models/esp32 [--set dark ...]

For every image of the sets that hard_faces.py wrote (and whose landmarks its face cache holds),
the bundle's crop is cut three ways, as the pipeline cuts it (tinyface.data.align.cut_chip, fill
past the photo as the students' crops): the untouched photo with its landmarks; the hard photo
with the landmarks found on it (what the device gets); the hard photo with the *untouched* photo's
landmarks (perfect alignment). The bundle's int8 model (TFLite) embeds them, and the script prints
balanced accuracy over hard_faces.py's balanced pairs (every same-person pair, as many different
ones, seed 0) at the bundle's shipped threshold and at the best one. If the hard photo with the
untouched landmarks scores as low as with its own, the landmarks are not what it loses.
Tight sets are left out (their photos are other crops: the untouched landmarks do not apply).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hard_faces import balanced_pairs  # benchmarks/, beside this script
from tinyface.data.align import CROP_OUTSIDE, Alignment, cut_chip
from tinyface.data.cache import FaceCache, content_hash
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec
from tinyface.evaluation.metrics import l2n
from tinyface.model.bundle import load_bundle
from tinyface.model.embedder import Embedder

SETS = ("dim", "dark", "side")


def balanced_accuracy(emb: np.ndarray, pairs, threshold: float) -> tuple[float, float]:
    """(at ``threshold``, at the best threshold) over ``pairs`` = (a, b, same)."""
    a, b, same = pairs
    scores = np.sum(emb[a] * emb[b], axis=1)

    def at(t):
        return 0.5 * (np.mean(scores[same] >= t) + np.mean(scores[~same] < t))

    return at(threshold), max(at(t) for t in np.unique(scores))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the folder hard_faces.py wrote its sets and cache to")
    ap.add_argument("--model", default="models/esp32", help="bundle folder")
    ap.add_argument("--set", dest="sets", action="append", choices=SETS, help=f"hard sets (default: {' '.join(SETS)})")
    args = ap.parse_args()
    if not (args.out / "untouched").is_dir() or not (args.out / "cache").is_dir():
        sys.exit(f"error: no hard sets in {args.out}: run benchmarks/hard_faces.py --out {args.out} first")
    bundle = load_bundle(Path(args.model))
    _, size, _, channels = (int(v) for v in bundle.meta.input_shape)
    padding = float(bundle.meta.crop_padding)
    digest = FaceSpec(crop_size=size, channels=channels, padding=padding).landmark_digest()
    embedder = Embedder(bundle.model_bytes, "tflite")
    with FaceCache(args.out / "cache") as cache:
        def landmarks(path: Path) -> Alignment | None:
            key = FaceCache.key("lmk", digest, content_hash(path.read_bytes()))
            found = cache.get_many([key])
            return Alignment.from_array(found[key]) if key in found else None

        untouched = sorted((args.out / "untouched").glob("*/*.*"))
        base = {p: (read_image(p), landmarks(p)) for p in untouched}
        print(f"{args.model} (TFLite int8) on {args.out}, shipped threshold {bundle.meta.threshold:.4f}")
        print(f"{'crops':<36} {'images':>6} {'at shipped thr.':>15} {'best':>7}")
        for name in args.sets or SETS:
            rows = []
            for p in untouched:
                hard = next(iter((args.out / name / p.parent.name).glob(p.stem + ".*")), None)
                lmk = landmarks(hard) if hard is not None else None
                if hard is None or lmk is None or base[p][1] is None:
                    continue
                rows.append((p.parent.name, base[p], read_image(hard), lmk))
            labels = [r[0] for r in rows]
            pairs = balanced_pairs(labels, 0)
            cuts = {"untouched": [cut_chip(rgb, al, size, padding, channels, outside=CROP_OUTSIDE)
                                  for _, (rgb, al), _, _ in rows],
                    f"{name}, its own landmarks": [cut_chip(h, al, size, padding, channels, outside=CROP_OUTSIDE)
                                                   for _, _, h, al in rows],
                    f"{name}, the untouched landmarks": [cut_chip(h, al, size, padding, channels, outside=CROP_OUTSIDE)
                                                         for _, (_, al), h, _ in rows]}
            for label, crops in cuts.items():
                at, best = balanced_accuracy(l2n(embedder.embed(np.stack(crops))), pairs, bundle.meta.threshold)
                print(f"{label:<36} {len(crops):>6} {at:>15.2%} {best:>7.2%}")


if __name__ == "__main__":
    main()
