"""The `tinyface` entry point: help, exit codes, one-line errors, and no TensorFlow at start-up."""

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.conftest import (
    assert_one_error_line,
    error_in_process,
    imported_modules,
    own_board,
    run_cli,
    run_in_process as run,
)
from tinyface import errors
from tinyface.cli import main as cli_main

REQUIRED_COMMANDS = ["build", "evaluate", "data", "boards", "profile", "emulate", "bench", "flash"]
# Commands whose *run* may import TensorFlow (they train or convert); their --help must not.
TRAINING_COMMANDS = {"build", "evaluate"}


# --- help -------------------------------------------------------------------------------

def test_help_lists_every_required_command():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split("Commands:", 1)[1]
    for name in REQUIRED_COMMANDS:
        assert f"\n  {name} " in listed, name
    assert set(REQUIRED_COMMANDS) <= set(cli_main.COMMANDS)


@pytest.mark.parametrize("name", sorted(cli_main.COMMANDS))
def test_every_command_has_help_without_tensorflow(name):
    proc, modules = imported_modules(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: tinyface " + name in proc.stdout
    assert "tensorflow" not in modules and "tf_keras" not in modules, f"`tinyface {name} --help` imports TensorFlow"


def test_top_level_help_imports_no_tensorflow_and_no_command_module():
    proc, modules = imported_modules("--help")
    assert proc.returncode == 0
    assert "tensorflow" not in modules
    # lazy commands: none of the command modules is imported to list them
    proc2 = subprocess.run([sys.executable, "-c", "import sys\nfrom tinyface.cli.main import main\n"
                            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                            "print(sorted(m for m in sys.modules"
                            " if m.startswith('tinyface.cli.') and m != 'tinyface.cli.main'))"],
                           capture_output=True, text=True, timeout=60)
    assert proc2.stdout.strip().splitlines()[-1] in ("[]", "['tinyface.cli.common']"), proc2.stdout


def test_version_and_bare_invocation():
    proc = run_cli("--version")
    assert proc.returncode == 0 and "tinyface, version" in proc.stdout
    bare = run_cli()
    assert "Usage: tinyface" in bare.stdout + bare.stderr  # the help, not an error line
    assert "tinyface: error" not in bare.stderr


@pytest.mark.parametrize("args, words", [
    (["boards", "-v"], "-v is an option of tinyface itself: give it before the command (`tinyface -v boards ...`)"),
    (["data", "stats", "--config", "x.toml"],
     "--config is an option of tinyface itself: give it before the command (`tinyface --config PATH data stats ...`)"),
    (["boards", "--version"], "--version is an option of tinyface itself, with no command: `tinyface --version`"),
])
def test_a_global_option_after_the_command_says_where_it_goes(capsys, args, words):
    """was: "No such option '-v'" alone, where the README's "-v gives more output" sends a new user."""
    with pytest.raises(SystemExit) as exc:
        cli_main.main(args)
    err = capsys.readouterr().err
    assert exc.value.code == errors.EXIT_USAGE and err.count("\n") == 1 and words in err


# --- errors: one line, the class's exit code, never a traceback ----------------------------

def _all_error_classes():
    seen, todo = [], [errors.TinyfaceError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in seen if c.__module__ == "tinyface.errors"]


def test_exit_codes_are_distinct_and_not_reserved():
    codes = {cls.__name__: cls.exit_code for cls in _all_error_classes() if cls is not errors.TinyfaceError}
    assert len(set(codes.values())) == len(codes), codes
    assert errors.EXIT_USAGE not in codes.values()  # click's usage errors keep 2 to themselves
    assert errors.Interrupted.exit_code == errors.EXIT_INTERRUPTED  # Ctrl-C that has more to say than "interrupted"
    assert all(code not in (0, errors.EXIT_INTERNAL, errors.EXIT_INTERRUPTED)
               for name, code in codes.items() if name != "Interrupted")


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__name__)
def test_each_error_class_becomes_one_line_and_its_exit_code(cls, monkeypatch, capsys):
    @click.command()
    def raiser():
        raise cls("something is wrong\nacross two lines", hint="do this")

    monkeypatch.setattr(sys.modules[__name__], "_raiser", raiser, raising=False)
    monkeypatch.setitem(cli_main.COMMANDS, "raiser", (__name__, "_raiser", "raises"))
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["raiser"])
    assert exc.value.code == cls.exit_code
    err = capsys.readouterr().err
    assert err == "tinyface: error: something is wrong across two lines (do this)\n"


