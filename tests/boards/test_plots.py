"""`tinyface profile --plot` (tinyface/boards/plots.py): the PNG of where a model's time goes, on a
released model, with the table and the JSON unchanged; measured beside estimated; the path check."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tinyface.boards import load_board
from tinyface.boards.plots import check_plot_path, profile_plot
from tinyface.boards.profile import profile_model
from tinyface.errors import OutputError
from tinyface.resources import models_dir

# matplotlib's C0, C1, C3: estimate, measurement, disagreement
BLUE, ORANGE, RED = (31, 119, 180), (255, 127, 14), (214, 39, 40)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "profile", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, stdin=subprocess.DEVNULL)


def _png(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.verify()  # a whole, valid PNG
    img = Image.open(path)
    assert img.format == "PNG"
    return img.convert("RGB")


def _pixels(img: Image.Image, rgb) -> int:
    return sum(1 for p in img.getdata() if all(abs(a - b) <= 8 for a, b in zip(p, rgb, strict=True)))


def test_profile_plot_of_a_released_model_leaves_the_json_and_the_table_unchanged(tmp_path):
    model = str(models_dir() / "esp32")
    layers = len(json.loads(_cli("--board", "esp32", "--model", model, "--json").stdout)["layers"])
    assert layers >= 20  # a real model: the plot must stay readable with this many rows
    for extra in (["--json"], []):
        plain = _cli("--board", "esp32", "--model", model, *extra)
        plot = tmp_path / "new" / "folder" / f"profile{len(extra)}.png"  # its folder is created
        drawn = _cli("--board", "esp32", "--model", model, *extra, "--plot", str(plot))
        assert plain.returncode == drawn.returncode == 0, drawn.stderr
        assert drawn.stdout == plain.stdout  # the table, or the JSON, as without --plot
        assert f"plot: {plot}" in " ".join(drawn.stderr.split())
        img = _png(plot)
        width, height = img.size
        assert 700 <= width <= 2000
        assert height >= 28 * layers  # room for one label per row: 7.5 pt labels are ~12 px tall
        assert _pixels(img, BLUE) > 20 * layers  # a bar per layer, in the estimate's colour
        assert _pixels(img, ORANGE) == 0  # nothing drawn as a measurement
        assert not list(plot.parent.glob(".*"))  # no temp file left beside it


def _measured(model_dir: Path, off: dict[int, float]):
    """A measured profile of ``model_dir`` on the ESP32-C3 whose layer i took (1 + off[i]) x its
    estimate's instructions (the shape profile_measured returns)."""
    from tinyface.device.isa_profile import MeasuredLayer, MeasuredModelProfile

    board = load_board("esp32c3")
    cost = board.cost_model_for("esp-nn")
    est = profile_model((model_dir / "model.tflite").read_bytes(), cost, board="esp32c3", model=str(model_dir))
    stall = cost.stall_factor or 1.0
    layers = [MeasuredLayer(x.index, x.op, x.output_shape, x.macs,
                            int(x.est_ms * board.cpu_mhz * 1e3 / stall * (1 + off.get(x.index, 0.0))), x.est_ms)
              for x in est.layers]
    return MeasuredModelProfile(model=str(model_dir), board="esp32c3", layers=layers,
                                total_instructions=sum(x.instructions for x in layers) + 5000,
                                total_est_ms=est.total_est_ms, cpu_mhz=board.cpu_mhz, stall_factor=stall,
                                cost_source=cost.source)


def test_measured_plot_draws_the_measurement_beside_the_estimate_and_marks_disagreement(tmp_path):
    agreeing = _png(profile_plot(_measured(models_dir() / "esp32c3", {}), tmp_path / "agree.png"))
    assert _pixels(agreeing, BLUE) > 0 and _pixels(agreeing, ORANGE) > 0
    assert _pixels(agreeing, RED) == 0  # every layer within 10%: nothing marked
    apart = _png(profile_plot(_measured(models_dir() / "esp32c3", {3: 0.5}), tmp_path / "apart.png"))
    assert _pixels(apart, RED) > 0  # layer 3's estimate is a third under its measurement: marked
    assert apart.size[1] > agreeing.size[1] * 0.9
    assert apart.size[1] >= 40 * len(_measured(models_dir() / "esp32c3", {}).layers)


@pytest.mark.isa
def test_profile_measured_plot_on_the_instruction_set_emulator(tmp_path):
    from tests.conftest import skip_or_fail
    from tinyface.device.isa import unavailable_reason

    reason = unavailable_reason()
    if reason:
        skip_or_fail(f"the rv32 build is impossible here: {reason}")
    plot = tmp_path / "c3.png"
    plain = _cli("--measured", "--json")
    drawn = _cli("--measured", "--json", "--plot", str(plot))
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert json.loads(drawn.stdout) == json.loads(plain.stdout)  # the counts are exact: the same JSON
    img = _png(plot)
    assert _pixels(img, BLUE) > 0 and _pixels(img, ORANGE) > 0


@pytest.mark.parametrize("name, needle", [
    ("folder", "it is a folder"),
    ("plot.jpg", "must end in .png"),
    ("plot", "must end in .png"),
    ("blocker/sub/plot.png", "is in the way"),
])
def test_check_plot_path_refuses_what_could_not_be_written_and_makes_nothing(tmp_path, name, needle):
    (tmp_path / "folder").mkdir()
    (tmp_path / "blocker").write_text("a file")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(OutputError, match=needle) as caught:
        check_plot_path(tmp_path / name)
    assert caught.value.exit_code == 14 and "--plot" in caught.value.one_line()
    assert sorted(tmp_path.rglob("*")) == before


def test_check_plot_path_tries_a_file_where_permissions_say_nothing(tmp_path):
    with pytest.raises(OutputError, match="no file can be made in /proc"):
        check_plot_path("/proc/tinyface-plot.png")  # permissions allow it (as root), the kernel does not
    assert check_plot_path(tmp_path / "not" / "yet" / "there.PNG") == tmp_path / "not" / "yet" / "there.PNG"
    assert not (tmp_path / "not").exists()  # checked, not created
