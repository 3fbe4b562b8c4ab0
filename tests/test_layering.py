"""The package layering of docs/architecture.md, checked: a module imports only from its own
package and from the rows below its own (module-level and function-level imports alike)."""

import ast
import re
from pathlib import Path

import tinyface

PACKAGE = Path(tinyface.__file__).resolve().parent
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

# Top row first. A package may import from any row below its own, never from its own row
# (other than itself) or above. docs/architecture.md shows the same rows.
ROWS = [
    ["cli"],
    ["train", "device"],
    ["codegen", "evaluation"],
    ["boards", "data"],
    ["model", "teacher", "protocol"],
    ["foundation"],
]
# Where each module belongs (the longest matching prefix wins).
PLACES = {
    "tinyface": "foundation",  # __version__
    "tinyface.errors": "foundation", "tinyface.fsutil": "foundation", "tinyface.resources": "foundation",
    "tinyface.console": "foundation", "tinyface.config": "foundation", "tinyface.vectors": "foundation",
    "tinyface.protocol": "protocol",
    "tinyface.model": "model",
    "tinyface.teacher": "teacher",
    "tinyface.data": "data",
    "tinyface.boards": "boards",
    "tinyface.codegen": "codegen",
    "tinyface.evaluation": "evaluation",
    "tinyface.device": "device",
    "tinyface.train": "train",
    "tinyface.cli": "cli",
}
# Imports that break the layering today, each with the change that removes it. The test
# fails when one of them disappears, so that it is taken off this list.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _place(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in PLACES:
            return PLACES[prefix]
    raise AssertionError(f"{module} has no place in the layering: add it to PLACES and docs/architecture.md")


def _row(place: str) -> int:
    return next(i for i, row in enumerate(ROWS) if place in row)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The tinyface modules a file imports (``from tinyface.x import y`` names module x.y if
    there is one, else x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "tinyface"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "tinyface":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def _violations() -> set[tuple[str, str]]:
    modules = _modules()
    bad = set()
    for name, path in modules.items():
        here = _place(name)
        for target in _imports(path, modules):
            there = _place(target)
            if there != here and _row(there) <= _row(here):
                bad.add((name, target))
    return bad


def test_every_module_has_a_place():
    for name in _modules():
        _place(name)


def test_no_module_imports_from_its_own_row_or_above():
    bad = _violations() - KNOWN_EXCEPTIONS
    assert not bad, "imports against docs/architecture.md's layering: " + ", ".join(
        f"{a} -> {b} ({_place(a)} may not import {_place(b)})" for a, b in sorted(bad))


def test_known_exceptions_still_exist():
    gone = KNOWN_EXCEPTIONS - _violations()
    assert not gone, f"fixed, take them off KNOWN_EXCEPTIONS: {sorted(gone)}"


def test_the_rows_are_the_ones_the_architecture_page_shows():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text.split("<!-- layers -->", 2)[1]
    cells = [line.split("|")[1].strip() for line in block.splitlines() if line.startswith("|")]
    rows = [re.findall(r"[a-z]+", cell) for cell in cells if cell not in ("row", "---")]
    assert rows == ROWS, "docs/architecture.md's layer rows differ from tests/test_layering.py's ROWS"
