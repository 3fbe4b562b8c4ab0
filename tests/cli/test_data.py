"""`tinyface data` (tinyface/cli/data.py): `data fetch` names its argument NAME, as its help calls
it; `data stats` prints what stdout cannot encode (a file name that is not UTF-8, the histogram's
bars on an ASCII stdout) instead of an internal error in the middle of the results; on bad data it
names each bad file it skipped and carries on, and fails with the reason, in one line, on a folder
that is no dataset. Every dataset of the bad-data tests is built from copies of real LFW images."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import error_in_process as tinyface
from tinyface import errors
from tinyface.data.dataset import load_dataset
from tinyface.errors import DataError

pytestmark = pytest.mark.usefixtures("own_folder")


def test_data_fetch_names_its_argument_name(capsys):
    code, line = tinyface(capsys, "data", "fetch", "nosuch")
    # was: "Invalid value for '{lfw|fairface|utkface|pins|celeba}': ..."
    assert code == errors.EXIT_USAGE and "Invalid value for 'NAME': 'nosuch' is not one of 'lfw'" in line


# --- stdout that cannot encode what is printed: the results, not an internal error ------------------

def _stats_run(tmp_path, encoding: str) -> subprocess.CompletedProcess:
    """`tinyface data stats` on two people, one with a file whose name is not UTF-8, with stdout in
    ``encoding`` (strict errors, as in a UTF-8 desktop locale or PYTHONIOENCODING=ascii)."""
    from PIL import Image

    root = tmp_path / "photos"
    for person in ("alice", "bob"):
        (root / person).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (32, 32), 128).save(root / person / f"{i}.png")
    bad_name = os.fsdecode(b"bad\xff.jpg")  # a Latin-1 name, not UTF-8
    (root / "bob" / bad_name).write_text("not an image")
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "stats", "--data", str(root)],
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path, env=env)


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_data_stats_prints_a_name_that_is_not_utf8(tmp_path, encoding):
    # was: "internal error: UnicodeEncodeError: ... surrogates not allowed" (exit 70) after half the table
    proc = _stats_run(tmp_path, encoding)
    out, err = proc.stdout.decode(encoding), proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, err
    assert "internal error" not in err and "Traceback" not in err
    assert "identities: 2" in out and "skipped files: 1" in out
    assert "bad\\udcff.jpg: not a readable image" in out  # escaped, as stderr escapes it


def test_data_stats_histogram_on_an_ascii_stdout(tmp_path):
    # was: internal error 70 (the histogram's "█" bars), before the first bar was printed
    proc = _stats_run(tmp_path, "ascii")
    out = proc.stdout.decode("ascii")
    assert proc.returncode == 0
    assert "|      2 |      2 | " + "#" * 30 in out


# --- data stats on bad data: each bad file named, an unusable dataset one line ----------------------------

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
        pytest.skip("running as root with no way to drop CAP_DAC_OVERRIDE (setpriv missing): "
                    "cannot make a file unreadable")
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
