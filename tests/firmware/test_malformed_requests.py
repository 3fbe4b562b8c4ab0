"""Malformed requests against the native firmware (the real tinyface_app.cc, frame_decoder.cc and
gallery.cc, served on pipes) and the Python emulator (tinyface.device.emulator.EmulatedBoard
behind a StreamDecoder, as its serve loop runs it): wrong payload sizes for every message type,
unknown types, other protocol versions, lengths at and past the maximum, bad name fields, gallery
operations out of range, damaged frames. Each gets its documented ERROR (docs/protocol.md) or
documented reply, the two devices give the same reply to the same bytes, neither crashes nor
hangs, and both still answer correctly afterwards."""

from __future__ import annotations

import os
import random
import select
import struct
import subprocess
import time

import numpy as np
import pytest

from tests.firmware.conftest import random_inputs
from tinyface.boards import load_board
from tinyface.protocol import spec
from tinyface.protocol.codec import Fault, Frame, StreamDecoder, encode_frame, encode_oversized_header

pytestmark = pytest.mark.native

E = spec.ErrorCode
T = spec.MsgType
SEED = 7321


class NativeDevice:
    """The native firmware on plain pipes (memory-only gallery)."""

    def __init__(self, program, stderr_path):
        env = {k: v for k, v in os.environ.items() if k != "TINYFACE_NVS_DIR"}
        self.stderr = open(stderr_path, "w+b")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.decoder = StreamDecoder()
        self.inbox: list[Frame | Fault] = []

    def exchange(self, data: bytes, replies: int, timeout_s: float = 10.0) -> list[Frame | Fault]:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout_s
        while len(self.inbox) < replies:
            left = deadline - time.monotonic()
            assert self.proc.poll() is None, f"the native firmware died: {self.proc.returncode} {self.log()}"
            assert left > 0, f"the native firmware did not answer: {len(self.inbox)} of {replies} replies"
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"the native firmware closed its output {self.log()}"
                self.inbox += self.decoder.feed(chunk)
        got, self.inbox = self.inbox[:replies], self.inbox[replies:]
        return got

    def silent(self, wait_s: float = 0.2) -> bool:
        """Nothing more arrives within ``wait_s``."""
        ready, _, _ = select.select([self.proc.stdout], [], [], wait_s)
        if ready:
            self.inbox += self.decoder.feed(os.read(self.proc.stdout.fileno(), 65536))
        return not self.inbox

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> int:
        self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.stderr.close()
        return code


class EmulatorDevice:
    """The Python emulator's device logic, fed bytes as its serve loop feeds them."""

    def __init__(self, bundle):
        from tinyface.device.emulator import EmulatedBoard

        self.board = EmulatedBoard(bundle, "esp32", load_board("esp32").cost_model_for("esp-nn"))
        self.rx = StreamDecoder()
        self.tx = StreamDecoder()

    def exchange(self, data: bytes, replies: int, timeout_s: float = 10.0) -> list[Frame | Fault]:
        out: list[Frame | Fault] = []
        for event in self.rx.feed(data):
            reply = self.board.handle(event)
            if reply is not None:
                out += self.tx.feed(reply)
        assert len(out) == replies, f"the emulator answered {len(out)} frames, expected {replies}: {out}"
        return out


@pytest.fixture(scope="module")
def devices(native_program, tiny_bundle, tmp_path_factory):
    native = NativeDevice(native_program, tmp_path_factory.mktemp("native") / "stderr")
    emulator = EmulatorDevice(tiny_bundle)
    yield native, emulator
    assert native.silent(), f"unasked-for frames from the native firmware: {native.inbox}"
    code = native.close()
    assert code == 0, f"the native firmware exited with {code}: {native.log()}"


_seq = iter(range(1000, 0x10000))


def next_seq() -> int:
    return next(_seq)


def _error(frame) -> tuple[int, int, int] | None:
    """(code, request_type, detail) of an ERROR frame, else None."""
    if not isinstance(frame, Frame) or frame.type != T.ERROR:
        return None
    err = spec.ERROR_REPLY.unpack(frame.payload)
    assert err["reserved"] == 0 and len(frame.payload) == spec.ERROR_REPLY.size
    return err["code"], err["request_type"], err["detail"]


