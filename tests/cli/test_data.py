"""`tinyface data` (tinyface/cli/data.py). `data fetch` names its argument NAME, as its help calls
it. `data stats`: identities, images, the images-per-person histogram, unreadable files and faces
not found; it prints what stdout cannot encode (a file name that is not UTF-8, the histogram's bars
on an ASCII stdout) instead of an internal error in the middle of the results; on bad data it names
each bad file it skipped and carries on, and fails with the reason, in one line, on a folder that is
no dataset. `data cache`: what tinyface keeps between runs, by part and kind, and clearing it (only
what tinyface wrote; never without --yes when nobody can be asked). Every dataset of the bad-data
tests is built from copies of real LFW images. (tinyface.data.stats itself: tests/data/test_stats.py.)"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import (
    RELEASED,
    assert_one_error_line,
    drop_file_permission_bypass,
    error_in_process as tinyface,
    load_benchmark,
    run_cli,
)
from tinyface import errors
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import load_dataset
from tinyface.errors import DataError

pytestmark = pytest.mark.usefixtures("own_folder")

NO_FACE_IMAGE = "Abdoulaye_Wade/Abdoulaye_Wade_0003.jpg"  # the detector misses it; equalised, it is found


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """`data stats --align` must not write into the user's cache (the `data cache` tests name their own)."""
    monkeypatch.setenv("TINYFACE_CACHE", str(tmp_path / "cache"))


def stats_cli(root, *extra, timeout=120, prefix=(), env=None):
    """`tinyface data stats --data ROOT EXTRA` in a fresh interpreter (conftest's run_cli)."""
    return run_cli("data", "stats", "--data", str(root), *extra, timeout=timeout, prefix=prefix, env=env)


# --- data fetch ------------------------------------------------------------------------------------------

def test_data_fetch_names_its_argument_name(capsys):
    code, line = tinyface(capsys, "data", "fetch", "nosuch")
    # was: "Invalid value for '{lfw|fairface|utkface|pins|celeba}': ..."
    assert code == errors.EXIT_USAGE and "Invalid value for 'NAME': 'nosuch' is not one of 'lfw'" in line