def test_internal_error_is_one_line_without_traceback_unless_verbose(monkeypatch, capsys):
    """What -v (--verbose, -vv: the count) changes: an internal error's traceback is printed, after
    the same line; the console's verbosity is the count (TensorFlow's logs follow it: console.py)."""
    from tinyface import console

    @click.command()
    def boom():
        raise RuntimeError("a bug")

    monkeypatch.setattr(console, "_verbosity", 0)  # restored at teardown: -v below leaves it set
    monkeypatch.setattr(sys.modules[__name__], "_boom", boom, raising=False)
    monkeypatch.setitem(cli_main.COMMANDS, "boom", (__name__, "_boom", "a bug"))
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["boom"])
    assert exc.value.code == errors.EXIT_INTERNAL and console.verbosity() == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: a bug" in err and "Traceback" not in err
    for flags, level in ((["-v"], 1), (["--verbose"], 1), (["-vv"], 2), (["-v", "-v"], 2)):
        with pytest.raises(SystemExit) as exc:
            cli_main.main([*flags, "boom"])
        assert exc.value.code == errors.EXIT_INTERNAL and console.verbosity() == level, flags
        verbose = capsys.readouterr().err
        assert "Traceback" in verbose and 'raise RuntimeError("a bug")' in verbose, flags
        assert verbose.rstrip("\n").splitlines()[-1] == err.rstrip("\n"), flags  # the same line, last


def test_interrupt_exits_130(monkeypatch, capsys):
    @click.command()
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules[__name__], "_interrupted", interrupted, raising=False)
    monkeypatch.setitem(cli_main.COMMANDS, "interrupted", (__name__, "_interrupted", ""))
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["interrupted"])
    assert exc.value.code == errors.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "tinyface: interrupted\n"  # one line: no blank one from click first


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_ctrl_c_while_the_script_loads_is_one_line_not_a_traceback(json_flag):
    # was: a Ctrl-C in the tenth of a second the `tinyface` script spends importing click and rich,
    # before main() catches interrupts, ended in a traceback. The Ctrl-C comes as click is imported.
    code = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
