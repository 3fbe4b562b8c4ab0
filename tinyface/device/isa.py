"""The ESP32-C3 instruction-set build of the firmware: the generated project's own sources
compiled for rv32imc (the C3's RISC-V core) against esp-tflite-micro with ESP-NN's C
kernels, linked with picolibc, and run as a Linux user program under ``qemu-riscv32`` with
an instruction-counting TCG plugin (firmware/qemu/insn_count.c). It serves the protocol on
a pseudo-terminal exactly as the board does; INFER's cycle field is the exact number of
instructions ``Invoke()`` executed: a lower bound on the chip's cycles.

Where things come from (environment, read by tinyface.config):
    TFLM_DIR              esp-tflite-micro (needs tensorflow/lite/micro/kernels/esp_nn/)
    TFLM_THIRD_PARTY_DIR  flatbuffers/, gemmlowp/, ruy/ (default: $TFLM_DIR/third_party)
    ESP_NN_DIR            esp-nn (default: esp-nn beside $TFLM_DIR, as in ../shared/vendor)
    TINYFACE_ISA_CACHE    where builds are cached (default ~/.cache/tinyface/isa)
    TINYFACE_NATIVE_JOBS  parallel compile jobs (default 2)
    CC                    the host C compiler of the QEMU plugin (default gcc)

Debian packages: gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-user (and the
host's gcc/g++ 12 for the plugin and libstdc++'s headers). Builds are cached by content:
TFLM and ESP-NN objects once per tree and flags, the program once per generated source tree,
the plugin once per source.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from tinyface import config
from tinyface.boards import CHIPS, Board
from tinyface.config import DEFAULT_ARENA_MARGIN
from tinyface.device.native import (
    check_can_run_from,
    compiler_version,
    find_tflm,
    generation_lock,
    git_head,
    key_with,
    make_gallery_folder,
    make_program,
    project_cache_folder,
)
from tinyface.errors import DeviceError, ToolchainError
from tinyface.resources import firmware_dir

ISA_TARGET = "esp32c3"  # the chip it runs (rv32imc): the ESP32 and ESP32-S3 are Xtensa
ISA_BOARD = "esp32c3"  # the shipped board with that chip, the default
PROGRAM_NAME = "tinyface_rv32"
APT_PACKAGES = "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-user"
CROSS = "riscv64-unknown-elf-"
QEMU = "qemu-riscv32"
PICOLIBC_DIR = Path("/usr/lib/picolibc/riscv64-unknown-elf")
LIBSTDCXX_DIR = Path("/usr/include/c++/12")
LIBSTDCXX_TARGET_DIR = Path("/usr/include/x86_64-linux-gnu/c++/12")
KERNELS = ("esp_nn", "reference")
# Bump when the way the rv32 build compiles TFLM changes (invalidates cached objects).
ISA_BUILD_VERSION = 2  # 2: objects compiled to a temporary name and renamed
COUNT_LABEL = "instructions (a lower bound on cycles)"


def c_define(source: Path, name: str) -> int:
    """The number ``#define NAME N`` gives in the C source ``source`` (its one definition)."""
    text = Path(source).read_text(encoding="utf-8")
    return int(re.search(rf"^#define {name} (\d+)$", text, re.M).group(1))


# the descriptor the plugin answers with the count
COUNTER_FD = c_define(firmware_dir() / "rv32" / "platform_rv32.cc", "TF_RV32_COUNTER_FD")


