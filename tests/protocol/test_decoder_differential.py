"""The firmware's frame decoder (firmware/src/frame_decoder.cc) and the reference one
(tinyface.protocol.codec.StreamDecoder) see the same frames and faults in the same byte stream,
byte for byte: garbage, truncated frames, bad CRCs, oversized lengths, a sync pattern inside
payloads, every split point and idle flushes (docs/protocol.md, "Receiving").

The C++ decoder is compiled (with AddressSanitizer and UBSan where g++ has them) into a small
driver that reads a script of feeds, flushes and resets on stdin and prints each event; the
Python decoder is run on the same script and prints the same lines. The streams are seeded."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tinyface.protocol import cheader, spec
from tinyface.protocol.codec import Fault, Frame, StreamDecoder, encode_frame, encode_oversized_header

REPO = Path(__file__).resolve().parents[2]
SEED = 20240611
MAX = spec.MAX_PAYLOAD

DRIVER = r"""
// Reads a script on stdin: 'F' u32le n, n bytes: Feed them; 'X': Flush; 'R': print this stream's
// counters and start a fresh decoder. Prints a line per event, and the pending bytes after each op.
#include <stdio.h>
#include <stdlib.h>
#include "frame_decoder.h"

static const char* kKind[] = {"FRAME", "BAD_CRC", "TOO_LARGE"};

static void OnEvent(TfEventKind kind, const TfFrame& f, void*) {
  printf("%s %u %u %u %u", kKind[kind], f.version, f.type, f.seq, f.length);
  if (kind == TF_EVENT_FRAME) {
    putchar(' ');
    for (size_t i = 0; i < f.length; i++) printf("%02x", f.payload[i]);
  }
  putchar('\n');
}

static bool ReadAll(void* p, size_t n) { return fread(p, 1, n, stdin) == n; }

