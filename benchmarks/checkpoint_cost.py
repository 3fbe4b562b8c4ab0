"""What does saving a training stage's state cost, and taking it up in the middle of an epoch?
Build each preset's student as its build does, with its optimizer (Adam, and its weight averages
where distill.ema is set), and time tinyface.train.distill.Checkpoint.save, which the distill and
prune stages (and QAT) call after every epoch and every minute within one (docs/architecture.md,
"A build's run folder, when a build is stopped"); print the parameters, the bytes one checkpoint
holds and the milliseconds a save takes. Then time what a fit taken up halfway through an epoch
spends before its first batch: the batches done are left out of the epoch's data
(distill.make_dataset's ``skip``), against the same iterator's first batch without.

    python benchmarks/checkpoint_cost.py [--presets esp32 esp32s3] [--saves 5] [--rows 126464]

The weights are the student's initial ones (a save writes every variable, whatever its value), and
the training set is ``--rows`` random crops of the preset's size (a full esp32 build's epoch is
988 batches of 128: run R1g in docs/model.md), with random neighbour partners where the preset
draws batches so: no dataset is needed. Wall times of this machine, into a temporary folder on its
disk; an epoch of the esp32 preset's distillation takes about a minute on 2 cores (docs/model.md,
run R1f).
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


def take_up_cost(preset: str, rows: int, repeats: int = 3) -> dict:
    """Seconds to the first batch of an epoch's iterator, from its start and from its middle: the
    median of ``repeats`` fresh pipelines each, after one untimed (TensorFlow's own set-up)."""
    import statistics

    import numpy as np
    import tensorflow as tf

    from tinyface import config
    from tinyface.config import load_preset
    from tinyface.train import distill

    settings = config.load(None, {}, base=load_preset(preset).settings())
    d, ds = settings.data, settings.distill
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (rows, d.crop_size, d.crop_size, d.channels), dtype=np.uint8)
    t = rng.normal(size=(rows, 128)).astype(np.float32)
    partners = rng.integers(0, rows, (rows, ds.neighbours)) if ds.neighbours else None
    steps = rows // ds.batch_size

    def first_batch(skip: int | None) -> float:
        data = distill.make_dataset(x, t, ds.batch_size, ds.augment, 0, shuffle=True, partners=partners,
                                    light=ds.light_augment,
                                    skip=None if skip is None else tf.Variable(skip, dtype=tf.int64))
        started = time.perf_counter()
        next(iter(data))
        return time.perf_counter() - started

    first_batch(None)
    seconds = {name: statistics.median(first_batch(skip) for _ in range(repeats))
               for name, skip in (("start", None), ("middle", steps // 2))}
    return {"steps": steps, "batch_size": ds.batch_size, "neighbours": ds.neighbours, **seconds}


def main() -> None:
    from tinyface.config import preset_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", choices=preset_names(), default=["esp32", "esp32s3"],
                    help="whose students (default: esp32 esp32s3)")
    ap.add_argument("--saves", type=int, default=5, help="saves timed per preset (default: %(default)s)")
    ap.add_argument("--rows", type=int, default=988 * 128,
                    help="training rows of the take-up's epoch (default: %(default)s; 0: no take-up timed)")
    args = ap.parse_args()
    if args.saves < 1:
        ap.error("--saves must be at least 1")
    if args.rows < 0:
        ap.error("--rows must be at least 0")
    from tinyface.console import quiet_tensorflow

    quiet_tensorflow(import_now=True)
    for preset in args.presets:
        r = measure(preset, args.saves)
        print(f"{preset}: {r['params']:,} parameters (distill.ema {r['ema']:g}), an epoch's checkpoint "
              f"{r['bytes'] / 1e6:.1f} MB, {r['ms']:.0f} ms a save (mean of {args.saves})", flush=True)
        if args.rows:
            u = take_up_cost(preset, args.rows)
            print(f"{preset}: an epoch of {u['steps']:,} batches of {u['batch_size']} ({args.rows:,} rows, "
                  f"neighbours {u['neighbours']}): first batch after {u['start']:.2f} s from its start, "
                  f"{u['middle']:.2f} s from its middle ({u['steps'] // 2:,} batches left out before it)",
                  flush=True)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
