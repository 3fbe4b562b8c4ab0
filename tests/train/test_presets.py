"""Board presets: the student of each preset fits its board's MAC budget for the preset's
kernel set (firmware.kernels), counted on the real int8 graph (not on the Keras model)."""

import numpy as np
import pytest

from tinyface import config
from tinyface.model.graph import analyze
from tinyface.train.student import build_student, keras_macs

ESP_NN_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MEAN", "RESHAPE", "AVERAGE_POOL_2D",
              "MAX_POOL_2D", "QUANTIZE", "DEQUANTIZE", "SOFTMAX", "MUL"}


@pytest.mark.parametrize("name", config.preset_names())
def test_preset_student_fits_the_board_mac_budget_in_int8(name):
    from tinyface.boards import load_board
    from tinyface.train.quantize import convert_int8

    preset = config.load_preset(name)
    budget = load_board(preset.board).mac_budget_for(preset.kernels)  # the budget of the preset's kernel set
    s = config.load(None, None, base=preset.settings())
    size, channels = s.data.crop_size, s.data.channels
    model, _ = build_student(s.student.arch, (size, size, channels), s.student.embedding_dim, s.student.width,
                             repeats=s.student.repeats)
    rng = np.random.default_rng(0)
    calib = rng.integers(0, 256, (8, size, size, channels), dtype=np.uint8)
    flat = convert_int8(model, calib)
    graph = analyze(flat)
    assert graph.total_macs <= budget, f"{name}: {graph.total_macs:,} MACs > {budget:,}"
    assert graph.total_macs > 0.5 * budget, f"{name} leaves most of its budget unused"
    # the Keras estimate and the int8 graph agree within 5% (both count the same convolutions)
    assert abs(keras_macs(model) - graph.total_macs) <= 0.05 * graph.total_macs
    assert set(graph.op_names) <= ESP_NN_OPS, f"ops outside the TFLM/ESP-NN set: {set(graph.op_names) - ESP_NN_OPS}"


def test_unknown_architecture_is_a_config_error():
    from tinyface.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown student architecture"):
        build_student("resnet9000", (48, 48, 1))


def test_the_esp32c3_preset_uses_the_generated_kernels_budget():
    from tinyface.boards import load_board

    preset = config.load_preset("esp32c3")
    assert preset.board == "esp32c3" and preset.kernels == "generated"
    assert load_board(preset.board).mac_budget_for(preset.kernels) == 3_700_000
    assert config.load_preset("esp32").kernels == "esp-nn"
