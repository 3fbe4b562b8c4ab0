"""Instructions per inference and per op kind of each released model on the emulated
ESP32-C3 (the firmware built for rv32imc, ESP-NN's C kernels or the kernels generated for the
model, run under qemu-riscv32 with an exact instruction counter), and the agreement of the
chip's int8 outputs with the host's TFLM and TFLite, as tables. Also measures a MobileNet v1
0.25 96x96x1 (the architecture of esp-tflite-micro's person-detection example, random
weights) and derives the esp32c3 cost model's stall factor from its published ESP32-C3 time
(with ESP-NN's kernels, which that figure was measured with).

It also fits the cost model of boards/esp32c3.toml from these counts, per op kind,
instructions = per_mac x MACs + per_output x output values
(tinyface.boards.costmodel.fit_instructions), prints it as the board file's
``[measured]`` (--kernels esp-nn) or ``[measured_generated]`` (--kernels generated) tables,
and sets the fitted totals beside the measured ones.

    python benchmarks/isa.py [--kernels esp-nn|generated] [--inputs N] [--per-op] [--json]

Needs TFLM_DIR (esp-tflite-micro; ESP_NN_DIR defaults to esp-nn beside it) and the Debian
packages gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-user. Counts are
instructions (a lower bound on cycles), measured on an emulator, not on a chip.
"""

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from tinyface.boards import MEASURED_SECTION, load_board
from tinyface.boards.costmodel import cost_key, fit_instructions
from tinyface.model.bundle import load_bundle
from tinyface.resources import models_dir

WORST_LAYER_MIN_INSTRUCTIONS = 10_000


def mobilenet_v1_025(directory: Path):
    """MobileNet v1 0.25 on 96x96x1, the person-detection architecture (7.16 M MACs), random
    weights, int8; without the final 2-way softmax (random weights give it a scale TFLM rejects)."""
    import tf_keras as keras

    from tinyface.model.bundle import save_bundle
    from tinyface.train.quantize import bundle_meta, convert_int8

    layers = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((96, 96, 1))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    for channels, stride in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1), (128, 1),
                             (128, 1), (128, 1), (256, 2), (256, 1)]:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")(x)
        x = layers.Conv2D(channels, 1, activation="relu6")(x)
    x = layers.AveragePooling2D(3)(x)
    x = layers.Conv2D(2, 1)(x)
    model = keras.Model(inp, layers.Flatten()(x))
    calib = np.random.default_rng(0).integers(0, 256, (16, 96, 96, 1), dtype=np.uint8)
    flat = convert_int8(model, calib)
    return save_bundle(directory, flat, bundle_meta(flat, threshold=0.5, name="mobilenet-v1-0.25-96x96x1"))


def fitted(samples) -> dict:
    """The per-op-kind fit of ``samples`` ((model, cost key, MACs, outputs, instructions) per
    layer), and each model's fitted total beside its measured sum of ops."""
    per_mac, per_output = fit_instructions([x[1:] for x in samples])
    totals = defaultdict(lambda: [0.0, 0])
    for model, key, macs, outputs, instructions in samples:
        totals[model][0] += per_mac.get(key, 0.0) * macs + per_output[key] * outputs
        totals[model][1] += instructions
    # tiny layers (a 2-value RESHAPE) are off by large shares of almost nothing: the worst layer
    # is reported over those of at least WORST_LAYER_MIN_INSTRUCTIONS
    worst = max(abs((per_mac.get(k, 0.0) * m + per_output[k] * o) / i - 1)
                for _, k, m, o, i in samples if i >= WORST_LAYER_MIN_INSTRUCTIONS)
    return {"instructions_per_mac": per_mac, "instructions_per_output": per_output,
            "fitted_vs_measured_ops": {m: {"fitted": f, "measured": n, "error": f / n - 1}
                                       for m, (f, n) in totals.items()},
            "worst_layer_error": worst}


