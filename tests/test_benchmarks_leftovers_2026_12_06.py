"""Leftovers of the 2026-12-05 audit of benchmarks/, each with the test that fails without its fix:

- teacher.py times the teacher on photos of LFW's training people only (never peopleDevTest's);
- chip_fill.py and dark_chips.py decide hard_faces.py's own pairs on sets drawn with
  ``--validation`` (the people in hard_faces' order), and refuse another draw than the sets';
- whiten.py and mirror_enroll.py refuse a ``--people`` set the model distilled from, by the one
  check compare_runs.py makes (benchmarks/_lib.py's check_people), before any face is loaded;
- what several benchmarks share lives in benchmarks/_lib.py, not in other scripts; no benchmark
  imports from tests/ or a private name of tinyface.device;
- the figures docs/cli.md and docs/second_teacher.md quote say what they were measured on.

Real LFW photos and the released models/esp32; nothing runs the teacher network or a model.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyface.data import lfw
from tinyface.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RELEASED = REPO / "models" / "esp32"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"leftovers_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(script: str, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


# --- teacher.py: LFW's training people only ---------------------------------------------------

def test_teacher_times_photos_of_training_people_only(lfw_dir, monkeypatch, capsys):
    """The first photos of LFW in name order include AJ_Lamas (peopleDevTest); teacher.py reads
    peopleDevTrain.txt's people in file order instead (kernels.lfw_face_paths). The photos are
    aligned for real; the teacher network is not run (what it embeds is not the question)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    teacher = _load("teacher")
    read = []
    real_read = teacher.read_image
    monkeypatch.setattr(teacher, "read_image", lambda path: read.append(Path(path)) or real_read(path))
    monkeypatch.setattr(teacher, "embed_chips", lambda chips, backend="tf": np.ones((len(chips), 128), np.float32))
    monkeypatch.setattr(sys, "argv", ["teacher.py", "--data", str(lfw_dir), "--chips", "4", "--dlib-chips", "1"])
    teacher.main()
    assert "over 4 chips" in capsys.readouterr().out
    test_people = {name for name, _ in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TEST)}
    assert not {p.parent.name for p in read} & test_people, read
    assert read == _load("kernels").lfw_face_paths(lfw_dir, 4)  # the rule kernels.py, s3_arena.py and xtensa_kernels.py use


def test_teacher_says_when_lfw_holds_fewer_training_photos_than_asked(tmp_path):
    data = tmp_path / "lfw"
    (data / "images" / "Ann_Example").mkdir(parents=True)
    (data / lfw.PEOPLE_DEV_TRAIN).write_text("1\nAnn_Example\t1\n")
    proc = _run("teacher.py", "--data", data, "--chips", "2", "--dlib-chips", "1")
    assert proc.returncode == 4 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip() == f"teacher.py: error: {data} holds 0 photos of peopleDevTrain.txt's people, not --chips 2"


# --- chip_fill.py / dark_chips.py: hard_faces.py's own pairs --------------------------------

@pytest.fixture(scope="module")
def validation_sets(lfw_dir, tmp_path_factory):
    """hard_faces.py's sets of 3 validation people (2 photos each, the real detector), with the
    listing make_sets returned: (out, listing)."""
    hard_faces = _load("hard_faces")
    out = tmp_path_factory.mktemp("hard") / "sets"
    made = hard_faces.make_sets(lfw_dir, out, people=3, images=2, seed=0, validation=True)
    return out, [(name, path.stem) for path, name in made["untouched"]]


def test_chip_fill_lists_validation_sets_in_hard_faces_order(lfw_dir, validation_sets):
    """The same people in the same order: sample_pairs draws hard_faces.py's pairs. Listed in
    the training people's order (what chip_fill.py did), the same photos decide other pairs."""
    from tinyface.evaluation.metrics import sample_pairs

    hard_faces, chip_fill = _load("hard_faces"), _load("chip_fill")
    out, made = validation_sets
    items = chip_fill.listing(out, lfw_dir, 0, hard_faces, validation=True)
    assert items == made
    ours = sample_pairs([name for name, _ in items], None, 0)
    theirs = sample_pairs([name for name, _ in made], None, 0)
    assert all(np.array_equal(x, y) for x, y in zip(ours, theirs))
    in_training_order = [item for name, _ in hard_faces.drawn_people(lfw_dir, 0) for item in made if item[0] == name]
    assert sorted(in_training_order) == sorted(made) and in_training_order != made  # the old listing's order