def test_a_dest_that_cannot_be_read_or_written_is_refused_before_downloading(tmp_path):
    """--dest is an output folder: one that cannot be read (what it holds cannot be verified) or that
    would be written and cannot be is one line, exit 14, before anything is downloaded (the URL
    below has nothing: a download would be exit 5). A verified copy that cannot be written is fine."""
    from tests.conftest import one_photo_site

    site, manifest = one_photo_site(tmp_path)

    def fetch(dest, *extra, url=None, prefix=()):
        return run_cli("data", "fetch", "lfw", "--dest", str(dest), "--url", url or site.as_uri() + "/",
                       "--manifest", str(manifest), *extra, prefix=prefix)

    verified = tmp_path / "verified"
    assert fetch(verified).returncode == 0
    prefix = drop_file_permission_bypass()
    nowhere = (tmp_path / "nowhere").as_uri() + "/"
    locked, empty, closed = tmp_path / "locked", tmp_path / "empty", tmp_path / "closed"
    for folder in (locked, empty, closed / "dest"):
        folder.mkdir(parents=True)
    refused = [  # (dest, extra options, what the line says)
        (locked, [], f"cannot read --dest {locked}: permission denied"),  # was click's "is not readable", exit 2
        (locked, ["--force"], f"cannot write into --dest {locked}: permission denied"),
        (empty, [], f"cannot write into --dest {empty}: permission denied"),  # was: downloaded, then refused
        (verified, ["--force"], f"cannot write into --dest {verified}: permission denied"),
        (closed / "dest", [], f"cannot read --dest {closed / 'dest'}: permission denied"),  # was exit 70
        (verified, [], f"cannot read --dest {verified}: permission denied ({verified / 'pairsDevTest.txt'})"),
    ]
    locked.chmod(0)
    empty.chmod(0o555)
    verified.chmod(0o555)
    closed.chmod(0)
    try:
        # a verified copy that cannot be written: nothing to write, nothing refused
        kept = fetch(verified, url=nowhere, prefix=prefix)
        assert kept.returncode == 0 and "already in" in kept.stderr, kept.stderr
        (verified / "pairsDevTest.txt").chmod(0)  # the last case: a file whose checksum cannot be read (was exit 70)
        for dest, extra, words in refused:
            line = assert_one_error_line(fetch(dest, *extra, url=nowhere, prefix=prefix),
                                         errors.OutputError.exit_code, words)
            assert "Errno" not in line
    finally:
        for folder in (locked, empty, verified, closed):
            folder.chmod(0o755)
        (verified / "pairsDevTest.txt").chmod(0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["closed", "empty", "locked", "manifest.json", "site",
                                                          "verified"]  # no work folder left behind


# --- data stats: the counts, the histogram and, with --align, how each face was found --------------------

def test_data_stats_on_lfw_without_decoding(lfw_dir):
    proc = stats_cli(lfw_dir, "--no-check")
    assert proc.returncode == 0, proc.stderr
    assert "identities: 5,749   images: 13,233" in proc.stdout
    assert "images per person" in proc.stdout


def test_json_and_text_agree_on_a_checked_dataset(small_dataset):
    result = json.loads(stats_cli(small_dataset, "--json").stdout)
    assert (result["identities"], result["images"], result["checked"]) == (4, 12, True)
    assert result["images_per_person"]["3-4"] == 4
    assert result["skipped"] == [] and result["aligned"] is False
    text = stats_cli(small_dataset).stdout
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
    proc = stats_cli(small_dataset, "--align", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["aligned"] is True and (result["identities"], result["images"]) == (5, 14)
    assert result["no_face"] == [str(no_face)]
    assert result["face_methods"] == {"detector": 12, "detector+equalised": 1, "fallback": 1}
    assert result["rescued"] == {str(small_dataset / "images" / NO_FACE_IMAGE): "detector+equalised"}
    assert (tmp_path / "cache" / "faces.sqlite").is_file()  # the alignment went to the cache named
    text = stats_cli(small_dataset, "--align", env=env).stdout
    assert "faces found: 12 by detector, 1 by detector+equalised" in text
    assert f"{small_dataset / 'images' / NO_FACE_IMAGE}: detector+equalised" in text
    assert "no face found (centered-crop fallback): 1" in text and "upside_down.png" in text


def test_align_names_the_underexposed_faces_whose_chips_are_brightened(small_dataset, tmp_path):
    from PIL import Image

    from tinyface.data.dataset import read_image

    hard_faces = load_benchmark("hard_faces")
    photo = sorted((small_dataset / "images").glob("*/*.jpg"))[0]
    dark = photo.with_name(photo.stem + "_dark.png")
    Image.fromarray(hard_faces.darken(read_image(photo), seed=1)).save(dark)
    env = {"TINYFACE_CACHE": str(tmp_path / "cache")}
    proc = stats_cli(small_dataset, "--align", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["normalised"] == [str(dark)]
    text = stats_cli(small_dataset, "--align", env=env).stdout  # from the cache
    assert "underexposed faces (chips cut brightened): 1" in text and f"  {dark}" in text


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

def test_empty_folder_fails_with_the_reason(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_dataset(tmp_path / "empty")
    assert "no images found" in assert_one_error_line(stats_cli(tmp_path / "empty"), 4)


def test_missing_folder_and_a_file_instead_of_a_folder(tmp_path):
    assert "no dataset at" in assert_one_error_line(stats_cli(tmp_path / "absent"), 4)
    (tmp_path / "file").write_text("x")
    assert "not a folder" in assert_one_error_line(stats_cli(tmp_path / "file"), 4)


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
    line = assert_one_error_line(stats_cli(loose), 4)
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


def test_unreadable_files_and_folders_are_skipped_and_named(small_dataset):
    prefix = drop_file_permission_bypass()
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
        line = assert_one_error_line(stats_cli(small_dataset, prefix=prefix), 4)
        assert "permission denied" in line
    finally:
        (small_dataset / "images").chmod(0o755)
        people[1].chmod(0o755)
        locked_file.chmod(0o644)


def test_an_unreadable_dataset_folder_is_a_data_error_as_a_missing_one_is(small_dataset, tmp_path):
    # was: "Invalid value for '--data': Path 'ds' is not readable.", exit 2 (click's check), where a
    # missing folder is exit 4
    prefix = drop_file_permission_bypass()
    assert_one_error_line(stats_cli(tmp_path / "nosuch"), errors.DataError.exit_code, "no dataset at")
    small_dataset.chmod(0)
    try:
        for extra in ([], ["--align", "--no-check"]):
            assert_one_error_line(stats_cli(small_dataset, *extra, prefix=prefix), errors.DataError.exit_code,
                                  f"cannot read dataset folder (permission denied): {small_dataset}")
        # evaluate's --data too (was click's exit 2 there as well)
        evaluate = run_cli("evaluate", "--model", str(RELEASED), "--data", str(small_dataset), prefix=prefix,
                           cwd=tmp_path)
        assert_one_error_line(evaluate, errors.DataError.exit_code, str(small_dataset))
        # and bench's, whose pairsDevTest.txt is looked for before the port is opened (was exit 70)
        bench = run_cli("bench", "--port", "/dev/ttyNONE", "--data", str(small_dataset), prefix=prefix, cwd=tmp_path)
        assert_one_error_line(bench, errors.DataError.exit_code, f"cannot read dataset folder (permission denied): "
                                                                 f"{small_dataset}")
    finally:
        small_dataset.chmod(0o755)


def test_data_stats_names_the_huge_image_and_carries_on(bomb, small_dataset, tmp_path):
    person = small_dataset / "images" / "Aaron_Peirsol"
    os.symlink(bomb, person / "scan.png")
    env = {"TINYFACE_CACHE": str(tmp_path / "cache")}
    for extra in ([], ["--align"]):
        proc = stats_cli(small_dataset, "--json", *extra, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["images"] == 12
        assert [s["reason"] for s in result["skipped"]] == [
            "image too large (20000x20000 px = 400 megapixels; the limit is 200)"]
        assert "Traceback" not in proc.stderr


# --- data cache: what tinyface keeps between runs, and clearing it --------------------------------------

def cache_cli(env, *args):
    return run_cli("data", "cache", *args, env=env)


@pytest.fixture
def caches(tmp_path):
    faces, native, isa = tmp_path / "faces", tmp_path / "native", tmp_path / "isa"
    with FaceCache(faces) as cache:
        cache.put_many({FaceCache.key("lmk", "d", f"h{i}"): np.zeros(11, np.float32) for i in range(3)})
        cache.put_many({FaceCache.key("teacher", "d", f"h{i}"): np.ones(128, np.float32) for i in range(3)})
        cache.put_many({FaceCache.key("mteacher", "d", "h0-h1-0.500"): np.ones(128, np.float32)})
    (faces / "assistant").mkdir()
    np.savez(faces / "assistant" / "k.npz", a=np.zeros((10, 128), np.float32))
    for root in (native, isa):
        for rel in ("bin/abc/program", "tflm-0123/obj.o", "projects/esp32-1/src/main.cc"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"x" * 100)
        (root / "mine.txt").write_text("not tinyface's")  # a shared folder: never deleted
    env = {"TINYFACE_CACHE": str(faces), "TINYFACE_NATIVE_CACHE": str(native), "TINYFACE_ISA_CACHE": str(isa)}
    return env, faces, native, isa


def parts(proc):
    assert proc.returncode == 0, proc.stderr
    return {row["part"]: row for row in json.loads(proc.stdout)["parts"]}


def test_shows_every_part_and_the_face_cache_by_kind(caches):
    env, faces, native, _ = caches
    shown = parts(cache_cli(env, "--json"))
    assert list(shown) == ["faces", "assistant", "native", "isa"]
    assert {k: e["entries"] for k, e in shown["faces"]["entries"].items()} == {"lmk": 3, "teacher": 3, "mteacher": 1}
    assert shown["assistant"]["files"] == 1 and shown["assistant"]["bytes"] > 10 * 128 * 4
    assert shown["native"]["files"] == 3 and shown["native"]["bytes"] == 300  # mine.txt is not counted
    # the face cache is one file, its SQLite -wal and -shm counted in its bytes (it read 1 to 3 files)
    (faces / "faces.sqlite-wal").write_bytes(b"w" * 1000)
    (faces / "faces.sqlite-shm").write_bytes(b"s" * 100)
    again = parts(cache_cli(env, "--json"))["faces"]
    assert again["files"] == 1 and again["bytes"] == shown["faces"]["bytes"] + 1100
    text = cache_cli(env)
    assert text.returncode == 0 and "teacher" in text.stdout and str(native) in text.stdout


def test_looking_creates_nothing(tmp_path):
    env = {"TINYFACE_CACHE": str(tmp_path / "none"), "TINYFACE_NATIVE_CACHE": str(tmp_path / "n2"),
           "TINYFACE_ISA_CACHE": str(tmp_path / "n3")}
    shown = parts(cache_cli(env, "--json"))
    assert all(row["bytes"] == 0 for row in shown.values()) and not list(tmp_path.iterdir())


def test_clearing_asks_for_yes_without_a_terminal_and_deletes_nothing(caches):
    env, faces, native, isa = caches
    proc = cache_cli(env, "--clear", "all")
    assert proc.returncode == 2 and "--yes" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (faces / "faces.sqlite").is_file() and (native / "bin").is_dir()
    assert (faces / "assistant" / "k.npz").is_file()


def test_clearing_one_part_deletes_only_what_tinyface_wrote(caches):
    env, faces, native, isa = caches
    proc = cache_cli(env, "--clear", "native", "--clear", "assistant", "--yes", "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["freed_bytes"]["native"] == 300
    assert sorted(p.name for p in native.iterdir()) == ["mine.txt"]
    assert not list((faces / "assistant").glob("*.npz"))
    assert (isa / "bin").is_dir() and (faces / "faces.sqlite").is_file()  # the other parts are kept
    proc = cache_cli(env, "--clear", "faces", "--yes")
    assert proc.returncode == 0 and "cleared faces" in proc.stderr
    assert not (faces / "faces.sqlite").exists()
    with FaceCache(faces) as cache:  # the next run starts a new one
        assert cache.count() == 0


def test_a_damaged_face_cache_is_shown_and_can_be_cleared(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "faces.sqlite").write_bytes(b"not a database" * 100)
    env = {"TINYFACE_CACHE": str(faces), "TINYFACE_NATIVE_CACHE": str(tmp_path / "n"),
           "TINYFACE_ISA_CACHE": str(tmp_path / "i")}
    shown = cache_cli(env)
    assert shown.returncode == 0 and "cannot read the face cache" in shown.stdout and "--clear faces" in shown.stdout
    as_json = parts(cache_cli(env, "--json"))
    assert as_json["faces"]["entries"] is None and "cannot read the face cache" in as_json["faces"]["damaged"]
    assert as_json["native"]["entries"] is None and as_json["native"]["damaged"] is None
    cleared = cache_cli(env, "--clear", "faces", "--yes")
    assert cleared.returncode == 0 and not (faces / "faces.sqlite").exists()


def test_set_names_the_face_cache_as_tinyface_toml_would(caches, tmp_path):
    env, faces, _, _ = caches
    other = tmp_path / "other"
    listed = parts(cache_cli(env, "--json", "--set", f"data.cache_dir={json.dumps(str(other))}"))
    assert listed["faces"]["path"] == str(other) and listed["faces"]["bytes"] == 0  # not $TINYFACE_CACHE's
    bad = cache_cli(env, "--set", "data.nope=1")
    assert bad.returncode == 3 and "unknown key 'data.nope'" in bad.stderr


def test_clearing_a_cache_that_cannot_be_written_deletes_nothing_and_says_where(caches):
    # was: "internal error: PermissionError: [Errno 13] Permission denied: '.../faces.sqlite'", exit 70
    env, faces, native, isa = caches
    prefix = drop_file_permission_bypass()

    def files():  # but sqlite's -wal and -shm, which a look at the cache (its entries) may leave
        return sorted(str(p) for root in (faces, native, isa) for p in root.rglob("*")
                      if not p.name.endswith(("-wal", "-shm")))

    before = files()
    for closed, named in ((faces, faces / "faces.sqlite"), (native / "bin" / "abc", native / "bin")):
        closed.chmod(0o555)
        try:
            # `all` would delete native and isa before faces, or faces before native: every one is checked first
            for args in (["--clear", "all"], ["--clear", "faces", "--clear", "native"]):
                proc = run_cli("data", "cache", *args, "--yes", "--json", env=env, prefix=prefix)
                line = assert_one_error_line(proc, errors.OutputError.exit_code,
                                             f"{named} cannot be deleted (", "permission denied", "nothing was deleted")
                assert json.loads(proc.stdout)["kind"] == "OutputError" and "Errno" not in line
                assert files() == before
            # looking needs no writing
            assert parts(run_cli("data", "cache", "--json", env=env, prefix=prefix))["native"]["files"] == 3
        finally:
            closed.chmod(0o755)
    # a folder that cannot even be read is neither shown as empty nor "cleared" (was: exit 70)
    for closed, name in ((faces, "face cache"), (faces / "assistant", "assistant cache"), (native, "native cache")):
        closed.chmod(0)
        try:
            for args in ([], ["--clear", "all", "--yes"]):
                assert_one_error_line(run_cli("data", "cache", *args, env=env, prefix=prefix), 14,
                                      f"cannot read the {name} {closed}: permission denied")
            assert files() == before
        finally:
            closed.chmod(0o755)
    proc = run_cli("data", "cache", "--clear", "all", "--yes", env=env, prefix=prefix)  # writable again: all cleared
    assert proc.returncode == 0 and not (faces / "faces.sqlite").exists() and not (native / "bin").exists()
