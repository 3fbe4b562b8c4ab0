"""benchmarks/_lib.py validation_settings (behind identify_threshold, compare_runs, whiten,
enroll_check, flip_average, mirror_enroll, val_neighbours): the validation people are drawn with the split
settings a bundle's model.json records, the preset's only for a bundle that records none."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tinyface.errors import ModelError
from tinyface.model.bundle import SPLIT_KEY, load_bundle

REPO = Path(__file__).resolve().parents[2]
RELEASED = REPO / "models" / "esp32"
_spec = importlib.util.spec_from_file_location("benchmarks_lib", REPO / "benchmarks" / "_lib.py")
lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lib)


def _bundle(tmp_path, name, split=None):
    """A copy of the released esp32 bundle, its model.json recording ``split`` (None: no record,
    as a bundle built before builds wrote one)."""
    if not (RELEASED / "model.tflite").is_file():
        pytest.skip("no released model in models/esp32")
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
    folder, bundle = _bundle(tmp_path, "a", {"seed": 7, "val_fraction": 0.2, "test_filter": 0.0})
    d = lib.validation_settings("esp32", {folder: bundle}).data
    assert (d.seed, d.val_fraction, d.test_filter) == (7, 0.2, 0.0)
    assert "model.json's data.seed=7 (preset esp32: 0)" in capsys.readouterr().err


def test_a_bundle_without_a_record_keeps_the_presets_split(tmp_path, capsys):
    folder, bundle = _bundle(tmp_path, "old")
    d = lib.validation_settings("esp32", {folder: bundle}).data
    assert (d.seed, d.val_fraction, d.test_filter) == (0, 0.1, 0.25)
    assert capsys.readouterr().err == ""


def test_bundles_of_different_splits_are_not_compared_on_one(tmp_path):
    a = _bundle(tmp_path, "a", {"seed": 7})
    old = _bundle(tmp_path, "old")  # the preset's seed 0
    with pytest.raises(ModelError) as exc:  # benchmarks/_script.py: one line, exit 6
        lib.validation_settings("esp32", dict([a, old]))
    assert "other validation people" in str(exc.value) and "data.seed 7 and 0" in str(exc.value)
    same = _bundle(tmp_path, "same", {"seed": 0, "val_fraction": 0.1})  # the preset's, recorded
    assert lib.validation_settings("esp32", dict([old, same])).data.seed == 0
