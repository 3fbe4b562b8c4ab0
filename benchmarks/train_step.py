"""Where does a distillation step's time go on this CPU, and would TensorFlow's other CPU paths
make it shorter? A build's distill and prune stages are a preset's student trained batch after
batch (an esp32 build: 18 epochs of 988 batches of 128, about 80 % of its time), so their speed is
the speed of one training step.

    python benchmarks/train_step.py [--presets esp32] [--steps 40] [--variants default xla bf16 onednn-off]

For each preset, its student (as its build makes it) is trained with Adam on the distillation loss
for ``--steps`` batches of random crops already in memory, after the same number untimed
(TensorFlow's set-up, oneDNN's kernel choice), and the milliseconds per batch are printed for each
variant, each in a fresh interpreter:

- ``default``: as a build trains (TensorFlow's ops one at a time, console.one_op_at_a_time; oneDNN's
  x86 kernels, TensorFlow's default);
- ``xla``: the same, compiled by XLA (Keras ``jit_compile=True``);
- ``bf16``: Keras's ``mixed_bfloat16`` policy (bfloat16 activations, float32 weights);
- ``onednn-off``: ``TF_ENABLE_ONEDNN_OPTS=0`` (Eigen's kernels).

Only ``default`` gives a build's models: the others change the arithmetic, so the released models
would no longer be rebuilt byte for byte. With ``--profile`` the default variant also prints the
share of each TensorFlow op type in the steps (TensorFlow's profiler, over one more pass than
the one timed: it slows the steps). The augmentation is
left out (tf.data makes a batch in about 2 ms beside the step, on its own threads). Wall times of
this machine: other work on its cores shows in them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = ("default", "xla", "bf16", "onednn-off")


def step_ms(preset: str, steps: int, variant: str, profile: bool) -> dict:
    """Milliseconds per training step of ``preset``'s student under ``variant`` (in this process,
    whose environment the caller set), and the op types' shares where ``profile``."""
    from tinyface.console import one_op_at_a_time, quiet_tensorflow

    quiet_tensorflow(import_now=True)
    one_op_at_a_time()
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from tinyface import config
    from tinyface.config import load_preset
    from tinyface.train import distill, student

    settings = config.load(None, {}, base=load_preset(preset).settings())
    d, s, ds = settings.data, settings.student, settings.distill
    if variant == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model, _ = student.build_student(s.arch, (d.crop_size, d.crop_size, d.channels), s.embedding_dim, s.width,
                                     branches=s.branches, repeats=s.repeats)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=variant == "xla",
                  loss=distill.make_loss(distill.LossWeights(ds.cosine_weight, ds.relation_weight)))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (ds.batch_size * steps, d.crop_size, d.crop_size, d.channels)).astype(np.float32)
    t = rng.normal(size=(len(x), s.embedding_dim)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, t)).batch(ds.batch_size).cache()
    model.fit(data, epochs=1, verbose=0)  # untimed: set-up, and the cache filled
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    shares = {}
    if profile:  # one more pass under the profiler, which slows the steps: not the one timed
        import tempfile

        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            model.fit(data, epochs=1, verbose=0)
            tf.profiler.experimental.stop()
            shares = _op_shares(logdir)
    return {"ms": 1000 * seconds / steps, "shares": shares}


def _op_shares(logdir: str) -> dict[str, float]:
    """Each op type's share of the time TensorFlow's executor spent in ops (its profiler's trace)."""
    import collections
    from pathlib import Path

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(sorted(Path(logdir).rglob("*.xplane.pb"))[-1].read_bytes())
    spent = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name != "ExecutorState::Process":
                    spent[name.split(":")[-1].replace("_MklNative", "").replace("_Mkl", "")] += event.duration_ps
    total = sum(spent.values()) or 1
    return {op: ps / total for op, ps in spent.most_common()}


def run_variant(preset: str, steps: int, variant: str, profile: bool) -> dict:
    """step_ms in a fresh interpreter: a variant's settings (oneDNN, the precision policy) are taken
    once per process."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0" if variant == "onednn-off" else "1")
    args = [sys.executable, __file__, "--child", variant, "--presets", preset, "--steps", str(steps)]
    proc = subprocess.run([*args, *(["--profile"] if profile else [])], capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # the child's own line (run_script: a tinyface error's) and exit code
        sys.stderr.write(proc.stderr)
        sys.exit(proc.returncode)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from tinyface.config import preset_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", choices=preset_names(), default=["esp32"],
                    help="whose students (default: esp32)")
    ap.add_argument("--steps", type=int, default=40, help="batches timed per variant (default: %(default)s)")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                    help=f"what to time (default: {' '.join(VARIANTS)})")
    ap.add_argument("--profile", action="store_true", help="also the op types' shares of the default variant")
    ap.add_argument("--child", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    if args.child:  # one variant, in the interpreter run_variant started
        print(json.dumps(step_ms(args.presets[0], args.steps, args.child, args.profile)))
        return
    for preset in args.presets:
        base = None
        for variant in args.variants:
            r = run_variant(preset, args.steps, variant, args.profile and variant == "default")
            base = r["ms"] if variant == "default" else base
            vs = f" ({r['ms'] / base:.2f}x default)" if base and variant != "default" else ""
            print(f"{preset} {variant}: {r['ms']:.1f} ms a batch of its build's size (mean of {args.steps}){vs}",
                  flush=True)
            if r["shares"]:
                top = ", ".join(f"{op} {share:.0%}" for op, share in list(r["shares"].items())[:10])
                print(f"{preset} default, time by op type: {top}", flush=True)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
