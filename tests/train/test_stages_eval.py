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


def test_the_gallery_size_is_read_only_by_the_evaluation():
    from types import SimpleNamespace

    from tinyface.protocol import spec
    from tinyface.train import pipeline

    from tinyface.evaluation import metrics

    # 0, the default: the device's capacity (one definition, in the protocol; config may not import it)
    assert config.Settings().data.identify_gallery == 0 and metrics.gallery_for(0) == spec.GALLERY_CAPACITY == 16
    assert metrics.gallery_for(4) == 4
    assert "identify_gallery" in pipeline.EVALUATE_ONLY
    data = SimpleNamespace(stats={"train_images": 10})
    base = config.load(None)
    fp = pipeline._data_fingerprint(base, False, data)
    assert pipeline._data_fingerprint(config.load(None, {"data": {"identify_gallery": 4}}), False, data) == fp
    assert pipeline._data_fingerprint(config.load(None, {"data": {"crop_size": 64}}), False, data) != fp


def test_every_stage_records_identification_at_the_gallery_size():
    from types import SimpleNamespace

    import numpy as np

    from tinyface.evaluation import metrics

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 16))

    def people(n_people, n_strangers):
        emb, labels = [], []
        for k in range(n_people):
            emb += [centres[k] + 0.5 * rng.normal(size=16) for _ in range(8)]
            labels += [f"p{k}"] * 8
        emb += list(rng.normal(size=(n_strangers, 16)))
        labels += [f"s{k}" for k in range(n_strangers)]
        return np.array(emb), labels

    emb_val, val_labels = people(12, 80)
    emb, labels = people(10, 40)
    split = metrics.enrollment_split(labels, 5, seed=0)
    a, b, same = metrics.sample_pairs(labels, 20, seed=0)
    pairs = SimpleNamespace(a=a, b=b, same=same)
    data = SimpleNamespace(threshold_pairs=pairs, test_pairs=pairs, val=SimpleNamespace(labels=val_labels),
                           enroll=split.enroll, probes=split.probes, strangers=split.strangers)
    d = config.load(None, {"data": {"identify_gallery": 4}}).data
    result = stages_eval._score_stage(emb, emb_val, metrics.sample_pairs(val_labels, 20, seed=1), data, d)
    ident, val = result["identification"], result["validation"]["identification"]
    chosen = metrics.open_set_threshold(emb_val, val_labels, 5, d.identify_stranger_rate, 0, gallery=4)
    assert ident["threshold"] == chosen["threshold"] and (val["gallery"], val["enrolled"]) == (4, 12)
    assert ident["device_gallery"] == metrics.identification_at_gallery(
        emb, split.enroll, split.probes, split.strangers, chosen["threshold"], 4, 0)
    assert ident["device_gallery"]["gallery"] == 4 and ident["n_people"] == 10  # the full gallery's figures stay
    assert "random galleries of 4 of 12" in ident["threshold_from"]


def test_the_progress_line_shows_validation_accuracy_never_the_tests():
    result = {"verification": {"accuracy": 0.943}, "validation": {"accuracy": 0.948}}
    event = stages_eval.metric_event("tflite_float", result)
    assert event == {"stage": "tflite_float on validation pairs", "accuracy": 0.948}
