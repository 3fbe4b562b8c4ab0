"""The host side of the protocol: requests with timeouts and bounded retries, pipelining.

A :class:`Client` talks over any *transport*: an object with ``write(bytes)``,
``read(n) -> bytes`` (returning early with what arrived within ``transport.timeout``
seconds) and a settable ``timeout``; a ``pyserial`` ``Serial`` is one (a real port, or the
pseudo-terminal of ``tinyface emulate``). Lost links, silent devices and typed error
replies all end as :class:`~tinyface.errors.DeviceError` / ``ProtocolError`` with one
clear message.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from tinyface.errors import DataError, DeviceError, ProtocolError
from tinyface.protocol import spec
from tinyface.protocol.codec import Fault, Frame, StreamDecoder, encode_frame

READ_POLL_S = 0.02
PIPELINABLE = (spec.MsgType.PING, spec.MsgType.INFER, spec.MsgType.IDENTIFY)


class RemoteError(ProtocolError):
    """The device answered with an ERROR frame."""

    def __init__(self, code: int, request_type: int, detail: int):
        self.code = code
        self.request_type = request_type
        self.detail = detail
        try:
            code_name = spec.ErrorCode(code).name
        except ValueError:
            code_name = f"code {code}"
        try:
            req = spec.MsgType(request_type).name
        except ValueError:
            req = f"type 0x{request_type:02X}"
        why = (": the gallery changed but could not be saved, so the change is lost at the next reset"
               if code == spec.ErrorCode.INTERNAL and detail == spec.INTERNAL_NOT_SAVED else "")
        super().__init__(f"device rejected {req}: {code_name} (detail {detail}){why}")


class LinkLost(DeviceError):
    """The port went away (board reset or unplugged, emulator killed)."""


@dataclass
class LinkStats:
    """Counters of what happened on the link (bench reports them)."""

    requests: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    retries: int = 0
    timeouts: int = 0
    bad_crc_replies: int = 0  # the device said our frame arrived corrupted
    stale_replies: int = 0  # replies to a seq no longer awaited (after a retry)
    garbage_bytes: int = 0
    corrupt_frames: int = 0  # frames from the device that failed their CRC


@dataclass(frozen=True)
class DeviceInfo:
    version: int
    board: str
    firmware_version: str
    model_sha256: str
    input_shape: tuple[int, int, int, int]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    output_size: int
    identify_threshold: float
    arena_used_bytes: int
    free_sram_bytes: int
    free_psram_bytes: int
    cpu_hz: int
    flags: int
    reset_reason: int
    uptime_ms: int
    max_payload: int
    gallery_capacity: int
    gallery_count: int
    max_name_bytes: int

    @property
    def emulated(self) -> bool:
        return bool(self.flags & spec.Flag.EMULATED)

    @property
    def native(self) -> bool:
        return bool(self.flags & spec.Flag.NATIVE)

    @property
    def instructions(self) -> bool:
        """Cycles are executed instructions (an instruction-set emulator): a lower bound on cycles."""
        return bool(self.flags & spec.Flag.INSTRUCTIONS)

    @property
    def reset_reason_name(self) -> str:
        """ESP-IDF's name for why the chip last started (``PANIC``), or ``reason N`` for a newer one."""
        return spec.reset_reason_name(self.reset_reason)

    @property
    def crashed(self) -> bool:
        """The chip last started because the firmware crashed, a watchdog fired or its power failed
        (spec.CRASH_RESETS)."""
        return self.reset_reason in spec.CRASH_RESETS

    @property
    def input_bytes(self) -> int:
        _, h, w, c = self.input_shape
        return h * w * c

    @classmethod
    def from_payload(cls, payload: bytes, version: int) -> "DeviceInfo":
        if len(payload) != spec.INFO_REPLY.size:
            raise ProtocolError(f"INFO reply of {len(payload)} bytes, expected {spec.INFO_REPLY.size}")
        v = spec.INFO_REPLY.unpack(payload)
        return cls(
            version=version, board=spec.decode_name(v["board"]),
            firmware_version=spec.decode_name(v["firmware_version"]), model_sha256=v["model_sha256"].hex(),
            input_shape=(1, v["input_h"], v["input_w"], v["input_c"]),
            input_scale=v["input_scale"], input_zero_point=v["input_zero_point"],
            output_scale=v["output_scale"], output_zero_point=v["output_zero_point"],
            output_size=v["output_size"], identify_threshold=v["identify_threshold"],
            arena_used_bytes=v["arena_used_bytes"],
            free_sram_bytes=v["free_sram_bytes"], free_psram_bytes=v["free_psram_bytes"], cpu_hz=v["cpu_hz"],
            flags=v["flags"], reset_reason=v["reset_reason"], uptime_ms=v["uptime_ms"], max_payload=v["max_payload"],
            gallery_capacity=v["gallery_capacity"], gallery_count=v["gallery_count"],
            max_name_bytes=v["max_name_bytes"],
        )


