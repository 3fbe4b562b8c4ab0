"""The build's progress display: a ✓ line per finished stage, and no bar left behind."""

import io
import re

import pytest
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


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_plain_progress_prints_count_and_eta_every_few_seconds():
    from tinyface.console import PlainProgress

    clock, lines = FakeClock(), []
    p = PlainProgress("faces", 1000, every_s=10, write=lines.append, clock=clock)
    for _ in range(100):  # 100 images in 5 s: too soon for a line
        clock.now += 0.05
        p.advance()
    assert lines == []
    for _ in range(150):  # 150 more in 7.5 s: one line at 10 s
        clock.now += 0.05
        p.advance()
    assert len(lines) == 1
    assert lines[0] == "faces: 200/1,000 (20%), 10 s elapsed, eta 40 s"
    clock.now = 125.0
    p.update(1000)
    p.finish()
    assert lines[-1] == "faces: 1,000/1,000 (100%), 2 min 05 s elapsed" and len(lines) == 2


def test_the_eta_leaves_out_the_time_before_the_first_unit():
    # a QAT epoch whose first batch waits 55 s for the model to be traced, then a batch (1% of the
    # epoch) every 0.1 s: at 60 s, 49% is left at 10% a second. The estimate from the start said 58 s.
    from tinyface.console import PlainProgress

    clock, lines = FakeClock(), []
    p = PlainProgress("QAT epochs", 1, every_s=10, write=lines.append, clock=clock)
    for t in (10, 20, 30, 40, 50):  # nothing done yet: the lines the heartbeat prints
        clock.now = t
        p.update(0)
    clock.now = 55.0
    p.update(0.01)
    while clock.now < 60.0:
        clock.now = round(clock.now + 0.1, 1)
        p.update(round(p.completed + 0.01, 2))
    assert lines[-1] == "QAT epochs: 0.51/1 (51%), 1 min 00 s elapsed, eta 5 s"


def _plain_mode(monkeypatch, dumb: bool = False):
    """stderr is not a terminal (or, with ``dumb``, a terminal of TERM=dumb, where rich draws no live
    display until the work ends), PlainProgress runs on a fake clock with no heartbeat thread:
    (the console's output, the clock, what was written to stderr)."""
    import tinyface.console as console_module

    out = io.StringIO()
    monkeypatch.setattr(console_module, "err_console",
                        lambda: Console(file=out, force_terminal=dumb, width=80, color_system=None, soft_wrap=True,
                                        _environ={"TERM": "dumb"} if dumb else None))
    clock = FakeClock()
    monkeypatch.setattr(console_module.PlainProgress, "start_heartbeat", lambda self: self)
    real_init = console_module.PlainProgress.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs, clock=clock)
    monkeypatch.setattr(console_module.PlainProgress, "__init__", init)
    written = io.StringIO()
    monkeypatch.setattr("sys.stderr", written)
    return out, clock, written


@pytest.mark.parametrize("dumb", [False, True], ids=["file", "TERM=dumb"])
def test_build_progress_is_plain_lines_when_stderr_is_not_a_terminal(monkeypatch, dumb):
    # on a TERM=dumb terminal, the bar showed nothing until the stage ended
    out, clock, written = _plain_mode(monkeypatch, dumb)
    with BuildProgress(settings=None) as ui:
        ui.notify("stage", {"name": "distill", "epochs": 8})
        for epoch in range(1, 9):
            clock.now += 60
            ui.notify("epoch", {"epoch": epoch, "logs": {"loss": 1 / epoch}})
        ui.notify("done", {"name": "distill"})
    lines = written.getvalue().splitlines()
    assert "\r" not in written.getvalue() and "━" not in written.getvalue()
    assert lines[0] == "  distill epochs: 1/8 (12%), 1 min 00 s elapsed, eta 7 min 00 s  loss=1.0000"
    assert len(lines) == 8 and lines[-1].startswith("  distill epochs: 8/8 (100%), 8 min 00 s elapsed")
    assert "distill: started" in out.getvalue() and "✓ distill:" in out.getvalue()


