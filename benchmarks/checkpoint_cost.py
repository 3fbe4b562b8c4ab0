"""What does saving a training stage's epochs cost? Build each preset's student as its build
does, with its optimizer (Adam, and its weight averages where distill.ema is set), and time
tinyface.train.distill.Checkpoint.save, which the distill and prune stages call after every epoch
(docs/architecture.md, "A build's run folder, when a build is stopped"); print the parameters,
the bytes one epoch's checkpoint holds and the milliseconds a save takes.

    python benchmarks/checkpoint_cost.py [--presets esp32 esp32s3] [--saves 5]

The weights are the student's initial ones (a save writes every variable, whatever its value), so
no dataset is needed. Wall times of this machine, into a temporary folder on its disk; an epoch of
the esp32 preset's distillation takes about a minute on 2 cores (docs/model.md, run R1f).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def measure(preset: str, saves: int) -> dict:
    """The student of ``preset``, its optimizer built; the mean of ``saves`` saves after a first."""
    import tf_keras as keras

    from tinyface import config
    from tinyface.config import load_preset
    from tinyface.train import distill, student

    settings = config.load(None, {}, base=load_preset(preset).settings())
    d, s, ds = settings.data, settings.student, settings.distill
    model, _ = student.build_student(s.arch, (d.crop_size, d.crop_size, d.channels), s.embedding_dim, s.width,
                                     branches=s.branches, repeats=s.repeats)
    optimizer = (keras.optimizers.Adam(1e-3, use_ema=True, ema_momentum=ds.ema) if ds.ema > 0
                 else keras.optimizers.Adam(1e-3))
    optimizer.build(model.trainable_variables)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = distill.Checkpoint(Path(tmp) / "checkpoint", "benchmark")
        checkpoint.save(model, optimizer, 1, saves + 1, {"loss": [1.0]})  # the first: TensorFlow's own set-up
        started = time.perf_counter()
        for epoch in range(2, saves + 2):
            checkpoint.save(model, optimizer, epoch, saves + 1, {"loss": [1.0] * epoch})
        seconds = (time.perf_counter() - started) / saves
        size = sum(p.stat().st_size for p in checkpoint.folder.rglob("*") if p.is_file())
    return {"params": model.count_params(), "ema": ds.ema, "bytes": size, "ms": 1000 * seconds}


def main() -> None:
    from tinyface.config import preset_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", choices=preset_names(), default=["esp32", "esp32s3"],
                    help="whose students (default: esp32 esp32s3)")
    ap.add_argument("--saves", type=int, default=5, help="saves timed per preset (default: %(default)s)")
    args = ap.parse_args()
    if args.saves < 1:
        ap.error("--saves must be at least 1")
    from tinyface.console import quiet_tensorflow

    quiet_tensorflow(import_now=True)
    for preset in args.presets:
        r = measure(preset, args.saves)
        print(f"{preset}: {r['params']:,} parameters (distill.ema {r['ema']:g}), an epoch's checkpoint "
              f"{r['bytes'] / 1e6:.1f} MB, {r['ms']:.0f} ms a save (mean of {args.saves})", flush=True)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
