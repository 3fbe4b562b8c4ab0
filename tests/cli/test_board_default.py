"""`bench`, `emulate`, `profile` and the gallery commands take their default board from the
settings' ``firmware.board``, as `flash` does (issue 14: `flash` then suggests a `bench`
command that talks about the same board and model)."""

import json
import subprocess
import sys

from tests.conftest import assert_one_error_line, run_cli

S3_SETTINGS = '[firmware]\nboard = "esp32s3"\n'


def test_profile_defaults_to_firmware_board(tmp_path):
    (tmp_path / "tinyface.toml").write_text(S3_SETTINGS)
    proc = run_cli("profile", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["board"] == "esp32s3"
    assert "models/esp32s3" in result["model"].replace("\\", "/")


def test_profile_board_option_and_set_win_over_the_file(tmp_path):
    (tmp_path / "tinyface.toml").write_text(S3_SETTINGS)
    assert json.loads(run_cli("profile", "--json", "--board", "esp32", cwd=tmp_path).stdout)["board"] == "esp32"
    proc = run_cli("profile", "--json", "--set", "firmware.board=esp32c3", cwd=tmp_path)
    assert json.loads(proc.stdout)["board"] == "esp32c3"


def test_bench_and_identify_look_for_the_firmware_board(tmp_path):
    # --port auto resolves the board before any port is opened; there is no board on this
    # host, so the one error line names the board that was looked for.
    (tmp_path / "tinyface.toml").write_text(S3_SETTINGS)
    assert_one_error_line(run_cli("bench", "--port", "auto", cwd=tmp_path), 7, "no esp32s3 board connected")
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"")
    assert_one_error_line(run_cli("identify", "--port", "auto", str(photo), cwd=tmp_path), 7,
                          "no esp32s3 board connected")


def _emulate_stderr(cwd) -> str:
    """Start `tinyface emulate --once` in ``cwd``, wait for its port, stop it: its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", "emulate", "--once"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        port = proc.stdout.readline().strip()
        assert port, proc.stderr.read() if proc.poll() is not None else "no port printed"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    return err


def test_emulate_defaults_to_firmware_board(tmp_path):
    (tmp_path / "tinyface.toml").write_text(S3_SETTINGS)
    err = _emulate_stderr(tmp_path)
    assert "emulated esp32s3:" in err, err


def test_emulate_estimates_with_the_cost_model_of_firmware_kernels(tmp_path):
    """The Python emulation's latency estimate prices the kernel set of firmware.kernels."""
    from tinyface.boards import load_board

    (tmp_path / "tinyface.toml").write_text('[firmware]\nboard = "esp32c3"\nkernels = "generated"\n')
    err = _emulate_stderr(tmp_path)
    assert load_board("esp32c3").cost_model_for("generated").source[:60] in " ".join(err.split()), err


def test_a_model_brings_the_kernel_set_it_was_built_for(tmp_path):
    """models/esp32c3 was sized for the generated kernels (model.json "kernels"): profile prices
    them by default; --kernels and --set still win, and a model without the key gets ESP-NN's."""
    def profiled(*args):
        proc = run_cli("profile", "--json", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    own = profiled("--board", "esp32c3")
    assert "models/esp32c3" in own["model"].replace("\\", "/") and own["kernels"] == "generated"
    assert profiled("--board", "esp32c3", "--kernels", "esp-nn")["kernels"] == "esp-nn"
    assert profiled("--board", "esp32c3", "--set", 'firmware.kernels="esp-nn"')["kernels"] == "esp-nn"
    esp32 = profiled("--board", "esp32c3", "--model", json.loads(run_cli("profile", "--json", "--board", "esp32",
                                                                         cwd=tmp_path).stdout)["model"])
    assert esp32["kernels"] == "esp-nn"
    # the generated kernels' estimate is about a third of ESP-NN's for the same model
    assert own["total_est_ms"] < 0.5 * profiled("--board", "esp32c3", "--kernels", "esp-nn")["total_est_ms"]


def test_a_model_json_with_an_unknown_kernel_set_is_refused_in_one_line(tmp_path):
    import shutil

    from tinyface.resources import models_dir

    bundle = tmp_path / "m"
    shutil.copytree(models_dir() / "esp32c3", bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["kernels"] = "fast"
    (bundle / "model.json").write_text(json.dumps(meta))
    assert_one_error_line(run_cli("profile", "--board", "esp32c3", "--model", str(bundle), cwd=tmp_path), 6,
                          "'kernels' must be one of esp-nn, generated")
