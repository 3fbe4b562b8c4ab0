"""The repo passes `ruff check` as configured in pyproject.toml ([tool.ruff]: lines up to 120
characters, pycodestyle errors and warnings, pyflakes), so that neither comes back."""

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import REPO, skip_or_fail


def test_ruff_check_passes():
    if importlib.util.find_spec("ruff") is None:
        skip_or_fail("ruff is not installed (pip install -e '.[test]')")
    # no paths: the config's own file selection and excludes apply, tests/ included
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"`ruff check` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}", pytrace=False)
