"""Bad inputs found by the CLI audit of 2026-12-05: each failed before its fix (a silent default, or
an internal error in the middle of the results). Helpers and the own-folder fixture are those of
test_bad_inputs.py.
"""

import json
import os
import subprocess
import sys

import pytest

from tinyface import errors
from tinyface.cli import main as cli_main

from test_bad_inputs import RELEASED, _own_folder, tinyface  # noqa: F401  (_own_folder: autouse fixture)

EMPTY = "it is empty (give a value, or leave the option out for its default)"


# --- an option given as "" is refused, not read as its default --------------------------------

@pytest.mark.parametrize("args, option", [
    # was: the whole default dataset evaluated (minutes) and exit 0
    (["evaluate", "--model", str(RELEASED), "--data", ""], "--data"),
    (["evaluate", "--model", "", "--data", "."], "--model"),  # was: "no model at ." (exit 6)
    (["evaluate", "--model", str(RELEASED), "--out", ""], "--out"),  # was: no report written, exit 0
    (["build", "--print-config", "--data", ""], "--data"),
    (["build", "--print-config", "--out", ""], "--out"),
    (["profile", "--model", ""], "--model"),  # was: the default model profiled
    (["profile", "--plot", ""], "--plot"),  # was: "Invalid value for '--plot': .: ..."
    (["emulate", "--model", ""], "--model"),
    (["flash", "--board", "esp32", "--dry-run", "--model", ""], "--model"),  # was: the default model flashed
    (["flash", "--board", "esp32", "--dry-run", "--project-dir", ""], "--project-dir"),  # was: build/firmware
    (["flash", "--board", "esp32", "--port", ""], "--port"),  # was: port detected, project built
    (["bench", "--port", ""], "--port"),  # was: "cannot open : No such file or directory" (exit 7)
    (["bench", "--port", "/dev/ttyNONE", "--model", ""], "--model"),
    (["bench", "--port", "/dev/ttyNONE", "--data", ""], "--data"),
    (["bench", "--port", "/dev/ttyNONE", "--out", ""], "--out"),
    (["gallery", "list", "--port", ""], "--port"),
    (["enroll", "--port", "/dev/ttyNONE", "--name", "Bob", "--model", "", "photo.jpg"], "--model"),
    (["identify", "--port", "", "photo.jpg"], "--port"),
    (["data", "fetch", "lfw", "--dest", ""], "--dest"),  # was: the default dataset folder "verified"
    (["data", "fetch", "lfw", "--url", ""], "--url"),  # was: the public URL used
    (["data", "stats", "--data", ""], "--data"),  # was: the default dataset's statistics
    (["--config", "", "boards"], "--config"),  # was: "config file not found: ." (exit 3)
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_an_empty_option_value_is_a_usage_error_naming_the_option(capsys, tmp_path, args, option):
    (tmp_path / "photo.jpg").write_bytes(b"")
    code, line = tinyface(capsys, *args)
    assert code == errors.EXIT_USAGE
    assert f"'{option}'" in line and EMPTY in line
    assert not (tmp_path / "build").exists()  # nothing was rendered or built in a default place


def test_an_empty_option_value_with_json_is_one_error_object(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["profile", "--model", "", "--json"])
    captured = capsys.readouterr()
    assert exc.value.code == errors.EXIT_USAGE
    reply = json.loads(captured.out)
    assert reply["kind"] == "UsageError" and EMPTY in reply["error"]
    assert captured.err.strip() == f"tinyface: error: {reply['error']}"


# --- data fetch: its argument is NAME in the usage line and in errors, as the help calls it ----

def test_data_fetch_names_its_argument_name(capsys):
    code, line = tinyface(capsys, "data", "fetch", "nosuch")
    # was: "Invalid value for '{lfw|fairface|utkface|pins|celeba}': ..."
    assert code == errors.EXIT_USAGE and "Invalid value for 'NAME': 'nosuch' is not one of 'lfw'" in line


# --- stdout that cannot encode what is printed: the results, not an internal error ------------

def _stats_run(tmp_path, encoding: str) -> subprocess.CompletedProcess:
    """`tinyface data stats` on two people, one with a file whose name is not UTF-8, with stdout in
    ``encoding`` (strict errors, as in a UTF-8 desktop locale or PYTHONIOENCODING=ascii)."""
    from PIL import Image

    root = tmp_path / "photos"
    for person in ("alice", "bob"):
        (root / person).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (32, 32), 128).save(root / person / f"{i}.png")
    bad_name = os.fsdecode(b"bad\xff.jpg")  # a Latin-1 name, not UTF-8
    (root / "bob" / bad_name).write_text("not an image")
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "stats", "--data", str(root)],
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path, env=env)


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_data_stats_prints_a_name_that_is_not_utf8(tmp_path, encoding):
    # was: "internal error: UnicodeEncodeError: ... surrogates not allowed" (exit 70) after half the table
    proc = _stats_run(tmp_path, encoding)
    out, err = proc.stdout.decode(encoding), proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, err
    assert "internal error" not in err and "Traceback" not in err
    assert "identities: 2" in out and "skipped files: 1" in out
    assert "bad\\udcff.jpg: not a readable image" in out  # escaped, as stderr escapes it


def test_data_stats_histogram_on_an_ascii_stdout(tmp_path):
    # was: internal error 70 (the histogram's "█" bars), before the first bar was printed
    proc = _stats_run(tmp_path, "ascii")
    out = proc.stdout.decode("ascii")
    assert proc.returncode == 0
    assert "|      2 |      2 | " + "#" * 30 in out
