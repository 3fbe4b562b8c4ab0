"""tinyface/cli/common.py, the options every command shares: an option given as "" is refused
(exit 2), not read as its default (a silent default: a script's `--data "$DIR"` with DIR unset
evaluated the whole default dataset)."""

import json

import pytest

from tests.conftest import RELEASED, error_in_process as tinyface
from tinyface import errors
from tinyface.cli import main as cli_main

pytestmark = pytest.mark.usefixtures("own_folder")

EMPTY = "it is empty (give a value, or leave the option out for its default)"


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
