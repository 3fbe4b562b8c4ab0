"""Docs that match the code: the settings reference, the exit codes, the commands, the README."""

import ast
import json
import re
from dataclasses import fields
from pathlib import Path

from tests.conftest import BENCHMARKS, RELEASED, load_benchmark as _load
from tinyface import config, errors
from tinyface.cli.main import COMMANDS
from tinyface.data import align, lfw

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))  # every file of benchmarks/


def _read(rel: str) -> str:
    return (REPO / rel).read_text(encoding="utf-8")


def test_config_reference_is_generated_from_the_code():
    text = _read("docs/config.md")
    assert config.DOCS_BEGIN in text and config.DOCS_END in text
    block = text.split(config.DOCS_BEGIN, 1)[1].split(config.DOCS_END, 1)[0].strip()
    assert block == config.reference_markdown().strip(), \
        "docs/config.md is out of date: run `python -m tinyface.config docs/config.md`"


def test_every_setting_is_documented_with_its_default():
    text = _read("docs/config.md")
    for section in fields(config.Settings):
        cls = section.default_factory
        summary, docs = config.field_docs(cls)
        assert summary, f"[{section.name}] has no docstring"
        assert f"### [{section.name}]" in text
        for f in fields(cls):
            assert docs.get(f.name), f"{section.name}.{f.name} has no entry under Attributes: in its docstring"
            default = config._toml_value(getattr(cls(), f.name))
            assert f"| `{f.name}` | " in text and f"`{default}`" in text, f"{section.name}.{f.name}"
        assert set(docs) <= {f.name for f in fields(cls)}, f"[{section.name}] documents a setting that does not exist"


def test_exit_code_table_matches_errors_py():
    text = _read("docs/cli.md")
    classes, todo = [], [errors.TinyfaceError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not errors.TinyfaceError and cls.__module__ == "tinyface.errors":
            classes.append(cls)
    for cls in classes:
        assert re.search(rf"^\| {cls.exit_code} \| `{cls.__name__}` \|", text, re.M), \
            f"docs/cli.md has no row '| {cls.exit_code} | `{cls.__name__}` |'"
    for code in (errors.EXIT_INTERNAL, errors.EXIT_INTERRUPTED):
        assert re.search(rf"^\| {code} \|", text, re.M)


def test_every_command_is_described():
    cli_md, readme = _read("docs/cli.md"), _read("README.md")
    for name in COMMANDS:
        assert re.search(rf"^\| `{name}[ `]", cli_md, re.M), f"docs/cli.md does not describe `{name}`"
        assert f"| `tinyface {name}` |" in readme, f"the README's tour does not mention `tinyface {name}`"


def test_readme_opens_with_exactly_two_setup_commands():
    text = _read("README.md")
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)
    first, second = (b.strip() for b in blocks[:2])
    assert "\n" not in first and "\n" not in second
    assert first.startswith("pip install .") and first.endswith("tinyface build")
    assert second.startswith('pip install -e ".[test]"') and second.endswith("pytest -q")
    # nothing but the title and the labels of the two commands comes before them
    head = text.split("```", 1)[0]
    assert [line for line in head.splitlines() if line.strip() and not line.startswith(("#", "**"))] == []
    # CI runs exactly the README's test command
    assert "pytest -q" in _read(".ci/run")


def test_the_readme_s_one_process_pytest_imports_the_tests_helpers():
    # the `pytest` script, unlike `python -m pytest` and xdist's workers, puts no checkout on sys.path:
    # `pytest -n0 tests/test_config.py` (the README's way to debug) failed with "No module named
    # 'tests'" until pyproject's pythonpath named it. -I: no cwd on sys.path, as that script has.
    import subprocess
    import sys

    code = "import sys, pytest; sys.exit(pytest.main(['-n0', '--collect-only', '-q', '-p', 'no:cacheprovider', " \
           "'tests/test_config.py']))"
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "-n0" in _read("README.md")


