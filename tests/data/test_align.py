"""tinyface.data.align, on real LFW images: the landmarks and the chip cut from them, the centred crop
where no face is found, faces the detector misses (tight crops, dark and one-sided light; their hard
versions made by benchmarks/hard_faces.py) found by the rescue steps and aligned like the photo,
non-faces never taken for a face, huge photos searched in bounded memory, and the promise that faces
the detector already finds keep exactly their alignment; and a teacher view's perturbation
moves the landmarks alike at any chip size."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import (
    LFW_TRAIN_IMAGES as TRAIN_IMAGES,
    detector_truth as _truth,
    landmark_error as _error,
    load_benchmark,
    write_png,
)
from tinyface.data.align import (
    FALLBACK_CENTER_Y,
    FALLBACK_SIDE,
    METHODS,
    Aligner,
    Alignment,
    ChipAligner,
    Perturbation,
    chip_affine,
    chip_landmarks,
    cut_chip,
    dlib_models,
    implausible,
    map_points,
    underexposed,
)
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec, prepare_faces

hard_faces = load_benchmark("hard_faces")

# One of the 36 LFW images in which dlib's HOG detector finds no face (even upsampled); the
# equalised retry finds it (the rescue steps: "faces the detector misses" below).
NO_FACE_IMAGE = "Abdoulaye_Wade/Abdoulaye_Wade_0003.jpg"


def upside_down(lfw_dir, tmp_path):
    """A real photo with no upright face in it: an LFW image turned upside down."""
    from PIL import Image

    path = tmp_path / "upside_down.png"
    Image.fromarray(read_image(lfw_dir / "images" / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg")[::-1]).save(path)
    return path


def test_landmarks_land_inside_the_crop_where_a_face_has_them(small_images):
    size, padding = 48, 0.25
    aligner = Aligner(upsample=1)
    for path in small_images:
        rgb = read_image(path)
        alignment = aligner.detect(rgb)
        assert alignment.detected, path
        assert alignment.landmarks.shape == (5, 2)
        matrix = chip_affine(alignment, rgb.shape[:2], size, padding)
        pts = map_points(matrix, alignment.landmarks)
        assert ((pts >= 0) & (pts <= size - 1)).all(), (path, pts)
        # dlib's 5 points: two corners of each eye, then the nose below them, centered
        eyes_y = pts[:4, 1].mean()
        assert pts[4, 1] > eyes_y + 0.1 * size
        assert abs(pts[4, 0] - (size - 1) / 2) < 0.15 * size
        # a similarity transform: the eyes end up level after alignment
        left_eye, right_eye = pts[2:4].mean(axis=0), pts[0:2].mean(axis=0)
        assert abs(left_eye[1] - right_eye[1]) < 0.05 * size
        # the chip really is that transform of the photo
        assert cut_chip(rgb, alignment, size, padding, 3).shape == (size, size, 3)


def test_an_lfw_image_the_detector_misses_is_found_equalised(lfw_dir):
    rgb = read_image(lfw_dir / "images" / NO_FACE_IMAGE)
    assert not Aligner(upsample=1, rescue=False).detect(rgb).detected
    alignment = Aligner(upsample=1).detect(rgb)
    assert alignment.usable and alignment.method == "detector+equalised"


def test_no_face_found_uses_the_documented_centered_crop_and_is_counted(lfw_dir, small_images, tmp_path):
    src = upside_down(lfw_dir, tmp_path)
    rgb = read_image(src)
    h, w = rgb.shape[:2]
    assert not Aligner(upsample=1).detect(rgb).detected
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces([src, *small_images[:2]], FaceSpec(crop_size=48), cache, workers=1)
    assert faces.ok.all()
    assert list(faces.detected) == [False, True, True]
    assert faces.n_fallback == 1 and faces.methods == ["fallback", "detector", "detector"]
    # the fallback geometry: a square of FALLBACK_SIDE x the shorter side (at padding 0.25),
    # centered at (w/2, FALLBACK_CENTER_Y h), mapped onto the whole chip
    none = Alignment(np.zeros((5, 2), np.float32), False)
    matrix = chip_affine(none, (h, w), 48, 0.25)
    center = map_points(matrix, [[0.5 * w, FALLBACK_CENTER_Y * h]])[0]
    assert np.allclose(center, [23.5, 23.5])
    side = FALLBACK_SIDE * min(h, w)
    corners = map_points(matrix, [[0.5 * w - side / 2, FALLBACK_CENTER_Y * h - side / 2],
                                  [0.5 * w + side / 2, FALLBACK_CENTER_Y * h + side / 2]])
    assert np.allclose(corners, [[0, 0], [47, 47]], atol=1e-6)
    # and the crop is that region of the photo, not something else
    box = (0.5 * w - side / 2, FALLBACK_CENTER_Y * h - side / 2, 0.5 * w + side / 2, FALLBACK_CENTER_Y * h + side / 2)
    from PIL import Image

    expected = np.asarray(Image.fromarray(rgb).convert("L").crop(tuple(round(v) for v in box)).resize((48, 48)), float)
    got = faces.crops[0, :, :, 0].astype(float)
    assert np.corrcoef(expected.ravel(), got.ravel())[0, 1] > 0.9


def test_find_is_detect_before_its_refinement(lfw_dir):
    """On a photo the detector finds, detect keeps find's landmarks (the refinement is for rescued,
    underexposed faces)."""
    from tinyface.data.align import Aligner
    from tinyface.data.dataset import read_image

    rgb = read_image(lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    aligner = Aligner(1)
    found, detected = aligner.find(rgb), aligner.detect(rgb)
    assert found.method == detected.method == "detector"
    assert np.array_equal(found.landmarks, detected.landmarks)


def test_dlib_models_and_find_are_public_documented_and_loaded_once():
    """The names the benchmarks use (align.dlib_models, Aligner.find) are public and documented (no
    benchmark uses a private name of tinyface: tests/benchmarks/test_every_script.py)."""
    assert dlib_models.__doc__ and Aligner.find.__doc__
    detector, predictor = dlib_models()
    assert dlib_models() == (detector, predictor)  # loaded once per process


# --- faces the detector already finds keep exactly their alignment ------------------------------------

# Recorded with the aligner before the rescue steps existed (commit bd532a3): sha256 prefixes
# of the landmark array, the 48x48 gray crop and the teacher's 150x150 chip, and the cache
# digests. A change here invalidates caches and the released models' training data.
GOLDEN = {
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg": ("24fa5abb623dee3d", "773f022227e2037a", "1443f01e616b8d00"),
    "Adrien_Brody/Adrien_Brody_0002.jpg": ("c0548c87b2562152", "a741fcf954e69f17", "1016a33b81cf43bf"),
}
# FaceSpec(): landmark_digest, crop_digest. The crop digest changed once on purpose, when the
# students' crops began to show the photo's edge past it (align.CROP_OUTSIDE; it was
# "cbad7e4797e9902d"): every cached crop is cut again from its cached landmarks, once; a crop
# inside its photo, as both above, keeps its bytes.
GOLDEN_DIGESTS = ("a5c7a357ad3a0e1f", "9867d3364c0444e3")


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


def _train_people(lfw_dir) -> set[str]:
    return {name for name, _ in hard_faces.training_people(lfw_dir, min_images=1)}


def test_the_test_images_are_training_people(lfw_dir):
    from tinyface.data.lfw import read_people

    train = _train_people(lfw_dir)
    test = {name for name, _ in read_people(lfw_dir / "peopleDevTest.txt")}
    for rel in TRAIN_IMAGES:
        assert rel.split("/")[0] in train and rel.split("/")[0] not in test


def test_an_easy_image_keeps_exactly_its_alignment_crop_and_cache_keys(lfw_dir, tmp_path):
    spec = FaceSpec()
    assert (spec.landmark_digest(), spec.crop_digest()) == GOLDEN_DIGESTS
    for rel, (lmk_sha, crop_sha, chip_sha) in GOLDEN.items():
        rgb = read_image(lfw_dir / "images" / rel)
        alignment = Aligner(upsample=1).detect(rgb)
        assert alignment.method == "detector" and alignment.usable
        assert _sha(alignment.to_array()) == lmk_sha
        assert _sha(cut_chip(rgb, alignment, 48, 0.25, 1)) == crop_sha
        assert _sha(cut_chip(rgb, alignment, 150, 0.25, 3)) == chip_sha
    # and through prepare_faces and its cache: the same bytes
    paths = [lfw_dir / "images" / rel for rel in GOLDEN]
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces(paths, spec, cache, workers=1)
        assert faces.methods == ["detector", "detector"]
        assert [_sha(c) for c in faces.crops] == [g[1] for g in GOLDEN.values()]
        assert cache.count(f"lmk/{GOLDEN_DIGESTS[0]}/") == 2


# --- faces the detector misses: found the hard way and aligned like the photo; no face invented ---------

@pytest.mark.parametrize("rel", TRAIN_IMAGES)
def test_a_tight_crop_is_found_and_aligned_like_the_photo(lfw_dir, rel):
    rgb = read_image(lfw_dir / "images" / rel)
    box, truth = _truth(rgb)
    crop = hard_faces.tight_crop(rgb, box)
    x0, y0 = max(0, int((box[0] + box[2]) / 2 - 0.35 * (box[2] - box[0]))), \
        max(0, int((box[1] + box[3]) / 2 - 0.35 * (box[2] - box[0])))
    alignment = Aligner(upsample=1).detect(crop)
    assert alignment.usable and alignment.method != "fallback", rel
    assert _error(alignment.landmarks, truth - [x0, y0]) < 0.3, (rel, alignment.method)


@pytest.mark.parametrize("rel", TRAIN_IMAGES)
def test_a_dark_photo_is_found_equalised_and_aligned_like_the_photo(lfw_dir, rel):
    rgb = read_image(lfw_dir / "images" / rel)
    _, truth = _truth(rgb)
    dark = hard_faces.darken(rgb, seed=1)
    assert np.percentile(dark, 99) < 40  # really dark
    alignment = Aligner(upsample=1).detect(dark)
    assert alignment.usable, rel
    assert alignment.method in ("detector+equalised", "landmarks-whole-frame", "cnn")
    assert _error(alignment.landmarks, truth) < 0.3, (rel, alignment.method)


@pytest.mark.parametrize("rel", TRAIN_IMAGES[:3])
def test_a_photo_lit_from_one_side_is_found_and_aligned_like_the_photo(lfw_dir, rel):
    rgb = read_image(lfw_dir / "images" / rel)
    _, truth = _truth(rgb)
    alignment = Aligner(upsample=1).detect(hard_faces.side_light(rgb, seed=2))
    assert alignment.usable, rel
    assert _error(alignment.landmarks, truth) < 0.3, (rel, alignment.method)


def test_a_dark_face_is_cut_brightened_and_recorded_a_normal_one_is_not(lfw_dir):
    for rel in TRAIN_IMAGES[:3]:
        rgb = read_image(lfw_dir / "images" / rel)
        normal = Aligner(upsample=1).detect(rgb)
        assert not normal.normalised and not underexposed(rgb, normal)
        assert normal.to_array().size == 11  # the array the cache has always held
        dark = hard_faces.darken(rgb, seed=1)
        alignment = Aligner(upsample=1).detect(dark)
        assert alignment.normalised and underexposed(dark, alignment), rel
        again = Alignment.from_array(alignment.to_array())
        assert (again.normalised, again.method, again.detected) == (True, alignment.method, True)
        assert np.array_equal(again.landmarks, alignment.landmarks)
        chip = cut_chip(dark, alignment, 150, 0.25, 3).astype(np.float32)
        # the gain alone, without the smoothing: as bright, but noisier from pixel to pixel
        gain = 230 / np.percentile(np.asarray(dark, np.float32) @ [0.299, 0.587, 0.114], 99.5)
        gained = cut_chip(np.clip(np.rint(dark * gain), 0, 255).astype(np.uint8), alignment, 150, 0.25, 3)
        assert np.percentile(chip, 99) > 150 and np.percentile(dark, 99) < 30
        noise = [np.abs(np.diff(c.astype(np.float32), axis=1)).mean() / c.mean() for c in (chip, gained)]
        assert noise[0] < 0.8 * noise[1], (rel, noise)


def test_the_rescue_steps_matter_the_detector_alone_misses_these(lfw_dir):
    """Without this the tests above could pass on sets the detector handles anyway."""
    missed = 0
    for rel in TRAIN_IMAGES:
        rgb = read_image(lfw_dir / "images" / rel)
        box, _ = _truth(rgb)
        for hard in (hard_faces.tight_crop(rgb, box), hard_faces.darken(rgb, seed=1)):
            missed += not Aligner(upsample=1, rescue=False).detect(hard).detected
    assert missed >= len(TRAIN_IMAGES) // 2


def test_no_face_is_not_invented(lfw_dir):
    rng = np.random.default_rng(0)
    upside_down = np.ascontiguousarray(read_image(lfw_dir / "images" / TRAIN_IMAGES[0])[::-1])
    for name, rgb in (("flat", np.full((200, 200, 3), 128, np.uint8)),
                      ("noise", rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)),
                      ("black", np.zeros((120, 160, 3), np.uint8)),
                      ("upside-down face", upside_down)):
        alignment = Aligner(upsample=1).detect(rgb)
        assert alignment.method == "fallback" and not alignment.usable, name


def test_implausible_landmarks_are_named():
    face = np.array([[160, 100], [140, 100], [90, 100], [110, 100], [125, 140]], np.float32)  # dlib's order
    assert implausible(face, (250, 250)) is None
    assert "outside" in implausible(face + [200, 0], (250, 250))
    nose_up = face.copy()
    nose_up[4] = [125, 60]  # the nose above the eyes
    assert "nose" in implausible(nose_up, (250, 250))
    assert "apart" in implausible(face / 20, (250, 250))
    squashed = face.copy()
    squashed[0, 0] = 141  # one eye's corners almost on top of each other
    assert "eye" in implausible(squashed, (250, 250))
    rolled = face[:, ::-1].copy()  # eyes stacked vertically: rolled 90 degrees
    assert implausible(rolled, (250, 250)) is not None


def test_methods_round_trip_through_the_cache_array():
    pts = np.arange(10, dtype=np.float32).reshape(5, 2)
    for method in METHODS:
        a = Alignment(pts if method != "fallback" else np.zeros((5, 2), np.float32), method != "fallback", method)
        b = Alignment.from_array(a.to_array())
        assert (b.method, b.detected, b.usable) == (method, method != "fallback", method != "fallback")
    # the detector's code is the old "detected" 1.0: its cache entries are byte-identical
    assert Alignment(pts, True).to_array()[-1] == 1.0 and Alignment(pts, True).method == "detector"


def test_a_crop_past_the_photo_shows_black_or_the_photos_edge_and_one_inside_is_the_same(lfw_dir):
    from tinyface.data.align import chip_affine, reaches_outside

    rgb = read_image(lfw_dir / "images" / TRAIN_IMAGES[0])
    box, truth = _truth(rgb)
    inside = Alignment(truth, True, "detector")
    assert not reaches_outside(chip_affine(inside, rgb.shape[:2], 64, 0.1), 64, rgb.shape[:2])
    assert np.array_equal(cut_chip(rgb, inside, 64, 0.1, 1), cut_chip(rgb, inside, 64, 0.1, 1, outside="edge"))
    tight = hard_faces.tight_crop(rgb, box, 0.85)
    found = Aligner(upsample=1).detect(tight)
    assert reaches_outside(chip_affine(found, tight.shape[:2], 64, 0.1), 64, tight.shape[:2])
    black, edge = cut_chip(tight, found, 64, 0.1, 1), cut_chip(tight, found, 64, 0.1, 1, outside="edge")
    assert (black == 0).mean() > 0.05 and (edge == 0).mean() < 0.01  # the border repeated, not black
    with pytest.raises(ValueError, match="outside"):
        cut_chip(rgb, inside, 64, 0.1, 1, outside="mirror")


# --- huge photos ---------------------------------------------------------------------------------

def test_a_144_megapixel_photo_is_aligned_in_bounded_memory(lfw_dir, tmp_path):
    """Before: 6.9 GB (and 60 s). The photo is decoded reduced and searched shrunk."""
    from PIL import Image

    face = np.asarray(Image.open(lfw_dir / "images" / TRAIN_IMAGES[0]).convert("RGB").resize((2000, 2000)))
    width = height = 12000
    x0, y0 = 5000, 3000

    def rows(a, b):
        band = np.full((b - a, width, 3), 120, np.uint8)
        lo, hi = max(a, y0), min(b, y0 + 2000)
        if lo < hi:
            band[lo - a:hi - a, x0:x0 + 2000] = face[lo - y0:hi - y0]
        return band

    path = tmp_path / "photo.png"
    write_png(path, width, height, rows)
    code = f"""
