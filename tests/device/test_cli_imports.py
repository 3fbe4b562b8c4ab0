"""`tinyface emulate|bench|profile --help` (and the device-side modules) never import TensorFlow."""

import subprocess
import sys

import pytest


def _imported(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tinyface.cli.main", *args],
                          capture_output=True, text=True, timeout=120)
    modules = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
               if line.startswith("import time:")}
    return proc, modules


@pytest.mark.parametrize("command", ["emulate", "bench", "profile"])
def test_help_does_not_import_tensorflow(command):
    proc, modules = _imported(command, "--help")
    assert proc.returncode == 0 and "Usage: tinyface" in proc.stdout
    assert "tensorflow" not in modules and "tf_keras" not in modules, f"`tinyface {command} --help` imports TensorFlow"


def test_profile_run_does_not_import_tensorflow(tiny_bundle):
    proc, modules = _imported("profile", "--model", str(tiny_bundle.model_path.parent), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tensorflow" not in modules


def test_device_side_modules_do_not_import_tensorflow():
    code = ("import sys\n"
            "import tinyface.device.emulator, tinyface.protocol.client, tinyface.protocol.cheader\n"
            "import tinyface.device.bench\n"
            "import tinyface.model.graph, tinyface.boards.profile\n"
            "assert 'tensorflow' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
