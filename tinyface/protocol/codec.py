"""Frame encoding and a resynchronising stream decoder (both peers use the same one).

The decoder is fed bytes as they arrive and returns events: a :class:`Frame`, or a
:class:`Fault` for a frame whose header was intact but which cannot be accepted (payload
CRC wrong, or length over the limit) so that the receiver can answer with a typed error.
Anything else (noise, a false sync, a header with a bad header CRC) is counted as garbage
and skipped one byte at a time until the next valid header.

Why a failed CRC rescans from the byte after the failed frame's first byte rather than skipping
the whole claimed frame: a frame that lost bytes on the wire swallows the start of the next
one, and rescanning finds that next frame instead of losing it too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tinyface.protocol import spec

_SYNC = bytes([spec.SYNC0, spec.SYNC1])
_CRC = struct.Struct("<I")
_HEADER = struct.Struct(spec.HEADER_FORMAT)


class FrameError(ValueError):
    """A byte string that is not exactly one valid frame."""


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes
    version: int = spec.PROTOCOL_VERSION

    @property
    def wire_bytes(self) -> int:
        return spec.FRAME_OVERHEAD + len(self.payload)


@dataclass(frozen=True)
class Fault:
    """A frame with a valid header that was rejected: ``kind`` is BAD_CRC or FRAME_TOO_LARGE."""

    kind: spec.ErrorCode
    type: int
    seq: int
    length: int
    version: int


def encode_frame(msg_type: int, seq: int, payload: bytes = b"", version: int = spec.PROTOCOL_VERSION,
                 max_payload: int = spec.MAX_PAYLOAD) -> bytes:
    """One frame's bytes.

    Raises:
        FrameError: payload longer than ``max_payload``, or a field out of range.
    """
    payload = bytes(payload)
    if len(payload) > max_payload:
        raise FrameError(f"payload of {len(payload)} bytes exceeds the maximum of {max_payload}")
    if not (0 <= msg_type <= 0xFF and 0 <= seq <= 0xFFFF and 0 <= version <= 0xFF):
        raise FrameError(f"field out of range: type={msg_type} seq={seq} version={version}")
    body = _header(version, msg_type, seq, len(payload)) + payload
    return body + _CRC.pack(spec.crc32(body))


def _header(version: int, msg_type: int, seq: int, length: int) -> bytes:
    """spec.HEADER_FORMAT's bytes, header_crc over the first spec.HEADER_CRC_SPAN of them."""
    head = struct.pack(spec.HEADER_FORMAT, spec.SYNC0, spec.SYNC1, version, msg_type, seq, length, 0)
    return head[:spec.HEADER_CRC_SPAN] + struct.pack("<H", spec.crc32(head[:spec.HEADER_CRC_SPAN]) & 0xFFFF)


def encode_oversized_header(msg_type: int, seq: int, length: int, version: int = spec.PROTOCOL_VERSION) -> bytes:
    """A valid header announcing ``length`` payload bytes, whatever the limit (for fault tests)."""
    return _header(version, msg_type, seq, length)


def decode_frame(data: bytes, max_payload: int = spec.MAX_PAYLOAD) -> Frame:
    """Decode exactly one frame (no leading or trailing bytes).

    Raises:
        FrameError: anything wrong, with the reason.
    """
    data = bytes(data)
    if len(data) < spec.FRAME_OVERHEAD:
        raise FrameError(f"{len(data)} bytes is shorter than a frame ({spec.FRAME_OVERHEAD})")
    s0, s1, version, msg_type, seq, length, hcrc = _HEADER.unpack_from(data)
    if (s0, s1) != (spec.SYNC0, spec.SYNC1):
        raise FrameError("bad sync bytes")
    if spec.crc32(data[:spec.HEADER_CRC_SPAN]) & 0xFFFF != hcrc:
        raise FrameError("bad header CRC")
    if length > max_payload:
        raise FrameError(f"length {length} exceeds the maximum payload {max_payload}")
    if len(data) != spec.FRAME_OVERHEAD + length:
        raise FrameError(f"frame is {len(data)} bytes, its header says {spec.FRAME_OVERHEAD + length}")
    if spec.crc32(data[:-spec.CRC_SIZE]) != _CRC.unpack_from(data, len(data) - spec.CRC_SIZE)[0]:
        raise FrameError("bad CRC")
    return Frame(msg_type, seq, data[spec.HEADER_SIZE:-spec.CRC_SIZE], version)


class StreamDecoder:
    """Incremental decoder: ``feed(bytes) -> [Frame | Fault, ...]``.

    It never holds more than one frame's worth of undecided bytes beyond what was fed in
    one call, and never buffers a payload longer than ``max_payload`` (its length is checked
    in the header, which has its own CRC, before any payload byte is awaited).
    """

    def __init__(self, max_payload: int = spec.MAX_PAYLOAD):
        self.max_payload = max_payload
        self._buf = bytearray()
        self.garbage_bytes = 0  # bytes skipped while hunting for a valid header
        self.bad_crc = 0
        self.too_large = 0
        self.frames = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | Fault]:
        self._buf += data
        return self._drain()

    def flush(self) -> list[Frame | Fault]:
        """The link went idle: give up on an incomplete frame at the front (its missing bytes
        are not coming) and decode whatever follows it."""
        events: list[Frame | Fault] = []
        while len(self._buf) >= 2 and self._buf[:2] == _SYNC:
            self.garbage_bytes += 1
            del self._buf[:1]
            events += self._drain()
        return events

    def _drain(self) -> list[Frame | Fault]:
        buf = self._buf
        events: list[Frame | Fault] = []
        while buf:
            start = buf.find(_SYNC)
            if start < 0:
                keep = 1 if buf[-1] == spec.SYNC0 else 0  # maybe the first half of a sync
                self.garbage_bytes += len(buf) - keep
                del buf[:len(buf) - keep]
                break
            if start:
                self.garbage_bytes += start
                del buf[:start]
            if len(buf) < spec.HEADER_SIZE:
                break
            _, _, version, msg_type, seq, length, hcrc = _HEADER.unpack_from(buf)
            if spec.crc32(bytes(buf[:spec.HEADER_CRC_SPAN])) & 0xFFFF != hcrc:
                self.garbage_bytes += 1  # a false sync inside noise or a corrupted header
                del buf[:1]
                continue
            if length > self.max_payload:
                self.too_large += 1
                events.append(Fault(spec.ErrorCode.FRAME_TOO_LARGE, msg_type, seq, length, version))
                del buf[:spec.HEADER_SIZE]  # its payload is scanned as garbage
                continue
            total = spec.FRAME_OVERHEAD + length
            if len(buf) < total:
                break
            body_end = total - spec.CRC_SIZE
            if spec.crc32(bytes(buf[:body_end])) != _CRC.unpack_from(buf, body_end)[0]:
                self.bad_crc += 1
                events.append(Fault(spec.ErrorCode.BAD_CRC, msg_type, seq, length, version))
                del buf[:1]
                continue
            events.append(Frame(msg_type, seq, bytes(buf[spec.HEADER_SIZE:body_end]), version))
            self.frames += 1
            del buf[:total]
        return events
