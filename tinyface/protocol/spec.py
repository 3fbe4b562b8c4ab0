"""The tinyface serial protocol, specified once.

Everything a peer needs is in this module: the frame layout, the message types, the error
codes, every payload as a fixed little-endian struct, the size limits and the CRC. The
firmware's C header ``tinyface_protocol.h`` is rendered from these tables
(:mod:`tinyface.protocol.cheader`) and a test fails if the two drift apart; the prose
version is ``docs/protocol.md``.

Frame (all integers little-endian)::

    offset  size  field
    0       1     sync0        0xA5
    1       1     sync1        0x5A
    2       1     version      PROTOCOL_VERSION
    3       1     type         message type (requests < 0x80, replies = request | 0x80, 0xFF error)
    4       2     seq          sequence number chosen by the host; a reply carries its request's
    6       2     length       payload bytes, 0 .. MAX_PAYLOAD
    8       2     header_crc   crc32(bytes 0..7) & 0xFFFF: a corrupted length is caught before
                               the receiver waits for (or stores) a payload that is not coming
    10      n     payload
    10+n    4     crc          crc32(bytes 0 .. 10+n-1), i.e. header (with header_crc) + payload

CRC-32 is the IEEE 802.3 one (zlib.crc32): reflected polynomial 0xEDB88320, initial value
0xFFFFFFFF, final XOR 0xFFFFFFFF; crc32(b"123456789") == 0xCBF43926.
"""

from __future__ import annotations

import struct
import unicodedata
import zlib
from dataclasses import dataclass
from enum import IntEnum

from tinyface.config import BenchSettings as _BenchSettings

# 2: INFO reports internal SRAM and PSRAM apart (free_sram_bytes, free_psram_bytes).
# 3: INFO says why the chip last started and how long ago (reset_reason, uptime_ms): the board has
#    no console, so a panic or a watchdog shows only as a restart.
PROTOCOL_VERSION = 3

SYNC0 = 0xA5
SYNC1 = 0x5A
HEADER_FORMAT = "<BBBBHHH"  # sync0, sync1, version, type, seq, length, header_crc
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)  # 10
HEADER_CRC_SPAN = 8  # the header bytes covered by header_crc
CRC_SIZE = 4
FRAME_OVERHEAD = HEADER_SIZE + CRC_SIZE  # 14
MAX_PAYLOAD = 16384  # bytes; the largest int8 input a frame can carry (e.g. 128x128x1 or 73x73x3)
MAX_FRAME = FRAME_OVERHEAD + MAX_PAYLOAD
REPLY_FLAG = 0x80

# The host may have this many requests in flight (sent, reply not yet received). The device
# handles them strictly in order; its UART receive buffer must hold at least one MAX_FRAME
# while it computes, so the next request streams in during inference (see docs/protocol.md).
PIPELINE_DEPTH = 2

MAX_NAME_BYTES = 16  # gallery names: UTF-8, NUL-padded, at most 15 bytes + a NUL
GALLERY_CAPACITY = 16  # people the device can hold
MODEL_HASH_BYTES = 32  # sha256 of the model .tflite
BOARD_NAME_BYTES = 16
FIRMWARE_VERSION_BYTES = 16

CRC32_CHECK = 0xCBF43926  # crc32(b"123456789"): a known-answer test for implementations

# A receiver holding part of a frame that hears nothing more for this long drops the frame's
# first byte and hunts again (StreamDecoder.flush()). Otherwise a frame cut short on the wire
# would swallow the next request, whose host would wait out a timeout before resending it. A
# sender must therefore not pause this long inside a frame. The firmware flushes; the host
# client and the emulator need not (docs/protocol.md, "Receiving").
IDLE_FLUSH_MS = 100

# A byte on a UART wire (8N1): a start bit, 8 data bits and a stop bit. The host client, the
# emulator, the native and rv32 firmware and benchmarks/link.py pace a link by it.
UART_BITS_PER_BYTE = 10


def wire_seconds(n_bytes: int, baud: int) -> float:
    """How long ``n_bytes`` take on a UART at ``baud`` (0: an unpaced link, no time)."""
    return n_bytes * UART_BITS_PER_BYTE / baud if baud else 0.0

