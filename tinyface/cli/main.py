"""Entry point: the lazy command group and the one place where errors become exit codes."""

from __future__ import annotations

import importlib
import io
import sys

import click

from tinyface import __version__, console
from tinyface.cli.common import input_path, not_empty
from tinyface.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Interrupted,
    TinyfaceError,
    exit_code_list,
)

# command name -> (module, attribute, one-line help). Help text lives here so that
# `tinyface --help` lists the commands without importing any of them.
COMMANDS = {
    "build": ("tinyface.cli.build", "build",
              "Train, distill, prune and int8-quantize a model; evaluate every stage; write a report."),
    "evaluate": ("tinyface.cli.evaluate", "evaluate",
                 "Evaluate a model (Keras, TFLite or TFLM) on any folder-per-person dataset."),
    "data": ("tinyface.cli.data", "data", "Fetch a dataset, show its statistics, or show and clear the cache."),
    "boards": ("tinyface.cli.boards", "boards", "List the supported boards and their memory and compute budgets."),
    "profile": ("tinyface.cli.profile", "profile",
                "Per-layer MACs, parameters and estimated latency of a model on a board."),
    "emulate": ("tinyface.cli.emulate", "emulate", "Run an emulated board on a pseudo-terminal (real TFLM kernels)."),
    "bench": ("tinyface.cli.bench", "bench", "Benchmark a board over serial: latency, accuracy, parity with the host."),
    "flash": ("tinyface.cli.flash", "flash",
              "Generate the firmware project, build it with PlatformIO and flash a board."),
    "enroll": ("tinyface.cli.gallery", "enroll",
               "Enroll a person on a board from photos (faces checked, aligned on the host)."),
    "gallery": ("tinyface.cli.gallery", "gallery", "List or delete the people enrolled on a board."),
    "identify": ("tinyface.cli.gallery", "identify", "Identify the person in photos with the board's gallery."),
}


class StdoutClosed(Exception):
    """Whoever read our stdout went away (`tinyface boards | head`). Not an OSError, so that
    click's own EPIPE handling (exit 1) lets it through to :func:`main`."""


class CommandInterrupted(Exception):
    """Ctrl-C or SIGTERM while a command ran (its cleanup done). Not a KeyboardInterrupt, so that
    click's main lets it through to :func:`main` without printing a blank line first."""


class LazyGroup(click.Group):
    def make_context(self, *args, **kwargs):  # `tinyface --help | head` prints here
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            raise StdoutClosed() from None

    def invoke(self, ctx):  # every command runs in here
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise StdoutClosed() from None
        except KeyboardInterrupt:
            raise CommandInterrupted() from None

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _boards_dir(ctx, param, value):
    """--boards-dir: a folder of board files, by $TINYFACE_BOARDS_DIR's rule and in its words
    (config.boards_dir_problem); a bad one is a bad option value (exit 2), the variable's a bad
    environment (exit 3), as docs/cli.md's exit codes say."""
    from tinyface import config

    not_empty(ctx, param, value)
    if value is not None and not ctx.resilient_parsing and (what := config.boards_dir_problem(value)):
        raise click.BadParameter(f"must be a folder of board files, got {value!r}, which {what}",
                                 ctx=ctx, param=param)
    return value


EPILOG = """\b
Typical session:
  tinyface data stats                 # what is in the default dataset
  tinyface build --preset esp32       # train -> distill -> prune -> int8, report in build/
  tinyface emulate &                  # an emulated board on a pseudo-terminal: prints /dev/pts/N
  tinyface bench --port /dev/pts/N    # benchmark it (or a real board) over serial
  tinyface enroll --port /dev/pts/N --name Alice photos/alice    # enroll a person from photos
  tinyface identify --port /dev/pts/N door.jpg                   # Alice, or unknown
  tinyface flash --board esp32        # generate firmware, build and flash

Settings come from defaults < a preset (build --preset) < tinyface.toml < command-line
options (docs/config.md). The default dataset
is $TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw (`tinyface data fetch lfw`).

Exit codes: {codes}; a mistake is one line on stderr (docs/cli.md, "Errors and exit codes").
"""


