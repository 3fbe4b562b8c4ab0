"""`tinyface profile` as a user meets it: what it prints when its output goes nowhere, and the same
keys in --json with --measured as without (the ISA parts are in tests/device/test_isa.py)."""

import os
import sys

import pytest

from tinyface.boards import load_board
from tinyface.boards.profile import profile_model
from tinyface.resources import models_dir


def _measured_profile():
    """A measured profile of the released esp32c3 model, as profile_measured shapes it (the
    instructions are the estimate's, so no emulator is needed to print it)."""
    from tinyface.device.isa_profile import MeasuredLayer, MeasuredModelProfile

    board = load_board("esp32c3")
    cost = board.cost_model_for("esp-nn")
    est = profile_model((models_dir() / "esp32c3" / "model.tflite").read_bytes(), cost, board="esp32c3")
    layers = [MeasuredLayer(x.index, x.op, x.output_shape, x.macs, int(x.est_ms * board.cpu_mhz * 1e3), x.est_ms)
              for x in est.layers]
    return MeasuredModelProfile(model="m", board="esp32c3", layers=layers,
                                total_instructions=sum(x.instructions for x in layers) + 5000,
                                total_est_ms=est.total_est_ms, cpu_mhz=board.cpu_mhz, stall_factor=1.09,
                                cost_source=cost.source)


def test_a_closed_stdout_ends_the_measured_table_as_a_closed_pipe(monkeypatch):
    """`tinyface profile --measured | head -1` exited 1 (rich's own broken-pipe exit), where the
    table without --measured (and every command) ends quietly with 0: the CLI's handler needs the
    BrokenPipeError, not rich's SystemExit(1)."""
    from tinyface.cli.profile import _print_measured

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (head) has gone
    closed = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        with pytest.raises(BrokenPipeError):
            _print_measured(_measured_profile())
    finally:
        monkeypatch.undo()
        try:
            closed.close()
        except OSError:
            pass
