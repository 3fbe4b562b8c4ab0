"""The scripts of benchmarks/ as a user meets them: `--help` teaches (what it measures, an example,
every option with its default), a user's mistake is one line and the exit code of its kind
(benchmarks/_script.py), every tinyface name a script imports exists, and every benchmark
command line in README.md and docs/ names a script that exists with options it has. None of
these runs a measurement."""

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinyface.errors import DataError, ModelError

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.fixture(scope="module")
def parsers() -> dict:
    env = dict(os.environ, TINYFACE_CACHE=str(REPO / ".pytest_cache" / "tinyface" / "cache"))
    proc = subprocess.run([sys.executable, "-c", _PARSERS, str(BENCHMARKS), *SCRIPTS], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("script", SCRIPTS)
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


def test_native_vs_emulator_help_keeps_its_example_on_two_lines(parsers):
    description = parsers["native_vs_emulator.py"]["description"]
    assert "native_vs_emulator.py \\\n        --model models/esp32" in description


@pytest.mark.parametrize("argv, code, words", [
    (["whiten.py", "--model", "{tmp}/no-model", "--preset", "esp32"], ModelError.exit_code, "no model at"),
    (["flip_average.py", "--model", "{tmp}/no-model", "--preset", "esp32"], ModelError.exit_code, "no model at"),
    (["kernels.py", "--model", "{tmp}/no-model", "--faces", "0"], ModelError.exit_code, "no model at"),
    (["teacher_at_student_input.py", "--preset", "no-such-preset"], 3, "unknown preset"),
    (["align_lfw.py", "--data", "{tmp}/no-lfw"], DataError.exit_code, "{tmp}/no-lfw"),
    (["underexposed_lfw.py", "--data", "{tmp}/no-lfw", "--cache", "{tmp}/cache"], DataError.exit_code,
     "no LFW images in"),
    (["chip_fill.py", "--out", "{tmp}/no-sets", "--data", "{tmp}/no-lfw"], DataError.exit_code,
     "run benchmarks/hard_faces.py --out"),
    (["dark_chips.py", "--out", "{tmp}/no-sets", "--data", "{tmp}/no-lfw"], DataError.exit_code,
     "run benchmarks/hard_faces.py --out"),
    (["hard_faces_student.py", "--out", "{tmp}/no-sets"], DataError.exit_code, "run benchmarks/hard_faces.py --out"),
    (["second_teacher.py", "--mfn-dir", "{tmp}/no-models"], DataError.exit_code, "no mobileface.json"),
    (["pareto.py", "--configs", "48"], 2, "is not SIZE:WIDTH"),
    (["teacher.py", "--chips", "0"], 2, "at least 1"),
    # were sys.exit(message): one line, but exit 1 whatever the kind of mistake
    (["s3_arena.py", "--board", "esp32", "--faces", "0", "--work", "{tmp}/work"], 3, "not the S3's"),
    (["hard_faces.py", "--out", "{repo}/hard-sets"], 3, "outside the repository"),
], ids=lambda value: value[0] if isinstance(value, list) else None)
def test_a_users_mistake_is_one_line_and_its_exit_code(tmp_path, argv, code, words):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{repo}", str(BENCHMARKS.parent)) for a in argv]
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / argv[0]), *argv[1:]], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert words.replace("{tmp}", str(tmp_path)) in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{argv[0]}: error: "), last
    if code != 2:  # argparse's own usage line comes before its error line
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_script_maps_an_error_to_its_exit_code_and_lets_a_bug_through(capsys, monkeypatch):
    script = _load("_script")
    monkeypatch.setattr(sys, "argv", ["benchmarks/whatever.py"])

    def missing():
        raise ModelError("no model at /x", hint="pass --model DIR")

    with pytest.raises(SystemExit) as ended:
        script.run_script(missing)
    assert ended.value.code == ModelError.exit_code
    assert capsys.readouterr().err == "whatever.py: error: no model at /x (pass --model DIR)\n"

    def bug():
        raise ZeroDivisionError("a bug keeps its traceback")

    with pytest.raises(ZeroDivisionError):
        script.run_script(bug)


def test_pareto_configs_are_size_width_pairs():
    import argparse

    pareto = _load("pareto")
    assert pareto.configs_arg("48:1.0,64:0.75") == [(48, 1.0), (64, 0.75)]
    for bad in ("48", "48:", "x:1.0", "48:1.0,", "0:1.0", "48:0"):
        with pytest.raises(argparse.ArgumentTypeError):
            pareto.configs_arg(bad)


def test_chip_fill_listing_refuses_a_folder_without_sets_before_reading_lfw(tmp_path):
    chip_fill = _load("chip_fill")
    with pytest.raises(DataError, match="no hard sets"):
        chip_fill.listing(tmp_path, tmp_path / "no-lfw", 0, hard_faces=None)


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


@pytest.mark.parametrize("script", SCRIPTS)
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
