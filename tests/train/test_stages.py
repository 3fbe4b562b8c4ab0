"""The stage bookkeeping of `tinyface build` (pipeline.Stages): a stage whose record and
artifacts match is skipped, a changed fingerprint or a missing artifact redoes it, a stage
that dies leaves no record, and ``force`` redoes every stage."""

import json

import pytest

from tests.conftest import sigint_as_a_terminal_sends_it
from tinyface.train.pipeline import Stages


def _chain(out, force=False, fail_at=None):
    """Two stages, the second fingerprinted by the first, as run_build chains them; returns the
    Stages and the names of the stages actually made."""
    made, events = [], []
    stages = Stages(out, lambda event, info: events.append((event, info)), force=force)

    def maker(name, text):
        def make(st):
            if name == fail_at:
                raise RuntimeError("killed")
            made.append(name)
            (st.dir / "out.txt").parent.mkdir(parents=True, exist_ok=True)
            (st.dir / "out.txt").write_text(text)
            return text
        return make

    def load(st):
        return (st.dir / "out.txt").read_text()

    first = stages.run("first", "fp1", ["out.txt"], maker("first", "a"), load, epochs=3)
    stages.run("second", f"fp2-{first}", ["out.txt"], maker("second", first + "b"), load)
    return stages, made, events


def test_an_unchanged_stage_is_skipped_and_loads_its_value(tmp_path):
    _, made, events = _chain(tmp_path)
    assert made == ["first", "second"]
    assert events[0] == ("stage", {"name": "first", "epochs": 3})
    assert json.loads((tmp_path / "first" / "stage.json").read_text()) == {"stage": "first", "fingerprint": "fp1"}
    stages, made, events = _chain(tmp_path)
    assert made == [] and [(s.name, s.skipped) for s in stages.ran] == [("first", True), ("second", True)]
    assert ("done", {"name": "second", "skipped": True}) in events


def test_a_forced_rerun_redoes_every_stage(tmp_path):
    _chain(tmp_path)
    stages, made, _ = _chain(tmp_path, force=True)
    assert made == ["first", "second"]
    assert [(s.name, s.skipped) for s in stages.ran] == [("first", False), ("second", False)]
    for name in ("first", "second"):  # recorded again: the next plain run skips them
        assert (tmp_path / name / "stage.json").is_file()
    assert _chain(tmp_path)[1] == []


def test_a_missing_artifact_redoes_the_stage(tmp_path):
    _chain(tmp_path)
    (tmp_path / "second" / "out.txt").unlink()
    assert _chain(tmp_path)[1] == ["second"]


def test_a_stage_that_dies_leaves_no_record(tmp_path):
    _chain(tmp_path)
    with pytest.raises(RuntimeError):
        _chain(tmp_path, force=True, fail_at="second")
    assert not (tmp_path / "second" / "stage.json").exists()
    assert _chain(tmp_path)[1] == ["second"]


def test_a_step_without_a_record_runs_every_time(tmp_path):
    events = []
    stages = Stages(tmp_path, lambda event, info: events.append((event, info)))
    assert stages.always("data", lambda: 7, fp=lambda v: f"fp{v}", done=lambda v: {"stats": v}) == 7
    assert [(s.name, s.fingerprint, s.skipped) for s in stages.ran] == [("data", "fp7", False)]
    assert events == [("stage", {"name": "data"}), ("done", {"name": "data", "stats": 7})]


def test_a_ctrl_c_that_a_library_swallows_still_ends_the_stage_unrecorded(tmp_path):
    """TensorFlow's converter runs finalizers all the time, and Python drops a KeyboardInterrupt
    raised inside one (one of TensorFlow's even has a bare ``except: pass``): a real SIGINT lands in
    such a finalizer here. With the CLI's handler (console.catch_interrupts) the stage still ends
    with KeyboardInterrupt and leaves no record; without it the interrupt is lost."""
    import subprocess
    import sys

    script = f"""
import os, signal, sys, threading, time
from pathlib import Path
from tinyface import console
from tinyface.train.pipeline import Stages

class Finalizer:
    def __del__(self):
        try:
            time.sleep(2)  # the SIGINT arrives here
        except:  # noqa: E722  (as TensorFlow's ConcreteFunction.__del__)
            pass

def make(st):
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    Finalizer()  # dropped at once: __del__ runs, swallows the KeyboardInterrupt
    return 1

if sys.argv[1] == "catch":
    console.catch_interrupts()
try:
    Stages(Path({str(tmp_path)!r}) / sys.argv[1], lambda e, i: None).run("quantize", "fp", [], make)
    print("went on")
except KeyboardInterrupt:
    print("interrupted")
"""
    def run(mode):
        return subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=60,
                              preexec_fn=sigint_as_a_terminal_sends_it)

    caught = run("catch")
    assert caught.stdout.strip() == "interrupted", caught.stderr
    assert not (tmp_path / "catch" / "quantize" / "stage.json").exists()
    lost = run("default")  # the failure this guards against: Python's own handler loses it
    assert lost.stdout.strip() == "went on", lost.stderr


def test_an_interrupt_python_cannot_raise_is_not_printed_but_other_errors_are():
    """A KeyboardInterrupt inside a finalizer is "Exception ignored in ..." with a traceback:
    with the CLI's handler it is dropped (the flag carries it); any other error still shows."""
    import subprocess
    import sys

    script = (
        "from tinyface import console\n"
        "class Interrupted:\n"
        "    def __del__(self):\n"
        "        raise KeyboardInterrupt\n"
        "class Broken:\n"
        "    def __del__(self):\n"
        "        raise ValueError('a real bug')\n"
        "console.catch_interrupts()\n"
        "Interrupted()\n"
        "Broken()\n")
    err = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stderr
    assert "KeyboardInterrupt" not in err and "a real bug" in err, err
