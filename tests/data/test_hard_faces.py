"""Faces the detector misses (tight crops, dark and one-sided light), non-faces, huge images,
and the promise that faces the detector already finds keep exactly their alignment."""

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinyface.data.align import (METHODS, Aligner, Alignment, _points, cut_chip, dlib_models, implausible,
                                 underexposed)
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import ImageError, read_image
from tinyface.data.faces import FaceSpec, prepare_faces

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("hard_faces", REPO / "benchmarks" / "hard_faces.py")
hard_faces = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hard_faces)

# LFW *training* people (peopleDevTrain.txt; none is in peopleDevTest.txt): one image each.
TRAIN_IMAGES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0001.jpg",
                "Adam_Sandler/Adam_Sandler_0001.jpg", "Al_Gore/Al_Gore_0001.jpg",
                "Alejandro_Toledo/Alejandro_Toledo_0001.jpg", "Alec_Baldwin/Alec_Baldwin_0001.jpg"]

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


def _truth(rgb):
    """The detector's box and landmarks on the untouched photo."""
    detector, predictor = dlib_models()
    rect = max(detector(rgb, 1), key=lambda r: r.area())
    return (rect.left(), rect.top(), rect.right(), rect.bottom()), _points(predictor(rgb, rect))


def _error(found: np.ndarray, truth: np.ndarray) -> float:
    """Largest landmark error, in eye distances."""
    d = np.linalg.norm(truth[:2].mean(axis=0) - truth[2:4].mean(axis=0))
    return float(np.abs(found - truth).max() / d)


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


def test_the_tight100_set_is_the_detector_box_cut_out_and_its_face_is_found(lfw_dir):
    assert hard_faces.SETS == ("untouched", "tight100", "tight85", "tight", "dim", "dark", "side")
    rgb = read_image(lfw_dir / "images" / TRAIN_IMAGES[2])
    box, truth = _truth(rgb)
    crop = hard_faces.tight_crop(rgb, box, hard_faces.TIGHT100_BOX)
    left, top = max(0, box[0]), max(0, box[1])
    right, bottom = min(rgb.shape[1], box[2]), min(rgb.shape[0], box[3])
    assert abs(crop.shape[0] - (bottom - top)) <= 1 and abs(crop.shape[1] - (right - left)) <= 1
    # the box's pixels, to within a pixel's rounding of its corner
    h, w = crop.shape[:2]
    at = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
          if np.array_equal(crop, rgb[top + dy:top + dy + h, left + dx:left + dx + w])]
    assert at
    alignment = Aligner(upsample=1).detect(crop)
    assert alignment.usable and _error(alignment.landmarks, truth - [left + at[0][0], top + at[0][1]]) < 0.3


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


def test_an_old_not_found_cache_entry_is_looked_at_again(lfw_dir, tmp_path):
    from tinyface.data.cache import content_hash

    rgb = read_image(lfw_dir / "images" / TRAIN_IMAGES[0])
    box, _ = _truth(rgb)
    path = tmp_path / "tight.png"
    from PIL import Image

    Image.fromarray(hard_faces.tight_crop(rgb, box)).save(path)
    spec = FaceSpec()
    h = content_hash(path.read_bytes())
    with FaceCache(tmp_path / "cache") as cache:
        # what the old aligner cached for a face it did not find: zeros and 0.0, a fallback crop
        cache.put_many({FaceCache.key("lmk", spec.landmark_digest(), h): np.zeros(11, np.float32),
                        FaceCache.key("crop", spec.crop_digest(), h): np.zeros((48, 48, 1), np.uint8)})
        faces = prepare_faces([path], spec, cache, workers=1)
        assert faces.computed == 1 and faces.usable.all() and faces.methods[0] != "fallback"
        assert faces.crops[0].std() > 10  # re-cut from the new landmarks, not the cached zeros
        again = prepare_faces([path], spec, cache, workers=1)
        assert again.computed == 0 and again.methods == faces.methods


def test_unusable_images_are_listed_by_name_with_the_reason(lfw_dir, tmp_path):
    from PIL import Image

    flat = tmp_path / "wall.png"
    Image.fromarray(np.full((100, 100, 3), 90, np.uint8)).save(flat)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    good = lfw_dir / "images" / TRAIN_IMAGES[0]
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces([good, flat, bad], FaceSpec(), cache, workers=1)
    assert list(faces.usable) == [True, False, False]
    reasons = dict(faces.unusable())
    assert reasons[flat] == "no face found" and "not a readable image" in reasons[bad]
    assert faces.method_counts() == {"detector": 1, "fallback": 1}


# --- huge images -------------------------------------------------------------------------