int main() {
  static uint8_t chunk[1 << 21];
  FrameDecoder* d = new FrameDecoder(OnEvent, nullptr);
  int op;
  while ((op = getchar()) != EOF) {
    if (op == 'F') {
      uint8_t len[4];
      if (!ReadAll(len, 4)) return 2;
      size_t n = len[0] | (len[1] << 8) | (len[2] << 16) | ((size_t)len[3] << 24);
      if (n > sizeof(chunk) || !ReadAll(chunk, n)) return 2;
      d->Feed(chunk, n);
    } else if (op == 'X') {
      d->Flush();
    } else if (op == 'R') {
      printf("END %u %u %zu\n", d->garbage_bytes(), d->frames(), d->pending_bytes());
      delete d;
      d = new FrameDecoder(OnEvent, nullptr);
      continue;
    } else {
      return 3;
    }
    printf("P %zu\n", d->pending_bytes());
  }
  delete d;
  return 0;
}
"""


# --- the two decoders, on one script ------------------------------------------------------------

Script = list[tuple]  # ("F", bytes) | ("X",) | ("R",)


def _sanitizer_flags(cxx: str, tmp_path: Path) -> list[str]:
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    probe = tmp_path / "probe.cc"
    probe.write_text("int main() { return 0; }\n")
    ok = subprocess.run([cxx, *flags, str(probe), "-o", str(tmp_path / "probe")], capture_output=True).returncode == 0
    return flags if ok else []


@pytest.fixture(scope="module")
def c_decoder(tmp_path_factory):
    """Runs a script through the firmware's FrameDecoder; returns its output lines."""
    if shutil.which("g++") is None:
        skip_or_fail("g++ not installed: the firmware's frame decoder cannot be compiled")
    tmp = tmp_path_factory.mktemp("frame_decoder")
    cheader.write_c_header(tmp)
    (tmp / "driver.cc").write_text(DRIVER)
    exe = tmp / "driver"
    # the firmware's own language and warnings (firmware/native/Makefile.j2), and stricter
    cmd = ["g++", "-std=c++17", "-O1", "-g", "-Wall", "-Wextra", "-Werror", *_sanitizer_flags("g++", tmp),
           f"-I{tmp}", f"-I{REPO / 'firmware/src'}", str(REPO / "firmware/src/frame_decoder.cc"),
           str(tmp / "driver.cc"), "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr

    def run(script: Script) -> list[str]:
        data = bytearray()
        for op in script:
            if op[0] == "F":
                data += b"F" + struct.pack("<I", len(op[1])) + op[1]
            else:
                data += op[0].encode()
        result = subprocess.run([str(exe)], input=bytes(data), capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
        return result.stdout.decode().splitlines()

    return run


def _line(event: Frame | Fault) -> str:
    if isinstance(event, Frame):
        return f"FRAME {event.version} {event.type} {event.seq} {len(event.payload)} {event.payload.hex()}"
    kind = {spec.ErrorCode.BAD_CRC: "BAD_CRC", spec.ErrorCode.FRAME_TOO_LARGE: "TOO_LARGE"}[event.kind]
    return f"{kind} {event.version} {event.type} {event.seq} {event.length}"


def py_decoder(script: Script) -> list[str]:
    """The same script through tinyface.protocol.codec.StreamDecoder, printed as the driver does."""
    out: list[str] = []
    decoder = StreamDecoder()
    for op in script:
        if op[0] == "R":
            out.append(f"END {decoder.garbage_bytes} {decoder.frames} {decoder.pending_bytes}")
            decoder = StreamDecoder()
            continue
        events = decoder.feed(op[1]) if op[0] == "F" else decoder.flush()
        out += [_line(e) for e in events]
        out.append(f"P {decoder.pending_bytes}")
    return out


def _agree(c_decoder, script: Script) -> list[str]:
    got_c, got_py = c_decoder(script), py_decoder(script)
    if got_c != got_py:
        at = next((i for i, (a, b) in enumerate(zip(got_c, got_py, strict=False)) if a != b),
                  min(len(got_c), len(got_py)))
        pytest.fail(f"C and Python decoders differ at output line {at}: C {got_c[at:at + 3]} "
                    f"Python {got_py[at:at + 3]}")
    return got_py


# --- streams ------------------------------------------------------------------------------------

def _frame(rng: random.Random, big: bool = False) -> bytes:
    size = rng.choice([0, 1, 2, 7, 16, 31, 100, 300]) if not big else rng.choice([MAX - 1, MAX, 4000])
    payload = bytes(rng.getrandbits(8) for _ in range(min(size, 400))) + bytes(max(0, size - 400))
    version = spec.PROTOCOL_VERSION if rng.random() < 0.8 else rng.randrange(256)
    return encode_frame(rng.randrange(256), rng.randrange(0x10000), payload, version)


def _sync_heavy(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice((spec.SYNC0, spec.SYNC1, spec.SYNC0, 0, rng.getrandbits(8))) for _ in range(n))


def _damage(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    kind = rng.choice(["flip", "flip_header", "delete", "insert", "truncate", "sync_in", "none"])
    if not data or kind == "none":
        return bytes(data)
    at = rng.randrange(len(data))
    if kind == "flip":
        data[at] ^= rng.randrange(1, 256)
    elif kind == "flip_header":
        data[min(at, 9)] ^= 1 << rng.randrange(8)
    elif kind == "delete":
        del data[at:at + rng.randint(1, 20)]
    elif kind == "insert":
        data[at:at] = _sync_heavy(rng, rng.randint(1, 30))
    elif kind == "truncate":
        del data[at:]
    else:
        data[at:at] = bytes([spec.SYNC0, spec.SYNC1])
    return bytes(data)


def _oversized(rng: random.Random) -> bytes:
    length = rng.choice([MAX + 1, MAX + 2, 0x5AA5, 0xFFFF])
    head = encode_oversized_header(rng.randrange(256), rng.randrange(0x10000), length)
    return head + bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 5, 100])))


def _nested(rng: random.Random) -> bytes:
    """A frame whose payload holds a whole valid frame; half the time the outer CRC is wrong, so
    the decoder, dropping one byte and rescanning, must find the inner one."""
    inner = _frame(rng)
    outer = bytearray(encode_frame(1, rng.randrange(0x10000), b"ab" + inner + b"cd"))
    if rng.random() < 0.5:
        outer[-1] ^= 0x55
    return bytes(outer)


def random_stream(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        if kind < 0.45:
            parts.append(_damage(rng, _frame(rng)) if rng.random() < 0.5 else _frame(rng))
        elif kind < 0.6:
            parts.append(_sync_heavy(rng, rng.randint(1, 60)))
        elif kind < 0.7:
            parts.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 60))))
        elif kind < 0.8:
            parts.append(_oversized(rng))
        elif kind < 0.9:
            parts.append(_nested(rng))
        else:
            parts.append(_damage(rng, _frame(rng, big=True)))
    return b"".join(parts)