def _normalised(frame: Frame) -> tuple:
    """What must be equal on both devices: the reply less what the emulator estimates or names
    otherwise (IDENTIFY's similarity, computed in another order in float32, is compared apart)."""
    p = frame.payload
    if frame.type == T.INFO.reply:
        info = spec.INFO_REPLY.unpack(p)
        for host_specific in ("board", "firmware_version", "arena_used_bytes", "cpu_hz", "flags", "uptime_ms"):
            info.pop(host_specific)
        return frame.type, frame.seq, frame.version, tuple(sorted(info.items()))
    if frame.type == T.INFER.reply:
        return frame.type, frame.seq, frame.version, p[spec.INFER_REPLY.size:]
    if frame.type == T.IDENTIFY.reply:
        reply = spec.IDENTIFY_REPLY.unpack(p)
        for not_compared in ("similarity", "cycles", "latency_us", "host_wall_us"):
            reply.pop(not_compared)
        return frame.type, frame.seq, frame.version, tuple(sorted(reply.items()))
    return frame.type, frame.seq, frame.version, p


def ask(devices, data: bytes, replies: int = 1) -> list[Frame]:
    """Send ``data`` to both devices: the same replies (normalised), every one an intact frame."""
    native, emulator = devices
    got_native, got_emulator = native.exchange(data, replies), emulator.exchange(data, replies)
    for n, e in zip(got_native, got_emulator, strict=True):
        assert isinstance(n, Frame) and isinstance(e, Frame), (n, e)
        assert _normalised(n) == _normalised(e), (n, e)
        if n.type == T.IDENTIFY.reply:
            similarity = [spec.IDENTIFY_REPLY.unpack(f.payload)["similarity"] for f in (n, e)]
            assert similarity[0] == pytest.approx(similarity[1], abs=1e-4)
    return got_native


def still_answers(devices) -> None:
    seq = next_seq()
    payload = bytes(range(256)) * 4
    [reply] = ask(devices, encode_frame(T.PING, seq, payload))
    assert (reply.type, reply.seq, reply.payload) == (T.PING.reply, seq, payload)


def _name_field(raw: bytes) -> bytes:
    return raw.ljust(spec.MAX_NAME_BYTES, b"\0")[:spec.MAX_NAME_BYTES]


# --- wrong sizes, unknown types, other versions ----------------------------------------------

def expected_for(msg_type: int, payload: bytes, input_bytes: int, model_sha256: bytes):
    """The documented ERROR (code, detail) for a request, or None where a reply is documented."""
    n = len(payload)
    if msg_type == T.PING:
        return None
    if msg_type == T.INFO:
        if n not in (0, spec.MODEL_HASH_BYTES):
            return E.BAD_PAYLOAD, spec.MODEL_HASH_BYTES
        return (E.MODEL_MISMATCH, 0) if n and payload != model_sha256 else None
    if msg_type in (T.INFER, T.IDENTIFY):
        return None if n == input_bytes else (E.WRONG_INPUT_SHAPE, input_bytes)
    if msg_type == T.ENROLL:
        if n < spec.ENROLL_REQUEST.size:
            return E.BAD_PAYLOAD, spec.ENROLL_REQUEST.size + input_bytes
        if n != spec.ENROLL_REQUEST.size + input_bytes:
            return E.WRONG_INPUT_SHAPE, input_bytes
        return None if spec.valid_name_field(payload[:spec.MAX_NAME_BYTES]) else (E.BAD_PAYLOAD, 0)
    if msg_type == T.LIST:
        return (E.BAD_PAYLOAD, 0) if n else None
    if msg_type == T.DELETE:
        if n != spec.DELETE_REQUEST.size:
            return E.BAD_PAYLOAD, spec.DELETE_REQUEST.size
        return None if payload == bytes(n) or spec.valid_name_field(payload) else (E.BAD_PAYLOAD, 0)
    return E.UNKNOWN_MESSAGE, msg_type


