"""Bench the natively built firmware and the Python emulator on the same pairsDevTest images
and print how far they agree (outputs, same/different decisions) and their host timings.

    TFLM_DIR=... TFLM_THIRD_PARTY_DIR=... python benchmarks/native_vs_emulator.py \\
        --model models/esp32 --images 1000

Each side is `tinyface emulate --once` (with --native: the firmware built for this machine)
streamed by `tinyface bench`, which sends the held-out pairsDevTest faces (tinyface.device.bench).
What is compared is the two builds, not the model: the accuracy printed for each is the bundle's
test figure on those pairs at its own threshold, a report to choose nothing by. Both run on this
machine: their wall times are this machine's and say nothing of a board's time (`tinyface bench`
on a board measures that).

Needs LFW ($TINYFACE_DATA) and a tflite-micro checkout (docs/firmware.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinyface.errors import DeviceError


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinyface.cli.main", *args]


def bench(kind: str, model: str, board: str, images: int, out: Path) -> dict:
    """`tinyface bench` of ``images`` images on a `tinyface emulate` (with --native where ``kind``
    is ``native``), its results written to ``out``: returns them.

    Raises:
        tinyface.errors.DeviceError: the device did not start (its own last line on stderr:
            _lib.start_device), or bench failed (bench's own last line).
    """
    from _lib import start_device  # benchmarks/, beside this script

    extra = ["--native"] if kind == "native" else []
    device, port = start_device(_cli("emulate", "--board", board, "--model", model, "--once", *extra),
                                f"{kind}: the device (tinyface emulate{' --native' if extra else ''})", 600)
    try:
        done = subprocess.run(_cli("bench", "--port", port, "--board", board, "--model", model, "--images",
                                   str(images), "--out", str(out)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
        if done.returncode != 0:  # bench's own one line (no dataset, a bad board ...)
            said = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise DeviceError(f"{kind}: tinyface bench failed: {said[0]}")
    finally:
        os.killpg(device.pid, signal.SIGTERM)  # its own session (start_device): --native's firmware too
        device.wait(timeout=30)
        device.stdout.close()
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="bundle folder, e.g. models/esp32")
    parser.add_argument("--board", default="esp32", help="the board both emulate (default: %(default)s)")
    parser.add_argument("--images", type=int, default=1000,
                        help="held-out pairsDevTest images each side streams (default: %(default)s)")
    args = parser.parse_args()
    if args.images < 1:
        parser.error("--images must be at least 1")

    from tinyface.device.bench import pair_decisions
    from tinyface.model.bundle import load_bundle

    meta = load_bundle(args.model).meta
    with tempfile.TemporaryDirectory() as tmp:
        runs = {kind: bench(kind, args.model, args.board, args.images, Path(tmp) / f"{kind}.json")
                for kind in ("emulator", "native")}
    outputs = {kind: {r["index"]: np.frombuffer(bytes.fromhex(r["output_hex"]), np.int8) for r in run["records"]}
               for kind, run in runs.items()}
    pairs = runs["native"]["pairs"]
    assert pairs == runs["emulator"]["pairs"], "the two runs streamed different pairs"

    def decisions(out):
        keys = sorted(out)
        row = {k: n for n, k in enumerate(keys)}
        return pair_decisions(np.stack([out[k] for k in keys]), [(row[a], row[b], s) for a, b, s in pairs], meta)[1]

    common = sorted(set(outputs["native"]) & set(outputs["emulator"]))
    same_outputs = sum(np.array_equal(outputs["native"][i], outputs["emulator"][i]) for i in common)
    same_decisions = float(np.mean(decisions(outputs["native"]) == decisions(outputs["emulator"])))
    print(f"model {args.model} ({meta.name}), board {args.board}, {len(common)} images, {len(pairs)} pairs")
    print(f"native vs emulator: identical outputs {same_outputs}/{len(common)}, "
          f"identical decisions {100 * same_decisions:.2f}%")
    for kind, run in runs.items():
        s = run["summary"]
        print(f"{kind:9s} vs host TFLite int8: identical decisions {100 * s['identical_decisions']:.2f}%, "
              f"max {s['max_lsb_diff']} LSB; accuracy on the held-out pairsDevTest pairs {s['device_accuracy']:.4f} "
              f"(a report of the bundle's test figure, not for choosing); wall {s['host_wall_ms_mean']:.2f} "
              f"ms/inference on this machine (not a board's time)")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
