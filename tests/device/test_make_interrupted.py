"""A firmware build cut short (Ctrl-C, or SIGTERM, which tinyface now turns into the same
interrupt) stops make and everything it started: with SIGTERM nothing reached make's compilers,
which ran on after tinyface had ended."""

import os
import shutil
import time

import pytest

from tinyface.device.native import make_program


def test_an_interrupted_build_stops_make_and_its_children(tmp_path):
    if not shutil.which("make"):
        pytest.skip("no make")
    project = tmp_path / "project"
    (project / "native").mkdir(parents=True)
    (project / "src").mkdir()
    pid_file = tmp_path / "child.pid"
    # a real make whose recipe starts a long-running child (as a compiler is) and says so
    (project / "native" / "Makefile").write_text(
        "all:\n"
        f"\tsleep 600 & echo $$! > {pid_file}; echo started; wait\n")

    def interrupt_on_start(line):
        if line == "started":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_program(project, "native", "make", [], "key", tmp_path / "cache", "prog", "test", jobs=1,
                     log=interrupt_on_start)
    child = int(pid_file.read_text())
    for _ in range(50):  # killed with its group; gone once reaped (it is make's child, not ours)
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{child}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("make's child still runs after the build was interrupted")
    assert not list((tmp_path / "cache").rglob(".prog.*.tmp"))
