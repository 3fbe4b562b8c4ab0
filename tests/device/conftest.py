"""Fixtures that start a real device process on a real pseudo-terminal and clean up after it.

``start_device(model_dir, *args)`` launches ``tinyface emulate`` (or, for the ``native``
kind, ``tinyface emulate --native``: the firmware sources built on the host; for the ``isa``
kind, ``tinyface emulate --isa``: the ESP32-C3 build for rv32imc under qemu-riscv32) in its
own process group, waits for the port path it prints, and returns a :class:`DeviceProcess`.
The firmware builds (minutes when cold) run here, before the startup timer starts.
At teardown every process group is killed and reaped, and the test fails if a pty is left.

In CI (CI=true) a firmware kind whose toolchain is missing fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import sigint_as_a_terminal_sends_it, skip_or_fail

STARTUP_TIMEOUT_S = 60.0


@dataclass
class DeviceProcess:
    port: str
    proc: subprocess.Popen
    stderr_path: Path
    announced: dict | None = None  # `emulate --json`'s first line
    port_ctime_ns: int | None = None  # when its pty was made: a later pty of the same number is another

    def kill(self) -> None:
        """SIGKILL the whole process group (the board dies mid-whatever)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


def cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinyface.cli.main", *args]


def wait_gone(path: str, timeout_s: float = 5.0, ctime_ns: int | None = None) -> bool:
    """Whether the pty ``path`` is gone within ``timeout_s``. With ``ctime_ns`` (its st_ctime_ns when
    it was made), a pty found there made at another time is another process's, which got the freed
    number (another test worker's): ours is gone. (devpts reuses numbers and inodes; a reused one is
    made anew, which I/O on it does not.) Without it such a pty counted as ours, left behind."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            made = os.stat(path).st_ctime_ns
        except FileNotFoundError:
            return True
        if ctime_ns is not None and made != ctime_ns:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def firmware_unavailable(kind: str) -> str | None:
    """Why the ``native`` or ``isa`` firmware build cannot run here, or None."""
    if kind == "native":
        from tinyface.device.native import unavailable_reason
    else:
        from tinyface.device.isa import unavailable_reason
    return unavailable_reason()


@pytest.fixture(params=["emulator", pytest.param("native", marks=pytest.mark.native),
                        pytest.param("isa", marks=pytest.mark.isa)])
def device_kind(request):
    """The device implementations every protocol/bench test runs against."""
    if request.param != "emulator":
        reason = firmware_unavailable(request.param)
        if reason:
            skip_or_fail(f"the {request.param} firmware build is impossible here: {reason}")
    return request.param


def prebuild(kind: str, model_dir) -> None:
    """Build (or find cached) the firmware for ``model_dir`` before any startup timer runs."""
    from tinyface.model.bundle import load_bundle

    bundle = load_bundle(model_dir)
    if kind == "native":
        from tinyface.boards import load_board
        from tinyface.device.native import prepare_native

        prepare_native(bundle, load_board("esp32"))
    else:
        from tinyface.device.isa import prepare_isa

        prepare_isa(bundle)


@pytest.fixture
def start_device(tmp_path, device_kind):
    """Factory: start a device serving ``model_dir``; extra args go to `tinyface emulate`."""
    started: list[DeviceProcess] = []

    def start(model_dir, *args: str) -> DeviceProcess:
        extra = {"native": ["--native"], "isa": ["--isa"]}.get(device_kind, [])
        if extra:
            prebuild(device_kind, model_dir)
        err = tmp_path / f"device{len(started)}.stderr"
        with open(err, "wb") as err_file:
            proc = subprocess.Popen(cli_cmd("emulate", "--model", str(model_dir), *extra, *args),
                                    stdout=subprocess.PIPE, stderr=err_file, start_new_session=True,
                                    preexec_fn=sigint_as_a_terminal_sends_it)
        dev = DeviceProcess("", proc, err)
        started.append(dev)
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT_S)
        line = proc.stdout.readline().decode().strip() if ready else ""
        if line.startswith("{"):  # `emulate --json`
            dev.announced = json.loads(line)
            line = dev.announced.get("port", "")
        if not line.startswith("/dev/"):
            dev.kill()
            pytest.fail(f"the device did not start (stdout {line!r}): {dev.stderr()[-2000:]}")
        dev.port = line
        with contextlib.suppress(OSError):
            dev.port_ctime_ns = os.stat(line).st_ctime_ns
        return dev

    yield start
    leaks = []
    for dev in started:
        dev.kill()
        dev.proc.stdout.close()
        if dev.port and not wait_gone(dev.port, ctime_ns=dev.port_ctime_ns):
            leaks.append(dev.port)
    assert not leaks, f"pseudo-terminals left behind: {leaks}"


@pytest.fixture
def emulator_only(device_kind):
    """For tests of the emulator's test-only options (fault injection, --baud). Their firmware
    kinds are deselected at collection (below), so CI shows no skipped firmware tests."""
    if device_kind != "emulator":
        pytest.skip("fault injection is an option of the Python emulator")


@pytest.fixture
def firmware_only(device_kind):
    """For tests of a firmware process (native or isa) that the Python emulation does not have.
    Their emulator variants are deselected at collection (below), as emulator_only's firmware ones."""
    if device_kind == "emulator":
        pytest.skip("the Python emulation has no firmware process")


