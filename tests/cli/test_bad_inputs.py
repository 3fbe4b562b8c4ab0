"""Bad inputs a user plausibly gives: each is ONE clear line (what is wrong, how to fix it) and the
exit code of docs/cli.md's table; never a traceback or an internal error, never work lost.

Each test here failed before its fix (an internal error, a late or wrong error, or a line that
named neither the input nor the way out). Most run `tinyface` in this process: fast, and no
TensorFlow.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import (
    RELEASED,
    copy_people,
    error_in_process as tinyface,  # (exit code, its one stderr line)
    people_folder,
)
from tinyface import errors
from tinyface.cli import main as cli_main

pytestmark = pytest.mark.usefixtures("own_folder")  # no ./tinyface.toml of anyone's changes the settings


def bundle_without_hash(folder: Path, model_bytes: bytes) -> Path:
    """A hand-made bundle: the released model.json without its sha256, beside ``model_bytes``."""
    folder.mkdir()
    meta = json.loads((RELEASED / "model.json").read_text())
    meta.pop("sha256")
    (folder / "model.json").write_text(json.dumps(meta))
    (folder / "model.tflite").write_bytes(model_bytes)
    return folder


# --- data fetch: a URL urllib cannot use, a timeout that is not a time ----------------------

@pytest.mark.parametrize("url, needle", [
    ("notaurl", "it has no scheme"),
    ("gopher://example.org/lfw/", "scheme 'gopher'"),
    ("http://[bad/", "is not a valid URL"),
])
def test_data_fetch_refuses_a_url_it_cannot_download_from(capsys, tmp_path, url, needle):
    code, line = tinyface(capsys, "data", "fetch", "lfw", "--url", url, "--dest", tmp_path / "new" / "lfw")
    assert code == errors.DownloadError.exit_code == 5  # was: internal error 70 (urllib's ValueError)
    assert needle in line and repr(url) in line and "--url http" in line and "TINYFACE_LFW_URL" in line
    assert not (tmp_path / "new").exists()  # refused before any folder was made


def test_data_fetch_into_a_folder_it_cannot_write_is_an_output_error(capsys):
    # was: internal error 70 (FileNotFoundError from mkdtemp in /proc)
    code, line = tinyface(capsys, "data", "fetch", "lfw", "--url", "file:///nowhere/", "--dest", "/proc/tinyface-lfw")
    assert code == errors.OutputError.exit_code == 14
    assert "/proc" in line and "--dest" in line  # root: mkdtemp fails in /proc; others: not writable


@pytest.mark.parametrize("args, needle", [
    (["build", "--out", "{file}"], "is in the way"),
    (["data", "fetch", "lfw", "--url", "file:///nowhere/", "--dest", "{file}"], "is not a folder"),
    (["bench", "--port", "/dev/null", "--out", "{folder}"], "it is a folder"),
    (["bench", "--port", "/dev/null", "--out", "{file}/r.json"], "another path for the folder of --out"),
    (["evaluate", "--model", str(RELEASED), "--out", "{file}"], "another path for --out"),
    (["flash", "--board", "esp32", "--dry-run", "--project-dir", "{file}"], "another path for --project-dir"),
    (["flash", "--board", "esp32", "--dry-run", "--project-dir", "{file}/fw"], "another path for --project-dir"),
])
def test_an_output_path_in_the_way_is_exit_14_with_what_to_do(capsys, tmp_path, args, needle):
    # was: click's exit 2 ("Directory ... is a file"), not the table's 14 for an output problem
    (tmp_path / "afile").write_text("mine")
    args = [a.format(file=tmp_path / "afile", folder=tmp_path) for a in args]
    code, line = tinyface(capsys, *args)
    assert code == errors.OutputError.exit_code == 14
    assert needle in line and ("choose" in line or "give" in line)
    assert (tmp_path / "afile").read_text() == "mine"


def test_with_json_a_failure_after_the_result_adds_no_second_document(capsys):
    """emulate --json prints its port line, then serves: a failure then (the firmware died) must
    not put a second JSON document on stdout."""
    from tinyface import console

    console.reset_json_output()
    console.print_json({"port": "/dev/pts/9"}, indent=None)
    with pytest.raises(SystemExit) as exc:
        cli_main._fail("the firmware ended", 7, "DeviceError", True)
    captured = capsys.readouterr()
    assert exc.value.code == 7 and captured.out == '{"port": "/dev/pts/9"}\n'
    assert captured.err == "tinyface: error: the firmware ended\n"
    console.reset_json_output()


@pytest.mark.parametrize("setting, needle", [
    ("distill.epochs=-3", "distill.epochs must be in [1, "),
    ("distill.epochs=five", "must be an integer"),
])
def test_a_bad_setting_says_where_the_settings_are_explained(capsys, setting, needle):
    code, line = tinyface(capsys, "profile", "--set", setting)
    assert code == errors.ConfigError.exit_code
    assert needle in line and "docs/config.md" in line and "--print-config" in line


@pytest.mark.parametrize("command", ["profile", "boards"])
def test_a_missing_config_file_says_what_to_do(capsys, tmp_path, command):
    # boards reads no settings: it used to ignore the missing file and exit 0
    code, line = tinyface(capsys, "--config", tmp_path / "nope.toml", command)
    assert code == errors.ConfigError.exit_code and "config file not found" in line and "--config" in line
    with pytest.raises(SystemExit) as exc:  # but the command's help is still there to read
        cli_main.main(["--config", str(tmp_path / "nope.toml"), command, "--help"])
    assert exc.value.code == 0 and "Usage: tinyface" in capsys.readouterr().out


@pytest.mark.parametrize("args, code, kind", [
    (["profile", "--bogus"], errors.EXIT_USAGE, "UsageError"),
    (["profile", "--set", "firmware.board=nope"], 3, "ConfigError"),
    (["profile", "--model", "no/such/model"], 6, "ModelError"),
])
def test_with_json_a_failure_is_also_one_json_object_on_stdout(capsys, args, code, kind):
    # was: stdout empty, so a script reading --json learnt nothing but the exit code
    with pytest.raises(SystemExit) as exc:
        cli_main.main([*args, "--json"])
    captured = capsys.readouterr()
    assert exc.value.code == code
    reply = json.loads(captured.out)
    assert reply == {"error": reply["error"], "kind": kind, "exit_code": code}
    assert captured.err.strip() == f"tinyface: error: {reply['error']}"


@pytest.mark.parametrize("timeout", ["-1", "0"])
def test_data_fetch_timeout_must_be_positive(capsys, tmp_path, timeout):
    # was: -1 an internal error (socket's ValueError), 0 a non-blocking socket's "Operation now in progress"
    code, line = tinyface(capsys, "data", "fetch", "lfw", "--url", "http://127.0.0.1:9/", "--timeout", timeout,
                          "--dest", tmp_path / "lfw")
    assert code == errors.EXIT_USAGE
    assert "--timeout" in line and "x>0" in line



@pytest.mark.parametrize("content, needle", [
    ("{", "is not JSON"),
    ("[1]", "is not a JSON object"),
    ('{"name": "x"}', "lacks archive, archive_root"),
    ("BAD_SHA", "images_tree_sha256 is not a sha256"),
    ("FILES_LIST", "files must map file names to sha256 strings"),
    # was: written where they say, outside the fetch's work folder (and --dest)
    ("FILE_OUTSIDE", "files['../../pairs.txt'] must be a plain file name"),
    ("ROOT_OUTSIDE", "archive_root must be a path inside the archive"),
])
def test_data_fetch_a_bad_manifest_file_is_a_bad_option(capsys, tmp_path, content, needle):
    # was: exit 5 (a download error) for a local file, and a wrong field failed only mid-fetch
    from tinyface.data.fetch import MANIFEST_DIR

    if content in ("BAD_SHA", "FILES_LIST", "FILE_OUTSIDE", "ROOT_OUTSIDE"):
        raw = json.loads((MANIFEST_DIR / "lfw_manifest.json").read_text())
        if content == "BAD_SHA":
            raw["images_tree_sha256"] = "xyz"
        elif content == "FILES_LIST":
            raw["files"] = ["pairs.txt"]
        elif content == "FILE_OUTSIDE":
            raw["files"] = {"../../pairs.txt": raw["files"]["pairs.txt"]}
        else:
            raw["archive_root"] = "lfw/../../.."
        content = json.dumps(raw)
    manifest = tmp_path / "m.json"
    manifest.write_text(content)
    code, line = tinyface(capsys, "data", "fetch", "lfw", "--manifest", manifest, "--url", "http://127.0.0.1:9/",
                          "--dest", tmp_path / "new" / "lfw")
    assert code == errors.EXIT_USAGE
    assert "--manifest" in line and str(manifest) in line and needle in line
    assert not (tmp_path / "new").exists()

# --- build: refused in seconds, before TensorFlow and training ------------------------------

@pytest.fixture
def no_tensorflow(monkeypatch):
    """Fail the test if `tinyface build` gets as far as loading TensorFlow."""
    import tinyface.console

    quiet = tinyface.console.quiet_tensorflow

    def refuse(import_now: bool = False):
        if import_now:
            raise AssertionError("the build got as far as loading TensorFlow")
        quiet()

    monkeypatch.setattr(tinyface.console, "quiet_tensorflow", refuse)


def test_build_refuses_an_unknown_board_before_anything(capsys, tmp_path, no_tensorflow):
    # was: accepted, and refused only in the evaluate stage, after the whole training
    code, line = tinyface(capsys, "build", "--quick", "--set", "firmware.board=esp32-s3",
                          "--data", people_folder(tmp_path / "photos", 25), "--out", tmp_path / "run")
    assert code == errors.ConfigError.exit_code == 3
    assert "unknown board 'esp32-s3'" in line and "esp32s3" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("people", [2, 3])
def test_build_on_a_few_people_says_how_many_it_needs(capsys, tmp_path, no_tensorflow, people):
    # was: "only 1 training people; need at least 2", after TensorFlow had loaded
    code, line = tinyface(capsys, "build", "--quick", "--data", people_folder(tmp_path / "photos", people),
                          "--out", tmp_path / "run")
    assert code == errors.DataError.exit_code == 4
    assert "too small to build a model" in line and f"{people} people split into" in line
    assert "at least 21 people at data.val_fraction=0.1" in line and "add people or photos" in line
    assert not (tmp_path / "run").exists()  # --out was checked (created, then removed again), nothing else was done


# --- a file that is not a model: named, with what to give instead ----------------------------

@pytest.mark.parametrize("content, needle", [
    (b"some notes, not a model\n", "is not a TFLite model"),
    ((RELEASED / "model.tflite").read_bytes()[:1000], "as a TFLite model (truncated or corrupt)"),
], ids=["text", "truncated"])
def test_profile_names_the_file_that_is_not_a_model(capsys, tmp_path, content, needle):
    model = tmp_path / "mine.tflite"
    model.write_bytes(content)
    code, line = tinyface(capsys, "profile", "--board", "esp32", "--model", model)
    assert code == errors.ModelError.exit_code == 6
    assert f"{model} {needle}" in line, line
    assert "tinyface build" in line  # what to give instead


def test_flash_names_the_model_file_of_a_bundle_that_is_not_a_model(capsys, tmp_path):
    bundle = bundle_without_hash(tmp_path / "bundle", b"hello")
    code, line = tinyface(capsys, "flash", "--board", "esp32", "--dry-run", "--model", bundle,
                          "--project-dir", tmp_path / "fw")
    assert code == errors.ModelError.exit_code
    assert f"{bundle / 'model.tflite'} is not a TFLite model" in line and "tinyface build" in line


def test_emulate_names_the_model_file_of_a_bundle_that_is_not_a_model(tmp_path):
    # a subprocess: emulate installs a SIGTERM handler
    bundle = bundle_without_hash(tmp_path / "bundle", (RELEASED / "model.tflite").read_bytes()[:1000])
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "emulate", "--once", "--model", str(bundle)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert proc.returncode == errors.ModelError.exit_code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and proc.stdout == "", proc.stderr
    assert f"cannot parse {bundle / 'model.tflite'} as a TFLite model" in lines[0]


# --- a model that cannot be read: exit 6, as a missing or corrupt one ---------------------------------
# Was: click's "Path 'unr.tflite' is not readable" (exit 2); with that check gone, PermissionError (exit 70).

def _unreadable_release(folder: Path, which: str) -> tuple[Path, tuple]:
    """A copy of the released bundle in ``folder`` with ``which`` (its model.tflite or model.json) mode
    000, and the command prefix under which that stops a root process (as tests/cli/test_data.py does)."""
    from tests.conftest import drop_file_permission_bypass, require_released_model

    prefix = drop_file_permission_bypass()
    require_released_model()
    bundle = folder / "bundle"
    shutil.copytree(RELEASED, bundle)
    (bundle / which).chmod(0)
    return bundle, prefix


@pytest.mark.parametrize("which", ["model.tflite", "model.json"])
@pytest.mark.parametrize("command", [["profile"], ["evaluate"], ["bench", "--port", "/dev/ttyNONE"],
                                     ["emulate", "--board", "esp32"], ["flash", "--board", "esp32", "--dry-run"]],
                         ids=lambda c: c[0])
@pytest.mark.parametrize("given", ["folder", "file"])
def test_a_model_that_cannot_be_read_is_a_model_error(small_dataset, tmp_path, command, which, given):
    from tests.conftest import assert_one_error_line, run_cli, tensorflow_tripwire

    bundle, prefix = _unreadable_release(tmp_path, which)
    model = bundle if given == "folder" else bundle / "model.tflite"
    data = ["--data", str(small_dataset)] if command[0] == "evaluate" else []
    tripwire, mark = tensorflow_tripwire(tmp_path)
    proc = run_cli(*command, "--model", str(model), *data, prefix=prefix, cwd=tmp_path, env=tripwire)
    line = assert_one_error_line(proc, errors.ModelError.exit_code, f"cannot read {bundle / which}")
    assert "Permission denied" in line, line
    assert not mark.exists()  # before TensorFlow loads (evaluate loaded it first, for 6 s)


# --- a serial port that does not exist: the reason once --------------------------------------

@pytest.mark.parametrize("command", [["gallery", "list"], ["gallery", "delete", "--all"]])
def test_a_port_that_does_not_exist_says_so_once(capsys, tmp_path, command):
    port = tmp_path / "ttyNONE"
    code, line = tinyface(capsys, *command, "--port", port)
    assert code == errors.DeviceError.exit_code == 7
    # was: "cannot open P: [Errno 2] could not open port P: [Errno 2] No such file or directory: 'P'"
    assert f"cannot open {port}: No such file or directory (" in line and "Errno" not in line
    assert line.count(str(port)) == 1


@pytest.mark.parametrize("command", [["enroll", "--name", "Bob"], ["identify"]])
def test_a_bad_model_is_named_before_the_port_is_opened(capsys, tmp_path, command):
    # was: only the port's error, and the bad --model surfaced on the next try
    (tmp_path / "model.tflite").write_text("not a model")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"")
    code, line = tinyface(capsys, *command, "--port", tmp_path / "ttyNONE", "--model", tmp_path / "model.tflite",
                          photo)
    assert code == errors.ModelError.exit_code == 6 and "model.json" in line and "ttyNONE" not in line


@pytest.mark.parametrize("where", ["/dev/ttyNONE", "tmp"])
def test_flash_refuses_a_port_that_does_not_exist_before_rendering(capsys, tmp_path, monkeypatch, where):
    # was: the project rendered, then PlatformIO missing (exit 9), or the build, then the upload failing
    from tinyface.device import platformio

    def no_pio(*args, **kwargs):
        raise AssertionError("flash got as far as PlatformIO")

    monkeypatch.setattr(platformio, "pio_command", no_pio)
    port = "/dev/ttyNONE" if where == "/dev/ttyNONE" else str(tmp_path / "no-such-dir" / "ttyUSB0")
    code, line = tinyface(capsys, "flash", "--board", "esp32", "--port", port, "--project-dir", tmp_path / "fw")
    assert code == errors.DeviceError.exit_code == 7
    assert f"cannot open {port}: No such file or directory (" in line and "--port" in line  # bench's wording
    assert not (tmp_path / "fw").exists()  # refused before anything was rendered


def test_flash_api_checks_the_port_before_reading_the_model(tmp_path):
    from tinyface.boards import load_board
    from tinyface.device.flash import flash

    with pytest.raises(errors.DeviceError, match="cannot open /dev/ttyNONE: No such file or directory"):
        flash(load_board("esp32"), model=tmp_path / "no-model", project_dir=tmp_path / "fw", port="/dev/ttyNONE")
    assert not (tmp_path / "fw").exists()


# --- evaluate -------------------------------------------------------------------------------

def test_evaluate_pairs_file_in_another_format_says_what_the_format_is(capsys, tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("Alice Bob\n")
    code, line = tinyface(capsys, "evaluate", "--model", RELEASED, "--data", tmp_path, "--pairs", pairs)
    assert code == errors.DataError.exit_code
    assert "bad header" in line and "LFW-format pairs file" in line


def test_evaluate_missing_model_says_what_to_pass(capsys, tmp_path):
    code, line = tinyface(capsys, "evaluate", "--model", tmp_path / "no-model", "--data", tmp_path)
    assert code == errors.ModelError.exit_code
    assert "model not found" in line and "pass --model" in line


def test_evaluate_without_same_and_different_pairs_gives_the_counts(make_dataset, tmp_path):
    """One photo per person: no same-person pair (the message used to give neither counts nor a fix)."""
    import numpy as np

    from tinyface.data.cache import FaceCache
    from tinyface.evaluation.model_eval import LoadedModel, evaluate_model

    root = make_dataset({"Aaron_Peirsol": 1, "Abdullah_Gul": 1, "Adrien_Brody": 1})
    model = LoadedModel("tflite", (64, 64, 1), 0.5, 0.1, lambda crops: np.eye(len(crops), 8, dtype=np.float32),
                        0, "stub")
    with FaceCache(tmp_path / "cache") as cache, pytest.raises(errors.DataError) as exc:
        evaluate_model(model, root, cache)
    line = exc.value.one_line()
    assert "0 same-person and 3 different-person pairs" in line and str(root) in line
    assert "one of them with 2+ photos" in line


# --- a photo too large to decode (tests/conftest.py's bomb): evaluate skips it, flash refuses it -------

def test_evaluate_and_flash_enroll_name_the_huge_image(bomb, lfw_dir, tiny_bundle, tmp_path):
    """`evaluate` skips it with its size; `flash --enroll` refuses it by name (exit 15)."""
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    data = copy_people(lfw_dir, tmp_path / "data", {"Aaron_Peirsol": 4, "Alejandro_Toledo": 4})
    os.symlink(bomb, data / "images" / "Aaron_Peirsol" / "scan.png")
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "evaluate", "--model",
                           str(tiny_bundle.model_path.parent), "--data", str(data), "--enroll", "2", "--json"],
                          capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["images"] == 8 and [s["reason"] for s in result["skipped"]] == [
        "image too large (20000x20000 px = 400 megapixels; the limit is 200)"]
    people = tmp_path / "people"
    (people / "Aaron").mkdir(parents=True)
    for src in sorted((data / "images" / "Aaron_Peirsol").glob("*.jpg")):
        shutil.copy2(src, people / "Aaron" / src.name)
    os.symlink(bomb, people / "Aaron" / "scan.png")
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--dry-run",
                           "--model", str(tiny_bundle.model_path.parent), "--enroll", str(people), "--project-dir",
                           str(tmp_path / "project")], capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 15, proc.stderr[-2000:]
    assert "Aaron/scan.png (image too large (20000x20000 px = 400 megapixels; the limit is 200))" in proc.stderr


# --- bench: a --data folder that is not LFW ---------------------------------------------------

def test_bench_data_without_lfw_pairs_says_what_bench_needs(tmp_path):
    from tinyface import config
    from tinyface.device.bench import prepare_inputs

    settings = config.load(None, {"data": {"dir": str(people_folder(tmp_path / "photos", 3))}})
    with pytest.raises(errors.DataError) as exc:
        prepare_inputs(None, 10, settings)
    line = exc.value.one_line()
    assert "no pairsDevTest.txt in" in line and "tinyface data fetch lfw" in line and "--data" in line


def test_bench_checks_data_before_the_port(capsys, tmp_path):
    # was: the port opened and the handshake made before --data was read
    photos = people_folder(tmp_path / "photos", 3)
    code, line = tinyface(capsys, "bench", "--port", "/dev/ttyNONE", "--model", RELEASED, "--data", photos)
    assert code == errors.DataError.exit_code == 4
    assert "no pairsDevTest.txt in" in line and "ttyNONE" not in line


@pytest.mark.parametrize("command", [["evaluate", "--model", str(RELEASED)], ["data", "stats"], ["data", "cache"]],
                         ids=" ".join)
def test_commands_that_read_settings_take_set(capsys, command):
    # was: "No such option '--set'" (exit 2), though docs/cli.md says every such command takes it
    code, line = tinyface(capsys, *command, "--set", "data.nope=1")
    assert code == errors.ConfigError.exit_code == 3
    assert "unknown key 'data.nope' in command-line options" in line


# --- help teaches: an example for every command -----------------------------------------------

def _command_paths():
    import click

    paths = []
    for name in cli_main.COMMANDS:
        cmd = cli_main.cli.get_command(None, name)
        paths.append([name])
        if isinstance(cmd, click.Group):
            paths.extend([name, sub] for sub in cmd.commands)
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_every_command_help_has_examples(path):
    result = CliRunner().invoke(cli_main.cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output, f"`tinyface {' '.join(path)} --help` has no examples"


def _set_examples() -> dict[str, str]:
    """{command path: the example in its --set help}, for every command that takes --set."""
    import re

    examples = {}
    for path in _command_paths():
        cmd = cli_main.cli
        for name in path:
            cmd = cmd.get_command(None, name)
        option = next((p for p in cmd.params if p.name == "set_items"), None)
        if option is not None:
            examples[" ".join(path)] = re.search(r"Example: --set (\S+)", option.help).group(1)
    return examples


def _command_reads(path: str, setting: str) -> bool:
    """Whether `tinyface PATH` reads ``setting`` (``section.key``), by one static rule: some module
    the command's module imports (transitively, module- and function-level imports alike, as
    tests/test_layering.py reads them; tinyface.config, which defines and checks every setting, left
    out) reads ``<anything>.section.key``, or ``<anything>.section.m(...)`` for a method ``m`` of the
    section's dataclass that reads ``self.key`` (``settings.data.cache_path()``), or ``name.key``
    where ``name = <anything>.section`` in that module. Strings and comments never count, so the
    --set example's own text (``@set_option("distill.epochs=5")``) cannot vouch for itself."""
    import ast
    import dataclasses
    import inspect
    import textwrap

    from tests.test_layering import _imports, _modules
    from tinyface import config

    section, key = setting.split(".", 1)
    cls = next(f.type for f in dataclasses.fields(config.Settings) if f.name == section)
    cls = getattr(config, cls) if isinstance(cls, str) else cls
    names = {key}  # the key itself, and the section's methods that read it
    for node in ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body:
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(n, ast.Attribute) and n.attr == key and getattr(n.value, "id", None) == "self"
                for n in ast.walk(node)):
            names.add(node.name)

    cmd = cli_main.cli
    for name in path.split():
        cmd = cmd.get_command(None, name)
    modules = _modules()
    seen, todo = set(), [cmd.callback.__module__]
    while todo:
        module = todo.pop()
        if module not in seen and module in modules:
            seen.add(module)
            todo.extend(_imports(module, modules[module], modules))
    for module in sorted(seen - {"tinyface.config"}):
        tree = ast.parse(modules[module].read_text(encoding="utf-8"))
        aliases = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Attribute)
                   and n.value.attr == section for t in n.targets if isinstance(t, ast.Name)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and n.attr in names and (
                    isinstance(n.value, ast.Attribute) and n.value.attr == section
                    or isinstance(n.value, ast.Name) and n.value.id in aliases):
                return True
    return False