@dataclass(frozen=True)
class IsaToolchain:
    tflm_dir: Path
    third_party_dir: Path
    esp_nn_dir: Path
    qemu: str
    host_cc: str
    kernels: str = "esp_nn"

    def key(self) -> str:
        """Identifies the TFLM/ESP-NN objects: the trees, the compilers and the kernels."""
        parts = [str(ISA_BUILD_VERSION), str(self.tflm_dir), git_head(self.tflm_dir), str(self.third_party_dir),
                 str(self.esp_nn_dir), mtime_stamp(self.esp_nn_dir / "include/esp_nn.h"), self.kernels,
                 compiler_version(CROSS + "g++"), mtime_stamp(PICOLIBC_DIR / "lib/rv32im/ilp32/libc.a"),
                 str(LIBSTDCXX_DIR)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def make_vars(self) -> list[str]:
        """The variables rv32/Makefile is run with."""
        return [f"TFLM_DIR={self.tflm_dir}", f"TFLM_THIRD_PARTY_DIR={self.third_party_dir}",
                f"ESP_NN_DIR={self.esp_nn_dir}", f"KERNELS={self.kernels}", f"CROSS={CROSS}",
                f"PICOLIBC_DIR={PICOLIBC_DIR}", f"LIBSTDCXX_DIR={LIBSTDCXX_DIR}",
                f"LIBSTDCXX_TARGET_DIR={LIBSTDCXX_TARGET_DIR}"]


def cache_dir() -> Path:
    return config.isa_cache_dir()


def _missing_packages() -> ToolchainError:
    return ToolchainError("the ESP32-C3 instruction-set emulator needs the RISC-V compiler, picolibc and QEMU",
                          hint=f"apt-get install {APT_PACKAGES}")


def esp_nn_tree(tflm_dir: Path) -> Path:
    """ESP-NN's tree: ``$ESP_NN_DIR``, else ``esp-nn`` beside the TFLM tree (as in ../shared/vendor)."""
    nn = config.esp_nn_dir()
    return Path(nn).expanduser().resolve() if nn else tflm_dir.parent / "esp-nn"


def find_toolchain(kernels: str = "esp_nn") -> IsaToolchain:
    """The trees and tools of the rv32 build.

    Raises:
        ToolchainError: one line naming what is missing (the apt packages, or the variable to set).
    """
    if kernels not in KERNELS:
        raise ToolchainError(f"unknown kernels {kernels!r} (one of {', '.join(KERNELS)})")
    for tool in (CROSS + "gcc", CROSS + "g++", QEMU):
        if shutil.which(tool) is None:
            raise _missing_packages()
    if not (PICOLIBC_DIR / "lib/rv32im/ilp32/libc.a").is_file():
        raise _missing_packages()
    if not (LIBSTDCXX_DIR / "cstdint").is_file() or not (LIBSTDCXX_TARGET_DIR / "bits/c++config.h").is_file():
        raise ToolchainError(f"libstdc++'s GCC 12 headers are not in {LIBSTDCXX_DIR}", hint="apt-get install g++-12")
    host_cc = config.host_cc()
    if shutil.which(host_cc) is None:
        raise ToolchainError(f"{host_cc} not found on PATH; the QEMU plugin is built with the host's C compiler",
                             hint="apt-get install gcc")
    tflm_dir, third_dir = find_tflm("the ESP32-C3 build")
    nn_dir = esp_nn_tree(tflm_dir)
    if kernels == "esp_nn":
        if not (tflm_dir / "tensorflow/lite/micro/kernels/esp_nn").is_dir():
            raise ToolchainError(f"TFLM_DIR={tflm_dir} has no kernels/esp_nn/ (an esp-tflite-micro tree is needed)",
                                 hint="or build TFLM's reference kernels (--kernels reference)")
        if not (nn_dir / "include/esp_nn.h").is_file():
            raise ToolchainError(f"ESP-NN not found at {nn_dir}", hint="export ESP_NN_DIR=/path/to/esp-nn")
    return IsaToolchain(tflm_dir, third_dir, nn_dir, QEMU, host_cc, kernels)


def unavailable_reason() -> str | None:
    """Why the rv32 build cannot run here (for test skips), or None if it can."""
    try:
        find_toolchain()
    except ToolchainError as exc:
        return exc.one_line()
    return None


def build_plugin(toolchain: IsaToolchain | None = None) -> Path:
    """Compile the instruction-counting QEMU plugin (cached by its source); returns the .so."""
    host_cc = toolchain.host_cc if toolchain else config.host_cc()
    source = firmware_dir() / "qemu" / "insn_count.c"
    digest = hashlib.sha256(source.read_bytes() + host_cc.encode()).hexdigest()[:16]
    root = cache_dir()
    # QEMU maps the plugin to run it: not from a disk mounted noexec (and prepare_isa builds it first,
    # so that is said before the rv32 build's minutes)
    check_can_run_from(root, "TINYFACE_ISA_CACHE")
    plugin = root / "plugin" / f"insn_count-{digest}.so"
    if plugin.is_file():
        return plugin
    plugin.parent.mkdir(parents=True, exist_ok=True)
    tmp = plugin.with_name(f".{plugin.name}.{os.getpid()}.tmp")
    proc = subprocess.run([host_cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(tmp), str(source)],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:300])
        raise ToolchainError(f"building the QEMU plugin failed: {first}")
    os.replace(tmp, plugin)
    return plugin


