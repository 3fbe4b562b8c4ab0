"""`profile --plot` and `bench --plot`: a name not ending in .png is a usage error (exit 2) while the
command line is parsed; a path that could not take the PNG is one line, exit 14 (as a bad --out); both
before anything else runs. bench draws the latencies it streamed from the emulator, and still draws
them when the link is lost; no command loads matplotlib unless asked to plot."""

import json
import os
import signal
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import (
    assert_one_error_line,
    imported_modules,
    run_cli,
    sigint_as_a_terminal_sends_it,
    wait_for_images_done,
)

BAD_NAMES = ["latency.jpg", "latency", "latency.png.txt"]  # the suffix is known wrong before any work


def _unwritable_plots(tmp_path) -> list[tuple[str, str]]:
    """Well-named plots that cannot be written, each with what its error line says."""
    (tmp_path / "blocker").write_text("a file in the way")
    (tmp_path / "a-folder.png").mkdir()
    return [(str(tmp_path / "a-folder.png"), "it is a folder"),
            (str(tmp_path / "blocker" / "sub" / "latency.png"), "is in the way"),
            ("/proc/tinyface/latency.png", "no file can be made in /proc")]


def _usage_error_line(proc, name: str) -> str:
    line = assert_one_error_line(proc, 2, "'--plot'", "must end in .png")
    assert name in line
    return line


def test_profile_refuses_a_plot_not_named_png_as_a_usage_error(tmp_path):
    missing_model = str(tmp_path / "no-model")  # were the model looked for first, this would be exit 6
    for name in BAD_NAMES:
        for measured in ([], ["--measured"]):  # --measured: before minutes of building, not after
            proc = run_cli("profile", *measured, "--model", missing_model, "--plot", str(tmp_path / name), "--json")
            line = _usage_error_line(proc, name)
            assert "(see `tinyface profile --help`)" in line
            assert json.loads(proc.stdout) == {"error": line.removeprefix("tinyface: error: "), "kind": "UsageError",
                                               "exit_code": 2}
    assert list(tmp_path.iterdir()) == []  # nothing made


@pytest.mark.parametrize("name, example", [(".png", "plot.png"), ("latency.png.txt", "latency.png")])
def test_a_refused_plot_name_suggests_one_that_ends_in_one_png(tmp_path, name, example):
    """Was: `--plot .png` suggested "e.g. .png.png" (and latency.png.txt "latency.png.png")."""
    for command in (["profile", "--board", "esp32"], ["bench", "--port", str(tmp_path / "no-such-port")]):
        line = _usage_error_line(run_cli(*command, "--plot", str(tmp_path / name)), name)
        assert f"(e.g. {example})" in line and ".png.png" not in line


def test_profile_refuses_an_unwritable_plot_before_anything_else(tmp_path):
    """Exit 14, not 6: refused before the (missing) model is looked for, so before the --measured
    build; and no build or cache folder made, in the working folder or where the caches point."""
    missing_model = str(tmp_path / "no-model")
    caches = tmp_path / "caches"
    env = {"TINYFACE_CACHE": str(caches / "faces"), "TINYFACE_NATIVE_CACHE": str(caches / "native"),
           "TINYFACE_ISA_CACHE": str(caches / "isa"), "PLATFORMIO_CORE_DIR": str(caches / "platformio")}
    for plot, needle in _unwritable_plots(tmp_path):
        for measured in ([], ["--measured"]):
            proc = run_cli("profile", *measured, "--model", missing_model, "--plot", plot, "--json", cwd=tmp_path,
                           env=env)
            line = assert_one_error_line(proc, 14, "--plot", needle)
            assert json.loads(proc.stdout) == {"error": line.removeprefix("tinyface: error: "), "kind": "OutputError",
                                               "exit_code": 14}
            assert not caches.exists() and not (tmp_path / "build").exists(), measured  # nothing was built
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder.png", "blocker"]  # nothing made