def test_a_stage_that_took_up_earlier_training_says_that_trainings_time_too(monkeypatch):
    """Its ✓ line gives this run's seconds and the earlier runs' (pipeline.Stages' "done" event), as
    the report's stage tables do; a stage that took nothing up says only its own."""
    out, clock, written = _plain_mode(monkeypatch)
    with BuildProgress(settings=None) as ui:
        for name, earlier in (("distill", {"earlier_seconds": 690.04}), ("prune", {})):
            ui.notify("stage", {"name": name, "epochs": 2})
            ui.notify("done", {"name": name, "skipped": False, **earlier})
    lines = out.getvalue().splitlines()
    distill = next(line for line in lines if "✓ distill:" in line)
    assert re.fullmatch(r"  ✓ distill: \d+\.\d s \(\+ 690\.0 s in earlier runs, taken up\)", distill), distill
    assert re.fullmatch(r"  ✓ prune: \d+\.\d s", next(line for line in lines if "✓ prune:" in line))
    term = io.StringIO()
    monkeypatch.setattr(tinyface.console, "err_console",
                        lambda: Console(file=term, force_terminal=True, width=120, color_system=None))
    with BuildProgress(settings=None) as ui:
        ui.notify("stage", {"name": "distill", "epochs": 2})
        ui.notify("done", {"name": "distill", "skipped": False, "earlier_seconds": 12.0})
    assert "s (+ 12.0 s in earlier runs, taken up)" in term.getvalue()


def test_a_long_epoch_shows_its_share_done_and_an_eta_before_it_ends(monkeypatch):
    out, clock, written = _plain_mode(monkeypatch)
    with BuildProgress(settings=None) as ui:
        ui.notify("stage", {"name": "distill", "epochs": 6})
        for step in range(1, 101):  # the first epoch, 100 batches in 5 minutes
            clock.now += 3
            ui.notify("epoch_progress", {"epoch": step / 100})
        ui.notify("epoch", {"epoch": 1, "logs": {"loss": 0.5}})
    lines = written.getvalue().splitlines()
    assert lines[0] == "  distill epochs: 0.04/6 (1%), 12 s elapsed, eta 29 min 48 s"
    assert len(lines) == 25  # a line every 12 s over 5 minutes (10 s apart at least, on 3 s steps)
    assert "  distill epochs: 0.80/6 (13%), 4 min 00 s elapsed, eta 26 min 00 s" in lines


def test_the_heartbeat_prints_while_nothing_advances():
    import time

    from tinyface.console import PlainProgress

    lines = []
    p = PlainProgress("distill epochs", 8, every_s=0.2, write=lines.append).start_heartbeat()
    time.sleep(0.9)  # a long first epoch: no event at all
    p.finish()
    assert len(lines) >= 2 and all(line.startswith("distill epochs: 0/8 (0%)") for line in lines)


def test_each_pass_of_the_data_stage_gets_its_own_count_total_and_eta(monkeypatch):
    out, clock, written = _plain_mode(monkeypatch)
    with BuildProgress(settings=None) as ui:
        ui.notify("stage", {"name": "data"})
        ui.notify("step", {"name": "training faces", "total": 400})
        for _ in range(4):
            clock.now += 10
            ui.notify("advance", {"n": 50})
        ui.notify("step", {"name": "teacher mixes", "total": 1000})
        clock.now += 20
        ui.notify("advance", {"n": 250})
        ui.notify("done", {"name": "data"})
    lines = written.getvalue().splitlines()
    assert lines[0] == "  data: training faces: 50/400 (12%), 10 s elapsed, eta 1 min 10 s"
    assert "  data: training faces: 200/400 (50%), 40 s elapsed, eta 40 s" in lines
    assert "  data: teacher mixes: 250/1,000 (25%), 20 s elapsed, eta 1 min 00 s" in lines