# Host defaults (not part of the wire format): the settings' bench.timeout_s and bench.retries,
# so that a Client made without them waits and retries as `tinyface bench` does.
DEFAULT_TIMEOUT_S = _BenchSettings.timeout_s
DEFAULT_RETRIES = _BenchSettings.retries


def crc32(data: bytes, crc: int = 0) -> int:
    """IEEE CRC-32 (zlib), optionally continuing from a previous ``crc``."""
    return zlib.crc32(data, crc) & 0xFFFFFFFF


class MsgType(IntEnum):
    """Message types. A reply's type is the request's type | REPLY_FLAG; ERROR answers any request."""

    PING = 0x01  # payload: 0..MAX_PAYLOAD arbitrary bytes; reply echoes them
    INFO = 0x02  # payload: empty, or the expected model sha256 (32 bytes); reply: InfoReply
    INFER = 0x03  # payload: the int8 input tensor; reply: InferReply + int8 output
    ENROLL = 0x04  # payload: EnrollRequest + int8 input; reply: EnrollReply
    LIST = 0x05  # payload: empty; reply: ListReply + count x ListEntry
    DELETE = 0x06  # payload: DeleteRequest; reply: DeleteReply
    IDENTIFY = 0x07  # payload: the int8 input tensor; reply: IdentifyReply
    ERROR = 0xFF  # device -> host only; payload: ErrorReply

    @property
    def reply(self) -> int:
        return self.value | REPLY_FLAG


REQUEST_TYPES = tuple(t for t in MsgType if t is not MsgType.ERROR)
# Requests that change device state: a retry of one of these (same seq, type and payload as the
# previous request) must not be executed twice; the device answers it with the stored reply.
NON_IDEMPOTENT = (MsgType.ENROLL, MsgType.DELETE)


class ErrorCode(IntEnum):
    """Typed error replies (ErrorReply.code). ``detail`` meaning in brackets."""

    BAD_CRC = 1  # the frame's CRC-32 did not match [0]
    FRAME_TOO_LARGE = 2  # header length > MAX_PAYLOAD [the device's MAX_PAYLOAD]
    WRONG_INPUT_SHAPE = 3  # input payload size != H*W*C [the expected input bytes]
    UNKNOWN_MESSAGE = 4  # a type the device does not know [the type]
    MODEL_MISMATCH = 5  # INFO carried a model sha256 different from the device's [0]
    GALLERY_FULL = 6  # ENROLL of a new name with GALLERY_CAPACITY people enrolled [capacity]
    BAD_VERSION = 7  # header version != the device's [the device's PROTOCOL_VERSION]
    BAD_PAYLOAD = 8  # a malformed fixed-size payload or name [the expected payload bytes, or 0]
    INTERNAL = 9  # inference failed on the device [implementation status code], or ENROLL/DELETE
    # changed the gallery but could not save it [INTERNAL_NOT_SAVED]


# ErrorReply.detail of an INTERNAL error to ENROLL or DELETE: the gallery changed in RAM but could not
# be saved (flash full or failing), so the change would not survive a reset.
INTERNAL_NOT_SAVED = 102


class ResetReason(IntEnum):
    """InfoReply.reset_reason: why the chip last started, ESP-IDF's esp_reset_reason_t as of the
    5.3 the firmware is built with (it checks every value against ESP-IDF's at compile time).
    Larger values are newer ESP-IDF reasons, passed through as they are."""

    UNKNOWN = 0  # not known, or not a chip (the emulator, the native and rv32 builds)
    POWERON = 1  # power-on
    EXT = 2  # the reset pin
    SW = 3  # esp_restart()
    PANIC = 4  # an exception or abort: the firmware crashed
    INT_WDT = 5  # the interrupt watchdog
    TASK_WDT = 6  # the task watchdog: a task did not yield
    WDT = 7  # another watchdog
    DEEPSLEEP = 8  # waking from deep sleep
    BROWNOUT = 9  # the supply voltage dropped
    SDIO = 10  # over SDIO
    USB = 11  # by the USB peripheral (a host opening the USB-Serial/JTAG port, say)
    JTAG = 12  # by JTAG
    EFUSE = 13  # an eFuse error
    PWR_GLITCH = 14  # a glitch on the supply that was not a brownout
    CPU_LOCKUP = 15  # a double exception: the panic handler itself faulted


