"""benchmarks/_script.py's run_script, how every benchmark ends: a user's mistake is one line on
stderr and the exit code of its kind (a tinyface error's own), never a traceback or a plain exit 1;
a bug keeps its traceback."""

import ast
import os
import subprocess
import sys

import pytest

from tests.conftest import BENCHMARKS, load_benchmark as _load
from tinyface.errors import DataError, ModelError

# every file of benchmarks/, _lib.py and _script.py included
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))


def test_run_script_maps_an_error_to_its_exit_code_and_lets_a_bug_through(capsys, monkeypatch):
    script = _load("_script")
    monkeypatch.setattr(sys, "argv", ["benchmarks/whatever.py"])

    def missing():
        raise ModelError("no model at /x", hint="pass --model DIR")

    with pytest.raises(SystemExit) as ended:
        script.run_script(missing)
    assert ended.value.code == ModelError.exit_code
    assert capsys.readouterr().err == "whatever.py: error: no model at /x (pass --model DIR)\n"

    def bug():
        raise ZeroDivisionError("a bug keeps its traceback")

    with pytest.raises(ZeroDivisionError):
        script.run_script(bug)


@pytest.mark.parametrize("argv, code, words", [
    (["whiten.py", "--model", "{tmp}/no-model", "--preset", "esp32"], ModelError.exit_code, "no model at"),
    (["flip_average.py", "--model", "{tmp}/no-model", "--preset", "esp32"], ModelError.exit_code, "no model at"),
    (["kernels.py", "--model", "{tmp}/no-model", "--faces", "0"], ModelError.exit_code, "no model at"),
    (["teacher_at_student_input.py", "--preset", "no-such-preset"], 3, "unknown preset"),
    (["align_lfw.py", "--data", "{tmp}/no-lfw"], DataError.exit_code, "{tmp}/no-lfw"),
    (["underexposed_lfw.py", "--data", "{tmp}/no-lfw", "--cache", "{tmp}/cache"], DataError.exit_code,
     "no LFW images in"),
    (["chip_fill.py", "--out", "{tmp}/no-sets", "--data", "{tmp}/no-lfw"], DataError.exit_code,
     "run benchmarks/hard_faces.py --out"),
    (["dark_chips.py", "--out", "{tmp}/no-sets", "--data", "{tmp}/no-lfw"], DataError.exit_code,
     "run benchmarks/hard_faces.py --out"),
    (["hard_faces_student.py", "--out", "{tmp}/no-sets"], DataError.exit_code, "run benchmarks/hard_faces.py --out"),
    (["second_teacher.py", "--mfn-dir", "{tmp}/no-models"], DataError.exit_code, "no mobileface.json"),
    (["pareto.py", "--configs", "48"], 2, "is not SIZE:WIDTH"),
    (["teacher.py", "--chips", "0"], 2, "at least 1"),
    # were sys.exit(message): one line, but exit 1 whatever the kind of mistake
    (["s3_arena.py", "--board", "esp32", "--faces", "0", "--work", "{tmp}/work"], 3, "not the S3's"),
    (["hard_faces.py", "--out", "{repo}/hard-sets"], 3, "outside the repository"),
], ids=lambda value: value[0] if isinstance(value, list) else None)
def test_a_users_mistake_is_one_line_and_its_exit_code(tmp_path, argv, code, words):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{repo}", str(BENCHMARKS.parent)) for a in argv]
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / argv[0]), *argv[1:]], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert words.replace("{tmp}", str(tmp_path)) in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{argv[0]}: error: "), last
    if code != 2:  # argparse's own usage line comes before its error line
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_benchmark_ends_with_a_plain_exit_1_on_a_message(script):
    """``raise SystemExit("...")`` exits 1 whatever the mistake; a tinyface error has its own code
    (run_script). _lib.py, link.py and chip_fill.py did, and native_vs_emulator.py (the device did
    not start, bench failed: DeviceError) and val_neighbours.py (a preset without extra faces:
    ConfigError)."""
    tree = ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))
    messages = [ast.unparse(node.exc) for node in ast.walk(tree)
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                and getattr(node.exc.func, "id", "") == "SystemExit" and node.exc.args
                and (isinstance(node.exc.args[0], ast.JoinedStr)
                     or (isinstance(node.exc.args[0], ast.Constant) and isinstance(node.exc.args[0].value, str)))]
    assert not messages, f"{script}: {messages}"
