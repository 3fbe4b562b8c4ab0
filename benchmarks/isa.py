"""Instructions per inference and per op kind of each released model on the emulated
ESP32-C3 (the firmware built for rv32imc, ESP-NN's C kernels, run under qemu-riscv32 with an
exact instruction counter), and the agreement of the chip's int8 outputs with the host's TFLM
and TFLite, as tables. Also measures a MobileNet v1 0.25 96x96x1 (the architecture of
esp-tflite-micro's person-detection example, random weights) and derives the esp32c3 cost
model's stall factor from its published ESP32-C3 time.

    python benchmarks/isa.py [--inputs N] [--per-op] [--json]

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

from tinyface.boards import load_board
from tinyface.model.bundle import load_bundle
from tinyface.resources import models_dir

# esp-tflite-micro README, "Performance Comparison": person detection on an ESP32-C3 at 160 MHz, ESP-NN.
PERSON_DETECTION_C3_MS = 426.0


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


def agreement(bundle, prog, n: int, seed: int = 1) -> dict:
    """INFER ``n`` seeded random inputs on the emulated chip over a real pty; compare with the host."""
    import os

    from tinyface.device.isa import spawn_isa
    from tinyface.device.pty import open_pty
    from tinyface.protocol.client import Client, open_serial
    from tinyface.model.runtime import TfliteRunner, TflmRunner

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=50, help="random inputs for the host-vs-chip agreement")
    ap.add_argument("--per-op", action="store_true", help="also print every op's instructions")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    from tinyface.device.isa import COUNT_LABEL, prepare_isa
    from tinyface.device.isa_profile import profile_measured

    board = load_board("esp32c3")
    work = Path(tempfile.mkdtemp(prefix="tinyface-isa-"))
    bundles = {name: load_bundle(models_dir() / name) for name in ("esp32", "esp32s3")}
    bundles["mobilenet-v1-0.25 (person detection)"] = mobilenet_v1_025(work / "mobilenet")
    results = {}
    for name, bundle in bundles.items():
        measured = profile_measured(bundle, board)
        by_kind = defaultdict(int)
        for layer in measured.layers:
            by_kind[layer.op] += layer.instructions
        entry = {"macs": sum(x.macs for x in measured.layers), "instructions": measured.total_instructions,
                 "lower_bound_ms": measured.lower_bound_ms, "measured_ms": measured.measured_ms,
                 "est_ms": measured.total_est_ms, "share_by_op": {k: v / measured.total_instructions
                                                                  for k, v in sorted(by_kind.items())},
                 "per_op": [(x.index, x.op, x.instructions) for x in measured.layers]}
        if not name.startswith("mobilenet"):
            entry["agreement"] = agreement(bundle, prepare_isa(bundle, board), args.inputs)
        results[name] = entry
    pd = results["mobilenet-v1-0.25 (person detection)"]
    stall = PERSON_DETECTION_C3_MS * board.cpu_mhz * 1e3 / pd["instructions"]
    if args.json:
        print(json.dumps({"stall_factor_from_person_detection": stall, "models": results}, indent=2))
        return
    print(f"ESP32-C3 instruction-set emulator (rv32imc, ESP-NN C kernels, qemu-riscv32): {COUNT_LABEL}, "
          f"MEASURED on an emulator; stall factor of boards/esp32c3.toml {board.cost_model.stall_factor:g}\n")
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
    print(f"\nstall factor: person detection's published {PERSON_DETECTION_C3_MS:.0f} ms at {board.cpu_mhz:.0f} MHz / "
          f"{pd['instructions']:,} instructions = {stall:.3f} cycles per instruction")
    if args.per_op:
        for name, r in results.items():
            print(f"\n{name}")
            for index, op, count in r["per_op"]:
                print(f"  {index:3d} {op:20s} {count:>12,}")


if __name__ == "__main__":
    main()