def write_png(path: Path, width: int, height: int, rows) -> None:
    """A PNG streamed through zlib band by band (``rows(y0, y1)`` -> uint8 (y1-y0, width, 3)),
    so a mostly-flat 400-megapixel image is a few MB on disk and never whole in memory."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for y0 in range(0, height, 256):
            band = rows(y0, min(height, y0 + 256))
            raw = np.concatenate([np.zeros((band.shape[0], 1), np.uint8), band.reshape(band.shape[0], -1)], axis=1)
            data = comp.compress(raw.tobytes())
            if data:
                f.write(chunk(b"IDAT", data))
        f.write(chunk(b"IDAT", comp.flush()) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "scan.png"
    write_png(path, 20000, 20000, lambda y0, y1: np.full((y1 - y0, 20000, 3), 200, np.uint8))
    assert path.stat().st_size < 10_000_000
    return path


def test_a_20000px_png_is_refused_from_its_header_in_one_line(bomb):
    with pytest.raises(ImageError) as exc:
        read_image(bomb)
    assert exc.value.reason == "image too large (20000x20000 px = 400 megapixels; the limit is 200)"


def test_data_stats_names_the_huge_image_and_carries_on(bomb, small_dataset, tmp_path):
    person = small_dataset / "images" / "Aaron_Peirsol"
    os.symlink(bomb, person / "scan.png")
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    for extra in ([], ["--align"]):
        proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "stats", "--data",
                               str(small_dataset), "--json", *extra], capture_output=True, text=True, timeout=300,
                              env=env, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["images"] == 12
        assert [s["reason"] for s in result["skipped"]] == [
            "image too large (20000x20000 px = 400 megapixels; the limit is 200)"]
        assert "Traceback" not in proc.stderr


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


def test_evaluate_and_flash_enroll_name_the_huge_image(bomb, lfw_dir, tiny_bundle, tmp_path):
    """`evaluate` skips it with its size; `flash --enroll` refuses it by name (exit 15)."""
    from tests.conftest import copy_people

    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    data = copy_people(lfw_dir, tmp_path / "data", {"Aaron_Peirsol": 4, "Alejandro_Toledo": 4})
    os.symlink(bomb, data / "images" / "Aaron_Peirsol" / "scan.png")
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "evaluate", "--model",
                           str(tiny_bundle.model_path.parent), "--data", str(data), "--enroll", "2", "--json"],
                          capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["images"] == 8 and [s["reason"] for s in result["skipped"]] == [
        "image too large (20000x20000 px = 400 megapixels; the limit is 200)"]
    people = tmp_path / "people"
    (people / "Aaron").mkdir(parents=True)
    for src in sorted((data / "images" / "Aaron_Peirsol").glob("*.jpg")):
        shutil.copy2(src, people / "Aaron" / src.name)
    os.symlink(bomb, people / "Aaron" / "scan.png")
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--dry-run",
                           "--model", str(tiny_bundle.model_path.parent), "--enroll", str(people), "--project-dir",
                           str(tmp_path / "project")], capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 15, proc.stderr[-2000:]
    assert "Aaron/scan.png (image too large (20000x20000 px = 400 megapixels; the limit is 200))" in proc.stderr


def test_a_crop_past_the_photo_shows_black_or_the_photos_edge_and_one_inside_is_the_same(lfw_dir):
    from tinyface.data.align import reaches_outside, chip_affine

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


def test_hard_faces_landmarks_prints_a_set_cut_three_ways(lfw_dir, tiny_bundle, tmp_path):
    """benchmarks/hard_faces_landmarks.py on sets hard_faces.py made of 4 training people: the
    untouched crops, the dark photos with their own landmarks and with the untouched ones."""
    out = tmp_path / "hard"
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"), TINYFACE_DATA=str(lfw_dir))
    made = subprocess.run([sys.executable, str(REPO / "benchmarks" / "hard_faces.py"), "--out", str(out), "--people",
                           "4", "--images", "2", "--workers", "1"], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr[-2000:]
    script = REPO / "benchmarks" / "hard_faces_landmarks.py"
    run = subprocess.run([sys.executable, str(script), "--out", str(out), "--model", str(tiny_bundle.model_path.parent),
                          "--set", "dark"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split() for line in run.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == ["untouched", "dark,", "dark,"] and "own" in run.stdout and "untouched landmarks" in run.stdout
    for r in rows:
        assert int(r[-3]) >= 4 and all(0.0 <= float(v.rstrip("%")) <= 100.0 for v in r[-2:])
    missing = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "none"), "--model",
                              str(tiny_bundle.model_path.parent)], capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "run benchmarks/hard_faces.py --out" in missing.stderr