@click.group(cls=LazyGroup, epilog=EPILOG.format(codes=exit_code_list()),
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True,
              help="More output: TensorFlow's and its converter's own logs and warnings (muted "
                   "otherwise), flash's every step; an internal error then also prints its traceback. "
                   "Example: tinyface -v evaluate --model models/esp32")
# a folder or an unreadable file is refused as a missing one is, by config.require_config_file
# (ConfigError, exit 3), not as a bad option value (exit 2)
@click.option("--config", "config_path", type=input_path(), default=None, callback=not_empty,
              help="Settings file (default: ./tinyface.toml if present). "
                   "Example: tinyface --config lab.toml build --print-config")
@click.option("--boards-dir", type=click.Path(), default=None, callback=_boards_dir,
              help="Also read board files (<name>.toml) from this folder, before the shipped ones: a board of "
                   "your own without editing the installed package (default: $TINYFACE_BOARDS_DIR). "
                   "Example: tinyface --boards-dir my-boards flash --board myboard --dry-run")
@click.version_option(__version__, prog_name="tinyface",
                      help="Show the version and exit. Example: tinyface --version")
@click.pass_context
def cli(ctx, verbose, config_path, boards_dir):
    """tinyface: face recognition for the ESP32, from photos to a flashed board.

    Each step is one command; run `tinyface COMMAND --help` for its options.
    """
    from tinyface.console import set_verbosity

    set_verbosity(verbose)
    from tinyface import config, resources

    resources.use_boards_dir(boards_dir or config.user_boards_dir())
    ctx.ensure_object(dict)
    asks_help = ctx.obj.get("asks_help", False)  # a bad --config is no reason to refuse a command's --help
    if not ctx.resilient_parsing and not asks_help:
        # the settings file (--config, else ./tinyface.toml) is checked by every command, even those
        # that read no setting (boards, data fetch): a mistake in it is never passed over in silence
        # read once: each command applies what was read here (cli.common.load_settings)
        ctx.obj["settings_file"] = file = config.read_settings_file(config_path)
        config.load(file)
    ctx.obj["config_path"] = config_path
    ctx.obj["verbose"] = verbose


