"""What every script of benchmarks/ holds to, as a user meets it: `--help` teaches (what it
measures, an example, every option with its default); every tinyface name a script imports
exists and is public; what several scripts share lives in benchmarks/_lib.py, not in other
scripts or tests/; every benchmark command line in README.md and docs/ names a script that
exists with options it has. None of these runs a measurement."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BENCHMARKS, REPO

# every file of benchmarks/, _lib.py and _script.py included
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))
# the scripts a user runs (not _lib.py, _script.py)
USER_SCRIPTS = [name for name in SCRIPTS if not name.startswith("_")]


# --- --help ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("script", USER_SCRIPTS)
def test_help_says_what_it_measures_with_an_example_and_every_default(parsers, script):
    parser = parsers[script]
    assert parser is not None, f"{script}: no argparse command line"
    assert f"python benchmarks/{script}" in parser["description"], "--help shows no example command"
    assert len(parser["description"].splitlines()) >= 3, "--help does not say what the script measures"
    for option in parser["options"]:
        name = "/".join(option["flags"])
        assert option["help"], f"{script} {name}: no help text"
        has_default = not option["required"] and not option["switch"] and option["default"] not in ("None", "[]")
        if has_default:
            assert "default" in option["help"].lower(), f"{script} {name}: help hides its default {option['default']}"


def test_help_runs_for_a_script_that_imports_its_neighbours():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "mirror_enroll.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--people" in proc.stdout and "python benchmarks/mirror_enroll.py" in proc.stdout


# --- the tinyface names a script imports: they exist, they are public --------------------------------

def _module_file(module: str) -> Path | None:
    path = REPO.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _defined(path: Path) -> set[str]:
    """Names a module binds at its top level (or in a top-level if/try/with), read from its source."""
    names, body = set(), list(ast.parse(path.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            body += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
            body += [child for handler in getattr(node, "handlers", []) for child in handler.body]
    return names


@pytest.mark.parametrize("script", USER_SCRIPTS)
def test_every_tinyface_name_a_benchmark_imports_exists(script):
    """Read, not imported: a name a script imports inside a function (second_teacher.py's
    dlib_raw_norm once imported tinyface.train.teacher, gone since the teacher moved) fails
    only at the end of a long run."""
    missing = []
    for node in ast.walk(ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            missing += [a.name for a in node.names if a.name.startswith("tinyface") and not _module_file(a.name)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinyface"):
            source = _module_file(node.module)
            if source is None:
                missing.append(node.module)
                continue
            missing += [f"{node.module}.{a.name}" for a in node.names
                        if a.name not in _defined(source) and not _module_file(f"{node.module}.{a.name}")]
    assert not missing, f"{script} (line numbers in the source) imports what tinyface lacks: {missing}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_benchmark_uses_a_private_name_of_tinyface(script):
    """Neither ``from tinyface.x import _y`` nor ``something._y`` (Aligner._find, teacher._load, and
    tinyface.device's _mtime, _compiler_version and _git_head, public now): xtensa_kernels.py,
    hard_faces.py, dark_chips.py and second_teacher.py did."""
    tree = ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))
    wrong = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinyface"):
            wrong += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            wrong.append(ast.unparse(node))
    assert not wrong, f"{script} uses {wrong}"


# --- what several benchmarks share lives in benchmarks/_lib.py ---------------------------------------

def _imports(script: str) -> list[tuple[str, str]]:
    """(module, name) of every import in a benchmark, top level or inside a function."""
    found = []
    for node in ast.walk(ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.module or "", alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_benchmark_is_another_ones_library_for_the_validation_people(script):
    """identify_threshold.py and compare_runs.py served six scripts; that code is _lib.py's now."""
    wrong = [f"{module}.{name}" for module, name in _imports(script)
             if module in ("identify_threshold", "compare_runs")]
    assert not wrong, f"{script} imports {wrong}: import it from benchmarks/_lib.py"


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_benchmark_imports_from_tests(script):
    """link.py built its fallback model with tests/conftest.py's builder. (xtensa_kernels.py's private
    names of tinyface.device: test_no_benchmark_uses_a_private_name_of_tinyface.)"""
    source = (BENCHMARKS / script).read_text(encoding="utf-8")
    wrong = [f"{module}.{name}" for module, name in _imports(script)
             if module == "conftest" or module.startswith("tests")]
    assert not wrong, f"{script} imports {wrong}"
    assert not re.search(r"""sys\.path\.insert\([^)]*["']tests["']""", source), f"{script} puts tests/ on sys.path"


# --- the benchmark command lines of README.md and docs/ -----------------------------------------------

def _doc_commands():
    """``(document, line, script, options)`` for every `python benchmarks/X.py ...` command in
    README.md and docs/*.md: an inline command runs to its closing backtick (it may wrap), one in
    a fenced block to the end of its line (or of its backslash-continued lines)."""
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"python (?:-m )?benchmarks/(\w+\.py)", text):
            rest = text[match.end():]
            fenced = text.count("```", 0, match.start()) % 2 == 1
            if fenced:
                end = re.search(r"(?<!\\)\n", rest)
            else:
                end = re.search(r"`|\n\s*\n", rest)
            command = rest[:end.start() if end else len(rest)]
            options = re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", command)
            yield doc.relative_to(REPO), text.count("\n", 0, match.start()) + 1, match.group(1), options


def test_docs_name_benchmarks_that_exist_with_options_they_have(parsers):
    wrong = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for name in set(re.findall(r"benchmarks/(\w+\.py)", doc.read_text(encoding="utf-8"))):
            if not (BENCHMARKS / name).is_file():
                wrong.append(f"{doc.relative_to(REPO)}: no benchmarks/{name}")
    commands = list(_doc_commands())
    assert len(commands) > 20  # the scan finds the commands the documents show
    for doc, line, name, options in commands:
        if name not in parsers:
            continue  # reported above
        known = {flag for option in parsers[name]["options"] for flag in option["flags"]} | {"--help", "-h"}
        wrong += [f"{doc}:{line}: benchmarks/{name} has no {option}" for option in options if option not in known]
    assert not wrong, "\n".join(wrong)