def test_every_type_and_payload_size_gets_its_documented_reply(devices, tiny_bundle):
    rng = random.Random(SEED)
    input_bytes = int(np.prod(tiny_bundle.meta.input_shape))
    sha = bytes.fromhex(tiny_bundle.model_hash)
    head = spec.ENROLL_REQUEST.size
    sizes = sorted({0, 1, head - 1, head, head + 1, 31, 32, 33, input_bytes - 1, input_bytes, input_bytes + 1,
                    head + input_bytes - 1, head + input_bytes, head + input_bytes + 1, spec.MAX_PAYLOAD})
    types = [*spec.REQUEST_TYPES, 0x00, 0x08, 0x42, 0x7F, 0x80, T.PING.reply, T.ENROLL.reply, 0xFE, T.ERROR]
    seen = {}
    for msg_type in types:
        for size in sizes:
            payloads = [bytes(rng.getrandbits(8) for _ in range(size))]
            if msg_type == T.ENROLL and size >= head:  # a valid name too: the size decides
                payloads.append(_name_field(f"p{size % 7}".encode()) + payloads[0][head:])
            if msg_type == T.INFO and size == spec.MODEL_HASH_BYTES:
                payloads.append(sha)
            for payload in payloads:
                seq = next_seq()
                [reply] = ask(devices, encode_frame(msg_type, seq, payload))
                assert reply.seq == seq
                want = expected_for(msg_type, payload, input_bytes, sha)
                if want is None:
                    assert reply.type == msg_type | spec.REPLY_FLAG, (msg_type, size, _error(reply))
                else:
                    assert _error(reply) == (want[0], msg_type, want[1]), (msg_type, size)
                seen[want[0] if want else "reply"] = True
    assert set(seen) == {"reply", E.BAD_PAYLOAD, E.WRONG_INPUT_SHAPE, E.UNKNOWN_MESSAGE, E.MODEL_MISMATCH}
    still_answers(devices)


def test_another_protocol_version_is_bad_version_and_nothing_else(devices, tiny_bundle):
    x = random_inputs(1, tiny_bundle.meta.input_shape, seed=3)[0].tobytes()
    before = ask(devices, encode_frame(T.LIST, next_seq()))[0].payload
    for version in (0, 1, 2, spec.PROTOCOL_VERSION + 1, 0x7F, 0xFF):
        for msg_type, payload in ((T.PING, b"x"), (T.INFO, b""), (T.ENROLL, _name_field(b"ver") + x),
                                  (T.DELETE, bytes(16)), (T.LIST, b""), (T.IDENTIFY, x), (0x55, b"")):
            seq = next_seq()
            [reply] = ask(devices, encode_frame(msg_type, seq, payload, version=version))
            assert reply.seq == seq and reply.version == spec.PROTOCOL_VERSION
            assert _error(reply) == (E.BAD_VERSION, msg_type, spec.PROTOCOL_VERSION)
    # neither the ENROLL nor the DELETE of another version did anything
    assert ask(devices, encode_frame(T.LIST, next_seq()))[0].payload == before
    still_answers(devices)