@pytest.mark.parametrize("path, example", sorted(_set_examples().items()))
def test_the_set_example_is_a_setting(path, example):
    """`--set`'s example in each command's help is a real setting with a valid value, and one the
    command reads (it was distill.epochs=5 everywhere, which most commands never read)."""
    from tinyface import config

    config.load(overrides=config.parse_set_option([example]))
    setting = example.split("=", 1)[0]
    assert _command_reads(path, setting), f"`tinyface {path} --help` shows --set {example}, a setting it never reads"


def test_the_reading_rule_tells_a_setting_read_from_one_ignored():
    """The rule above is no rubber stamp: the old example distill.epochs is read by `build` (the
    training) and by no command that does not train; data.cache_dir is read through a method."""
    assert _command_reads("build", "distill.epochs")
    for path in ("flash", "profile", "gallery list", "data stats", "bench"):
        assert not _command_reads(path, "distill.epochs"), path
    assert _command_reads("data cache", "data.cache_dir") and not _command_reads("data cache", "student.width")


@pytest.mark.parametrize("build", ["--native", "--isa"])
def test_fault_injection_is_refused_for_the_firmware_builds_before_any_build(capsys, build):
    """--drop-reply/--corrupt-reply are the Python emulation's: --native went on to build and serve
    the firmware without the faults it was asked for."""
    code, line = tinyface(capsys, "emulate", build, "--drop-reply", "1")
    assert code == 2
    assert "fault injection (--drop-reply, --corrupt-reply)" in line and "not of --native or --isa" in line


