"""tinyface.evaluation.report: validation.md and validation.json (what a `--hide-test` build shows)
give TFLM-against-TFLite parity on the validation images and pairs, and no figure of the test's."""

import json

import pytest

pytestmark = pytest.mark.usefixtures("own_folder")


TEST_PARITY = {"max_lsb_diff": 7, "mean_lsb_diff": 0.7777, "outputs_identical_share": 0.1234,
               "identical_decisions_test_pairs": 0.9876, "n_images": 4321}
VALIDATION_PARITY = {"max_lsb_diff": 1, "mean_lsb_diff": 0.0111, "outputs_identical_share": 0.5555,
                     "identical_decisions_validation_pairs": 0.999, "n_images": 222}


def _metrics(validation_parity=VALIDATION_PARITY):
    """Synthetic build metrics: the test's parity and the validation's told apart by their values."""
    from tinyface.evaluation.report import BuildMetrics

    ver = {"accuracy": 0.6161, "auc": 0.95, "tar_at_far": {"0.01": 0.5}, "threshold": 0.5, "n_pairs": 100}
    ident = {"accuracy": 0.8, "macro_f1": 0.7, "stranger_false_accept_rate": 0.1, "threshold": 0.6, "n_people": 4}
    stage = {"verification": ver, "identification": ident, "model_bytes": 1000, "macs": 10, "arena_bytes": 2000,
             "params": 100, "board": "esp32", "estimated_ms_on_board": 5.0, "latency_ms_host": 1.0,
             "validation": {"accuracy": 0.9, "auc": 0.96}}
    parity = {**TEST_PARITY, **({"validation": validation_parity} if validation_parity else {})}
    return BuildMetrics.from_dict({
        "stages": {name: json.loads(json.dumps(stage)) for name in
                   ("teacher", "float", "pruned", "tflite_float", "tflite_int8", "tflm_int8")},
        "parity": parity, "data": {"train_images": 10, "train_people": 5, "val_images": 4, "val_people": 2},
        "threshold_from": "pairs of validation people", "threshold_source": "validation", "preset": "esp32",
        "mac_budget": 2_000_000, "smoke_test": True})


def _test_parity_shown(text: str) -> list[str]:
    """The test parity's figures that ``text`` shows, as a number or a percentage."""
    forms = [str(v) for v in TEST_PARITY.values() if isinstance(v, float)] + ["4321", "4,321"] + \
            [f"{100 * v:.2f}%" for v in TEST_PARITY.values() if isinstance(v, float)]
    return [form for form in forms if form in text]


def test_validation_report_gives_the_validation_parity_and_no_test_parity(tmp_path):
    from tinyface.config import load_preset
    from tinyface.evaluation.report import write_validation_report

    md = write_validation_report(tmp_path, _metrics(), load_preset("esp32")).read_text()
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert saved["parity"] == VALIDATION_PARITY  # was: no parity at all
    assert "on the 222 validation images: largest output difference 1 LSB" in md and "99.90%" in md
    assert _test_parity_shown(md) == [] and _test_parity_shown(json.dumps(saved)) == []