def build_rv32(project_dir: str | Path, toolchain: IsaToolchain | None = None, jobs: int | None = None,
               log=None, extra_vars: tuple[str, ...] = (), root: Path | None = None) -> Path:
    """Compile the generated project's rv32 build; returns the program's path (cached in
    ``root``, default cache_dir(), by the sources, the toolchain and ``extra_vars``: more make
    variables, such as benchmarks/s3_arena.py's ``TF_EXTRA=...``; make_program adds the
    environment's values of the Makefile's other ``?=`` variables).

    Raises:
        ToolchainError: no toolchain, or the build failed (the message has the first error).
    """
    toolchain = toolchain or find_toolchain()
    project_dir = Path(project_dir).resolve()
    return make_program(project_dir, "rv32", "make", [*toolchain.make_vars(), *extra_vars],
                        key_with(toolchain.key(), extra_vars), root or cache_dir(), PROGRAM_NAME, "rv32", jobs, log)


@dataclass(frozen=True)
class IsaProgram:
    """A built rv32 firmware and the plugin that counts its instructions."""

    program: Path
    plugin: Path
    kernels: str = "esp_nn"  # ESP-NN's C kernels, or TFLM's "reference" ones

    def command(self, *args: str) -> list[str]:
        return [QEMU, "-plugin", f"{self.plugin},fd={COUNTER_FD}", str(self.program), *args]


def prepare_isa(bundle, board=None, arena_margin: float = DEFAULT_ARENA_MARGIN, project_dir: str | Path | None = None,
                kernels: str = "esp_nn", log=None, firmware_kernels: str = "esp-nn") -> IsaProgram:
    """Generate the esp32c3 firmware project for ``bundle`` and build it for rv32imc (cached).

    ``kernels`` picks TFLM's library kernels (ESP-NN's C, or TFLM's "reference" ones);
    ``firmware_kernels`` is the setting firmware.kernels ("generated": the model's own kernels,
    tinyface.codegen.kernels, registered in place of the library's for the ops they cover).

    Raises:
        ToolchainError: missing packages or trees, or a failed build.
        DeviceError: ``board`` is not the ESP32-C3.
    """
    from tinyface.boards import load_board
    from tinyface.codegen import generate_project

    board = board or load_board(ISA_BOARD)
    check_board(board)
    check_can_run_from(cache_dir(), "TINYFACE_ISA_CACHE")  # before a project is written there (build_plugin's too)
    toolchain = find_toolchain(kernels)
    if project_dir is None:
        project_dir = project_cache_folder(cache_dir(), bundle, board, firmware_kernels, arena_margin)
    with generation_lock(project_dir):
        generate_project(bundle, board, project_dir, arena_margin=arena_margin, kernels=firmware_kernels)
    plugin = build_plugin(toolchain)
    return IsaProgram(build_rv32(project_dir, toolchain, log=log), plugin, kernels)


def board_refusal(board: Board) -> str | None:
    """Why the instruction-set emulator cannot run ``board``, with what to do, in one line; None
    when it can (a board whose chip is the ESP32-C3: ``esp32c3``, or one of your own).
    `emulate --isa` and `profile --measured` refuse such a board as a usage error, before anything
    is loaded."""
    if board.target == ISA_TARGET:
        return None
    return (f"the instruction-set emulator runs the ESP32-C3 (rv32imc); {board.name} is an "
            f"{CHIPS[board.target].title}: use --board {ISA_BOARD}")


def check_board(board: Board) -> None:
    """Raises DeviceError: ``board``'s chip is not the one the instruction-set emulator runs."""
    why = board_refusal(board)
    if why:
        raise DeviceError(why)