@pytest.fixture
def not_on_isa(device_kind):
    """For a firmware test that builds projects of its own (a model or setting compiled in) and
    whose firmware code the native build runs from the same sources: its rv32 rebuilds only cost
    CI time (46 s for the identification threshold's two). Its isa variant is deselected."""
    if device_kind == "isa":
        pytest.skip("the native build runs the same firmware sources")


def pytest_collection_modifyitems(config, items):
    """Drop the native/isa variants of emulator-only tests, the emulator variants of
    firmware-only tests and the isa variants of not_on_isa ones: they do not exist, rather than skip."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        fixtures = getattr(item, "fixturenames", ())
        kind = params.get("device_kind")
        if ("emulator_only" in fixtures and kind not in (None, "emulator")) or \
                ("firmware_only" in fixtures and kind == "emulator") or ("not_on_isa" in fixtures and kind == "isa"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def connect():
    """Factory: a protocol Client on a real pyserial port; closed at teardown."""
    from tinyface.protocol.client import Client, open_serial

    opened = []

    def make(port: str, timeout_s: float = 2.0, retries: int = 3, baud: int = 921600, transport=None) -> Client:
        """``transport``: a port the test opened itself (ports open exclusively: not a second time)."""
        if transport is None:
            transport = open_serial(port, baud)
            opened.append(transport)
        return Client(transport, timeout_s=timeout_s, retries=retries, port=port)

    yield make
    for s in opened:
        s.close()


@pytest.fixture(scope="session")
def other_tiny_bundle(tmp_path_factory):
    """A second real int8 bundle (different weights, so a different sha256)."""
    import importlib.util

    # The root conftest by path: "conftest" as a module name is ambiguous between folders.
    spec = importlib.util.spec_from_file_location("_tinyface_root_conftest", Path(__file__).parents[1] / "conftest.py")
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    return root.build_tiny_int8_bundle(tmp_path_factory.mktemp("other_tiny_model"), seed=1)


@pytest.fixture(scope="session")
def pooling_bundle(tmp_path_factory):
    """A real int8 model that embeds an image as its 4x4 average-pooled, centred pixels.

    Unlike the random tiny model (whose embeddings of any two inputs are ~0.99 similar), it
    separates different images, so gallery tests can expect matches and rejections.
    Threshold 0.5. Ops: AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED.
    """
    import numpy as np
    import tf_keras as keras

    from tinyface.model.bundle import save_bundle
    from tinyface.train.quantize import bundle_meta, convert_int8

    inp = keras.Input((48, 48, 1))
    x = keras.layers.AveragePooling2D(12)(inp)
    x = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(16, use_bias=False)
    out = dense(x)
    model = keras.Model(inp, out)
    dense.set_weights([np.eye(16, dtype=np.float32)])
    calib = np.random.default_rng(0).integers(0, 256, (32, 48, 48, 1), dtype=np.uint8)
    flat = convert_int8(model, calib)
    meta = bundle_meta(flat, threshold=0.5, name="pooling-test-model")
    return save_bundle(tmp_path_factory.mktemp("pooling_model"), flat, meta)


@pytest.fixture
def pty_port():
    """A real pseudo-terminal's slave path, held open for the test (a serial port as the emulator serves one)."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)
