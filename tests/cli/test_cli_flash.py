"""`tinyface flash` (tinyface/cli/flash.py; named test_cli_flash.py beside tests/device/test_flash.py,
as test modules need unique names): a --port that is a file or a folder, and a --project-dir full
of other files, are refused in one line with docs/cli.md's exit code, before anything is rendered
or aligned; `flash --enroll` compiles in a gallery of faces only, its person folders' names read
whatever the locale; a smoke-test model is flashed with a warning. Runs `tinyface` from an empty
folder, in this process or (for --enroll, a locale, the warning's place) in a subprocess."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    RELEASED,
    env_without_locale as _env,
    error_in_process as error_line,
    latin1_locale,
    require_released_model,
    run_in_process as tinyface,
)
from tinyface import errors
from tinyface.errors import NoFaceError

pytestmark = pytest.mark.usefixtures("own_folder")


# --- --port: a regular file or a folder is refused first ----------------------------------------------

@pytest.mark.parametrize("what", ["file", "folder"])
def test_flash_refuses_a_port_that_is_a_file_or_a_folder_before_rendering(capsys, tmp_path, monkeypatch, what):
    # was: accepted, then the project rendered and built, and PlatformIO's upload failed
    from tinyface.device import platformio

    def no_pio(*args, **kwargs):
        raise AssertionError("flash got as far as PlatformIO")

    monkeypatch.setattr(platformio, "pio_command", no_pio)
    port = tmp_path / "afile"
    if what == "file":
        port.write_text("x")
    else:
        port.mkdir()
    code, line = error_line(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--port", port,
                            "--project-dir", tmp_path / "fw")
    assert code == errors.DeviceError.exit_code == 7
    assert f"cannot open {port}: " in line and "not a serial port (" in line and "--port" in line
    assert not (tmp_path / "fw").exists()


@pytest.mark.parametrize("port, reason", [
    ("ds1", "a folder, not a serial port"),  # relative paths, from the current folder
    ("empty.jpg", "not a serial port"),
    ("nonexist_rel", "No such file or directory"),
    ("sub/ttyUSB0", "No such file or directory"),
    ("/dev/null", "not a serial port"),  # character devices that are no terminal
    ("/dev/zero", "not a serial port"),
])
def test_flash_refuses_a_relative_path_or_a_device_that_is_no_serial_port_before_rendering(
        capsys, tmp_path, monkeypatch, port, reason):
    # was: the project rendered into --project-dir, then PlatformIO's error (exit 9); only an
    # absolute path to a file or a folder was refused
    from tinyface.device import platformio

    def no_pio(*args, **kwargs):
        raise AssertionError("flash got as far as PlatformIO")

    monkeypatch.setattr(platformio, "pio_command", no_pio)
    (tmp_path / "ds1").mkdir()  # the test's own (current) folder
    (tmp_path / "empty.jpg").write_bytes(b"")
    code, line = error_line(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--port", port,
                            "--project-dir", "fw")
    assert code == errors.DeviceError.exit_code == 7
    assert line.startswith(f"tinyface: error: cannot open {port}: {reason} (") and "--port" in line
    assert not (tmp_path / "fw").exists()


# --- --project-dir: a folder of other files is not filled with a project --------------------------------

def test_a_folder_of_other_files_is_refused_before_the_gallery_is_aligned(capsys, tmp_path, monkeypatch):
    # was: ~35 files and a manifest written among them (it once filled docs/)
    from tinyface.device import flash as flash_mod

    def no_budget(*args, **kwargs):
        raise AssertionError("flash went on into the folder of other files")

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("mine")
    (docs / "img").mkdir()
    monkeypatch.setattr(flash_mod, "check_fits", no_budget)
    code, line = error_line(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                            "--project-dir", docs)
    assert code == errors.ProjectDirError.exit_code == 11
    assert f"{docs} is not a tinyface project (no tinyface-project.json) and not empty" in line
    assert "guide.md, img are there" in line and "--force" in line and "--project-dir" in line
    assert sorted(p.name for p in docs.iterdir()) == ["guide.md", "img"]


def test_force_generates_into_it_and_a_project_folder_is_regenerated(capsys, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("mine")
    args = ("flash", "--board", "esp32", "--model", RELEASED, "--dry-run", "--project-dir", docs)
    code, _, err = tinyface(capsys, *args, "--force")
    assert code == 0, err
    assert (docs / "tinyface-project.json").is_file() and (docs / "guide.md").read_text() == "mine"
    code, _, err = tinyface(capsys, *args)  # now a tinyface project: no --force needed
    assert code == 0, err
    fresh = tmp_path / "fresh"  # an empty folder, and one that does not exist, need none either
    fresh.mkdir()
    for folder in (fresh, tmp_path / "new"):
        code, _, err = tinyface(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                                "--project-dir", folder)
        assert code == 0, err


# --- --enroll: a compiled-in gallery is made of faces only --------------------------------------------
# An image with no usable face is refused by name, with its own exit code, before anything is written.

def _enroll_dir(lfw_dir, tmp_path):
    root = tmp_path / "people"
    for person, name in (("Aaron_Peirsol", "Aaron"), ("Alejandro_Toledo", "Alejandro")):  # names: <= 15 bytes
        (root / name).mkdir(parents=True)
        for src in sorted((lfw_dir / "images" / person).glob("*.jpg"))[:2]:
            shutil.copy2(src, root / name / src.name)
    return root


def _flash(args, tmp_path):
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--dry-run",
                           "--project-dir", str(tmp_path / "project"), *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)


def test_flash_enroll_refuses_images_with_no_face_by_name(lfw_dir, tiny_bundle, tmp_path):
    from PIL import Image

    root = _enroll_dir(lfw_dir, tmp_path)
    Image.fromarray(np.full((120, 120, 3), 140, np.uint8)).save(root / "Aaron" / "wall.png")
    (root / "Alejandro" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    proc = _flash(["--model", str(tiny_bundle.model_path.parent), "--enroll", str(root)], tmp_path)
    assert proc.returncode == NoFaceError.exit_code == 15, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: 2 image(s)"), proc.stderr
    assert "Aaron/wall.png (no face found)" in lines[0]
    assert "Alejandro/broken.jpg (not a readable image)" in lines[0]
    assert not (tmp_path / "project").exists()  # refused before anything was written


def test_flash_enroll_with_faces_only_compiles_the_gallery(lfw_dir, tiny_bundle, tmp_path):
    root = _enroll_dir(lfw_dir, tmp_path)
    proc = _flash(["--model", str(tiny_bundle.model_path.parent), "--enroll", str(root)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    sources = "".join(p.read_text(errors="replace") for p in (tmp_path / "project").rglob("*") if p.is_file()
                      and p.suffix in (".h", ".cc", ".c", ".cpp"))
    assert "Aaron" in sources and "Alejandro" in sources
    # who was compiled in, said (was: nothing but the gallery's bytes in the flash budget)
    assert "gallery compiled in: 2 of 16 people, photos enrolled: Aaron (2), Alejandro (2)" in proc.stderr
    as_json = _flash(["--model", str(tiny_bundle.model_path.parent), "--enroll", str(root), "--json"], tmp_path)
    assert json.loads(as_json.stdout)["gallery"] == [{"name": "Aaron", "samples": 2},
                                                     {"name": "Alejandro", "samples": 2}]


def test_flash_enroll_says_which_files_it_left_out_and_why_as_data_stats_does(lfw_dir, tiny_bundle, tmp_path):
    """A photo lying beside the person folders and a file in a person folder that is no image are not
    compiled in: one note line counts and names them with `tinyface data stats`'s reasons, and --json
    lists them (was: left out without a word; docs/cli.md asks for one folder per person, not that
    every file be in one, so the gallery is still compiled)."""
    root = _enroll_dir(lfw_dir, tmp_path)
    loose = sorted((lfw_dir / "images" / "Adrien_Brody").glob("*.jpg"))[0]
    shutil.copy2(loose, root / loose.name)
    (root / "Aaron" / "notes.txt").write_text("taken in 2004")
    model = str(tiny_bundle.model_path.parent)
    proc = _flash(["--model", model, "--enroll", str(root)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: left out 2 files of {root}, not in the gallery: "  # in data stats's order
                     "Aaron/notes.txt: not an image file (extension .txt); "
                     f"{loose.name}: image outside a person folder (whose photo is it?)"], proc.stderr
    assert "gallery compiled in: 2 of 16 people, photos enrolled: Aaron (2), Alejandro (2)" in proc.stderr
    stats = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "stats", "--data", str(root),
                            "--no-check", "--json"], capture_output=True, text=True, timeout=300)
    assert stats.returncode == 0, stats.stderr
    as_json = _flash(["--model", model, "--enroll", str(root), "--json"], tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["skipped"] == json.loads(stats.stdout)["skipped"]
    # a folder of person folders only: no note
    (root / loose.name).unlink()
    (root / "Aaron" / "notes.txt").unlink()
    clean = _flash(["--model", model, "--enroll", str(root)], tmp_path)
    assert clean.returncode == 0 and "note:" not in clean.stderr, clean.stderr


# --- --enroll: person folder names whatever the locale ------------------------------------------------
# `flash --enroll DIR` reads its person folders' names as `--name` is read: the text their bytes
# spell in UTF-8 whatever the locale (tinyface.fsutil.os_text). Under a C locale with UTF-8 mode
# off a `Zoë` folder was refused as "must be 1..15 bytes of UTF-8" (exit 4); under a Latin-1
# locale it was compiled in as the mojibake `ZoÃ«`. (The names' rules: tests/codegen/test_codegen_gallery.py.)

ZOE_UTF8 = "Zoë".encode("utf-8")  # b"Zo\xc3\xab"


def _person(root: Path, name: bytes, photos) -> None:
    """A person folder named by the bytes ``name`` (as a terminal's mkdir makes it) holding ``photos``."""
    folder = os.path.join(os.fsencode(root), name)
    os.makedirs(folder)
    for photo in photos:
        shutil.copy(photo, os.path.join(folder, os.fsencode(Path(photo).name)))


@pytest.mark.parametrize("where", ["C, PYTHONUTF8=0", "Latin-1"])
def test_flash_enroll_compiles_a_zoe_folder_as_its_utf8_bytes_under_a_locale(lfw_dir, tmp_path, where):
    """A real `tinyface flash --dry-run --enroll` of the released model, one LFW photo in a folder
    whose name is the 4 bytes of Zoë. C, PYTHONUTF8=0: was exit 4, "person folder name
    'Zo\\udcc3\\udcab' must be 1..15 bytes of UTF-8"; Latin-1: was compiled in as
    "Zo\\303\\203\\302\\253" (the 6 bytes of ZoÃ«)."""
    require_released_model()
    locale = latin1_locale(tmp_path) if where == "Latin-1" else {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}
    env = {**_env(**locale), "TINYFACE_CACHE": str(tmp_path / "cache"), "TINYFACE_DATA": str(lfw_dir)}
    people = tmp_path / "people"
    _person(people, ZOE_UTF8, sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[:1])
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--model",
                           str(RELEASED), "--dry-run", "--enroll", str(people), "--project-dir", str(tmp_path / "p")],
                          capture_output=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    header = (tmp_path / "p" / "src" / "gallery_data.h").read_text(encoding="utf-8")
    assert '{"Zo\\303\\253", 1, {' in header  # the 4 bytes typed, as C octal escapes


