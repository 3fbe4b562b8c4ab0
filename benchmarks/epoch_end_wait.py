"""How long does an epoch's end wait for tf.data? Train a small network on the build's input
pipeline (tinyface.train.distill.make_dataset: shuffle, batches, photometric augmentation) as it
is, with tf.data's autotuning off (distill.untuned), and again with autotuning switched back on,
and print the seconds between each epoch's last step and the next epoch's first (after the last
epoch: until `fit` returns).

    python benchmarks/epoch_end_wait.py [--samples 60000] [--epochs 3]

With autotuning, each iterator has an optimisation thread that sleeps on a timer doubling up to
60 s, and an ending iterator is not freed before that thread wakes: a wait anywhere from 0 to the
timer's period at every epoch's end (Keras makes a new iterator each epoch). The crops and targets
are random (the wait does not depend on them), so no dataset is needed. Wall times of this
machine; the two modes run one after the other in one process.

What it measured on this repository's machine is in docs/model.md, "Epochs no longer wait for
tf.data".
"""

from __future__ import annotations

import argparse
import time

MODES = ("untuned", "autotuned")


def run(mode: str, samples: int, epochs: int) -> dict:
    """One fit of ``epochs`` epochs; returns each epoch's seconds and the wait after each."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from tinyface.train import distill

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (samples, 64, 64, 1), dtype=np.uint8)
    t = rng.normal(size=(samples, 128)).astype(np.float32)
    ds = distill.make_dataset(x, t, 128, "photometric", 0, shuffle=True)
    if mode == "autotuned":
        options = tf.data.Options()
        options.autotune.enabled = True
        ds = ds.with_options(options)
    inputs = keras.Input((64, 64, 1))
    h = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(inputs)
    h = keras.layers.Conv2D(64, 3, strides=2, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(128)(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile(keras.optimizers.Adam(), "mse")
    begins: dict[int, float] = {}
    ends: dict[int, float] = {}
    marks = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: begins.__setitem__(e, time.perf_counter()),
                                           on_epoch_end=lambda e, logs: ends.__setitem__(e, time.perf_counter()))
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[marks])
    returned = time.perf_counter()
    waits = [begins[e + 1] - ends[e] for e in range(epochs - 1)] + [returned - ends[epochs - 1]]
    return {"epochs": [ends[e] - begins[e] for e in range(epochs)], "waits": waits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=60000, help="random 64x64 crops an epoch (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fit (default: %(default)s)")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="which to run (default: both)")
    args = ap.parse_args()
    if args.samples < 256 or args.epochs < 1:
        ap.error("--samples must be at least 256 and --epochs at least 1")
    from tinyface.console import quiet_tensorflow

    quiet_tensorflow(import_now=True)
    for mode in args.modes:
        result = run(mode, args.samples, args.epochs)
        epochs = ", ".join(f"{s:.1f}" for s in result["epochs"])
        waits = ", ".join(f"{s:.1f}" for s in result["waits"])
        print(f"{mode:9s} epochs took {epochs} s; waits after them {waits} s (total {sum(result['waits']):.1f} s)",
              flush=True)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
