"""The build's progress display: a ✓ line per finished stage, and no bar left behind."""

import io

from rich.console import Console

import tinyface.console
from tinyface.cli.build import BuildProgress


def test_each_finished_stage_leaves_its_line_and_no_bar(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(tinyface.console, "err_console",
                        lambda: Console(file=out, force_terminal=True, width=100, color_system=None))
    with BuildProgress(settings=None) as ui:
        ui.notify("stage", {"name": "distill", "epochs": 2})
        ui.notify("epoch", {"epoch": 1, "logs": {"loss": 0.5}})
        ui.notify("done", {"name": "distill"})
        ui.notify("stage", {"name": "report"})
        ui.notify("done", {"name": "report"})
    final = out.getvalue().rsplit("\r", 1)[-1]  # what the terminal shows once the live display stops
    assert "✓ distill:" in out.getvalue() and "✓ report:" in out.getvalue()
    assert "0/?" not in final and "━" not in final
