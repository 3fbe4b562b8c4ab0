"""model.json: one validating reader (tinyface.model.bundle) behind every command; a model file is never
run without the metadata it was built with."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, tensorflow_tripwire
from tinyface import config
from tinyface.errors import ConfigError, ModelError
from tinyface.model.bundle import (
    SPLIT_KEY,
    SPLIT_SETTINGS,
    STAGES_KEY,
    load_bundle,
    model_file_meta,
    read_meta,
    save_bundle,
    split_record,
)


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    """A writable copy of the tiny int8 bundle."""
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.model_path.parent, folder)
    return folder


def _meta(folder):
    return json.loads((folder / "model.json").read_text())


def _edit(folder, **changes):
    meta = _meta(folder)
    meta.update(changes)
    (folder / "model.json").write_text(json.dumps(meta))


BAD_VALUES = [
    ({"threshold": "high"}, "'threshold' must be a cosine similarity"),
    ({"threshold": 3.0}, "'threshold' must be a cosine similarity"),
    ({"crop_padding": None}, "'crop_padding' must be a number in [0, 1]"),
    ({"input_scale": 0}, "'input_scale' must be a number > 0"),
    ({"input_shape": [1, 48, 48]}, "'input_shape' must be [1, height, width, channels]"),
    ({"embedding_dim": True}, "'embedding_dim' must be an integer > 0"),
    ({"output_zero_point": 300}, "'output_zero_point' must be an int8 zero point"),
    ({"extra": []}, "'extra' must be a JSON object"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"sha256": 5}, "'sha256' must be 64 hex digits"),
]


@pytest.mark.parametrize("changes, needle", BAD_VALUES)
def test_wrongly_typed_values_are_model_errors_naming_the_key(bundle_copy, changes, needle):
    _edit(bundle_copy, **changes)
    with pytest.raises(ModelError) as exc:
        load_bundle(bundle_copy)
    assert needle in exc.value.one_line() and "model.json" in exc.value.one_line()


@pytest.mark.parametrize("text, needle", [("", "empty"), ("{not json", "not valid JSON"),
                                          ("[1, 2]", "expected a JSON object"),
                                          ('{"threshold": 0.5}', "missing key 'input_shape'")])
def test_empty_corrupt_or_incomplete_files_are_model_errors(bundle_copy, text, needle):
    (bundle_copy / "model.json").write_text(text)
    with pytest.raises(ModelError, match=needle):
        read_meta(bundle_copy / "model.json")
    (bundle_copy / "model.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelError, match="not UTF-8"):
        read_meta(bundle_copy / "model.json")


def test_a_changed_model_fails_the_hash_check_in_every_reader(bundle_copy):
    with open(bundle_copy / "model.tflite", "ab") as f:
        f.write(b"\0")
    for reader in (load_bundle, model_file_meta):
        with pytest.raises(ModelError, match="sha256 differs"):
            reader(bundle_copy)


def test_a_lone_model_file_is_refused_saying_what_to_pass(tiny_bundle, tmp_path):
    for name in ("float.tflite", "student.keras"):
        lone = tmp_path / "elsewhere" / name
        lone.parent.mkdir(exist_ok=True)
        lone.write_bytes(tiny_bundle.model_bytes)
        with pytest.raises(ModelError) as exc:
            model_file_meta(lone)
        assert "has no model.json" in exc.value.one_line() and "bundle folder" in exc.value.one_line()


def _keras_file(path, bundle):
    """A .keras archive (its config.json, which model_file_meta reads) of the bundle's input shape."""
    import zipfile

    shape = [None, *_meta(bundle)["input_shape"][1:]]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps({"build_config": {"input_shape": shape}}))


def test_a_stage_model_of_a_build_run_gets_the_runs_crop_but_not_its_thresholds(bundle_copy):
    _edit(bundle_copy, crop_padding=0.1)
    stage = bundle_copy / "quantize"
    stage.mkdir()
    (stage / "stage.json").write_text("{}")
    (stage / "float.tflite").write_bytes((bundle_copy / "model.tflite").read_bytes())  # parsed: a real model
    found = model_file_meta(stage / "float.tflite")
    assert found.meta.crop_padding == 0.1 and not found.thresholds_apply
    assert found.meta_path == bundle_copy / "model.json"
    bundle = model_file_meta(bundle_copy)
    assert bundle.thresholds_apply and bundle.model_path == bundle_copy / "model.tflite"


