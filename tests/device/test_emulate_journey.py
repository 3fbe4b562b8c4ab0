"""`tinyface emulate` and the instruction-set paths it shares with `profile --measured`, as a user
meets them: what a stuck or slow program becomes."""

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tinyface.errors import DeviceError


@dataclass(frozen=True)
class _SlowProgram:
    """A program with IsaProgram's ``command`` (as benchmarks/xtensa_kernels.py passes its own):
    one that does not end in time, as a firmware hung under QEMU, or a model too large for the limit.
    Were it to run to its end (30 s), it would leave the file ``ended``."""

    ended: Path
    kernels: str = "esp_nn"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "import sys, time; time.sleep(30); open(sys.argv[1], 'w').close()",
                str(self.ended)]


def _processes_naming(token: str) -> list[int]:
    """The pids of this machine's processes with ``token`` in their command line."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and token in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:  # ended meanwhile
            continue
    return pids


def test_a_profile_run_past_its_time_is_one_device_error_not_a_traceback(tmp_path):
    """measure_profile let subprocess.TimeoutExpired through: `profile --measured` ended as an
    internal error (exit 70) instead of one line and exit 7. The program is killed, neither waited
    for (it never reached its end) nor left running."""
    from tinyface.device.isa import measure_profile

    ended = tmp_path / "the-slow-program-ended"
    with pytest.raises(DeviceError, match=r"did not end within 0\.5 s") as caught:
        measure_profile(_SlowProgram(ended), b"\0" * 16, timeout_s=0.5)
    assert caught.value.exit_code == 7
    assert not ended.exists(), "the program was waited for until it ended, not killed"
    left = _processes_naming(str(ended))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"the program is still running after the error (pids {left})"
