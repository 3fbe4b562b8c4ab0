"""tinyface.evaluation.report: validation.md and validation.json (what a `--hide-test` build shows)
give TFLM-against-TFLite parity on the validation images and pairs, and no figure of the test's; the
report and the model card name the dataset actually used (tinyface.train.pipeline.describe_dataset),
flag a `--quick` model as a smoke test wherever its accuracy is printed, and give both gallery sizes."""

import json

import pytest

from tests.conftest import copy_people
from tinyface.train.pipeline import _accuracy_fields, describe_dataset

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


# --- the report and the model card of a build: the data used, a smoke test, both gallery sizes ----------

def _metrics_of(dataset, smoke):
    """Synthetic metrics of a build on ``dataset`` (describe_dataset's) with every field the report
    reads (the renderer is under test)."""
    ver = {"accuracy": 0.9, "auc": 0.95, "tar_at_far": {"0.01": 0.5}, "threshold": 0.5, "n_pairs": 100,
           "accuracy_at_protocol_threshold": 0.89, "protocol_threshold": 0.45}
    ident = {"accuracy": 0.8, "macro_f1": 0.7, "stranger_false_accept_rate": 0.1, "threshold": 0.6, "n_people": 4,
             "n_probes": 20, "n_strangers": 10, "closed_set_accuracy": 0.85, "threshold_from": "validation people",
             "at_verification_threshold": {"stranger_false_accept_rate": 0.3}}
    stage = {"verification": ver, "identification": ident, "model_bytes": 1000, "model_bytes_gzip": 800, "macs": 10,
             "arena_bytes": 2000, "params": 100, "board": "esp32", "estimated_ms_on_board": 5.0,
             "cost_model_source": "test", "latency_ms_host": 1.0, "validation": {"accuracy": 0.9},
             "sparsity_overall": 0.5}
    from tinyface.evaluation.report import BuildMetrics

    return BuildMetrics.from_dict({
        "stages": {name: json.loads(json.dumps(stage)) for name in
                   ("teacher", "float", "pruned", "tflite_float", "tflite_int8", "tflm_int8")},
        "parity": {"max_lsb_diff": 1, "mean_lsb_diff": 0.01, "outputs_identical_share": 0.9, "n_images": 10,
                   "identical_decisions_test_pairs": 1.0},
        "data": {"train_images": 10, "train_people": 5, "val_images": 4, "val_people": 2, "test_pairs": 100,
                 "identify_people": 4, "identify_probes": 20, "identify_strangers": 10},
        "threshold_from": "pairs of validation people", "threshold_source": "validation", "ops": ["CONV_2D"],
        "preset": "esp32", "mac_budget": 2_000_000,
        "dataset": dataset, "smoke_test": smoke})


@pytest.mark.parametrize("smoke", [False, True])
def test_report_and_model_card_name_the_data_used_and_flag_a_smoke_test(lfw_dir, tmp_path, smoke, tiny_bundle):
    from tinyface import config
    from tinyface.evaluation.report import write_model_card, write_report
    from tinyface.config import load_preset as get_preset

    own = copy_people(lfw_dir, tmp_path / "office", {"George_W_Bush": 2, "Colin_Powell": 2}, flat=True)
    metrics = _metrics_of(describe_dataset(own), smoke)
    preset = get_preset("esp32")
    settings = config.apply(config.Settings(), preset.settings(), "the preset")
    out = tmp_path / "run"
    out.mkdir()
    report = write_report(out, metrics, settings, preset).read_text()
    card = write_model_card(out, metrics, settings, preset, tiny_bundle.meta).read_text()
    for text in (report, card):
        assert "pairsDevTest" not in text and "pairs of held-out people of office" in text
        assert ("SMOKE TEST" in text) == smoke
    fields = _accuracy_fields(metrics)
    assert fields["test_data"] == "pairs of held-out people of office" and fields["smoke_test"] is smoke
    assert "lfw_pairs_dev_test_accuracy" not in fields
    lfw = _accuracy_fields(_metrics_of(describe_dataset(lfw_dir), smoke))
    assert lfw["lfw_pairs_dev_test_accuracy"] == lfw["test_accuracy"] == 0.9


def test_report_and_model_card_name_both_gallery_sizes(lfw_dir, tmp_path, tiny_bundle):
    from tinyface import config
    from tinyface.evaluation.report import write_model_card, write_report

    metrics = _metrics_of(describe_dataset(lfw_dir), False)
    for st in metrics.stages.values():
        st.identification["device_gallery"] = {"gallery": 3, "draws": 100, "accuracy": 0.8125,
                                               "stranger_false_accept_rate": 0.0375}
        st.validation.update({"auc": 0.9, "tar_at_far_1e-3": 0.4, "identification": {
            "probe_accuracy": 0.7125, "stranger_rate": 0.05, "enrolled": 7, "gallery": 5, "draws": 100, "probes": 30,
            "strangers": 40, "probe_accuracy_all": 0.6875, "stranger_rate_all": 0.075}})
    preset = config.load_preset("esp32")
    settings = config.apply(config.Settings(), preset.settings(), "the preset")
    out = tmp_path / "run"
    out.mkdir()
    report = write_report(out, metrics, settings, preset).read_text()
    card = write_model_card(out, metrics, settings, preset, tiny_bundle.meta).read_text()
    # the stage table: the full test gallery (4 people) and the device-size galleries (3 people)
    assert "ident. acc. (4 people)" in report and "stranger FAR (3 people)" in report
    assert "| 80.00% | 0.700 | 10.00% | 81.25% | 3.75% |" in report
    # the validation table: galleries of 5 (what the threshold is chosen for) and all 7
    assert "strangers accepted (5 people)" in report and "strangers accepted (7 people)" in report
    assert "| 71.25% | 5.00% | 68.75% | 7.50% |" in report
    assert "random galleries of 3 of the 4 enrolled people (100 draws)" in report
    assert "about 5% of strangers are accepted by a gallery of 5 people (fewer when fewer are enrolled)" in card
    assert "strangers accepted, random galleries of 3 of the 4 enrolled people (100 draws) | 3.75% |" in card