def chunked(rng: random.Random, data: bytes, flushes: bool) -> Script:
    """``data`` fed in random pieces (one byte, a few, or big), with idle flushes between some."""
    script: Script = []
    at = 0
    while at < len(data):
        n = rng.choice([1, 2, 3, 10, 64, 512, 5000, len(data)])
        script.append(("F", data[at:at + n]))
        at += n
        if flushes and rng.random() < 0.2:
            script.append(("X",))
    if flushes and rng.random() < 0.5:
        script.append(("X",))
    script.append(("R",))
    return script


# --- the tests ----------------------------------------------------------------------------------

def test_seeded_random_streams_decode_the_same(c_decoder):
    rng = random.Random(SEED)
    script: Script = []
    for i in range(1000):
        script += chunked(rng, random_stream(rng), flushes=i % 2 == 1)
    out = _agree(c_decoder, script)
    # the streams really exercise every outcome
    kinds = {line.split()[0] for line in out}
    assert {"FRAME", "BAD_CRC", "TOO_LARGE", "END", "P"} <= kinds
    assert sum(line.startswith("FRAME") and int(line.split()[4]) >= MAX - 1 for line in out) >= 5


def _sync_heavy_with_headers(rng: random.Random, n: int, planted: set) -> bytes:
    """About ``n`` bytes of sync-heavy noise (false syncs, whose header CRC is wrong) with, between
    runs of it, headers whose own CRC is right: a payload of noise (a BAD_CRC once its bytes are in)
    or a length over the limit (TOO_LARGE). Each header's (version, type, seq, length) goes to ``planted``."""
    parts, size = [], 0
    while size < n:
        parts.append(_sync_heavy(rng, rng.randint(0, 200)))
        version, msg_type, seq = rng.choice([spec.PROTOCOL_VERSION, rng.randrange(256)]), rng.randrange(256), \
            rng.randrange(0x10000)
        length = rng.choice([0, 1, 16, 300, MAX + 1, 0xFFFF])
        parts.append(encode_oversized_header(msg_type, seq, length, version))
        planted.add((version, msg_type, seq, length))
        size += len(parts[-2]) + len(parts[-1])
    return b"".join(parts)


def _events(out: list[str]) -> list[tuple[str, tuple[int, ...]]]:
    return [(line.split()[0], tuple(map(int, line.split()[1:5]))) for line in out
            if line.split()[0] in ("FRAME", "BAD_CRC", "TOO_LARGE")]


def test_pure_noise_and_sync_heavy_noise_decode_the_same(c_decoder):
    rng = random.Random(SEED + 1)
    noise: Script = []
    sync_heavy: Script = []
    planted: set[tuple[int, int, int, int]] = set()
    fed = 0
    for _ in range(100):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000)))
        fed += len(data)
        noise += chunked(rng, data, flushes=True)
        sync_heavy += chunked(rng, _sync_heavy_with_headers(rng, rng.randint(0, 3000), planted), flushes=True)
    out = _agree(c_decoder, noise)
    # pure noise: no event, and every byte fed counted as garbage or still pending at the end
    ends = [tuple(map(int, line.split()[1:])) for line in out if line.startswith("END")]
    assert _events(out) == [] and len(ends) == 100
    assert sum(garbage + pending for garbage, _, pending in ends) == fed and all(frames == 0 for _, frames, _ in ends)
    out = _agree(c_decoder, sync_heavy)
    # sync-heavy noise: both decoders reject every false sync's header (an event names only a planted
    # header) and report the planted ones, a BAD_CRC for a payload of noise and a TOO_LARGE for a length
    # over the limit, none of them a frame
    events = _events(out)
    kinds = [kind for kind, _ in events]
    assert {fields for _, fields in events} <= planted, [e for e in events if e[1] not in planted][:3]
    assert "FRAME" not in kinds and kinds.count("BAD_CRC") >= 500 and kinds.count("TOO_LARGE") >= 300, \
        (kinds.count("BAD_CRC"), kinds.count("TOO_LARGE"), len(planted))
    assert all(length > MAX for kind, (*_, length) in events if kind == "TOO_LARGE")
    assert all(length <= MAX for kind, (*_, length) in events if kind == "BAD_CRC")