def test_a_stage_model_redone_after_the_runs_model_json_is_refused(bundle_copy):
    """model.json is written by a build's last step: a build stopped after a stage (here: quantize
    redone at another padding) left the stage's new model described by the previous build's crop."""
    _edit(bundle_copy, crop_padding=0.1, extra={"stages": {"quantize": "fp-of-the-build", "distill": "fp-d"}})
    stage = bundle_copy / "quantize"
    stage.mkdir()
    (stage / "float.tflite").write_bytes((bundle_copy / "model.tflite").read_bytes())  # parsed: a real model
    (stage / "stage.json").write_text(json.dumps({"stage": "quantize", "fingerprint": "fp-of-the-build"}))
    assert model_file_meta(stage / "float.tflite").meta.crop_padding == 0.1  # the build that wrote model.json
    (stage / "stage.json").write_text(json.dumps({"stage": "quantize", "fingerprint": "fp-of-a-later-build"}))
    with pytest.raises(ModelError) as exc:
        model_file_meta(stage / "float.tflite")
    line = exc.value.one_line()
    assert "another build" in line and "finish the build" in line and "\n" not in line
    # a stage that build did not make (an earlier build's prune folder, prune off since) is refused too
    prune = bundle_copy / "prune"
    prune.mkdir()
    _keras_file(prune / "pruned.keras", bundle_copy)
    (prune / "stage.json").write_text(json.dumps({"stage": "prune", "fingerprint": "fp-p"}))
    with pytest.raises(ModelError, match="another build"):
        model_file_meta(prune / "pruned.keras")
    # the bundle itself and a .keras beside model.json are not stage files: no record needed
    assert model_file_meta(bundle_copy).thresholds_apply
    _keras_file(bundle_copy / "student.keras", bundle_copy)
    assert model_file_meta(bundle_copy / "student.keras").meta_path == bundle_copy / "model.json"


def test_the_evaluator_reads_model_json_through_the_bundle_reader(bundle_copy, tiny_bundle, tmp_path):
    from tinyface.evaluation.model_eval import load_model

    _edit(bundle_copy, crop_padding=0.1, threshold="high")
    with pytest.raises(ModelError, match="'threshold' must be"):
        load_model(bundle_copy)
    lone = tmp_path / "lone.tflite"
    lone.write_bytes(tiny_bundle.model_bytes)
    with pytest.raises(ModelError, match="has no model.json"):  # it used to run with padding 0.25
        load_model(lone)


@pytest.mark.parametrize("command", [
    ("evaluate", "--model", "{m}"),
    ("bench", "--port", "/dev/null", "--model", "{m}"),
    ("emulate", "--once", "--model", "{m}"),
    ("flash", "--dry-run", "--model", "{m}", "--project-dir", "{tmp}/fw"),
])
@pytest.mark.parametrize("text", ["", "[]", '{"threshold": "high"}', None])
def test_every_command_answers_a_bad_model_json_with_one_line_and_exit_6(bundle_copy, tmp_path, command, text):
    if text is None:
        _edit(bundle_copy, threshold="high")
    else:
        (bundle_copy / "model.json").write_text(text)
    tripwire, mark = tensorflow_tripwire(tmp_path)
    proc = run_cli(*(a.format(m=bundle_copy, tmp=tmp_path) for a in command), env=tripwire)
    assert proc.returncode == 6, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: bad ") and "model.json" in lines[0]
    # refused before TensorFlow loads: evaluate took 7 s to say so
    assert not mark.exists()