def test_frame_level_faults(devices):
    # a header whose length is one past the maximum: FRAME_TOO_LARGE with its seq, its payload garbage
    for length in (spec.MAX_PAYLOAD + 1, 0x8000, 0xFFFF):
        seq = next_seq()
        [reply] = ask(devices, encode_oversized_header(T.INFER, seq, length) + bytes(1000))
        assert reply.seq == seq and _error(reply) == (E.FRAME_TOO_LARGE, T.INFER, spec.MAX_PAYLOAD)
        still_answers(devices)
    # a payload of exactly the maximum is a frame
    seq = next_seq()
    payload = bytes(random.Random(SEED).getrandbits(8) for _ in range(spec.MAX_PAYLOAD))
    [reply] = ask(devices, encode_frame(T.PING, seq, payload))
    assert reply.payload == payload
    # a damaged CRC: BAD_CRC with the header's seq and type
    seq = next_seq()
    frame = bytearray(encode_frame(T.DELETE, seq, _name_field(b"nobody")))
    frame[12] ^= 0x40
    [reply] = ask(devices, bytes(frame))
    assert reply.seq == seq and _error(reply) == (E.BAD_CRC, T.DELETE, 0)
    # a frame that lost bytes swallows the start of the next: BAD_CRC, then the next is still answered
    first, second = next_seq(), next_seq()
    lost = encode_frame(T.PING, first, b"0123456789")[:15]
    replies = ask(devices, lost + encode_frame(T.PING, second, b"second"), replies=2)
    assert _error(replies[0]) == (E.BAD_CRC, T.PING, 0) and replies[0].seq == first
    assert (replies[1].seq, replies[1].payload) == (second, b"second")
    # the frame checks come before the version's: another version's damaged or oversized frame is
    # BAD_CRC or FRAME_TOO_LARGE (rules 3 and 4 before 5)
    seq = next_seq()
    frame = bytearray(encode_frame(T.PING, seq, b"v2", version=2))
    frame[-1] ^= 1
    [reply] = ask(devices, bytes(frame))
    assert reply.seq == seq and _error(reply) == (E.BAD_CRC, T.PING, 0)
    seq = next_seq()
    [reply] = ask(devices, encode_oversized_header(T.PING, seq, spec.MAX_PAYLOAD + 1, version=4))
    assert reply.seq == seq and _error(reply) == (E.FRAME_TOO_LARGE, T.PING, spec.MAX_PAYLOAD)
    # noise with sync pairs, a header with a bad header CRC: silently skipped
    seq = next_seq()
    noise = bytes([spec.SYNC0, spec.SYNC1]) * 30 + bytes(range(256))
    bad_header = bytearray(encode_frame(T.PING, next_seq(), b"never"))
    bad_header[8] ^= 1
    [reply] = ask(devices, noise + bytes(bad_header) + encode_frame(T.PING, seq, b"after"))
    assert (reply.seq, reply.payload) == (seq, b"after")


INVALID_NAMES = {
    "starts with NUL": b"\0abc",
    "no NUL at the end": b"sixteen bytes!!!",
    "bytes after the first NUL": b"ab\0cd",
    "a lone continuation byte": b"\x80",
    "0xFF": b"ab\xff",
    "overlong NUL": b"\xc0\x80",
    "overlong slash": b"\xe0\x80\xaf",
    "overlong 4 bytes": b"\xf0\x80\x80\xaf",
    "a surrogate": b"\xed\xa0\x80",
    "past U+10FFFF": b"\xf4\x90\x80\x80",
    "a 5-byte form": b"\xf8\x88\x80\x80\x80",
    "cut short": b"caf\xc3",
    "cut short at the end of the field": b"fourteen bytes\xe2\x82",
}
VALID_NAMES = {"ascii": b"ana", "15 bytes": b"a" * 15, "two-byte": "Zoë".encode(), "U+10FFFF": b"\xf4\x8f\xbf\xbf",
               "an emoji": "🙂 x".encode(), "U+FFFF": b"\xef\xbf\xbf", "a control character": b"a\x01b"}


@pytest.mark.parametrize("msg_type", [T.ENROLL, T.DELETE], ids=["ENROLL", "DELETE"])
def test_bad_name_fields_are_bad_payload(devices, tiny_bundle, msg_type):
    x = random_inputs(1, tiny_bundle.meta.input_shape, seed=4)[0].tobytes()
    tail = x if msg_type == T.ENROLL else b""
    for why, raw in INVALID_NAMES.items():
        field = raw.ljust(spec.MAX_NAME_BYTES, b"\0")
        assert len(field) == spec.MAX_NAME_BYTES and not spec.valid_name_field(field), why
        seq = next_seq()
        [reply] = ask(devices, encode_frame(msg_type, seq, field + tail))
        assert _error(reply) == (E.BAD_PAYLOAD, msg_type, 0), why
    for why, raw in VALID_NAMES.items():
        [reply] = ask(devices, encode_frame(msg_type, next_seq(), _name_field(raw) + tail))
        assert reply.type == msg_type.reply, (why, _error(reply))
    [reply] = ask(devices, encode_frame(T.DELETE, next_seq(), bytes(16)))  # everyone: clean up
    still_answers(devices)


