"""`tinyface flash --enroll`: a compiled-in gallery is made of faces only; an image with no
usable face is refused by name, with its own exit code, before anything is written. The person
folders' names (tinyface.codegen.gallery.gallery_names) follow `--name`'s one rule, read as the
text their bytes spell in UTF-8 whatever the locale."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import RELEASED
from tests.conftest import env_without_locale as _env
from tests.conftest import named_people as _people
from tinyface import errors
from tinyface.errors import NoFaceError


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


# --- person folder names whatever the locale ---------------------------------------------------------
# `flash --enroll DIR` reads its person folders' names as `--name` is read: the text their bytes
# spell in UTF-8 whatever the locale (tinyface.fsutil.os_text). Under a C locale with UTF-8 mode
# off a `Zoë` folder was refused as "must be 1..15 bytes of UTF-8" (exit 4); under a Latin-1
# locale it was compiled in as the mojibake `ZoÃ«`.

ZOE = "Zoë"
ZOE_UTF8 = ZOE.encode("utf-8")  # b"Zo\xc3\xab"


def _latin1_locale(folder: Path) -> dict | None:
    """The environment of an ISO-8859-1 locale compiled into ``folder`` (LOCPATH), or None where
    localedef or its sources are missing."""
    try:
        subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
                       capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    locale = {"LOCPATH": str(folder), "LC_ALL": "en_US.ISO-8859-1"}
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                           capture_output=True, text=True, env=_env(**locale))
    return locale if probe.stdout.strip() == "iso8859-1" else None


def _locale(where: str, tmp_path: Path) -> dict:
    if where == "Latin-1":
        locale = _latin1_locale(tmp_path)
        if locale is None:
            pytest.skip("no ISO-8859-1 locale can be made here (localedef)")
        return _env(**locale)
    return _env(LC_ALL="C", LANG="C", PYTHONUTF8="0")


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
    if not (RELEASED / "model.tflite").is_file():
        pytest.skip("no released model in models/esp32")
    env = {**_locale(where, tmp_path), "TINYFACE_CACHE": str(tmp_path / "cache"), "TINYFACE_DATA": str(lfw_dir)}
    people = tmp_path / "people"
    _person(people, ZOE_UTF8, sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[:1])
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--model",
                           str(RELEASED), "--dry-run", "--enroll", str(people), "--project-dir", str(tmp_path / "p")],
                          capture_output=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    header = (tmp_path / "p" / "src" / "gallery_data.h").read_text(encoding="utf-8")
    assert '{"Zo\\303\\253", 1, {' in header  # the 4 bytes typed, as C octal escapes


def test_a_folder_name_that_is_no_text_is_one_data_error_showing_its_bytes(tmp_path):
    """Bytes that are UTF-8 in no reading (a Latin-1 ë in this UTF-8 process): was "person folder
    name 'Zo\\udceb' must be 1..15 bytes of UTF-8", a length rule it does not break."""
    from tinyface.codegen.gallery import gallery_names

    people = tmp_path / "people"
    for name in (b"Bob", b"Zo\xeb"):
        os.makedirs(os.path.join(os.fsencode(people), name))
        with open(os.path.join(os.fsencode(people), name, b"1.jpg"), "wb"):
            pass
    with pytest.raises(errors.DataError) as info:
        gallery_names(people)
    assert info.value.one_line() == (f"a person folder's name in {people}: its bytes b'Zo\\xeb' are not valid UTF-8 "
                                     "text (rename the folder in UTF-8)")


def test_a_folder_name_too_long_says_its_length(tmp_path):
    from tinyface.codegen.gallery import gallery_names

    people = tmp_path / "people"
    (people / "Zoë Zoë Zoë Zoë").mkdir(parents=True)  # 19 bytes
    (people / "Zoë Zoë Zoë Zoë" / "1.jpg").write_bytes(b"")
    # --name's wording (one rule, tinyface.protocol.spec.check_name)
    with pytest.raises(errors.DataError,
                       match=r"'Zoë Zoë Zoë Zoë' is 19 bytes in UTF-8; the board stores at most 15"):
        gallery_names(people)
    shutil.rmtree(people / "Zoë Zoë Zoë Zoë")
    (people / ZOE).mkdir()
    (people / ZOE / "1.jpg").write_bytes(b"")
    assert gallery_names(people) == {ZOE: ZOE}


def test_two_folders_that_spell_one_name_are_refused_under_a_latin1_locale(tmp_path):
    """Under a Latin-1 locale a UTF-8 Zoë folder and a Latin-1 one both read as Zoë: two gallery
    entries of one name would be compiled in. Refused, naming both folders' bytes."""
    env = _locale("Latin-1", tmp_path)
    people = tmp_path / "people"
    for name in (ZOE_UTF8, b"Zo\xeb"):
        os.makedirs(os.path.join(os.fsencode(people), name))
        with open(os.path.join(os.fsencode(people), name, b"1.jpg"), "wb"):
            pass
    code = ("import sys\nfrom tinyface.codegen.gallery import gallery_names\nfrom tinyface.errors import DataError\n"
            "try:\n    gallery_names(sys.argv[1])\nexcept DataError as exc:\n"
            "    print(ascii(exc.one_line()))\n    sys.exit(exc.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(people)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == errors.DataError.exit_code, proc.stderr[-2000:]
    assert "are both named 'Zo\\xeb'" in proc.stdout and "b'Zo\\\\xc3\\\\xab'" in proc.stdout, proc.stdout


# A folder's name has `--name`'s one rule (tinyface.protocol.spec.check_name: 1..15 bytes of
# UTF-8, no control character, no leading or trailing space); a folder was checked by the wire's
# byte rule alone, so `Bob ` (a trailing space) or a tab in its name was compiled in.

@pytest.mark.parametrize("folder, broken", [("Bob ", "'Bob ' starts or ends with white space"),
                                            ("Bob\tJr", "'Bob\\tJr' contains a control or unassigned character "
                                                        "('\\t')")])
def test_a_folder_name_that_name_refuses_is_refused(tmp_path, folder, broken):
    """Both are 1..15 bytes of UTF-8 without NUL: gallery_names took them."""
    from tinyface.codegen.gallery import gallery_names

    people = _people(tmp_path / "people", "Ann", folder)
    with pytest.raises(errors.DataError) as info:
        gallery_names(people)
    assert info.value.one_line() == f"person folder name {broken} (rename the folder)"
