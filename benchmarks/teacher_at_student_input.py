"""How much of the teacher's accuracy survives the student's input (its pixels per face and grey)?

    python benchmarks/teacher_at_student_input.py --preset esp32 [--preset esp32s3 ...]

For the validation people of `tinyface build --preset P` (never a test image), the teacher's chip
of every image (as the build cuts it: 150x150 RGB at teacher.chip_padding, 0.25, from the face
cache's landmarks) is degraded to what the preset's student sees: resampled to the student's
pixels per face (a BOX resize to crop_size x (1 + 2 x teacher.chip_padding) / (1 + 2 x
data.padding), then bilinear back up to 150) and/or made
grey (the student's single channel, replicated), and, last, also black past what the student's
crop shows (its padding within the chip's). The teacher embeds each version; the script
prints its accuracy on the build's 2,000 seeded validation pairs at the best threshold, and AUC.
If the teacher keeps close to its own accuracy on the student's input, a student of this input
size is bounded by its capacity, not by what its pixels hold.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from tinyface import config
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec, cached_alignments
from tinyface.evaluation import metrics
from tinyface.teacher import embed_chips
from tinyface.train.build_data import load_build_data
from tinyface.train.stages_eval import validation_pairs


def degrade(chip: np.ndarray, pixels: int, grey: bool, view: int = 0) -> np.ndarray:
    """A teacher chip at ``pixels`` across (0: as it is), grey when ``grey``, back at its own size
    in RGB; with ``view``, black outside the central ``view`` x ``view`` pixels (the student's
    field of view)."""
    size = chip.shape[0]
    if view:
        lo = (size - view) // 2
        seen = np.zeros_like(chip)
        seen[lo:lo + view, lo:lo + view] = chip[lo:lo + view, lo:lo + view]
        chip = seen
    img = Image.fromarray(chip)
    if grey:
        img = img.convert("L").convert("RGB")
    if pixels:
        img = img.resize((pixels, pixels), Image.BOX).resize((size, size), Image.BILINEAR)
    return np.asarray(img)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", action="append", required=True, help="e.g. esp32 (repeatable)")
    args = ap.parse_args()
    for preset in args.preset:
        settings = config.load(None, {"distill": {"teacher_views": 0, "teacher_mixes": 0}, "extra": {"dirs": []}},
                               base=config.load_preset(preset).settings())
        d = settings.data
        data = load_build_data(settings)
        spec = FaceSpec.from_settings(settings, teacher=True)
        with FaceCache(d.cache_path()) as cache:
            alignments = cached_alignments(data.val.paths, spec, cache)
        chips = [spec.cut_teacher_chip(read_image(p), al) for p, al in zip(data.val.paths, alignments, strict=True)]
        chip, chip_padding = spec.teacher_chip_size, spec.teacher_padding
        pixels = round(d.crop_size * (1 + 2 * chip_padding) / (1 + 2 * d.padding))
        view = round(chip * (1 + 2 * d.padding) / (1 + 2 * chip_padding))  # the student's crop within the chip
        a, b, same = validation_pairs(data.val.labels)
        print(f"preset {preset}: student input {d.crop_size}x{d.crop_size}x{d.channels} at padding {d.padding:g} "
              f"= a {pixels}-pixel teacher chip; {len(chips)} validation images, {len(same)} pairs")
        grey = d.channels == 1
        versions = {f"teacher chip ({chip} px, colour)": (0, False, 0), f"{pixels} px, colour": (pixels, False, 0),
                    f"{chip} px, grey": (0, True, 0), f"{pixels} px, grey": (pixels, True, 0),
                    f"{pixels} px{', grey' if grey else ''}, black past the crop": (pixels, grey, view)}
        if not grey:
            del versions[f"{chip} px, grey"], versions[f"{pixels} px, grey"]
        for name, (px, gr, seen) in versions.items():
            emb = embed_chips([degrade(c, px, gr, seen) for c in chips])
            scores = metrics.pair_scores(emb, a, b)
            acc = metrics.best_accuracy(scores, same)
            print(f"  {name:<32} pairs {acc:.2%}  AUC {metrics.auc(*metrics.roc_curve(scores, same)):.4f}", flush=True)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
