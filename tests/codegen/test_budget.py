"""The budget check: over-budget models fail before anything is written, with the numbers."""

import subprocess
import sys

import pytest

from tinyface.boards import load_board
from tinyface.codegen import generate_project
from tinyface.codegen.arena import ArenaPlan
from tinyface.codegen.budget import check_budget, firmware_ram_bytes
from tinyface.errors import BudgetError
from tinyface.resources import boards_dir


def _board(tmp_path, name="esp32", **replace):
    text = (boards_dir() / f"{name}.toml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_board(str(path))


def test_arena_over_sram_fails_with_the_numbers_and_nothing_is_written(tiny_bundle, tmp_path):
    board = _board(tmp_path, **{"sram_arena_bytes = 131_072": "sram_arena_bytes = 4_096"})
    out = tmp_path / "project"
    with pytest.raises(BudgetError) as info:
        generate_project(tiny_bundle, board, out)
    line = info.value.one_line()
    assert "tensor arena" in line and "4,096" in line and "margin" in line and "esp32s3" in line
    assert not out.exists()


def test_model_over_flash_fails(tiny_bundle, tmp_path):
    board = _board(tmp_path, **{"firmware_flash_bytes = 524_288": "firmware_flash_bytes = 4_060_000"})
    with pytest.raises(BudgetError) as info:
        generate_project(tiny_bundle, board, tmp_path / "project")
    line = info.value.one_line()
    assert f"model {len(tiny_bundle.model_bytes):,} B" in line and "app partition" in line and "prune" in line


def test_psram_takes_an_arena_that_sram_cannot(tiny_bundle, tmp_path):
    board = _board(tmp_path, "esp32cam", **{"sram_arena_bytes = 131_072": "sram_arena_bytes = 4_096"})
    project = generate_project(tiny_bundle, board, tmp_path / "project")
    assert project.arena.in_psram and project.budget.arena_in_psram
    assert "#define TF_ARENA_IN_PSRAM 1" in (tmp_path / "project/src/model_settings.h").read_text()
    assert "CONFIG_SPIRAM=y" in (tmp_path / "project/sdkconfig.defaults").read_text()  # on only for such an arena


def test_an_esp32_arena_fits_only_the_4_mib_of_psram_it_maps(tmp_path):
    """An 8 MB WROVER-E's ESP32 maps the first 4 MiB of PSRAM into the heap (the rest only through
    himem's bank switching): an arena over 4 MiB is refused, with the PSRAM it had."""
    board = _board(tmp_path, "esp32cam", **{"psram_bytes = 4_194_304": "psram_bytes = 8_388_608"})
    assert (board.psram_bytes, board.psram_heap_bytes) == (8 << 20, 4 << 20)
    fits, _ = check_budget(board, 10_000, ArenaPlan(4 << 20, 0.0, 4 << 20), input_bytes=2304, embedding_dim=128)
    assert fits.arena_in_psram and fits.psram_heap_bytes == 4 << 20
    with pytest.raises(BudgetError) as info:
        check_budget(board, 10_000, ArenaPlan((4 << 20) + 16, 0.0, (4 << 20) + 16), input_bytes=2304,
                     embedding_dim=128)
    assert "nor 4,194,304 B of PSRAM heap" in info.value.one_line()
    s3 = _board(tmp_path, "esp32s3", **{"psram_bytes = 0": "psram_bytes = 8_388_608"})
    assert s3.psram_heap_bytes == 8 << 20  # the S3 maps all of it


def test_input_larger_than_a_frame_fails():
    board = load_board("esp32")
    with pytest.raises(BudgetError, match="does not fit one protocol frame"):
        check_budget(board, 10_000, ArenaPlan(1000, 0.15, 1152), input_bytes=128 * 128 * 3, embedding_dim=128)


def test_heap_counts_the_firmware_buffers(tmp_path):
    """An arena that fits one SRAM block still fails when it and tinyface's buffers overflow the heap."""
    board = _board(tmp_path, **{"sram_heap_bytes = 262_144": "sram_heap_bytes = 140_000"})
    fw = firmware_ram_bytes(128, board.usb_serial_jtag)
    fits = ArenaPlan(140_000 - fw, 0.0, 140_000 - fw)
    ok, _ = check_budget(board, 10_000, fits, input_bytes=2304, embedding_dim=128)
    assert ok.ram_used_bytes == 140_000 and ok.ram_free_bytes == 0
    over = ArenaPlan(140_000 - fw + 16, 0.0, 140_000 - fw + 16)
    with pytest.raises(BudgetError) as info:
        check_budget(board, 10_000, over, input_bytes=2304, embedding_dim=128)
    assert f"firmware buffers {fw:,} B" in info.value.one_line() and "140,000 B of heap" in info.value.one_line()


def test_cli_over_budget_is_one_line_exit_10(tiny_bundle, tmp_path):
    board = _board(tmp_path, **{"sram_arena_bytes = 131_072": "sram_arena_bytes = 4_096"})
    result = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", str(board.path),
                             "--model", str(tiny_bundle.model_path.parent), "--dry-run",
                             "--project-dir", str(tmp_path / "p")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 10, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: esp32: tensor arena")


@pytest.mark.parametrize("kernels, expected", [("esp-nn", 2_000_000), ("generated", 3_700_000)])
def test_the_mac_budget_is_the_boards_for_the_kernel_set(kernels, expected):
    budget, _ = check_budget(load_board("esp32c3"), 10_000, ArenaPlan(1000, 0.15, 1152), input_bytes=2304,
                             embedding_dim=128, macs=3_260_000, kernels=kernels)
    assert budget.mac_budget == expected and budget.kernels == kernels
    assert f"board budget {expected / 1e6:.1f} M with {kernels} kernels" in budget.summary()
    # a board without a figure of the generated kernels keeps ESP-NN's budget for them
    esp32, _ = check_budget(load_board("esp32"), 10_000, ArenaPlan(1000, 0.15, 1152), input_bytes=2304,
                            embedding_dim=128, kernels=kernels)
    assert esp32.mac_budget == 2_000_000 and esp32.mac_budget_kernels == "esp-nn"
    # and says so, instead of calling ESP-NN's budget the generated kernels' (it did)
    assert "board budget 2.0 M with esp-nn kernels" in esp32.summary()
    assert ("none measured for generated kernels" in esp32.summary()) == (kernels == "generated")


def test_a_generated_kernels_project_reports_the_generated_budget(tiny_bundle, tmp_path):
    project = generate_project(tiny_bundle, load_board("esp32c3"), tmp_path / "p", kernels="generated")
    assert project.budget.mac_budget == 3_700_000 and project.to_dict()["budget"]["kernels"] == "generated"