def reset_reason_name(value: int) -> str:
    """ESP-IDF's name of a reset reason (``PANIC``), or ``reason N`` for one newer than this table."""
    try:
        return ResetReason(value).name
    except ValueError:
        return f"reason {value}"


# Reasons that mean the firmware (or its power) failed: a host that sees one says so.
CRASH_RESETS = (ResetReason.PANIC, ResetReason.INT_WDT, ResetReason.TASK_WDT, ResetReason.WDT,
                ResetReason.BROWNOUT, ResetReason.PWR_GLITCH, ResetReason.CPU_LOCKUP)


class Flag(IntEnum):
    """Bits of InfoReply.flags."""

    EMULATED = 0x1  # cycles/latency are estimated from a cost model, not measured on a chip
    NATIVE = 0x2  # the firmware sources built natively on a host (timings are host timings)
    INSTRUCTIONS = 0x4  # cycles are instructions executed on an instruction-set emulator (a lower bound on cycles)


@dataclass(frozen=True)
class Field:
    name: str
    code: str  # struct code: B H I b h i f, or Ns for a byte array
    doc: str


@dataclass(frozen=True)
class Struct:
    """A fixed-size little-endian payload struct; fields are ordered so that natural C
    alignment adds no padding (the header still declares them packed and asserts sizes)."""

    name: str  # CamelCase; C name: tf_<snake>_t
    fields: tuple[Field, ...]
    doc: str

    @property
    def format(self) -> str:
        return "<" + "".join(f.code for f in self.fields)

    @property
    def size(self) -> int:
        return struct.calcsize(self.format)

    def pack(self, **values) -> bytes:
        """Pack keyword values (bytes fields are NUL-padded by struct); missing names are errors."""
        missing = [f.name for f in self.fields if f.name not in values]
        extra = set(values) - {f.name for f in self.fields}
        if missing or extra:
            raise TypeError(f"{self.name}.pack: missing {missing}, unexpected {sorted(extra)}")
        return struct.pack(self.format, *(values[f.name] for f in self.fields))

    def unpack(self, data: bytes, offset: int = 0) -> dict:
        """Unpack ``self.size`` bytes at ``offset`` into a dict (raises struct.error if short)."""
        return dict(zip((f.name for f in self.fields), struct.unpack_from(self.format, data, offset), strict=True))


def _s(name: str, doc: str, *fields: tuple[str, str, str]) -> Struct:
    return Struct(name, tuple(Field(*f) for f in fields), doc)


INFO_REPLY = _s(
    "InfoReply", "Reply to INFO: what the device runs.",
    ("board", f"{BOARD_NAME_BYTES}s", "board name, ASCII, NUL-padded"),
    ("firmware_version", f"{FIRMWARE_VERSION_BYTES}s", "firmware version, ASCII, NUL-padded"),
    ("model_sha256", f"{MODEL_HASH_BYTES}s", "sha256 of the model .tflite (raw bytes)"),
    ("input_scale", "f", "input quantization scale"),
    ("input_zero_point", "i", "input quantization zero point"),
    ("output_scale", "f", "output quantization scale"),
    ("output_zero_point", "i", "output quantization zero point"),
    ("identify_threshold", "f", "cosine-similarity threshold IDENTIFY accepts at (>=)"),
    ("arena_used_bytes", "I", "tensor arena bytes TFLM allocated"),
    ("free_sram_bytes", "I", "free internal-SRAM heap after setup (0: not measured, e.g. emulated)"),
    ("free_psram_bytes", "I", "free PSRAM heap after setup (0: no PSRAM, or not measured)"),
    ("cpu_hz", "I", "CPU clock that cycle counts refer to"),
    ("flags", "I", "Flag bits (EMULATED, NATIVE, INSTRUCTIONS)"),
    ("reset_reason", "I", "why the chip last started: ResetReason (0: unknown, or not a chip)"),
    ("uptime_ms", "I", "milliseconds since the firmware started (wraps after 49 days)"),
    ("input_h", "H", "input height"),
    ("input_w", "H", "input width"),
    ("input_c", "H", "input channels"),
    ("output_size", "H", "int8 output values (embedding dimension)"),
    ("max_payload", "H", "the device's MAX_PAYLOAD"),
    ("gallery_capacity", "H", "people the gallery can hold"),
    ("gallery_count", "H", "people enrolled now"),
    ("max_name_bytes", "H", "MAX_NAME_BYTES: a name field's size (a name is 1..this - 1 UTF-8 bytes, NUL-padded)"),
)

