"""ESP-NN's generic C kernels against the kernels tinyface generates for the model
(firmware.kernels = "generated"), side by side on an emulated Xtensa core: instructions per
op and per inference, and whether both builds give the same int8 outputs (each other's and
the pip TFLM interpreter's) on LFW faces (photos of peopleDevTrain.txt's people, never the held-out
peopleDevTest's: benchmarks/_lib.py's lfw_faces). benchmarks/kernels.py does the same on the
ESP32-C3's RISC-V; this asks whether the ratio holds on Xtensa, the classic ESP32's family.

    python benchmarks/xtensa_kernels.py --compiler-rt DIR [--model models/esp32] [--faces 20] [--json]

The firmware project is generated for --board (default esp32: the classic ESP32 runs ESP-NN's
generic C, like the C3). The LX106 build is not part of the generated project: this script
renders benchmarks/lx106/Makefile.j2 (with the TFLM lists of firmware/make/tflm.mk.j2) and
copies runtime_lx106.c/.h from benchmarks/lx106/ into the project's lx106/ folder. That build
compiles the project's src/ and the rv32 build's platform, rv32/platform_rv32.cc, with
runtime_lx106.h in place of runtime_rv32.h (xtensa's syscall numbers and open flags), using
Debian's xtensa-lx106-elf GCC 12 and picolibc. It runs under qemu-xtensa -cpu lx106 with the
instruction-counting plugin (firmware/qemu/insn_count.c):
--profile --output for the counts, the serial protocol over a pty for the outputs.

Needs: apt-get install gcc-xtensa-lx106 binutils-xtensa-lx106 picolibc-xtensa-lx106-elf qemu-user
(and the host's gcc/g++ 12), TFLM_DIR (esp-tflite-micro; ESP_NN_DIR defaults to esp-nn beside
it), LFW (--data, else TINYFACE_DATA) for --faces, and --compiler-rt (or COMPILER_RT_DIR): the
compiler-rt/lib/builtins folder of an LLVM source release (the llvm-project-*.src or
compiler-rt-*.src archive from https://github.com/llvm/llvm-project/releases), or any copy of
LLVM compiler-rt's lib/builtins. Its portable C helpers (division, 64-bit multiply, soft float)
replace the ones missing from Debian's libgcc for this core. Nothing is downloaded by this
script: --compiler-rt must point at a copy already on disk (DIR, DIR/builtins or
DIR/lib/builtins).

Caveats: the LX106 (the ESP8266's core) is a relative of the ESP32's LX6, not the same core: it
has no zero-overhead loops, no MAC16, no MUL32_HIGH (64-bit products are helper calls: here
compiler-rt's C __muldi3), no DIV32 (divisions are helper calls) and no register windows (call0 ABI). Counts are
instructions on an emulator, not cycles on a chip.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinyface.device.isa import COUNTER_FD, LIBSTDCXX_DIR, LIBSTDCXX_TARGET_DIR, c_define  # the rv32 build's: shared
from tinyface.errors import ToolchainError

REPO = Path(__file__).resolve().parents[1]
KERNEL_SETS = ("esp-nn", "generated")
CROSS = "xtensa-lx106-elf-"
QEMU = "qemu-xtensa"
QEMU_CPU = "lx106"
PICOLIBC_DIR = Path("/usr/lib/xtensa-lx106-elf")
LX106_DIR = Path(__file__).resolve().parent / "lx106"  # the LX106 build's Makefile template and runtime
PROGRAM_NAME = "tinyface_lx106"
APT_PACKAGES = "gcc-xtensa-lx106 binutils-xtensa-lx106 picolibc-xtensa-lx106-elf qemu-user"
LABEL = "instructions on an emulated Xtensa LX106 (qemu-xtensa -cpu lx106), not cycles on an ESP32"
SYS_READ = c_define(LX106_DIR / "runtime_lx106.h", "TF_SYS_READ")  # xtensa's read: the plugin's read=N


@dataclass(frozen=True)
class XtensaProgram:
    """A built lx106 firmware and the plugin that counts its instructions (duck-types
    tinyface.device.isa.IsaProgram for spawn_isa)."""

    program: Path
    plugin: Path
    kernels: str = "esp_nn"

    def command(self, *args: str) -> list[str]:
        return [QEMU, "-cpu", QEMU_CPU, "-plugin", f"{self.plugin},fd={COUNTER_FD},read={SYS_READ}",
                str(self.program), *args]


def compiler_rt_dir(arg: str | None) -> Path:
    """compiler-rt's builtins folder: DIR itself, DIR/builtins or DIR/lib/builtins."""
    given = arg or os.environ.get("COMPILER_RT_DIR")
    if not given:
        raise ToolchainError("no compiler-rt: pass --compiler-rt DIR (LLVM compiler-rt's lib/builtins) "
                             "or set COMPILER_RT_DIR")
    root = Path(given).expanduser().resolve()
    for cand in (root, root / "builtins", root / "lib" / "builtins", root / "compiler-rt" / "lib" / "builtins"):
        if (cand / "fp_lib.h").is_file() and (cand / "adddf3.c").is_file():
            return cand
    raise ToolchainError(f"{root} holds no compiler-rt builtins (fp_lib.h, adddf3.c)")