import json, resource
from tinyface.data.align import Aligner
from tinyface.data.dataset import read_image
rgb = read_image({str(path)!r})
a = Aligner(upsample=1).detect(rgb)
print(json.dumps({{"shape": rgb.shape, "method": a.method,
                  "center": a.landmarks.mean(axis=0).tolist(),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["method"] == "detector"
    factor = width / out["shape"][1]  # decoded reduced: landmarks are in the decoded image's pixels
    assert factor > 1, out
    cx, cy = (np.array(out["center"]) * factor)
    assert x0 + 600 < cx < x0 + 1400 and y0 + 600 < cy < y0 + 1400  # on the pasted face
    assert out["rss_mb"] < 2500, out


# --- teacher views ------------------------------------------------------------------------------------
# one perturbation (a teacher view's) moves the landmarks the same way at any chip size (the views
# themselves: tests/data/test_faces.py).

def test_a_perturbation_moves_landmarks_the_same_way_at_any_chip_size(lfw_dir):
    rgb = read_image(lfw_dir / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    alignment = Aligner().detect(rgb)
    p = Perturbation(angle_deg=9.0, scale=1.05, shift_x=0.04, shift_y=-0.03, flip=True)
    normalised = []
    for size in (64, 150):
        m = (p.matrix(size) @ np.vstack([chip_affine(alignment, rgb.shape[:2], size, 0.25), [0, 0, 1]]))[:2]
        normalised.append(map_points(m, alignment.landmarks) / (size - 1))
    # equal up to the shift, which is a fraction of the side (size), not of size - 1: < 0.1%
    assert np.allclose(normalised[0], normalised[1], atol=1e-3)
    # the mirror puts the subject's right eye (landmarks 0-1) on the chip's left
    assert normalised[0][0, 0] < 0.5 < normalised[0][2, 0]


# --- extra faces that are already dlib face chips (FairFace): ChipAligner's template ----------------

def _first_extra_photo(lfw_dir):
    """A photo with a face the detector finds (tests/data/test_extra.py's first)."""
    return sorted((lfw_dir / "images" / "Aaron_Peirsol").glob("*.jpg"))[0]


def test_chip_template_recovers_the_alignment(lfw_dir):
    """A crop cut from a 224-pixel chip through the template equals the crop cut from the
    photo itself (the same face, the same pixels up to resampling)."""
    rgb = read_image(_first_extra_photo(lfw_dir))
    alignment = Aligner(1).detect(rgb)
    direct = cut_chip(rgb, alignment, 64, 0.1, 1).astype(float)
    chip = cut_chip(rgb, alignment, 224, 0.25, 3)
    via_chip = cut_chip(chip, ChipAligner(0.25).detect(chip), 64, 0.1, 1).astype(float)
    assert np.mean(np.abs(direct - via_chip)) < 4.0
    # the template's eyes and nose land where dlib's detector finds them in the chip
    found = Aligner(1).detect(chip)
    assert found.detected
    assert np.max(np.abs(found.landmarks - chip_landmarks(224, 224, 0.25))) < 8.0


def test_a_dark_dataset_chip_is_taken_as_it_is_where_a_dark_photo_is_brightened(lfw_dir):
    """Extra faces that are already chips (FairFace) keep their pixels: brightening them would
    change the released models' training data on a machine with a fresh cache."""
    rgb = read_image(_first_extra_photo(lfw_dir))
    alignment = Aligner(1).detect(rgb)
    dark = (cut_chip(rgb, alignment, 224, 0.25, 3) // 10).astype(np.uint8)  # brightest ~25/255
    as_chip = cut_chip(dark, ChipAligner(0.25).detect(dark), 64, 0.1, 1)
    assert as_chip.max() <= 30
    as_photo = cut_chip(dark, Alignment(chip_landmarks(224, 224, 0.25), True, "detector"), 64, 0.1, 1)
    assert as_photo.max() > 150
