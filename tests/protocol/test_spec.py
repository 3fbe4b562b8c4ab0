"""spec.py: payload structs, names, and docs/protocol.md describing exactly these."""

import re
import struct
from pathlib import Path

import pytest

from tinyface.protocol import spec

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def test_struct_sizes_are_natural_and_documented():
    for st in spec.STRUCTS:
        offset = 0
        for f in st.fields:  # no field would need padding in C (the header is packed anyway)
            size = struct.calcsize("<" + f.code)
            align = 1 if f.code.endswith("s") else size
            assert offset % align == 0, (st.name, f.name)
            offset += size
        assert offset == st.size
        assert re.search(rf"`{st.name}` \({st.size} bytes", DOC), f"docs/protocol.md: `{st.name}` ({st.size} bytes"


def test_every_error_code_and_message_is_documented():
    for code in spec.ErrorCode:
        assert f"| {code.value} | `TF_ERR_{code.name}` |" in DOC, code.name
    for msg in spec.MsgType:
        assert f"| `0x{msg.value:02X}` | {msg.name} |" in DOC, msg.name


def test_the_version_and_the_idle_flush_are_documented_with_their_values():
    assert f"| 2 | 1 | version `TF_PROTO_VERSION` | `{spec.PROTOCOL_VERSION}` |" in DOC
    assert f"# The tinyface serial protocol (version {spec.PROTOCOL_VERSION})" in DOC
    assert f"`TF_IDLE_FLUSH_MS` ({spec.IDLE_FLUSH_MS} ms" in DOC


def test_every_info_field_is_documented_at_its_offset():
    offset = 0
    for f in spec.INFO_REPLY.fields:
        assert re.search(rf"\| {offset} \| [^|]+ \| {f.name} \|", DOC), (f.name, offset)
        offset += struct.calcsize("<" + f.code)


@pytest.mark.parametrize("name", ["a", "alice", "Zoë", "x" * 15])
def test_names_round_trip(name):
    field = spec.encode_name(name)
    assert len(field) == spec.MAX_NAME_BYTES and spec.valid_name_field(field)
    assert spec.decode_name(field) == name


@pytest.mark.parametrize("name", ["", "x" * 16, "a\0b", "é" * 8])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError):
        spec.encode_name(name)


@pytest.mark.parametrize("field", [bytes(16), b"x" * 16, b"ab\0c" + bytes(12), b"ab" + bytes(13),
                                   b"caf\xe9" + bytes(12), b"\xc0\xaf" + bytes(14), b"\xed\xa0\x80" + bytes(13)])
def test_device_rejects_malformed_name_fields(field):
    assert not spec.valid_name_field(field)


def test_pack_demands_every_field():
    with pytest.raises(TypeError):
        spec.DELETE_REPLY.pack(removed=1)
    with pytest.raises(TypeError):
        spec.DELETE_REPLY.pack(removed=1, count=2, extra=3)
    assert spec.DELETE_REPLY.unpack(spec.DELETE_REPLY.pack(removed=1, count=2)) == {"removed": 1, "count": 2}


def test_crc_known_answer():
    assert spec.crc32(b"123456789") == spec.CRC32_CHECK == 0xCBF43926
    assert spec.crc32(b"6789", spec.crc32(b"12345")) == spec.CRC32_CHECK


def test_reset_reasons_name_a_crash_and_pass_newer_ones_through():
    from tinyface.protocol.client import DeviceInfo

    def info(reason):
        zeros = {f.name: (b"" if f.code.endswith("s") else 0) for f in spec.INFO_REPLY.fields}
        return DeviceInfo.from_payload(spec.INFO_REPLY.pack(**zeros | {"reset_reason": reason}), spec.PROTOCOL_VERSION)

    assert info(4).reset_reason_name == "PANIC" and info(4).crashed
    assert info(15).reset_reason_name == "CPU_LOCKUP" and info(15).crashed  # a double exception
    assert info(1).reset_reason_name == "POWERON" and not info(1).crashed
    assert info(99).reset_reason_name == "reason 99" and not info(99).crashed  # a newer ESP-IDF's, passed through
    assert {r.name for r in spec.CRASH_RESETS} == {"PANIC", "INT_WDT", "TASK_WDT", "WDT", "BROWNOUT", "PWR_GLITCH",
                                                   "CPU_LOCKUP"}
    # ESP-IDF 5.3's esp_reset_reason_t, in order (the firmware static_asserts each against ESP-IDF's)
    assert [r.name for r in spec.ResetReason] == [
        "UNKNOWN", "POWERON", "EXT", "SW", "PANIC", "INT_WDT", "TASK_WDT", "WDT", "DEEPSLEEP", "BROWNOUT", "SDIO",
        "USB", "JTAG", "EFUSE", "PWR_GLITCH", "CPU_LOCKUP"]
    assert [int(r) for r in spec.ResetReason] == list(range(16))
