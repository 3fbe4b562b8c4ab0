"""tinyface.device.isa: the ESP32-C3 firmware built for rv32imc and run under qemu-riscv32
with the instruction-counting plugin (real cross compiler, real QEMU, real pty). The
protocol, bench and gallery tests of tests/device run on it too (the ``isa`` device kind)."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import KILLED_COMPILER, planned_tflm_compiles, skip_or_fail
from tinyface.boards import load_board
from tinyface.device.isa import COUNTER_FD
from tinyface.errors import ToolchainError

pytestmark = pytest.mark.isa


@pytest.fixture(scope="session")
def isa_toolchain():
    from tinyface.device.isa import find_toolchain, unavailable_reason

    reason = unavailable_reason()
    if reason:
        skip_or_fail(f"the rv32 build is impossible here: {reason}")
    return find_toolchain()


@pytest.fixture(scope="session")
def plugin(isa_toolchain):
    from tinyface.device.isa import build_plugin

    return build_plugin(isa_toolchain)


def _assemble(tmp_path, source: str):
    src = tmp_path / "guest.S"
    src.write_text(source)
    exe = tmp_path / "guest"
    subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv32imc", "-mabi=ilp32", "-nostdlib", "-static",
                    "-o", str(exe), str(src)], check=True)
    return exe


LOOP = """
.global _start
_start:
  li t0, {n}
1: addi t0, t0, -1
  bnez t0, 1b
  li a0, 0
  li a7, 93
  ecall
"""


def test_plugin_counts_a_loop_exactly(tmp_path, plugin):
    # li of a large constant is lui+addi (2), the loop 2 per iteration, then li, li, ecall (3)
    exe = _assemble(tmp_path, LOOP.format(n=1_000_000))
    proc = subprocess.run(["qemu-riscv32", "-plugin", f"{plugin},total=on", str(exe)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "insn_count: 2000005 instructions" in proc.stderr


# Reads the counter (8 bytes from COUNTER_FD) before and after a loop of n iterations and
# writes both readings to stdout (no linker relaxation: gp is not set up). Between the two
# ecalls of the reads run: the rest of the first read's code (none), the loop setup li
# (lui+addi: 2), 2n loop instructions, and the second read's setup (li a0, la a1 =
# auipc+addi, li a2, li a7: 5) plus its ecall (1).
READ_AROUND_LOOP = """
.option norelax
.global _start
_start:
  li a0, {fd}
  la a1, buf
  li a2, 8
  li a7, 63
  ecall
  li t0, {n}
1: addi t0, t0, -1
  bnez t0, 1b
  li a0, {fd}
  la a1, buf + 8
  li a2, 8
  li a7, 63
  ecall
  li a0, 1
  la a1, buf
  li a2, 16
  li a7, 64
  ecall
  li a0, 0
  li a7, 93
  ecall