@pytest.mark.parametrize("script", ["chip_fill.py", "dark_chips.py"])
def test_a_follower_refuses_another_draw_than_the_sets(lfw_dir, validation_sets, script):
    """Without --validation the people would be listed in the training people's order: one line
    and ConfigError's exit code, before the teacher is loaded."""
    out, _ = validation_sets
    proc = _run(script, "--out", out, "--data", lfw_dir)
    assert proc.returncode == ConfigError.exit_code, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"{script}: error: the sets in {out} were drawn with --seed 0 --validation ({out / 'draw.json'}): pass the same"]
    chip_fill = _load("chip_fill")
    with pytest.raises(ConfigError, match="--seed 0 --validation"):
        chip_fill.listing(out, lfw_dir, 1, _load("hard_faces"), validation=True)


# --- whiten.py / mirror_enroll.py / compare_runs.py: one --people check ----------------------

@pytest.mark.parametrize("script", ["whiten.py", "mirror_enroll.py", "compare_runs.py"])
def test_a_people_set_the_model_distilled_from_is_refused_before_any_face_is_loaded(tmp_path, script):
    """A copy of the released bundle whose model.json names the --people folder among its extra
    faces. LFW is nowhere (TINYFACE_DATA points at nothing), so a script that went on to load the
    validation people would end with a DataError (exit 4) instead."""
    if not (RELEASED / "model.tflite").is_file():
        pytest.skip("no released model in models/esp32")
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
    worded = [name for name in SCRIPTS if "judge it on a set it has not seen" in (BENCHMARKS / name).read_text(encoding="utf-8")]
    assert worded == ["_lib.py"]


# --- what benchmarks share lives in benchmarks/_lib.py --------------------------------------

def _imports(script: str) -> list[tuple[str, str]]:
    """(module, name) of every import in a benchmark, top level or inside a function."""
    found = []
    for node in ast.walk(ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.module or "", alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_benchmark_is_another_ones_library_for_the_validation_people(script):
    """identify_threshold.py and compare_runs.py served six scripts; that code is _lib.py's now."""
    wrong = [f"{module}.{name}" for module, name in _imports(script) if module in ("identify_threshold", "compare_runs")]
    assert not wrong, f"{script} imports {wrong}: import it from benchmarks/_lib.py"


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_benchmark_imports_from_tests_or_tinyface_devices_private_names(script):
    """link.py built its fallback model with tests/conftest.py's builder; xtensa_kernels.py keyed
    its build with tinyface.device's _mtime, _compiler_version and _git_head (public now)."""
    source = (BENCHMARKS / script).read_text(encoding="utf-8")
    wrong = [f"{module}.{name}" for module, name in _imports(script)
             if module == "conftest" or module.startswith("tests")
             or (module.startswith("tinyface.device") and name.startswith("_"))]
    assert not wrong, f"{script} imports {wrong}"
    assert not re.search(r"""sys\.path\.insert\([^)]*["']tests["']""", source), f"{script} puts tests/ on sys.path"


def test_link_serves_the_released_model_by_default():
    link = _load("link")
    assert link._bundle_dir(None) == (RELEASED, "released models/esp32")


# --- the figures the documents quote ----------------------------------------------------------

def test_cli_md_quotes_enroll_check_with_the_released_models_threshold():
    """docs/cli.md's enroll_check figures are of the models/esp32 that is released (run R1): its
    pair threshold (model.json ``threshold``) is the one quoted."""
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    start = text.index("How much the consistency check catches")
    paragraph = text[start:text.index("\n\n", start)]
    threshold = json.loads((RELEASED / "model.json").read_text())["threshold"]
    assert "run R1" in paragraph and "python benchmarks/enroll_check.py --model models/esp32 --preset esp32" in paragraph
    assert f"verification threshold\n({threshold:.3f})" in paragraph or f"threshold ({threshold:.3f})" in paragraph


def test_second_teacher_md_says_what_dlibs_mean_descriptor_length_is_over(lfw_dir):
    """The mean length of dlib's raw descriptors is quoted with the photos it is a mean over: every
    photo of LFW's training people, as many as peopleDevTrain.txt counts."""
    text = " ".join((REPO / "docs" / "second_teacher.md").read_text(encoding="utf-8").split())
    found = re.search(r"raw descriptors are ([\d.]+) long on average over the ([\d,]+) photos of LFW's training "
                      r"people, peopleDevTrain\.txt", text)
    assert found, "docs/second_teacher.md quotes dlib's descriptor length without what it is a mean over"
    photos = sum(count for _, count in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TRAIN))
    assert int(found.group(2).replace(",", "")) == photos
    assert f"0.6 is about {0.6 / float(found.group(1)):.2f}" in text
