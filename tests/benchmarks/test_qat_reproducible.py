"""benchmarks/qat_reproducible.py: the comparison it prints, and its bad input."""

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "qat_reproducible.py"


def _script():
    spec = importlib.util.spec_from_file_location("qat_reproducible", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_first_step_whose_weights_differ_is_found():
    first = _script().first_difference
    assert first(["a", "b", "c"], ["a", "b", "c"]) is None
    assert first(["a", "b", "c"], ["a", "x", "c"]) == 2
    assert first(["a", "b"], ["a", "b", "c"]) == 3, "a run that stopped early differs where it stopped"


def test_a_folder_without_a_student_is_one_line_and_the_model_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--run", str(tmp_path), "--preset", "esp32c3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 6 and "not a build folder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_an_unknown_preset_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "prune").mkdir()
    (tmp_path / "prune" / "pruned.keras").write_bytes(b"")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--run", str(tmp_path), "--preset", "nosuch"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "nosuch" in proc.stderr and "Traceback" not in proc.stderr
