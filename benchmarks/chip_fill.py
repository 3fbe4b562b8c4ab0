"""What a chip shows outside the photo: the teacher's accuracy on the tight-crop sets of
benchmarks/hard_faces.py when the part of a rescued face's chip that lies outside the image is
filled black (what cut_chip does), from the image border (replicated or mirrored) or with the
image's mean colour.

    python benchmarks/hard_faces.py --out /tmp/hard-faces --people 150 [--validation]
    python benchmarks/chip_fill.py --out /tmp/hard-faces [--validation] [--sets tight100,tight85,tight]

Reads the sets and the landmarks hard_faces.py cached under --out (run it first). Only faces
not found by the plain detector are filled (the detector's faces keep their chips, so caches
stay valid); the pairs and the threshold (best on the untouched set) are hard_faces.py's: give
the --seed and --validation the sets were drawn with (the script refuses others, from the
sets' draw.json).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

FILLS = ("black", "edge", "symmetric", "mean")


def _hard_faces():
    spec = importlib.util.spec_from_file_location("hard_faces", Path(__file__).with_name("hard_faces.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listing(out: Path, data: Path, seed: int, hard_faces, validation: bool = False) -> list[tuple[str, str]]:
    """(person, image stem) in hard_faces.make_sets' order (hard_faces.drawn_people: its shuffled
    training people, or validation people with ``validation``; each person's images by name), so
    that sample_pairs with ``seed`` decides hard_faces.py's own pairs.

    Raises:
        tinyface.errors.DataError: ``out`` holds no sets of hard_faces.py.
        tinyface.errors.ConfigError: ``out``'s sets were drawn with another seed or people
            (hard_faces.check_draw).
    """
    from tinyface.errors import DataError

    if not (out / "untouched").is_dir():
        raise DataError(f"no hard sets in {out}", hint=f"run benchmarks/hard_faces.py --out {out} first")
    hard_faces.check_draw(out, seed, validation)
    items = []
    for name, _ in hard_faces.drawn_people(data, seed, validation):
        folder = out / "untouched" / name
        if folder.is_dir():
            items += [(name, p.stem) for p in sorted(folder.iterdir())]
    return items


def cut_filled(rgb: np.ndarray, alignment, fill: str, spec):
    """The teacher's chip (``spec``: a tinyface.data.faces.FaceSpec, its ``cut_teacher_chip``),
    the photo first padded by ``fill`` far enough that the chip lies inside it; returns (chip,
    whether the chip reached outside the photo)."""
    from tinyface.data.align import Alignment, chip_affine

    size = spec.teacher_chip_size
    matrix = chip_affine(alignment, rgb.shape[:2], size, spec.teacher_padding)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], float)
    src = corners @ inverse[:, :2].T + inverse[:, 2]
    h, w = rgb.shape[:2]
    reach = max(0.0, -src.min(), (src[:, 0] - (w - 1)).max(), (src[:, 1] - (h - 1)).max())
    if reach == 0 or fill == "black":
        return spec.cut_teacher_chip(rgb, alignment), reach > 0
    margin = int(np.ceil(reach)) + 2
    pad = ((margin, margin), (margin, margin), (0, 0))
    if fill == "mean":
        padded = np.pad(rgb, pad, mode="constant")
        padded[:margin], padded[-margin:] = rgb.reshape(-1, 3).mean(0), rgb.reshape(-1, 3).mean(0)
        padded[:, :margin], padded[:, -margin:] = rgb.reshape(-1, 3).mean(0), rgb.reshape(-1, 3).mean(0)
    else:
        padded = np.pad(rgb, pad, mode=fill)
    moved = Alignment(alignment.landmarks + margin, True, alignment.method)
    return spec.cut_teacher_chip(padded, moved), True


def main() -> None:
    from tinyface.config import default_data_dir
    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import read_image
    from tinyface.data.faces import FaceSpec, cached_alignments
    from tinyface.errors import DataError
    from tinyface.evaluation.metrics import accuracy_at, best_threshold, pair_scores, sample_pairs
    from tinyface.teacher import embed_chips

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="hard_faces.py's --out (its sets and cache)")
    ap.add_argument("--data", default=str(default_data_dir()),
                    help="the LFW folder hard_faces.py read, with peopleDevTrain.txt (default: %(default)s: "
                         "$TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw)")
    ap.add_argument("--sets", default="tight100,tight85,tight",
                    help="the sets to fill, comma-separated (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="hard_faces.py's --seed (default: %(default)s)")
    ap.add_argument("--validation", action="store_true", help="hard_faces.py's --validation: sets of validation people")
    args = ap.parse_args()
    hard_faces = _hard_faces()
    out = Path(args.out)
    items = listing(out, Path(args.data), args.seed, hard_faces, args.validation)
    a, b, same = sample_pairs([name for name, _ in items], None, args.seed)  # hard_faces.py's pairs
    spec = FaceSpec()

    def alignments(cache, paths):
        found = cached_alignments(paths, spec, cache)
        missing = sum(al is None for al in found)
        if missing:
            raise DataError(f"{missing} images of {paths[0].parent.parent} have no cached landmarks",
                            hint=f"run benchmarks/hard_faces.py --out {out} first")
        return found

    with FaceCache(out / "cache") as cache:
        paths = [next((out / "untouched" / name).glob(stem + ".*")) for name, stem in items]
        chips = [spec.cut_teacher_chip(read_image(p), al)
                 for p, al in zip(paths, alignments(cache, paths), strict=True)]
        threshold = best_threshold(pair_scores(embed_chips(chips), a, b), same)
        print(f"{len(items)} images, {len(same)} pairs; threshold {threshold:.4f} (best on untouched)")
        print(f"{'set':<9} {'rescued':>7} {'filled':>6}  " + "  ".join(f"{f:>9}" for f in FILLS))
        for set_name in args.sets.split(","):
            paths = [out / set_name / name / (stem + ".png") for name, stem in items]
            found = alignments(cache, paths)
            images = [read_image(p) for p in paths]
            rescued = [al.detected and al.method != "detector" for al in found]
            row, filled = [], 0
            for fill in FILLS:
                chips, reached = [], []
                for rgb, al, r in zip(images, found, rescued, strict=True):
                    chip, outside = cut_filled(rgb, al, fill, spec) if r else (spec.cut_teacher_chip(rgb, al), False)
                    chips.append(chip)
                    reached.append(outside)
                row.append(100 * accuracy_at(pair_scores(embed_chips(chips), a, b), same, threshold))
                filled = sum(reached)
            print(f"{set_name:<9} {sum(rescued):>7} {filled:>6}  " + "  ".join(f"{x:>8.2f}%" for x in row))


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
