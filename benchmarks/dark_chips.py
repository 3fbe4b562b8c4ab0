"""Very dark photos: what the brightening and the landmark refinement are worth, on the dark
set of benchmarks/hard_faces.py (teacher accuracy, its pairs and its threshold).

    python benchmarks/hard_faces.py --out /tmp/hard-faces --people 150 [--validation]
    python benchmarks/dark_chips.py --out /tmp/hard-faces [--validation] [--set dark]

Chips cut with the true landmarks (the detector's on the untouched photo: the sets keep the
geometry) brightened as before (a 3x3 median, then the gain) and as now (align.brighten: a
1 px Gaussian, then the gain); then the landmarks the rescue steps find, before and after
align.Aligner's refinement on the brightened photo. The pairs are hard_faces.py's given the
--seed and --validation the sets were drawn with (chip_fill.listing; others are refused).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def brighten_with_median(rgb: np.ndarray) -> np.ndarray:
    """align.brighten before the Gaussian: a 3x3 median on a very dark photo, then the gain."""
    from PIL import Image, ImageFilter

    from tinyface.data.align import BRIGHTEN_TO, VERY_DARK_P995, luminance

    hi = float(np.percentile(luminance(rgb), 99.5))
    if hi < VERY_DARK_P995:
        rgb = np.asarray(Image.fromarray(rgb).filter(ImageFilter.MedianFilter(3)))
        hi = float(np.percentile(luminance(rgb), 99.5))
    return np.clip(np.rint(rgb.astype(np.float32) * BRIGHTEN_TO / max(hi, 1.0)), 0, 255).astype(np.uint8)


def main() -> None:
    from tinyface.config import default_data_dir
    from tinyface.data.align import Aligner
    from tinyface.data.dataset import read_image
    from tinyface.data.faces import FaceSpec
    from tinyface.evaluation.metrics import accuracy_at, best_threshold, pair_scores, sample_pairs
    from tinyface.teacher import embed_chips

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="hard_faces.py's --out (its sets)")
    ap.add_argument("--data", default=str(default_data_dir()),
                    help="the LFW folder hard_faces.py read, with peopleDevTrain.txt (default: %(default)s: "
                         "$TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw)")
    ap.add_argument("--set", default="dark", help="the hard set to read (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="hard_faces.py's --seed (default: %(default)s)")
    ap.add_argument("--validation", action="store_true", help="hard_faces.py's --validation: sets of validation people")
    args = ap.parse_args()
    hard_faces, chip_fill = _benchmark("hard_faces"), _benchmark("chip_fill")
    out = Path(args.out)
    items = chip_fill.listing(out, Path(args.data), args.seed, hard_faces, args.validation)
    a, b, same = sample_pairs([name for name, _ in items], None, args.seed)  # hard_faces.py's pairs
    aligner, spec = Aligner(1), FaceSpec()
    untouched = [read_image(next((out / "untouched" / name).glob(stem + ".*"))) for name, stem in items]
    truth = [Aligner(1, rescue=False).detect(rgb) for rgb in untouched]

    def accuracy(chips) -> float:
        return 100 * accuracy_at(pair_scores(embed_chips(chips), a, b), same, threshold)

    threshold = best_threshold(pair_scores(embed_chips(
        [spec.cut_teacher_chip(rgb, al) for rgb, al in zip(untouched, truth, strict=True)]), a, b), same)
    dark = [read_image(out / args.set / name / (stem + ".png")) for name, stem in items]
    print(f"{args.set}: {len(items)} images, {len(same)} pairs, threshold {threshold:.4f} (best on untouched)")
    found = [aligner.find(rgb) for rgb in dark]  # before detect's refinement
    refined = [aligner.detect(rgb) for rgb in dark]
    moved = sum(not np.array_equal(f.landmarks, r.landmarks) for f, r in zip(found, refined, strict=True))
    rows = [("true landmarks, 3x3 median + gain (before)", [brighten_with_median(rgb) for rgb in dark], truth),
            ("true landmarks, 1 px Gaussian + gain (now)", dark, truth),
            ("landmarks as the rescue steps find them", dark, found),
            (f"those refined on the brightened photo ({moved} moved)", dark, refined)]
    for label, images, alignments in rows:
        chips = [spec.cut_teacher_chip(rgb, al) for rgb, al in zip(images, alignments, strict=True)]
        print(f"{label:<52} {accuracy(chips):6.2f}%")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
