"""The package layering of docs/architecture.md, checked: a module imports only from its own
package and from the rows below its own (module-level and function-level imports alike)."""

import ast
import re
from pathlib import Path

import pytest

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
# Where each module belongs (the longest matching prefix wins; the bare "tinyface" is a place
# only for the module tinyface itself, so a new tinyface.<package> must be given a row here).
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


def _place(module: str) -> str:
    if module in PLACES:
        return PLACES[module]
    parts = module.split(".")
    for n in range(len(parts) - 1, 1, -1):  # tinyface.x and longer: never the bare "tinyface"
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


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The tinyface modules module ``name`` (at ``path``) imports (``from tinyface.x import y``
    names module x.y if there is one, else x; a relative import counts as the absolute one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "tinyface"}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # from .x import y / from .. import y, resolved against the package
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            if module.split(".")[0] != "tinyface":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in modules else module)
    return found


def _violations() -> set[tuple[str, str]]:
    modules = _modules()
    bad = set()
    for name, path in modules.items():
        here = _place(name)
        for target in _imports(name, path, modules):
            there = _place(target)
            if there != here and _row(there) <= _row(here):
                bad.add((name, target))
    return bad


def test_every_module_has_a_place():
    modules = _modules()
    assert {"tinyface", "tinyface.config", "tinyface.cli.main", "tinyface.device"} <= modules.keys()
    for name in modules:
        _place(name)
    # a module nobody has placed is refused, not filed under the package's own row
    for stray in ("tinyface.newpkg", "tinyface.newpkg.x", "tinyface.newmodule"):
        with pytest.raises(AssertionError, match=f"{re.escape(stray)} has no place in the layering"):
            _place(stray)
    assert _place("tinyface") == "foundation"
    assert _place("tinyface.device.flash") == "device"


def test_no_module_imports_from_its_own_row_or_above():
    bad = _violations()
    assert not bad, "imports against docs/architecture.md's layering: " + ", ".join(
        f"{a} -> {b} ({_place(a)} may not import {_place(b)})" for a, b in sorted(bad))


def test_relative_imports_count_as_the_absolute_ones(tmp_path):
    """``from ..cli import main`` in tinyface/model/bundle.py is tinyface.cli.main (and
    tinyface.cli where there is no such module)."""
    modules = _modules()
    source = tmp_path / "bundle.py"
    source.write_text("from ..cli import main\nfrom . import graph\nfrom .runtime import TflmRunner\n"
                      "from .. import boards\n", encoding="utf-8")
    assert _imports("tinyface.model.bundle", source, modules) == {
        "tinyface.cli.main", "tinyface.model.graph", "tinyface.model.runtime", "tinyface.boards"}
    init = tmp_path / "__init__.py"
    init.write_text("from .graph import analyze\n", encoding="utf-8")
    assert _imports("tinyface.model", init, modules) == {"tinyface.model.graph"}


def test_the_rows_are_the_ones_the_architecture_page_shows():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text.split("<!-- layers -->", 2)[1]
    cells = [line.split("|")[1].strip() for line in block.splitlines() if line.startswith("|")]
    rows = [re.findall(r"[a-z]+", cell) for cell in cells if cell not in ("row", "---")]
    assert rows == ROWS, "docs/architecture.md's layer rows differ from tests/test_layering.py's ROWS"
