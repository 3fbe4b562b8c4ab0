"""`tinyface build` with extra faces that are not there: one line naming the command that gets
them, exit code 4 (DataError), before any work (nothing aligned or trained, nothing written)."""

import os
import subprocess
import sys

from tests.conftest import LFW_DIR, needs_lfw


@needs_lfw
def test_missing_extra_faces_fail_in_one_line_before_any_work(tmp_path):
    env = {**os.environ, "TINYFACE_DATASETS": str(tmp_path / "datasets"), "TINYFACE_DATA": str(LFW_DIR),
           "TINYFACE_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "build"
    # the esp32 preset distils from FairFace: a plain `tinyface build` needs it
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "build", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 4, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "tinyface data fetch fairface" in lines[0], proc.stderr
    # nothing aligned or trained, and no empty folder left (it was: the folder made for the build)
    assert not out.exists() and not (tmp_path / "cache").exists()