def test_fallback_geometry_in_data_md_matches_the_code():
    text = _read("docs/data.md")
    assert f"`FALLBACK_SIDE` ({align.FALLBACK_SIDE})" in text
    assert f"`FALLBACK_CENTER_Y` ({align.FALLBACK_CENTER_Y})" in text
    side = align.FALLBACK_SIDE * 250
    assert f"{side:.0f}-pixel square centered at (125, {align.FALLBACK_CENTER_Y * 250})" in text


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a markdown file's headings (lowercased; punctuation but - and _
    dropped; spaces to -; a repeated heading gets -1, -2, ...), plus its explicit <a name/id>s."""
    text = re.sub(r"(?ms)^(```|~~~).*?^\1", "", markdown)  # a '#' line in a code block is no heading
    anchors, seen = set(), {}
    for heading in re.findall(r"(?m)^#{1,6}[ \t]+(.+?)[ \t#]*$", text):
        heading = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its words
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors | set(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", markdown))


def test_github_anchors_follow_githubs_slug_rules():
    text = "# Errors and exit codes\n## `tinyface build`: a run's stages\n## Setup\n## Setup\n```\n# not one\n```\n"
    assert _github_anchors(text) == {"errors-and-exit-codes", "tinyface-build-a-runs-stages", "setup", "setup-1"}


def test_docs_links_resolve():
    """Every relative link of the README, docs/*.md and firmware/README.md names a file that is
    there, and its #anchor, if any, a heading of that file (or of the same file: a bare #anchor)."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "firmware" / "README.md"]
    checked = []
    for doc in (d for d in docs if d.is_file()):
        rel = doc.relative_to(REPO)
        for target in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:: not a file of the repository
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            assert file.exists(), f"{rel} links to a missing {path}"
            if anchor and file.suffix == ".md":
                assert anchor in _github_anchors(file.read_text(encoding="utf-8")), \
                    f"{rel} links to #{anchor}, which is no heading of {file.relative_to(REPO)}"
            checked.append((rel, target))
    assert len({rel for rel, _ in checked}) >= 5, checked  # the README and docs/index.md link to the rest
    assert any("#" in target for _, target in checked), "no link with an #anchor was checked"


def test_docs_exit_code_table_says_which_code_each_way_gives():
    """`--boards-dir` and `$TINYFACE_BOARDS_DIR` refuse a bad folder by one rule, in the same words:
    a bad option value (exit 2) and a bad environment (exit 3), as docs/cli.md's table says."""
    text = (REPO / "docs" / "cli.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"(?m)^\| (\d+) \| .*$", text)}
    assert "--boards-dir" in rows["2"] and "TINYFACE_BOARDS_DIR" in rows["3"]
    env_row = next(line for line in text.splitlines() if line.startswith("| `TINYFACE_BOARDS_DIR` |"))
    assert "exit 3" in env_row and "exit 2" in env_row


def test_cli_md_says_one_rule():
    """A gallery name has one rule wherever it comes from (`--name`, a `flash --enroll` person
    folder): tinyface.protocol.spec.check_name."""
    text = " ".join((REPO / "docs" / "cli.md").read_text(encoding="utf-8").split())
    assert "Names follow one rule wherever they come from (`--name`, a `flash --enroll` folder;" in text
    assert "checked against the protocol's rule (1 to 15 bytes of UTF-8, no NUL)" not in text
    flash_row = text.split("| `flash` |", 1)[1].split(" | ", 1)[0]
    assert "held to `--name`'s rule" in flash_row
    assert "a folder name the board cannot store" not in text


# --- the figures the documents quote say what they were measured on ---------------------------------

def test_cli_md_quotes_enroll_check_with_the_released_models_threshold():
    """docs/cli.md's enroll_check figures are of the models/esp32 that is released (run R1): its
    pair threshold (model.json ``threshold``) is the one quoted."""
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    start = text.index("How much the consistency check catches")
    paragraph = text[start:text.index("\n\n", start)]
    threshold = json.loads((RELEASED / "model.json").read_text())["threshold"]
    assert "run R1" in paragraph
    assert "python benchmarks/enroll_check.py --model models/esp32 --preset esp32" in paragraph
    assert f"verification threshold\n({threshold:.3f})" in paragraph or f"threshold ({threshold:.3f})" in paragraph


def test_second_teacher_md_says_what_dlibs_mean_descriptor_length_is_over(lfw_dir):
    """The mean length of dlib's raw descriptors is quoted with the photos it is a mean over: every
    photo of LFW's training people, as many as peopleDevTrain.txt counts."""
    text = " ".join((REPO / "docs" / "second_teacher.md").read_text(encoding="utf-8").split())
    found = re.search(r"raw descriptors are ([\d.]+) long on average over the ([\d,]+) photos of LFW's training "
                      r"people, peopleDevTrain\.txt", text)
    assert found, "docs/second_teacher.md quotes dlib's descriptor length without what it is a mean over"
    photos = sum(count for _, count in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TRAIN))
    assert int(found.group(2).replace(",", "")) == photos
    assert f"0.6 is about {0.6 / float(found.group(1)):.2f}" in text


def test_data_md_names_every_benchmark_that_checks_a_people_set():
    """Every benchmark that refuses a --people set its model distilled from (benchmarks/_lib.py's
    check_people) is named in docs/data.md."""
    callers = [name for name in SCRIPTS if name != "_lib.py"
               and "check_people(" in (BENCHMARKS / name).read_text(encoding="utf-8")]
    assert callers == ["compare_runs.py", "mirror_enroll.py", "whiten.py"]
    text = " ".join((REPO / "docs" / "data.md").read_text(encoding="utf-8").split())
    start = text.index("A run that distilled from it cannot be judged on it")
    paragraph = text[start:text.index("## Bad data", start)]
    assert all(f"`{name}`" in paragraph for name in callers), paragraph
    assert "`compare_runs.py` refuses" not in paragraph  # was: compare_runs.py alone


# dlib's raw descriptor length is quoted as measured on LFW's training people (1.42, not 1.39)
# everywhere, with the figures derived from it; it converts figures for printing only.

def _docstring(name: str) -> str:
    """A benchmark's docstring, read without running it (second_teacher.py imports tinyface.train)."""
    return ast.get_docstring(ast.parse((BENCHMARKS / f"{name}.py").read_text(encoding="utf-8")))


def _dlib_norm_in_second_teacher_md() -> float:
    text = " ".join((REPO / "docs" / "second_teacher.md").read_text(encoding="utf-8").split())
    return float(re.search(r"raw descriptors are ([\d.]+) long on average over the [\d,]+ photos of LFW's "
                           r"training people", text).group(1))


def test_dlib_norm_is_the_figure_measured_on_training_people_everywhere():
    norm = _dlib_norm_in_second_teacher_md()
    assert norm == 1.42
    assert _load("contamination").DLIB_NORM == norm  # was 1.39, of no stated photos
    from tinyface.config import ExtraSettings

    for where, text in {
        "tinyface/config.py ExtraSettings": ExtraSettings.__doc__,
        "docs/config.md": (REPO / "docs" / "config.md").read_text(encoding="utf-8"),
        "docs/data.md": (REPO / "docs" / "data.md").read_text(encoding="utf-8"),
        "benchmarks/second_teacher.py": _docstring("second_teacher"),
        "docs/model.md": (REPO / "docs" / "model.md").read_text(encoding="utf-8"),
    }.items():
        text = " ".join(text.split())
        assert "1.39" not in text, where
        assert "about dlib's 0.46" not in text and "is about 0.43 here" not in text, where
        if where != "docs/model.md":
            assert f"{norm:.2f}" in text, where
    config_doc = " ".join(ExtraSettings.__doc__.split())
    assert f"0.33 is about dlib's {0.33 * norm:.2f}" in config_doc
    assert f"0.6 is about {0.6 / norm:.2f} here" in config_doc
    assert f"0.33 (about dlib's {0.33 * norm:.2f})" in (REPO / "docs" / "model.md").read_text(encoding="utf-8")
    assert f"its usual 0.6 is about {0.6 / norm:.2f} here" in " ".join(_docstring("second_teacher").split())


def test_data_md_table_is_what_contamination_py_prints_in_its_dlib_column():
    """The "(dlib scale)" column is threshold x DLIB_NORM, as the script prints it (0.33 -> 0.47,
    was 0.46 at 1.39): printing only, no threshold of a build depends on it."""
    contamination = _load("contamination")
    text = (REPO / "docs" / "data.md").read_text(encoding="utf-8")
    rows = re.findall(r"\|\s*\**(0\.\d\d) \((0\.\d\d)[^|]*\|", text[text.index("| threshold (dlib scale) |"):])
    assert len(rows) == 6
    for threshold, dlib_scale in rows:
        assert f"{float(threshold) * contamination.DLIB_NORM:.2f}" == dlib_scale
        assert float(threshold) in contamination.THRESHOLDS
    assert "DLIB_NORM" not in (REPO / "tinyface" / "config.py").read_text(encoding="utf-8")
