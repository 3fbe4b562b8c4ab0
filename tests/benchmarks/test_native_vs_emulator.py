"""benchmarks/native_vs_emulator.py: its --help, and why its device did not start."""

import os
import subprocess
import sys

from tests.conftest import BENCHMARKS, RELEASED, require_released_model as _released
from tinyface import errors


def test_native_vs_emulator_help_keeps_its_example_on_two_lines(parsers):
    description = parsers["native_vs_emulator.py"]["description"]
    assert "native_vs_emulator.py \\\n        --model models/esp32" in description


def test_native_vs_emulator_says_why_the_device_did_not_start(tmp_path):
    """A bad environment for `tinyface emulate` (TINYFACE_BOARDS_DIR a file), as link.py's test:
    was "emulator: the device (tinyface emulate) did not start", the reason on /dev/null."""
    _released()
    not_a_folder = tmp_path / "boards"
    not_a_folder.write_text("")
    env = dict(os.environ, TINYFACE_BOARDS_DIR=str(not_a_folder))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "native_vs_emulator.py"), "--model", str(RELEASED),
                           "--images", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == errors.DeviceError.exit_code, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "native_vs_emulator.py: error: emulator: the device (tinyface emulate) did not start: "
        "tinyface: error: TINYFACE_BOARDS_DIR must be a folder"), lines
