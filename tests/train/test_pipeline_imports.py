"""A build loads every tinyface module its stages use when it starts, so editing or
upgrading tinyface during an hour-long build cannot mix two versions of the code."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import tinyface

PACKAGE = Path(tinyface.__file__).parent


def _module_path(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for candidate in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(name: str) -> set[str]:
    """The tinyface modules ``name`` imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(_module_path(name).read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tinyface.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tinyface":
            for alias in node.names:  # `from tinyface.train import distill` names a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _module_path(sub) else node.module)
    return {m for m in found if m != "tinyface" and _module_path(m)}


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imports(name) - seen)
    return seen


def test_every_module_a_build_reaches_is_loaded_when_it_starts():
    reached = _closure("tinyface.train.pipeline")
    assert {"tinyface.evaluation.report", "tinyface.train.stages_eval", "tinyface.teacher"} <= reached
    script = ("import sys, json; import tinyface.train.pipeline as p; p.load_stage_modules(); "
              "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tinyface'))))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    missing = sorted(reached - loaded)
    assert not missing, f"add to pipeline.STAGE_MODULES: {missing}"
