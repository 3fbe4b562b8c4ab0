"""`tinyface evaluate`: the released model on a small folder-per-person dataset of real
LFW photos, in TFLite and in TFLM, with the report; and its one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RELEASED = REPO / "models" / "esp32"
PEOPLE = {"Colin_Powell": 8, "Tony_Blair": 8, "Donald_Rumsfeld": 8, "Gerhard_Schroeder": 8, "Ariel_Sharon": 3,
          "Hugo_Chavez": 3}


def run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture
def people(make_dataset):
    return make_dataset(PEOPLE, name="people")


@pytest.mark.skipif(not (RELEASED / "model.tflite").is_file(), reason="no released model in models/esp32")
@pytest.mark.parametrize("runtime", ["tflite", "tflm"])
def test_evaluate_released_model_on_own_people(people, tmp_path, runtime):
    out = tmp_path / "report"
    proc = run_cli("evaluate", "--model", str(RELEASED), "--data", str(people), "--enroll", "4", "--runtime", runtime,
                   "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["images"] == sum(PEOPLE.values()) and result["people"] == len(PEOPLE)
    assert result["runtime"] == runtime
    n = sum(PEOPLE.values())
    v = result["verification"]
    assert v["n_pairs"] == n * (n - 1) // 2 and 0.5 < v["auc"] <= 1.0
    assert "shipped threshold" in result["threshold_source"]
    i = result["identification"]
    # 4 people have more than 4 images: enrolled; the 2 with 3 images are strangers
    assert i["n_people"] == 4 and i["n_probes"] == 4 * 4 and i["n_strangers"] == 6
    assert 0.0 <= i["accuracy"] <= i["closed_set_accuracy"] <= 1.0
    for name in ("report.md", "report.json", "roc.png", "confusion.png"):
        assert (out / name).is_file()


def test_evaluate_missing_model_is_one_line(people, tmp_path):
    proc = run_cli("evaluate", "--model", str(tmp_path / "nope"), "--data", str(people))
    assert proc.returncode == 6 and "model not found" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_evaluate_rejects_a_file_that_is_not_a_model(people, tmp_path):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"not a flatbuffer at all")
    proc = run_cli("evaluate", "--model", str(bogus), "--data", str(people))
    assert proc.returncode == 6 and "Traceback" not in proc.stderr, proc.stderr
