"""benchmarks/chip_fill.py (and dark_chips.py, which follows the same sets): hard_faces.py's own
pairs, decided on sets drawn with ``--validation`` (the people in hard_faces.py's order); another
draw than the sets', a folder without sets or sets without cached landmarks are one line and a
tinyface exit code. Real LFW photos; nothing runs the teacher network or a model."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import BENCHMARKS, load_benchmark as _load, run_benchmark as _run
from tinyface import errors
from tinyface.errors import ConfigError, DataError


def test_chip_fill_listing_refuses_a_folder_without_sets_before_reading_lfw(tmp_path):
    chip_fill = _load("chip_fill")
    with pytest.raises(DataError, match="no hard sets"):
        chip_fill.listing(tmp_path, tmp_path / "no-lfw", 0, hard_faces=None)


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
    assert all(np.array_equal(x, y) for x, y in zip(ours, theirs, strict=True))
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
        f"{script}: error: the sets in {out} were drawn with --seed 0 --validation ({out / 'draw.json'}): "
        "pass the same"]
    chip_fill = _load("chip_fill")
    with pytest.raises(ConfigError, match="--seed 0 --validation"):
        chip_fill.listing(out, lfw_dir, 1, _load("hard_faces"), validation=True)


def test_chip_fill_without_cached_landmarks_is_a_data_error(lfw_dir, tmp_path):
    """Sets whose face cache holds no landmarks (hard_faces.py not run to the end): was a plain
    exit 1. One line, DataError's code, before the teacher is loaded."""
    hard_faces = _load("hard_faces")
    out = tmp_path / "sets"
    name, _ = hard_faces.drawn_people(lfw_dir, 0)[0]
    photo = sorted((lfw_dir / "images" / name).glob("*.jpg"))[0]
    (out / "untouched" / name).mkdir(parents=True)
    shutil.copy(photo, out / "untouched" / name / photo.name)
    (out / hard_faces.DRAW_FILE).write_text(json.dumps({"seed": 0, "validation": False}))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "chip_fill.py"), "--out", str(out), "--data",
                           str(lfw_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == errors.DataError.exit_code, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"chip_fill.py: error: 1 images of {out / 'untouched'} have no cached landmarks "
        f"(run benchmarks/hard_faces.py --out {out} first)"]
