"""The teacher's speed and agreement: dlib's ResNet run by dlib-bin and by TensorFlow.

    python benchmarks/teacher.py [--data DIR] [--chips N] [--dlib-chips N]

Cuts N aligned 150x150 chips from LFW, embeds them with each backend (TensorFlow: the
batched path `tinyface build` uses; dlib: one process, as dlib-bin runs), and prints
milliseconds per chip and the largest difference between the two embeddings. Run it on
idle cores: the figures are wall time. The photos are the first N of LFW's training-split
people (peopleDevTrain.txt in file order, benchmarks/_lib.py's lfw_face_paths); the
held-out peopleDevTest photos are not read.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from tinyface.config import default_data_dir
from tinyface.data.align import Aligner
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec
from tinyface.errors import DataError
from tinyface.teacher import embed_chips

from _lib import lfw_face_paths  # benchmarks/, beside this script: LFW's training-split photos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_data_dir()),
                    help="the LFW folder, with peopleDevTrain.txt (default: %(default)s: $TINYFACE_DATA, else "
                         "~/.cache/tinyface/datasets/lfw)")
    ap.add_argument("--chips", type=int, default=512, help="chips for the TensorFlow timing (default: %(default)s)")
    ap.add_argument("--dlib-chips", type=int, default=32,
                    help="chips for the (slow) dlib timing and the comparison (default: %(default)s)")
    args = ap.parse_args()
    if args.chips < 1 or args.dlib_chips < 1:
        ap.error("--chips and --dlib-chips must be at least 1")
    if args.dlib_chips > args.chips:
        ap.error("--dlib-chips must not exceed --chips (the comparison takes the TensorFlow embeddings of its chips)")

    paths = lfw_face_paths(Path(args.data), args.chips)  # --dlib-chips <= --chips
    if len(paths) < args.chips:
        raise DataError(f"{args.data} holds {len(paths)} photos of peopleDevTrain.txt's people, not --chips "
                        f"{args.chips}")
    aligner, spec = Aligner(), FaceSpec()
    chips = []
    for path in paths:
        rgb = read_image(path)
        chips.append(spec.cut_teacher_chip(rgb, aligner.detect(rgb)))

    embed_chips(chips[:1])  # load and trace once, outside the timing
    t0 = time.perf_counter()
    ours = embed_chips(chips[: args.chips])
    tf_ms = 1000 * (time.perf_counter() - t0) / args.chips
    embed_chips(chips[:1], backend="dlib")
    t0 = time.perf_counter()
    ref = embed_chips(chips[: args.dlib_chips], backend="dlib")
    dlib_ms = 1000 * (time.perf_counter() - t0) / args.dlib_chips
    diff = float(np.abs(ours[: args.dlib_chips] - ref).max())
    print(f"tensorflow: {tf_ms:.1f} ms/chip over {args.chips} chips")
    print(f"dlib:       {dlib_ms:.1f} ms/chip over {args.dlib_chips} chips (one process)")
    print(f"speed-up: {dlib_ms / tf_ms:.1f}x   largest embedding difference: {diff:.2e}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