sys.argv = ["tinyface", "boards", *sys.argv[1:]]
from tinyface.cli.entry import main
main()
"""
    proc = subprocess.run([sys.executable, "-c", code, *json_flag], capture_output=True, text=True, timeout=60)
    assert proc.returncode == errors.EXIT_INTERRUPTED, proc.stderr
    assert proc.stderr == "tinyface: interrupted\n"
    if json_flag:
        assert json.loads(proc.stdout) == {"error": "interrupted", "kind": "Interrupted",
                                           "exit_code": errors.EXIT_INTERRUPTED}
    else:
        assert proc.stdout == ""


def test_the_script_s_entry_point_runs_the_cli():
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['tinyface', '--version']; "
                           "from tinyface.cli.entry import main; main()"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(__import__("tinyface").__version__), proc.stderr


def test_sigterm_ends_a_command_as_ctrl_c_does_with_its_own_exit_code(tmp_path):
    """SIGTERM (kill, timeout) ended tinyface on the spot: exit -15, no line, no --json error,
    no cleanup (a build left TensorFlow's temporary folders behind). Now: cleanup, one line, 143."""
    import json
    import subprocess

    script = f"""
import os, signal, sys, click
from pathlib import Path
from tinyface.cli import main as cli_main

@click.command()
@click.option("--json", "as_json", is_flag=True)
def working(as_json):
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10 ** 7):
            pass
        Path({str(tmp_path)!r}, "went-on").touch()
    finally:
        Path({str(tmp_path)!r}, "cleaned-up").touch()

cli_main.COMMANDS["working"] = ("__main__", "working", "")
cli_main.main(sys.argv[1:])
"""
    proc = subprocess.run([sys.executable, "-c", script, "working", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == errors.EXIT_TERMINATED == 143, (proc.returncode, proc.stderr)
    assert proc.stderr == "tinyface: terminated\n", proc.stderr
    assert json.loads(proc.stdout) == {"error": "terminated", "kind": "Terminated", "exit_code": 143}
    assert (tmp_path / "cleaned-up").exists() and not (tmp_path / "went-on").exists()


@pytest.mark.parametrize("then", ["returns", "raises_tinyface_error", "raises_a_bug"])
def test_a_ctrl_c_a_library_swallowed_still_exits_130(then, monkeypatch, capsys):
    """A real SIGINT whose KeyboardInterrupt is lost (raised inside a finalizer, or turned into
    another exception by a library) is still an interrupt: exit 130, not success or an error."""
    import os
    import signal

    @click.command()
    def swallowing():
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the CLI's handler raises here...
            for _ in range(1000):
                pass
        except KeyboardInterrupt:  # ...and a library swallows it
            pass
        if then == "raises_tinyface_error":
            raise errors.DataError("a consequence of the interrupt")
        if then == "raises_a_bug":
            raise RuntimeError("a consequence of the interrupt")

    monkeypatch.setattr(sys.modules[__name__], "_swallowing", swallowing, raising=False)
    monkeypatch.setitem(cli_main.COMMANDS, "swallowing", (__name__, "_swallowing", ""))
    # as under a terminal, also when pytest runs as a shell's background job (SIGINT inherited
    # ignored, which tinyface leaves ignored on purpose)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as exc:
            cli_main.main(["swallowing"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert exc.value.code == errors.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "tinyface: interrupted"
    from tinyface import console
    console.raise_if_interrupted()  # and the flag does not leak into later work in this process


@pytest.mark.parametrize("args, needle", [
    (["no-such-command"], "No such command"),
    (["data", "stats", "--no-such-option"], "No such option"),
    (["data", "fetch", "not-a-dataset"], "not-a-dataset"),
])
def test_usage_errors_are_one_line_exit_2(args, needle):
    line = assert_one_error_line(run_cli(*args), 2, needle)
    assert "--help" in line


def test_real_errors_through_the_installed_script(tmp_path):
    """The console script itself (not just main()) turns errors into one line and a code."""
    exe = Path(sys.executable).parent / "tinyface"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tinyface.cli.main"]
    proc = subprocess.run(cmd + ["data", "stats", "--data", str(tmp_path / "missing")], capture_output=True,
                          text=True, timeout=60)
    assert_one_error_line(proc, errors.DataError.exit_code, "no dataset at", str(tmp_path / "missing"),
                          "tinyface data fetch lfw")
    (tmp_path / "tinyface.toml").write_text("[data]\ncrop_sise = 48\n")
    proc = subprocess.run(cmd + ["build", "--print-config"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert_one_error_line(proc, errors.ConfigError.exit_code, "data.crop_sise")


def test_build_without_dataset_says_what_to_do(tmp_path):
    proc = run_cli("build", env={"TINYFACE_DATA": str(tmp_path / "nothing-here")}, cwd=tmp_path)
    line = assert_one_error_line(proc, errors.DataError.exit_code, "tinyface data fetch lfw", "--data")
    assert str(tmp_path / "nothing-here") in line


def test_data_stats_runs_without_tensorflow(small_dataset, tmp_path):
    proc, modules = imported_modules("data", "stats", "--data", str(small_dataset), "--json",
                                     env={"TINYFACE_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert "tensorflow" not in modules and "tf_keras" not in modules


def test_device_side_commands_run_without_tensorflow(tiny_bundle, tmp_path):
    """Not only their --help: boards, profile and bench (up to its port error) never import TF."""
    model_dir = str(tiny_bundle.model_path.parent)
    runs = {
        "boards": (["boards", "--json"], {0}),
        "profile": (["profile", "--board", "esp32", "--model", model_dir, "--json"], {0}),
        "bench": (["bench", "--port", str(tmp_path / "no-such-port"), "--model", model_dir, "--images", "2"],
                  {errors.DeviceError.exit_code}),
    }
    for name, (args, codes) in runs.items():
        proc, modules = imported_modules(*args, cwd=tmp_path)
        assert proc.returncode in codes, (name, proc.returncode, proc.stderr[-2000:])
        assert "tensorflow" not in modules and "tf_keras" not in modules, f"`tinyface {' '.join(args)}` imports TF"


@pytest.mark.parametrize("args", [("boards",), ("boards", "--json"), ("profile",), ("--help",), ("boards", "--help")])
def test_a_closed_stdout_ends_quietly_with_0(args):
    # `tinyface boards | head -1`: the reader is gone before the command writes its table
    proc = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert stderr == b""


@pytest.mark.parametrize("unbuffered", ["1", ""])
@pytest.mark.parametrize("args", [("boards",), ("boards", "--json"), ("--help",), ("boards", "--nope", "--json")])
def test_a_full_disk_under_stdout_is_one_line_that_names_it(args, unbuffered):
    # `tinyface boards --json > out.json` on a full disk (/dev/full: every write is ENOSPC). It read
    # "a file cannot be written", or, where stdout is buffered, the interpreter's own exit code 120
    # and a traceback at exit
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", *args], stdout=full,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, timeout=120)
    lines = proc.stderr.splitlines()
    if "--nope" in args:  # the usage error is what is said; its JSON object could not be written
        assert proc.returncode == 2 and len(lines) == 1 and "--nope" in lines[0], proc.stderr
        return
    assert proc.returncode == errors.OutputError.exit_code == 14, proc.stderr
    assert lines == ["tinyface: error: cannot write the standard output (/dev/full): No space left on device "
                     "(free some space there, or write elsewhere)"]


def test_messages_are_not_hard_wrapped_when_stderr_is_not_a_terminal(capfd):
    from tinyface.console import info

    info("word " * 40)  # 200 characters: rich would wrap this at 80 columns
    assert ("word " * 40).strip() in capfd.readouterr().err


@pytest.mark.parametrize("args", [
    ("build", "--out", "{blocker}/run"),
    ("build", "--out", "/proc/tinyface-run"),
    ("bench", "--port", "/dev/null", "--out", "{blocker}/results.json"),
    ("data", "fetch", "lfw", "--dest", "{blocker}/sub/lfw", "--url", "file:///nowhere"),
])
def test_an_output_that_cannot_be_created_is_one_line_exit_11(tmp_path, small_dataset, args):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    proc = run_cli(*(a.format(blocker=blocker) for a in args), env={"TINYFACE_DATA": str(small_dataset)})
    assert proc.returncode == errors.OutputError.exit_code == 14, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: cannot ")


# --- --boards-dir and $TINYFACE_BOARDS_DIR: one rule, docs/cli.md's exit codes --------------------------
# Both refuse a bad folder by one rule, in the same words: a bad option value (exit 2) and a bad
# environment (exit 3).

@pytest.mark.usefixtures("own_folder", "no_boards_dir")
@pytest.mark.parametrize("what", ["missing", "file"])
def test_a_bad_boards_folder_is_said_alike_by_the_option_and_the_variable(capsys, tmp_path, monkeypatch, what):
    path = tmp_path / "my-bords"
    if what == "file":
        path.write_text("name = 'myboard'\n")
    reason = (f"must be a folder of board files, got {str(path)!r}, which "
              + ("does not exist" if what == "missing" else "is not a folder"))
    code, out, _ = run(capsys, "--boards-dir", path, "boards", "--json")
    option = json.loads(out)
    # was: "Invalid value for '--boards-dir': Directory '...' does not exist." / "... is a file."
    assert code == option["exit_code"] == errors.EXIT_USAGE == 2 and option["kind"] == "UsageError"
    assert option["error"].startswith("Invalid value for '--boards-dir': " + reason)
    monkeypatch.setenv("TINYFACE_BOARDS_DIR", str(path))
    code, out, _ = run(capsys, "boards", "--json")
    variable = json.loads(out)
    assert code == variable["exit_code"] == errors.ConfigError.exit_code == 3 and variable["kind"] == "ConfigError"
    assert variable["error"].startswith("TINYFACE_BOARDS_DIR " + reason)
    # a command that needs a board says the same before anything else (was: the variable silently
    # ignored, then "unknown board 'myboard'"), as TINYFACE_NATIVE_JOBS and other bad settings
    code, line = error_in_process(capsys, "flash", "--board", "myboard", "--dry-run", "--project-dir", tmp_path / "fw")
    assert code == 3 and line.startswith("tinyface: error: TINYFACE_BOARDS_DIR " + reason)
    assert not (tmp_path / "fw").exists()


@pytest.mark.usefixtures("own_folder", "no_boards_dir")
def test_the_boards_dir_option_expands_a_tilde_as_the_variable_does(capsys, tmp_path, monkeypatch):
    # was: `--boards-dir=~/mine` (no shell expands that ~) refused as "Directory '~/mine' does not exist"
    monkeypatch.setenv("HOME", str(tmp_path))
    own_board(tmp_path / "mine")
    for args in (["--boards-dir", "~/mine"], []):
        if not args:
            monkeypatch.setenv("TINYFACE_BOARDS_DIR", "~/mine")
        code, out, err = run(capsys, *args, "boards", "--json")
        assert code == 0, err
        assert "myboard" in [b["name"] for b in json.loads(out)]


@pytest.mark.parametrize("args, line", [
    (("gallery", "--port", "/dev/ttyUSB0", "list"),
     "--port is an option of the commands delete and list: give one first (`tinyface gallery delete --port ...`)"),
    (("data", "--dest", "x", "fetch", "lfw"),
     "--dest is an option of `tinyface data fetch`: give the command first (`tinyface data fetch --dest ...`)"),
])
def test_a_commands_option_given_before_the_command_says_where_it_goes(capsys, args, line):
    # was: "No such option '--port'", as if gallery had no such option at all
    code, said = error_in_process(capsys, *args)
    assert code == errors.EXIT_USAGE == 2
    assert said == f"tinyface: error: {line} (see `tinyface {args[0]} --help`)"
    code, said = error_in_process(capsys, args[0], "--bogus")  # an option of none of them: click's own words
    assert code == 2 and "No such option '--bogus'" in said
