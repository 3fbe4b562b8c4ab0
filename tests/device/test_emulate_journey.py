"""`tinyface emulate` and the instruction-set paths it shares with `profile --measured`, as a user
meets them: what a stuck or slow program becomes."""

import time
from dataclasses import dataclass

import pytest

from tinyface.errors import DeviceError


@dataclass(frozen=True)
class _SlowProgram:
    """A program with IsaProgram's ``command`` (as benchmarks/xtensa_kernels.py passes its own):
    one that does not end in time, as a firmware hung under QEMU, or a model too large for the limit."""

    kernels: str = "esp_nn"

    def command(self, *args: str) -> list[str]:
        return ["sleep", "30"]


def test_a_profile_run_past_its_time_is_one_device_error_not_a_traceback():
    """measure_profile let subprocess.TimeoutExpired through: `profile --measured` ended as an
    internal error (exit 70) instead of one line and exit 7."""
    from tinyface.device.isa import measure_profile

    start = time.monotonic()
    with pytest.raises(DeviceError, match=r"did not end within 0\.5 s") as caught:
        measure_profile(_SlowProgram(), b"\0" * 16, timeout_s=0.5)
    assert caught.value.exit_code == 7
    assert time.monotonic() - start < 10  # the program was killed, not waited for
