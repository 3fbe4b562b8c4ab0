"""The tensor arena TFLM allocates with ESP-NN's ESP32-S3 scratch requests, measured on a 32-bit
TFLM, against what the generated firmware reserves for the board (tinyface.codegen.arena).

No S3 and no Xtensa ESP32 compiler are here, so this builds the firmware project's rv32 program
(the ESP32-C3 build, a 32-bit TFLM with esp-tflite-micro's ESP-NN kernels, run under
qemu-riscv32) twice for the model:

1. as it is: ESP-NN's generic C kernels ask TFLM for no scratch;
2. with esp-nn's S3 size functions in place of the generic ones: every int8 convolution's
   Prepare then asks TFLM for the scratch the S3's assembly kernels would, and TFLM's planner
   places it. The arithmetic still runs ESP-NN's generic C (the S3 kernels are assembly), which
   needs no scratch, so the outputs stay TFLM's.

Each program reports in INFO the arena TFLM really used (``arena_used_bytes``). The second is
what an ESP32-S3 needs, up to the difference between RISC-V's and Xtensa's 32-bit layouts
(both are little-endian ILP32 ABIs; not checked further). The size functions are esp-nn's own C, cut from ESP_NN_DIR's
sources at run time (tinyface.codegen.esp_nn_scratch.c_size_functions) and force-included in
TFLM's sources through the rv32 Makefile's TF_EXTRA.

    python benchmarks/s3_arena.py [--model models/esp32s3] [--board esp32s3] [--faces 3] [--json]

Needs what benchmarks/kernels.py needs (TFLM_DIR, ESP_NN_DIR, the RISC-V packages; LFW for
--faces: photos of peopleDevTrain.txt's people, never the held-out peopleDevTest's, prepared by
benchmarks/_lib.py's lfw_faces). Two rv32 builds of TFLM: about 6 minutes on 2 cores the
first time (cached in --work).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from tinyface.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def shim_header(esp_nn_dir: Path) -> str:
    """A header that makes esp-tflite-micro's ESP-NN kernels ask for the S3's scratch."""
    from tinyface.codegen.esp_nn_scratch import C_SIZE_FUNCTIONS, c_size_functions

    conv = C_SIZE_FUNCTIONS[("esp32s3", "CONV_2D")][1]
    dw = C_SIZE_FUNCTIONS[("esp32s3", "DEPTHWISE_CONV_2D")][1]
    return "\n".join([
        "// benchmarks/s3_arena.py: esp-nn's ESP32-S3 scratch sizes in place of the generic kernels' (none).",
        "#pragma once",
        "#ifdef __cplusplus",
        '#include <esp_nn.h>',
        'extern "C" {',
        c_size_functions(esp_nn_dir, prefix="s3_"),
        "}",
        "#undef esp_nn_get_conv_scratch_size",
        f"#define esp_nn_get_conv_scratch_size s3_{conv}",
        "#undef esp_nn_get_depthwise_conv_scratch_size",
        f"#define esp_nn_get_depthwise_conv_scratch_size s3_{dw}",
        "#endif",
        "",
    ])


def build(bundle, board, work: Path, s3_scratch: bool):
    """The rv32 program of ``bundle``'s project for ``board``, with or without the S3's scratch."""
    from tinyface.codegen import generate_project
    from tinyface.device import isa

    toolchain = isa.find_toolchain("esp_nn")
    kind = "s3-scratch" if s3_scratch else "generic"
    project = generate_project(bundle, board, work / kind)
    extra = []
    if s3_scratch:  # named by its content: the make variable naming it is part of TFLM's object cache key
        text = shim_header(Path(toolchain.esp_nn_dir))
        shim = project.directory / "rv32" / f"esp_nn_s3_scratch-{hashlib.sha256(text.encode()).hexdigest()[:12]}.h"
        shim.write_text(text, encoding="utf-8")
        extra = [f"TF_EXTRA=-include {shim}"]
    program = isa.build_rv32(project.directory, toolchain, extra_vars=tuple(extra), root=work / "cache")
    return project, isa.IsaProgram(program, isa.build_plugin(toolchain), "esp_nn")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "esp32s3"),
                    help="model bundle folder (default: models/esp32s3)")
    ap.add_argument("--board", default="esp32s3",
                    help="board whose firmware reservation is compared (default: %(default)s)")
    ap.add_argument("--faces", type=int, default=3,
                    help="LFW faces (peopleDevTrain photos) whose outputs are compared with the pip TFLM "
                         "interpreter's (0: none; default: %(default)s)")
    ap.add_argument("--data", help="the LFW folder (default: $TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw)")
    ap.add_argument("--work", default="/tmp/tinyface-s3-arena", help="projects and build cache (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tinyface.boards import load_board
    from tinyface.codegen.esp_nn_scratch import layer_scratch_bytes
    from tinyface.model.bundle import load_bundle
    from tinyface.model.graph import analyze

    from _lib import lfw_dir, lfw_faces, serve  # benchmarks/_lib.py: kernels.py's faces and pty

    bundle, board = load_bundle(args.model), load_board(args.board)
    if board.esp_nn_kernels != "esp32s3":
        raise ConfigError(f"board {board.name} runs ESP-NN's {board.esp_nn_kernels} kernels, not the S3's")
    work = Path(args.work)
    faces = lfw_faces(lfw_dir(args.data), bundle.meta, args.faces) if args.faces else np.zeros((0,), np.int8)
    expected = None
    if len(faces):
        from tinyface.model.runtime import TflmRunner
        expected = TflmRunner(bundle.model_bytes).run(faces)
    results = {"model": bundle.meta.name, "board": board.name}
    for s3 in (False, True):
        project, program = build(bundle, board, work, s3)  # the same project for the board: one reservation
        arena, outputs = serve(bundle, program, faces)
        results["rv32_generic" if not s3 else "rv32_s3_scratch"] = {
            "arena_used_bytes": int(arena),
            "identical_to_tflm": None if expected is None else bool(np.array_equal(outputs, expected)),
        }
    results.update(host_recorded_bytes=project.arena.used_bytes, reserved_bytes=project.arena.bytes,
                   reserved_scratch_bytes=project.arena.esp_nn_scratch_bytes)
    scratch = [layer_scratch_bytes(layer, "esp32s3") for layer in analyze(bundle.model_bytes).layers]
    results["largest_scratch_bytes"] = max(scratch)
    results["sum_scratch_bytes"] = sum(scratch)
    needed = results["rv32_s3_scratch"]["arena_used_bytes"]
    results["reserve_minus_needed_bytes"] = results["reserved_bytes"] - needed
    results["label"] = ("arena TFLM used on a 32-bit build (rv32 under qemu-riscv32) with the S3's scratch "
                        "requests; not measured on an ESP32-S3")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{results['model']} on {board.name} ({results['label']}):")
    print(f"  host TFLM recording (reference kernels, 64-bit): {results['host_recorded_bytes']:>9,} B")
    print(f"  rv32, ESP-NN generic kernels (no scratch):        {results['rv32_generic']['arena_used_bytes']:>9,} B")
    print(f"  rv32, with the S3's scratch requests:             {needed:>9,} B")
    print(f"  largest scratch of one op / all ops:              {results['largest_scratch_bytes']:>9,} B / "
          f"{results['sum_scratch_bytes']:,} B")
    print(f"  the firmware reserves (recording + 15% + largest): {results['reserved_bytes']:>9,} B "
          f"({results['reserve_minus_needed_bytes']:+,} B against the need)")
    if expected is not None:
        print(f"  outputs identical to the pip TFLM interpreter's: generic "
              f"{results['rv32_generic']['identical_to_tflm']}, "
              f"with S3 scratch {results['rv32_s3_scratch']['identical_to_tflm']}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