INFER_REPLY = _s(
    "InferReply", "Reply to INFER; followed by output_size int8 output values.",
    ("cycles", "I", "CPU cycles of the invoke (estimated when Flag.EMULATED)"),
    ("latency_us", "I", "microseconds of the invoke (estimated when Flag.EMULATED)"),
    ("host_wall_us", "I", "emulator/native: host wall-clock microseconds of the invoke; board: 0"),
)

ENROLL_REQUEST = _s(
    "EnrollRequest", "ENROLL payload head; followed by the int8 input tensor.",
    ("name", f"{MAX_NAME_BYTES}s", "person name, UTF-8, 1..15 bytes, NUL-padded"),
)

ENROLL_REPLY = _s(
    "EnrollReply", "Reply to ENROLL.",
    ("index", "H", "gallery slot of the person"),
    ("samples", "H", "samples now averaged into the person's centroid"),
    ("count", "H", "people enrolled now"),
    ("reserved", "H", "0"),
)

LIST_REPLY = _s(
    "ListReply", "Reply to LIST; followed by count ListEntry structs in slot order.",
    ("count", "H", "people enrolled"),
    ("capacity", "H", "gallery capacity"),
)

LIST_ENTRY = _s(
    "ListEntry", "One enrolled person.",
    ("name", f"{MAX_NAME_BYTES}s", "person name, NUL-padded"),
    ("index", "H", "gallery slot"),
    ("samples", "H", "samples in the centroid"),
)

DELETE_REQUEST = _s(
    "DeleteRequest", "DELETE payload: a name, or all NUL bytes to clear the gallery.",
    ("name", f"{MAX_NAME_BYTES}s", "person name, NUL-padded; empty = everyone"),
)

DELETE_REPLY = _s(
    "DeleteReply", "Reply to DELETE (removed == 0: the name was not enrolled).",
    ("removed", "H", "people removed"),
    ("count", "H", "people enrolled now"),
)

IDENTIFY_REPLY = _s(
    "IdentifyReply", "Reply to IDENTIFY: the best match in the gallery.",
    ("similarity", "f", "cosine similarity to the best centroid (-1 if the gallery is empty)"),
    ("cycles", "I", "CPU cycles of the invoke (estimated when Flag.EMULATED)"),
    ("latency_us", "I", "microseconds of the invoke (estimated when Flag.EMULATED)"),
    ("host_wall_us", "I", "emulator/native: host wall-clock microseconds; board: 0"),
    ("index", "h", "gallery slot of the best match, -1 if the gallery is empty"),
    ("accepted", "B", "1 if similarity >= identify_threshold, else 0"),
    ("reserved", "B", "0"),
    ("name", f"{MAX_NAME_BYTES}s", "best match's name, NUL-padded (empty if none)"),
)

ERROR_REPLY = _s(
    "ErrorReply", "Payload of an ERROR frame.",
    ("code", "B", "ErrorCode"),
    ("request_type", "B", "type of the request that failed (0 if unknown)"),
    ("reserved", "H", "0"),
    ("detail", "I", "code-specific detail (see ErrorCode)"),
)

STRUCTS = (INFO_REPLY, INFER_REPLY, ENROLL_REQUEST, ENROLL_REPLY, LIST_REPLY, LIST_ENTRY,
           DELETE_REQUEST, DELETE_REPLY, IDENTIFY_REPLY, ERROR_REPLY)