def _utf8_edge_fields(rng: random.Random, n: int) -> list[bytes]:
    """Name fields around every UTF-8 boundary: each lead byte with second bytes at the edges of
    the allowed ranges, then continuation bytes (or not), and random ones."""
    edges = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF]
    fields = []
    for lead in range(0x80, 0x100):
        for second in edges:
            for rest in (b"", b"\x80", b"\xbf\xbf", b"\x80\x80\x80", b"\x41"):
                fields.append(_name_field(b"n" + bytes([lead, second]) + rest))
    fields = rng.sample(fields, n // 3)
    while len(fields) < 2 * n // 3:  # well-formed: code points at the ends of each encoded length
        points = [rng.choice((0x01, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF,
                              rng.randrange(0x20, 0xD800), rng.randrange(0x10000, 0x110000)))
                  for _ in range(rng.randint(1, 5))]
        raw = "".join(map(chr, points)).encode()
        if len(raw) < spec.MAX_NAME_BYTES:
            fields.append(_name_field(raw))
    while len(fields) < n:
        raw = bytes(rng.choice((rng.getrandbits(8), 0x80 | rng.getrandbits(6), 0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4))
                    for _ in range(rng.randint(1, 16)))
        fields.append(raw.ljust(16, b"\0")[:16])
    return fields


def test_name_validation_is_the_same_in_c_python_and_the_spec(devices):
    """DELETE (no inference, no state change for a name not enrolled) as a probe of the name rule:
    a batch of fields pipelined in one write, each answered in order, as spec.valid_name_field says."""
    rng = random.Random(SEED + 1)
    fields = _utf8_edge_fields(rng, 1600)
    valid = 0
    for start in range(0, len(fields), 200):
        batch = fields[start:start + 200]
        seqs = [next_seq() for _ in batch]
        data = b"".join(encode_frame(T.DELETE, s, f) for s, f in zip(seqs, batch, strict=True))
        replies = ask(devices, data, replies=len(batch))
        for seq, field, reply in zip(seqs, batch, replies, strict=True):
            assert reply.seq == seq
            if field == bytes(16) or spec.valid_name_field(field):
                assert reply.type == T.DELETE.reply, field
                valid += 1
            else:
                assert _error(reply) == (E.BAD_PAYLOAD, T.DELETE, 0), field
    assert 400 < valid < len(fields) - 400  # both outcomes, many times
    still_answers(devices)


# --- the gallery at and past its limits --------------------------------------------------------

def test_gallery_operations_out_of_range(devices, tiny_bundle):
    x = random_inputs(spec.GALLERY_CAPACITY + 2, tiny_bundle.meta.input_shape, seed=11)
    ask(devices, encode_frame(T.DELETE, next_seq(), bytes(16)))

    def enroll(name: bytes, i: int) -> Frame:
        return ask(devices, encode_frame(T.ENROLL, next_seq(), _name_field(name) + x[i].tobytes()))[0]

    # the empty gallery: IDENTIFY says nobody, DELETE removes nobody, LIST lists nobody
    [reply] = ask(devices, encode_frame(T.IDENTIFY, next_seq(), x[0].tobytes()))
    got = spec.IDENTIFY_REPLY.unpack(reply.payload)
    assert (got["similarity"], got["index"], got["accepted"], got["name"]) == (-1.0, -1, 0, bytes(16))
    [reply] = ask(devices, encode_frame(T.DELETE, next_seq(), _name_field(b"ghost")))
    assert spec.DELETE_REPLY.unpack(reply.payload) == {"removed": 0, "count": 0}
    # fill it
    for i in range(spec.GALLERY_CAPACITY):
        got = spec.ENROLL_REPLY.unpack(enroll(f"person{i}".encode(), i).payload)
        assert got == {"index": i, "samples": 1, "count": i + 1, "reserved": 0}
    # a new name: GALLERY_FULL (detail = capacity); an enrolled one still has room
    assert _error(enroll(b"one too many", 16)) == (E.GALLERY_FULL, T.ENROLL, spec.GALLERY_CAPACITY)
    got = spec.ENROLL_REPLY.unpack(enroll(b"person5", 17).payload)
    assert got == {"index": 5, "samples": 2, "count": spec.GALLERY_CAPACITY, "reserved": 0}
    # a freed slot is the lowest free one again
    [reply] = ask(devices, encode_frame(T.DELETE, next_seq(), _name_field(b"person3")))
    assert spec.DELETE_REPLY.unpack(reply.payload) == {"removed": 1, "count": spec.GALLERY_CAPACITY - 1}
    assert spec.ENROLL_REPLY.unpack(enroll(b"newcomer", 16).payload)["index"] == 3
    [reply] = ask(devices, encode_frame(T.LIST, next_seq()))
    head = spec.LIST_REPLY.unpack(reply.payload)
    assert head == {"count": spec.GALLERY_CAPACITY, "capacity": spec.GALLERY_CAPACITY}
    assert len(reply.payload) == spec.LIST_REPLY.size + spec.GALLERY_CAPACITY * spec.LIST_ENTRY.size
    [reply] = ask(devices, encode_frame(T.IDENTIFY, next_seq(), x[7].tobytes()))
    assert spec.IDENTIFY_REPLY.unpack(reply.payload)["index"] == 7
    # everyone: removed = capacity; then nobody
    [reply] = ask(devices, encode_frame(T.DELETE, next_seq(), bytes(16)))
    assert spec.DELETE_REPLY.unpack(reply.payload) == {"removed": spec.GALLERY_CAPACITY, "count": 0}
    [reply] = ask(devices, encode_frame(T.DELETE, next_seq(), bytes(16)))
    assert spec.DELETE_REPLY.unpack(reply.payload) == {"removed": 0, "count": 0}
    still_answers(devices)


def test_a_retried_enroll_or_delete_is_not_executed_twice(devices, tiny_bundle):
    x = random_inputs(1, tiny_bundle.meta.input_shape, seed=12)[0].tobytes()
    seq = next_seq()
    request = encode_frame(T.ENROLL, seq, _name_field(b"retry") + x)
    first = ask(devices, request)[0]
    again = ask(devices, request)[0]
    assert first == again and spec.ENROLL_REPLY.unpack(again.payload)["samples"] == 1
    # a retry of a refused ENROLL gets the stored ERROR again
    seq = next_seq()
    request = encode_frame(T.ENROLL, seq, _name_field(b"\xff") + x)
    assert _error(ask(devices, request)[0]) == _error(ask(devices, request)[0]) == (E.BAD_PAYLOAD, T.ENROLL, 0)
    seq = next_seq()
    request = encode_frame(T.DELETE, seq, _name_field(b"retry"))
    assert ask(devices, request)[0].payload == ask(devices, request)[0].payload == struct.pack("<HH", 1, 0)
    # a frame-level fault between a request and its retry does not replace the stored reply
    seq = next_seq()
    request = encode_frame(T.ENROLL, seq, _name_field(b"twice") + x)
    first = ask(devices, request)[0]
    ask(devices, encode_frame(T.ENROLL, seq, _name_field(b"twice") + x, version=9))
    ask(devices, encode_oversized_header(T.ENROLL, seq, 0xFFFF))
    assert ask(devices, request)[0] == first
    ask(devices, encode_frame(T.DELETE, next_seq(), bytes(16)))
    still_answers(devices)


def test_a_burst_of_malformed_requests_is_answered_in_order(devices, tiny_bundle):
    """Malformed requests, faults and garbage back to back in one write: one reply each, in order."""
    rng = random.Random(SEED + 2)
    input_bytes = int(np.prod(tiny_bundle.meta.input_shape))
    sha = bytes.fromhex(tiny_bundle.model_hash)
    data, expected = bytearray(), []
    for _ in range(300):
        seq = next_seq()
        kind = rng.random()
        if kind < 0.1:
            data += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))  # garbage, no reply
            seq = None
        elif kind < 0.2:
            data += encode_oversized_header(rng.randrange(256), seq, rng.randint(spec.MAX_PAYLOAD + 1, 0xFFFF))
            expected.append((seq, (E.FRAME_TOO_LARGE, spec.MAX_PAYLOAD)))
        else:
            msg_type = rng.choice([*spec.REQUEST_TYPES, 0x09, 0xFF])
            if msg_type in (T.INFER, T.IDENTIFY, T.ENROLL):  # wrong sizes only: no inference
                size = rng.choice([0, 15, 16, 17, input_bytes - 1, input_bytes + 17])
            else:
                size = rng.choice([0, 1, 16, 32, 33, 100])
            payload = bytes(rng.getrandbits(8) for _ in range(size))
            data += encode_frame(msg_type, seq, payload)
            want = expected_for(msg_type, payload, input_bytes, sha)
            expected.append((seq, want))
    replies = ask(devices, bytes(data), replies=len(expected))
    for (seq, want), reply in zip(expected, replies, strict=True):
        assert reply.seq == seq
        if want is not None:
            assert _error(reply)[0::2] == want, (seq, _error(reply))
        else:
            assert _error(reply) is None
    still_answers(devices)


