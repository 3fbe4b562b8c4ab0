"""The protocol server (firmware/src/tinyface_app.cc) on the native build, over a real pty:
an ENROLL that cannot succeed is refused before the model runs, and a frame cut short on the
wire is dropped after spec.IDLE_FLUSH_MS of silence instead of swallowing the next request."""

import signal
import subprocess
import sys
import time

import pytest

from tests.firmware.conftest import random_inputs as _inputs
from tinyface.protocol import spec
from tinyface.protocol.client import RemoteError
from tinyface.protocol.codec import encode_frame

pytestmark = pytest.mark.native

# Interposed on the native program: the tensor arena (the program's only posix_memalign) cannot
# be allocated, so the model is not set up and every inference fails with status 100.
NO_ARENA = r"""
#include <errno.h>
#include <stddef.h>
extern "C" int posix_memalign(void**, size_t, size_t) { return ENOMEM; }
"""


@pytest.fixture
def no_arena(native_toolchain, tmp_path):
    """An LD_PRELOAD library under which the native firmware cannot run its model."""
    from tinyface.device.native import find_toolchain

    if not sys.platform.startswith("linux"):
        pytest.skip("LD_PRELOAD interposition is tested on Linux")
    source = tmp_path / "no_arena.cc"
    source.write_text(NO_ARENA)
    library = tmp_path / "no_arena.so"
    subprocess.run([find_toolchain().cxx, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def _remote_error(call) -> tuple[int, int]:
    with pytest.raises(RemoteError) as info:
        call()
    return info.value.code, info.value.detail


def test_enroll_on_a_full_gallery_is_refused_before_the_model_runs(native_program, serve, tiny_bundle,
                                                                   no_arena, tmp_path, monkeypatch):
    storage = tmp_path / "nvs"
    proc, client = serve(native_program, storage_dir=storage)
    x = _inputs(1, tiny_bundle.meta.input_shape)[0]
    for i in range(spec.GALLERY_CAPACITY):
        client.enroll(f"p{i}", x)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with monkeypatch.context() as env:  # only this program runs without its arena
        env.setenv("LD_PRELOAD", str(no_arena))
        _, client = serve(native_program, storage_dir=storage)
    info = client.info()
    assert info.gallery_count == spec.GALLERY_CAPACITY and info.arena_used_bytes == 0  # no model, a full gallery
    assert _remote_error(lambda: client.infer(x)) == (spec.ErrorCode.INTERNAL, 100)  # any inference fails
    # a new name: refused without an inference (one would have answered INTERNAL, as above)
    assert _remote_error(lambda: client.enroll("new", x)) == (spec.ErrorCode.GALLERY_FULL, spec.GALLERY_CAPACITY)
    # an enrolled name has room, so the model runs, and fails
    assert _remote_error(lambda: client.enroll("p3", x)) == (spec.ErrorCode.INTERNAL, 100)
    assert [e.samples for e in client.list()] == [1] * spec.GALLERY_CAPACITY


def test_a_frame_cut_short_is_dropped_after_the_idle_flush(native_program, serve):
    _, client = serve(native_program)
    # the header is intact and claims 64 payload bytes; 40 more than arrive
    cut = encode_frame(spec.MsgType.PING, 41, bytes(64))[:spec.HEADER_SIZE + 24]
    client.send_raw(cut)
    time.sleep(3 * spec.IDLE_FLUSH_MS / 1000)
    # without the flush these bytes would go into the cut frame, and the PING wait out a timeout
    assert client.ping(b"next") == b"next"
    assert (client.stats.timeouts, client.stats.retries, client.stats.stale_replies) == (0, 0, 0)
    # a pause well under the flush time inside a frame is no loss
    whole = encode_frame(spec.MsgType.PING, 42, b"paused")
    client.send_raw(whole[:spec.HEADER_SIZE + 2])
    time.sleep(spec.IDLE_FLUSH_MS / 10 / 1000)
    client.send_raw(whole[spec.HEADER_SIZE + 2:])
    frame = client.receive_frame(2.0)
    assert frame is not None and (frame.seq, frame.payload) == (42, b"paused")
