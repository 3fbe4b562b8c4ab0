"""The pytest markers declared in pyproject.toml are exactly the ones the tests use
(--strict-markers refuses undeclared ones; this refuses declared ones nobody uses)."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILTIN = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings"}


def test_declared_markers_are_used():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {m.split(":", 1)[0].strip() for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    used = set()
    for path in (REPO / "tests").rglob("*.py"):
        used |= set(re.findall(r"pytest\.mark\.([a-z_]+)", path.read_text(encoding="utf-8")))
    assert declared == used - BUILTIN
