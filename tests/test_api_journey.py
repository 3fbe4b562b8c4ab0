"""tinyface scripted from Python, as in a notebook: a released model, LFW photos aligned by the
package's own aligner, embeddings compared at the model's threshold, and the emulated board
driven with the protocol client (`with emulated_board(...) as port, Client(...) as client`); twice in
one process, leaving no thread or file open. And the
alignment's answers to arrays a script gets wrong: one DataError, not PIL's, dlib's or a crash."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.conftest import RELEASED, require_released_model
from tinyface.errors import DataError

PHOTOS = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
          "Aaron_Sorkin/Aaron_Sorkin_0001.jpg")


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_align_embed_compare_and_talk_to_the_emulated_board(lfw_dir):
    require_released_model()
    from tinyface.boards import load_board
    from tinyface.data.align import CROP_OUTSIDE, Aligner, cut_chip
    from tinyface.data.dataset import read_image
    from tinyface.data.faces import FaceSpec
    from tinyface.device.emulator import emulated_board
    from tinyface.model.bundle import load_bundle
    from tinyface.model.embedder import Embedder, quantize_input
    from tinyface.protocol.client import Client, open_serial

    bundle, board = load_bundle(RELEASED), load_board("esp32")
    spec = FaceSpec.for_model(bundle.meta)
    aligner = Aligner()
    crops = []
    for rel in PHOTOS:
        rgb = read_image(lfw_dir / "images" / rel)
        alignment = aligner.detect(rgb)
        assert alignment.usable, rel
        crops.append(cut_chip(rgb, alignment, spec.crop_size, spec.padding, spec.channels, outside=CROP_OUTSIDE))
    crops = np.stack(crops)
    emb = Embedder.for_bundle(bundle, "tflm").embed(crops)
    assert emb.shape == (3, bundle.meta.embedding_dim)
    assert emb[0] @ emb[1] >= bundle.meta.threshold > emb[0] @ emb[2]  # the same person, then another

    x = quantize_input(crops, bundle.meta)
    before_threads, before_fds = set(threading.enumerate()), _open_fds()
    for _ in range(2):  # a board for a with block, and a client that closes its port with it
        with emulated_board(bundle, board.name) as port, Client(open_serial(port, board.baud), timeout_s=5.0,
                                                                  retries=2, port=port) as client:
            info = client.info(bundle.model_hash)
            assert (info.board, info.input_shape, info.gallery_count) == ("esp32", (1, 64, 64, 1), 0)
            assert client.enroll("Aaron_Peirsol", x[0])["count"] == 1
            match = client.identify(x[1])
            assert match.name == "Aaron_Peirsol" and match.accepted
            assert not client.identify(x[2]).accepted
    assert set(threading.enumerate()) == before_threads and _open_fds() == before_fds


def test_an_emulated_board_from_python_runs_only_what_the_real_one_can(tmp_path):
    """emulated_board refuses as `tinyface emulate` does, before a thread or port is made: a model
    over the board's budget (the S3's model on the classic ESP32), an unknown board; and a block
    that fails stops its board."""
    require_released_model()
    from tinyface.device.emulator import emulated_board
    from tinyface.errors import BudgetError, ConfigError

    before_threads, before_fds = set(threading.enumerate()), _open_fds()
    with pytest.raises(BudgetError), emulated_board(RELEASED.parent / "esp32s3", "esp32"):
        pytest.fail("served a model the board cannot hold")
    with pytest.raises(ConfigError, match="unknown board 'esp64'"), emulated_board(RELEASED, "esp64"):
        pytest.fail("served on no board")
    with pytest.raises(RuntimeError, match="the script failed"), emulated_board(RELEASED, "esp32") as port:
        assert os.path.exists(port)
        raise RuntimeError("the script failed")  # the board stops with the block all the same
    assert set(threading.enumerate()) == before_threads and _open_fds() == before_fds


@pytest.mark.parametrize("photo, problem", [
    ("a path", "must be a numpy array"),
    (np.zeros((64, 64, 3), np.float32), "must be uint8 pixels"),
    (np.zeros((64, 64, 4), np.uint8), r"must be RGB \(H, W, 3\) or gray \(H, W\), got shape \(64, 64, 4\)"),
    (np.zeros((64, 64, 1), np.uint8), r"got shape \(64, 64, 1\)"),
    (np.zeros((0, 0, 3), np.uint8), r"got shape \(0, 0, 3\)"),
])
def test_what_is_no_photo_is_one_data_error(photo, problem):
    # was: AttributeError, PIL's TypeError "Cannot handle this data type", dlib's RuntimeError
    # "Unsupported image type", an IndexError; and an RGBA photo cut into a 4-channel "RGB" chip
    from tinyface.data.align import Aligner, Alignment, ChipAligner, cut_chip

    face = Alignment(np.float32([[40, 20], [34, 21], [20, 20], [26, 21], [30, 40]]), True)
    for call in (Aligner().detect, Aligner().find, ChipAligner(0.25).detect,
                 lambda p: cut_chip(p, face, 48, 0.25, 3)):
        with pytest.raises(DataError, match=problem):
            call(photo)


def test_photos_too_small_for_the_cnn_are_searched_without_it():
    # was: dlib's CNN on an image a few pixels across (a 2x2 array; a 40x10000 panorama, which
    # read_image accepts, shrunk to 400 px wide) raised a RuntimeError and could corrupt the heap,
    # aborting the process later ("munmap_chunk(): invalid pointer"). A fresh process: that one.
    code = ("import numpy as np; from tinyface.data.align import Aligner\n"
            "rng = np.random.default_rng(0)\n"
            "for shape in ((1, 1, 3), (2, 2, 3), (100, 3, 3), (40, 10000, 3), (2, 2, 3)):\n"
            "    print(Aligner().detect(rng.integers(0, 256, shape, dtype=np.uint8)).method)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["fallback"] * 5
