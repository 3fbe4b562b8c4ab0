"""One `tinyface emulate --native` at a time on a gallery folder ($TINYFACE_NVS_DIR). Each firmware
keeps its gallery in memory and saves all of it on every ENROLL or DELETE: two on one folder both
reported a person enrolled in slot 1, and after a restart the first one saved was gone (the last
save won). The second is refused before it builds or serves anything: one line naming the folder
and the pid of the one that holds it, exit 14 (OutputError)."""

import json
import os
import select
import signal
import subprocess

import pytest

from tests.conftest import skip_or_fail
from tests.device.conftest import STARTUP_TIMEOUT_S, cli_cmd, firmware_unavailable, prebuild
from tinyface.errors import OutputError

pytestmark = pytest.mark.native


def test_a_second_native_emulator_on_one_gallery_folder_is_refused(tiny_bundle, tmp_path):
    reason = firmware_unavailable("native")
    if reason:
        skip_or_fail(f"the native firmware build is impossible here: {reason}")
    model_dir = tiny_bundle.model_path.parent
    prebuild("native", model_dir)  # cached: neither run below builds
    storage = tmp_path / "nvs"
    env = {**os.environ, "TINYFACE_NVS_DIR": str(storage)}
    first = subprocess.Popen(cli_cmd("emulate", "--native", "--model", str(model_dir)),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        ready, _, _ = select.select([first.stdout], [], [], STARTUP_TIMEOUT_S)
        port = first.stdout.readline().decode().strip() if ready else ""
        assert port.startswith("/dev/"), f"the first emulator did not start (stdout {port!r})"
        for extra in ([], ["--json"]):
            second = _second(cli_cmd("emulate", "--native", "--model", str(model_dir), *extra), env)
            assert second.returncode == OutputError.exit_code == 14, second.stderr
            line = (f"the gallery folder ($TINYFACE_NVS_DIR) {storage} is in use by another tinyface emulate "
                    f"(pid {first.pid})")
            if extra:  # the failure object, and no port announced
                failure = json.loads(second.stdout)
                assert failure["kind"] == "OutputError" and failure["exit_code"] == 14
                assert failure["error"].startswith(line)  # and the hint
            else:
                assert second.stdout == ""  # no port: nothing served
                assert line in second.stderr.splitlines()[0]
            assert "native firmware" not in second.stderr  # neither built nor started
        assert first.poll() is None  # the first one serves on
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the firmware with it
        first.wait(timeout=10)
        first.stdout.close()


def _second(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """The second emulator, run to its end; one still running after 30 s serves (the old code): it fails."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"a second emulator served the gallery folder the first holds (stdout {out!r})")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)