def toml_table(table: dict[str, float]) -> str:
    """An inline TOML table of 4-digit floats, as the board file has them."""
    def number(v: float) -> str:
        text = f"{v:.4g}"
        return text if any(c in text for c in ".e") else text + ".0"

    return "{ " + ", ".join(f"{k} = {number(v)}" for k, v in table.items()) + " }"


def agreement(bundle, prog, n: int, seed: int = 1) -> dict:
    """INFER ``n`` seeded random inputs on the emulated chip over a real pty; compare with the host."""
    import os

    from tinyface.device.isa import spawn_isa
    from tinyface.device.pty import open_pty
    from tinyface.model.runtime import TfliteRunner, TflmRunner
    from tinyface.protocol.client import Client, open_serial

    shape = bundle.meta.input_shape
    x = np.random.default_rng(seed).integers(-128, 128, (n, *shape[1:]), dtype=np.int8)
    master, path = open_pty()
    proc = spawn_isa(prog, master)
    port = open_serial(path, 921600)
    try:
        client = Client(port, timeout_s=30.0, retries=1, port=path)
        replies = [client.infer(item) for item in x]
    finally:
        port.close()
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)
    chip = np.stack([r.output for r in replies]).astype(np.int16)
    tflm = TflmRunner(bundle.model_bytes).run(x).reshape(n, -1).astype(np.int16)
    tflite = TfliteRunner(bundle.model_bytes).run(x).reshape(n, -1).astype(np.int16)
    counts = np.array([r.cycles for r in replies], np.float64)
    return {"inputs": n, "identical_to_tflm": float(np.mean(np.all(chip == tflm, axis=1))),
            "max_lsb_vs_tflm": int(np.abs(chip - tflm).max()),
            "identical_to_tflite": float(np.mean(np.all(chip == tflite, axis=1))),
            "max_lsb_vs_tflite": int(np.abs(chip - tflite).max()),
            "infer_instructions_mean": float(counts.mean()),
            "infer_instructions_spread": float(np.ptp(counts) / counts.mean())}