def test_the_model_for_a_board_is_a_build_then_the_released_one(tiny_bundle, tmp_path, monkeypatch):
    import tinyface.resources
    from tinyface.model.bundle import resolve_model

    released = tmp_path / "released"
    monkeypatch.setattr(tinyface.resources, "models_dir", lambda: released)
    monkeypatch.chdir(tmp_path)

    def put(folder):
        shutil.copytree(tiny_bundle.model_path.parent, folder)

    with pytest.raises(ModelError, match="no model for esp32s3"):
        resolve_model(None, "esp32s3")
    put(released / "esp32")
    assert resolve_model(None, "esp32s3") == released / "esp32"
    put(tmp_path / "build" / "esp32")
    assert resolve_model(None, "esp32s3").as_posix() == "build/esp32"
    put(released / "esp32s3")
    assert resolve_model(None, "esp32s3") == released / "esp32s3"  # the board's own model before the esp32 preset's
    put(tmp_path / "build" / "esp32s3")
    assert resolve_model(None, "esp32s3").as_posix() == "build/esp32s3"
    (tmp_path / "build" / "esp32s3" / "model.json").unlink()  # an unfinished build is not a model
    assert resolve_model(None, "esp32s3") == released / "esp32s3"
    assert resolve_model("x/y", "esp32s3").as_posix() == "x/y"


def test_flash_bench_emulate_and_profile_pick_the_same_model(tiny_bundle, lfw_dir, tmp_path):
    """Issue #14: flash flashed build/esp32/, then bench/emulate/profile defaulted to models/esp32/.
    Bench checks its model against the emulator's INFO (exit 8 on a mismatch), so a bench that
    picked another model than emulate fails here."""
    import os
    import select
    import signal

    from tinyface.model.bundle import load_bundle

    shutil.copytree(tiny_bundle.model_path.parent, tmp_path / "build" / "esp32")  # not the released model
    built = load_bundle(tmp_path / "build" / "esp32")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "tinyface.cli.main", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL)

    flashed = run("flash", "--board", "esp32", "--dry-run", "--json")
    assert flashed.returncode == 0, flashed.stderr
    assert json.loads(flashed.stdout)["model"] == "build/esp32"
    profiled = run("profile", "--board", "esp32", "--json")
    assert profiled.returncode == 0, profiled.stderr
    assert json.loads(profiled.stdout)["model"] == "build/esp32/model.tflite"
    emu = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", "emulate", "--board", "esp32"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        ready, _, _ = select.select([emu.stdout], [], [], 60)
        port = emu.stdout.readline().strip() if ready else ""
        assert port.startswith("/dev/"), port
        benched = run("bench", "--board", "esp32", "--port", port, "--images", "2", "--no-host-check",
                      "--data", str(lfw_dir), "--json")  # no --model: the default, as for the others
        assert benched.returncode == 0, benched.stderr[-2000:]
        printed = json.loads(benched.stdout)
        assert printed["model"] == "build/esp32/model.tflite"
        assert printed["model_sha256"] == printed["device"]["model_sha256"] == built.model_hash
    finally:
        os.killpg(emu.pid, signal.SIGTERM)
        _, stderr = emu.communicate(timeout=30)
    assert f"sha256 {built.model_hash[:16]}" in stderr


# --- model.json's extra.split: the data settings that drew a build's validation people, recorded so
# that what loads those people again (benchmarks/identify_threshold.py) need not assume the preset's -----

def _set_split(folder, split):
    meta = json.loads((folder / "model.json").read_text())
    meta["extra"] = {**meta["extra"], SPLIT_KEY: split}
    (folder / "model.json").write_text(json.dumps(meta))


def test_the_split_record_round_trips_through_a_bundle(tiny_bundle, tmp_path):
    data = config.load(None, {"data": {"seed": 7, "val_fraction": 0.2, "test_filter": 0.0}}).data
    record = split_record(data)
    assert record == {"seed": 7, "val_fraction": 0.2, "test_filter": 0.0} and tuple(record) == SPLIT_SETTINGS
    meta = dataclasses.replace(tiny_bundle.meta, extra={**tiny_bundle.meta.extra, SPLIT_KEY: record})
    save_bundle(tmp_path / "b", tiny_bundle.model_bytes, meta)
    assert load_bundle(tmp_path / "b").meta.split == record


def test_a_bundle_without_the_record_has_none_and_still_loads(bundle_copy):
    assert load_bundle(bundle_copy).meta.split == {}


