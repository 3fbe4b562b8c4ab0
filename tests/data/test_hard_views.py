"""distill.relit_views and tight_views: hard copies of the training photos, cut as a user's photo is cut."""

import numpy as np
import pytest

from tinyface import config
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import read_image
from tinyface.data.align import Alignment
from tinyface.data.faces import FaceSpec, hard_kinds, prepare_faces, prepare_hard_views
from tinyface.data.hard_photos import darken, hard_view


def _luma(rgb):
    return rgb.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])


def _photos(lfw_dir, n=3):
    return sorted((lfw_dir / "images" / "Abdullah_Gul").glob("*.jpg"))[:n]


def _relit(rgb, seed, kind):
    photo, alignment = hard_view(rgb, Alignment(np.zeros((5, 2), np.float32), True), seed, kind)
    assert not alignment.landmarks.any()  # light moves no landmark
    return photo


def test_relit_photo_is_seeded_dark_or_side_lit(lfw_dir):
    rgb = read_image(_photos(lfw_dir, 1)[0])
    dark = _relit(rgb, 7, "dark")
    assert np.array_equal(dark, _relit(rgb, 7, "dark"))  # the seed decides
    assert not np.array_equal(dark, _relit(rgb, 8, "dark"))
    assert np.percentile(_luma(dark), 99.5) < 0.5 * np.percentile(_luma(rgb), 99.5)
    side = _luma(_relit(rgb, 7, "side")) - _luma(rgb)
    w = rgb.shape[1]
    left, right = side[:, : w // 4].mean(), side[:, -w // 4:].mean()
    assert abs(left - right) > 60 and max(left, right) > -50  # one side lit, the other dark
    with pytest.raises(ValueError, match="kind must be one of"):
        hard_view(rgb, Alignment(np.zeros((5, 2), np.float32), True), 7, "blue")


def test_relit_crops_are_brightened_as_the_pipeline_brightens_and_cached(lfw_dir, tmp_path, monkeypatch):
    from tinyface.data import faces

    paths = _photos(lfw_dir)
    spec = FaceSpec(crop_size=48, channels=1, padding=0.1)
    cache = FaceCache(tmp_path / "cache")
    plain = prepare_faces(paths, spec, cache, workers=1)
    assert plain.ok.all()
    ok, crops = prepare_hard_views(paths, spec, cache, hard_kinds(2, 0), workers=1)
    assert ok.all() and crops.shape == (3, 2, 48, 48, 1)
    for i, path in enumerate(paths):
        raw_dark = darken(read_image(path), 1)  # a very dark photo: brightest pixels about 25/255
        assert np.percentile(_luma(raw_dark), 99.5) < 40
        # the relit crop of the very dark view was brightened back: its light is that of a usable face
        assert np.percentile(crops[i, 0], 99) > 120
        assert not np.array_equal(crops[i, 0], plain.crops[i]) and not np.array_equal(crops[i, 1], plain.crops[i])

    def never(job):
        raise AssertionError("hard crops were cut again instead of read from the cache")

    monkeypatch.setattr(faces, "_process_hard", never)
    ok2, crops2 = prepare_hard_views(paths, spec, cache, hard_kinds(2, 0), workers=1)
    assert ok2.all() and np.array_equal(crops2, crops)


def test_relit_rows_train_on_the_untouched_photos_targets():
    from types import SimpleNamespace

    from tinyface.train.distill import center_targets, training_set

    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(4, 128)).astype(np.float32)
    crops = rng.integers(0, 255, (4, 8, 8, 1), dtype=np.uint8)
    relit = rng.integers(0, 255, (4, 2, 8, 8, 1), dtype=np.uint8)
    train = SimpleNamespace(crops=crops, teacher=teacher, labels=list("aabc"))
    data = SimpleNamespace(train=train, train_views=None, train_mixes=None, extra=None,
                           train_hard=(relit, teacher, list("aabc")))
    center = np.zeros(128, np.float32)
    x, t, _, originals = training_set(data, center)
    assert x.shape == (12, 8, 8, 1) and list(originals) == [0, 1, 2, 3]
    assert np.array_equal(x[4:6], relit[0]) and np.array_equal(x[10:12], relit[3])
    want = center_targets(teacher, center)
    assert np.allclose(t[4], want[0]) and np.allclose(t[5], want[0]) and np.allclose(t[11], want[3])


def test_a_tight_view_cuts_the_same_face_from_a_tight_photo(lfw_dir, tmp_path):
    from tinyface.data.align import cut_chip

    paths = _photos(lfw_dir)
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


def test_relit_views_is_a_count_and_the_model_card_says_so():
    from tinyface.evaluation.report import _training_data_line

    ds = config.load(overrides={"distill": {"relit_views": 2, "teacher_views": 3}}).distill
    assert "2 relit copies of each training photo" in _training_data_line(ds)
    assert "relit" not in _training_data_line(config.load().distill)
    ds = config.load(overrides={"distill": {"tight_views": 1}}).distill
    assert "1 tight crop of each training photo" in _training_data_line(ds)
    with pytest.raises(config.ConfigError, match="distill.relit_views must be in"):
        config.load(overrides={"distill": {"relit_views": 9}})
    with pytest.raises(config.ConfigError, match="distill.tight_views must be in"):
        config.load(overrides={"distill": {"tight_views": -1}})