def test_the_rich_bar_takes_each_pass_name_and_total(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(tinyface.console, "err_console",
                        lambda: Console(file=out, force_terminal=True, width=120, color_system=None))
    with BuildProgress(settings=None) as ui:
        ui.notify("stage", {"name": "data"})
        ui.notify("step", {"name": "teacher views", "total": 300})
        ui.notify("advance", {"n": 120})
        task = ui._progress.tasks[0]
        assert task.total == 300 and task.completed == 120 and "teacher views" in task.description
        ui.notify("done", {"name": "data"})


def test_a_step_with_nothing_to_count_is_said_when_it_starts_and_shows_no_count(monkeypatch):
    # was: nothing until 20 s, then "quantize: 0, 20 s elapsed" (a count of nothing, no word of what ran)
    out, clock, written = _plain_mode(monkeypatch)
    with BuildProgress(settings=None) as ui:
        ui.notify("stage", {"name": "quantize"})
        ui.notify("step", {"name": "converting to int8 (QAT)", "total": None})
        assert "  quantize: converting to int8 (QAT)" in out.getvalue().splitlines()  # before it runs
        clock.now += 25
        ui.notify("done", {"name": "quantize"})
    assert written.getvalue().splitlines() == ["  quantize: converting to int8 (QAT), 25 s elapsed"]


def test_status_says_it_is_done_and_when_where_stderr_is_not_a_terminal(monkeypatch):
    from tinyface.console import status

    out, clock, written = _plain_mode(monkeypatch)
    with status("building the native firmware for esp32 (first time: a few minutes)"):
        clock.now += 12
    assert written.getvalue().splitlines() == ["building the native firmware for esp32 (first time: a few minutes): "
                                               "done, 12 s elapsed"]


def test_status_says_when_it_ended_after_its_heartbeat_lines_and_not_when_it_failed(monkeypatch):
    # its last line was the heartbeat's "..., 20 s elapsed": work that read as still running
    from tinyface.console import PlainProgress, status

    out, clock, written = _plain_mode(monkeypatch)
    made = []
    monkeypatch.setattr(PlainProgress, "start_heartbeat", lambda self: made.append(self) or self)
    with status("scoring pairs and identification"):
        clock.now += 10
        made[0]._line()  # what the heartbeat thread prints at 10 s and 20 s
        clock.now += 10
        made[0]._line()
        clock.now += 5
    assert written.getvalue().splitlines() == ["scoring pairs and identification, 10 s elapsed",
                                               "scoring pairs and identification, 20 s elapsed",
                                               "scoring pairs and identification: done, 25 s elapsed"]
    written.truncate(0)
    written.seek(0)
    with pytest.raises(KeyError), status("checking the outputs"):
        clock.now += 12
        raise KeyError("x")
    assert written.getvalue().splitlines() == ["checking the outputs, 12 s elapsed"]  # no "done"
    written.truncate(0)
    written.seek(0)
    with status("quick"):
        clock.now += 3
    assert written.getvalue() == ""  # too short to show


@pytest.mark.parametrize("dumb", [False, True], ids=["file", "TERM=dumb"])
def test_a_step_is_a_bar_for_counted_work_and_a_status_for_the_rest(monkeypatch, dumb):
    from tinyface.console import no_step, step

    out, clock, written = _plain_mode(monkeypatch, dumb)
    with step("embeddings (tflm)", 200) as advance:
        clock.now += 10
        advance(50)
    with step("scoring", None) as advance:
        advance(1)  # nothing to count: accepted, not shown
        clock.now += 11
    with no_step("silent", 10) as advance:
        clock.now += 30
        advance(10)
    assert written.getvalue().splitlines() == ["embeddings (tflm): 50/200 (25%), 10 s elapsed, eta 30 s",
                                               "scoring: done, 11 s elapsed"]


def test_a_progress_bar_takes_its_total_once_known(monkeypatch):
    # evaluate starts its bar before listing the folder: it used to show a count with no share or eta
    from tinyface.console import progress_bar

    out, clock, written = _plain_mode(monkeypatch)
    with progress_bar("faces", None) as advance:
        advance.set_total(400)
        clock.now += 10
        advance(100)
    assert written.getvalue().splitlines()[0] == "faces: 100/400 (25%), 10 s elapsed, eta 30 s"


def test_the_eta_follows_the_recent_rate_when_work_slows_down():
    """Images that come slower at the end: the estimate uses the last minute, not the mean since
    the start (which would say 28 s here)."""
    from tinyface.console import PlainProgress

    clock, lines = FakeClock(), []
    p = PlainProgress("images", 1000, every_s=10, write=lines.append, clock=clock)
    for _ in range(50):  # 500 images in 50 s
        clock.now += 1
        p.advance(10)
    for _ in range(60):  # then 300 in 60 s: half the speed
        clock.now += 1
        p.advance(5)
    assert lines[-1] == "images: 800/1,000 (80%), 1 min 50 s elapsed, eta 40 s"
    assert lines[0] == "images: 100/1,000 (10%), 10 s elapsed, eta 1 min 30 s"  # short runs: the mean


def test_progress_goes_on_while_native_code_is_muted():
    """A model conversion runs inside muted_stderr (its C++ notes go to /dev/null): the heartbeat's
    lines, written from Python, still reach stderr, and what C code writes to fd 2 does not."""
    import subprocess
    import sys

    script = (
        "import os, sys, time\n"
        "from tinyface.console import PlainProgress, muted_stderr\n"
        "p = PlainProgress('converting', None, every_s=0.2).start_heartbeat()\n"
        "with muted_stderr():\n"
        "    os.write(2, b'native note\\n')\n"
        "    time.sleep(3)\n"
        "p.finish()\n"
        "os.write(2, b'native after\\n')\n")
    err = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stderr
    assert "native note" not in err and "native after" in err
    assert err.count("converting, ") >= 2  # heartbeat lines during the muted block (about 15 in 3 s)


@pytest.mark.parametrize("name", ["Al [/]", "Ann [x]", "[bold]Bo"])
def test_a_step_shows_a_name_with_brackets_as_it_is_on_a_terminal(monkeypatch, name):
    # rich read "enrolling Al [/]" as markup: a MarkupError (exit 70) after the board had checked the
    # photos, and "Ann [x]" shown as "Ann"; names may hold brackets (spec.check_name)
    import tinyface.console as console_module

    out = io.StringIO()
    monkeypatch.setattr(console_module, "err_console",
                        lambda: Console(file=out, force_terminal=True, width=100, color_system=None))
    with console_module.step(f"enrolling {name}", 2) as advance:
        advance(2)
    with console_module.step(f"verifying {name}", None):
        pass
    assert f"enrolling {name}" in out.getvalue()


def _terminal_build(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(tinyface.console, "err_console",
                        lambda: Console(file=out, force_terminal=True, width=120, color_system=None))
    ui = BuildProgress(settings=None)
    ui.clock = FakeClock()
    return ui, out


def _eta(ui) -> str:
    from tinyface.console import eta_column

    return str(eta_column().render(ui._progress.tasks[-1]))


def test_a_terminal_build_bar_shows_the_time_left_as_a_log_line_does(monkeypatch):
    # was: on a terminal, a 25-minute distillation showed its epochs and the time so far, never
    # the time left, which the plain lines of a log gave
    ui, _ = _terminal_build(monkeypatch)
    with ui:
        ui.notify("stage", {"name": "distill", "epochs": 8})
        assert _eta(ui) == ""  # nothing done: nothing to estimate
        for epoch in (1, 2):
            ui.clock.now += 60
            ui.notify("epoch", {"epoch": epoch, "logs": {"loss": 1 / epoch}})
        assert _eta(ui) == "eta 6 min 00 s"
        ui.notify("step", {"name": "teacher views", "total": 1000})  # a pass of its own: its own pace
        for _ in range(25):
            ui.clock.now += 2
            ui.notify("advance", {"n": 10})
        assert _eta(ui) == "eta 2 min 30 s"
        ui.notify("done", {"name": "distill"})


def test_a_build_that_takes_up_its_distillation_is_estimated_from_there(monkeypatch):
    """Epochs an earlier run did come as the first count: the pace is measured from them on."""
    ui, out = _terminal_build(monkeypatch)
    with ui:
        ui.notify("stage", {"name": "distill", "epochs": 8})
        ui.notify("note", {"text": "taking up after epoch 6 of 8, which an earlier run saved"})
        ui.clock.now += 5
        ui.notify("epoch_progress", {"epoch": 6.01})
        while ui._done < 6.99:
            ui.clock.now += 1
            ui.notify("epoch_progress", {"epoch": round(ui._done + 0.01, 2)})
        assert _eta(ui) == "eta 1 min 41 s"  # 1.01 epochs left at 0.01 a second, not 6.99 in 104 s
        ui.notify("done", {"name": "distill"})
    assert "distill: taking up after epoch 6 of 8, which an earlier run saved" in out.getvalue()


def test_a_stage_its_settings_turn_off_says_so_in_its_place(monkeypatch):
    """prune.enabled = false: the pipeline's "done" event with ``off`` (was: no line at all, so a
    build without pruning went from distill to quantize without a word)."""
    out, _, _ = _plain_mode(monkeypatch)
    with BuildProgress(settings=None) as ui:
        ui.notify("stage", {"name": "prune"})
        ui.notify("done", {"name": "prune", "off": "prune.enabled = false: the distilled model is quantized"})
    assert "  ✓ prune: off (prune.enabled = false: the distilled model is quantized)" in out.getvalue().splitlines()
