"""How the suite's own pytest options behave (pyproject's addopts, tests/conftest.py)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

ONE_TEST = "tests/test_fsutil.py::test_sha256_file"


@pytest.mark.parametrize("options, in_workers", [([], True), (["-s"], False), (["-s", "-n", "2"], True)])
def test_dash_s_runs_in_this_process_so_that_prints_show(options, in_workers):
    # was: `pytest -s` ran in pyproject's -n auto workers, whose output pytest-xdist never shows
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *options, ONE_TEST],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (" workers [1 item]" in proc.stdout) == in_workers, proc.stdout
