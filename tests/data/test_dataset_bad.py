"""Bad data: single bad files are skipped, counted and named; an unusable dataset fails with
the reason. Every dataset here is built from copies of real LFW images."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from tinyface import errors
from tinyface.data.dataset import check_images, load_dataset, read_image
from tinyface.data.stats import dataset_stats
from tinyface.errors import DataError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """`data stats --align` must not write into the user's cache."""
    monkeypatch.setenv("TINYFACE_CACHE", str(tmp_path / "cache"))


def stats_cli(root, *extra, timeout=60, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "tinyface.cli.main", "data", "stats", "--data", str(root),
                           *extra], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_error_line(proc, code=4):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: ") and "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def spoiled(small_dataset, tmp_path):
    """The small dataset plus one of each kind of bad file; returns (root, {name: reason fragment})."""
    people = sorted(p for p in (small_dataset / "images").iterdir())
    real = sorted(people[0].glob("*.jpg"))[0]
    (people[0] / "corrupt[1].jpg").write_bytes(os.urandom(3000))
    (people[0] / "truncated.jpg").write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    (people[1] / "notes.txt").write_text("not a photo")
    (people[1] / "Thumbs.db").write_bytes(b"\0" * 64)
    Image.open(real).resize((20, 20)).save(people[2] / "tiny.jpg")
    (people[2] / "empty.png").write_bytes(b"")
    os.mkfifo(people[3] / "fifo.jpg")
    (people[3] / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (people[3] / "2019").mkdir()
    shutil.copy2(real, people[3] / "2019" / "nested.jpg")
    shutil.copy2(real, small_dataset / "images" / "loose.jpg")
    expected = {
        "corrupt[1].jpg": "not a readable image",  # brackets: not rich markup
        "truncated.jpg": "truncated",
        "notes.txt": "not an image file",
        "Thumbs.db": "not an image file",
        "tiny.jpg": "too small",
        "empty.png": "not a readable image",
        "fifo.jpg": "not a regular file",
        "dangling.jpg": "broken symbolic link",
        "2019": "a folder inside a person folder",
        "loose.jpg": "outside a person folder",
    }
    return small_dataset, expected


def test_empty_folder_fails_with_the_reason(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_dataset(tmp_path / "empty")
    assert "no images found" in one_error_line(stats_cli(tmp_path / "empty"))


def test_missing_folder_and_a_file_instead_of_a_folder(tmp_path):
    assert "no dataset at" in one_error_line(stats_cli(tmp_path / "absent"))
    (tmp_path / "file").write_text("x")
    assert "not a folder" in one_error_line(stats_cli(tmp_path / "file"))


def test_a_single_person_is_not_a_face_recognition_dataset(make_dataset):
    root = make_dataset({"Adrien_Brody": 3})
    with pytest.raises(DataError, match="1 person folder"):
        load_dataset(root)
    # data stats still shows the folder (the tool one runs to find out what is wrong), and says it
    proc = stats_cli(root)
    assert proc.returncode == 0, proc.stderr
    assert "identities: 1" in proc.stdout and "needs at least 2 people" in proc.stdout
    assert json.loads(stats_cli(root, "--json").stdout)["identities"] == 1


def test_loose_images_without_person_folders(small_dataset, tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    for p in list((small_dataset / "images").rglob("*.jpg"))[:3]:
        shutil.copy2(p, loose / p.name)
    line = one_error_line(stats_cli(loose))
    assert "no person folders" in line and "sub-folder named after the person" in line


def test_each_bad_file_is_skipped_counted_and_named(spoiled):
    root, expected = spoiled
    listed = load_dataset(root)
    checked = check_images(listed)
    assert len(checked.images) == 12 and len(checked.identities) == 4
    reasons = {s.path.name: s.reason for s in checked.skipped}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])
        assert str(root) not in reasons[name]  # the reason, not the path again
    with pytest.raises(DataError, match="too small"):
        read_image(next(s.path for s in checked.skipped if s.path.name == "tiny.jpg"))


def test_data_stats_reports_the_bad_files(spoiled):
    root, expected = spoiled
    proc = stats_cli(root, "--json", timeout=60)  # a FIFO that were opened would hang here
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["identities"], result["images"]) == (4, 12)
    skipped = {os.path.basename(s["path"]): s["reason"] for s in result["skipped"]}
    assert set(skipped) == set(expected)
    text = stats_cli(root)
    assert text.returncode == 0
    assert f"skipped files: {len(expected)}" in text.stdout
    for name in expected:
        assert name in text.stdout
    # without decoding, only what the names reveal is skipped
    quick = json.loads(stats_cli(root, "--json", "--no-check").stdout)
    assert quick["checked"] is False and quick["images"] == 12 + 4  # corrupt, truncated, tiny, empty not yet known
    assert len(quick["skipped"]) == len(expected) - 4


