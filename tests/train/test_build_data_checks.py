"""`tinyface build` on a user's own folder: a dataset too small for the splits is refused
before any alignment or training, with the numbers needed; the report, the model
card and model.json name the dataset actually used; a `--quick` model says it is a smoke test
wherever its accuracy is printed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinyface.train.pipeline import _accuracy_fields, _role_counts, describe_dataset

PEOPLE = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]


def _folder(lfw_dir, root, people, n=12):
    for name in people:
        (root / name).mkdir(parents=True)
        for src in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:n]:
            shutil.copy2(src, root / name / src.name)
    return root


def test_a_dataset_too_small_for_a_validation_split_is_refused_before_training(lfw_dir, tmp_path):
    root = _folder(lfw_dir, tmp_path / "friends", PEOPLE)
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "build", "--quick", "--data", str(root),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 4, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: "), proc.stderr[-2000:]
    assert "5 people split into 2 training, 1 validation" in lines[0]
    assert "at least 21 people at data.val_fraction=0.1" in lines[0]
    assert not (tmp_path / "cache" / "faces.sqlite").exists()  # nothing aligned, nothing trained


def test_the_role_counts_follow_the_split_and_21_people_is_the_least():
    from tinyface.data.dataset import Dataset, FaceImage
    from tinyface.data.splits import train_val_test

    for n in (5, 20, 21, 40):
        images = [FaceImage(Path(f"/x/p{i}/{k}.jpg"), f"p{i}") for i in range(n) for k in range(2)]
        split = train_val_test(Dataset(Path("/x"), Path("/x"), images),
                               0.1, seed=0)
        counts = (len({im.identity for im in split.train}), len({im.identity for im in split.val}),
                  len(split.test_people))
        assert counts == _role_counts(n, 0.1)
    assert min(_role_counts(20, 0.1)) < 2 <= min(_role_counts(21, 0.1))


def test_the_dataset_is_named_as_it_is(lfw_dir, tmp_path):
    assert describe_dataset(lfw_dir)["test"] == "LFW pairsDevTest"
    own = _folder(lfw_dir, tmp_path / "office", PEOPLE[:2], n=2)
    info = describe_dataset(own)
    assert info["kind"] == "folders" and info["name"] == "office" and "LFW" not in info["test"]


def _metrics(dataset, smoke):
    """Synthetic metrics with every field the report reads (the renderer is under test)."""
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

    own = _folder(lfw_dir, tmp_path / "office", PEOPLE[:2], n=2)
    metrics = _metrics(describe_dataset(own), smoke)
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
    lfw = _accuracy_fields(_metrics(describe_dataset(lfw_dir), smoke))
    assert lfw["lfw_pairs_dev_test_accuracy"] == lfw["test_accuracy"] == 0.9


def test_report_and_model_card_name_both_gallery_sizes(lfw_dir, tmp_path, tiny_bundle):
    from tinyface import config
    from tinyface.evaluation.report import write_model_card, write_report

    metrics = _metrics(describe_dataset(lfw_dir), False)
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


def test_flash_warns_before_flashing_a_smoke_test_model(tiny_bundle, tmp_path):
    from tinyface.model.bundle import load_bundle, save_bundle

    for smoke in (True, False):
        meta = load_bundle(tiny_bundle.model_path.parent).meta
        meta.extra = {**meta.extra, "smoke_test": smoke}
        model = tmp_path / f"model-{smoke}"
        save_bundle(model, tiny_bundle.model_bytes, meta)
        proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--dry-run",
                               "--model", str(model), "--project-dir", str(tmp_path / f"project-{smoke}")],
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        warned = "tinyface: warning:" in proc.stderr and "smoke-test model" in proc.stderr
        assert warned == smoke, proc.stderr
        if smoke:  # before anything else is said
            assert proc.stderr.lstrip().startswith("tinyface: warning:"), proc.stderr
