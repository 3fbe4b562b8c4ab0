"""tinyface.data.hard_photos: hard_view, the hard copies of a training photo behind distill.relit_views
and distill.tight_views (very dark or lit from one side; a tight crop around the face), made so that
the pipeline cuts them as it cuts a user's photo."""

import numpy as np
import pytest

from tests.conftest import gul_photos, luma
from tinyface.data.align import Alignment
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec, hard_kinds, prepare_faces, prepare_hard_views
from tinyface.data.hard_photos import hard_view


def _relit(rgb, seed, kind):
    photo, alignment = hard_view(rgb, Alignment(np.zeros((5, 2), np.float32), True), seed, kind)
    assert not alignment.landmarks.any()  # light moves no landmark
    return photo


def test_relit_photo_is_seeded_dark_or_side_lit(lfw_dir):
    rgb = read_image(gul_photos(lfw_dir, 1)[0])
    dark = _relit(rgb, 7, "dark")
    assert np.array_equal(dark, _relit(rgb, 7, "dark"))  # the seed decides
    assert not np.array_equal(dark, _relit(rgb, 8, "dark"))
    assert np.percentile(luma(dark), 99.5) < 0.5 * np.percentile(luma(rgb), 99.5)
    side = luma(_relit(rgb, 7, "side")) - luma(rgb)
    w = rgb.shape[1]
    left, right = side[:, : w // 4].mean(), side[:, -w // 4:].mean()
    assert abs(left - right) > 60 and max(left, right) > -50  # one side lit, the other dark
    with pytest.raises(ValueError, match="kind must be one of"):
        hard_view(rgb, Alignment(np.zeros((5, 2), np.float32), True), 7, "blue")


def test_a_tight_view_cuts_the_same_face_from_a_tight_photo(lfw_dir, tmp_path):
    from tinyface.data.align import cut_chip

    paths = gul_photos(lfw_dir)
    spec = FaceSpec(crop_size=64, channels=1, padding=0.1)
    cache = FaceCache(tmp_path / "cache")
    plain = prepare_faces(paths, spec, cache, workers=1)
    ok, crops = prepare_hard_views(paths, spec, cache, hard_kinds(1, 2), workers=1)
    assert ok.all() and crops.shape == (3, 3, 64, 64, 1)
    rgb = read_image(paths[0])
    alignment = Alignment(np.float32([[150, 110], [135, 111], [100, 111], [115, 111], [125, 145]]), True)
    tight, moved = hard_view(rgb, alignment, 3, "tight")
    assert tight.shape[0] < 0.6 * rgb.shape[0] and tight.shape[0] == tight.shape[1]  # a square around the face
    assert np.allclose(moved.landmarks - alignment.landmarks, moved.landmarks[0] - alignment.landmarks[0])
    fallback = Alignment(np.zeros((5, 2), np.float32), False)  # no face found: nothing to crop around
    same, kept = hard_view(rgb, fallback, 3, "tight")
    assert same is rgb and kept is fallback
    # the same face, where the photo reaches: the crop's middle is the untouched crop's middle
    a = cut_chip(rgb, alignment, 64, 0.1, 1, outside="edge").astype(float)
    b = cut_chip(tight, moved, 64, 0.1, 1, outside="edge").astype(float)
    assert np.abs(a[24:40, 24:40] - b[24:40, 24:40]).mean() < 2.0
    for i in range(3):  # the build's tight views differ from the untouched crops, mostly at the border
        t = crops[i, 1:].astype(float)
        p = plain.crops[i].astype(float)
        assert (np.abs(t - p)[:, 24:40, 24:40].mean() < np.abs(t - p).mean()) and np.abs(t - p).mean() > 1
