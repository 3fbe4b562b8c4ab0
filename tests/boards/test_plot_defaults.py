"""What every plot shares (tinyface/boards/plots.py: pyplot, save_png, the --plot name rule, the model's
name in titles): the same opaque PNG whatever a user's matplotlibrc or $MPLBACKEND says, and titles that
name the model rather than its absolute path. The bench plot's own checks are in tests/device/test_bench.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, run_cli
from tinyface.resources import models_dir

# a matplotlibrc that leaked into the PNGs (was: 86% of bench's PNG transparent with the first line alone)
LEAKY_RC = """savefig.transparent: True
savefig.facecolor: none
figure.facecolor: none
axes.facecolor: 0.1
font.size: 24
savefig.bbox: standard
"""


def _leaky_env(tmp_path, backend: str | None = None) -> dict:
    config = tmp_path / "mplconfig"
    config.mkdir(exist_ok=True)
    (config / "matplotlibrc").write_text(LEAKY_RC)
    return {"MPLCONFIGDIR": str(config), **({"MPLBACKEND": backend} if backend else {})}


def _alpha(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGBA"))[..., 3]


def test_a_users_matplotlibrc_and_mplbackend_change_nothing_in_a_plot(tmp_path):
    """profile --plot under a matplotlibrc that makes figures transparent, dark and large-lettered, and
    with a $MPLBACKEND matplotlib does not know (was: exit 70, an internal error): the same bytes as
    without them, every pixel opaque."""
    model = str(models_dir() / "esp32")
    plain, leaky = tmp_path / "plain.png", tmp_path / "leaky.png"
    clean = {"MPLCONFIGDIR": str(tmp_path / "empty-config")}  # no rc of the machine's either
    for plot, env in ((plain, clean), (leaky, _leaky_env(tmp_path, backend="nonsense"))):
        proc = run_cli("profile", "--board", "esp32", "--model", model, "--plot", str(plot), env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert _alpha(leaky).min() == 255
    assert leaky.read_bytes() == plain.read_bytes()


def test_the_bench_plot_is_opaque_under_a_leaky_matplotlibrc(tmp_path):
    from tinyface.device.bench import BenchResult

    # the emulator's: one ESTIMATED figure (95.85 ms at 240 MHz), and the host wall time that varies
    records = [{"index": i, "t_s": 0.01 * i, "cycles": 23_004_089, "latency_us": 95_850, "host_wall_us": wall_us,
                "output_hex": ""} for i, wall_us in enumerate([2600, 2500, 2900, 2400, 2500, 2700])]
    result = BenchResult(complete=True, port="/dev/pts/3", board="esp32", model="models/esp32/model.tflite",
                         model_sha256="9a" * 32, model_name="tinyface-esp32", smoke_test=False,
                         device={"board": "esp32", "cpu_hz": 240_000_000, "flags": 1}, images_requested=6,
                         images_done=6, records=records)
    results = tmp_path / "results.json"
    results.write_text(json.dumps(result.to_dict()))
    plot = tmp_path / "latency.png"
    draw = ("import sys; from tinyface.device.bench import latency_plot, load_result; "
            "latency_plot(load_result(sys.argv[1]), sys.argv[2])")
    env = {**os.environ, **_leaky_env(tmp_path, backend="nonsense")}
    proc = subprocess.run([sys.executable, "-c", draw, str(results), str(plot)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _alpha(plot).min() == 255


@pytest.mark.parametrize("name, example", [
    (".png", "plot.png"),  # was: "e.g. .png.png"
    (".PNG", "plot.png"),
    ("latency.png.txt", "latency.png"),  # was: "latency.png.png"
    ("latency.jpg", "latency.png"),
    ("latency", "latency.png"),
])
def test_the_plot_names_example_ends_in_one_png(name, example):
    from tinyface.boards.plots import plot_name_problem

    assert plot_name_problem(name).endswith(f"(e.g. {example})")
    assert plot_name_problem(example) is None


def test_a_profile_plot_names_the_model_not_its_absolute_path(monkeypatch, tmp_path):
    """`profile --board esp32` finds the released model itself, and the plot's title was its
    absolute path (/work/main/models/esp32/model.tflite): it names the model (model.json's name),
    and the caption gives the path from the working folder."""
    from tinyface.boards import load_board
    from tinyface.boards.plots import profile_figure
    from tinyface.boards.profile import profile_model

    tflite = models_dir() / "esp32" / "model.tflite"
    board = load_board("esp32")
    result = profile_model(tflite.read_bytes(), board.cost_model_for("esp-nn"), board="esp32",
                           model=str(tflite.resolve()))
    monkeypatch.chdir(REPO)
    fig = profile_figure(result)
    title = fig.axes[0].get_title(loc="left")
    words = " ".join([title, *(t.get_text() for t in fig.texts)])
    assert title.startswith("tinyface-esp32 on esp32 with esp-nn kernels") and str(tflite.resolve()) not in words
    assert f"model {tflite.resolve().relative_to(REPO)}" in words


def test_a_models_title_is_its_name_else_its_folders_else_its_file_name(tmp_path):
    from tinyface.boards.plots import model_title

    released = models_dir() / "esp32"
    assert model_title(released) == model_title(released / "model.tflite") == "tinyface-esp32"
    assert model_title(released / "model.tflite", name="given") == "given"
    lone = tmp_path / "run7"
    lone.mkdir()
    (lone / "model.tflite").write_bytes(b"")
    (tmp_path / "student.tflite").write_bytes(b"")
    assert model_title(lone / "model.tflite") == "run7"  # a bundle folder without its model.json
    assert model_title(tmp_path / "student.tflite") == "student.tflite"  # a lone .tflite


def test_short_path_is_relative_to_the_working_folder_where_it_can_be(monkeypatch, tmp_path):
    from tinyface.boards.plots import short_path

    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    assert short_path(tmp_path / "models" / "m.tflite") == "models/m.tflite"
    assert short_path("models/m.tflite") == "models/m.tflite"
    assert short_path("/proc/tinyface/m.tflite") == "/proc/tinyface/m.tflite"
