"""client.py's defaults: a Client made without a timeout or retries waits and retries as
`tinyface bench` does (the settings' bench.timeout_s and bench.retries), as docs/protocol.md says.
open_serial and check_serial_url: pyserial URLs (`socket://HOST:PORT`, `rfc2217://`) as ports, and
a port that cannot be opened as one line and the exit code of docs/cli.md's table, from every
command that opens one."""

import socket
from pathlib import Path

import pytest

from tests.conftest import RELEASED, error_in_process as error_line, error_in_process as tinyface
from tinyface import errors
from tinyface.config import BenchSettings
from tinyface.protocol import spec
from tinyface.protocol.client import Client

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def test_a_client_without_settings_waits_and_retries_as_bench_does():
    client = Client(transport=None)
    assert (client.timeout_s, client.retries) == (BenchSettings().timeout_s, BenchSettings().retries)
    assert (spec.DEFAULT_TIMEOUT_S, spec.DEFAULT_RETRIES) == (client.timeout_s, client.retries)
    assert f"`bench.timeout_s`, default {client.timeout_s:g} s" in DOC
    assert f"`bench.retries`, default {client.retries}" in DOC


# --- pyserial URLs: bench, enroll, gallery and identify open them as URLs -----------------------------
# The board is tests/conftest.py's TcpBoard: the Python emulation (tinyface.device.emulator) of the
# released models/esp32, served in this process on a TCP socket, as `socket://127.0.0.1:PORT`.

def test_open_serial_speaks_the_protocol_over_a_socket_url(tcp_board):
    # was: serial.Serial("socket://...") took the URL as a path: "No such file or directory", exit 7
    from tinyface.model.bundle import load_bundle
    from tinyface.protocol.client import Client, open_serial

    board = tcp_board()
    transport = open_serial(board.url, 921600)
    try:
        client = Client(transport, timeout_s=5.0, retries=2, port=board.url)
        info = client.info()
        assert info.model_sha256 == load_bundle(RELEASED).model_hash and client.list() == []
    finally:
        transport.close()


def test_a_socket_url_whose_server_does_not_answer_times_out(tcp_board):
    from tinyface.protocol.client import Client, open_serial

    board = tcp_board(emulate=False)
    transport = open_serial(board.url, 921600)
    try:
        with pytest.raises(errors.DeviceError) as info:
            Client(transport, timeout_s=0.2, retries=1, port=board.url).info()
    finally:
        transport.close()
    line = info.value.one_line()
    assert f"{board.url} did not answer INFO" in line and "No such file" not in line


@pytest.mark.usefixtures("own_folder")
def test_a_socket_url_with_nothing_listening_is_one_line(capsys):
    with socket.create_server(("127.0.0.1", 0)) as s:
        url = f"socket://127.0.0.1:{s.getsockname()[1]}"
    code, line = error_line(capsys, "gallery", "list", "--board", "esp32", "--port", url)
    assert code == errors.DeviceError.exit_code == 7
    assert f"cannot open {url}: Connection refused (" in line and "No such file" not in line and "Errno" not in line


# --- a path that opens but is no serial port ------------------------------------------------------

@pytest.mark.usefixtures("own_folder")
@pytest.mark.parametrize("what", ["/dev/null", "file", "folder"])
def test_a_path_that_is_no_serial_port_says_so(capsys, tmp_path, what):
    # was: "Could not configure port: (25, 'Inappropriate ioctl for device')"
    port = {"/dev/null": "/dev/null", "file": str(tmp_path / "afile"), "folder": str(tmp_path)}[what]
    if what == "file":
        Path(port).write_text("x")
    code, line = error_line(capsys, "gallery", "list", "--board", "esp32", "--port", port)
    assert code == errors.DeviceError.exit_code == 7
    reason = "a folder, not a serial port" if what == "folder" else "not a serial port"
    # errno 25 is looked for in its tuple's form: the path itself may hold "25" (was: failed under pytest-255)
    assert f"cannot open {port}: {reason} (" in line and "ioctl" not in line and "(25," not in line


# --- a network URL without a port ----------------------------------------------------------------
# A `socket://` or `rfc2217://` URL without a port is one line naming socket://HOST:PORT (exit 7),
# read from its text: nothing is loaded, opened or connected.

