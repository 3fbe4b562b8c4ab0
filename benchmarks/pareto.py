"""Accuracy vs MACs vs arena for several student sizes, so presets are chosen by evidence.

    python benchmarks/pareto.py [--epochs 60] [--configs 48:1.0,64:0.75] [--arch dsnet_mlp]
                                [--padding 0.1] [--views 0] [--mixes 0] [--quick]

Each config (input size : width) is distilled for --epochs (with --views and --mixes, epochs
run over the originals plus every teacher view and mix), converted to full int8 and scored on 2,000 pairs of
*validation* people (never the test pairs): ROC AUC and accuracy at the best threshold,
float and int8. MACs are counted on the int8 graph; the arena is the one the pip TFLM interpreter
records on this machine (reference kernels, 64-bit pointers: if anything more than a 32-bit
chip's, and without the scratch ESP-NN's kernels ask for; tinyface.codegen.arena).
"""

import argparse
import os
import time

from tinyface.config import STUDENT_ARCHS
from tinyface.console import use_legacy_keras

use_legacy_keras()  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def configs_arg(text: str) -> list[tuple[int, float]]:
    """--configs' value: comma-separated SIZE:WIDTH items (input size in pixels, width multiplier)."""
    out = []
    for item in text.split(","):
        size, sep, width = item.partition(":")
        try:
            out.append((int(size), float(width)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not SIZE:WIDTH (e.g. 48:1.0)") from None
        if not sep or out[-1][0] < 1 or out[-1][1] <= 0:
            raise argparse.ArgumentTypeError(f"{item!r} is not SIZE:WIDTH (e.g. 48:1.0)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=60, help="distillation epochs per config (default: %(default)s)")
    ap.add_argument("--configs", type=configs_arg, default="48:1.0,64:0.75",
                    help="students to train, comma-separated SIZE:WIDTH (input pixels : width multiplier; "
                         "default: %(default)s)")
    ap.add_argument("--arch", default="dsnet_mlp", choices=STUDENT_ARCHS,
                    help="student architecture (default: %(default)s)")
    ap.add_argument("--channels", type=int, default=1, choices=(1, 3), help="input channels (default: %(default)s)")
    ap.add_argument("--padding", type=float, default=0.1,
                    help="the crop's padding around the face (default: %(default)s)")
    ap.add_argument("--views", type=int, default=0,
                    help="teacher views per training image (consistent teaching; default: %(default)s)")
    ap.add_argument("--mixes", type=int, default=0,
                    help="teacher mixes per training image (blends of two people; default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="tiny subset (smoke test)")
    args = ap.parse_args()

    import numpy as np

    from tinyface import config
    from tinyface.evaluation import metrics
    from tinyface.model.embedder import quantize_pixels
    from tinyface.model.graph import analyze
    from tinyface.model.keras_io import embed as keras_embed
    from tinyface.model.runtime import TfliteRunner, TflmRunner
    from tinyface.train import distill, quantize, student
    from tinyface.train.build_data import load_build_data
    from tinyface.train.quantize import io_quantization
    from tinyface.train.stages_eval import validation_pairs

    rows = []
    for size, width in args.configs:
        settings = config.load(None, {"data": {"crop_size": size, "channels": args.channels, "padding": args.padding},
                                      "distill": {"teacher_views": args.views, "teacher_mixes": args.mixes}})
        data = load_build_data(settings, quick=args.quick)
        a, b, same = validation_pairs(data.val.labels)
        model, _ = student.build_student(args.arch, (size, size, args.channels), 128, width)
        x, t, augment, _ = distill.training_set(data, distill.teacher_center(data.train.teacher))
        t0 = time.perf_counter()
        distill.fit(model, x, t, None, None, args.epochs, 128, 3e-3, distill.make_loss(distill.LossWeights()),
                    augment=augment)
        train_s = time.perf_counter() - t0
        s_float = metrics.pair_scores(keras_embed(model, data.val.crops), a, b)
        flat = quantize.convert_int8(model, data.train.crops[:500])
        meta = io_quantization(flat)
        x_val = quantize_pixels(data.val.crops, meta["input_scale"], meta["input_zero_point"])
        s_int8 = metrics.pair_scores(TfliteRunner(flat).run(x_val).astype(np.float32) - meta["output_zero_point"], a, b)
        tflm = TflmRunner(flat)
        tflm.run_one(x_val[0])
        graph = analyze(flat)
        row = dict(config=f"{args.arch} {size}x{size}x{args.channels} w{width:g} pad{args.padding:g} "
                          f"v{args.views} m{args.mixes}",
                   macs=graph.total_macs, params=graph.total_params, model_bytes=len(flat),
                   arena_bytes=tflm.arena_used_bytes(), val_acc_float=metrics.best_accuracy(s_float, same),
                   val_acc_int8=metrics.best_accuracy(s_int8, same),
                   val_auc_int8=metrics.auc(*metrics.roc_curve(s_int8, same)), train_s=train_s)
        rows.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    print()
    print(f"{'config':40} {'MACs':>10} {'params':>8} {'bytes':>8} {'arena':>8} {'val f32':>8} {'val int8':>8} "
          f"{'AUC int8':>8} {'train s':>7}")
    for r in rows:
        print(f"{r['config']:40} {r['macs']:>10,} {r['params']:>8,} {r['model_bytes']:>8,} {r['arena_bytes']:>8,} "
              f"{100 * r['val_acc_float']:>7.2f}% {100 * r['val_acc_int8']:>7.2f}% {r['val_auc_int8']:>8.4f} "
              f"{r['train_s']:>7.0f}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