def _crafted() -> dict[str, bytes]:
    ping = encode_frame(spec.MsgType.PING, 7, b"hello")
    info = encode_frame(spec.MsgType.INFO, 8)
    sync = bytes([spec.SYNC0, spec.SYNC1])
    bad_hcrc = bytearray(ping)
    bad_hcrc[8] ^= 1
    bad_crc = bytearray(ping)
    bad_crc[-1] ^= 1
    lost = ping[:12] + info  # a frame that lost bytes on the wire swallows the start of the next
    return {
        "two frames": ping + info,
        "sync inside a payload": encode_frame(1, 1, sync * 20 + bytes([spec.SYNC0])) + info,
        "a whole frame inside a payload": encode_frame(1, 2, ping + info) + ping,
        "bad header crc": bytes(bad_hcrc) + info,
        "bad crc": bytes(bad_crc) + info,
        "lost bytes swallow the next frame's start": lost + ping,
        "truncated header then a frame": ping[:7] + info,
        "trailing half sync": ping + bytes([spec.SYNC0]),
        "oversized at the limit": encode_oversized_header(3, 9, MAX + 1) + ping,
        "oversized 0xffff": encode_oversized_header(3, 9, 0xFFFF) + bytes(300) + ping,
        "largest frame": encode_frame(3, 10, bytes(range(256)) * (MAX // 256)) + ping,
        "largest frame, bad crc": encode_frame(3, 10, bytes(MAX))[:-1] + b"\0" + ping + bytes(MAX),
        "sync runs": sync * 40 + bytes([spec.SYNC0]) * 9 + ping,
    }


def _splits(data: bytes) -> list[Script]:
    """``data`` whole, cut in two at each byte (near the ends, and every 997th byte, for a long
    one) and, when short, fed a byte at a time."""
    points = range(len(data) + 1) if len(data) < 1000 else sorted(
        {*range(40), *range(len(data) - 40, len(data) + 1), *range(40, len(data) - 40, 997)})
    scripts = [[("F", data), ("R",)]] + [[("F", data[:cut]), ("F", data[cut:]), ("R",)] for cut in points]
    if len(data) < 1000:
        scripts.append([*(("F", data[i:i + 1]) for i in range(len(data))), ("R",)])
    return scripts


def test_crafted_streams_split_at_every_point_decode_the_same(c_decoder):
    """Every crafted stream split in two at each byte: the same events in both decoders, and the
    same however the stream was cut."""
    names, script = [], []
    for name, data in _crafted().items():
        for one in _splits(data):
            names.append(name)
            script += one
    out = _agree(c_decoder, script)
    results, current = [], []
    for line in out:
        if line.startswith("END"):
            results.append((tuple(current), line))
            current = []
        elif not line.startswith("P"):
            current.append(line)
    assert len(results) == len(names)
    for name in _crafted():
        seen = {result for result, of in zip(results, names, strict=True) if of == name}
        assert len(seen) == 1, f"{name}: the events depend on where the stream was cut"


def test_the_documented_resynchronisation_rules():
    """What docs/protocol.md "Receiving" says, with explicit expectations (not only agreement)."""
    ping = encode_frame(spec.MsgType.PING, 7, b"hello")
    info = encode_frame(spec.MsgType.INFO, 8)
    frames = _crafted()

    def events(data, flush=False):
        decoder = StreamDecoder()
        return [_line(e) for e in decoder.feed(data) + (decoder.flush() if flush else [])], decoder

    # rule 4: a BAD_CRC drops one byte and rescans: the frame that swallowed the next one's start
    # is a fault, and the swallowed frame is still found
    got, _ = events(frames["lost bytes swallow the next frame's start"])
    assert got == [_line(Fault(spec.ErrorCode.BAD_CRC, 1, 7, 5, 3)), _line(Frame(2, 8, b"")),
                   _line(Frame(1, 7, b"hello"))]
    # rule 2: a bad header CRC is garbage (no fault), one byte at a time
    got, decoder = events(frames["bad header crc"])
    assert got == [_line(Frame(2, 8, b""))] and decoder.garbage_bytes == len(ping)
    # rule 3: an oversized header is a fault, its 10 bytes dropped, its payload garbage
    got, decoder = events(frames["oversized 0xffff"])
    assert got == [_line(Fault(spec.ErrorCode.FRAME_TOO_LARGE, 3, 9, 0xFFFF, 3)), _line(Frame(1, 7, b"hello"))]
    assert decoder.garbage_bytes == 300
    # a frame inside a valid frame's payload is payload; inside a bad one's, it is found
    got, _ = events(frames["a whole frame inside a payload"])
    assert [line.split()[:3] for line in got] == [["FRAME", "3", "1"], ["FRAME", "3", "1"]]
    # rule 6: the idle flush gives up a frame cut short and decodes what follows it
    got, decoder = events(encode_frame(1, 5, bytes(64))[:30] + info, flush=True)
    assert got == [_line(Frame(2, 8, b""))] and decoder.pending_bytes == 0


def test_the_c_decoder_follows_the_documented_rules(c_decoder):
    frames = _crafted()
    out = c_decoder([("F", frames["lost bytes swallow the next frame's start"]), ("R",),
                     ("F", encode_frame(1, 5, bytes(64))[:30] + encode_frame(2, 8)), ("X",), ("R",)])
    assert [line for line in out if not line.startswith("P")] == [
        "BAD_CRC 3 1 7 5", "FRAME 3 2 8 0 ", "FRAME 3 1 7 5 " + b"hello".hex(), "END 11 2 0",
        "FRAME 3 2 8 0 ", "END 30 1 0"]


# --- the resynchronisation's worst case --------------------------------------------------------

def worst_case_stream(headers: int, length_high: int = 0x3F) -> bytes:
    """Valid headers every 5 bytes, each claiming a payload of 0x??5A bytes (at most 16218, under
    MAX_PAYLOAD) whose CRC then fails: the header at 5k is A5 5A v t s0 | A5 5A hi c0 c1, its
    seq's high byte and length's low byte the next header's sync, its length's high byte and
    header CRC the next header's version, type and seq's low byte. Each header's CRC fixes the
    next header's first bytes, so such a chain can always be continued: every 5th byte starts a
    header, and after each BAD_CRC the decoder drops one byte and meets the next."""
    out = bytearray([spec.SYNC0, spec.SYNC1, spec.PROTOCOL_VERSION, 0x01, 0x00])
    for _ in range(headers):
        start = len(out) - 5
        out += bytes([spec.SYNC0, spec.SYNC1, length_high])
        hcrc = zlib.crc32(bytes(out[start:start + 8])) & 0xFFFF
        out += struct.pack("<H", hcrc)
    return bytes(out)


def max_length_stream(headers: int) -> bytes:
    """Valid headers every 8 bytes, each claiming exactly MAX_PAYLOAD: one 8-byte block
    A5 5A 03 t s0 s1 00 40 repeated, whose header CRC is the next block's sync (A5 5A), with the
    first (type, seq) that makes it so."""
    for msg_type in range(256):
        for seq in range(0x10000):
            block = struct.pack("<BBBBHH", spec.SYNC0, spec.SYNC1, spec.PROTOCOL_VERSION, msg_type, seq, MAX)
            if zlib.crc32(block) & 0xFFFF == spec.SYNC0 | spec.SYNC1 << 8:
                return block * headers + bytes([spec.SYNC0, spec.SYNC1])
    raise AssertionError("no such block")


@pytest.mark.parametrize("stream,stride,length", [(worst_case_stream, 5, 0x3F5A), (max_length_stream, 8, MAX)],
                         ids=["densest", "max-length"])
def test_worst_case_resynchronisation_cost_is_measured_and_the_same_in_c(c_decoder, stream, stride, length):
    """docs/protocol.md's drop-one-byte rule after a BAD_CRC rescans the claimed frame: on crafted
    headers every 5 bytes, each claiming ~16 KB (or every 8 bytes, each claiming MAX_PAYLOAD), every
    input byte costs thousands of CRC bytes. Measured here (bytes CRC-checked per input byte) so
    that a change of rule or of the bound shows."""
    headers = 400
    crafted = stream(headers)
    data = crafted + bytes(MAX + 20)  # the zeros complete the last claimed frames
    out = _agree(c_decoder, [("F", data), ("R",)])
    faults = [line.split() for line in out if line.startswith("BAD_CRC")]
    assert len(faults) == headers and all(int(f[4]) == length for f in faults)
    per_byte = sum(spec.HEADER_SIZE + int(f[4]) for f in faults) / (stride * headers)
    # each `stride` bytes cost one whole claimed frame: (10 + length) / stride CRC bytes per input byte
    assert per_byte == pytest.approx((spec.HEADER_SIZE + length) / stride)
    assert per_byte > 2000
    # and the time per byte grows with it (printed with -s, not asserted: CI speed varies)
    start = time.perf_counter()
    StreamDecoder().feed(data)
    us = 1e6 * (time.perf_counter() - start) / len(crafted)
    print(f"worst case, headers every {stride} bytes claiming {length}: {per_byte:.0f} CRC bytes per crafted "
          f"input byte; Python {us:.2f} us per byte")
