"""The build's budget and latency estimate follow the kernel set (tinyface.train.stages_eval)."""

from tinyface import config
from tinyface.boards import load_board
from tinyface.boards.profile import profile_model
from tinyface.resources import models_dir
from tinyface.train import stages_eval


def test_the_preset_budget_is_the_boards_for_the_presets_kernel_set():
    c3 = config.load_preset("esp32c3")
    assert stages_eval._mac_budget(c3.board, c3.kernels) == 3_700_000
    esp32 = config.load_preset("esp32")
    assert stages_eval._mac_budget(esp32.board, esp32.kernels) == 2_000_000


def test_the_latency_estimate_prices_the_kernels_the_firmware_runs():
    settings = config.load(None, None, base=config.load_preset("esp32c3").settings())
    board, cost = stages_eval._board_cost_model(settings.firmware.board, settings.firmware.kernels)
    assert board == "esp32c3" and cost == load_board("esp32c3").cost_model_for("generated")
    model = (models_dir() / "esp32" / "model.tflite").read_bytes()
    generated_ms = profile_model(model, cost).total_est_ms
    esp_nn_ms = profile_model(model, stages_eval._board_cost_model("esp32c3", "esp-nn")[1]).total_est_ms
    assert generated_ms < esp_nn_ms / 2  # about 48 ms against 147 ms on the emulated C3's counts
