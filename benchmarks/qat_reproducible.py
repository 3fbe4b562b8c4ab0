"""Is quantization-aware training bit-reproducible? Run the quantize stage's QAT recipe twice
from a build's pruned student, side by side, with TensorFlow's default op scheduling and with the
build's (one op at a time: tinyface.console.one_op_at_a_time), and print the first training step
at which the two runs' weights differ.

    python benchmarks/qat_reproducible.py --run RUN --preset esp32c3 --steps 60

RUN is a `tinyface build` folder of that preset (its `prune/pruned.keras`, else
`distill/student.keras`); the build's data must be cached (`tinyface build` made it). Each run
is a fresh Python process: TensorFlow takes its scheduling only before its first op. The
two runs of a mode go side by side, as a build's QAT shares the cores with whatever else runs.
Every step's weights are hashed (SHA-1 of every variable, quantizer ranges included). It trains
on the preset's training faces only (no validation or test face), and chooses nothing.

What it measured on this repository's machine is in docs/model.md, "QAT is reproducible".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("default", "one-op")


def child(run: Path, preset_name: str, mode: str, steps: int, out: Path) -> None:
    """One QAT run of ``steps`` steps; writes {"hashes": [...], "seconds": s} to ``out``."""
    from tinyface.console import one_op_at_a_time, quiet_tensorflow

    quiet_tensorflow(import_now=True)  # TensorFlow's start-up lines muted; no op has run yet
    if mode == "one-op" and not one_op_at_a_time():
        raise RuntimeError("TensorFlow started before one_op_at_a_time")  # a bug: a fresh process
    import hashlib

    import numpy as np
    import tf_keras as keras

    from tinyface import config
    from tinyface.model.keras_io import load_keras
    from tinyface.train import pipeline
    from tinyface.train.build_data import load_build_data

    pipeline.load_stage_modules()
    settings = config.load(None, {}, base=config.load_preset(preset_name).settings())
    pruned = (run / "prune" / "pruned.keras").is_file()
    model = load_keras(run / "prune" / "pruned.keras" if pruned else run / "distill" / "student.keras")
    data = load_build_data(settings)
    training = pipeline.build_training_set(data, settings.distill)
    hashes: list[str] = []

    class Hash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            digest = hashlib.sha1()
            for w in self.model.weights:
                digest.update(np.ascontiguousarray(w.numpy()).tobytes())
            hashes.append(digest.hexdigest())
            if len(hashes) >= steps:
                self.model.stop_training = True

    started = time.perf_counter()
    pipeline.quantization_aware_training(model, training, settings, prune_preserving=pruned, callbacks=[Hash()])
    out.write_text(json.dumps({"hashes": hashes, "seconds": time.perf_counter() - started}))


def first_difference(a: list[str], b: list[str]) -> int | None:
    """The first step (1-based) at which two runs' weights differ, None if they never do."""
    for step, (x, y) in enumerate(zip(a, b, strict=False), 1):  # the shorter run: its end below
        if x != y:
            return step
    return None if len(a) == len(b) else min(len(a), len(b)) + 1


def pair(args, mode: str, scratch: Path) -> list[dict]:
    outs = [scratch / f"{mode}-{i}.json" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, __file__, "--child", mode, "--run", str(args.run), "--preset",
                               args.preset, "--steps", str(args.steps), "--out", str(out)]) for out in outs]
    codes = [p.wait() for p in procs]
    if any(codes):
        from tinyface.errors import ModelError

        raise ModelError(f"a {mode} QAT run failed (exit {max(codes)}); its error is above")
    return [json.loads(out.read_text()) for out in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True,
                    help="a `tinyface build` folder of --preset (its pruned student)")
    ap.add_argument("--preset", required=True, help="the preset RUN was built with, e.g. esp32c3")
    ap.add_argument("--steps", type=int, default=60, help="training steps per run (default: %(default)s)")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                    help="which scheduling to try (default: both)")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    if args.child:
        child(args.run, args.preset, args.child, args.steps, args.out)
        return
    if not any((args.run / name).is_file() for name in ("prune/pruned.keras", "distill/student.keras")):
        from tinyface.errors import ModelError

        raise ModelError(f"{args.run} has no prune/pruned.keras or distill/student.keras: not a build folder")
    from tinyface import config

    config.load_preset(args.preset)  # an unknown preset: one line, before minutes of loading
    with tempfile.TemporaryDirectory() as scratch:
        for mode in args.modes:
            a, b = pair(args, mode, Path(scratch))
            step = first_difference(a["hashes"], b["hashes"])
            verdict = f"the same weights after each of {len(a['hashes'])} steps" if step is None \
                else f"weights differ from step {step} of {len(a['hashes'])}"
            print(f"{mode:8s} two runs side by side: {verdict} ({a['seconds']:.0f} s and {b['seconds']:.0f} s "
                  f"of training, this machine's wall time)", flush=True)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
