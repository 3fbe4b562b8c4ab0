"""Not a benchmark: how every script here ends, so that a user's mistake (no model at --model, no
dataset at --data, an unknown preset) is one line on stderr and a distinct exit code, as the
tinyface CLI ends it (tinyface.cli.main), never a traceback.

    if __name__ == "__main__":
        from _script import run_script  # benchmarks/, beside this script

        run_script(main)

The import stays under ``__main__``: tests load a benchmark by its file, without benchmarks/ on
``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from tinyface.errors import EXIT_INTERRUPTED, TinyfaceError


def run_script(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``. A tinyface.errors.TinyfaceError exits with its ``exit_code``
    (ConfigError 3, DataError 4, ModelError 6, ...) after ``<script>: error: <message>``;
    Ctrl-C exits 130 after one line. Anything else is a bug and keeps its traceback."""
    name = Path(sys.argv[0]).name
    try:
        main()
    except TinyfaceError as exc:
        print(f"{name}: error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
