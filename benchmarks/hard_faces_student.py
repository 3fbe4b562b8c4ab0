"""The device's model on the sets of benchmarks/hard_faces.py: what `tinyface evaluate` gives a
released model (TFLM int8) on each set, next to the untouched photos.

    python benchmarks/hard_faces.py --out /tmp/hard-faces-450 --people 450
    python benchmarks/hard_faces_student.py --out /tmp/hard-faces-450 [--model models/esp32]

Runs `tinyface evaluate --data <set> --enroll 2 --runtime tflm --json` on every set, with the
face cache hard_faces.py wrote under --out (the landmarks are found once). Verification over
the pairs of each set (all pairs, sampled) at the model's shipped threshold: balanced accuracy,
AUC and TAR at FAR 1e-2 / 1e-3.

A caveat: the sets are made from LFW *training* people (hard_faces.py never touches a test
person), whose untouched photos the released students were distilled on. The untouched row
is therefore optimistic, and the drops from it are upper bounds of what the same conditions
cost on unseen people; the teacher's figures (hard_faces.py) have no such bias.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SETS = ("untouched", "tight100", "tight85", "dim", "dark", "side", "tight")


def evaluate(model: str, folder: Path, cache: Path) -> dict:
    env = dict(os.environ, TINYFACE_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "evaluate", "--model", model, "--data",
                           str(folder), "--enroll", "2", "--runtime", "tflm", "--json"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        sys.exit(f"hard_faces_student.py: evaluate on {folder} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="hard_faces.py's --out (its sets and face cache)")
    ap.add_argument("--model", default="models/esp32", help="a model bundle (default: models/esp32)")
    args = ap.parse_args()
    out = Path(args.out).expanduser()
    missing = [s for s in SETS if not (out / s).is_dir()]
    if missing:
        sys.exit(f"hard_faces_student.py: {out} has no {', '.join(missing)}: run benchmarks/hard_faces.py first")
    print(f"{args.model} (TFLM int8) on the sets in {out}; verification at the shipped threshold")
    print(f"{'set':<10} {'images':>6} {'no face':>7} {'balanced acc':>12} {'AUC':>7} {'TAR@1e-2':>8} {'TAR@1e-3':>8}")
    base = None
    for name in SETS:
        r = evaluate(args.model, out / name, out / "cache")
        v = r["verification"]
        acc = 100 * v["balanced_accuracy"]
        base = acc if base is None else base
        print(f"{name:<10} {r['images']:>6} {r['no_face']:>7} {acc:>6.2f}% ({acc - base:+.2f}) {v['auc']:>7.4f} "
              f"{100 * v['tar_at_far']['0.01']:>7.1f}% {100 * v['tar_at_far']['0.001']:>7.1f}%", flush=True)


if __name__ == "__main__":
    main()
