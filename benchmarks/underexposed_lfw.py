"""How many LFW photos would have their chips brightened (align.underexposed): the face
region's brightest 1% against DARK_P99, over every image, from the face cache's landmarks
(aligned here where the cache has none).

    python benchmarks/underexposed_lfw.py [--data DIR] [--cache DIR]

Prints the number of images that trigger it (their paths), and the distribution of the face
region's 99th percentile.

It reads the pixels of every LFW image, peopleDevTest's included, and no names, pairs or
results: what it shows is that no chip the test evaluates changes (align.underexposed brightens
none of them). DARK_P99 itself was set on peopleDevTrain's photos (tinyface/data/align.py), not on
these figures; nothing here may move it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from tinyface.config import default_cache_dir, default_data_dir
    from tinyface.data.align import DARK_P99, Aligner, face_luminance
    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import read_image
    from tinyface.data.faces import FaceSpec, cached_alignments

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_data_dir()),
                    help="LFW folder (default: %(default)s: $TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw)")
    ap.add_argument("--cache", default=str(default_cache_dir()),
                    help="the face cache to read landmarks from (default: %(default)s: $TINYFACE_CACHE, else "
                         "~/.cache/tinyface/cache)")
    args = ap.parse_args()
    files = sorted((Path(args.data) / "images").glob("*/*.jpg"))
    if not files:
        from tinyface.errors import DataError

        raise DataError(f"no LFW images in {Path(args.data) / 'images'}", hint="--data DIR, or set TINYFACE_DATA")
    spec, aligner = FaceSpec(), Aligner(1)
    p99, triggered, aligned_here = [], [], 0
    with FaceCache(args.cache) as cache:
        for start in range(0, len(files), 1000):
            chunk = files[start:start + 1000]
            for path, alignment in zip(chunk, cached_alignments(chunk, spec, cache), strict=True):
                rgb = read_image(path)
                if alignment is None:
                    alignment, aligned_here = aligner.detect(rgb), aligned_here + 1
                p99.append(float(np.percentile(face_luminance(rgb, alignment), 99)))
                if p99[-1] < DARK_P99:
                    triggered.append(str(path))
    p99 = np.array(p99)
    print(f"{len(files)} LFW images ({aligned_here} aligned here, the rest from the cache)")
    print(f"underexposed (face region's 99th percentile < {DARK_P99}): {len(triggered)}")
    for path in triggered:
        print(f"  {path}")
    print("face region's 99th percentile: min {:.0f}, 0.1% {:.0f}, 1% {:.0f}, median {:.0f}".format(
        p99.min(), *np.percentile(p99, [0.1, 1, 50])))


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