def test_a_partial_or_larger_record_gives_only_the_known_settings(bundle_copy):
    _set_split(bundle_copy, {"seed": 3, "people_file": "later.txt"})
    assert load_bundle(bundle_copy).meta.split == {"seed": 3}


@pytest.mark.parametrize("split, needle", [([0, 0.1], "must be a JSON object"), ({"seed": 1.5}, "'seed' must be"),
                                           ({"val_fraction": 0}, "'val_fraction' must be"),
                                           ({"test_filter": "x"}, "'test_filter' must be")])
def test_a_bad_record_is_a_model_error_naming_it(bundle_copy, split, needle):
    _set_split(bundle_copy, split)
    with pytest.raises(ModelError) as exc:
        load_bundle(bundle_copy)
    assert "extra.split" in exc.value.one_line() and needle in exc.value.one_line()


@pytest.mark.parametrize("name, values", [("val_fraction", [-0.1, 0.0, 1e-9, 0.1, 0.49, 0.5, 0.6, 0.99, 1.0]),
                                          ("test_filter", [-0.1, 0.0, 0.25, 0.99, 1.0, 1.5])])
def test_a_record_is_refused_exactly_where_the_settings_refuse_the_value(bundle_copy, name, values):
    """One range per split setting (tinyface.config): a model.json recording a data.val_fraction of
    0.6 was accepted (the record checked (0, 1)) though no build can run with it (the settings
    take (0, 0.5)). Both name the range alike."""
    def interval(message: str) -> str:
        return re.search(r"in ([\[(][^\])]*[\])])", message).group(1)

    for value in values:
        try:
            config.load(None, {"data": {name: value}})
            settings_refusal = None
        except ConfigError as exc:
            settings_refusal = interval(exc.one_line())
        _set_split(bundle_copy, {name: value})
        try:
            load_bundle(bundle_copy)
            record_refusal = None
        except ModelError as exc:
            record_refusal = interval(exc.one_line())
        assert record_refusal == settings_refusal, (name, value)


# --- the released model.json files record their builds' split ----------------------------------------
# models/esp32 (run R1) and models/esp32s3 (run S3R) were written before builds recorded
# ``extra.split`` (the data settings that drew the validation people), so scripts that load those
# people again took the preset's. Their split is established from the runs' own records: each run's
# report.json holds its settings, and the stage fingerprints recomputed from them (data, distill,
# prune, quantize, evaluate) are the ones in the run's stage.json files; S3R's are the very
# ``extra.stages`` of models/esp32s3/model.json, and R1's quantize/int8.tflite is models/esp32's
# .tflite (the sha256 its model.json records). Both: data.seed 0, data.val_fraction 0.1,
# data.test_filter 0.25. models/esp32c3 is run C3R2, whose build wrote its record itself (its
# predecessor D1 had none).

REPO = Path(__file__).resolve().parents[2]
RECORDED = {"esp32": {"seed": 0, "val_fraction": 0.1, "test_filter": 0.25},
            "esp32s3": {"seed": 0, "val_fraction": 0.1, "test_filter": 0.25},
            "esp32c3": {"seed": 0, "val_fraction": 0.1, "test_filter": 0.25}}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_released_model_records_the_split_its_build_drew(name):
    bundle = load_bundle(REPO / "models" / name)  # model.json validated, the .tflite's sha256 checked
    assert bundle.meta.split == RECORDED[name]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_record_sits_where_a_build_writes_it(name):
    """As tinyface.train.pipeline writes model.json (fsutil.write_json): the record last in extra, after
    the stage fingerprints, its settings in SPLIT_SETTINGS' order; the file is write_json's own text."""
    text = (REPO / "models" / name / "model.json").read_text(encoding="utf-8")
    meta = json.loads(text)
    assert text == json.dumps(meta, indent=2) + "\n"
    assert list(meta["extra"])[-1] == SPLIT_KEY  # its settings first; a later build adds the people's digest
    assert tuple(meta["extra"][SPLIT_KEY])[:len(SPLIT_SETTINGS)] == SPLIT_SETTINGS
    if STAGES_KEY in meta["extra"]:
        assert list(meta["extra"])[-2] == STAGES_KEY
