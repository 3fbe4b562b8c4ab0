"""`tinyface data stats`: identities, images, the images-per-person histogram, unreadable
files and faces not found."""

import json
import shutil
import subprocess
import sys

from tinyface.data.dataset import load_dataset
from tinyface.data.stats import dataset_stats

NO_FACE_IMAGE = "Abdoulaye_Wade/Abdoulaye_Wade_0003.jpg"  # the detector misses it; equalised, it is found


def stats_cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "stats", *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL)


def test_all_of_lfw_is_listed(lfw_dir):
    ds = load_dataset(lfw_dir)
    assert ds.is_lfw()
    stats = dataset_stats(ds, check=False)
    assert (stats.identities, stats.images) == (5749, 13233)
    assert sum(stats.images_per_person.values()) == 5749
    assert stats.images_per_person["1"] == 4069
    assert stats.people_with_at_least == {2: 1680, 5: 423, 10: 158}
    assert not stats.skipped and not stats.checked


def test_cli_on_lfw_without_decoding(lfw_dir):
    proc = stats_cli("--data", str(lfw_dir), "--no-check")
    assert proc.returncode == 0, proc.stderr
    assert "identities: 5,749   images: 13,233" in proc.stdout
    assert "images per person" in proc.stdout


def test_json_and_text_agree_on_a_checked_dataset(small_dataset):
    result = json.loads(stats_cli("--data", str(small_dataset), "--json").stdout)
    assert (result["identities"], result["images"], result["checked"]) == (4, 12, True)
    assert result["images_per_person"]["3-4"] == 4
    assert result["skipped"] == [] and result["aligned"] is False
    text = stats_cli("--data", str(small_dataset)).stdout
    assert "identities: 4   images: 12" in text and "skipped files: 0" in text


def test_align_counts_how_faces_were_found_and_names_images_with_no_face(small_dataset, lfw_dir, tmp_path):
    from PIL import Image

    from tinyface.data.dataset import read_image

    person = NO_FACE_IMAGE.split("/")[0]
    (small_dataset / "images" / person).mkdir()
    shutil.copy2(lfw_dir / "images" / NO_FACE_IMAGE, small_dataset / "images" / NO_FACE_IMAGE)  # found equalised
    no_face = small_dataset / "images" / person / "upside_down.png"  # no upright face at all
    Image.fromarray(read_image(lfw_dir / "images" / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg")[::-1]).save(no_face)
    env = {"TINYFACE_CACHE": str(tmp_path / "cache")}
    proc = stats_cli("--data", str(small_dataset), "--align", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["aligned"] is True and (result["identities"], result["images"]) == (5, 14)
    assert result["no_face"] == [str(no_face)]
    assert result["face_methods"] == {"detector": 12, "detector+equalised": 1, "fallback": 1}
    assert result["rescued"] == {str(small_dataset / "images" / NO_FACE_IMAGE): "detector+equalised"}
    assert (tmp_path / "cache" / "faces.sqlite").is_file()  # the alignment went to the cache named
    text = stats_cli("--data", str(small_dataset), "--align", env=env).stdout
    assert "faces found: 12 by detector, 1 by detector+equalised" in text
    assert f"{small_dataset / 'images' / NO_FACE_IMAGE}: detector+equalised" in text
    assert "no face found (centered-crop fallback): 1" in text and "upside_down.png" in text


def test_align_names_the_underexposed_faces_whose_chips_are_brightened(small_dataset, tmp_path):
    import importlib.util
    from pathlib import Path

    from PIL import Image

    from tinyface.data.dataset import read_image

    spec = importlib.util.spec_from_file_location(
        "hard_faces_for_stats", Path(__file__).resolve().parents[2] / "benchmarks" / "hard_faces.py")
    hard_faces = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hard_faces)
    photo = sorted((small_dataset / "images").glob("*/*.jpg"))[0]
    dark = photo.with_name(photo.stem + "_dark.png")
    Image.fromarray(hard_faces.darken(read_image(photo), seed=1)).save(dark)
    env = {"TINYFACE_CACHE": str(tmp_path / "cache")}
    proc = stats_cli("--data", str(small_dataset), "--align", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["normalised"] == [str(dark)]
    text = stats_cli("--data", str(small_dataset), "--align", env=env).stdout  # from the cache
    assert "underexposed faces (chips cut brightened): 1" in text and f"  {dark}" in text


def test_a_person_with_only_bad_images_is_not_counted(small_dataset):
    person = sorted((small_dataset / "images").iterdir())[0]
    for p in person.glob("*.jpg"):
        p.write_bytes(b"garbage")
    stats = dataset_stats(load_dataset(small_dataset), check=True)
    assert stats.identities == 3 and stats.images == 9 and len(stats.skipped) == 3
