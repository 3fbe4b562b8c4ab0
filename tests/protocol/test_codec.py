"""The frame codec: round trips, and every corruption is detected or resynchronised
(property-based with hypothesis)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tinyface.protocol import spec
from tinyface.protocol.codec import (
    Fault,
    Frame,
    FrameError,
    StreamDecoder,
    decode_frame,
    encode_frame,
    encode_oversized_header,
)

frames = st.builds(
    Frame,
    type=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=300),
    version=st.integers(0, 255),
)


def _feed_in_chunks(decoder: StreamDecoder, data: bytes, cuts: list[int]) -> list:
    events = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        events += decoder.feed(data[a:b])
    return events


@given(frames)
def test_round_trip(frame):
    data = encode_frame(frame.type, frame.seq, frame.payload, frame.version)
    assert len(data) == spec.FRAME_OVERHEAD + len(frame.payload) == frame.wire_bytes
    assert decode_frame(data) == frame
    assert StreamDecoder().feed(data) == [frame]


@given(st.lists(frames, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_stream_round_trip_in_any_chunking(items, cuts):
    data = b"".join(encode_frame(f.type, f.seq, f.payload, f.version) for f in items)
    decoder = StreamDecoder()
    assert _feed_in_chunks(decoder, data, cuts) == items
    assert decoder.garbage_bytes == 0 and decoder.pending_bytes == 0


def _encode(items):
    return [encode_frame(f.type, f.seq, f.payload, f.version) for f in items]


mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),  # xor one byte
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 20)),  # lose bytes
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=40)),  # add noise
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),  # cut the frame short
)


def _mutate(frame: bytes, mutation) -> bytes:
    kind, at, arg = mutation
    at %= len(frame)
    if kind == "flip":
        return frame[:at] + bytes([frame[at] ^ arg]) + frame[at + 1:]
    if kind == "delete":
        return frame[:at] + frame[at + arg:]
    if kind == "insert":
        return frame[:at] + arg + frame[at:]
    return frame[:at]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, min_size=2, max_size=5), st.data(), mutations, st.lists(st.integers(0, 10_000), max_size=6))
def test_any_corruption_is_detected_or_resynchronised(items, data, mutation, cuts):
    """One frame of a stream is damaged: no damaged frame is ever delivered as valid, and
    every other frame is still delivered, in order."""
    victim = data.draw(st.integers(0, len(items) - 1))
    encoded = _encode(items)
    damaged = _mutate(encoded[victim], mutation)
    stream = b"".join(encoded[:victim]) + damaged + b"".join(encoded[victim + 1:])
    decoder = StreamDecoder()
    got = [e for e in _feed_in_chunks(decoder, stream, cuts) + decoder.flush() if isinstance(e, Frame)]
    expected_others = items[:victim] + items[victim + 1:]
    # the victim itself is delivered only when the damage left its bytes whole (noise
    # inserted at its very start is noise between frames)
    intact = damaged.endswith(encoded[victim]) or damaged == encoded[victim]
    assert got == (items if intact else expected_others)


@given(st.binary(max_size=2000))
def test_pure_noise_yields_nothing_that_passes_as_a_frame(noise):
    decoder = StreamDecoder()
    events = decoder.feed(noise) + decoder.flush()
    assert [e for e in events if isinstance(e, Frame)] == []


def test_noise_then_frame_resynchronises():
    frame = Frame(spec.MsgType.PING, 3, b"hello")
    noise = bytes([spec.SYNC0, spec.SYNC1, spec.SYNC0]) * 50 + bytes(range(256))
    decoder = StreamDecoder()
    assert decoder.feed(noise + encode_frame(frame.type, frame.seq, frame.payload)) == [frame]
    assert decoder.garbage_bytes == len(noise)


def test_oversized_length_is_a_fault_and_never_buffered():
    decoder = StreamDecoder()
    events = decoder.feed(encode_oversized_header(spec.MsgType.INFER, 9, spec.MAX_PAYLOAD + 1))
    assert events == [Fault(spec.ErrorCode.FRAME_TOO_LARGE, spec.MsgType.INFER, 9, spec.MAX_PAYLOAD + 1,
                            spec.PROTOCOL_VERSION)]
    ok = encode_frame(spec.MsgType.PING, 10, b"x")
    assert decoder.feed(bytes(5000) + ok) == [Frame(spec.MsgType.PING, 10, b"x")]


def test_a_frame_can_never_make_the_receiver_buffer_more_than_max_frame():
    """A header announcing the largest payload, then a flood: the undecided bytes held never
    exceed one maximum frame (bytes are fed one at a time like a UART ISR would)."""
    decoder = StreamDecoder()
    head = encode_frame(spec.MsgType.INFER, 1, bytes(spec.MAX_PAYLOAD))[:spec.HEADER_SIZE]
    high = 0
    for b in head + bytes(spec.MAX_PAYLOAD + 100):
        decoder.feed(bytes([b]))
        high = max(high, decoder.pending_bytes)
    assert high <= spec.MAX_FRAME


def test_bad_crc_is_reported_with_the_header_seq():
    data = bytearray(encode_frame(spec.MsgType.INFER, 321, bytes(50)))
    data[20] ^= 1
    events = StreamDecoder().feed(bytes(data))
    assert events == [Fault(spec.ErrorCode.BAD_CRC, spec.MsgType.INFER, 321, 50, spec.PROTOCOL_VERSION)]


def test_encode_rejects_oversized_payloads_and_bad_fields():
    with pytest.raises(FrameError):
        encode_frame(spec.MsgType.PING, 1, bytes(spec.MAX_PAYLOAD + 1))
    with pytest.raises(FrameError):
        encode_frame(spec.MsgType.PING, 0x10000, b"")
    encode_frame(spec.MsgType.PING, 0xFFFF, bytes(spec.MAX_PAYLOAD))  # the limit itself is fine


@pytest.mark.parametrize("damage", ["short", "sync", "hcrc", "crc", "length"])
def test_decode_frame_names_the_problem(damage):
    data = bytearray(encode_frame(spec.MsgType.PING, 1, b"abc"))
    if damage == "short":
        data = data[:10]
    elif damage == "sync":
        data[0] = 0
    elif damage == "hcrc":
        data[8] ^= 1
    elif damage == "crc":
        data[-1] ^= 1
    else:
        data += b"x"
    with pytest.raises(FrameError):
        decode_frame(bytes(data))


def test_header_layout_is_frozen():
    """sync, version, type, seq, length, header CRC at fixed offsets (docs/protocol.md)."""
    data = encode_frame(0x03, 0x1234, b"\x01\x02", version=1)
    s0, s1, ver, typ, seq, length, hcrc = struct.unpack_from("<BBBBHHH", data)
    assert (s0, s1, ver, typ, seq, length) == (0xA5, 0x5A, 1, 0x03, 0x1234, 2)
    assert hcrc == spec.crc32(data[:8]) & 0xFFFF
    assert struct.unpack_from("<I", data, 12)[0] == spec.crc32(data[:12])
