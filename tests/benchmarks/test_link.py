"""benchmarks/link.py: the model it serves by default, and why its emulator did not start."""

import os
import subprocess
import sys

from tests.conftest import BENCHMARKS, RELEASED, load_benchmark as _load, require_released_model
from tinyface import errors


def test_link_serves_the_released_model_by_default():
    link = _load("link")
    assert link._bundle_dir(None) == (RELEASED, "released models/esp32")


def test_link_says_why_the_emulator_did_not_start(tmp_path):
    """A bad environment for `tinyface emulate` (TINYFACE_BOARDS_DIR a file): was "the emulator did
    not start", a plain exit 1 and no reason. A baud rate of 0 is the command line's mistake."""
    require_released_model()
    not_a_folder = tmp_path / "boards"
    not_a_folder.write_text("")
    env = dict(os.environ, TINYFACE_BOARDS_DIR=str(not_a_folder))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "link.py"), "--bauds", "115200"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == errors.DeviceError.exit_code, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"link.py: error: the emulator (tinyface emulate --model {RELEASED} --baud 115200) did not start: "
        "tinyface: error: TINYFACE_BOARDS_DIR must be a folder"), lines
    zero = subprocess.run([sys.executable, str(BENCHMARKS / "link.py"), "--bauds", "0"], capture_output=True,
                          text=True, timeout=120)
    assert zero.returncode == errors.EXIT_USAGE and "Traceback" not in zero.stderr
    assert zero.stderr.strip().splitlines()[-1] == "link.py: error: --bauds: every baud rate must be at least 1"
