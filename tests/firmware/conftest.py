"""Firmware-test fixtures: a protocol client on a real pyserial port; the native build of the tiny
bundle (skipped where it cannot be built, failed in CI) and its programs served on their own ptys."""

import os
import select
import signal

import numpy as np
import pytest

from tests.conftest import skip_or_fail
from tinyface.boards import load_board


@pytest.fixture
def connect():
    """Factory: a tinyface.protocol Client on a real serial port (pyserial); closed at teardown."""
    from tinyface.protocol.client import Client, open_serial

    opened = []

    def make(port: str, timeout_s: float = 2.0, retries: int = 3, baud: int = 921600):
        serial_port = open_serial(port, baud)
        opened.append(serial_port)
        return Client(serial_port, timeout_s=timeout_s, retries=retries, port=port)

    yield make
    for s in opened:
        s.close()


@pytest.fixture(scope="session")
def native_toolchain():
    from tinyface.device.native import unavailable_reason

    if not os.environ.get("TFLM_DIR"):
        skip_or_fail("the native firmware build needs TFLM_DIR (a tflite-micro checkout)")
    reason = unavailable_reason()
    if reason:
        skip_or_fail(f"native build impossible here: {reason}")


@pytest.fixture(scope="session")
def native_program(native_toolchain, tiny_bundle):
    from tinyface.device.native import prepare_native

    return prepare_native(tiny_bundle, load_board("esp32"))


@pytest.fixture
def serve(connect):
    """Factory: start a native program on its own pty; returns a Client. Killed at teardown."""
    from tinyface.device.native import spawn_native

    procs = []

    def start(program, **kwargs):
        proc = spawn_native(program, own_pty=True, **kwargs)
        procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().strip() if ready else ""
        assert line.startswith("PORT /dev/"), line
        return proc, connect(line.split(" ", 1)[1])

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()


def random_inputs(n, shape, seed=0):
    """``n`` random int8 model inputs of ``shape`` (its batch dimension replaced by ``n``)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(n, *shape[1:]), dtype=np.int8)