# Every scalar constant the C header carries, with its C name (the drift test walks this).
C_CONSTANTS = {
    "TF_PROTO_VERSION": PROTOCOL_VERSION,
    "TF_PROTO_SYNC0": SYNC0,
    "TF_PROTO_SYNC1": SYNC1,
    "TF_HEADER_SIZE": HEADER_SIZE,
    "TF_HEADER_CRC_SPAN": HEADER_CRC_SPAN,
    "TF_CRC_SIZE": CRC_SIZE,
    "TF_FRAME_OVERHEAD": FRAME_OVERHEAD,
    "TF_MAX_PAYLOAD": MAX_PAYLOAD,
    "TF_MAX_FRAME": MAX_FRAME,
    "TF_REPLY_FLAG": REPLY_FLAG,
    "TF_PIPELINE_DEPTH": PIPELINE_DEPTH,
    "TF_IDLE_FLUSH_MS": IDLE_FLUSH_MS,
    "TF_UART_BITS_PER_BYTE": UART_BITS_PER_BYTE,
    "TF_MAX_NAME_BYTES": MAX_NAME_BYTES,
    "TF_GALLERY_CAPACITY": GALLERY_CAPACITY,
    "TF_MODEL_HASH_BYTES": MODEL_HASH_BYTES,
    "TF_BOARD_NAME_BYTES": BOARD_NAME_BYTES,
    "TF_FIRMWARE_VERSION_BYTES": FIRMWARE_VERSION_BYTES,
    "TF_CRC32_CHECK": CRC32_CHECK,
    "TF_INTERNAL_NOT_SAVED": INTERNAL_NOT_SAVED,
    **{f"TF_MSG_{t.name}": t.value for t in MsgType},
    **{f"TF_ERR_{e.name}": e.value for e in ErrorCode},
    **{f"TF_FLAG_{f.name}": f.value for f in Flag},
    **{f"TF_RESET_{r.name}": r.value for r in ResetReason},
}


def check_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A gallery name by the one rule every way in follows (``--name``, a `flash --enroll`
    folder): what the wire stores (encode_name: UTF-8, 1..max_bytes-1 bytes, no NUL), also
    printable and without surrounding spaces, so that LIST shows what was typed.

    Args:
        max_bytes: the board's MAX_NAME_BYTES (its INFO's ``max_name_bytes``); never more than
            this protocol's.

    Returns:
        ``name``, unchanged.

    Raises:
        ValueError: the name breaks a rule; the message starts with the name and says which.
    """
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name!r} is not valid UTF-8 text") from None
    limit = min(max_bytes, MAX_NAME_BYTES) - 1
    if not raw:
        raise ValueError("the name is empty")
    if len(raw) > limit:
        raise ValueError(f"{name!r} is {len(raw)} bytes in UTF-8; the board stores at most {limit}")
    if name != name.strip():
        raise ValueError(f"{name!r} starts or ends with white space")
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if bad:
        raise ValueError(f"{name!r} contains a control or unassigned character ({ascii(bad[0])})")
    encode_name(name)  # the wire format's own rule, checked once more
    return name


def encode_name(name: str) -> bytes:
    """A gallery name as its NUL-padded MAX_NAME_BYTES field.

    Raises:
        ValueError: empty, contains NUL, or longer than MAX_NAME_BYTES - 1 bytes in UTF-8.
    """
    raw = name.encode("utf-8")
    if not raw or b"\0" in raw or len(raw) > MAX_NAME_BYTES - 1:
        raise ValueError(f"a gallery name must be 1..{MAX_NAME_BYTES - 1} UTF-8 bytes without NUL: {name!r}")
    return raw.ljust(MAX_NAME_BYTES, b"\0")


def decode_name(field: bytes) -> str:
    """A NUL-padded name field back to text (stops at the first NUL)."""
    return bytes(field).split(b"\0", 1)[0].decode("utf-8", errors="replace")


def valid_name_field(field: bytes) -> bool:
    """What a device accepts: 1..15 bytes of well-formed UTF-8 (no overlong forms, surrogates or
    code points past U+10FFFF: Python's strict decoder), then only NUL bytes up to the field's end."""
    field = bytes(field)
    if len(field) != MAX_NAME_BYTES or field[0] == 0 or field[-1] != 0:
        return False
    name, _, rest = field.partition(b"\0")
    if rest.strip(b"\0"):
        return False
    try:
        name.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    return True
