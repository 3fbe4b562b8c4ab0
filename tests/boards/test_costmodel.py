"""The cost model's fit to measured instruction counts (tinyface.boards.costmodel.fit_instructions)."""

import numpy as np
import pytest

from tinyface.boards.costmodel import CostModel, fit_instructions


def test_the_fit_recovers_the_coefficients_of_exact_counts():
    rng = np.random.default_rng(0)
    layers = []
    for _ in range(12):
        macs, outputs = int(rng.integers(10_000, 2_000_000)), int(rng.integers(500, 50_000))
        layers.append(("CONV_2D_1x1", macs, outputs, round(3.5 * macs + 40.0 * outputs)))
        layers.append(("DEPTHWISE_CONV_2D", macs // 10, outputs, round(2.25 * (macs // 10) + 12.0 * outputs)))
        layers.append(("ADD", 0, outputs, 9 * outputs))
    per_mac, per_output = fit_instructions(layers)
    assert per_mac == pytest.approx({"CONV_2D_1x1": 3.5, "DEPTHWISE_CONV_2D": 2.25}, rel=1e-4)
    assert per_output == pytest.approx({"CONV_2D_1x1": 40.0, "DEPTHWISE_CONV_2D": 12.0, "ADD": 9.0}, rel=1e-3)
    assert "ADD" not in per_mac  # no MACs: per output value only
    # the board file's model built from the fit prices a layer as the counts did, x the stall factor
    model = CostModel.from_instructions(160, per_mac, per_output, stall_factor=1.5)
    assert model.estimate_ms("CONV_2D_1x1", 1_000_000, 0, 10_000) == pytest.approx(
        (3.5e6 + 40.0 * 10_000) * 1.5 / 160e3, rel=1e-4)


def test_the_fit_never_gives_a_negative_coefficient():
    # counts = 9 x MACs - 2 x outputs: a free least-squares fit gives -2 per output value
    layers = [("FULLY_CONNECTED", 1000 * k, 1000 - 100 * k, 9 * 1000 * k - 2 * (1000 - 100 * k)) for k in range(1, 8)]
    free = np.linalg.lstsq(np.array([[m, o] for _, m, o, _ in layers], float),
                           np.array([y for *_, y in layers], float), rcond=None)[0]
    assert free[1] == pytest.approx(-2.0)
    per_mac, per_output = fit_instructions(layers)
    assert per_output["FULLY_CONNECTED"] == 0.0 and per_mac["FULLY_CONNECTED"] > 0
