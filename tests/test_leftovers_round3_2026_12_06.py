"""Leftovers of the 2026-12-06 follow-ups (round 3), each with the test that fails without its fix:

1. A gallery name has one rule wherever it comes from: `--name` and a `flash --enroll DIR` person
   folder are both checked by tinyface.protocol.spec.check_name (1..15 bytes of UTF-8, no control
   character, no leading or trailing space), moved there from tinyface.device.gallery so that
   tinyface.codegen may use it. A folder was checked by the wire's byte rule alone: `Bob ` (a
   trailing space) or a tab in a folder's name was compiled in, though `--name` refuses it.
   Each keeps its error: `--name` a usage error (exit 2), a folder a DataError (exit 4).
2. whiten.py and mirror_enroll.py refuse a `--people` set holding an LFW test person in
   benchmarks/_lib.check_people, before the validation people are loaded (minutes), with the
   line and exit code (DataError, 4) people_faces gave after them.
3. native_vs_emulator.py says why its device did not start (the emulator's own last line on
   stderr, which went to /dev/null), by the helper link.py uses (benchmarks/_lib.start_device).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinyface import errors

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RELEASED = REPO / "models" / "esp32"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"round3_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tinyface(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def _released():
    if not (RELEASED / "model.tflite").is_file():
        pytest.skip("no released model in models/esp32")


# --- 1. one rule for a gallery name ------------------------------------------------------------

def _people(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "1.jpg").write_bytes(b"")
    return root


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


def test_name_and_a_folder_say_the_same_rule_each_with_its_own_exit_code(tmp_path):
    """`gallery delete --name 'Bob '` is a usage error as the command line is read (the port does
    not exist: it is never opened); `flash --dry-run --enroll` of a `Bob ` folder is a DataError
    before any face is aligned. The folder was taken: the dry run went on to align its photo
    (here exit 15, the photo being an empty file)."""
    _released()
    rule = "'Bob ' starts or ends with white space"
    named = _tinyface("gallery", "delete", "--port", tmp_path / "no-board", "--name", "Bob ")
    assert named.returncode == errors.EXIT_USAGE == 2, named.stderr[-2000:]
    assert f"Invalid value for '--name': {rule}" in named.stderr
    people = _people(tmp_path / "people", "Bob ")
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    folder = _tinyface("flash", "--board", "esp32", "--model", RELEASED, "--dry-run", "--enroll", people,
                       "--project-dir", tmp_path / "p", env=env)
    assert folder.returncode == errors.DataError.exit_code == 4, folder.stderr[-2000:]
    assert folder.stderr.strip().splitlines() == [f"tinyface: error: person folder name {rule} (rename the folder)"]
    assert not (tmp_path / "p").exists()


def test_the_name_rule_is_defined_once_below_codegen_and_device():
    from tinyface.device import gallery as device_gallery
    from tinyface.protocol import spec

    assert not hasattr(device_gallery, "check_name")
    assert spec.check_name("Zoë") == "Zoë"
    with pytest.raises(ValueError, match=r"'Zoë Zoë Zoë Zoë' is 19 bytes in UTF-8; the board stores at most 15"):
        spec.check_name("Zoë Zoë Zoë Zoë")
    with pytest.raises(ValueError, match=r"the board stores at most 7"):
        spec.check_name("Zoë Zoë", max_bytes=8)  # a board that reports fewer name bytes
    for module in ("codegen/gallery.py", "device/gallery.py", "cli/gallery.py"):
        source = (REPO / "tinyface" / module).read_text(encoding="utf-8")
        assert "check_name(" in source and "def check_name" not in source, module
    assert "spec.encode_name(" not in (REPO / "tinyface" / "codegen" / "gallery.py").read_text(encoding="utf-8")


def test_cli_md_says_one_rule():
    text = " ".join((REPO / "docs" / "cli.md").read_text(encoding="utf-8").split())
    assert "Names follow one rule wherever they come from (`--name`, a `flash --enroll` folder;" in text
    assert "checked against the protocol's rule (1 to 15 bytes of UTF-8, no NUL)" not in text
    flash_row = text.split("| `flash` |", 1)[1].split(" | ", 1)[0]
    assert "held to `--name`'s rule" in flash_row
    assert "a folder name the board cannot store" not in text


# --- 2. a --people set holding an LFW test person: refused before the validation people ----------

def _lfw_with_test_people_only(lfw_dir: Path, where: Path) -> Path:
    """An LFW folder with peopleDevTest.txt and nothing else: loading the validation people from it
    fails at once (a DataError of its own), so a refusal that came after it shows as that line."""
    where.mkdir()
    shutil.copy(lfw_dir / "peopleDevTest.txt", where / "peopleDevTest.txt")
    return where


@pytest.mark.parametrize("script", ["whiten.py", "mirror_enroll.py", "compare_runs.py"])
def test_a_people_set_holding_a_test_person_is_refused_before_the_validation_people(lfw_dir, tmp_path, script):
    """AJ_Lamas is a peopleDevTest person. whiten.py and mirror_enroll.py went on to load the
    validation people (here: "no images" of the LFW folder, exit 4 with another line); their
    refusal came from people_faces, after them. compare_runs.py loads no validation people with
    --people: the same line, from check_people now."""
    _released()
    people = _people(tmp_path / "people", "Aaron_Peirsol", "AJ_Lamas")
    env = dict(os.environ, TINYFACE_DATA=str(_lfw_with_test_people_only(lfw_dir, tmp_path / "lfw")),
               TINYFACE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--model", str(RELEASED), "--preset", "esp32",
                           "--people", str(people)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == errors.DataError.exit_code, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"{script}: error: {people}: 1 of its people are LFW test people (peopleDevTest.txt), e.g. AJ_Lamas: "
        "a selection set must not hold the held-out test's people")
    assert not (tmp_path / "cache").exists()


def test_check_people_refuses_a_test_person_and_people_faces_still_does(lfw_dir, tmp_path):
    """One wording (_lib.refuse_test_people), from check_people first and people_faces still (a
    caller that skips check_people); a set without test people passes."""
    from tinyface import config

    lib = _load("_lib")
    ap = argparse.ArgumentParser(prog="x")
    settings = config.load(overrides={"data": {"dir": str(lfw_dir), "cache_dir": str(tmp_path / "cache")}})
    people = _people(tmp_path / "people", "Aaron_Peirsol", "Abel_Pacheco", "AJ_Lamas")
    line = (f"{people}: 1 of its people are LFW test people (peopleDevTest.txt), e.g. AJ_Lamas: "
            "a selection set must not hold the held-out test's people")
    with pytest.raises(errors.DataError) as checked:
        lib.check_people(ap, str(people), {}, settings)
    with pytest.raises(errors.DataError) as cut:
        lib.people_faces(people, settings)
    assert str(checked.value) == str(cut.value) == line
    shutil.rmtree(people / "AJ_Lamas")
    lib.check_people(ap, str(people), {}, settings)  # nothing to refuse
    lib.check_people(ap, None, {}, settings)
    assert not (tmp_path / "cache").exists()
    source = (BENCHMARKS / "_lib.py").read_text(encoding="utf-8")
    assert source.count("a selection set must not hold the held-out test's people") == 1


# --- 3. native_vs_emulator.py: why the device did not start --------------------------------------

def test_native_vs_emulator_says_why_the_device_did_not_start(tmp_path):
    """A bad environment for `tinyface emulate` (TINYFACE_BOARDS_DIR a file), as link.py's test:
    was "emulator: the device (tinyface emulate) did not start", the reason on /dev/null."""
    _released()
    not_a_folder = tmp_path / "boards"
    not_a_folder.write_text("")
    env = dict(os.environ, TINYFACE_BOARDS_DIR=str(not_a_folder))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "native_vs_emulator.py"), "--model", str(RELEASED),
                           "--images", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == errors.DeviceError.exit_code, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "native_vs_emulator.py: error: emulator: the device (tinyface emulate) did not start: "
        "tinyface: error: TINYFACE_BOARDS_DIR must be a folder"), lines


def _calls(script: str) -> set[str]:
    tree = ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))
    return {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}


def test_a_device_is_started_by_one_helper():
    """link.py and native_vs_emulator.py start `tinyface emulate` with _lib.start_device: neither
    opens a process of its own, nor sends one's stderr to /dev/null."""
    for script in ("link.py", "native_vs_emulator.py"):
        calls = _calls(script)
        assert "start_device" in calls and "subprocess.Popen" not in calls, script
        assert "stderr=subprocess.DEVNULL" not in (BENCHMARKS / script).read_text(encoding="utf-8"), script