def check_tools() -> None:
    import shutil

    for tool in (CROSS + "gcc", CROSS + "g++", CROSS + "size", QEMU):
        if shutil.which(tool) is None:
            raise ToolchainError(f"{tool} not found (apt-get install {APT_PACKAGES})")
    if not (PICOLIBC_DIR / "lib" / "libc.a").is_file():
        raise ToolchainError(f"picolibc not found in {PICOLIBC_DIR} (apt-get install picolibc-xtensa-lx106-elf)")


def write_lx106(project) -> None:
    """Put the LX106 build into ``project``'s lx106/ folder: Makefile rendered from
    benchmarks/lx106/Makefile.j2 (the model's ops, the app sources), runtime_lx106.c/.h copied,
    each behind the generated-file banner. Anything else in that folder is removed."""
    import shutil

    from tinyface.codegen import BANNER
    from tinyface.codegen.project import APP_SOURCES, template_environment
    from tinyface.resources import firmware_dir

    out = project.directory / "lx106"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    env = template_environment(LX106_DIR, firmware_dir())  # the firmware templates' settings and fragments
    makefile = env.get_template("Makefile.j2").render(banner=f"{BANNER} (template: benchmarks/lx106/Makefile.j2)",
                                                      ops=project.ops, app_sources=APP_SOURCES)
    (out / "Makefile").write_text(makefile, encoding="utf-8")
    for name in ("runtime_lx106.c", "runtime_lx106.h"):
        source = (LX106_DIR / name).read_text(encoding="utf-8")
        (out / name).write_text(f"// {BANNER} (copied from benchmarks/lx106/{name})\n{source}", encoding="utf-8")


def build(bundle, board, kernels: str, work: Path, crt: Path, jobs: int, plugin: Path, log=None):
    """Generate ``board``'s project with ``kernels``, add its lx106/ build and build that; (project, program)."""
    from tinyface.codegen import generate_project
    from tinyface.codegen.project import MAKE_FRAGMENTS
    from tinyface.device.isa import esp_nn_tree, mtime_stamp
    from tinyface.device.native import compiler_version, find_tflm, git_head, make_program

    tflm, third_dir = find_tflm("the LX106 build")
    nn_dir = esp_nn_tree(tflm)
    project = generate_project(bundle, board, work / "projects" / f"{board.name}-{bundle.model_hash[:12]}-{kernels}",
                               kernels=kernels)
    write_lx106(project)
    # Identifies the TFLM/ESP-NN/compiler-rt objects (the program is cached by its sources too).
    # Make rebuilds an object only when its source's timestamp changes, so everything else that
    # shapes the objects is in the key: the trees' versions, the flags (the Makefile template and the
    # firmware's Makefile fragments it imports), the compilers and libraries, the headers.
    key = hashlib.sha256("\n".join([
        "lx106-2", str(tflm), git_head(tflm), str(third_dir), str(nn_dir), mtime_stamp(nn_dir / "include" / "esp_nn.h"),
        str(crt), *(mtime_stamp(p) for p in sorted(crt.glob("*.[ch]"))), compiler_version(CROSS + "g++"),
        mtime_stamp(PICOLIBC_DIR / "lib" / "libc.a"), str(LIBSTDCXX_DIR), str(LIBSTDCXX_TARGET_DIR),
        (LX106_DIR / "Makefile.j2").read_text(),
        *(p.read_text() for p in sorted((REPO / "firmware" / MAKE_FRAGMENTS).rglob("*.j2"))),
        *(p.read_text() for p in sorted((REPO / "firmware" / "rv32" / "include").rglob("*.h"))),
    ]).encode()).hexdigest()[:16]
    program = make_program(project.directory, "lx106", "make",
                           [f"TFLM_DIR={tflm}", f"TFLM_THIRD_PARTY_DIR={third_dir}", f"ESP_NN_DIR={nn_dir}",
                            "KERNELS=esp_nn", f"CROSS={CROSS}", f"PICOLIBC_DIR={PICOLIBC_DIR}",
                            f"COMPILER_RT_DIR={crt}", f"LIBSTDCXX_DIR={LIBSTDCXX_DIR}",
                            f"LIBSTDCXX_TARGET_DIR={LIBSTDCXX_TARGET_DIR}"],
                           key, work / "cache", PROGRAM_NAME, "lx106", jobs, log,
                           also_reads=("rv32",))  # lx106/Makefile compiles rv32/platform_rv32.cc
    return project, XtensaProgram(program, plugin)