def test_the_firmware_drops_a_cut_frame_after_the_idle_flush(devices):
    """The firmware only (the emulator need not flush, docs/protocol.md rule 6): a frame cut short,
    then silence, then a request: only the request is answered. Also a cut header, and a cut
    frame that claims the largest payload."""
    native, _ = devices
    for cut in (encode_frame(T.PING, next_seq(), bytes(64))[:spec.HEADER_SIZE + 24],
                encode_frame(T.PING, next_seq(), b"abc")[:7],
                encode_frame(T.INFER, next_seq(), bytes(spec.MAX_PAYLOAD))[:spec.MAX_FRAME - 1]):
        assert native.exchange(cut, replies=0) == []
        time.sleep(3 * spec.IDLE_FLUSH_MS / 1000)
        seq = next_seq()
        [reply] = native.exchange(encode_frame(T.PING, seq, b"next"), replies=1)
        assert (reply.type, reply.seq, reply.payload) == (T.PING.reply, seq, b"next")
        assert native.silent(0.05)


def _forge_crc(message: bytes, target: int) -> bytes:
    """``message`` with its last 4 bytes changed so that its CRC-32 is ``target`` (CRC-32 is affine
    in the message bits for a fixed length: solve the 32 linear equations over GF(2))."""
    import zlib

    base = bytearray(message)
    base[-4:] = bytes(4)
    columns = []
    for bit in range(32):
        probe = bytearray(base)
        probe[len(base) - 4 + bit // 8] ^= 1 << (bit % 8)
        columns.append(zlib.crc32(probe) ^ zlib.crc32(base))
    want = target ^ zlib.crc32(base)
    rows = [(columns[i], 1 << i) for i in range(32)]  # (crc delta, the patch bits that make it)
    solution = 0
    for pivot in range(32):  # Gaussian elimination on the deltas
        at = next(i for i in range(pivot, 32) if rows[i][0] >> pivot & 1)
        rows[pivot], rows[at] = rows[at], rows[pivot]
        for i in range(32):
            if i != pivot and rows[i][0] >> pivot & 1:
                rows[i] = (rows[i][0] ^ rows[pivot][0], rows[i][1] ^ rows[pivot][1])
    for pivot in range(32):
        if want >> pivot & 1:
            solution ^= rows[pivot][1]
    base[-4:] = solution.to_bytes(4, "little")
    assert zlib.crc32(base) == target
    return bytes(base)


def test_a_forged_enroll_under_the_last_seq_is_a_retry_on_the_firmware_only(devices, tiny_bundle):
    """The one documented difference (docs/protocol.md, "Retries are safe"): the firmware takes an
    ENROLL with the last one's seq, name, length and CRC-32 for a retry, the emulator compares the
    whole payload. A different input forged to the same CRC-32 is answered from the stored reply by
    the firmware (not enrolled), and enrolled by the emulator. Pinned so that a change shows."""
    import zlib

    native, emulator = devices
    x = random_inputs(2, tiny_bundle.meta.input_shape, seed=13)
    seq = next_seq()
    first = _name_field(b"forged") + x[0].tobytes()
    second = _forge_crc(_name_field(b"forged") + x[1].tobytes(), zlib.crc32(first))
    assert second != first and len(second) == len(first)
    [reply] = ask(devices, encode_frame(T.ENROLL, seq, first))
    assert spec.ENROLL_REPLY.unpack(reply.payload)["samples"] == 1
    [on_native] = native.exchange(encode_frame(T.ENROLL, seq, second), replies=1)
    [on_emulator] = emulator.exchange(encode_frame(T.ENROLL, seq, second), replies=1)
    assert on_native == reply  # the stored reply: the second input was not enrolled
    assert spec.ENROLL_REPLY.unpack(on_emulator.payload)["samples"] == 2
    ask(devices, encode_frame(T.DELETE, next_seq(), bytes(16)))
    still_answers(devices)
