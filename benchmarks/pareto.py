"""Accuracy vs MACs vs arena for several student sizes, so presets are chosen by evidence.

    python benchmarks/pareto.py [--epochs 12] [--configs 48:1.0,64:0.75,...] [--arch dsnet]

Each config (input size : width) is distilled for --epochs, converted to full int8 and
scored on pairs of *validation* people (never the test pairs): ROC AUC and accuracy at
the best threshold, float and int8. MACs are counted from the int8 graph and the arena
is the one TFLM records.
"""

import argparse
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--configs", default="48:1.0,48:1.125,56:0.875,64:0.75")
    ap.add_argument("--arch", default="dsnet")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--padding", type=float, default=0.25)
    ap.add_argument("--quick", action="store_true", help="tiny subset (smoke test)")
    args = ap.parse_args()

    import numpy as np

    from tinyface import config, evaluate
    from tinyface.graph import analyze
    from tinyface.runtime import TfliteRunner, TflmRunner
    from tinyface.train import distill, quantize, student
    from tinyface.train.data import load_build_data
    from tinyface.bundle import quantize_input
    from tinyface.train.quantize import io_quantization

    rows = []
    for item in args.configs.split(","):
        size, width = int(item.split(":")[0]), float(item.split(":")[1])
        settings = config.load(None, {"data": {"crop_size": size, "channels": args.channels, "padding": args.padding}})
        data = load_build_data(settings, quick=args.quick)
        a, b, same = evaluate.sample_pairs(data.val.labels, 1000, seed=1)
        model, _ = student.build_student(args.arch, (size, size, args.channels), 128, width)
        t0 = time.perf_counter()
        targets = distill.center_targets(data.train.teacher, distill.teacher_center(data.train.teacher))
        distill.fit(model, data.train.crops, targets, None, None, args.epochs, 128, 3e-3,
                    distill.make_loss(distill.LossWeights()))
        train_s = time.perf_counter() - t0
        e_float = distill.embed(model, data.val.crops)
        s_float = evaluate.pair_scores(e_float, a, b)
        flat = quantize.convert_int8(model, data.train.crops[:500])
        meta = io_quantization(flat)

        class M:  # the two fields quantize_input needs
            input_scale, input_zero_point = meta["input_scale"], meta["input_zero_point"]

        x = quantize_input(data.val.crops, M)
        out = TfliteRunner(flat).run(x).astype(np.float32) - meta["output_zero_point"]
        s_int8 = evaluate.pair_scores(out, a, b)
        tflm = TflmRunner(flat)
        tflm.run_one(x[0])
        graph = analyze(flat)
        row = dict(config=f"{args.arch} {size}x{size}x{args.channels} w{width:g}", macs=graph.total_macs,
                   params=graph.total_params, model_bytes=len(flat), arena_bytes=tflm.arena_used_bytes(),
                   val_auc_float=evaluate.auc(*evaluate.roc_curve(s_float, same)),
                   val_acc_float=float(np.mean((s_float >= evaluate.best_threshold(s_float, same)) == same)),
                   val_auc_int8=evaluate.auc(*evaluate.roc_curve(s_int8, same)),
                   val_acc_int8=float(np.mean((s_int8 >= evaluate.best_threshold(s_int8, same)) == same)),
                   train_s=train_s)
        rows.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    print()
    print(f"{'config':28} {'MACs':>10} {'params':>8} {'bytes':>8} {'arena':>8} {'val acc f32':>11} {'val acc int8':>12} {'AUC int8':>8} {'train s':>7}")
    for r in rows:
        print(f"{r['config']:28} {r['macs']:>10,} {r['params']:>8,} {r['model_bytes']:>8,} {r['arena_bytes']:>8,} "
              f"{100 * r['val_acc_float']:>10.2f}% {100 * r['val_acc_int8']:>11.2f}% {r['val_auc_int8']:>8.4f} {r['train_s']:>7.0f}")


if __name__ == "__main__":
    main()
