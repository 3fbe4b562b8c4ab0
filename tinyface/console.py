"""Terminal output: one rich console on stderr for progress and messages, plain stdout for
results (so ``--json`` output can be piped)."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Iterator

_verbosity = 0


def set_verbosity(level: int) -> None:
    global _verbosity
    _verbosity = level


def verbosity() -> int:
    return _verbosity


def _console_class():
    from rich.console import Console

    class TinyfaceConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich exits 1 on its own; let the CLI's one handler (cli/main.py) end it quietly with 0
            self.quiet = True
            raise BrokenPipeError()

    return TinyfaceConsole


def err_console():
    """The console for messages and progress on stderr. When stderr is not a terminal (a CI log,
    a file), lines are never hard-wrapped at rich's default 80 columns."""
    return _console_class()(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


def out_console(**kwargs):
    """A rich console on stdout (tables); a closed pipe (`| head`) ends the command quietly."""
    return _console_class()(**kwargs)


def info(message: str) -> None:
    err_console().print(message)


def debug(message: str) -> None:
    if _verbosity > 0:
        err_console().print(f"[dim]{message}[/dim]")


def print_json(obj) -> None:
    from tinyface.fsutil import _json_default

    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True) -> Iterator:
    """Yield ``advance(n=1)``; draws a rich progress bar on stderr when it is a terminal."""
    if not enabled or total == 0:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=err_console(), transient=False, disable=not sys.stderr.isatty()) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


def quiet_tensorflow(import_now: bool = False) -> None:
    """Silence TensorFlow's C++ start-up chatter (oneDNN notes, a CUDA probe that 'fails' on
    every machine without a GPU) unless -v was given. Call before TensorFlow is imported;
    with ``import_now`` it is imported here with stderr muted, since absl writes some lines
    before any log level applies."""
    import os
    import sys

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if _verbosity > 0 else "3")
    if not import_now or _verbosity > 0 or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