def test_bench_refuses_a_bad_plot_before_the_model_is_loaded_or_the_port_opened(tmp_path, tiny_bundle):
    port = str(tmp_path / "no-such-port")  # opened first, this would be exit 7
    for name in BAD_NAMES:  # no model at all: loaded first, this would be exit 6
        _usage_error_line(run_cli("bench", "--port", port, "--model", str(tmp_path / "no-model"),
                                  "--plot", str(tmp_path / name)), name)
    model = str(tiny_bundle.model_path.parent)
    for plot, needle in _unwritable_plots(tmp_path):
        assert_one_error_line(run_cli("bench", "--port", port, "--model", model, "--plot", plot), 14, "--plot", needle)


def test_only_a_plot_loads_matplotlib(tmp_path):
    proc, modules = imported_modules("profile", "--board", "esp32", "--json", cwd=tmp_path)
    assert proc.returncode == 0 and "matplotlib" not in modules, proc.stderr[-2000:]
    proc, modules = imported_modules("profile", "--board", "esp32", "--json", "--plot", str(tmp_path / "p.png"),
                                     cwd=tmp_path)
    assert proc.returncode == 0 and "matplotlib" in modules and (tmp_path / "p.png").is_file()


# --- bench --plot against `tinyface emulate` ---------------------------------------------------

def _emulator(model_dir, *args):
    """`tinyface emulate --model MODEL_DIR ARGS` in its own process group; (process, port)."""
    proc = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", "emulate", "--model", str(model_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    port = proc.stdout.readline().strip()
    if not port.startswith("/dev/"):
        _stop(proc)
        pytest.fail(f"emulate printed no port: {proc.stderr.read()[-2000:]}")
    return proc, port


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        stream.close()


def _latency_png(path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def _bench(port, model_dir, lfw_dir, *args):
    return [sys.executable, "-m", "tinyface.cli.main", "bench", "--port", port, "--model", str(model_dir),
            "--data", str(lfw_dir), "--no-host-check", *args]


def test_bench_plot_against_the_emulator(tmp_path, tiny_bundle, lfw_dir):
    model = tiny_bundle.model_path.parent
    proc, port = _emulator(model)
    try:
        plot = tmp_path / "plots" / "latency.png"
        as_json = subprocess.run(_bench(port, model, lfw_dir, "--images", "8", "--json", "--plot", str(plot)),
                                 capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert as_json.returncode == 0, as_json.stderr[-3000:]
        printed = json.loads(as_json.stdout)
        assert "plot" not in printed and printed["summary"]["estimated_timings"]  # the JSON is bench's own
        width, height = _latency_png(plot)
        assert 600 <= width <= 1600 and 350 <= height <= 1000
        text_plot = tmp_path / "text.png"  # the same device, a second session: the text names the plot
        text = subprocess.run(_bench(port, model, lfw_dir, "--images", "4", "--plot", str(text_plot)),
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert text.returncode == 0, text.stderr[-3000:]
        assert text.stdout.splitlines()[-1].split() == ["plot", str(text_plot)]
        _latency_png(text_plot)
    finally:
        _stop(proc)


def test_bench_plot_is_drawn_from_what_was_measured_when_the_link_is_lost(tmp_path, tiny_bundle, lfw_dir):
    model = tiny_bundle.model_path.parent
    proc, port = _emulator(model, "--baud", "115200")  # about 0.2 s an image: the kill lands mid-run
    out, plot = tmp_path / "partial.json", tmp_path / "partial.png"
    bench = subprocess.Popen(_bench(port, model, lfw_dir, "--images", "80", "--out", str(out), "--plot", str(plot)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=sigint_as_a_terminal_sends_it)
    try:
        wait_for_images_done(bench, out)
        _stop(proc)  # the board dies mid-run
        _, stderr = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
        _stop(proc)
    assert bench.returncode == 7, stderr  # DeviceError
    lines = [line for line in stderr.splitlines() if line.startswith("tinyface:")]
    assert len(lines) == 1 and "Traceback" not in stderr
    assert "/80 images" in lines[0] and str(out) in lines[0] and f"latency plot of those in {plot}" in lines[0]
    assert not json.loads(out.read_text())["complete"]
    _latency_png(plot)
