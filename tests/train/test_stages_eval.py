"""tinyface.train.stages_eval: the build's budget and latency estimate follow the kernel set; the
evaluation's TFLM-vs-TFLite parity is also measured on the validation images and pairs."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

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

    from tinyface.evaluation import metrics
    from tinyface.protocol import spec
    from tinyface.train import pipeline

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


# --- TFLM-vs-TFLite parity on the validation images and pairs -------------------------------------------
# What `build --hide-test` shows (tests/cli/test_build.py): the parity of the validation images,
# decided on the validation pairs, not the evaluation's (test) images.

@pytest.mark.usefixtures("own_folder")
def test_evaluate_all_measures_the_parity_on_the_validation_images_and_pairs(tmp_path, monkeypatch):
    """The real evaluation, on a tiny float and int8 model and random faces: the validation parity
    is TFLM against TFLite on the validation rows, decided on the validation pairs."""
    import tf_keras as keras

    from tinyface import config
    from tinyface.config import load_preset
    from tinyface.train import stages_eval
    from tinyface.train.build_data import Faces, PairSet
    from tinyface.train.quantize import convert_float, convert_int8

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(16)(x))
    quant = tmp_path / "quantize"
    quant.mkdir()
    (quant / "float.tflite").write_bytes(convert_float(model))
    (quant / "int8.tflite").write_bytes(convert_int8(model, rng.integers(0, 256, (16, 48, 48, 1), dtype=np.uint8)))

    def faces(people: int, each: int, prefix: str) -> Faces:
        labels = [f"{prefix}{p}" for p in range(people) for _ in range(each)]
        teacher = rng.normal(size=(len(labels), 128)).astype(np.float32)
        return Faces(rng.integers(0, 256, (len(labels), 48, 48, 1), dtype=np.uint8),
                     teacher / np.linalg.norm(teacher, axis=1, keepdims=True), labels,
                     [Path(f"{label}_{i}.jpg") for i, label in enumerate(labels)])

    test = faces(6, 4, "test")  # 24 evaluation images
    pairs = PairSet(np.arange(0, 24, 2), np.arange(1, 24, 2), np.array([i % 2 == 0 for i in range(12)]))
    data = SimpleNamespace(eval=test, val=faces(8, 5, "val"), threshold_pairs=pairs, test_pairs=pairs,
                           enroll={"test0": [0, 1], "test1": [4, 5], "test2": [8, 9]},
                           probes=[(2, "test0"), (6, "test1"), (10, "test2")], strangers=[12, 16, 20],
                           stats={"threshold_from": "pairs of validation people"})
    monkeypatch.setattr(stages_eval, "_teacher_latency_ms", lambda data: 1.0)  # reads the photos
    settings = config.load(overrides={"data": {"enroll_images": 2}})
    result = stages_eval.evaluate_all(data, model, None, quant, settings, load_preset("esp32"))
    parity = result.parity
    assert parity.n_images == 24 and parity.validation["n_images"] == 40
    assert set(parity.validation) == {"max_lsb_diff", "mean_lsb_diff", "outputs_identical_share",
                                      "identical_decisions_validation_pairs", "n_images"}
    assert 0 <= parity.validation["max_lsb_diff"] <= 2 and 0.0 <= parity.validation["outputs_identical_share"] <= 1
    # decided on the validation pairs at the shipped threshold of the TFLite int8 stage
    from tinyface.evaluation import metrics
    from tinyface.model.embedder import Embedder

    a, b, _ = stages_eval.validation_pairs(data.val.labels)
    flat = (quant / "int8.tflite").read_bytes()
    tflm, tflite = (Embedder(flat, runtime).embed(data.val.crops) for runtime in ("tflm", "tflite"))
    thr = result.stages["tflite_int8"].verification["threshold"]
    assert parity.validation["identical_decisions_validation_pairs"] == pytest.approx(metrics.decision_agreement(
        metrics.pair_scores(tflm, a, b), metrics.pair_scores(tflite, a, b), thr))
    assert result.to_dict()["parity"]["validation"] == parity.validation  # metrics.json and report.json keep it