def run_model(model: str, board_name: str, n_faces: int, data: str | None, work: Path, crt: Path, jobs: int,
              plugin: Path, verbose: bool) -> dict:
    from tinyface.boards import load_board
    from tinyface.model.bundle import load_bundle

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tinyface.device.isa import measure_profile

    from _lib import flash_bytes, lfw_dir, lfw_faces, serve  # benchmarks/_lib.py: kernels.py's faces, pty and size

    bundle = load_bundle(model)
    board = load_board(board_name)
    faces = lfw_faces(lfw_dir(data), bundle.meta, n_faces) if n_faces else np.zeros((0,), np.int8)
    expected = None
    if len(faces):
        try:
            from tinyface.model.runtime import TflmRunner

            expected = TflmRunner(bundle.model_bytes).run(faces)
        except Exception as exc:  # the pip interpreter is optional here
            print(f"(no pip TFLM interpreter to compare with: {exc})", file=sys.stderr)
    probe = faces[0].tobytes() if len(faces) else bytes(int(np.prod(bundle.meta.input_shape)))
    log = (lambda line: print(line, file=sys.stderr)) if verbose else None
    results: dict = {"model": bundle.meta.name, "board": board.name, "label": LABEL, "faces": int(len(faces))}
    outputs = {}
    for kernels in KERNEL_SETS:
        print(f"building {bundle.meta.name} for lx106 with {kernels} kernels ...", file=sys.stderr)
        project, program = build(bundle, board, kernels, work, crt, jobs, plugin, log)
        prof = measure_profile(program, probe, timeout_s=600.0, output=True)
        arena, outs = serve(bundle, program, faces, timeout_s=120.0) if len(faces) else (None, np.zeros((0,)))
        outputs[kernels] = outs
        results[kernels] = {
            "instructions": prof.total_instructions, "ops": [asdict(op) for op in prof.ops], "arena_used_bytes": arena,
            "flash_bytes": flash_bytes(program.program, CROSS + "size"), "program": str(program.program),
            "profile_output": prof.output,
            "identical_to_tflm": None if expected is None else float(np.mean(np.all(outs == expected, axis=1))),
            "generated_ops": project.generated_ops,
        }
    a, b = results["esp-nn"], results["generated"]
    results["ratio"] = a["instructions"] / max(b["instructions"], 1)
    results["profile_outputs_identical"] = (a["profile_output"] is not None
                                            and a["profile_output"] == b["profile_output"])
    if len(faces):
        results["outputs_identical_to_each_other"] = float(np.mean(np.all(outputs["esp-nn"] == outputs["generated"],
                                                                          axis=1)))
    return results


def report(results: dict) -> None:
    from _lib import print_op_table  # kernels.py's table (benchmarks/_lib.py; run_model put it on the path)

    a, b = results["esp-nn"], results["generated"]
    print(f"{results['model']} (board {results['board']}): {results['label']}")
    print_op_table(a, b, width=12)
    print(f"arena (firmware INFO): ESP-NN {a['arena_used_bytes']}, generated {b['arena_used_bytes']} B")
    print(f"flash (lx106 program text+data): ESP-NN {a['flash_bytes']:,} B, generated {b['flash_bytes']:,} B")
    print(f"profiled input: int8 outputs identical between the two builds: {results['profile_outputs_identical']}")
    if results["faces"]:
        print(f"{results['faces']} LFW faces (peopleDevTrain) over the protocol: identical to each other "
              f"{results['outputs_identical_to_each_other']:.1%}", end="")
        if a["identical_to_tflm"] is not None:
            print(f"; identical to the pip TFLM interpreter: ESP-NN {a['identical_to_tflm']:.1%}, "
                  f"generated {b['identical_to_tflm']:.1%}")
        else:
            print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model bundle folder (repeatable; default models/esp32)")
    ap.add_argument("--board", default="esp32", help="board the project is generated for (default esp32)")
    ap.add_argument("--faces", type=int, default=20, help="LFW faces (peopleDevTrain photos) compared over the "
                                                        "protocol (0: none; default: %(default)s)")
    ap.add_argument("--data", help="the LFW folder for --faces (default: $TINYFACE_DATA, else "
                                    "~/.cache/tinyface/datasets/lfw, as tinyface's commands)")
    ap.add_argument("--compiler-rt", help="LLVM compiler-rt's lib/builtins folder (or set COMPILER_RT_DIR)")
    ap.add_argument("--work", default=os.environ.get("TINYFACE_XTENSA_WORK", "/tmp/tinyface-xtensa"),
                    help="projects and build cache (default /tmp/tinyface-xtensa)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the make output")
    args = ap.parse_args()

    check_tools()
    crt = compiler_rt_dir(args.compiler_rt)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    from tinyface.device.isa import build_plugin

    plugin = build_plugin()  # tinyface.device.isa's, cached (atomically) beside the rv32 builds
    all_results = [run_model(m, args.board, args.faces, args.data, work, crt, args.jobs, plugin, args.verbose)
                   for m in (args.model or [str(REPO / "models" / "esp32")])]
    if args.json:
        json.dump(all_results, sys.stdout, indent=2)
        print()
        return
    for i, results in enumerate(all_results):
        if i:
            print()
        report(results)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