def spawn_isa(prog: IsaProgram, master_fd: int, baud: int = 0, once: bool = False,
              storage_dir: str | Path | None = None) -> subprocess.Popen:
    """Start the rv32 firmware under qemu-riscv32, serving the protocol on ``master_fd``
    (``storage_dir``: where it keeps its gallery, as spawn_native's; None: in memory only).

    Raises:
        OutputError: ``storage_dir`` cannot be created.
    """
    args = ["--baud", str(int(baud))]
    if once:
        args.append("--once")
    if storage_dir is not None:
        make_gallery_folder(storage_dir, hint="give storage_dir a folder you can write")
        args += ["--storage", str(storage_dir)]
    return subprocess.Popen(prog.command(*args), stdin=master_fd, stdout=master_fd, close_fds=True)


def run_isa_emulator(bundle, board=None, baud: int = 0, once: bool = False, on_ready=None,
                     stop: threading.Event | None = None, storage_dir: str | Path | None = None,
                     kernels: str = "esp_nn", firmware_kernels: str = "esp-nn",
                     arena_margin: float = DEFAULT_ARENA_MARGIN) -> int:
    """`tinyface emulate --isa`: build (cached) and serve the rv32 firmware under QEMU on a pty
    (``arena_margin``: firmware.arena_margin, as `flash` builds the firmware).

    Returns:
        qemu's exit status.
    """
    from tinyface.console import status
    from tinyface.device.pty import serve_process_on_pty

    with status("building the ESP32-C3 (rv32imc) firmware (first time: a minute or two)"):
        prog = prepare_isa(bundle, board, arena_margin=arena_margin, kernels=kernels,
                           firmware_kernels=firmware_kernels)
    return serve_process_on_pty(
        lambda master_fd: spawn_isa(prog, master_fd, baud=baud, once=once, storage_dir=storage_dir),
        on_ready=on_ready, stop=stop)


@dataclass
class MeasuredOp:
    index: int
    op: str
    instructions: int


@dataclass
class MeasuredProfile:
    """Instructions per operator of one inference on the emulated ESP32-C3 (TFLM's profiler)."""

    ops: list[MeasuredOp]
    total_instructions: int  # all of Invoke(), including the interpreter between operators
    kernels: str
    output: list[int] | None = None  # the int8 output, when asked for (measure_profile's output=True)


def measure_profile(prog: IsaProgram, input_int8: bytes, timeout_s: float = 300.0,
                    output: bool = False) -> MeasuredProfile:
    """Run one inference of ``input_int8`` with the rv32 program's --profile mode (with
    ``output``, --profile --output: the int8 output too). ``prog``: anything with IsaProgram's
    ``command`` (benchmarks/xtensa_kernels.py runs the same platform file on another core).

    Raises:
        DeviceError: the program failed (no counter, a bad model, a crash), or ran past ``timeout_s``.
    """
    args = ("--profile", "--output") if output else ("--profile",)
    try:
        proc = subprocess.run(prog.command(*args), input=input_int8, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        raise DeviceError(f"profiling on the emulated ESP32-C3 did not end within {timeout_s:g} s",
                          hint="a model this large, or a firmware that hangs under QEMU") from None
    if proc.returncode != 0:
        why = {7: "the instruction counter did not answer"}.get(proc.returncode, f"exit status {proc.returncode}")
        raise DeviceError(f"profiling on the emulated ESP32-C3 failed: {why}",
                          hint=proc.stderr.decode(errors="replace").strip()[-300:] or None)
    ops: list[MeasuredOp] = []
    total = 0
    values = None
    for line in proc.stdout.decode().splitlines():
        index, *rest = line.split("\t")
        if index == "output":
            values = [int(v) for v in rest[0].split(",")]
        elif index == "total":
            total = int(rest[1])
        else:
            ops.append(MeasuredOp(int(index), rest[0], int(rest[1])))
    return MeasuredProfile(ops, total, prog.kernels, values)


def mtime_stamp(path: Path) -> str:
    """``path``'s modification time in nanoseconds as text (a part of a build's cache key), "missing"
    if it has none."""
    try:
        return str(path.stat().st_mtime_ns)
    except OSError:
        return "missing"
