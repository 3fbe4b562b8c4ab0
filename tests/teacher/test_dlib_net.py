"""The teacher in TensorFlow is dlib's network: read from dlib's own model file, it gives
dlib's embeddings to float round-off on real aligned LFW faces."""

from pathlib import Path

import numpy as np
import pytest

import tinyface.teacher as teacher
from tinyface.data.align import Aligner, cut_chip
from tinyface.data.dataset import read_image
from tinyface.teacher import dlib_net


@pytest.fixture(scope="module")
def chips(lfw_dir):
    paths = sorted((lfw_dir / "images" / "Abdullah_Gul").glob("*.jpg"))[:6]
    paths += sorted((lfw_dir / "images" / "Adrien_Brody").glob("*.jpg"))[:4]
    aligner = Aligner()
    out = []
    for p in paths:
        rgb = read_image(p)
        out.append(cut_chip(rgb, aligner.detect(rgb), 150, 0.25, 3))
    return out


def test_the_tensorflow_teacher_gives_dlibs_embeddings(chips):
    # 10 chips: one partial batch, so the zero padding of the batch is exercised too
    ours = teacher.embed_chips(chips)
    reference = teacher.embed_chips(chips, backend="dlib")
    assert ours.shape == reference.shape == (10, 128)
    assert np.abs(ours - reference).max() < 1e-4
    # and the embeddings still tell people apart: same person closer than different people
    sims = ours @ ours.T
    assert sims[:6, :6][np.triu_indices(6, 1)].mean() > sims[:6, 6:].mean() + 0.05


def test_raw_descriptors_are_dlibs_own_scale_and_normalise_to_the_embeddings(chips):
    for backend in ("tf", "dlib"):
        raw = teacher.embed_chips(chips[:3], backend, normalised=False)
        norms = np.linalg.norm(raw, axis=1)
        assert (norms > 1.2).all() and (norms < 1.7).all(), norms  # about 1.42 on LFW's training people
        assert np.abs(raw / norms[:, None] - teacher.embed_chips(chips[:3], backend)).max() < 1e-6


def test_an_embedding_does_not_depend_on_its_batch(chips):
    # batches are padded to one size, so the first chip of a batch gets the same bits;
    # elsewhere in a batch oneDNN may sum in another order (round-off only)
    alone = teacher.embed_chips(chips[4:5])
    many = teacher.embed_chips(chips * 7)  # 70 chips: two batches; chips[4] opens the second
    assert np.array_equal(alone[0], many[teacher.BATCH])
    assert np.abs(many[:10] - many[10:20]).max() < 1e-6


def test_a_file_that_is_not_dlibs_face_resnet_is_refused(tmp_path):
    import face_recognition_models as frm

    from tinyface.errors import ModelError

    bad = tmp_path / "model.dat"
    bad.write_bytes(b"\x01\x15input_rgb_image_sized" + bytes(64))
    with pytest.raises(dlib_net.DlibFormatError):
        dlib_net.read_weights(bad)
    # a cut-short copy of the real file: a user error with a fix, not a crash
    cut = tmp_path / "cut.dat"
    cut.write_bytes(Path(frm.face_recognition_model_location()).read_bytes()[:5_000_000])
    with pytest.raises(ModelError, match="ends early"):
        dlib_net.read_weights(cut)
