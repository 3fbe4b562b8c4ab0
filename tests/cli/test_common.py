"""tinyface/cli/common.py, the options every command shares: an option given as "" is refused
(exit 2), not read as its default (a silent default: a script's `--data "$DIR"` with DIR unset
evaluated the whole default dataset)."""

import json
import re

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


# --- an option that sets a setting refuses, by its own name and with exit 2, what the setting refuses ------
# Was: `bench --images 0` exit 2 but `--images 999999999` exit 3, "bench.images must be in [1, 1000000]" (the
# setting's name, and a hint about `build`); `--timeout 0` exit 2 but `inf` or `nan` exit 3; `build --epochs
# 5000` exit 3; `evaluate --target-far nan` an internal error (exit 70) and `--strangers nan` accepted.

BENCH = ["bench", "--port", "/dev/ttyNONE"]


@pytest.mark.parametrize("args, option", [
    (BENCH + ["--images", "0"], "--images"),
    (BENCH + ["--images", "1000001"], "--images"),
    (BENCH + ["--images", "999999999"], "--images"),
    (BENCH + ["--timeout", "0"], "--timeout"),
    (BENCH + ["--timeout", "3600.5"], "--timeout"),
    (BENCH + ["--timeout", "inf"], "--timeout"),
    (BENCH + ["--timeout", "nan"], "--timeout"),
    (BENCH + ["--retries", "-1"], "--retries"),
    (BENCH + ["--retries", "101"], "--retries"),
    (["build", "--print-config", "--epochs", "0"], "--epochs"),
    (["build", "--print-config", "--epochs", "1001"], "--epochs"),
    (["evaluate", "--model", str(RELEASED), "--strangers", "nan"], "--strangers"),
    (["evaluate", "--model", str(RELEASED), "--strangers", "1"], "--strangers"),
    (["evaluate", "--model", str(RELEASED), "--target-far", "nan"], "--target-far"),
    (["evaluate", "--model", str(RELEASED), "--target-far", "0"], "--target-far"),
    (["gallery", "list", "--port", "/dev/ttyNONE", "--timeout", "inf"], "--timeout"),
    (["gallery", "list", "--port", "/dev/ttyNONE", "--retries", "101"], "--retries"),
    (["identify", "--port", "/dev/ttyNONE", "--timeout", "nan", str(RELEASED / "model.json")], "--timeout"),
    (["data", "fetch", "lfw", "--timeout", "nan"], "--timeout"),
    (["data", "fetch", "lfw", "--timeout", "0"], "--timeout"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_an_option_out_of_its_setting_s_range_is_a_usage_error_naming_the_option(capsys, args, option):
    code, line = tinyface(capsys, *args)
    assert code == errors.EXIT_USAGE, line
    assert f"Invalid value for '{option}'" in line and "is not" in line and "in the range" in line
    assert "bench." not in line and "distill." not in line  # the option, not the setting behind it


@pytest.mark.parametrize("key", ["bench.images", "bench.timeout_s", "bench.retries", "distill.epochs"])
def test_an_option_and_its_setting_refuse_the_same_values(key):
    """The option's type is made from the setting's one range (config.OPTION_SETTING_RANGES), so each
    refuses what the other refuses: at both ends, just inside and just outside."""
    import click

    from tinyface import config
    from tinyface.cli.common import setting_type

    interval, option = config.OPTION_SETTING_RANGES[key], setting_type(key)
    section, name = key.split(".")
    step = 1 if isinstance(getattr(getattr(config.Settings(), section), name), int) else 0.001
    for value in (interval.low - step, interval.low, interval.low + step, interval.high - step, interval.high,
                  interval.high + step):
        try:
            option.convert(str(value), None, None)
            option_takes = True
        except click.BadParameter:
            option_takes = False
        try:
            config.load(None, {section: {name: value}})
            setting_takes = True
        except errors.ConfigError:
            setting_takes = False
        assert option_takes == setting_takes == (value in interval), (key, value)


@pytest.mark.parametrize("command, options", [
    ("bench", {"--images": "bench.images", "--timeout": "bench.timeout_s", "--retries": "bench.retries"}),
    ("build", {"--epochs": "distill.epochs"}),
    ("evaluate", {"--strangers": "STRANGER_SHARE_RANGE", "--target-far": "TARGET_FAR_RANGE"}),
])
def test_help_shows_each_option_s_range(command, options):
    from click.testing import CliRunner

    from tinyface.cli.common import range_type, setting_type
    from tinyface.evaluation import model_eval

    result = CliRunner().invoke(cli_main.cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split("Options:")[1].split())
    for option, source in options.items():
        kind = setting_type(source) if "." in source else range_type(getattr(model_eval, source))
        shown = kind._describe_range()  # "1<=x<=1000000", from the one definition
        # the option's help ends with click's brackets: "[1<=x<=1000000]" or "[default: 0.25; 0<=x<1]"
        brackets = re.search(re.escape(option) + r" (INTEGER|FLOAT) RANGE .*?\[([^\]]*<[^\]]*)\]", text)
        assert brackets and brackets[2].split("; ")[-1] == shown, (option, shown, text)


@pytest.mark.parametrize("args", [
    ["profile", "--board", "esp33"],
    ["emulate", "--board", "esp33"],
    ["flash", "--board", "esp33", "--dry-run"],
    ["bench", "--port", "/dev/ttyNONE", "--board", "esp33"],
    ["gallery", "list", "--port", "/dev/ttyNONE", "--board", "esp33"],
    ["enroll", "--port", "/dev/ttyNONE", "--name", "Bob", "--board", "esp33", "photo.jpg"],
    ["identify", "--port", "/dev/ttyNONE", "--board", "esp33", "photo.jpg"],
    ["boards", "esp33"],
], ids=" ".join)
def test_an_unknown_board_on_the_command_line_is_a_bad_option_as_an_unknown_preset_is(capsys, tmp_path, args):
    """was: exit 3 (a bad setting), where `build --preset esp33` is exit 2: the command line is wrong."""
    (tmp_path / "photo.jpg").write_bytes(b"")
    code, line = tinyface(capsys, *args)
    assert code == errors.EXIT_USAGE
    assert "unknown board 'esp33'" in line and "known boards: esp32, esp32c3" in line
    assert ("'NAME'" if args[0] == "boards" else "'--board'") in line


def test_a_board_named_in_settings_stays_a_bad_setting_and_own_board_files_are_known(capsys, tmp_path):
    """The same name from `--set firmware.board` is a setting (exit 3); a board of --boards-dir's folder
    and a board file given by path pass the option's check, and a .toml path that is no file does not."""
    code, line = tinyface(capsys, "flash", "--dry-run", "--set", "firmware.board=esp33")
    assert code == errors.ConfigError.exit_code == 3 and "unknown board 'esp33'" in line
    mine = tmp_path / "boards"
    mine.mkdir()
    text = (RELEASED.parents[1] / "boards" / "esp32.toml").read_text().replace('name = "esp32"', 'name = "myboard"')
    (mine / "myboard.toml").write_text(text)
    for args in (["--boards-dir", str(mine), "boards", "myboard", "--json"],
                 ["boards", str(mine / "myboard.toml"), "--json"]):
        with pytest.raises(SystemExit) as exc:
            cli_main.main(args)
        assert exc.value.code == 0
        assert json.loads(capsys.readouterr().out)["name"] == "myboard"
    code, line = tinyface(capsys, "boards", str(tmp_path / "nothere.toml"))
    assert code == errors.EXIT_USAGE and "no board file" in line


def test_a_command_reads_its_settings_file_once(capsys, tmp_path, monkeypatch):
    """The root command reads ./tinyface.toml and the command applies what it read (was: every
    command read and parsed it twice, and could see it change in between)."""
    from tests.conftest import run_in_process
    from tinyface import config

    (tmp_path / "tinyface.toml").write_text('[firmware]\nboard = "esp32s3"\n')
    reads = []
    real = config.read_settings_file
    monkeypatch.setattr(config, "read_settings_file", lambda path=None: reads.append(path) or real(path))
    code, out, err = run_in_process(capsys, "profile", "--model", str(RELEASED), "--json")
    assert code == 0, err
    assert json.loads(out)["board"] == "esp32s3"  # the file's setting, applied by the command
    assert reads == [None]
