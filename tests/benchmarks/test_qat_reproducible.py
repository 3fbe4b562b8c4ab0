"""benchmarks/qat_reproducible.py: the comparison it prints, and its bad input."""

from tests.conftest import load_benchmark, run_benchmark


def test_the_first_step_whose_weights_differ_is_found():
    first = load_benchmark("qat_reproducible").first_difference
    assert first(["a", "b", "c"], ["a", "b", "c"]) is None
    assert first(["a", "b", "c"], ["a", "x", "c"]) == 2
    assert first(["a", "b"], ["a", "b", "c"]) == 3, "a run that stopped early differs where it stopped"


def test_a_folder_without_a_student_is_one_line_and_the_model_exit_code(tmp_path):
    proc = run_benchmark("qat_reproducible.py", "--run", tmp_path, "--preset", "esp32c3")
    assert proc.returncode == 6 and "not a build folder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_an_unknown_preset_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "prune").mkdir()
    (tmp_path / "prune" / "pruned.keras").write_bytes(b"")
    proc = run_benchmark("qat_reproducible.py", "--run", tmp_path, "--preset", "nosuch")
    assert proc.returncode == 3 and "nosuch" in proc.stderr and "Traceback" not in proc.stderr
