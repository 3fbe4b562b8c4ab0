"""spec.py: payload structs, names, and docs/protocol.md describing exactly these."""

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RELEASED, named_people as _people, require_released_model as _released
from tinyface import errors
from tinyface.protocol import spec

REPO = Path(__file__).resolve().parents[2]
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


# --- check_name: one rule for a gallery name, wherever it comes from ------------------------------------
# `--name` and a `flash --enroll DIR` person folder are both checked by spec.check_name (1..15
# bytes of UTF-8, no control character, no leading or trailing space), moved here from
# tinyface.device.gallery so that tinyface.codegen may use it. Each keeps its error: `--name` a
# usage error (exit 2), a folder a DataError (exit 4).

def _tinyface(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_the_name_rule_is_defined_once_below_codegen_and_device():
    from tinyface.device import gallery as device_gallery
    from tinyface.protocol import spec

    assert not hasattr(device_gallery, "check_name")
    assert spec.check_name("Zoë") == "Zoë"
    with pytest.raises(ValueError, match=r"'Zoë Zoë Zoë Zoë' is 19 bytes in UTF-8; the board stores at most 15"):
        spec.check_name("Zoë Zoë Zoë Zoë")
    with pytest.raises(ValueError, match=r"the board stores at most 7"):
        spec.check_name("Zoë Zoë", max_bytes=8)  # a board that reports fewer name bytes
    for module in ("codegen/gallery.py", "device/gallery.py", "cli/gallery.py"):
        source = (REPO / "tinyface" / module).read_text(encoding="utf-8")
        assert "check_name(" in source and "def check_name" not in source, module
    assert "spec.encode_name(" not in (REPO / "tinyface" / "codegen" / "gallery.py").read_text(encoding="utf-8")


def test_name_and_a_folder_say_the_same_rule_each_with_its_own_exit_code(tmp_path):
    """`gallery delete --name 'Bob '` is a usage error as the command line is read (the port does
    not exist: it is never opened); `flash --dry-run --enroll` of a `Bob ` folder is a DataError
    before any face is aligned. The folder was taken: the dry run went on to align its photo
    (here exit 15, the photo being an empty file)."""
    _released()
    rule = "'Bob ' starts or ends with white space"
    named = _tinyface("gallery", "delete", "--port", tmp_path / "no-board", "--name", "Bob ")
    assert named.returncode == errors.EXIT_USAGE == 2, named.stderr[-2000:]
    assert f"Invalid value for '--name': {rule}" in named.stderr
    people = _people(tmp_path / "people", "Bob ")
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    folder = _tinyface("flash", "--board", "esp32", "--model", RELEASED, "--dry-run", "--enroll", people,
                       "--project-dir", tmp_path / "p", env=env)
    assert folder.returncode == errors.DataError.exit_code == 4, folder.stderr[-2000:]
    assert folder.stderr.strip().splitlines() == [f"tinyface: error: person folder name {rule} (rename the folder)"]
    assert not (tmp_path / "p").exists()
