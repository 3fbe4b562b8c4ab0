"""Wall time to align all of LFW on this machine, the share of images with a face found, and
how each was found (the images found other than by the detector are listed).

    python benchmarks/align_lfw.py [--data DIR] [--workers N] [--teacher] [--cache DIR]

With no --cache it uses a fresh temporary cache, so the figure is the real one-time cost.
--teacher also times dlib's ResNet embeddings (the other one-time pass of `tinyface build`).
"""

import argparse
import os
import tempfile
import time

from tinyface.config import default_cache_dir, default_data_dir
from tinyface.console import progress_bar
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import load_dataset
from tinyface.data.faces import FaceSpec, prepare_faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_data_dir()),
                    help="the LFW folder (default: %(default)s: $TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(),
                    help="alignment processes (default: %(default)s: one per core)")
    ap.add_argument("--cache", help=f"cache folder to fill (e.g. {default_cache_dir()}); default: a fresh temp one")
    ap.add_argument("--teacher", action="store_true", help="also time the teacher embeddings")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (default: %(default)s: all)")
    args = ap.parse_args()

    dataset = load_dataset(args.data)
    paths = [im.path for im in dataset.images]
    if args.limit:
        paths = paths[: args.limit]
    cache_dir = args.cache or tempfile.mkdtemp(prefix="tinyface-bench-")
    with FaceCache(cache_dir) as cache:
        t0 = time.perf_counter()
        with progress_bar("align", len(paths)) as advance:
            faces = prepare_faces(paths, FaceSpec(), cache, workers=args.workers, progress=advance)
        align_s = time.perf_counter() - t0
        n_ok = int(faces.ok.sum())
        n_det = int((faces.ok & faces.detected).sum())
        print(f"images: {len(paths)}  readable: {n_ok}  workers: {args.workers}  cpus: {os.cpu_count()}")
        print(f"align wall time: {align_s:.1f} s  ({1000 * align_s / max(1, len(paths)):.1f} ms/image, "
              f"{faces.computed} computed, {len(paths) - faces.computed} from cache)")
        print(f"face found: {n_det}/{n_ok} = {100 * n_det / max(1, n_ok):.2f}%  "
              f"(centered fallback: {n_ok - n_det})")
        print("found by: " + ", ".join(f"{m} {n}" for m, n in faces.method_counts().items()))
        for path, method in zip(faces.paths, faces.methods, strict=True):
            if method not in ("detector", ""):
                print(f"  {method}: {path}")
        if args.teacher:
            t0 = time.perf_counter()
            with progress_bar("teacher", len(paths)) as advance:
                faces = prepare_faces(paths, FaceSpec(teacher=True), cache, workers=args.workers, progress=advance)
            teach_s = time.perf_counter() - t0
            print(f"teacher wall time: {teach_s:.1f} s  ({1000 * teach_s / max(1, len(paths)):.1f} ms/image, "
                  f"{faces.computed} computed)")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