# --- a smoke-test model: said before it is flashed -------------------------------------------------------

def test_flash_warns_before_flashing_a_smoke_test_model(tiny_bundle, tmp_path):
    from tinyface.model.bundle import load_bundle, save_bundle

    for smoke in (True, False):
        meta = load_bundle(tiny_bundle.model_path.parent).meta
        meta.extra = {**meta.extra, "smoke_test": smoke}
        model = tmp_path / f"model-{smoke}"
        save_bundle(model, tiny_bundle.model_bytes, meta)
        proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--dry-run",
                               "--model", str(model), "--project-dir", str(tmp_path / f"project-{smoke}")],
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        warned = "tinyface: warning:" in proc.stderr and "smoke-test model" in proc.stderr
        assert warned == smoke, proc.stderr
        if smoke:  # before anything else is said
            assert proc.stderr.lstrip().startswith("tinyface: warning:"), proc.stderr


def test_flash_enroll_shows_its_progress_while_the_faces_are_aligned(lfw_dir, tiny_bundle, tmp_path):
    """`flash --enroll` aligns every face of every person folder (minutes for a full gallery on a
    small machine): in a terminal (stderr on a real pty) a bar counts them (was: nothing at all
    between the command and its result)."""
    import pty
    import select

    root = _enroll_dir(lfw_dir, tmp_path)  # 2 people, 2 photos each
    master, slave = pty.openpty()
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"), TERM="xterm", COLUMNS="120")
    proc = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--dry-run",
                             "--project-dir", str(tmp_path / "project"), "--model", str(tiny_bundle.model_path.parent),
                             "--enroll", str(root)], stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                            cwd=tmp_path, env=env)
    os.close(slave)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 300)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the command ended and closed the pty
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
        proc.stdout.close()
        returncode = proc.wait(timeout=60)
    text = shown.decode(errors="replace")
    assert returncode == 0, text
    assert "aligning faces" in text and "4/4" in text, text