@pytest.fixture
def nothing_opened(monkeypatch):
    """Fail the test if anything tries to open a port or reach the network."""
    import socket

    import serial

    def refuse(*args, **kwargs):
        raise AssertionError("a port was opened or the network reached")

    monkeypatch.setattr(serial, "serial_for_url", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.usefixtures("own_folder", "no_boards_dir")
@pytest.mark.parametrize("command", [
    ["bench"],
    ["enroll", "--name", "Bob", "photo.jpg"],
    ["identify", "photo.jpg"],
    ["gallery", "list"],
    ["gallery", "delete", "--name", "Bob"],
    ["flash", "--board", "esp32", "--project-dir", "fw"],
], ids=lambda c: " ".join(c[:2]))
def test_a_socket_url_without_a_port_is_one_line_naming_the_form(capsys, tmp_path, nothing_opened, command):
    # was: "cannot open socket://x: Could not open port socket://x: '<=' not supported between
    # instances of 'int' and 'NoneType'" (bench: after the model and the data were loaded)
    (tmp_path / "photo.jpg").write_bytes(b"")
    code, line = tinyface(capsys, *command, "--port", "socket://x")
    assert code == errors.DeviceError.exit_code == 7
    assert line == ("tinyface: error: cannot open socket://x: the URL has no port "
                    "(give it as socket://HOST:PORT, e.g. socket://192.168.1.20:3333)")
    assert not (tmp_path / "fw").exists()  # flash: refused before anything was rendered


@pytest.mark.parametrize("url, problem", [
    ("socket://x", "the URL has no port"),
    ("socket://", "the URL has no port"),
    ("socket://x:", "the URL has no port"),
    ("rfc2217://board.local", "the URL has no port"),
    ("socket://x:abc", "the URL's port 'abc' is not a number from 1 to 65535"),  # was: "'debug|info|warning|error'"
    ("socket://x:99999", "the URL's port '99999' is not a number from 1 to 65535"),
    ("RFC2217://x:0", "the URL's port '0' is not a number from 1 to 65535"),
    ("socket://[::1", "not a valid URL: Invalid IPv6 URL"),
])
def test_check_serial_url_reads_only_the_text(nothing_opened, url, problem):
    from tinyface.protocol.client import check_serial_url

    with pytest.raises(errors.DeviceError) as info:
        check_serial_url(url)
    scheme = url.partition("://")[0].lower()
    assert info.value.one_line() == f"cannot open {url}: {problem} (give it as {scheme}://HOST:PORT, " \
                                    f"e.g. {scheme}://192.168.1.20:3333)"


@pytest.mark.parametrize("port", ["socket://192.168.1.20:3333", "rfc2217://[::1]:4000?logging=debug",
                                  "socket://:7000", "/dev/ttyUSB0", "COM3", "loop://", "spy:///dev/ttyUSB0"])
def test_check_serial_url_passes_whatever_has_its_port_or_is_no_network_url(nothing_opened, port):
    from tinyface.device.ports import check_port_exists
    from tinyface.protocol.client import check_serial_url

    check_serial_url(port)
    if "://" in port:
        check_port_exists(port)  # flash's check: a URL with its port goes on to PlatformIO


def test_a_baud_rate_past_what_the_system_holds_is_one_device_error():
    # was: pyserial's OverflowError, "internal error" (exit 70), from `bench --baud 99999999999999999999`
    import os

    from tinyface.device.pty import open_pty
    from tinyface.protocol.client import open_serial

    master, port = open_pty()
    try:
        with pytest.raises(errors.DeviceError) as info:
            open_serial(port, 10**20)
    finally:
        os.close(master)
    line = info.value.one_line()
    assert f"cannot open {port} at {10**20} baud" in line and "tinyface boards" in line


# --- model inputs: int8 arrays only ---------------------------------------------------------------------

def test_a_model_input_that_is_not_int8_is_refused_before_anything_is_sent(tcp_board):
    # was: np.ascontiguousarray(x, np.int8) cast uint8 crops and floats silently (pixels over 127 wrap
    # around): the board enrolled, identified and embedded another face than the caller's
    import numpy as np

    from tinyface.model.bundle import load_bundle
    from tinyface.model.embedder import quantize_input
    from tinyface.protocol.client import open_serial

    meta = load_bundle(RELEASED).meta
    crop = np.random.default_rng(0).integers(0, 256, meta.input_shape, dtype=np.uint8)
    board = tcp_board()
    transport = open_serial(board.url, 921600)
    try:
        client = Client(transport, timeout_s=5.0, retries=2, port=board.url)
        for wrong in (crop[0], quantize_input(crop, meta)[0].astype(np.float32), [0] * crop.size):
            for send in (client.infer, lambda x: client.enroll("ana", x), client.identify):
                with pytest.raises(errors.DataError, match="a model input must be an int8 array"):
                    send(wrong)
        assert client.stats.requests == 0 and client.list() == []
        x = quantize_input(crop, meta)[0]
        assert client.enroll("ana", x)["count"] == 1 and client.identify(x).name == "ana"
    finally:
        transport.close()
