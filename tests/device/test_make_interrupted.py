"""A firmware build cut short stops make and everything it started: a real SIGTERM, sent to this
process while make's recipe runs, is turned by tinyface's handler (console.catch_interrupts, as the
CLI installs it) into the same KeyboardInterrupt as Ctrl-C. Before, with SIGTERM nothing reached
make's compilers, which ran on after tinyface had ended."""

import os
import shutil
import signal
import sys
import time

import pytest

from tests.conftest import skip_or_fail
from tinyface import console
from tinyface.device.native import make_program


def _gone(pid: int) -> bool:
    """The process no longer runs: it does not exist, or is a zombie (exited, not yet reaped; it
    is make's child, not ours). It may vanish between any two looks."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # the state, after "(comm)"
    except (ProcessLookupError, FileNotFoundError):
        return True


def test_a_sigterm_during_a_build_stops_make_and_its_children(tmp_path):
    if not shutil.which("make"):
        skip_or_fail("no make")
    project = tmp_path / "project"
    (project / "native").mkdir(parents=True)
    (project / "src").mkdir()
    pid_file = tmp_path / "child.pid"
    # a real make whose recipe starts a long-running child (as a compiler is) and says so
    (project / "native" / "Makefile").write_text(
        "all:\n"
        f"\tsleep 600 & echo $$! > {pid_file}; echo started; wait\n")

    def terminate_on_start(line):
        if line == "started":
            handler = signal.getsignal(signal.SIGTERM)
            assert getattr(handler, "tinyface", False), f"tinyface's SIGTERM handler is not installed: {handler}"
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` does; the handler raises here

    # the handlers this test installs are put back: after an interrupt release_interrupts keeps them
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    saved_hook = sys.unraisablehook
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not ignored (catch_interrupts keeps an ignored one)
    caught = console.catch_interrupts()
    try:
        with pytest.raises(KeyboardInterrupt):
            make_program(project, "native", "make", [], "key", tmp_path / "cache", "prog", "test", jobs=1,
                         log=terminate_on_start)
        assert console.terminated() and console.interruption() == "terminated"
    finally:
        console.release_interrupts(caught)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        sys.unraisablehook = saved_hook
    child = int(pid_file.read_text())
    for _ in range(50):  # killed with make's process group
        if _gone(child):
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("make's child still runs after the build was interrupted")
    assert not list((tmp_path / "cache").rglob(".prog.*.tmp"))
