"""The device side of the protocol over a real pseudo-terminal with pyserial: every message,
every typed error, resynchronisation after garbage, corrupted frames, lost replies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from tinyface.protocol import spec
from tinyface.protocol.client import RemoteError
from tinyface.protocol.codec import encode_frame, encode_oversized_header


def _input(seed: int, shape=(1, 48, 48, 1)) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)


@pytest.fixture
def device(start_device, tiny_bundle):
    return start_device(tiny_bundle.model_path.parent)


def _expect_error(client, seq: int, code: spec.ErrorCode, timeout_s: float = 2.0) -> dict:
    frame = client.receive_frame(timeout_s)
    assert frame is not None, f"no reply (expected ERROR {code.name})"
    assert frame.type == spec.MsgType.ERROR and frame.seq == seq, frame
    err = spec.ERROR_REPLY.unpack(frame.payload)
    assert err["code"] == code, spec.ErrorCode(err["code"]).name
    return err


def test_info_ping_infer_match_the_model(device, connect, tiny_bundle):
    from tinyface.model.runtime import TflmRunner

    client = connect(device.port)
    info = client.info()
    assert info.version == spec.PROTOCOL_VERSION
    assert info.model_sha256 == tiny_bundle.model_hash
    assert list(info.input_shape) == tiny_bundle.meta.input_shape
    assert info.output_size == tiny_bundle.meta.embedding_dim
    assert info.input_zero_point == tiny_bundle.meta.input_zero_point
    assert info.identify_threshold == pytest.approx(tiny_bundle.meta.identify_at)
    assert info.arena_used_bytes > 0 and info.cpu_hz > 0
    assert info.max_payload == spec.MAX_PAYLOAD
    # no heap to measure here; a board reports its internal SRAM and its PSRAM apart
    assert (info.free_sram_bytes, info.free_psram_bytes) == (0, 0)
    # no chip to have been reset: the reason is UNKNOWN, which is no crash
    assert info.reset_reason == spec.ResetReason.UNKNOWN and info.reset_reason_name == "UNKNOWN"
    assert not info.crashed
    for payload in (b"", b"x", os.urandom(spec.MAX_PAYLOAD)):
        assert client.ping(payload) == payload
    runner = TflmRunner(tiny_bundle.model_bytes)
    for seed in range(3):
        x = _input(seed)
        r = client.infer(x)
        assert np.array_equal(r.output, runner.run_one(x))  # the same TFLM kernels, bit for bit
        assert r.cycles > 0 and r.latency_us > 0
    # the firmware's clock went on (host time, or the emulated chip's instructions)
    assert client.info().uptime_ms > info.uptime_ms


def test_a_port_opened_with_rts_dtr_released_waits_then_answers_info(device, tiny_bundle):
    """The ESP32-CAM rule (board file serial.release_rts_dtr) on a real pty: pyserial opens
    with both lines released, waits for the boot, then INFO works. (A pty has no modem lines,
    so what a board's reset circuit would see is pyserial's state, checked here.)"""
    from tinyface.protocol.client import Client, open_serial

    start = time.monotonic()
    port = open_serial(device.port, 921600, release_rts_dtr=True, boot_wait_s=0.3)
    try:
        assert time.monotonic() - start >= 0.3
        assert port.rts is False and port.dtr is False
        assert Client(port, port=device.port).info().model_sha256 == tiny_bundle.model_hash
    finally:
        port.close()
    default = open_serial(device.port, 921600)
    try:
        assert default.rts is True and default.dtr is True  # what holds an ESP32-CAM-MB in reset
    finally:
        default.close()


def test_info_with_the_wrong_model_hash_is_model_mismatch(device, connect, other_tiny_bundle, tiny_bundle):
    client = connect(device.port)
    assert client.info(expected_sha256=tiny_bundle.model_hash).model_sha256 == tiny_bundle.model_hash
    with pytest.raises(RemoteError) as exc:
        client.info(expected_sha256=other_tiny_bundle.model_hash)
    assert exc.value.code == spec.ErrorCode.MODEL_MISMATCH


def test_garbage_between_frames_is_skipped(device, connect):
    client = connect(device.port)
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
             bytes([spec.SYNC0, spec.SYNC1]) * 20,  # false syncs
             bytes([spec.SYNC0, spec.SYNC1, 1, 3, 9, 0, 0, 2, 0xFF, 0xFF]),  # a header with a bad header CRC
             encode_frame(spec.MsgType.PING, 7, b"cut short")[:-3]]  # a frame that never completes...
    for chunk in noise:
        client.send_raw(chunk)
    # ...until the next frame's bytes complete it and its CRC fails: the device rescans and
    # finds the real frame inside (it may also report BAD_CRC for the cut-short one, seq 7).
    assert client.ping(b"after garbage") == b"after garbage"
    for chunk in noise[:3]:
        client.send_raw(chunk)
        assert client.receive_frame(0.3) is None  # noise alone gets no answer
        assert client.ping(b"still here") == b"still here"
    x = _input(5)
    assert client.infer(x).output.shape == (32,)


def test_corrupted_crc_gets_bad_crc_then_the_device_keeps_serving(device, connect):
    client = connect(device.port)
    frame = bytearray(encode_frame(spec.MsgType.PING, 1234, b"payload"))
    frame[spec.HEADER_SIZE + 2] ^= 0x40  # one payload bit
    client.send_raw(bytes(frame))
    _expect_error(client, 1234, spec.ErrorCode.BAD_CRC)
    frame = bytearray(encode_frame(spec.MsgType.PING, 1235, b"payload"))
    frame[-1] ^= 0x01  # the CRC itself
    client.send_raw(bytes(frame))
    _expect_error(client, 1235, spec.ErrorCode.BAD_CRC)
    assert client.ping(b"ok") == b"ok"


class _PortWrapper:
    """A real pyserial port (``self._port``) behind a wrapper that changes what ``write`` does;
    everything else, the read timeout the client sets included, goes to the port."""

    def __getattr__(self, name):
        return getattr(self._port, name)

    def __setattr__(self, name, value):
        if name == "timeout":
            self._port.timeout = value
        else:
            super().__setattr__(name, value)


class CorruptingTransport(_PortWrapper):
    """A real pyserial port whose N-th write has one bit flipped (fault injection on the wire)."""

    def __init__(self, port, corrupt_writes):
        self._port, self._corrupt, self._writes = port, set(corrupt_writes), 0

    def write(self, data):
        self._writes += 1
        if self._writes in self._corrupt:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x10
        return self._port.write(bytes(data))


def test_a_port_another_command_has_open_is_refused_in_one_line(device, connect):
    """Ports open exclusively: a second tinyface command on the same board is refused (exit 7)
    instead of interleaving its frames with the first's; the first goes on. The hint says to close
    the other program (was: "check the path, or pass --port auto ...", about a path that was right)."""
    from tinyface.errors import DeviceError
    from tinyface.protocol.client import open_serial

    client = connect(device.port)
    with pytest.raises(DeviceError) as refused:
        open_serial(device.port, 921600)
    assert str(refused.value) == f"cannot open {device.port}: another program has it open"
    assert refused.value.hint.startswith("close that program first: quit the serial monitor, or let the other "
                                         "tinyface command on this port")
    assert "--port auto" not in refused.value.one_line() and "check the path" not in refused.value.one_line()
    assert refused.value.exit_code == 7
    assert client.ping(b"still mine") == b"still mine"


def test_a_second_command_on_a_port_in_use_is_told_to_close_the_first(device, emulator_only):
    """`tinyface gallery list --port P` while another tinyface command (here `tinyface gallery`'s
    own opening of the port, held by this test) has P open: one line, exit 7, the hint to close it."""
    from tests.conftest import assert_one_error_line, run_cli
    from tinyface.protocol.client import open_serial

    held = open_serial(device.port, 921600)
    try:
        proc = run_cli("gallery", "list", "--port", device.port, "--board", "esp32")
    finally:
        held.close()
    line = assert_one_error_line(proc, 7, f"cannot open {device.port}: another program has it open",
                                 "close that program first", "serial monitor", "tinyface command")
    assert "check the path" not in line and "--port auto" not in line


def test_client_resends_after_bad_crc(device, connect):
    from tinyface.protocol.client import open_serial

    port = open_serial(device.port, 921600)
    try:
        client = connect(device.port, transport=CorruptingTransport(port, corrupt_writes=[2]))
        client.info()
        x = _input(3)
        assert client.infer(x).output.shape == (32,)
        assert client.stats.bad_crc_replies == 1 and client.stats.retries == 1
    finally:
        port.close()


def test_oversized_frame_is_rejected_and_the_device_keeps_serving(device, connect):
    client = connect(device.port)
    client.send_raw(encode_oversized_header(spec.MsgType.INFER, 77, spec.MAX_PAYLOAD + 1) + os.urandom(4000))
    err = _expect_error(client, 77, spec.ErrorCode.FRAME_TOO_LARGE)
    assert err["detail"] == spec.MAX_PAYLOAD
    client.send_raw(encode_oversized_header(spec.MsgType.PING, 78, 0xFFFF))
    _expect_error(client, 78, spec.ErrorCode.FRAME_TOO_LARGE)
    assert client.ping(b"alive") == b"alive"
    assert client.infer(_input(0)).output.shape == (32,)


def test_typed_errors_for_bad_requests(device, connect):
    client = connect(device.port)
    with pytest.raises(RemoteError) as exc:
        client.request(spec.MsgType.INFER, bytes(100))
    assert exc.value.code == spec.ErrorCode.WRONG_INPUT_SHAPE and exc.value.detail == 48 * 48
    with pytest.raises(RemoteError) as exc:
        client.request(spec.MsgType.IDENTIFY, bytes(48 * 48 + 1))
    assert exc.value.code == spec.ErrorCode.WRONG_INPUT_SHAPE
    with pytest.raises(RemoteError) as exc:
        client.request(0x42)
    assert exc.value.code == spec.ErrorCode.UNKNOWN_MESSAGE and exc.value.detail == 0x42
    with pytest.raises(RemoteError) as exc:
        client.request(spec.MsgType.ENROLL, b"\0" * 16 + bytes(48 * 48))  # empty name
    assert exc.value.code == spec.ErrorCode.BAD_PAYLOAD
    with pytest.raises(RemoteError) as exc:
        client.request(spec.MsgType.ENROLL, b"x" * 16 + bytes(48 * 48))  # no NUL terminator
    assert exc.value.code == spec.ErrorCode.BAD_PAYLOAD
    client.send_raw(encode_frame(spec.MsgType.PING, 900, b"v2", version=spec.PROTOCOL_VERSION + 1))
    err = _expect_error(client, 900, spec.ErrorCode.BAD_VERSION)
    assert err["detail"] == spec.PROTOCOL_VERSION
    assert client.ping(b"fine") == b"fine"


ANSWERED_S = 10.0  # the timeout for replies that do come: no loaded machine takes this long
LOST_S = 0.4  # the timeout for a first attempt whose reply the emulator drops or corrupts


class ResendsWaitLonger(_PortWrapper):
    """A real pyserial port that gives the client ANSWERED_S for the reply to a resent frame (the
    same bytes written again): only a first attempt runs on the short timeout the test sets, so a
    slow answer to the retry cannot add another retry (nor shift the emulator's reply count)."""

    def __init__(self, port):
        self._port, self._last, self.client = port, None, None

    def write(self, data):
        if data == self._last:  # the client arms the resend's deadline after this write
            self.client.timeout_s = ANSWERED_S
        self._last = bytes(data)
        return self._port.write(data)


@pytest.fixture
def connect_resends_wait_longer(connect):
    """Factory: ``connect(port, ...)`` over :class:`ResendsWaitLonger`, starting at ANSWERED_S."""
    from tinyface.protocol.client import open_serial

    opened = []

    def make(port: str, **kwargs):
        serial_port = open_serial(port, 921600)
        opened.append(serial_port)
        transport = ResendsWaitLonger(serial_port)
        transport.client = connect(port, timeout_s=ANSWERED_S, transport=transport, **kwargs)
        return transport.client

    yield make
    for s in opened:
        s.close()


def test_dropped_reply_times_out_retries_and_succeeds_once(start_device, emulator_only, tiny_bundle,
                                                           connect_resends_wait_longer):
    # reply 1: INFO; reply 2 (INFER) and reply 4 (ENROLL, state-changing) are lost on the way back
    dev = start_device(tiny_bundle.model_path.parent, "--drop-reply", "2", "--drop-reply", "4")
    client = connect_resends_wait_longer(dev.port, retries=2)
    client.info()
    client.timeout_s = LOST_S  # the INFER's reply is lost: a short wait, then one resend
    start = time.monotonic()
    assert client.infer(_input(1)).output.shape == (32,)
    assert time.monotonic() - start >= LOST_S  # it did wait for the timeout
    assert client.stats.timeouts == 1 and client.stats.retries == 1
    client.timeout_s = LOST_S  # so is the ENROLL's
    reply = client.enroll("alice", _input(2))
    assert client.stats.timeouts == 2 and client.stats.retries == 2
    assert reply["samples"] == 1  # the retry was answered from the stored reply, not enrolled twice
    assert [(e.name, e.samples) for e in client.list()] == [("alice", 1)]


def test_corrupted_reply_is_detected_and_retried(start_device, emulator_only, tiny_bundle,
                                                 connect_resends_wait_longer):
    dev = start_device(tiny_bundle.model_path.parent, "--corrupt-reply", "1")
    client = connect_resends_wait_longer(dev.port)
    client.timeout_s = LOST_S  # the first reply comes corrupted: a short wait, then one resend
    assert client.ping(b"abc") == b"abc"
    assert client.stats.corrupt_frames == 1 and client.stats.retries == 1


def test_a_corrupted_pipelined_reply_resends_that_request_alone(start_device, emulator_only, tiny_bundle, connect):
    """Two requests in flight, and the replies to the 2nd and the 6th PING arrive corrupted: each
    corrupted reply names the head's seq, so the head alone is resent (the reply to the request behind
    it is still on its way): 2 retries, not 3 (was: every request in flight without a reply resent,
    whose duplicates came back stale and shifted which replies the emulator corrupted)."""
    dev = start_device(tiny_bundle.model_path.parent, "--corrupt-reply", "2", "--corrupt-reply", "6")
    client = connect(dev.port, timeout_s=ANSWERED_S)  # no reply is lost: a timeout would be a failure
    payloads = [bytes([i]) * (i + 1) for i in range(8)]
    assert [f.payload for f in client.pipeline(spec.MsgType.PING, payloads, depth=2)] == payloads
    s = client.stats
    assert (s.corrupt_frames, s.retries, s.timeouts, s.stale_replies) == (2, 2, 0, 0), s
    assert s.requests == 8 and s.frames_sent == 10
    assert client.ping(b"after") == b"after"


def test_a_pipelined_request_the_device_received_corrupted_is_resent_alone(device, connect):
    """Two PINGs in flight, and two of the frames written arrive corrupted (their headers intact): the
    device's ERROR BAD_CRC names each one's seq, and that request alone is resent: 2 retries and no
    stale duplicates (was: the request behind it resent too, whose duplicate reply came back stale and
    shifted which writes were corrupted: 1 BAD_CRC, 2 retries, 1 stale)."""
    from tinyface.protocol.client import open_serial

    port = open_serial(device.port, 921600)
    try:
        client = connect(device.port, timeout_s=ANSWERED_S, transport=CorruptingTransport(port, corrupt_writes=[2, 5]))
        payloads = [bytes([i]) * 200 for i in range(8)]  # a flipped bit in the middle is in the body
        assert [f.payload for f in client.pipeline(spec.MsgType.PING, payloads, depth=2)] == payloads
        s = client.stats
        assert (s.bad_crc_replies, s.retries, s.timeouts, s.stale_replies) == (2, 2, 0, 0), s
        assert s.requests == 8 and s.frames_sent == 10
    finally:
        port.close()


def test_a_scripted_device_answering_a_resent_head_twice_has_its_duplicate_ignored():
    """A scripted device on a real pty: of two PINGs in flight, the 1st's reply arrives corrupted,
    the 2nd's intact; the device then sees the 1st resent alone (not the 2nd), answers it twice
    (a late duplicate), and the 3rd PING. The duplicate is counted stale, the replies come in order."""
    import select
    import threading

    from tinyface.protocol.client import Client, open_serial
    from tinyface.protocol.codec import StreamDecoder

    master, slave = os.openpty()
    port = open_serial(os.ttyname(slave), 921600)
    decoder, seen, pending = StreamDecoder(), [], []

    def requests(n):  # the next n requests (fewer if none come within 5 s)
        while len(pending) < n and select.select([master], [], [], 5.0)[0]:
            pending.extend(decoder.feed(os.read(master, 65536)))
        got = pending[:n]
        del pending[:n]
        seen.extend(f.payload for f in got)
        return got

    def echo(frame):
        return encode_frame(frame.type | spec.REPLY_FLAG, frame.seq, frame.payload)

    def device():
        with contextlib.suppress(OSError, ValueError):
            first, second = requests(2)
            os.write(master, echo(first)[:-1] + bytes([echo(first)[-1] ^ 0xFF]) + echo(second))
            (resent,) = requests(1)
            os.write(master, echo(resent) * 2)
            (third,) = requests(1)
            os.write(master, echo(third))

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    try:
        client = Client(port, timeout_s=2.0, retries=3, port="/dev/pts/N")
        replies = [f.payload for f in client.pipeline(spec.MsgType.PING, [b"a", b"b", b"c"], depth=2)]
    finally:
        thread.join(timeout=15)
        port.close()
        os.close(slave)
        os.close(master)
    assert seen == [b"a", b"b", b"a", b"c"]
    assert replies == [b"a", b"b", b"c"]
    s = client.stats
    assert (s.corrupt_frames, s.retries, s.stale_replies, s.timeouts) == (1, 1, 1, 0), s


def test_silent_device_is_a_clear_error_after_bounded_retries(start_device, emulator_only, tiny_bundle, connect):
    from tinyface.errors import DeviceError

    dev = start_device(tiny_bundle.model_path.parent, *[a for n in (1, 2, 3, 4) for a in ("--drop-reply", str(n))])
    client = connect(dev.port, timeout_s=0.2, retries=2)
    with pytest.raises(DeviceError, match="after 3 attempts"):
        client.ping(b"anyone?")
    assert client.stats.retries == 2
    client.retries = 0  # the 4th reply is dropped too
    with pytest.raises(DeviceError, match=r"after 1 attempt\b(?!s)"):  # was: "after 1 attempts"
        client.ping(b"anyone?")


def test_a_silent_device_stays_a_device_error_not_a_protocol_one(start_device, emulator_only, tiny_bundle, connect):
    from tinyface.errors import DeviceError

    dev = start_device(tiny_bundle.model_path.parent, *[a for n in (1, 2) for a in ("--drop-reply", str(n))])
    client = connect(dev.port, timeout_s=0.2, retries=1)
    with pytest.raises(DeviceError) as exc:
        client.ping(b"anyone?")
    # the plain DeviceError (exit 7), not its subclass ProtocolError (exit 8)
    assert type(exc.value) is DeviceError and exc.value.exit_code == 7
    assert "no reply within 0.2 s" in str(exc.value)


def test_replies_that_arrive_corrupted_are_reported_as_such_not_as_silence(start_device, emulator_only, tiny_bundle):
    """Every reply to INFO comes with a broken CRC: the command says so, as a protocol problem (exit 8),
    and at once (each corrupted reply names its seq in an intact header: resent without waiting out
    the timeout). Was: "did not answer INFO ... no reply within 5 s (... at this baud rate?)", exit 7,
    after 20 s of "waiting for P to answer"."""
    from tests.conftest import assert_one_error_line, run_cli
    from tinyface.errors import ProtocolError
    from tinyface.protocol.client import Client, open_serial

    dev = start_device(tiny_bundle.model_path.parent, *[a for n in range(1, 9) for a in ("--corrupt-reply", str(n))])
    # replies 1-4, to the client itself: each corrupted one resent at once, not one timeout waited out
    port = open_serial(dev.port, 921600)
    try:
        client = Client(port, timeout_s=ANSWERED_S, retries=3, port=dev.port)
        with pytest.raises(ProtocolError, match="after 4 attempts"):
            client.info()
    finally:
        port.close()
    s = client.stats
    assert (s.corrupt_frames, s.retries, s.timeouts) == (4, 3, 0), s
    # replies 5-8, to the command; a timeout of 600 s waited out even once would outlast run_cli's limit
    proc = run_cli("gallery", "list", "--port", dev.port, "--board", "esp32", "--retries", "3", "--timeout", "600")
    line = assert_one_error_line(proc, 8, f"{dev.port} did not answer INFO", "after 4 attempts",
                                 "4 replies arrived corrupted (bad CRC)", "(noise on the line or a wrong baud rate?)")
    assert "no reply within" not in line
    # the next command, whose replies arrive intact, is answered
    proc = run_cli("gallery", "list", "--port", dev.port, "--board", "esp32", "--json")
    assert proc.returncode == 0 and '"count": 0' in proc.stdout, proc.stderr


def test_a_scripted_device_sending_bytes_that_are_no_frame_is_reported_as_such_not_as_silence():
    """A scripted device on a real pty stands in for one that prints text (a boot log, another
    firmware) at the link's baud rate and never a frame: a protocol problem naming the bytes that
    arrived (exit 8), not "no reply"."""
    import threading

    from tinyface.errors import ProtocolError
    from tinyface.protocol.client import Client, open_serial

    master, slave = os.openpty()
    port = open_serial(os.ttyname(slave), 115200)
    stop = threading.Event()

    def chatter():  # answers every request with a line of text
        while not stop.is_set():
            try:
                if os.read(master, 4096):
                    os.write(master, b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n")
            except OSError:
                return

    thread = threading.Thread(target=chatter, daemon=True)
    thread.start()
    try:
        client = Client(port, timeout_s=0.3, retries=1, port="/dev/pts/N")
        with pytest.raises(ProtocolError) as exc:
            client.info()
    finally:
        stop.set()
        port.close()
        os.close(slave)
        os.close(master)
        thread.join(timeout=5)
    message = exc.value.one_line()
    assert exc.value.exit_code == 8
    assert "/dev/pts/N did not answer INFO" in message and "after 2 attempts" in message
    assert "bytes arrived that were no frame" in message and "wrong baud rate" in message, message
    assert "no reply within" not in message


def test_baud_throttles_the_link(start_device, emulator_only, tiny_bundle, connect):
    dev = start_device(tiny_bundle.model_path.parent, "--baud", "115200")
    client = connect(dev.port, baud=115200)
    payload = os.urandom(4000)
    start = time.monotonic()
    for _ in range(3):
        client.ping(payload)
    elapsed = time.monotonic() - start
    # each PING moves 4014 bytes each way; 12 bits... at 115200 baud that is >= 0.348 s per PING
    assert elapsed >= 3 * (4000 + spec.FRAME_OVERHEAD) * 10 / 115200


def test_pipelined_replies_come_back_in_order(device, connect):
    client = connect(device.port)
    payloads = [bytes([i]) * (i + 1) for i in range(40)]
    assert [f.payload for f in client.pipeline(spec.MsgType.PING, payloads)] == payloads


def test_emulate_json_announces_port_kind_and_model(start_device, device_kind, connect, tiny_bundle):
    """`tinyface emulate --json`: one JSON line on stdout that a script can read the port from,
    naming what serves it; the port it names answers INFO with that model."""
    dev = start_device(tiny_bundle.model_path.parent, "--json")
    a = dev.announced
    assert a is not None and a["port"] == dev.port
    assert a["emulator"] == device_kind and "kind" not in a and a["model_sha256"] == tiny_bundle.model_hash
    assert a["board"] == ("esp32c3" if device_kind == "isa" else "esp32")
    assert connect(dev.port).info().model_sha256 == a["model_sha256"]


def test_ctrl_c_stops_serving_with_exit_0_and_a_last_line(start_device, device_kind, connect, tiny_bundle):
    """`emulate` runs until Ctrl-C: a terminal's SIGINT to the whole group ends it with exit 0 and
    a last line (the Python emulation's summary of what it served; the firmware's 'stopped')."""
    dev = start_device(tiny_bundle.model_path.parent)
    connect(dev.port).ping()
    os.killpg(dev.proc.pid, signal.SIGINT)
    assert dev.proc.wait(timeout=30) == 0, dev.stderr()
    last = dev.stderr().strip().splitlines()[-1]
    if device_kind == "emulator":
        assert last.startswith("served 1 request (0 inferences): "), last
    else:
        assert last.endswith("firmware stopped") or last.endswith("qemu-riscv32 stopped"), last
    assert "Traceback" not in dev.stderr()


def test_firmware_that_dies_while_serving_is_a_device_error(start_device, firmware_only, tiny_bundle):
    """A native or instruction-set firmware that crashes is not a clean stop: exit 7, one line
    naming the signal (it exited 0 in silence before). No emulator variant: it has no firmware process."""
    dev = start_device(tiny_bundle.model_path.parent)
    children = subprocess.run(["pgrep", "-P", str(dev.proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "no firmware process under `tinyface emulate`"
    os.kill(int(children[0]), signal.SIGSEGV)
    assert dev.proc.wait(timeout=30) == 7, dev.stderr()
    assert dev.stderr().strip().splitlines()[-1].startswith("tinyface: error: the "), dev.stderr()
    assert "ended on its own (signal SIGSEGV)" in dev.stderr()
