"""benchmarks/_lib.py, what several benchmarks share: the one ``--people`` check (check_people,
refuse_test_people) that compare_runs.py, whiten.py and mirror_enroll.py make before any face is
loaded, people_faces, and start_device (link.py, native_vs_emulator.py)."""

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    BENCHMARKS,
    RELEASED,
    load_benchmark as _load,
    named_people as _people,
    require_released_model as _released,
    run_benchmark as _run,
)
from tinyface import errors
from tinyface.errors import ModelError
from tinyface.model.bundle import SPLIT_KEY, load_bundle

# every file of benchmarks/, _lib.py and _script.py included
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))


# --- check_people: a --people set the model distilled from ------------------------------------------

@pytest.mark.parametrize("script", ["whiten.py", "mirror_enroll.py", "compare_runs.py"])
def test_a_people_set_the_model_distilled_from_is_refused_before_any_face_is_loaded(tmp_path, script):
    """A copy of the released bundle whose model.json names the --people folder among its extra
    faces. LFW is nowhere (TINYFACE_DATA points at nothing), so a script that went on to load the
    validation people would end with a DataError (exit 4) instead."""
    _released()
    people = tmp_path / "people"
    (people / "Ann_Example").mkdir(parents=True)
    copy = shutil.copytree(RELEASED, tmp_path / "copy")
    meta = json.loads((copy / "model.json").read_text())
    meta["extra"]["extra_faces"] = ["fairface", str(people)]
    (copy / "model.json").write_text(json.dumps(meta))
    env = dict(os.environ, TINYFACE_DATA=str(tmp_path / "no-lfw"), TINYFACE_CACHE=str(tmp_path / "cache"))
    proc = _run(script, "--model", copy, "--preset", "esp32", "--people", people, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"{script}: error: --people {people}: {copy} distilled from it (extra faces {people}): "
        "judge it on a set it has not seen")


def test_the_people_check_is_defined_once():
    """compare_runs.py, whiten.py and mirror_enroll.py call benchmarks/_lib.py's check_people;
    no script words the refusal itself."""
    callers = [name for name in SCRIPTS if "check_people(" in (BENCHMARKS / name).read_text(encoding="utf-8")]
    assert callers == ["_lib.py", "compare_runs.py", "mirror_enroll.py", "whiten.py"]
    worded = [name for name in SCRIPTS
              if "judge it on a set it has not seen" in (BENCHMARKS / name).read_text(encoding="utf-8")]
    assert worded == ["_lib.py"]


# --- a --people set holding an LFW test person: a DataError (exit 4), before the validation people ----
# whiten.py and mirror_enroll.py refuse it in check_people, before the validation people are loaded
# (minutes), with the line and exit code people_faces gave after them.

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
    caller that skips check_people): a DataError (people_faces' was SystemExit, a plain exit 1),
    before any face is cut (the photos are empty files); a set without test people passes."""
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


# --- start_device: one way to start `tinyface emulate` -------------------------------------------

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


# --- validation_settings (behind identify_threshold, compare_runs, whiten, enroll_check, flip_average,
# mirror_enroll, val_neighbours): the validation people are drawn with the split settings a bundle's
# model.json records, the preset's only for a bundle that records none ------------------------------

def _recorded_split_bundle(tmp_path, name, split=None):
    """A copy of the released esp32 bundle, its model.json recording ``split`` (None: no record,
    as a bundle built before builds wrote one)."""
    _released()
    folder = tmp_path / name
    folder.mkdir()
    for f in ("model.tflite", "model.json"):
        shutil.copy(RELEASED / f, folder / f)
    meta = json.loads((folder / "model.json").read_text())
    if split is None:
        meta["extra"].pop(SPLIT_KEY, None)
    else:
        meta["extra"][SPLIT_KEY] = split
    (folder / "model.json").write_text(json.dumps(meta))
    return folder, load_bundle(folder)


def test_the_bundles_recorded_split_wins_over_the_presets(tmp_path, capsys):
    folder, bundle = _recorded_split_bundle(tmp_path, "a", {"seed": 7, "val_fraction": 0.2, "test_filter": 0.0})
    d = _load("_lib").validation_settings("esp32", {folder: bundle}).data
    assert (d.seed, d.val_fraction, d.test_filter) == (7, 0.2, 0.0)
    assert "model.json's data.seed=7 (preset esp32: 0)" in capsys.readouterr().err


def test_a_bundle_without_a_record_keeps_the_presets_split(tmp_path, capsys):
    folder, bundle = _recorded_split_bundle(tmp_path, "old")
    d = _load("_lib").validation_settings("esp32", {folder: bundle}).data
    assert (d.seed, d.val_fraction, d.test_filter) == (0, 0.1, 0.25)
    assert capsys.readouterr().err == ""


def test_bundles_of_different_splits_are_not_compared_on_one(tmp_path):
    a = _recorded_split_bundle(tmp_path, "a", {"seed": 7})
    old = _recorded_split_bundle(tmp_path, "old")  # the preset's seed 0
    with pytest.raises(ModelError) as exc:  # benchmarks/_script.py: one line, exit 6
        _load("_lib").validation_settings("esp32", dict([a, old]))
    assert "other validation people" in str(exc.value) and "data.seed 7 and 0" in str(exc.value)
    same = _recorded_split_bundle(tmp_path, "same", {"seed": 0, "val_fraction": 0.1})  # the preset's, recorded
    assert _load("_lib").validation_settings("esp32", dict([old, same])).data.seed == 0
