"""The firmware's gallery against its storage, on the native build (the board's NVS is files
there): a save that fails is an error, not a success lost at the next reset; a stored gallery
is checked slot by slot when loaded; a person's sample count saturates instead of wrapping.
Found by fuzzing the native build under ASan/UBSan."""

import signal
import struct

import numpy as np
import pytest

from tests.firmware.conftest import random_inputs as _inputs
from tinyface.codegen.budget import GALLERY_HEADER_BYTES
from tinyface.protocol import spec
from tinyface.protocol.client import RemoteError

pytestmark = pytest.mark.native


def _person_offset(slot: int, embedding_dim: int) -> int:
    """Where slot ``slot`` starts in gallery.bin: name, samples (u16), reserved (u16), sum (f32 x dim)."""
    return GALLERY_HEADER_BYTES + slot * (spec.MAX_NAME_BYTES + 4 + 4 * embedding_dim)


def _restart(proc, serve, program, storage):
    proc.send_signal(signal.SIGKILL)  # a reset
    proc.wait(timeout=10)
    return serve(program, storage_dir=storage)


def test_a_gallery_that_cannot_be_saved_is_an_error_not_a_success(native_program, serve, tiny_bundle, tmp_path):
    storage = tmp_path / "nvs"
    storage.mkdir()
    proc, client = serve(native_program, storage_dir=storage)
    # the save's temporary file (its name the program's own, by its pid) cannot be created: a full or failing flash
    (storage / f"gallery.bin.tmp.{proc.pid}").mkdir()
    x = _inputs(1, tiny_bundle.meta.input_shape)[0]
    with pytest.raises(RemoteError) as info:
        client.enroll("ana", x)
    assert (info.value.code, info.value.detail) == (spec.ErrorCode.INTERNAL, spec.INTERNAL_NOT_SAVED)
    assert "could not be saved" in str(info.value) and "lost at the next reset" in str(info.value)
    _, client = _restart(proc, serve, native_program, storage)
    assert client.list() == []  # what the error said: nothing survived


def test_the_sample_count_saturates_at_its_field_width(native_program, serve, tiny_bundle, tmp_path):
    storage = tmp_path / "nvs"
    proc, client = serve(native_program, storage_dir=storage)
    x = _inputs(1, tiny_bundle.meta.input_shape)[0]
    client.enroll("ana", x)
    blob = bytearray((storage / "gallery.bin").read_bytes())
    at = _person_offset(0, tiny_bundle.meta.embedding_dim) + spec.MAX_NAME_BYTES
    struct.pack_into("<H", blob, at, 0xFFFF)  # 65,535 samples, as 65,535 enrollments would leave it
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    (storage / "gallery.bin").write_bytes(bytes(blob))
    _, client = serve(native_program, storage_dir=storage)
    assert client.enroll("ana", x)["samples"] == 0xFFFF  # it wrapped to 0
    assert [(e.name, e.samples) for e in client.list()] == [("ana", 0xFFFF)]


def test_a_stored_gallery_is_checked_slot_by_slot(native_program, serve, tiny_bundle, tmp_path):
    """Slots ENROLL could not have written (a name without its NUL, a name held twice, a sum that
    is not finite) are dropped at boot; the others stay and can be identified and deleted."""
    dim = tiny_bundle.meta.embedding_dim
    storage = tmp_path / "nvs"
    proc, client = serve(native_program, storage_dir=storage)
    x = _inputs(2, tiny_bundle.meta.input_shape, seed=3)
    client.enroll("good", x[0])
    client.enroll("twin", x[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    blob = bytearray((storage / "gallery.bin").read_bytes())
    good = blob[_person_offset(0, dim):_person_offset(1, dim)]

    def put(slot, name, sums):
        o = _person_offset(slot, dim)
        blob[o:o + len(good)] = good
        blob[o:o + spec.MAX_NAME_BYTES] = name
        struct.pack_into(f"<{dim}f", blob, o + spec.MAX_NAME_BYTES + 4, *sums)

    ones = [1.0] * dim
    put(2, b"A" * spec.MAX_NAME_BYTES, ones)  # no NUL
    put(3, spec.encode_name("twin"), ones)  # the name slot 1 holds
    put(4, spec.encode_name("nan"), [float("nan")] * dim)
    put(5, spec.encode_name("inf"), [float("inf")] + ones[1:])
    (storage / "gallery.bin").write_bytes(bytes(blob))
    _, client = serve(native_program, storage_dir=storage)
    assert [(e.name, e.index) for e in client.list()] == [("good", 0), ("twin", 1)]
    result = client.identify(x[0])
    assert result.name == "good" and np.isfinite(result.similarity)
    assert client.delete("twin")["removed"] == 1 and [e.name for e in client.list()] == ["good"]
