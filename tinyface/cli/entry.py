"""The ``tinyface`` script's entry point (pyproject's [project.scripts]): nothing but the standard
library before :func:`tinyface.cli.main.main` is imported."""

import sys


def main() -> None:
    """Import and run :func:`tinyface.cli.main.main`. A Ctrl-C while it loads (click and rich: a
    tenth of a second, before it catches interrupts) ends as any other Ctrl-C does, in one line and
    exit code 130 (with --json also the error object), not in a traceback."""
    try:
        from tinyface.cli.main import main as run
    except KeyboardInterrupt:
        import json

        from tinyface.errors import EXIT_INTERRUPTED

        sys.stderr.write("tinyface: interrupted\n")
        if "--json" in sys.argv[1:]:
            sys.stdout.write(json.dumps({"error": "interrupted", "kind": "Interrupted",
                                         "exit_code": EXIT_INTERRUPTED}) + "\n")
        sys.exit(EXIT_INTERRUPTED)
    run()