def _count(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", choices=tuple(MEASURED_SECTION), default="esp-nn",
                    help="the firmware's int8 kernels (firmware.kernels): ESP-NN's C or those generated for each model "
                         "(default: %(default)s)")
    ap.add_argument("--inputs", type=int, default=50,
                    help="random inputs for the host-vs-chip agreement (0: none; default: %(default)s)")
    ap.add_argument("--per-op", action="store_true", help="also print every op's instructions")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    from tinyface.device.isa import COUNT_LABEL, prepare_isa
    from tinyface.device.isa_profile import profile_measured
    from tinyface.model.graph import analyze

    board = load_board("esp32c3")
    work = Path(tempfile.mkdtemp(prefix="tinyface-isa-"))
    bundles = {name: load_bundle(models_dir() / name) for name in ("esp32", "esp32s3")}
    bundles["mobilenet-v1-0.25 (person detection)"] = mobilenet_v1_025(work / "mobilenet")
    results = {}
    samples = []
    for name, bundle in bundles.items():
        measured = profile_measured(bundle, board, kernels=args.kernels)
        by_kind = defaultdict(int)
        graph_layers = analyze(bundle.model_bytes).layers
        for layer, graph_layer in zip(measured.layers, graph_layers, strict=True):
            by_kind[layer.op] += layer.instructions
            samples.append((name, cost_key(graph_layer.op, graph_layer.input_shapes), layer.macs,
                            _count(layer.output_shape), layer.instructions))
        entry = {"macs": sum(x.macs for x in measured.layers), "instructions": measured.total_instructions,
                 "lower_bound_ms": measured.lower_bound_ms, "measured_ms": measured.measured_ms,
                 "est_ms": measured.total_est_ms, "share_by_op": {k: v / measured.total_instructions
                                                                  for k, v in sorted(by_kind.items())},
                 "per_op": [(x.index, x.op, x.instructions) for x in measured.layers]}
        if not name.startswith("mobilenet") and args.inputs:
            entry["agreement"] = agreement(bundle, prepare_isa(bundle, board, firmware_kernels=args.kernels),
                                           args.inputs)
        results[name] = entry
    pd = results["mobilenet-v1-0.25 (person detection)"]
    # the published time is of ESP-NN's kernels: only their count gives cycles per instruction
    # esp-tflite-micro README, "Performance Comparison": person detection on the board with ESP-NN
    # (boards/esp32c3.toml, calibration_ms_esp_nn: 426 ms at 160 MHz)
    person_detection_ms = board.calibration_ms_esp_nn
    stall = person_detection_ms * board.cpu_mhz * 1e3 / pd["instructions"] if args.kernels == "esp-nn" else None
    fit = fitted(samples)
    if args.json:
        print(json.dumps({"kernels": args.kernels, "stall_factor_from_person_detection": stall, "fit": fit,
                          "models": results, "layers": samples}, indent=2))
        return
    kernel_label = "ESP-NN C kernels" if args.kernels == "esp-nn" else "kernels generated for each model"
    print(f"ESP32-C3 instruction-set emulator (rv32imc, {kernel_label}, qemu-riscv32): {COUNT_LABEL}, "
          f"MEASURED on an emulator; stall factor of boards/esp32c3.toml "
          f"{board.cost_model_for(args.kernels).stall_factor:g}\n")
    print(f"{'model':38s} {'MACs':>11s} {'instructions':>13s} {'instr/MAC':>9s} {'>= ms':>8s} "
          f"{'x stall ms':>10s} {'est. ms':>8s} {'est/meas':>8s}")
    for name, r in results.items():
        print(f"{name:38s} {r['macs']:>11,} {r['instructions']:>13,} {r['instructions'] / r['macs']:>9.2f} "
              f"{r['lower_bound_ms']:>8.2f} {r['measured_ms']:>10.2f} {r['est_ms']:>8.2f} "
              f"{r['est_ms'] / r['measured_ms'] - 1:>+8.1%}")
    print("\nshare of the instructions by op kind")
    kinds = sorted({k for r in results.values() for k in r["share_by_op"]})
    print(f"{'model':38s} " + " ".join(f"{k[:17]:>17s}" for k in kinds))
    for name, r in results.items():
        print(f"{name:38s} " + " ".join(f"{r['share_by_op'].get(k, 0):>17.1%}" for k in kinds))
    print("\nhost-vs-chip agreement (seeded random int8 inputs over the protocol on a pty)")
    for name, r in results.items():
        if "agreement" in r:
            a = r["agreement"]
            print(f"{name:38s} {a['inputs']} inputs: {a['identical_to_tflm']:.1%} identical to host TFLM "
                  f"(max {a['max_lsb_vs_tflm']} LSB), {a['identical_to_tflite']:.1%} identical to host TFLite "
                  f"(max {a['max_lsb_vs_tflite']} LSB); INFER {a['infer_instructions_mean']:,.0f} instructions, "
                  f"spread {a['infer_instructions_spread']:.3%}")
    if args.kernels == "esp-nn":
        print(f"\nstall factor: person detection's published {person_detection_ms:.0f} ms at {board.cpu_mhz:.0f} MHz"
              f" / {pd['instructions']:,} instructions = {stall:.3f} cycles per instruction")
    print(f"\nfit per op kind (instructions = per_mac x MACs + per_output x output values), "
          f"[{MEASURED_SECTION[args.kernels]}] of boards/esp32c3.toml:")
    print(f"instructions_per_mac = {toml_table(fit['instructions_per_mac'])}")
    print(f"instructions_per_output = {toml_table(fit['instructions_per_output'])}")
    for name, t in fit["fitted_vs_measured_ops"].items():
        print(f"  {name:38s} fitted {t['fitted']:>13,.0f}  measured (sum of ops) {t['measured']:>13,}  "
              f"{t['error']:+.2%}")
    print(f"  worst single layer of at least {WORST_LAYER_MIN_INSTRUCTIONS:,} instructions: "
          f"{fit['worst_layer_error']:.1%} off")
    if args.per_op:
        for name, r in results.items():
            print(f"\n{name}")
            for index, op, count in r["per_op"]:
                print(f"  {index:3d} {op:20s} {count:>12,}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