.data
buf: .space 16
"""


def test_the_guest_reads_the_exact_count_through_the_counter_fd(tmp_path, plugin):
    n = 300_000
    exe = _assemble(tmp_path, READ_AROUND_LOOP.format(fd=COUNTER_FD, n=n))
    proc = subprocess.run(["qemu-riscv32", "-plugin", f"{plugin},fd={COUNTER_FD}", str(exe)], capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    before, after = struct.unpack("<QQ", proc.stdout)
    assert before > 0
    assert after - before == 2 + 2 * n + 5 + 1


# READ_AROUND_LOOP with each read announced by an lseek (62) on the counter's descriptor, as
# the LX106 build's reads are seen by a plugin told read=N: that syscall fills the pipe (and
# fails harmlessly on a pipe), the real read (63) then returns the count. Between the two
# lseeks' ecalls run: the first read (li, la = 2, li, li, ecall: 6), the loop setup (2), 2n
# loop instructions and the second lseek's li, li and ecall (3).
def _announced(source: str) -> str:
    announce = "  li a0, {fd}\n  li a7, 62\n  ecall\n  li a0, {fd}\n  la a1, buf"
    return source.replace("  li a0, {fd}\n  la a1, buf", announce)


def test_the_plugin_watches_the_read_number_it_is_given(tmp_path, plugin):
    n = 300_000  # li of it is lui+addi
    exe = _assemble(tmp_path, _announced(READ_AROUND_LOOP).format(fd=COUNTER_FD, n=n))
    proc = subprocess.run(["qemu-riscv32", "-plugin", f"{plugin},fd={COUNTER_FD},read=62", str(exe)],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    before, after = struct.unpack("<QQ", proc.stdout)
    assert before > 0 and after - before == 2 * n + 11


def test_without_the_plugin_the_counter_reads_nothing(tmp_path, isa_toolchain):
    exe = _assemble(tmp_path, READ_AROUND_LOOP.format(fd=COUNTER_FD, n=10))
    proc = subprocess.run(["qemu-riscv32", str(exe)], capture_output=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout == bytes(16)  # both reads failed (EBADF): the buffer stays zero


@pytest.fixture(scope="session")
def isa_program(isa_toolchain, tiny_bundle):
    from tinyface.device.isa import prepare_isa

    return prepare_isa(tiny_bundle)


def test_rv32_firmware_counts_instructions_and_matches_host_tflm(isa_program, tiny_bundle, connect):
    from tinyface.device.isa import spawn_isa
    from tinyface.device.pty import open_pty
    from tinyface.model.runtime import TflmRunner

    master, path = open_pty()
    proc = spawn_isa(isa_program, master)
    try:
        client = connect(path, timeout_s=20.0)
        info = client.info()
        assert info.instructions and not info.native and not info.emulated
        assert info.board == "esp32c3" and info.cpu_hz == 160_000_000
        x = np.random.default_rng(3).integers(-128, 128, (6, *tiny_bundle.meta.input_shape[1:]), dtype=np.int8)
        replies = [client.infer(item) for item in x] + [client.infer(x[0])]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)
    chip = np.stack([r.output for r in replies[:-1]])
    assert np.array_equal(chip, TflmRunner(tiny_bundle.model_bytes).run(x).reshape(len(x), -1))
    counts = [r.cycles for r in replies]
    assert min(counts) > 10_000  # a real model's instructions, not a clock
    assert replies[-1].cycles == replies[0].cycles  # the same input: the same exact count
    assert max(counts) / min(counts) < 1.01  # int8 kernels barely depend on the data
    # latency is the count at the board's clock: the least time the chip can take. Within 2 us:
    # tf_micros() is floor(instructions / 160) at each end (up to 1 us between them), and its window
    # also holds the two tf_cycles() calls around Invoke() (a fraction of a microsecond)
    assert abs(replies[0].latency_us - replies[0].cycles / 160) <= 2


@pytest.mark.parametrize("kernels, board", [("esp-nn", ["--board", "esp32c3"]), ("generated", [])])
def test_profile_measured_per_op_and_the_estimate_within_15_percent(isa_toolchain, kernels, board):
    """Each kernel set's instructions, counted, against the board's cost model of that set
    (without --board, --measured takes the ESP32-C3, as `emulate --isa` does)."""
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "profile", *board, "--measured",
                           "--kernels", kernels, "--json"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["kernels"] == kernels
    assert result["cost_source"] == load_board("esp32c3").cost_model_for(kernels).source
    assert "MEASURED" in result["instructions_are"] and "ESTIMATED" in result["est_ms_is"]
    from tinyface.boards.profile import default_model_dir
    from tinyface.model.graph import analyze

    layers = analyze((default_model_dir("esp32c3") / "model.tflite").read_bytes()).layers
    assert [x["op"] for x in result["layers"]] == [x.op for x in layers]
    assert all(layer["instructions"] > 0 for layer in result["layers"])
    assert sum(layer["instructions"] for layer in result["layers"]) < result["total_instructions"]
    assert result["stall_factor"] >= 1
    assert abs(result["est_vs_measured"]) < 0.15


def test_profile_measured_json_keeps_every_key_of_the_estimate(isa_toolchain):
    """--measured is "also MEASURE": its --json had dropped the estimate's total_macs, total_params,
    total_param_bytes, total_est_cycles and each layer's params, so a script reading them broke
    when --measured was added. (``estimated`` stays out: there the figures are labelled one by one.)"""
    def run(*extra):
        proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "profile", "--board", "esp32c3", "--json",
                               *extra], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    estimate, measured = run(), run("--measured")
    assert set(estimate) - {"estimated"} <= set(measured), set(estimate) - set(measured)
    assert set(estimate["layers"][0]) <= set(measured["layers"][0])
    for key in ("total_macs", "total_params", "total_param_bytes", "total_est_cycles", "total_est_ms"):
        assert measured[key] == estimate[key], key
    assert [x["params"] for x in measured["layers"]] == [x["params"] for x in estimate["layers"]]


def test_a_missing_cross_compiler_is_one_line_naming_the_packages(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing on PATH: no riscv64-unknown-elf-gcc, no qemu
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "emulate", "--isa"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == ToolchainError.exit_code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error:")
    assert "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-user" in lines[0]


@pytest.mark.parametrize("args", [["emulate", "--isa", "--board", "esp32"],
                                  ["profile", "--measured", "--board", "esp32"],
                                  ["profile", "--measured", "--board", "esp32s3", "--model", "no/such/model"],
                                  ["emulate", "--isa", "--set", "firmware.board=esp32"],
                                  ["profile", "--measured", "--set", "firmware.board=esp32cam"]])
def test_an_xtensa_board_for_the_instruction_set_emulator_is_a_usage_error(args):
    """Two options that contradict each other (exit 2, as `emulate --native --isa`), not a board
    problem (it was exit 7); refused before the model is looked for, on one line, with what to do.
    A board named by --set is as explicit as --board (the C3 was run instead, silently)."""
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tinyface: error: {args[1]}: "), proc.stderr
    assert f"{args[-1].split('=')[-1] if '--set' in args else args[3]} is an ESP32" in lines[0]
    assert "use --board esp32c3" in lines[0] and f"tinyface {args[0]} --help" in lines[0]
    assert proc.stdout == ""


def test_the_instruction_set_emulator_takes_a_board_of_ones_own_by_its_chip(tmp_path):
    """A board file of one's own with the C3's chip (chip.target) runs; one with another chip is
    refused by what it is. It went by the name: only the shipped `esp32c3` ran."""
    from tinyface.resources import boards_dir

    for name, shipped in (("myc3", "esp32c3"), ("mywroom", "esp32")):
        text = (boards_dir() / f"{shipped}.toml").read_text()
        (tmp_path / f"{name}.toml").write_text(text.replace(f'name = "{shipped}"', f'name = "{name}"'))

    def run(board):
        return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "--boards-dir", str(tmp_path), "profile",
                               "--measured", "--board", board, "--model", str(tmp_path / "no-model")],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    mine = run("myc3")  # past the board: the missing model is what stops it
    assert mine.returncode != 2 and "no-model" in mine.stderr and "RISC-V" not in mine.stderr, mine.stderr
    other = run("mywroom")
    assert other.returncode == 2 and "mywroom is an ESP32 (Xtensa LX6): use --board esp32c3" in other.stderr


def test_without_the_plugin_the_firmware_claims_no_instruction_count(isa_program, tiny_bundle, connect):
    from tinyface.device.pty import open_pty

    master, path = open_pty()
    proc = subprocess.Popen(["qemu-riscv32", str(isa_program.program)], stdin=master, stdout=master, close_fds=True)
    try:
        client = connect(path, timeout_s=20.0)
        assert not client.info().instructions
        reply = client.infer(np.zeros(tiny_bundle.meta.input_shape[1:], np.int8))
        assert reply.cycles == 0 and reply.output.size == tiny_bundle.meta.embedding_dim
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)


def test_generated_kernels_on_rv32_equal_host_tflm_in_fewer_instructions(isa_program, tiny_bundle, connect):
    """firmware.kernels = "generated" built for the C3's instruction set: TFLM's outputs, fewer instructions."""
    from tinyface.device.isa import prepare_isa, spawn_isa
    from tinyface.device.pty import open_pty
    from tinyface.model.runtime import TflmRunner

    generated = prepare_isa(tiny_bundle, firmware_kernels="generated")
    x = np.random.default_rng(5).integers(-128, 128, (4, *tiny_bundle.meta.input_shape[1:]), dtype=np.int8)
    outputs, counts = {}, {}
    for name, program in (("esp-nn", isa_program), ("generated", generated)):
        master, path = open_pty()
        proc = spawn_isa(program, master)
        try:
            client = connect(path, timeout_s=20.0)
            replies = [client.infer(item) for item in x]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            os.close(master)
        outputs[name] = np.stack([r.output for r in replies])
        counts[name] = replies[0].cycles
    host = TflmRunner(tiny_bundle.model_bytes).run(x).reshape(len(x), -1)
    assert np.array_equal(outputs["generated"], host) and np.array_equal(outputs["esp-nn"], host)
    assert counts["generated"] < counts["esp-nn"], counts


@pytest.mark.parametrize("args, message", [(["--output"], "add --profile"), (["--bogus"], "usage:")])
def test_the_firmware_refuses_bad_arguments_in_one_line_with_exit_2(isa_program, args, message):
    proc = subprocess.run(["qemu-riscv32", str(isa_program.program), *args], input=b"", capture_output=True,
                          timeout=60)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert proc.stdout == b""


def test_extra_make_variables_key_the_cache_with_a_folder_safe_name():
    """build_rv32's extra make variables (benchmarks/s3_arena.py's TF_EXTRA) key TFLM's object
    folder, which make must be able to name: hex digits and dashes only, one per variable set."""
    from tinyface.device.native import key_with

    plain = "be4ab72d9aa2a5af"
    assert key_with(plain, ()) == plain
    keyed = {key_with(plain, (f"TF_EXTRA=-include /a b|c-{i}.h",)) for i in range(3)}
    assert len(keyed) == 3 and all(re.fullmatch(r"[0-9a-f-]+", k) for k in keyed), keyed


def test_a_first_build_precompiles_the_schema_for_tflm_and_esp_nn_kernels(isa_program, tiny_bundle, tmp_path):
    """As the native build (tests/firmware/test_native.py): a first rv32 build compiles TFLM's
    sources that read the flatbuffers schema, ESP-NN's kernels among them, against it precompiled
    (the same code: the program was identical when measured), and leaves no .gch in the cache."""
    from tinyface.codegen import generate_project
    from tinyface.device.isa import cache_dir, find_toolchain

    assert isa_program.program.is_file()
    assert not list(cache_dir().glob("tflm-*/*.gch*"))
    project = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32c3"), project)
    compiles, precompiles = planned_tflm_compiles(project / "rv32", find_toolchain().make_vars(), tmp_path / "tflm")
    reading = {source for source, command in compiles.items() if "-include" in command}
    assert precompiles and any("/kernels/esp_nn/" in source for source in reading), compiles
    assert not any(source.endswith(("/debug_log.cc", "/internal/common.cc")) for source in reading)


@pytest.mark.parametrize("target, compiler, symbol", [
    ("tensorflow/lite/micro/debug_log.o", "CXX", "DebugLog"),
    ("esp-nn/src/activation_functions/esp_nn_relu_ansi.o", "CC", "esp_nn_relu6_s8_ansi"),
])
def test_an_object_cut_short_by_a_killed_build_is_compiled_again(isa_toolchain, tiny_bundle, tmp_path, target,
                                                                 compiler, symbol):
    """A build killed mid-compile leaves no object make would take as up to date in the shared
    TFLM/ESP-NN cache (before, a 4-byte object stayed there and every later build failed to link).
    One object of the generated rv32/Makefile, C++ (TFLM) or C (ESP-NN), compiled for real."""
    from tinyface.codegen import generate_project
    from tinyface.device.isa import CROSS

    project = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32c3"), project)
    obj_dir = tmp_path / "tflm"
    obj = obj_dir / target
    real = CROSS + {"CXX": "g++", "CC": "gcc"}[compiler]
    wrapper = tmp_path / "killed-compiler"
    wrapper.write_text(KILLED_COMPILER.format(real=real))
    wrapper.chmod(0o755)

    def make(*compiler_var):
        return subprocess.run(["make", "-C", str(project / "rv32"), *isa_toolchain.make_vars(), *compiler_var,
                               f"TFLM_OBJ_DIR={obj_dir}", str(obj)],
                              capture_output=True, text=True, timeout=300, start_new_session=True)

    killed = make(f"{compiler}={wrapper}")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr  # make died with its compiler
    assert not obj.exists()
    rebuilt = make()
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert os.path.basename(target).replace(".o", ".c") in rebuilt.stdout  # compiled again, not "up to date"
    assert not list(obj_dir.rglob("*.tmp"))
    symbols = subprocess.run([CROSS + "nm", "--defined-only", str(obj)], capture_output=True, text=True)
    assert symbols.returncode == 0, symbols.stderr
    assert re.search(rf"^[0-9a-f]+ T {symbol}$", symbols.stdout, re.M), symbols.stdout
