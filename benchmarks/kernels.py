"""ESP-NN's kernels against the kernels tinyface generates for the model (firmware.kernels),
side by side on the emulated ESP32-C3: instructions per op and per inference (the rv32imc
firmware under qemu-riscv32 with its exact instruction counter, tinyface.device.isa), the
arena the firmware reports, the flash of the program and of the generated code + repacked
weights, and whether both builds give the pip TFLM interpreter's int8 outputs on LFW faces.

    python benchmarks/kernels.py [--model models/esp32] [--faces 1000] [--json]

Needs TFLM_DIR (esp-tflite-micro; ESP_NN_DIR defaults to esp-nn beside it), the packages of
benchmarks/isa.py (gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-user) and LFW
(--data, else TINYFACE_DATA). Counts are instructions measured on an emulator (a lower bound on cycles),
not on a chip. The faces are photos of LFW's training-split people (peopleDevTrain.txt, in file
order), used only to compare two builds of the same model, never to choose anything; the
held-out peopleDevTest photos are not read. benchmarks/xtensa_kernels.py and
benchmarks/s3_arena.py take the same faces (benchmarks/_lib.py's lfw_faces).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KERNEL_SETS = ("esp-nn", "generated")


def build(bundle, kernels: str, work: Path):
    """Generate the esp32c3 project with ``kernels`` and build it for rv32imc; (project, program)."""
    from tinyface.boards import load_board
    from tinyface.codegen import generate_project
    from tinyface.device import isa

    toolchain = isa.find_toolchain("esp_nn")
    project = generate_project(bundle, load_board("esp32c3"), work / kernels, kernels=kernels)
    program = isa.IsaProgram(isa.build_rv32(project.directory, toolchain), isa.build_plugin(toolchain), "esp_nn")
    return project, program


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "esp32"),
                    help="model bundle folder (default: models/esp32)")
    ap.add_argument("--faces", type=int, default=1000, help="LFW faces (peopleDevTrain photos) compared with the pip "
                                                           "TFLM interpreter (0: none; default: %(default)s)")
    ap.add_argument("--data", help="the LFW folder (default: $TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw, "
                                    "as tinyface's commands)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    from tinyface.codegen.kernels import model_kernel_specs
    from tinyface.device.isa import measure_profile
    from tinyface.model.bundle import load_bundle
    from tinyface.model.runtime import TflmRunner

    from _lib import flash_bytes, lfw_dir, lfw_faces, print_op_table, serve  # benchmarks/, beside this script

    bundle = load_bundle(args.model)
    faces = lfw_faces(lfw_dir(args.data), bundle.meta, args.faces) if args.faces else np.zeros((0,), np.int8)
    expected = TflmRunner(bundle.model_bytes).run(faces) if len(faces) else None
    probe = faces[0].tobytes() if len(faces) else bytes(int(np.prod(bundle.meta.input_shape)))
    work = Path(tempfile.mkdtemp(prefix="tinyface-kernels-"))
    results = {}
    for kernels in KERNEL_SETS:
        project, program = build(bundle, kernels, work)
        profile = measure_profile(program, probe)
        arena, outputs = serve(bundle, program, faces)
        results[kernels] = {
            "instructions": profile.total_instructions,
            "ops": [{"index": op.index, "op": op.op, "instructions": op.instructions} for op in profile.ops],
            "arena_used_bytes": arena, "flash_bytes": flash_bytes(program.program),
            "identical_to_tflm": None if expected is None else float(np.mean(np.all(outputs == expected, axis=1))),
            "faces": int(len(faces)),
        }
    specs, _ = model_kernel_specs(bundle.model_bytes)
    results["generated"]["repacked_bytes"] = sum(s.repacked_bytes for s in specs)
    results["model"] = bundle.meta.name
    results["label"] = "instructions on the emulated ESP32-C3 (qemu-riscv32, rv32imc), not cycles on a chip"
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    a, b = results["esp-nn"], results["generated"]
    print(f"{bundle.meta.name}: {results['label']}")
    print_op_table(a, b)
    print(f"arena (firmware INFO): ESP-NN {a['arena_used_bytes']:,} B, generated {b['arena_used_bytes']:,} B")
    print(f"flash (rv32 program text+data): ESP-NN {a['flash_bytes']:,} B, generated {b['flash_bytes']:,} B "
          f"(repacked weights and per-channel constants {b['repacked_bytes']:,} B)")
    if expected is not None:
        print(f"identical to the pip TFLM interpreter on {len(faces)} LFW faces (peopleDevTrain): "
              f"ESP-NN {a['identical_to_tflm']:.1%}, generated {b['identical_to_tflm']:.1%}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
