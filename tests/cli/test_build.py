"""`tinyface build` (tinyface/cli/build.py): `--print-config` checks the board as the build does;
`--hide-test --json` of an evaluation kept from before the validation parity shows none (the pipeline
stubbed: the real builds' --hide-test is tests/train/test_build_quick.py's);
a user's own folder too small for the splits is refused before any alignment or training. Runs
`tinyface` from an empty folder, in this process without TensorFlow or training (the folder too
small: a real `tinyface build` process)."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tests.conftest import (
    copy_people,
    error_in_process as tinyface,
    imported_modules,
    needs_lfw,
    own_board,
    parity_metrics,
    people_folder,
    run_in_process as run,
    shown_test_parity,
)
from tinyface import errors
from tinyface.cli import main as cli_main

pytestmark = pytest.mark.usefixtures("own_folder")


# --- --print-config refuses a board the build would refuse ----------------------------------------------

@pytest.mark.usefixtures("no_boards_dir")
def test_print_config_refuses_an_unknown_board_as_the_build_does(capsys, tmp_path):
    # was: the settings printed, exit 0, with a board no build accepts
    code, line = tinyface(capsys, "build", "--print-config", "--set", "firmware.board=nosuch")
    # the build's own refusal (before any data is read or anything trained)
    build_code, build_line = tinyface(capsys, "build", "--set", "firmware.board=nosuch", "--data", tmp_path / "none",
                                      "--out", tmp_path / "out")
    assert code == build_code == errors.ConfigError.exit_code == 3
    assert line == build_line and "unknown board 'nosuch'" in line and "known boards: esp32" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("no_boards_dir")
def test_print_config_json_with_an_unknown_board_is_the_error_object(capsys):
    code, out, err = run(capsys, "build", "--print-config", "--json", "--set", "firmware.board=nosuch")
    assert code == 3 and json.loads(out) == {"error": err.strip().removeprefix("tinyface: error: "),
                                             "kind": "ConfigError", "exit_code": 3}


@pytest.mark.usefixtures("no_boards_dir")
def test_print_config_accepts_a_board_of_ones_own(capsys, tmp_path):
    own = own_board(tmp_path / "mine")
    code, out, err = run(capsys, "--boards-dir", own, "build", "--print-config", "--json",
                         "--set", "firmware.board=myboard")
    assert code == 0, err
    assert json.loads(out)["firmware"]["board"] == "myboard"


# --- --hide-test: TFLM-vs-TFLite parity on the validation images and pairs --------------------------------
# `build --hide-test --json`: the summary's `parity` was TFLM against TFLite on the evaluation's (test)
# images; it is the validation images' and pairs' now. The real builds check it
# (tests/train/test_build_quick.py: test_rerun_skips_unchanged_stages for --json, with and without
# --hide-test, and test_hide_test_ends_with_validation_figures_and_keeps_the_test_in_the_report for the
# lines printed; validation.md/.json: tests/evaluation/test_report.py). What no build of today's code
# can give is an evaluation kept from before the validation parity was measured: that one case is
# checked here with the pipeline stubbed.

@pytest.fixture
def build_with_pipeline_stubbed(monkeypatch, tmp_path):
    """`tinyface build` whose pipeline (run_build) returns ``metrics`` at once, with no TensorFlow
    and no training; the metrics are real BuildMetrics (conftest's parity_metrics)."""
    from tinyface import console
    from tinyface.train import pipeline

    def use(metrics):
        stages = [pipeline.StageInfo(n, "fp", False, 1.0) for n in ("data", "distill", "evaluate")]
        monkeypatch.setattr(pipeline, "run_build", lambda *a, **k: SimpleNamespace(metrics=metrics, stages=stages))
        monkeypatch.setattr(console, "quiet_tensorflow", lambda import_now=False: None)
        return people_folder(tmp_path / "people", 24, photos=3)

    return use


def test_hide_test_json_of_an_evaluation_from_before_has_no_parity_pipeline_stubbed(capsys,
                                                                                    build_with_pipeline_stubbed,
                                                                                    tmp_path):
    data = build_with_pipeline_stubbed(parity_metrics(validation_parity=None))  # a metrics.json from before
    with pytest.raises(SystemExit) as exc:
        cli_main.main([str(a) for a in ["build", "--quick", "--data", data, "--out", tmp_path / "out", "--set",
                                        "data.identify_min_images=3", "--set", "data.enroll_images=2", "--hide-test",
                                        "--json"]])
    out, err = capsys.readouterr()
    assert exc.value.code in (0, None), err
    summary = json.loads(out)
    # no validation parity to show, and not the test's in its place
    assert summary["parity"] is None and summary["test_hidden"] is True and shown_test_parity(out) == []


# --- a user's own folder too small for the splits: refused with the numbers needed, before training ----

def test_a_dataset_too_small_for_a_validation_split_is_refused_before_training(lfw_dir, tmp_path):
    people = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]
    root = copy_people(lfw_dir, tmp_path / "friends", dict.fromkeys(people, 12), flat=True)
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "build", "--quick", "--data", str(root),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 4, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: "), proc.stderr[-2000:]
    assert "5 people split into 2 training, 1 validation" in lines[0]
    assert "at least 21 people at data.val_fraction=0.1" in lines[0]
    assert not (tmp_path / "cache" / "faces.sqlite").exists()  # nothing aligned, nothing trained
    assert not (tmp_path / "out").exists()  # the folder made for the build is gone again (it was left empty)
    (tmp_path / "out").mkdir()  # a folder that was there before stays
    again = subprocess.run(proc.args, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert again.returncode == 4 and (tmp_path / "out").is_dir(), again.stderr[-2000:]


# --- a distill.assistant that is not there: refused before the run folder is made and TensorFlow loads ---

@needs_lfw
def test_a_missing_assistant_is_refused_before_the_run_folder_and_tensorflow(tmp_path):
    # it was refused only once the build had made --out (with its lock file) and loaded TensorFlow
    out = tmp_path / "run"
    proc, modules = imported_modules("build", "--quick", "--out", str(out), "--set", "distill.assistant=nowhere",
                                     cwd=tmp_path, env={"TINYFACE_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == errors.ConfigError.exit_code, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: distill.assistant = 'nowhere': no model bundle")
    assert not out.exists()
    assert "tensorflow" not in modules


# --- an --out that holds one's own files: refused, not written into -------------------------------------

@needs_lfw
def test_a_build_into_a_folder_of_ones_own_files_is_refused_before_anything_is_written(tmp_path):
    # was: the build wrote report.md, model.tflite, model.json ... among them, over any of the same name
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "report.md").write_text("my report\n")
    (out / "notes.txt").write_text("notes\n")
    proc, modules = imported_modules("build", "--quick", "--out", str(out), cwd=tmp_path,
                                     env={"TINYFACE_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == errors.OutputError.exit_code, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"tinyface: error: --out {out} is not a tinyface build folder and not empty "
                               "(notes.txt, report.md)")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.md"]  # no lock, nothing else
    assert (out / "report.md").read_text() == "my report\n"
    assert "tensorflow" not in modules and not (tmp_path / "cache" / "faces.sqlite").exists()


def test_an_earlier_build_folder_or_an_empty_one_is_accepted_as_out(tmp_path):
    from tinyface.fsutil import LOCK_NAME
    from tinyface.model.bundle import STAGE_RECORD
    from tinyface.train.pipeline import check_run_folder

    check_run_folder(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_run_folder(tmp_path / "empty")
    killed = tmp_path / "killed"  # a build killed before its first stage ended: its lock and scratch folder
    (killed / ".tmp").mkdir(parents=True)
    (killed / LOCK_NAME).write_text("123\n")
    check_run_folder(killed)
    earlier = tmp_path / "earlier"  # a finished one, even with its lock file removed
    (earlier / "distill").mkdir(parents=True)
    (earlier / "distill" / STAGE_RECORD).write_text("{}")
    (earlier / "report.md").write_text("x")
    check_run_folder(earlier)
    (killed / LOCK_NAME).unlink()
    with pytest.raises(errors.OutputError, match=r"not a tinyface build folder and not empty \(\.tmp\)"):
        check_run_folder(killed)