def test_a_person_with_only_bad_images_is_not_counted(small_dataset):
    person = sorted((small_dataset / "images").iterdir())[0]
    for p in person.glob("*.jpg"):
        p.write_bytes(b"garbage")
    stats = dataset_stats(load_dataset(small_dataset), check=True)
    assert stats.identities == 3 and stats.images == 9 and len(stats.skipped) == 3


def test_an_unusable_dataset_fails_with_the_reason(small_dataset):
    people = sorted((small_dataset / "images").iterdir())
    for person in people[1:]:
        for p in person.glob("*.jpg"):
            p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError, match="fewer than 2 people have a readable image .9 file.s. skipped"):
        check_images(load_dataset(small_dataset))


def _drop_file_permission_bypass():
    """A command prefix under which mode-000 files are really unreadable, or None.

    Tests run as root here, and root reads anything; dropping the two capabilities that let
    it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from a child process makes it an ordinary reader.
    """
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None
    prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all")
    import tempfile

    with tempfile.NamedTemporaryFile() as locked:
        os.chmod(locked.name, 0)
        probe = subprocess.run([*prefix, sys.executable, "-c", f"open({locked.name!r}).read()"], capture_output=True,
                               text=True)
    return prefix if "PermissionError" in probe.stderr else None


def test_unreadable_files_and_folders_are_skipped_and_named(small_dataset):
    prefix = _drop_file_permission_bypass()
    if prefix is None:
        pytest.skip("running as root with no way to drop CAP_DAC_OVERRIDE (setpriv missing): cannot make a file unreadable")
    people = sorted((small_dataset / "images").iterdir())
    locked_file = sorted(people[0].glob("*.jpg"))[0]
    locked_file.chmod(0)
    people[1].chmod(0)
    try:
        proc = stats_cli(small_dataset, "--json", prefix=prefix)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        skipped = {s["path"]: s["reason"] for s in result["skipped"]}
        assert skipped[str(locked_file)] == "permission denied"
        assert "permission denied" in skipped[str(people[1])]
        assert (result["identities"], result["images"]) == (3, 3 + 3 + 2)
        # with --align the unreadable file is skipped (and named) before any face work
        proc = stats_cli(small_dataset, "--json", "--align", prefix=prefix)
        aligned = json.loads(proc.stdout)
        assert "Permission denied" in {s["path"]: s["reason"] for s in aligned["skipped"]}[str(locked_file)]
        # and a whole dataset that cannot be listed fails with the reason
        (small_dataset / "images").chmod(0)
        line = one_error_line(stats_cli(small_dataset, prefix=prefix))
        assert "permission denied" in line
    finally:
        (small_dataset / "images").chmod(0o755)
        people[1].chmod(0o755)
        locked_file.chmod(0o644)


def test_a_dataset_path_that_is_a_file_says_what_to_pass(tmp_path):
    from tinyface.data.dataset import load_dataset

    (tmp_path / "afile").write_text("x")
    with pytest.raises(errors.DataError) as info:
        load_dataset(tmp_path / "afile")
    line = info.value.one_line()
    assert line.startswith(f"dataset path is not a folder: {tmp_path / 'afile'} (") and "--data DIR" in line
    assert "one sub-folder of photos per person" in line
