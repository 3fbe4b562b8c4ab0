"""`tinyface build --quick` end to end on a small real LFW subset: the artifacts, the
report's structure, sane metrics, re-runs that skip unchanged stages, and a failed stage
that leaves nothing a later run would trust."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli.test_json_shapes import assert_documented
from tests.conftest import run_cli as conftest_run_cli

# two training people (peopleDevTrain) with 4 photos each, one test person (peopleDevTest) with 1,
# whose photo the quick build evaluates (a quick build's contamination reference is the test
# images it evaluates, not every image of the test people)
EXTRA_PEOPLE = ("Aaron_Peirsol", "Abdullah", "Aaron_Tippin")
STAGES = ["teacher", "float", "pruned", "tflite_float", "tflite_int8", "tflm_int8"]


def extra_dirs(out) -> str:
    """The quick build's extra.dirs setting: its folder of face chips beside the run folder (every
    re-run passes it too, or the data, and with it every stage, would change)."""
    return f"extra.dirs=[{json.dumps(str(out.parent / 'extra'))}]"


def run_cli(*args, env_extra=None, timeout=900):
    """conftest's run_cli with a build's timeout and TensorFlow's C++ log off."""
    return conftest_run_cli(*args, env={"TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}, timeout=timeout)


@pytest.fixture(scope="session")
def quick_build(lfw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "run"
    # extra faces: face chips of a few LFW training images (CI has no FairFace), one of them a
    # test person's, which the contamination filter must drop
    from tests.conftest import write_face_chips

    photos = [p for name in EXTRA_PEOPLE for p in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:4]]
    extra = out.parent / "extra"
    write_face_chips(photos, extra)
    started = time.perf_counter()
    proc = run_cli("build", "--quick", "--data", str(lfw_dir), "--out", str(out), "--json", "--set", extra_dirs(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout), time.perf_counter() - started


def test_quick_build_writes_every_artifact(quick_build):
    out, summary, _ = quick_build
    for name in ["model.tflite", "model.json", "MODEL_CARD.md", "report.md", "report.json", "validation.md",
                 "validation.json", "roc.png", "training.png",
                 "confusion.png", "size_accuracy.png", "distill/student.keras", "prune/pruned.keras",
                 "prune/sparsity.json", "quantize/float.tflite", "quantize/int8.tflite", "quantize/choice.json",
                 "evaluate/metrics.json"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for stage in ["distill", "prune", "quantize", "evaluate"]:
        assert json.loads((out / stage / "stage.json").read_text())["fingerprint"]
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    assert summary["model"] == str(out / "model.tflite")
    assert summary["validation_report"] == str(out / "validation.md")
    assert_documented("build", summary)  # docs/cli.md's shape, as tests/cli/test_json_shapes.py checks the others
    assert summary["test_hidden"] is False and summary["test_accuracy"] == summary["lfw_accuracy"]


def test_quick_build_keeps_the_better_of_ptq_and_qat_on_validation(quick_build):
    out, _, _ = quick_build
    choice = json.loads((out / "quantize" / "choice.json").read_text())
    scores = choice["val_accuracy"]
    assert set(scores) == {"ptq", "qat"}, "the esp32 preset tries QAT next to PTQ"
    assert choice["chosen"] == max(scores, key=scores.get)
    assert choice["ops_one_at_a_time"] is True, "the build set TensorFlow up before its first op: QAT reproducible"
    # its epochs' losses, which training.png draws after pruning's (they were left out)
    report = json.loads((out / "report.json").read_text())
    assert len(choice["history"]["loss"]) == report["settings"]["quantize"]["qat_epochs"] >= 1
    kept = (out / "quantize" / f"int8_{choice['chosen']}.tflite").read_bytes()
    assert (out / "quantize" / "int8.tflite").read_bytes() == kept == (out / "model.tflite").read_bytes()


def test_quick_build_bundle_is_a_full_int8_model_within_budget(quick_build):
    from tinyface.model.bundle import load_bundle
    from tinyface.train.quantize import io_quantization

    out, summary, _ = quick_build
    bundle = load_bundle(out)
    io = io_quantization(bundle.model_bytes)
    assert io["input_type"] == io["output_type"] == 9  # TensorType.INT8
    assert bundle.meta.input_shape == [1, 64, 64, 1]
    assert bundle.meta.input_scale == pytest.approx(1 / 128) and bundle.meta.input_zero_point == 0
    assert 0 < bundle.meta.macs <= 2_000_000 and bundle.meta.arena_bytes > 0
    assert -1.0 <= bundle.meta.threshold <= 1.0
    assert summary["macs"] == bundle.meta.macs
    # the report's board estimate is the one `tinyface profile` and the emulator give
    from tinyface.boards import load_board
    from tinyface.boards.profile import profile_model

    tflm = json.loads((out / "report.json").read_text())["stages"]["tflm_int8"]
    assert tflm["estimated_ms_on_board"] == pytest.approx(
        profile_model(bundle.model_bytes, load_board("esp32").cost_model).total_est_ms)
    # IDENTIFY's threshold is the one the TFLM stage was scored at
    report = json.loads((out / "report.json").read_text())
    assert bundle.meta.identify_at == pytest.approx(report["stages"]["tflm_int8"]["identification"]["threshold"])


def test_quick_build_report_structure_and_sane_metrics(quick_build):
    out, _, _ = quick_build
    report = json.loads((out / "report.json").read_text())
    tflm = report["stages"]["tflm_int8"]
    assert set(STAGES) <= set(report["stages"])
    for name in STAGES:
        st = report["stages"][name]
        v, i = st["verification"], st["identification"]
        assert 0.0 <= v["accuracy"] <= 1.0 and 0.0 <= v["auc"] <= 1.0
        assert v["n_pairs"] == 200 and v["n_negative"] == 100
        assert 0.0 <= i["accuracy"] <= i["closed_set_accuracy"] <= 1.0
        assert 0.0 <= i["macro_f1"] <= 1.0 and 0.0 <= i["stranger_false_accept_rate"] <= 1.0
        assert i["threshold_from"] and 0.0 <= i["at_verification_threshold"]["stranger_false_accept_rate"] <= 1.0
        # identification by galleries of the device's size (16): the quick build enrolls 8, who all fit
        assert i["device_gallery"] == {"gallery": i["n_people"], "draws": 1, "accuracy": i["accuracy"],
                                       "stranger_false_accept_rate": i["stranger_false_accept_rate"]}, name
    # one count of MACs in the table's column: the converted graph's, the float rows' too (they were Keras's)
    assert {report["stages"][name]["macs"] for name in STAGES if name != "teacher"} == {tflm["macs"]}
    # the teacher is strong even on 200 pairs; a 2-epoch student is at least better than chance
    assert report["stages"]["teacher"]["verification"]["accuracy"] >= 0.93
    assert report["stages"]["float"]["verification"]["auc"] > 0.55
    # TFLM runs the same int8 model as TFLite: at most 1 LSB apart, nearly the same decisions
    assert report["parity"]["max_lsb_diff"] <= 1
    assert report["parity"]["identical_decisions_test_pairs"] >= 0.95
    validation = report["parity"]["validation"]  # the same on the validation images and pairs
    assert validation["max_lsb_diff"] <= 1 and validation["identical_decisions_validation_pairs"] >= 0.9
    assert validation["n_images"] == report["data"]["val_images"]
    assert json.loads((out / "validation.json").read_text())["parity"] == validation
    assert report["stages"]["tflm_int8"]["arena_bytes"] > 0
    assert report["stages"]["tflm_int8"]["estimated_ms_on_board"] > 0
    sparsity = report["stages"]["pruned"]["sparsity_overall"]
    target = report["settings"]["prune"]["target_sparsity"]  # the esp32 preset's (0.3)
    assert abs(sparsity - target) <= 0.02, (sparsity, target)  # reached by the end of the schedule
    # LFW's errata filter (data.test_filter) ran before the views and mixes; what it dropped is said
    dropped = report["data"]["test_filter"]
    assert dropped["distance"] == report["settings"]["data"]["test_filter"] == 0.25
    assert set(dropped) == {"distance", "train_near_test_image", "train_named_as_test_person",
                            "val_near_test_image", "val_named_as_test_person"}
    assert json.loads((out / "validation.json").read_text())["data"]["test_filter"] == dropped
    assert "data.test_filter" in (out / "MODEL_CARD.md").read_text()
    md = (out / "report.md").read_text()
    for heading in ["## Stages", "## Compression losses", "## TFLM vs TFLite int8", "## Pruning", "## Plots"]:
        assert heading in md
    assert "TFLM int8" in md and "![roc](roc.png)" in md
    # what every identification threshold trades on validation people, plotted (never the test's)
    val = report["stages"]["tflm_int8"]["validation"]
    curve = val["identification_curve"]
    assert len(curve["thresholds"]) == len(curve["accuracy"]) == 200 and curve["gallery"] == \
        val["identification"]["gallery"]
    assert curve["accuracy"] == sorted(curve["accuracy"], reverse=True)
    assert (out / "identification.png").is_file() and "![identification](identification.png)" in md
    # the shipped threshold is chosen on validation people; every stage is also scored at the
    # protocol's (pairsDevTrain) threshold, and the report shows both
    assert report["threshold_source"] == "validation"
    for name, stage in report["stages"].items():
        v = stage["verification"]
        assert v["threshold"] == v["validation_threshold"] == stage["validation"]["threshold"], name
        assert v["accuracy"] == v["accuracy_at_validation_threshold"], name
        assert 0.0 <= v["accuracy_at_protocol_threshold"] <= 1.0 and -1.0 <= v["protocol_threshold"] <= 1.0, name
    assert "accuracy (validation threshold, shipped)" in md and "accuracy (protocol threshold)" in md
    assert json.loads((out / "model.json").read_text())["threshold"] == pytest.approx(
        report["stages"]["tflm_int8"]["verification"]["validation_threshold"])


def test_rerun_skips_unchanged_stages(quick_build, lfw_dir):
    out, first, _ = quick_build
    # --hide-test changes only what is printed, and distill.seed=-1 is the default written out (the
    # training seed is data.seed): the same stages are skipped
    proc = run_cli("build", "--quick", "--data", str(lfw_dir), "--out", str(out), "--json", "--hide-test",
                   "--set", extra_dirs(out), "--set", "distill.seed=-1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert_documented("build", summary)  # the same shape with --hide-test
    stages = {s["name"]: s["reused"] for s in summary["stages"]}
    assert stages == {"data": False, "distill": True, "prune": True, "quantize": True, "evaluate": True,
                      "report": False}
    # with --hide-test the summary holds validation figures and no test figure
    assert summary["test_hidden"] is True and first["test_hidden"] is False
    # TFLM against TFLite on the validation images and pairs, not on the test's
    assert summary["parity"] == first["parity"]["validation"] and "identical_decisions_test_pairs" in first["parity"]
    assert set(summary["parity"]) == {"max_lsb_diff", "mean_lsb_diff", "outputs_identical_share",
                                      "identical_decisions_validation_pairs", "n_images"}
    assert summary["test_accuracy"] is summary["lfw_accuracy"] is summary["test_data"] is None
    assert first["test_accuracy"]["tflm_int8"] > 0
    report = json.loads((out / "report.json").read_text())
    assert summary["validation_accuracy"] == {name: st["validation"]["accuracy"] for name, st in
                                              report["stages"].items()}
    assert summary["macs"] == first["macs"]


def test_hide_test_ends_with_validation_figures_and_keeps_the_test_in_the_report(quick_build, lfw_dir):
    out, first, _ = quick_build
    proc = run_cli("build", "--quick", "--data", str(lfw_dir), "--out", str(out), "--hide-test",
                   "--set", extra_dirs(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    val = report["stages"]["tflm_int8"]["validation"]["accuracy"]
    assert f"TFLM int8 on validation pairs (smoke test): {100 * val:.2f}%" in proc.stdout
    assert "not shown (--hide-test)" in proc.stdout and "pairsDevTest" not in proc.stdout + proc.stderr
    test_figure = f"{100 * first['test_accuracy']['tflm_int8']:.2f}%"
    if test_figure != f"{100 * val:.2f}%":
        assert test_figure not in proc.stdout + proc.stderr
    # the test figures are still written where they are read once a choice is made
    assert report["stages"]["tflm_int8"]["verification"]["accuracy"] == first["test_accuracy"]["tflm_int8"]
    # and the run points to the file a rule reads, which holds the validation figures and no test figure
    assert f"validation figures: {out / 'validation.md'}" in proc.stdout
    text = (out / "validation.md").read_text()
    assert f"| TFLM int8 (on-device kernels) | {100 * val:.2f}% |" in text and "pairsDevTest" not in text
    summary = json.loads((out / "validation.json").read_text())
    # every percentage in the file is a validation figure of validation.json
    figures = set()
    for st in summary["stages"].values():
        figures |= {f"{100 * v:.2f}%" for v in (st["accuracy"], st.get("tar_at_far_1e-3"),
                                               *(st.get("identification") or {}).values()) if isinstance(v, float)}
    # TFLM against TFLite on the validation images and pairs
    parity = summary["parity"]
    figures |= {f"{100 * parity[k]:.2f}%" for k in ("outputs_identical_share", "identical_decisions_validation_pairs")}
    assert f"on the {parity['n_images']:,} validation images" in text
    shown = re.findall(r"(?<![\d.])[+-]?\d+\.\d\d%", text)
    assert shown and [f for f in shown if f not in figures] == []
    assert summary["stages"]["tflm_int8"]["accuracy"] == val and "verification" not in json.dumps(summary)
    assert summary["macs"] == report["stages"]["tflm_int8"]["macs"]


def test_protocol_threshold_source_reruns_only_the_evaluation(quick_build, lfw_dir, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    proc = run_cli("build", "--quick", "--data", str(lfw_dir), "--out", str(out), "--json",
                   "--set", "data.threshold_from=protocol", "--set", "data.identify_gallery=4",
                   "--set", extra_dirs(quick_build[0]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    stages = {s["name"]: s["reused"] for s in json.loads(proc.stdout)["stages"]}
    assert stages == {"data": False, "distill": True, "prune": True, "quantize": True, "evaluate": False,
                      "report": False}
    report = json.loads((out / "report.json").read_text())
    assert report["threshold_source"] == "protocol" and "pairsDevTrain" in report["threshold_from"]
    v = report["stages"]["tflm_int8"]["verification"]
    assert v["threshold"] == v["protocol_threshold"] and v["accuracy"] == v["accuracy_at_protocol_threshold"]
    assert json.loads((out / "model.json").read_text())["threshold"] == pytest.approx(v["protocol_threshold"])
    assert "accuracy (protocol threshold, shipped)" in (out / "report.md").read_text()
    assert 'data.threshold_from="protocol"' in (out / "MODEL_CARD.md").read_text()
    # identification by galleries of 4 of the 8 enrolled test people, named in the report
    i = report["stages"]["tflm_int8"]["identification"]
    assert i["n_people"] == 8 and (i["device_gallery"]["gallery"], i["device_gallery"]["draws"]) == (4, 100)
    assert "stranger FAR (4 people)" in (out / "report.md").read_text()


def test_a_failed_stage_leaves_no_trusted_artifact(quick_build, lfw_dir, monkeypatch, tmp_path):
    """Quantization that dies half-way: no stage.json and no int8 model for that stage,
    and the next run redoes it instead of trusting leftovers."""
    import shutil

    from tinyface import config
    from tinyface.config import load_preset as get_preset
    from tinyface.train import pipeline, quantize

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    for stale in (out / "quantize").iterdir():
        stale.unlink()  # as if quantize had never run

    def dies(*args, **kwargs):
        raise RuntimeError("killed during conversion")

    monkeypatch.setattr(quantize, "convert_int8", dies)
    from tinyface.cli.build import QUICK

    extra = {"dirs": [str(quick_build[0].parent / "extra")]}  # as the quick build had them
    # PTQ only (QAT's half minute adds nothing here): quantize's settings are not distill's or prune's
    settings = config.load(None, {**QUICK, "data": {"dir": str(lfw_dir)}, "extra": extra,
                                  "quantize": {**QUICK["quantize"], "qat": False}},
                           base=get_preset("esp32").settings())
    with pytest.raises(RuntimeError):
        pipeline.run_build(settings, get_preset("esp32"), out, quick=True)
    assert not (out / "quantize" / "stage.json").exists()
    assert not (out / "quantize" / "int8.tflite").exists()
    assert not list(out.rglob("*.tmp"))
    monkeypatch.undo()

    class Quantized(Exception):
        pass

    def stop(*args, **kwargs):
        raise Quantized

    monkeypatch.setattr(pipeline, "_evaluate", stop)  # what follows quantize is not what this checks
    events = []
    with pytest.raises(Quantized):
        pipeline.run_build(settings, get_preset("esp32"), out, quick=True,
                           report_progress=lambda event, info: events.append((event, info)))
    ran = {info["name"]: info["skipped"] for event, info in events if event == "done" and "skipped" in info}
    assert ran == {"distill": True, "prune": True, "quantize": False}
    assert (out / "quantize" / "int8.tflite").is_file() and (out / "quantize" / "stage.json").is_file()


def _quick_settings(quick_build, lfw_dir, **sections):
    """The quick build's settings (its extra faces included), with ``sections`` merged in."""
    from tinyface import config
    from tinyface.cli.build import QUICK
    from tinyface.config import load_preset

    overrides = {**QUICK, "data": {"dir": str(lfw_dir)}, "extra": {"dirs": [str(quick_build[0].parent / "extra")]}}
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    return config.load(None, overrides, base=load_preset("esp32").settings()), load_preset("esp32")


def test_a_build_stopped_after_a_stage_leaves_that_stages_models_to_no_earlier_model_json(
        quick_build, lfw_dir, monkeypatch, tmp_path):
    """A rebuild at another padding, stopped after distill: the student was trained on crops cut at
    0.3, the run's model.json (written by the previous build's report) still says the old padding,
    and `tinyface evaluate --model run/distill/student.keras` used to cut at that one, silently."""
    import shutil

    from tinyface.errors import ModelError
    from tinyface.model.bundle import model_file_meta
    from tinyface.train import pipeline, prune

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    meta = json.loads((out / "model.json").read_text())
    # the finished build recorded each stage it made, and its stage models take its crop
    assert meta["extra"]["stages"] == {name: json.loads((out / name / "stage.json").read_text())["fingerprint"]
                                       for name in ("distill", "prune", "quantize", "evaluate")}
    # and the data settings that drew its validation people, as it ran with them
    report = json.loads((out / "report.json").read_text())
    from tinyface.data.dataset import load_dataset
    from tinyface.data.splits import people_fingerprint

    assert meta["extra"]["split"] == {**{name: report["settings"]["data"][name]
                                         for name in ("seed", "val_fraction", "test_filter")},
                                      "people": people_fingerprint(load_dataset(lfw_dir)),
                                      "quick": True}  # it used a sample of their images (splits.quick_sample)
    assert model_file_meta(out / "distill" / "student.keras").meta.crop_padding == meta["crop_padding"] != 0.3

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(prune, "wrap_for_pruning", killed)
    settings, preset = _quick_settings(quick_build, lfw_dir, data={"padding": 0.3})
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run_build(settings, preset, out, quick=True)
    assert json.loads((out / "model.json").read_text())["crop_padding"] == meta["crop_padding"]
    assert json.loads((out / "distill" / "stage.json").read_text())["fingerprint"] != meta["extra"]["stages"]["distill"]
    with pytest.raises(ModelError) as exc:
        model_file_meta(out / "distill" / "student.keras")
    assert "another build" in exc.value.one_line() and "finish the build" in exc.value.one_line()
    with pytest.raises(ModelError, match="has no model.json"):  # the prune stage it was redoing: no record
        model_file_meta(out / "prune" / "pruned.keras")
    # the stage it did not reach is still the previous build's, which that model.json describes
    assert model_file_meta(out / "quantize" / "float.tflite").meta.crop_padding == meta["crop_padding"]


def test_a_build_stopped_in_its_distillation_goes_on_after_its_last_whole_epoch(
        quick_build, lfw_dir, monkeypatch, tmp_path):
    # was: a build stopped in distill (Ctrl-C, kill -9) trained every epoch again, 23 of the esp32
    # preset's 25 minutes; now every epoch is saved and the next run takes up after the last one,
    # to the very student of a build never stopped
    import shutil

    from tinyface.model.keras_io import load_keras
    from tinyface.train import pipeline, prune

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    for stage in ("distill", "prune"):  # redo distill with the same settings (and prune, to stop there)
        (out / stage / "stage.json").unlink()

    class Stopped(Exception):
        pass

    def stop_at_epoch_3(event, info):
        if event == "epoch" and info["epoch"] == 3:
            raise Stopped()

    settings, preset = _quick_settings(quick_build, lfw_dir)
    said = []
    with pytest.raises(Stopped):
        pipeline.run_build(settings, preset, out, quick=True,
                           report_progress=lambda e, i: (said.append((e, i)), stop_at_epoch_3(e, i)))
    assert said[-1] == ("note", {"text": "stopped: 3 of 8 epochs saved, the same command goes on after them"})
    assert [p.name for p in (out / "distill" / pipeline.CHECKPOINT_DIR).iterdir()] == ["epoch-0003"]

    def killed(*args, **kwargs):  # stop after distill: its student is what is compared
        raise RuntimeError("killed")

    monkeypatch.setattr(prune, "wrap_for_pruning", killed)
    events = []
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run_build(settings, preset, out, quick=True, report_progress=lambda e, i: events.append((e, i)))
    assert ("note", {"text": "taking up after epoch 3 of 8, which an earlier run saved"}) in events
    assert [i["epoch"] for e, i in events if e == "epoch"] == [4, 5, 6, 7, 8]
    assert (out / "distill" / "stage.json").is_file() and not (out / "distill" / pipeline.CHECKPOINT_DIR).exists()
    history = json.loads((out / "distill" / "history.json").read_text())["history"]
    assert len(history["loss"]) == 8
    again = load_keras(out / "distill" / "student.keras").get_weights()
    whole = load_keras(quick_build[0] / "distill" / "student.keras").get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(whole, again, strict=True))


def test_a_build_stopped_within_a_pruning_epoch_goes_on_from_its_last_batch_saved(
        quick_build, lfw_dir, monkeypatch, tmp_path):
    """The prune stage saves as distill does (the pruning masks and step with the weights), after
    every epoch and within one (here after every batch): stopped halfway through its second epoch
    and taken up, it ends with the pruned model of a build never stopped."""
    import re
    import shutil

    from tinyface.model.keras_io import load_keras
    from tinyface.train import distill, pipeline

    def killed(*args, **kwargs):  # stop after prune: its model is what is compared
        raise RuntimeError("killed")

    monkeypatch.setattr(pipeline, "_quantize", killed)
    monkeypatch.setattr(distill.Checkpoint, "EVERY_S", 0.0)
    settings, preset = _quick_settings(quick_build, lfw_dir, prune={"epochs": 2})  # 1 in a quick build
    runs = {}
    for name in ("whole", "stopped"):
        runs[name] = tmp_path / name
        shutil.copytree(quick_build[0], runs[name])
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run_build(settings, preset, runs["whole"], quick=True)

    class Stopped(Exception):
        pass

    said = []

    def stop_halfway_through_prune_epoch_2(event, info):
        said.append((event, info))
        if event == "epoch_progress" and info["epoch"] >= 1.5:
            raise Stopped()

    with pytest.raises(Stopped):  # distill is the quick build's, unchanged: the epochs are prune's
        pipeline.run_build(settings, preset, runs["stopped"], quick=True,
                           report_progress=stop_halfway_through_prune_epoch_2)
    [saved] = [p.name for p in (runs["stopped"] / "prune" / pipeline.CHECKPOINT_DIR).iterdir()]
    batch = int(re.fullmatch(r"epoch-0001-batch-(\d{6})", saved).group(1))
    steps = json.loads((runs["stopped"] / "prune" / pipeline.CHECKPOINT_DIR / saved / "progress.json").read_text())[
        "steps"]
    assert 0 < batch <= steps - 2
    assert said[-1] == ("note", {"text": f"stopped: epoch 2 of 2 saved up to its batch {batch} of {steps}, the same "
                                         "command goes on from there"})
    events = []
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run_build(settings, preset, runs["stopped"], quick=True,
                           report_progress=lambda e, i: events.append((e, i)))
    assert ("note", {"text": f"taking up epoch 2 of 2 after its batch {batch} of {steps}, which an earlier run "
                             "saved"}) in events
    assert [i["epoch"] for e, i in events if e == "epoch"] == [2]
    assert min(i["epoch"] for e, i in events if e == "epoch_progress") == 1 + (batch + 1) / steps
    assert not (runs["stopped"] / "prune" / pipeline.CHECKPOINT_DIR).exists()
    whole = load_keras(runs["whole"] / "prune" / "pruned.keras").get_weights()
    again = load_keras(runs["stopped"] / "prune" / "pruned.keras").get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(whole, again, strict=True))
    history = {name: json.loads((runs[name] / "prune" / "sparsity.json").read_text())["history"] for name in runs}
    assert history["stopped"] == history["whole"]


QAT_TAKE_UP = """
import json, sys
from pathlib import Path

from tinyface.console import one_op_at_a_time

assert one_op_at_a_time()  # QAT is bit-reproducible only so: before TensorFlow's first op
from tests.train.test_build_quick import _quick_settings
from tinyface.train import distill, pipeline

built, lfw, out = map(Path, sys.argv[1:])
distill.Checkpoint.EVERY_S = 0.0  # a save after every batch
settings, preset = _quick_settings((built,), lfw)


class Stopped(Exception):
    pass


def stop_halfway(event, info):
    said.append([event, info])
    if event == "epoch_progress" and info["epoch"] >= 0.5:  # distill and prune are the quick build's: QAT's
        raise Stopped()


def killed(*args, **kwargs):  # stop after quantize: its models are what is compared
    raise RuntimeError("killed")


said = []
try:
    pipeline.run_build(settings, preset, out, quick=True, report_progress=stop_halfway)
except Stopped:
    pass
saved = sorted(p.name for p in (out / "quantize" / pipeline.CHECKPOINT_DIR).iterdir())
pipeline._evaluate = killed
events = []
try:
    pipeline.run_build(settings, preset, out, quick=True, report_progress=lambda e, i: events.append([e, i]))
except RuntimeError:
    pass
print(json.dumps({"stopped": said[-1], "saved": saved,
                  "notes": [i["text"] for e, i in events if e == "note"]}))
"""


def test_a_build_stopped_within_its_qat_epoch_goes_on_to_the_same_int8_model(quick_build, lfw_dir, tmp_path):
    """Quantization-aware training (one epoch in every preset; minutes for esp32s3) saves its state as
    distill does: a build stopped halfway through it and taken up writes the QAT model, byte for
    byte, and the history of the quick build, which was never stopped. In a fresh process, where
    TensorFlow runs one op at a time, as in a build (QAT is reproducible only so)."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    for stage in ("quantize", "evaluate"):
        (out / stage / "stage.json").unlink()
    proc = subprocess.run([sys.executable, "-c", QAT_TAKE_UP, str(quick_build[0]), str(lfw_dir), str(out)],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2],
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    [saved] = seen["saved"]
    batch = int(re.fullmatch(r"epoch-0000-batch-(\d{6})", saved).group(1))
    assert seen["stopped"][0] == "note" and seen["stopped"][1]["text"].startswith(
        f"stopped: epoch 1 of 1 saved up to its batch {batch} of ")
    assert any(n.startswith(f"taking up epoch 1 of 1 after its batch {batch} of ") for n in seen["notes"]), seen
    assert not (out / "quantize" / "checkpoint").exists()
    for name in ("int8_qat.tflite", "int8_ptq.tflite", "int8.tflite"):
        assert (out / "quantize" / name).read_bytes() == (quick_build[0] / "quantize" / name).read_bytes(), name
    choice = {run: json.loads((run / "quantize" / "choice.json").read_text()) for run in (out, quick_build[0])}
    assert choice[out] == choice[quick_build[0]]


def test_a_build_stopped_in_its_report_leaves_no_earlier_card_beside_its_model(
        quick_build, lfw_dir, monkeypatch, tmp_path):
    """The report step writes the bundle, then the report, validation figures and card: stopped in
    between, it left the previous build's card and figures beside the new model."""
    import shutil

    from tinyface.evaluation import report
    from tinyface.model.bundle import load_bundle
    from tinyface.train import pipeline

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    # BUILD_REPORT_FILES is all the report step writes beside the bundle (it removes those first)
    written = {p.name for p in out.iterdir() if p.is_file()} - {"model.tflite", "model.json", ".lock"}
    assert written <= set(report.BUILD_REPORT_FILES) and {"MODEL_CARD.md", "report.md", "validation.md"} <= written
    (out / "identification.png").write_bytes(b"a plot an earlier build drew")  # this one's has none

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(report, "write_report", killed)
    settings, preset = _quick_settings(quick_build, lfw_dir)
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run_build(settings, preset, out, quick=True)
    assert load_bundle(out).meta.extra["stages"]  # the new bundle is there
    assert [name for name in report.BUILD_REPORT_FILES if (out / name).exists()] == []


def test_a_build_removes_what_killed_builds_left_of_their_atomic_writes(monkeypatch, tmp_path):
    """A save killed outright (SIGKILL, the out-of-memory killer) leaves its temp file (a half
    .keras weighs megabytes); the next build, holding the run folder, removes them before any
    work, and nothing else."""
    from tinyface import config
    from tinyface.config import load_preset
    from tinyface.train import pipeline

    out = tmp_path / "run"
    leftovers = [out / "distill" / ".student.keras.tinyface-tmp-k3x_9a0b.keras",
                 out / "prune" / ".sparsity.json.tinyface-tmp-abcd1234.tmp",
                 out / "quantize" / ".int8.tflite.tinyface-tmp-zz00yy11.tmp",
                 out / ".model.tflite.tinyface-tmp-q1w2e3r4.tmp"]
    kept = [out / "distill" / "student.keras", out / "distill" / "stage.json", out / "distill" / ".notes.keras",
            out / "quantize" / "calibration.tmp", out / ".model.tflite.backup",
            out / "distill" / ".student.keras.k3x_9a0b.keras",  # a user's name, as temp files were once named
            # only the stage folders are looked in
            out / "other" / "deeper" / ".student.keras.tinyface-tmp-k3x_9a0b.keras"]
    for path in leftovers + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"bytes")

    class Started(Exception):
        pass

    def started(*args, **kwargs):
        assert [p for p in leftovers if p.exists()] == []  # gone before the first step
        raise Started

    monkeypatch.setattr(pipeline, "check_dataset_size", started)
    with pytest.raises(Started):
        pipeline.run_build(config.load(None, {}, base=load_preset("esp32").settings()), load_preset("esp32"), out,
                           quick=True)
    assert [p for p in kept if not p.exists()] == []


def test_a_search_trial_trains_as_the_build_does_and_a_stopped_search_is_taken_up(quick_build, lfw_dir, monkeypatch,
                                                                                    tmp_path):
    """The build passes the search its own training, so a trial trains as the final training does
    (trials ignored distill.ema and student.branches). Checked here: the same weight averaging,
    augmentation and rows, a third of the epochs, and the final training takes the search's
    choice. A build stopped after its search (its trials saved in distill/search.json) goes on
    without training them again, and says so. Run on the quick build's data, stopped once
    distillation is done."""
    pytest.importorskip("optuna")
    import shutil

    from tinyface import config
    from tinyface.cli.build import QUICK
    from tinyface.config import load_preset
    from tinyface.train import distill, pipeline

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    calls = []
    real_fit = distill.fit

    class Stopped(Exception):
        pass

    def fit(model, x, t, x_val, t_val, epochs, batch_size, lr, loss, **kw):
        calls.append({"epochs": epochs, "lr": lr, "ema": kw["ema"], "light": kw["light"], "rows": len(x)})
        if len(calls) == 2:  # the first run's final training: stopped as it starts
            raise Stopped
        return real_fit(model, x, t, x_val, t_val, epochs, batch_size, lr, loss, **kw)

    class Distilled(Exception):
        pass

    def stop(*args, **kwargs):
        raise Distilled

    monkeypatch.setattr(distill, "fit", fit)
    monkeypatch.setattr(pipeline, "_prune", stop)
    extra = {"dirs": [str(quick_build[0].parent / "extra")]}  # as the quick build had them
    overrides = {**QUICK, "data": {"dir": str(lfw_dir)}, "extra": extra,
                 "distill": {**QUICK["distill"], "epochs": 3, "search_trials": 1, "ema": 0.9}}
    settings = config.load(None, overrides, base=load_preset("esp32").settings())
    said = []

    def build():
        pipeline.run_build(settings, load_preset("esp32"), out, quick=True,
                           report_progress=lambda event, info: said.append(info.get("text")))

    with pytest.raises(Stopped):
        build()
    saved = json.loads((out / "distill" / pipeline.SEARCH_TRIALS).read_text())
    assert len(saved["trials"]) == 1
    assert "stopped: 1 of 1 search trials saved, the same command goes on after them" in said
    with pytest.raises(Distilled):
        build()
    assert "taking up the search after trial 1 of 1, which an earlier run saved" in said
    trial, first_final, final = calls  # the trial was not trained again
    assert trial["epochs"] == 1 and final["epochs"] == 3 and final == first_final
    assert trial["ema"] == final["ema"] == 0.9 and trial["light"] == final["light"] and trial["rows"] == final["rows"]
    history = json.loads((out / "distill" / "history.json").read_text())
    assert final["lr"] == history["learning_rate"] == history["search"]["learning_rate"] == trial["lr"]
    assert not (out / "distill" / pipeline.SEARCH_TRIALS).exists()  # history.json holds the search now


def test_build_without_data_says_what_to_do(tmp_path):
    proc = run_cli("build", "--quick", "--out", str(tmp_path / "x"),
                   env_extra={"TINYFACE_DATA": str(tmp_path / "none")})
    assert proc.returncode == 4
    assert "tinyface data fetch lfw" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_print_config_applies_the_preset_and_overrides():
    proc = run_cli("build", "--preset", "esp32s3", "--epochs", "7", "--print-config", "--json")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert cfg["data"]["crop_size"] == 80 and cfg["student"]["width"] == 1.75 and cfg["distill"]["epochs"] == 7
    assert cfg["firmware"]["board"] == "esp32s3"


def test_a_quick_build_says_it_is_a_smoke_test_wherever_its_accuracy_is_printed(quick_build):
    out, summary, _ = quick_build
    assert summary["smoke_test"] is True and summary["test_data"] == "LFW pairsDevTest"
    assert summary["lfw_accuracy"] == summary["test_accuracy"]
    for name in ("report.md", "MODEL_CARD.md"):
        text = (out / name).read_text()
        assert "SMOKE TEST" in text.splitlines()[0] and "do not deploy it" in text, name
    extra = json.loads((out / "model.json").read_text())["extra"]
    assert extra["smoke_test"] is True and extra["test_data"] == "LFW pairsDevTest"
    assert extra["lfw_pairs_dev_test_accuracy"] == extra["test_accuracy"]
    assert extra["extra_faces"] == [str(out.parent / "extra")]  # what it distilled from, as extra.dirs named it


def test_quick_build_distils_from_extra_faces_and_filters_test_people(quick_build):
    out, _, _ = quick_build
    extra = json.loads((out / "report.json").read_text())["data"]["extra"]
    assert extra["found"] == 9 and extra["kind"] == "chips"
    assert extra["too_close_to_test"] >= 1  # Aaron_Tippin is a peopleDevTest person
    assert extra["used"] == 9 - extra["too_close_to_test"] > 0
    assert "Extra faces (no identities" in (out / "report.md").read_text()


def test_quick_build_with_people_folders_the_identity_term_and_an_assistant(quick_build, lfw_dir, tmp_path):
    """Extra faces from a folder of chips and a folder of people's photos (one folder per person,
    as Pins), the identity term on, the released esp32s3 model as teaching assistant (its own
    80x80 crops of every training row): the build runs end to end, each folder is cut by its
    kind, the people folders' faces have identities, a folder named after a test person is
    dropped by name, and the report says what the assistant is and how it scores. A re-run
    takes the assistant's embeddings from their cache and retrains nothing."""
    from tinyface import config
    from tinyface.cli.build import QUICK
    from tinyface.config import load_preset as get_preset
    from tinyface.train import pipeline

    people = tmp_path / "people"
    for name in ("Aaron_Peirsol", "Abdullah", "AJ_Lamas"):  # AJ_Lamas is a peopleDevTest person
        folder = people / f"pins_{name.replace('_', ' ')}"
        folder.mkdir(parents=True)
        for photo in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:3]:
            (folder / photo.name).write_bytes(photo.read_bytes())
    extra = {"dirs": [str(quick_build[0].parent / "extra"), str(people)], "kind": ["chips", "photos"],
             "people": [False, True]}
    settings = config.load(None, {**QUICK, "data": {"dir": str(lfw_dir)}, "extra": extra,
                                  # 2 epochs: that it trains so, not how well, is what this checks
                                  "distill": {**QUICK["distill"], "epochs": 2, "identity_weight": 0.1,
                                              "assistant": "esp32s3"},
                                  "quantize": {**QUICK["quantize"], "qat": False}},  # QAT: the quick build's
                           base=get_preset("esp32").settings())
    result = pipeline.run_build(settings, get_preset("esp32"), tmp_path / "run", quick=True)
    counts = json.loads((tmp_path / "run" / "report.json").read_text())["data"]["extra"]
    assert counts["kind"] == "chips/photos" and counts["named_after_held_out_person"] == 1
    assert counts["found"] == 9 + 3 + 3 + 1 and counts["people"] == 2
    report = (tmp_path / "run" / "report.md").read_text()
    assert "1 in a folder named after a validation or test person" in report
    assert "(2 people in people folders)" in report
    assert (tmp_path / "run" / "model.tflite").is_file()
    assert {s.name for s in result.stages} >= {"assistant", "distill", "prune", "quantize", "evaluate"}
    helper = json.loads((tmp_path / "run" / "report.json").read_text())["data"]["assistant"]
    assert helper["model"] == "esp32s3" and helper["input_shape"] == [1, 80, 80, 1] and helper["weight"] == 0.5
    assert 0.5 < helper["val_pairs_accuracy"] <= 1 and 0.3 < helper["cosine_to_teacher_train"] < 1
    assert "Teaching assistant: `esp32s3`" in report
    card = (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert "teaching assistant" in card
    assert "extra faces for distillation (2 people in people folders, the rest without identities)" in card
    events = []
    again = pipeline.run_build(settings, get_preset("esp32"), tmp_path / "run", quick=True,
                               report_progress=lambda event, info: events.append((event, info)))
    assert ("done", {"name": "assistant", "cached": True}) in events
    assert [s.name for s in again.stages if s.skipped] == ["distill", "prune", "quantize", "evaluate"]


def test_a_training_seed_retrains_on_the_same_people(quick_build, lfw_dir, monkeypatch, tmp_path):
    """distill.seed=5 trains other weights on the same training and validation people (data.seed
    draws them). Run in-process on a copy of the quick build, stopped once distillation is done:
    that -1, the default, keeps every stage is test_rerun_skips_unchanged_stages's."""
    import shutil

    from tinyface.model.keras_io import load_keras
    from tinyface.train import pipeline
    from tinyface.train.stages_eval import validation_accuracy, validation_pairs

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    student_before = load_keras(out / "distill" / "student.keras").get_weights()
    seen = {}

    class Distilled(Exception):
        pass

    def stop(stages, settings, data, *args, **kwargs):
        seen["data"] = data
        raise Distilled

    monkeypatch.setattr(pipeline, "_prune", stop)
    with pytest.raises(Distilled):
        pipeline.run_build(*_quick_settings(quick_build, lfw_dir, distill={"seed": 5}), out, quick=True)
    student_after = load_keras(out / "distill" / "student.keras").get_weights()
    assert any((a != b).any() for a, b in zip(student_before, student_after, strict=True)), \
        "another training seed must train other weights"
    # the same validation people and pairs: the teacher, which no training touches, scores them as the
    # quick build's evaluation did
    val = seen["data"].val
    teacher = json.loads((out / "report.json").read_text())["stages"]["teacher"]["validation"]
    assert validation_accuracy(val.teacher, val.labels) == teacher["accuracy"]
    assert len(validation_pairs(val.labels)[0]) == teacher["n_pairs"]


def test_a_negative_training_seed_is_one_line_before_any_work(tmp_path):
    proc = run_cli("build", "--quick", "--out", str(tmp_path / "run"), "--set", "distill.seed=-3")
    assert proc.returncode != 0 and "distill.seed must be >= 0, or -1 for data.seed" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_a_build_without_pruning_quantizes_the_distilled_model(quick_build, lfw_dir, tmp_path):
    """prune.enabled = false, in a folder a pruned build left: the distilled model is what gets
    quantized and reported, and the earlier pruned model is no stage of this build."""
    import shutil

    from tinyface.errors import ModelError
    from tinyface.model.bundle import model_file_meta

    out = tmp_path / "run"
    shutil.copytree(quick_build[0], out)
    proc = run_cli("build", "--quick", "--data", str(lfw_dir), "--out", str(out), "--json",
                   "--set", "prune.enabled=false", "--set", extra_dirs(quick_build[0]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    stages = {s["name"]: s["reused"] for s in summary["stages"]}
    assert stages == {"data": False, "distill": True, "quantize": False, "evaluate": False, "report": False}
    assert "prune.enabled = false: the distilled model is quantized" in proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert list(report["stages"]) == [s for s in STAGES if s != "pruned"]
    assert report["settings"]["prune"]["enabled"] is False
    # the int8 model holds the distilled weights: as dense as the float student's, not half zeros
    from tinyface.model.keras_io import load_keras
    from tinyface.train.prune import overall_sparsity

    float_sparsity = overall_sparsity(load_keras(out / "distill" / "student.keras"))
    pruned_sparsity = json.loads((quick_build[0] / "report.json").read_text())["stages"]["pruned"]["sparsity_overall"]
    assert float_sparsity < 0.05 < pruned_sparsity
    choice = json.loads((out / "quantize" / "choice.json").read_text())
    assert set(choice["val_accuracy"]) == {"ptq", "qat"}
    assert (out / "model.tflite").read_bytes() != (quick_build[0] / "model.tflite").read_bytes()
    # the model's record names the stages this build made, and the pruned model left is none of them
    meta = json.loads((out / "model.json").read_text())
    assert set(meta["extra"]["stages"]) == {"distill", "quantize", "evaluate"}
    with pytest.raises(ModelError):
        model_file_meta(out / "prune" / "pruned.keras")
    text = (out / "report.md").read_text()
    assert "student pruned" not in text and "Overall sparsity" not in text
    assert "\n- pruning: off\n" in (out / "MODEL_CARD.md").read_text()
