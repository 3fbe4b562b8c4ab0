"""Fixtures of the benchmarks/ tests: the scripts' command lines as argparse holds them.

Helpers these tests share with others (load_benchmark, run_benchmark, BENCHMARKS, RELEASED) are
tests/conftest.py's."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import BENCHMARKS, REPO

# Runs every script's main() up to its parse_args(), which records the parser and stops: the
# options as argparse holds them, without running anything a benchmark measures.
_PARSERS = r"""
import argparse, json, runpy, sys
from pathlib import Path

bench = Path(sys.argv[1])
sys.path.insert(0, str(bench))
seen = {}

class Parsed(BaseException):
    pass

def parse_args(self, args=None, namespace=None):
    seen["parser"] = self
    raise Parsed

argparse.ArgumentParser.parse_args = parse_args
out = {}
for name in sys.argv[2:]:
    seen.clear()
    sys.argv[0] = str(bench / name)
    try:
        runpy.run_path(str(bench / name), run_name="__main__")
    except Parsed:
        pass
    parser = seen.get("parser")
    if parser is None:
        out[name] = None
        continue
    formatter = parser._get_formatter()
    options = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        options.append({"flags": action.option_strings, "required": action.required,
                        "switch": action.nargs == 0, "default": repr(action.default),
                        "help": formatter._expand_help(action) if action.help else ""})
    out[name] = {"description": parser.description or "", "options": options}
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def parsers() -> dict:
    """``{script: {"description", "options": [{"flags", "required", "switch", "default", "help"}]}}``
    for every script a user runs (not _lib.py or _script.py); None for a script without argparse."""
    scripts = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    env = dict(os.environ, TINYFACE_CACHE=str(REPO / ".pytest_cache" / "tinyface" / "cache"))
    proc = subprocess.run([sys.executable, "-c", _PARSERS, str(BENCHMARKS), *scripts], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)