@dataclass(frozen=True)
class InferResult:
    output: np.ndarray  # int8 (output_size,)
    cycles: int
    latency_us: int
    host_wall_us: int


@dataclass(frozen=True)
class IdentifyResult:
    name: str
    index: int
    similarity: float
    accepted: bool
    cycles: int
    latency_us: int
    host_wall_us: int


@dataclass(frozen=True)
class GalleryEntry:
    name: str
    index: int
    samples: int


@dataclass
class _Pending:
    seq: int
    msg_type: int
    frame: bytes
    attempts: int = 1
    deadline: float = 0.0
    reply: Frame | None = None
    # What arrived instead of its reply while it was awaited: frames that failed their CRC,
    # frames announcing a payload over the limit, bytes that were no frame. A request given up on
    # after such arrivals was answered wrongly, not left unanswered.
    bad_crc: int = 0
    too_large: int = 0
    garbage_bytes: int = 0


@dataclass
class Client:
    """Requests over ``transport`` with a per-request timeout and bounded retries.

    Args:
        transport: pyserial-like object (write, read, timeout).
        timeout_s: how long to wait for a reply before resending (the wire time of the bytes
            in flight at ``baud`` is added, so slow links do not time out spuriously).
        retries: resends per request before giving up.
        baud: the link's nominal speed (0: unknown, no wire-time allowance).
        port: a name for messages.
    """

    transport: object
    timeout_s: float = spec.DEFAULT_TIMEOUT_S
    retries: int = spec.DEFAULT_RETRIES
    baud: int = 0
    port: str = "the device"
    stats: LinkStats = field(default_factory=LinkStats)

    def __post_init__(self):
        self._decoder = StreamDecoder()
        # A random start: a retry is recognised by the device as "the same frame again", and a
        # new session must not happen to repeat the previous session's last frame.
        self._seq = int.from_bytes(os.urandom(2), "little")
        self._inbox: deque[Frame | Fault] = deque()
        self._garbage_since = 0  # bytes that were no frame, since the pipeline last looked

    def close(self) -> None:
        """Close the transport (the serial port); the client cannot be used after it."""
        self.transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- low level ------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _wire_s(self, n_bytes: int) -> float:
        return spec.wire_seconds(n_bytes, self.baud)

    def _write(self, data: bytes) -> None:
        try:
            self.transport.write(data)
            flush = getattr(self.transport, "flush", None)
            if flush:
                flush()
        except Exception as exc:  # serial.SerialException, OSError: the port is gone
            raise LinkLost(f"lost the connection to {self.port} while sending: {_reason(exc)}") from None
        self.stats.frames_sent += 1
        self.stats.bytes_sent += len(data)

    def _receive(self, deadline: float) -> Frame | Fault | None:
        """The next frame (or fault) from the device, or None at ``deadline``."""
        while not self._inbox:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                # A short fixed poll (set once): pyserial reconfigures the port (tcsetattr)
                # on every timeout change, which costs more than polling.
                if self.transport.timeout != READ_POLL_S:
                    self.transport.timeout = READ_POLL_S
                waiting = getattr(self.transport, "in_waiting", 0) or 1
                data = self.transport.read(waiting)
            except Exception as exc:
                raise LinkLost(f"lost the connection to {self.port}: {_reason(exc)}") from None
            if data:
                self.stats.bytes_received += len(data)
                before = self._decoder.garbage_bytes
                self._inbox.extend(self._decoder.feed(data))
                garbage = self._decoder.garbage_bytes - before
                self.stats.garbage_bytes += garbage
                self._garbage_since += garbage
        return self._inbox.popleft()

    def send_raw(self, data: bytes) -> None:
        """Write arbitrary bytes (fault-injection tests: garbage, corrupted frames)."""
        self._write(data)

    def receive_frame(self, timeout_s: float | None = None) -> Frame | None:
        """The next intact frame from the device, or None after ``timeout_s``."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            event = self._receive(deadline)
            if event is None or isinstance(event, Frame):
                return event
            self.stats.corrupt_frames += 1

    def request(self, msg_type: int, payload: bytes = b"") -> Frame:
        """Send one request and return its reply frame (retrying on timeout, on the device's BAD_CRC,
        and at once on a reply of ours that arrived corrupted).

        Raises:
            RemoteError: the device answered with a typed error (other than BAD_CRC).
            ProtocolError: no intact reply after all retries, but corrupted replies (or bytes that
                were no frame) arrived: the message counts them.
            DeviceError: no reply at all after all retries, or the link was lost.
        """
        return next(self.pipeline(msg_type, [payload], depth=1))

    def pipeline(self, msg_type: int, payloads: Iterable[bytes], depth: int = spec.PIPELINE_DEPTH) -> Iterator[Frame]:
        """Send requests of one type with up to ``depth`` in flight; yield replies in order.

        Only idempotent types may be pipelined (a resend after a lost reply may execute a
        later request twice on the device).
        """
        if depth > 1 and msg_type not in PIPELINABLE:
            raise ValueError(f"{spec.MsgType(msg_type).name} cannot be pipelined")
        depth = max(1, min(depth, spec.PIPELINE_DEPTH))
        source = iter(payloads)
        in_flight: deque[_Pending] = deque()
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < depth:
                try:
                    payload = next(source)
                except StopIteration:
                    exhausted = True
                    break
                seq = self._next_seq()
                frame = encode_frame(msg_type, seq, payload)
                self.stats.requests += 1
                self._write(frame)
                in_flight.append(_Pending(seq, msg_type, frame))
                self._arm(in_flight)
            if not in_flight:
                return
            head = in_flight[0]
            if head.reply is not None:
                in_flight.popleft()
                if in_flight:
                    self._arm(in_flight, restart=True)
                yield self._check(head)
                continue
            self._garbage_since = 0
            event = self._receive(head.deadline)
            head.garbage_bytes += self._garbage_since
            if event is None:
                self.stats.timeouts += 1
                self._resend(in_flight, f"no reply within {self.timeout_s:g} s")
                continue
            match = next((p for p in in_flight if p.seq == event.seq and p.reply is None), None)
            if isinstance(event, Fault):
                self.stats.corrupt_frames += 1
                if event.kind == spec.ErrorCode.FRAME_TOO_LARGE:
                    head.too_large += 1
                else:
                    head.bad_crc += 1
                if match is head:
                    # Its header (which has a CRC of its own) names the request awaited: that reply
                    # is lost, so resend now rather than wait out the timeout. Only that one: the
                    # replies to the requests behind it are still on their way (the device answers
                    # the resend after them; replies are matched by seq, and pipelined types are
                    # idempotent, so running the head again after them is harmless).
                    self._resend(in_flight, "its reply arrived corrupted", only=head)
                continue
            if match is None:
                self.stats.stale_replies += 1
                continue
            if event.type == spec.MsgType.ERROR and _error_code(event) == spec.ErrorCode.BAD_CRC:
                # The device read an intact header (it has a CRC of its own) with a corrupted body:
                # the seq it echoes names the request lost, and only that one.
                self.stats.bad_crc_replies += 1
                self._resend(in_flight, "the device received a corrupted frame", only=match)
                continue
            match.reply = event

    def _arm(self, in_flight: deque[_Pending], restart: bool = False) -> None:
        """Set the head's deadline: the timeout plus the wire time of everything in flight
        (the device answers in order, so the head's reply waits behind nothing else)."""
        now = time.monotonic()
        wire = self._wire_s(sum(len(p.frame) for p in in_flight) + spec.MAX_FRAME // 8)
        head = in_flight[0]
        if restart or head.deadline == 0.0:
            head.deadline = now + self.timeout_s + wire

    def _resend(self, in_flight: deque[_Pending], why: str, only: _Pending | None = None) -> None:
        """Resend the requests in flight that have no reply yet (after a timeout: any of them may be
        lost), or ``only`` that one (its reply arrived corrupted, or the device said its frame did);
        then re-arm the head's deadline.

        Raises:
            ProtocolError: the request was sent ``retries`` + 1 times, and malformed replies arrived.
            DeviceError: the request was sent ``retries`` + 1 times and nothing arrived for it.
        """
        target = only or in_flight[0]
        if target.attempts > self.retries:
            name = _type_name(target.msg_type)
            tries = f"{target.attempts} attempt{'s' if target.attempts != 1 else ''}"
            what = f"{self.port} did not answer {name} (seq {target.seq}) after {tries}"
            if target.bad_crc or target.too_large:
                raise ProtocolError(f"{what}: {_malformed(target)}", hint="noise on the line or a wrong baud rate?")
            if target.garbage_bytes:
                raise ProtocolError(f"{what}: {_malformed(target)}",
                                    hint="a wrong baud rate, noise on the line, or no tinyface firmware on the board?")
            raise DeviceError(f"{what}: {why}", hint="is the board running tinyface firmware at this baud rate?")
        for pending in [only] if only else in_flight:
            if pending.reply is None:
                pending.attempts += 1
                self.stats.retries += 1
                self._write(pending.frame)
        self._arm(in_flight, restart=True)

    def _check(self, pending: _Pending) -> Frame:
        reply = pending.reply
        if reply.type == spec.MsgType.ERROR:
            if len(reply.payload) != spec.ERROR_REPLY.size:
                raise ProtocolError(f"malformed ERROR reply of {len(reply.payload)} bytes")
            e = spec.ERROR_REPLY.unpack(reply.payload)
            raise RemoteError(e["code"], e["request_type"], e["detail"])
        if reply.type != pending.msg_type | spec.REPLY_FLAG:
            raise ProtocolError(f"expected a reply to {_type_name(pending.msg_type)}, got type 0x{reply.type:02X}")
        if reply.version != spec.PROTOCOL_VERSION:
            raise ProtocolError(f"{self.port} speaks protocol version {reply.version}, this tinyface speaks "
                                f"{spec.PROTOCOL_VERSION}", hint="flash firmware built by this tinyface version")
        self.stats.frames_received += 1
        return reply

    # --- messages -------------------------------------------------------------------------

    def ping(self, payload: bytes = b"") -> bytes:
        reply = self.request(spec.MsgType.PING, payload)
        if reply.payload != payload:
            raise ProtocolError("PING reply does not echo the request")
        return reply.payload

    def info(self, expected_sha256: str | None = None) -> DeviceInfo:
        """The device's INFO; with ``expected_sha256`` the device itself checks the model."""
        payload = bytes.fromhex(expected_sha256) if expected_sha256 else b""
        try:
            reply = self.request(spec.MsgType.INFO, payload)
        except RemoteError as exc:
            if exc.code == spec.ErrorCode.BAD_VERSION:
                raise ProtocolError(f"{self.port} speaks protocol version {exc.detail}, this tinyface speaks "
                                    f"{spec.PROTOCOL_VERSION}", hint="flash firmware built by this tinyface") from None
            raise
        return DeviceInfo.from_payload(reply.payload, reply.version)

    def infer(self, x_int8: np.ndarray) -> InferResult:
        """INFER one model input (int8, the device's input shape): the raw int8 output and timings.

        Raises:
            DataError: ``x_int8`` is not an int8 array (:func:`model_input_bytes`).
            RemoteError: the device refused it (WRONG_INPUT_SHAPE: another size than its model's).
            DeviceError: no reply after all retries, or the link was lost.
        """
        return next(self.infer_many([x_int8], depth=1))

    def infer_many(self, inputs: Iterable[np.ndarray], depth: int = spec.PIPELINE_DEPTH) -> Iterator[InferResult]:
        """INFER each input (pipelined); yields results in order. Raises as :meth:`infer`."""
        payloads = (model_input_bytes(x) for x in inputs)
        for reply in self.pipeline(spec.MsgType.INFER, payloads, depth):
            head = spec.INFER_REPLY
            if len(reply.payload) < head.size:
                raise ProtocolError(f"INFER reply of {len(reply.payload)} bytes is too short")
            v = head.unpack(reply.payload)
            yield InferResult(np.frombuffer(reply.payload[head.size:], dtype=np.int8).copy(),
                              v["cycles"], v["latency_us"], v["host_wall_us"])

    def enroll(self, name: str, x_int8: np.ndarray) -> dict:
        """Add one sample (a model input, int8) of ``name`` to the device's gallery.

        Returns:
            {index, samples, count, reserved}: the person's slot, its samples, the people enrolled.

        Raises:
            ValueError: ``name`` is empty, holds NUL or is too long (spec.encode_name).
            DataError: ``x_int8`` is not an int8 array (:func:`model_input_bytes`).
            RemoteError: the device refused it (GALLERY_FULL, WRONG_INPUT_SHAPE).
            DeviceError: no reply after all retries, or the link was lost.
        """
        payload = spec.ENROLL_REQUEST.pack(name=spec.encode_name(name)) + model_input_bytes(x_int8)
        return spec.ENROLL_REPLY.unpack(self._fixed(spec.MsgType.ENROLL, payload, spec.ENROLL_REPLY))

    def list(self) -> list[GalleryEntry]:
        reply = self.request(spec.MsgType.LIST).payload
        head = spec.LIST_REPLY.unpack(reply) if len(reply) >= spec.LIST_REPLY.size else None
        if head is None or len(reply) != spec.LIST_REPLY.size + head["count"] * spec.LIST_ENTRY.size:
            raise ProtocolError(f"malformed LIST reply of {len(reply)} bytes")
        entries = []
        for i in range(head["count"]):
            e = spec.LIST_ENTRY.unpack(reply, spec.LIST_REPLY.size + i * spec.LIST_ENTRY.size)
            entries.append(GalleryEntry(spec.decode_name(e["name"]), e["index"], e["samples"]))
        return entries

    def delete(self, name: str | None = None) -> dict:
        """Remove ``name`` (None: everyone). Returns {removed, count}."""
        field_bytes = spec.encode_name(name) if name else bytes(spec.MAX_NAME_BYTES)
        payload = spec.DELETE_REQUEST.pack(name=field_bytes)
        return spec.DELETE_REPLY.unpack(self._fixed(spec.MsgType.DELETE, payload, spec.DELETE_REPLY))

    def identify(self, x_int8: np.ndarray) -> IdentifyResult:
        """The enrolled person most like one model input (int8), and whether the device accepts it.

        Raises:
            DataError: ``x_int8`` is not an int8 array (:func:`model_input_bytes`).
            RemoteError: the device refused it (WRONG_INPUT_SHAPE).
            DeviceError: no reply after all retries, or the link was lost.
        """
        reply = self._fixed(spec.MsgType.IDENTIFY, model_input_bytes(x_int8), spec.IDENTIFY_REPLY)
        v = spec.IDENTIFY_REPLY.unpack(reply)
        return IdentifyResult(spec.decode_name(v["name"]), v["index"], v["similarity"], bool(v["accepted"]),
                              v["cycles"], v["latency_us"], v["host_wall_us"])

    def _fixed(self, msg_type: int, payload: bytes, reply_struct: spec.Struct) -> bytes:
        reply = self.request(msg_type, payload).payload
        if len(reply) != reply_struct.size:
            raise ProtocolError(f"{_type_name(msg_type)} reply of {len(reply)} bytes, expected {reply_struct.size}")
        return reply


def model_input_bytes(x_int8) -> bytes:
    """The payload of one model input: the bytes of an int8 array (the device checks its size).

    Raises:
        DataError: not an int8 array: uint8 crops or floats would be cast to int8 silently (pixels
            over 127 wrap around), so the device would embed, enroll or identify another face.
    """
    if not isinstance(x_int8, np.ndarray) or x_int8.dtype != np.int8:
        got = f"an array of {x_int8.dtype}" if isinstance(x_int8, np.ndarray) else type(x_int8).__name__
        raise DataError(f"a model input must be an int8 array, got {got}",
                        hint="quantize uint8 crops with tinyface.model.embedder.quantize_input(crops, bundle.meta)")
    return np.ascontiguousarray(x_int8).tobytes()


def _malformed(pending: _Pending) -> str:
    """What arrived instead of ``pending``'s reply: "3 replies arrived corrupted (bad CRC)", "1 reply
    announced more than the 4096-byte maximum payload", or else "120 bytes arrived that were no
    frame" (the rest of a corrupted frame is such bytes too: counted once, as the frame)."""
    def replies(n: int) -> str:
        return f"{n} {'reply' if n == 1 else 'replies'}"

    parts = []
    if pending.bad_crc:
        parts.append(f"{replies(pending.bad_crc)} arrived corrupted (bad CRC)")
    if pending.too_large:
        parts.append(f"{replies(pending.too_large)} announced more than the {spec.MAX_PAYLOAD}-byte maximum payload")
    if not parts:
        n = pending.garbage_bytes
        parts.append(f"{n:,} {'byte' if n == 1 else 'bytes'} arrived that {'was' if n == 1 else 'were'} no frame")
    return " and ".join(parts)


def _error_code(frame: Frame) -> int | None:
    return frame.payload[0] if len(frame.payload) == spec.ERROR_REPLY.size else None


def _type_name(msg_type: int) -> str:
    try:
        return spec.MsgType(msg_type).name
    except ValueError:
        return f"type 0x{msg_type:02X}"


# What to do about a port path that is no serial port, in every command with --port (each takes auto;
# tinyface.device.ports checks flash's in the same words)
PATH_HINT = "check the path, or pass --port auto to find a connected board"


# What to do about a port another program holds (pyserial's exclusive lock, or EBUSY): the path is right
HELD_HINT = ("close that program first: quit the serial monitor, or let the other tinyface command on this port "
             "(bench, enroll, gallery, identify) finish or stop it with Ctrl-C; then try again")


def port_hint(port: str, code: int | None) -> str:
    """What to do about a port path that did not open with the OS error ``code``: get access
    (EACCES, EPERM: :func:`permission_hint`), close the program that holds it (EBUSY: HELD_HINT),
    name the device in /dev that a bare name missing here means (``--port ttyUSB0``), else check
    the path (PATH_HINT). For open_serial and for flash's check (tinyface.device.ports), so both
    say the same."""
    if code in (errno.EACCES, errno.EPERM):
        return permission_hint(port)
    if code == errno.EBUSY:  # held by a program that opened it exclusively (TIOCEXCL)
        return HELD_HINT
    if code == errno.ENOENT and os.sep not in port and os.path.exists(os.path.join("/dev", port)):
        return f"did you mean /dev/{port}? a port is a path; or pass --port auto to find a connected board"
    return PATH_HINT


def permission_hint(port: str) -> str:
    """What to do about a serial ``port`` that is there but may not be opened (EACCES): get access,
    through the port's group where its group may read and write it (Debian's and Ubuntu's USB
    serial ports are root:dialout 0660, Arch's root:uucp), else the usual serial group, dialout."""
    group = _serial_group(port) or "dialout"
    return (f"your user may not use it: add your user to the {group} group with `sudo usermod -aG {group} $USER` "
            "and log in again, or get read and write access to the device")


def _serial_group(port: str) -> str | None:
    """The name of the group that may read and write ``port``, other than root's; None where there is
    none or it cannot be told (stat refused, no group database)."""
    try:
        import grp

        st = os.stat(port)
        if st.st_gid == 0 or st.st_mode & (stat.S_IRGRP | stat.S_IWGRP) != (stat.S_IRGRP | stat.S_IWGRP):
            return None
        return grp.getgrgid(st.st_gid).gr_name
    except (ImportError, OSError, KeyError):
        return None


def _reason(exc: Exception) -> str:
    """What went wrong, once: pyserial's "could not open port P: [Errno 2] No such file or
    directory: 'P'" is "No such file or directory" (the message names the port already).

    A path that opens but is no terminal (/dev/null, a regular file) fails pyserial's termios
    set-up with ENOTTY ("Could not configure port: (25, 'Inappropriate ioctl for device')"):
    that is "not a serial port", as :func:`tinyface.device.ports.check_port_exists` says it."""
    if _held_by_another(exc):
        return "another program has it open"
    cause = _os_error(exc)
    if cause is None:
        return " ".join(str(exc).split()) or type(exc).__name__
    code, text = cause
    if code == errno.ENOTTY:
        return "not a serial port"
    if code == errno.EISDIR:
        return "a folder, not a serial port"
    if code == errno.EBUSY:  # a program holds it opened exclusively (TIOCEXCL)
        return "another program has it open (device or resource busy)"
    return os.strerror(code) if code > 0 else text


def _held_by_another(exc: Exception) -> bool:
    """Whether pyserial's exclusive open failed because another program holds the port's lock
    ("Could not exclusively lock port P: [Errno 11] Resource temporarily unavailable")."""
    return "exclusively lock" in str(exc)


def _os_error(exc: BaseException) -> tuple[int, str] | None:
    """(code, text) of the OS error behind ``exc``: its own, or that of the error pyserial
    wrapped (its SerialException carries only a message, with the OSError as its context;
    termios.error is a plain (code, text) pair; a URL's unknown host is a negative gaierror)."""
    for _ in range(4):
        if exc is None:
            break
        code, text = getattr(exc, "errno", None), getattr(exc, "strerror", None)
        if code is None and len(exc.args) == 2 and isinstance(exc.args[0], int):
            code, text = exc.args  # termios.error
        if isinstance(code, int) and code != 0 and (code > 0 or text):
            return code, str(text)
        exc = exc.__cause__ or exc.__context__
    return None


# pyserial's URL handlers that reach a board over the network: each needs HOST:PORT. Without a
# port, pyserial fails inside its own parser ("'<=' not supported between instances of 'int' and
# 'NoneType'"; a port that is no number: "'debug|info|warning|error'").
NETWORK_URL_SCHEMES = ("socket", "rfc2217")


def check_serial_url(port: str) -> None:
    """Refuse, before anything is opened or loaded, a ``socket://`` or ``rfc2217://`` URL that
    names no TCP port, or one that is not a number from 1 to 65535. Nothing is resolved or
    connected: only the text is read. Anything else (a path, another pyserial URL) passes.

    Raises:
        DeviceError: such a URL without a usable port (exit 7, as any port that cannot be opened).
    """
    from urllib.parse import urlsplit

    scheme, sep, _ = port.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in NETWORK_URL_SCHEMES:
        return
    try:
        parts = urlsplit(port)
    except ValueError as exc:  # a [IPv6] host without its "]"
        problem = f"not a valid URL: {exc}"
    else:
        try:
            number = parts.port
        except ValueError:  # not a number, or outside 0-65535
            number = -1
        if number is not None and 1 <= number <= 65535:
            return
        given = parts.netloc.rpartition("]")[2].rpartition(":")[2]  # the text after HOST:
        problem = ("the URL has no port" if number is None or not given
                   else f"the URL's port {given!r} is not a number from 1 to 65535")
    raise DeviceError(f"cannot open {port}: {problem}",
                      hint=f"give it as {scheme}://HOST:PORT, e.g. {scheme}://192.168.1.20:3333")


# After a port is opened with RTS/DTR released: long enough for an ESP32 to boot and set up
# its model (about a second) after the reset the open itself may cause.
BOOT_WAIT_S = 2.0


def open_serial(port: str, baud: int, timeout_s: float = 0.1, release_rts_dtr: bool = False,
                boot_wait_s: float = BOOT_WAIT_S):
    """Open ``port`` with pyserial (raw 8N1, no flow control), exclusively: a second program
    that opens it the same way (another tinyface command) is refused instead of interleaving its
    frames with this one's.

    Args:
        port: the device path (or a pyserial URL).
        baud: the link speed.
        timeout_s: pyserial's read timeout.
        release_rts_dtr: open with RTS and DTR released (board file ``serial.release_rts_dtr``):
            on an ESP32-CAM-MB adapter pyserial's default, both asserted, holds the chip in
            reset. The OS itself raises both for a moment when the port opens, which may reset
            the chip: then wait ``boot_wait_s`` for it to boot and drop what it printed, and
            the client's INFO retries cover a slower boot.
        boot_wait_s: how long to wait after such an open.

    Raises:
        DeviceError: the port does not exist or cannot be opened, or is a ``socket://`` or
            ``rfc2217://`` URL without HOST:PORT (:func:`check_serial_url`).
    """
    import serial

    check_serial_url(port)
    try:
        # serial_for_url: a plain path is pyserial's Serial, as before; rfc2217:// and socket://
        # URLs get their own classes (``exclusive`` is then the server's business).
        transport = serial.serial_for_url(port, do_not_open=True, baudrate=baud, timeout=timeout_s,
                                          write_timeout=None, exclusive=True)
        if release_rts_dtr:
            # Set before open(): pyserial applies them as the port opens (ignored on a pty).
            transport.rts = False
            transport.dtr = False
        transport.open()
    except OverflowError:  # a baud rate past what the system's C int holds (`--baud 99999999999999999999`)
        raise DeviceError(f"cannot open {port} at {baud} baud: no serial port runs that fast",
                          hint="pass the board's baud rate (`tinyface boards` lists it), or leave out --baud") from None
    except (serial.SerialException, OSError, ValueError) as exc:
        cause = _os_error(exc)
        if _held_by_another(exc):  # the path is right (its lock failed with EAGAIN, which says nothing of paths)
            hint = HELD_HINT
        elif "://" in port:
            hint = "check the URL's host and port, and that its server is running"
        else:
            hint = port_hint(port, cause and cause[0])
        raise DeviceError(f"cannot open {port}: {_reason(exc)}", hint=hint) from None
    if not release_rts_dtr:
        return transport
    time.sleep(boot_wait_s)
    transport.reset_input_buffer()  # the boot ROM's messages, at another baud rate
    return transport