@pytest.mark.parametrize("to_file", ["plot", "stdout"])
def test_a_full_disk_is_one_line_and_exit_14_not_an_internal_error(tmp_path, to_file):
    """A write the disk has no room for (full, a quota, `ulimit -f`: every write past the limit fails
    with EFBIG, as one fails with ENOSPC on a full disk) is the machine's state, not a bug: one line
    naming the file where tinyface knows it (an artifact written through fsutil.atomic_path), exit
    14, no half-written file. It was `internal error: OSError: [Errno 27] File too large`, exit 70."""
    from tests.conftest import run_cli

    plot = tmp_path / "profile.png"
    if to_file == "plot":
        proc = run_cli("profile", "--board", "esp32", "--model", str(RELEASED), "--plot", str(plot),
                       prefix=("bash", "-c", 'ulimit -f 4 && exec "$@"', "limited"))
    else:  # the results themselves, redirected into a file that cannot grow
        proc = run_cli("boards", "--json", prefix=("bash", "-c", f'ulimit -f 0 && exec "$@" > {tmp_path}/out.json',
                                                   "limited"))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == errors.OutputError.exit_code, proc.stderr
    assert len(lines) == 1 and "internal error" not in lines[0] and "File too large" in lines[0], proc.stderr
    if to_file == "plot":
        assert lines[0].startswith(f"tinyface: error: cannot write {plot}: ")
        assert list(tmp_path.iterdir()) == []  # no partial plot, no temp file


def test_emulate_baud_past_32_bits_is_refused(capsys):
    # was: accepted; the native and ISA firmwares read it as a uint32 (strtoul), so 4294967297 paced the
    # link at 1 baud while `emulate` said "link 4294967297 baud"
    code, line = tinyface(capsys, "emulate", "--baud", "4294967297", "--once")
    assert code == errors.EXIT_USAGE and "--baud" in line and "4294967295" in line
