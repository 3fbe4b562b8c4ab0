"""Docs that match the code: the settings reference, the exit codes, the commands, the README."""

import re
from dataclasses import fields
from pathlib import Path

from tinyface import config, errors
from tinyface.cli.main import COMMANDS
from tinyface.data import align

REPO = Path(__file__).resolve().parents[1]


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


def test_fallback_geometry_in_data_md_matches_the_code():
    text = _read("docs/data.md")
    assert f"`FALLBACK_SIDE` ({align.FALLBACK_SIDE})" in text
    assert f"`FALLBACK_CENTER_Y` ({align.FALLBACK_CENTER_Y})" in text
    side = align.FALLBACK_SIDE * 250
    assert f"{side:.0f}-pixel square centered at (125, {align.FALLBACK_CENTER_Y * 250})" in text


def test_docs_links_resolve():
    for rel in ("README.md", "docs/index.md", "docs/cli.md", "docs/config.md", "docs/data.md"):
        base = (REPO / rel).parent
        for target in re.findall(r"\]\(([^)#:]+)\)", _read(rel)):
            assert (base / target).exists(), f"{rel} links to a missing {target}"
