"""What each command's `--json` prints is what docs/cli.md says it prints ("What `--json` prints").

The shapes are parsed from docs/cli.md itself, so the documentation and the code cannot drift
apart: each bullet of that section names a command (its first code span, `tinyface CMD`) and its
shape (its first code span that starts with `{` or `[`), written as
`{key: type, ...}` (an object with exactly these keys, always all of them),
`[type]` (a list), `{*: type}` (an object whose keys are data), `a|b`, and the types `str`, `int`,
`float` (any number), `bool`, `null`, `object`. Each test runs its command, cheaply (in this
process where it can; a board is tests/conftest.py's TcpBoard, the Python emulation of the
released models/esp32, or `tinyface emulate` for its own first line), and checks every key and
type of its output against the shape. One test also checks that every command taking `--json`
has a documented shape (`build`'s is checked where tests/train/test_build_quick.py builds), and
one that every shape uses the section's glossary keys (`threshold`, `model`, `people`, ...) with
the glossary's types.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RELEASED, REPO, copy_people, require_released_model, run_in_process

pytestmark = pytest.mark.usefixtures("own_folder")

SECTION = "### What `--json` prints"
# commands whose documented shape a test of their own checks, where they run anyway (a build trains for minutes)
CHECKED_ELSEWHERE = {"build": "tests/train/test_build_quick.py"}


# --- the shapes, from docs/cli.md ------------------------------------------------------------------------

class Shape:
    """A parsed shape: ``kind`` one of "fields" (an object of these keys), "map", "list", "union", or a
    type name of SCALARS."""

    def __init__(self, kind: str, fields=None, item=None, options=()):
        self.kind, self.fields, self.item, self.options = kind, fields, item, options

    def keys(self) -> set[str]:
        return set(self.fields) if self.kind == "fields" else set()


SCALARS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "null": (type(None),),
           "object": (dict,)}
TOKEN = re.compile(r"\s*([{}\[\]:,|]|[\w+\-*]+)")


def parse_shape(text: str) -> Shape:
    tokens = TOKEN.findall(text)
    assert "".join(tokens) == re.sub(r"\s+", "", text), f"cannot read the shape {text!r}"
    pos = 0

    def take(expected: str | None = None) -> str:
        nonlocal pos
        assert pos < len(tokens), f"the shape {text!r} ends early"
        token = tokens[pos]
        assert expected is None or token == expected, f"expected {expected!r} at {token!r} in {text!r}"
        pos += 1
        return token

    def one() -> Shape:
        token = take()
        if token == "[":
            item = union()
            take("]")
            return Shape("list", item=item)
        if token == "{":
            fields = {}
            while tokens[pos] != "}":
                name = take()
                take(":")
                if name == "*":
                    value = union()
                    take("}")
                    return Shape("map", item=value)
                assert name not in fields, f"{name!r} twice in {text!r}"
                fields[name] = union()
                if tokens[pos] == ",":
                    take(",")
            take("}")
            return Shape("fields", fields=fields)
        assert token in SCALARS, f"unknown type {token!r} in {text!r}"
        return Shape(token)

    def union() -> Shape:
        options = [one()]
        while pos < len(tokens) and tokens[pos] == "|":
            take("|")
            options.append(one())
        return options[0] if len(options) == 1 else Shape("union", options=options)

    shape = union()
    assert pos == len(tokens), f"left over in the shape {text!r}: {tokens[pos:]}"
    return shape


def documented_shapes(text: str | None = None) -> dict[str, Shape]:
    """{command ("boards", "data stats", ...): its shape} from docs/cli.md's section."""
    text = text if text is not None else (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert SECTION in text, f"docs/cli.md has no section {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    shapes = {}
    for bullet in re.split(r"\n- ", "\n" + body)[1:]:
        spans = re.findall(r"`([^`]+)`", bullet)
        command = spans[0].removeprefix("tinyface ")
        shape = next(s for s in spans if s.startswith(("{", "[")))
        assert command not in shapes, f"{command} is described twice"
        shapes[command] = parse_shape(shape)
    return shapes


def mismatches(value, shape: Shape, where: str = "") -> list[str]:
    """How ``value`` differs from ``shape``: one line per difference (none: it matches)."""
    where = where or "the document"
    if shape.kind == "union":
        found = [mismatches(value, option, where) for option in shape.options]
        return [] if any(not f for f in found) else [f"{where}: {value!r:.80} is none of the types documented"]
    if shape.kind in SCALARS:
        ok = isinstance(value, SCALARS[shape.kind]) and not (shape.kind in ("int", "float") and isinstance(value, bool))
        return [] if ok else [f"{where}: {value!r:.80} is not a {shape.kind}"]
    if shape.kind == "list":
        if not isinstance(value, list):
            return [f"{where}: {value!r:.80} is not a list"]
        return [m for i, item in enumerate(value) for m in mismatches(item, shape.item, f"{where}[{i}]")]
    if not isinstance(value, dict):
        return [f"{where}: {value!r:.80} is not an object"]
    if shape.kind == "map":
        return [m for k, v in value.items() for m in mismatches(v, shape.item, f"{where}.{k}")]
    out = []
    missing = set(shape.fields) - set(value)
    extra = set(value) - set(shape.fields)
    if missing:
        out.append(f"{where}: documented, not printed: {sorted(missing)}")
    if extra:
        out.append(f"{where}: printed, not documented: {sorted(extra)}")
    for key, sub in shape.fields.items():
        if key in value:
            out += mismatches(value[key], sub, f"{where}.{key}")
    return out


def glossary(text: str | None = None) -> dict[str, Shape]:
    """{key: its type} from the glossary table of docs/cli.md's section (a row may name two keys)."""
    text = text if text is not None else (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    body = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    found = {}
    for keys, kind in re.findall(r"^\| ((?:`\w+`(?:, )?)+) \| `([^`]+)` \|", body, re.M):
        for key in re.findall(r"`(\w+)`", keys):
            found[key] = parse_shape(kind.replace("\\|", "|"))
    return found


def fits(used: Shape, meant: Shape) -> bool:
    """Whether a shape's type ``used`` is (a narrowing of) the glossary's ``meant``: an object of
    any keys fits `object`; a union fits where each of its types fits one of ``meant``'s."""
    if used.kind == "union":
        return all(fits(option, meant) for option in used.options)
    if meant.kind == "union":
        return any(fits(used, option) for option in meant.options)
    if meant.kind == "object":
        return used.kind in ("object", "fields", "map")
    if meant.kind == "list":
        return used.kind == "list" and fits(used.item, meant.item)
    if meant.kind == "fields":
        return used.kind == "fields" and used.fields.keys() == meant.fields.keys() and all(
            fits(used.fields[k], meant.fields[k]) for k in meant.fields)
    return used.kind == meant.kind


def glossary_misuses(shapes: dict[str, Shape], words: dict[str, Shape]) -> tuple[list[str], set[str]]:
    """Every key of a glossary word whose documented type does not fit the glossary's, as
    ``command: path.key``; and the glossary words some shape uses."""
    misuses, used = [], set()

    def walk(shape: Shape, where: str) -> None:
        if shape.kind == "union":
            for option in shape.options:
                walk(option, where)
        elif shape.kind in ("list", "map"):
            walk(shape.item, where + "[]")
        elif shape.kind == "fields":
            for key, sub in shape.fields.items():
                if key in words:
                    used.add(key)
                    if not fits(sub, words[key]):
                        misuses.append(f"{where}.{key}")
                walk(sub, f"{where}.{key}")

    for command, shape in shapes.items():
        walk(shape, command)
    return misuses, used


def assert_documented(command: str, document) -> None:
    shapes = documented_shapes()
    assert command in shapes, f"docs/cli.md ({SECTION}) has no shape for `tinyface {command}`"
    problems = mismatches(document, shapes[command])
    assert not problems, f"`tinyface {command} --json` differs from docs/cli.md:\n" + "\n".join(problems)


def json_of(capsys, *args) -> dict | list:
    """`tinyface ARGS` (with --json) run in this process: its JSON, after a success."""
    code, out, err = run_in_process(capsys, *args)
    assert code == 0, err
    document = json.loads(out)
    assert isinstance(document, list) or "error" not in document
    return document


# --- the parser and the check themselves -----------------------------------------------------------------

def test_the_shape_check_finds_missing_and_extra_keys_and_wrong_types():
    shape = parse_shape("{a: int, b: str|null, c: [{d: float}], e: {*: bool}}")
    assert mismatches({"a": 1, "b": "x", "c": [{"d": 2}], "e": {"x": True}}, shape) == []
    assert mismatches({"a": 1, "b": None, "c": [], "e": {}}, shape) == []
    assert mismatches({"a": 1, "c": [], "e": {}}, shape) == ["the document: documented, not printed: ['b']"]
    assert mismatches({"a": True, "b": 3, "c": [{"d": 1.5, "z": 0}], "e": {"x": 1}, "f": 0}, shape) == [
        "the document: printed, not documented: ['f']", "the document.a: True is not a int",
        "the document.b: 3 is none of the types documented", "the document.c[0]: printed, not documented: ['z']",
        "the document.e.x: 1 is not a bool"]
    assert mismatches({"b": None, "c": [], "e": {}}, shape) == ["the document: documented, not printed: ['a']"]
    with pytest.raises(AssertionError, match="cannot read the shape"):
        parse_shape("{a?: int}")  # every key is always printed: no optional keys


def test_the_glossary_check_finds_a_word_used_with_another_type():
    words = {"people": parse_shape("[object]"), "port": parse_shape("str|null"), "model": parse_shape("str")}
    shapes = {"a": parse_shape("{people: [{name: str}], port: str, x: {model: str}}"),
              "b": parse_shape("{people: int, port: str|int, x: [{model: {path: str}}]}")}
    assert glossary_misuses(shapes, words) == (["b.people", "b.port", "b.x[].model"], {"people", "port", "model"})


def test_every_shape_uses_the_glossary_words_as_the_glossary_says():
    words = glossary()
    assert {"threshold", "identify_threshold", "model", "people", "count", "capacity", "path"} <= set(words)
    misuses, used = glossary_misuses(documented_shapes(), words)
    assert misuses == [], "keys used with another type than docs/cli.md's glossary gives them"
    assert used == set(words), "glossary words no shape uses"


def test_every_command_that_takes_json_has_a_documented_shape():
    import click

    from tinyface.cli.main import cli

    def walk(group, prefix=""):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                yield from walk(command, f"{prefix}{name} ")
            elif any(p.name == "as_json" for p in command.params):
                yield f"{prefix}{name}"

    with_json = set(walk(cli))
    documented = set(documented_shapes())
    assert documented - with_json == set(), "shapes of commands that take no --json"
    assert with_json - documented == set(), "commands with --json and no shape in docs/cli.md"


# --- each command ----------------------------------------------------------------------------------------

def test_boards(capsys):
    assert_documented("boards", json_of(capsys, "boards", "--json"))
    one = json_of(capsys, "boards", "esp32s3", "--json")
    assert one["name"] == "esp32s3"  # one board named: its object, an item of the list (as documented)
    assert_documented("boards", [one])


def test_profile(capsys):
    require_released_model()
    assert_documented("profile", json_of(capsys, "profile", "--model", RELEASED, "--board", "esp32", "--json"))


def test_data_stats(capsys, lfw_dir, tmp_path):
    root = copy_people(lfw_dir, tmp_path / "ds", {"Aaron_Peirsol": 2, "Abdullah_Gul": 2}, flat=True)
    (root / "Abdullah_Gul" / "notes.txt").write_text("not a photo")  # one entry in skipped
    stats = json_of(capsys, "data", "stats", "--data", root, "--json")
    assert stats["skipped"] and stats["images"] == 4
    assert_documented("data stats", stats)


def test_data_cache(capsys, monkeypatch, tmp_path, lfw_dir):
    """A face cache of this test's own, holding entries (aligned by `data stats --align`), cleared of its
    (empty) assistant part, so that entries and freed_bytes are not empty; native and isa are this test's."""
    for variable in ("TINYFACE_CACHE", "TINYFACE_NATIVE_CACHE", "TINYFACE_ISA_CACHE"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    root = copy_people(lfw_dir, tmp_path / "ds", {"Aaron_Peirsol": 1, "Abdullah_Gul": 1}, flat=True)
    json_of(capsys, "data", "stats", "--data", root, "--align", "--json")
    looked = json_of(capsys, "data", "cache", "--json")
    assert all(Path(p["path"]).is_relative_to(tmp_path) for p in looked["parts"])  # nothing else is cleared
    assert_documented("data cache", looked)
    cache = json_of(capsys, "data", "cache", "--clear", "assistant", "--yes", "--json")
    faces = cache["parts"][0]
    assert [p["part"] for p in cache["parts"]] == ["faces", "assistant", "native", "isa"]
    assert faces["entries"] and cache["freed_bytes"] == {"assistant": 0}
    assert_documented("data cache", cache)


def test_flash_dry_run(capsys, tmp_path):
    require_released_model()
    result = json_of(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                     "--project-dir", tmp_path / "project", "--json")
    assert_documented("flash", result)


def test_data_fetch(capsys, tmp_path):
    """From a file:// site of one photo, with its own manifest (as tests/cli/test_data.py does)."""
    from tests.conftest import one_photo_site

    site, manifest = one_photo_site(tmp_path)
    fetched = json_of(capsys, "data", "fetch", "lfw", "--dest", tmp_path / "lfw", "--url", site.as_uri() + "/",
                      "--manifest", manifest, "--json")
    assert fetched["downloaded"] is True
    assert_documented("data fetch", fetched)


def test_evaluate(capsys, lfw_dir, tmp_path):
    """TFLM (no TensorFlow) on 4 people of 2 photos: identification null, with its note."""
    require_released_model()
    root = copy_people(lfw_dir, tmp_path / "ds", {"Aaron_Peirsol": 2, "Abdullah_Gul": 2, "Adrien_Brody": 2,
                                                  "Alejandro_Toledo": 2}, flat=True)
    result = json_of(capsys, "evaluate", "--model", RELEASED, "--runtime", "tflm", "--data", root, "--json")
    assert_documented("evaluate", result)


@pytest.fixture
def board(tcp_board):
    """The Python emulation of the released model at a socket:// URL, served in this process."""
    require_released_model()
    return tcp_board()


def test_gallery_enroll_identify_and_delete(capsys, board, lfw_dir):
    """One photo of two each enrolled (photos LFW's), identify with a photo refused (--skip-bad), the
    list, delete one person, then everyone."""
    port = ["--board", "esp32", "--port", board.url]
    colin, tony = (sorted((lfw_dir / "images" / name).glob("*.jpg")) for name in ("Colin_Powell", "Tony_Blair"))
    assert_documented("gallery list", json_of(capsys, "gallery", "list", *port, "--json"))  # empty
    enrolled = json_of(capsys, "enroll", *port, "--name", "Colin", colin[0], "--json")
    assert enrolled["enrolled"] == 1
    assert_documented("enroll", enrolled)
    json_of(capsys, "enroll", *port, "--name", "Tony", tony[0], "--json")
    listed = json_of(capsys, "gallery", "list", *port, "--json")
    assert [p["name"] for p in listed["people"]] == ["Colin", "Tony"]
    assert_documented("gallery list", listed)
    # model.json is no image: refused (--skip-bad), with its reason and no face key
    found = json_of(capsys, "identify", *port, "--skip-bad", colin[1], RELEASED / "model.json", "--json")
    assert len(found["results"]) == 1 and len(found["refused"]) == 1
    assert_documented("identify", found)
    for how in (["--name", "Tony"], ["--all", "--yes"]):
        assert_documented("gallery delete", json_of(capsys, "gallery", "delete", *port, *how, "--json"))


def test_bench(capsys, board, lfw_dir):
    """Two images, without the host check (no TensorFlow)."""
    result = json_of(capsys, "bench", "--board", "esp32", "--port", board.url, "--model", RELEASED, "--data", lfw_dir,
                     "--images", "2", "--no-host-check", "--json")
    assert result["complete"] and result["images_done"] == 2
    assert_documented("bench", result)


def test_emulate_first_line(tmp_path):
    """`tinyface emulate --json`'s first line, in its own process (stopped at once)."""
    require_released_model()
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", "emulate", "--model", str(RELEASED),
                                 "--json"], stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().decode() if ready else ""
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert line.startswith("{"), (tmp_path / "stderr").read_text(errors="replace")[-2000:]
    assert_documented("emulate", json.loads(line))

