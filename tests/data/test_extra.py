"""Extra faces (tinyface/data/extra.py): face chips and photos without identities, labelled by
the real teacher, with the contamination filter, on small folders made from LFW training
images (CI has no FairFace)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_face_chips
from tinyface import config
from tinyface.data.cache import FaceCache
from tinyface.data.extra import list_images, load_extra_faces, named_after, nearest_distances, person_key, require_extra
from tinyface.data.faces import FaceSpec, prepare_faces
from tinyface.errors import DataError

# each image with a face the detector finds (which role the people have does not matter here:
# the tests name the "test" embeddings themselves)
PEOPLE = ("Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody")


def _photos(lfw_dir, n_per_person=2):
    return [p for name in PEOPLE for p in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:n_per_person]]


def _settings(tmp_path, **extra):
    s = config.load(overrides={"data": {"cache_dir": str(tmp_path / "cache"), "crop_size": 48, "padding": 0.1,
                                        "workers": 1}})
    s.extra = dataclasses.replace(s.extra, **extra)
    return s.validate()


def test_require_extra_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYFACE_DATASETS", str(tmp_path))
    s = _settings(tmp_path, dirs=["fairface"])
    with pytest.raises(DataError, match="tinyface data fetch fairface"):
        require_extra(s.extra)
    (tmp_path / "fairface").mkdir()
    with pytest.raises(DataError, match=r"holds no images \(\.jpg/.*tinyface data fetch fairface"):
        require_extra(s.extra)
    s = _settings(tmp_path, dirs=[str(tmp_path / "mine")])
    with pytest.raises(DataError, match="extra.dirs"):
        require_extra(s.extra)


def test_extra_folders_take_every_image_type_a_dataset_takes(tmp_path):
    """Extra faces and datasets read the same image types (one list, dataset.IMAGE_EXTENSIONS)."""
    for name in ("a.JPG", "b.jpeg", "c.png", "d.pgm", "sub/e.bmp", "notes.txt", "f.gif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.jpeg", "c.png", "d.pgm", "e.bmp"]


def test_name_filter_matches_people_folders():
    assert person_key("pins_Tom Cruise") == "pins_tom_cruise" and person_key("Tom_Cruise") == "tom_cruise"
    paths = [Path("pins/pins_Tom Cruise/a.jpg"), Path("pins/pins_tom cruise/b.jpg"), Path("x/Tom_Cruise/c.jpg"),
             Path("pins/pins_Tom Cruiser/d.jpg"), Path("pins/pins_Atom Cruise/e.jpg"), Path("fairface/train/1.jpg")]
    assert named_after(paths, {"Tom_Cruise", "Val"}).tolist() == [True, True, True, False, False, False]
    assert not named_after(paths, ()).any()


def test_nearest_distances():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    r = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
    np.testing.assert_allclose(nearest_distances(q, r, chunk=1), [0.0, np.sqrt(0.36 + 0.04)], atol=1e-6)
    assert np.isinf(nearest_distances(q, r[:0])).all()


def test_chips_are_labelled_and_the_filter_drops_a_test_face(lfw_dir, tmp_path):
    """Six chips: the teacher labels each; the one whose photo is declared a test image (and any
    other face within extra.max_test_distance of it, such as the same person's other photo) is dropped by the
    contamination filter, and counted."""
    photos = _photos(lfw_dir)
    write_face_chips(photos, tmp_path / "chips")
    s = _settings(tmp_path, dirs=[str(tmp_path / "chips")], kind="chips")
    spec = FaceSpec.from_settings(s, teacher=True)
    with FaceCache(s.data.cache_path()) as cache:
        test = prepare_faces(photos[:1], spec, cache, workers=1)  # "a test person's photo"
        got = load_extra_faces(s, spec, cache, test.teacher)
        kept = got.counts["used"]
        assert got.counts["found"] == 6 and got.counts["too_close_to_test"] == 6 - kept >= 1
        assert got.counts["no_face"] == 0 and got.counts["unreadable"] == 0
        assert "0.jpg" not in {p.name for p in got.paths}  # the test photo's own chip
        assert (nearest_distances(got.teacher, test.teacher) >= s.extra.max_test_distance).all()
        assert got.crops.shape == (kept, 48, 48, 1) and got.teacher.shape == (kept, 128)
        # the teacher on a chip of a photo agrees with the teacher on the photo
        photo_emb = prepare_faces(photos, spec, cache, workers=1).teacher
        for path, emb in zip(got.paths, got.teacher, strict=True):  # chip i.jpg is photos[i]
            assert float(emb @ photo_emb[int(path.stem)]) > 0.95
        # nothing close to the test images: all six are used; views and mixes come on top
        s2 = _settings(tmp_path, dirs=[str(tmp_path / "chips")], views=1, mixes=1)
        more = load_extra_faces(s2, spec, cache, np.zeros((0, 128), np.float32))
        assert more.counts["used"] == 6 and more.views[0].shape == (6, 1, 48, 48, 1)
        assert more.mixes[0].shape == (6, 48, 48, 1) and more.counts["mixes"] == 6
        # filter_validation: the same distance against validation images; a face near both counts once, as test
        val = prepare_faces(photos[5:6], spec, cache, workers=1)
        both = load_extra_faces(s, spec, cache, test.teacher,
                                validation_teacher=np.concatenate([val.teacher, test.teacher]))
        assert both.counts["too_close_to_test"] == got.counts["too_close_to_test"]
        assert both.counts["too_close_to_validation"] >= 1 and "5.jpg" not in {p.name for p in both.paths}
        assert both.counts["used"] == kept - both.counts["too_close_to_validation"]
        assert (nearest_distances(both.teacher, val.teacher) >= s.extra.max_test_distance).all()
        assert "too_close_to_validation" not in got.counts
        # a limit takes a seeded sample
        few = load_extra_faces(_settings(tmp_path, dirs=[str(tmp_path / "chips")], limit=4), spec, cache,
                               np.zeros((0, 128), np.float32))
        assert few.counts == {**few.counts, "found": 6, "sampled": 4, "used": 4}


def test_photos_are_aligned_and_faceless_ones_counted(lfw_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in _photos(lfw_dir, 1):
        (folder / p.name).write_bytes(p.read_bytes())
    noise = np.random.default_rng(0).integers(0, 256, (120, 120, 3), dtype=np.uint8)
    Image.fromarray(np.full_like(noise, 128)).save(folder / "blank.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    s = _settings(tmp_path, dirs=[str(folder)], kind="photos")
    spec = FaceSpec.from_settings(s, teacher=True)
    with FaceCache(s.data.cache_path()) as cache:
        got = load_extra_faces(s, spec, cache, np.zeros((0, 128), np.float32))
    assert got.counts["found"] == 5 and got.counts["used"] == 3
    assert got.counts["no_face"] == 1 and got.counts["unreadable"] == 1


def test_chips_and_photos_together_and_held_out_names_dropped(lfw_dir, tmp_path):
    """A folder of chips next to a folder of people's photos (as Pins: one folder per person):
    each is cut by its own kind, and a person named like a held-out LFW person is dropped by name
    even when no test embedding is near."""
    photos = _photos(lfw_dir)
    write_face_chips(photos[:2], tmp_path / "chips")
    for p in photos[2:]:
        person = tmp_path / "people" / f"pins_{p.parent.name.replace('_', ' ')}"
        person.mkdir(parents=True, exist_ok=True)
        (person / p.name).write_bytes(p.read_bytes())
    s = _settings(tmp_path, dirs=[str(tmp_path / "chips"), str(tmp_path / "people")], kind=["chips", "photos"])
    spec = FaceSpec.from_settings(s, teacher=True)
    none = np.zeros((0, 128), np.float32)
    with FaceCache(s.data.cache_path()) as cache:
        everyone = load_extra_faces(s, spec, cache, none)
        assert everyone.counts == {**everyone.counts, "found": 6, "used": 6, "no_face": 0,
                                   "named_after_held_out_person": 0, "kind": "chips/photos"}
        # the photos' crops are the photos' own (aligned like LFW's), the chips' agree with them
        direct = prepare_faces(photos, spec, cache, workers=1)
        assert np.array_equal(everyone.crops[2:], direct.crops[2:])
        assert (np.sum(everyone.teacher[:2] * direct.teacher[:2], axis=1) > 0.95).all()
        held_out = load_extra_faces(s, spec, cache, none, held_out_people={PEOPLE[2], "Someone_Else"})
        assert held_out.counts["named_after_held_out_person"] == 2 and held_out.counts["used"] == 4
        assert not any(PEOPLE[2] in str(p) or "Adrien" in str(p) for p in held_out.paths)