def _global_option_after_the_command(exc: click.UsageError) -> str | None:
    """For an option of `tinyface` itself given after a command (`tinyface boards -v`, whose click
    error was "No such option: -v" alone): where it goes instead. None for any other error."""
    if not isinstance(exc, click.NoSuchOption) or exc.ctx is None or exc.ctx.parent is None:
        return None
    param = next((p for p in cli.params if exc.option_name in p.opts + p.secondary_opts), None)
    if param is None:
        return None
    command = exc.ctx.command_path.removeprefix("tinyface ")
    if param.is_eager:  # --version: a command of its own
        return f"{exc.option_name} is an option of tinyface itself, with no command: `tinyface {exc.option_name}`"
    flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
    given = exc.option_name if flag else f"{exc.option_name} {param.type.name.upper()}"
    return (f"{exc.option_name} is an option of tinyface itself: give it before the command "
            f"(`tinyface {given} {command} ...`)")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every error ends as one line on stderr and a distinct exit code."""
    args = argv if argv is not None else sys.argv[1:]
    verbose = any(a == "--verbose" or (len(a) > 1 and a[0] == "-" and set(a[1:]) == {"v"}) for a in args)
    as_json = "--json" in args  # a failure is then also one JSON object on stdout
    asks_help = "--help" in args or "-h" in args
    _prepare_stdout()
    previous_handlers = console.catch_interrupts()
    console.reset_json_output()
    try:
        rc = cli.main(args=argv, prog_name="tinyface", standalone_mode=False, obj={"asks_help": asks_help})
        console.raise_if_interrupted()  # a Ctrl-C that a library swallowed: not a success
        _flush_stdout(as_json)
        sys.exit(rc if isinstance(rc, int) else 0)
    except click.exceptions.Exit as exc:  # --help, --version
        _flush_stdout(as_json)
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `tinyface`: the help is the answer
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # bad option or argument: one line, and where to look
        where = exc.ctx.command_path if exc.ctx else "tinyface"
        message = _global_option_after_the_command(exc) or _one_line(exc.format_message())
        _fail(f"{message} (see `{where} --help`)", EXIT_USAGE, "UsageError", as_json)
    except click.ClickException as exc:
        _fail(_one_line(exc.format_message()), exc.exit_code, "UsageError", as_json)
    except (click.Abort, KeyboardInterrupt, CommandInterrupted):
        _interrupted_exit(as_json)
    except TinyfaceError as exc:
        extra = exc.json_fields  # what the work left ("result")
        if isinstance(exc, Interrupted):  # an interrupt that says what it left
            _interrupted_exit(as_json, exc.one_line(), extra)
        if console.interrupted():  # what a swallowed Ctrl-C turned into
            _interrupted_exit(as_json, extra=extra)
        _fail(exc.one_line(), exc.exit_code, type(exc).__name__, as_json, extra=extra)
    except (BrokenPipeError, StdoutClosed):
        _stdout_closed()
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if console.interrupted():  # a library turned Ctrl-C into another error: still an interrupt
            _interrupted_exit(as_json)
        from tinyface.fsutil import no_room

        full = no_room(exc) or _stdout_error(exc)
        if full is not None:  # a full disk where no writer named the file, stdout: the machine's state, not a bug
            if _StdoutFile.failed:  # what is still buffered for it would fail again at exit (exit 120)
                _stdout_to_devnull()
            _fail(full.one_line(), full.exit_code, "OutputError", as_json)
        if verbose:
            import traceback

            traceback.print_exc()
        first = _one_line(str(exc))[:300]
        _fail(f"{type(exc).__name__}: {first} (run it again as `tinyface -v COMMAND ...` for the traceback: "
              "-v goes before the command)", EXIT_INTERNAL, "InternalError",
              as_json, prefix="tinyface: internal error: ")
    finally:
        was_interrupted = console.interrupted()
        console.release_interrupts(previous_handlers)
        ending = sys.exc_info()[1]
        if argv is None and isinstance(ending, SystemExit) and not was_interrupted:  # the process exits now
            console.end_on_signals(ending.code if isinstance(ending.code, int) else 0 if ending.code is None else 1)


def _prepare_stdout() -> None:
    """Let stdout print what its encoding cannot, as stderr already does (``backslashreplace``):
    a photo or dataset file whose name is not UTF-8 (`data stats`, `identify`), or a name like
    Zoë on an ASCII stdout, was an internal error (exit 70) in the middle of the results. JSON
    is unaffected (it is ASCII); a stream that already escapes (a C locale's surrogateescape)
    is left as it is. The process's own stdout (file descriptor 1) is also rebuilt over
    :class:`_StdoutFile`, so that a full disk under ``> results.json`` names it."""
    try:
        errors = "backslashreplace" if sys.stdout.errors == "strict" else sys.stdout.errors
        buffer = sys.stdout.buffer
        unbuffered = type(buffer) is io.FileIO  # python -u, PYTHONUNBUFFERED
        if sys.stdout is sys.__stdout__ and type(buffer if unbuffered else buffer.raw) is io.FileIO \
                and sys.stdout.fileno() == 1:
            sys.stdout.flush()
            raw = _StdoutFile(1, "w", closefd=False)
            sys.stdout = io.TextIOWrapper(
                raw if unbuffered else io.BufferedWriter(raw), encoding=sys.stdout.encoding, errors=errors,
                line_buffering=sys.stdout.line_buffering, write_through=sys.stdout.write_through)
        elif errors != sys.stdout.errors:
            sys.stdout.reconfigure(errors=errors)
    except (AttributeError, ValueError, OSError):  # not a TextIOWrapper (a test's stream): nothing to do
        pass


class _StdoutFile(io.FileIO):
    """File descriptor 1, whose failed writes name it. An OSError of a write to stdout names no
    file, so a full disk under ``tinyface boards --json > out.json`` read "a file cannot be
    written"; it reads "cannot write the standard output (/home/me/out.json)" (exit 14)."""

    failed = False  # a write failed: main points the descriptor at /dev/null before it exits

    def write(self, data):
        try:
            return super().write(data)
        except OSError as exc:
            _StdoutFile.failed = exc.stdout = True
            if exc.filename is None:
                exc.filename = _stdout_name()
            raise


def _stdout_error(exc: BaseException):
    """``exc`` as one line (OutputError, exit 14) where it is a failed write to stdout
    (:class:`_StdoutFile`): an I/O error of the disk or device it goes to, not a bug. None otherwise."""
    if not getattr(exc, "stdout", False):
        return None
    from tinyface.errors import OutputError

    return OutputError(f"cannot write {exc.filename}: {exc.strerror or exc}")


def _stdout_name() -> str:
    """"the standard output", and the file it goes to where the system says (Linux's /proc)."""
    import os

    try:
        return f"the standard output ({os.readlink('/proc/self/fd/1')})"
    except OSError:
        return "the standard output"


def _fail(message: str, code: int, kind: str, as_json: bool, prefix: str = "tinyface: error: ",
          extra: dict | None = None) -> None:
    """Exit ``code`` after one line on stderr; with --json also ``{"error", "kind", "exit_code"}``
    (and ``extra``'s keys: ``result``, what the work left) on stdout, so a script reading
    stdout learns the failure too, unless the command's JSON result already went there (stdout
    holds one JSON document at most). A success's JSON never has the key ``error``."""
    click.echo(f"{prefix}{message}", err=True)
    if as_json and not console.json_printed():
        import json

        from tinyface.fsutil import _json_default

        failure = {"error": message, "kind": kind, "exit_code": code}
        failure.update({k: v for k, v in (extra or {}).items() if k not in failure})
        try:
            click.echo(json.dumps(failure, default=_json_default))
        except (BrokenPipeError, OSError, StdoutClosed):
            _stdout_to_devnull()  # the object stays buffered: it would fail again at exit
    sys.exit(code)


def _flush_stdout(as_json: bool) -> None:
    """Write out what is buffered for stdout now, where a failure ends in one line (a full disk:
    OutputError, exit 14), not at the interpreter's exit (its code 120 and a traceback)."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, StdoutClosed):
        _stdout_closed()
    except OSError as exc:
        from tinyface.fsutil import no_room

        _stdout_to_devnull()
        full = no_room(exc) or _stdout_error(exc)
        if full is None:  # stdout not rebuilt over _StdoutFile (a test's stream): still named
            from tinyface.errors import OutputError

            full = OutputError(f"cannot write the standard output: {exc.strerror or exc}")
        _fail(full.one_line(), full.exit_code, "OutputError", as_json)


def _interrupted_exit(as_json: bool = False, said: str | None = None, extra: dict | None = None) -> None:
    """Exit after Ctrl-C (130) or SIGTERM (143, the code a shell gives that signal), with ``said``
    (what the work cut short left) or the bare word; ``extra``: as :func:`_fail`'s."""
    code, kind = (EXIT_TERMINATED, "Terminated") if console.terminated() else (EXIT_INTERRUPTED, "Interrupted")
    if said:
        _fail(said, code, kind, as_json, extra=extra)
    _fail(console.interruption(), code, kind, as_json, prefix="tinyface: ", extra=extra)


def _stdout_closed() -> None:
    """The reader of our output has gone: that is how a pipe ends, not an error. Point stdout at
    /dev/null so the interpreter's final flush cannot fail again, and exit 0, silently."""
    _stdout_to_devnull()
    sys.exit(0)


def _stdout_to_devnull() -> None:
    """Point stdout's descriptor at /dev/null: what is still buffered for it is flushed there at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    main()
