"""`tinyface evaluate` on a stage file of a build run (build/X/quantize/float.tflite): judged at
the thresholds that build chose for that stage (evaluate/metrics.json), never at one chosen on the
pairs it scores, unless none is recorded for it, and then it says so."""

import json
import shutil

import pytest

from tinyface.errors import ModelError
from tinyface.evaluation.model_eval import evaluate_model, load_model, stage_thresholds
from tinyface.model.bundle import model_file_meta

VALIDATION_WORDS = "pairs of validation people (training-set people the student never trained on)"
# what tinyface.train.stages_eval writes per stage, reduced to the thresholds read here
THRESHOLDS = {"tflite_float": (0.41, 0.61), "tflite_int8": (0.42, 0.62), "tflm_int8": (0.43, 0.63)}


def _metrics() -> dict:
    return {"preset": "tiny", "threshold_from": VALIDATION_WORDS, "threshold_source": "validation",
            "stages": {name: {"verification": {"threshold": v, "validation_threshold": v, "protocol_threshold": 0.3},
                              "identification": {"threshold": i}, "validation": {"threshold": v}}
                       for name, (v, i) in THRESHOLDS.items()}}


@pytest.fixture
def run(tiny_bundle, tmp_path):
    """A build run folder as `tinyface build` leaves it: the bundle (model.json recording its
    stages' fingerprints), quantize/ with its models, evaluate/metrics.json."""
    folder = tmp_path / "run"
    shutil.copytree(tiny_bundle.model_path.parent, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["extra"] = {"stages": {"quantize": "fp-q", "evaluate": "fp-e"}}
    (folder / "model.json").write_text(json.dumps(meta))
    for stage, fp in (("quantize", "fp-q"), ("evaluate", "fp-e")):
        (folder / stage).mkdir()
        (folder / stage / "stage.json").write_text(json.dumps({"stage": stage, "fingerprint": fp}))
    flat = tiny_bundle.model_bytes
    for name in ("float.tflite", "int8.tflite", "int8_ptq.tflite"):  # PTQ chosen: int8_ptq is int8's copy
        (folder / "quantize" / name).write_bytes(flat)
    (folder / "quantize" / "int8_qat.tflite").write_bytes(flat + b"\0")  # the candidate not chosen
    (folder / "evaluate" / "metrics.json").write_text(json.dumps(_metrics()))
    return folder


@pytest.mark.parametrize("name, runtime, stage", [("float.tflite", "auto", "tflite_float"),
                                                  ("int8.tflite", "auto", "tflite_int8"),
                                                  ("int8.tflite", "tflm", "tflm_int8"),
                                                  ("int8_ptq.tflite", "tflm", "tflm_int8")])
def test_a_stage_file_takes_the_thresholds_its_build_chose_for_that_stage(run, name, runtime, stage):
    model = load_model(run / "quantize" / name, runtime)
    assert (model.threshold, model.identify_threshold) == pytest.approx(THRESHOLDS[stage])
    assert stage in model.threshold_source and "metrics.json" in model.threshold_source
    assert VALIDATION_WORDS in model.threshold_source


def test_evaluate_scores_a_stage_file_at_its_stage_threshold_and_says_where_it_came_from(run, make_dataset,
                                                                                        tmp_path):
    from tinyface.data.cache import FaceCache

    data = make_dataset({"Colin_Powell": 4, "Tony_Blair": 4, "Hugo_Chavez": 3})
    model = load_model(run / "quantize" / "float.tflite")
    with FaceCache(tmp_path / "cache") as cache:
        result = evaluate_model(model, data, cache, enroll_images=2, workers=1)
    assert result["threshold"] == pytest.approx(THRESHOLDS["tflite_float"][0])
    assert "optimistic" not in result["threshold_source"] and "tflite_float" in result["threshold_source"]
    assert result["verification"]["threshold"] == pytest.approx(THRESHOLDS["tflite_float"][0])
    assert result["identification"]["threshold"] == pytest.approx(THRESHOLDS["tflite_float"][1])


def _why_none(run, name="float.tflite", runtime="tflite") -> str:
    recorded = stage_thresholds(model_file_meta(run / "quantize" / name), runtime)
    assert recorded.verification is None and recorded.identification is None
    return recorded.words


def test_no_recorded_threshold_leaves_the_optimistic_one_saying_why(run):
    assert "did not score quantize/int8_qat.tflite" in _why_none(run, "int8_qat.tflite")
    # an evaluation another build made (stopped before writing its model.json) is not this file's
    (run / "evaluate" / "stage.json").write_text(json.dumps({"stage": "evaluate", "fingerprint": "fp-later"}))
    assert "evaluate is not the one" in _why_none(run)
    (run / "evaluate" / "stage.json").unlink()  # an evaluation stopped half-way
    assert "evaluate is not the one" in _why_none(run)
    shutil.rmtree(run / "evaluate")
    assert "has not evaluated" in _why_none(run)
    model = load_model(run / "quantize" / "float.tflite")
    assert model.threshold is None and "has not evaluated" in model.threshold_source


def test_a_model_json_without_stage_fingerprints_cannot_vouch_for_metrics_json(run):
    meta = json.loads((run / "model.json").read_text())
    meta["extra"] = {}
    (run / "model.json").write_text(json.dumps(meta))
    assert "records no stage fingerprints" in _why_none(run)


def test_the_bundle_itself_keeps_its_shipped_thresholds(run):
    model = load_model(run)
    assert model.threshold == pytest.approx(0.5) and "shipped" in model.threshold_source


def test_a_corrupt_metrics_json_is_a_model_error_naming_it(run):
    (run / "evaluate" / "metrics.json").write_text("{not json")
    with pytest.raises(ModelError, match="bad .*metrics.json"):
        load_model(run / "quantize" / "float.tflite")
    metrics = _metrics()
    metrics["stages"]["tflite_float"]["verification"]["threshold"] = "high"
    (run / "evaluate" / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ModelError, match="not a cosine similarity"):
        load_model(run / "quantize" / "float.tflite")


def test_an_evaluation_of_lfw_training_people_says_its_figures_are_optimistic(tiny_bundle, make_dataset, tmp_path):
    """Scored on LFW (its people lists beside the images), the people of peopleDevTrain.txt, on
    whom every tinyface build trains, are counted and the figures called optimistic, with the
    held-out pairs to use; on a folder without LFW's lists nothing is said."""
    from tinyface.data.cache import FaceCache
    from tinyface.evaluation.report import training_people_note, write_evaluation_report

    people = {"Colin_Powell": 3, "Tony_Blair": 3, "Abdullah_Gul": 3, "Adrien_Brody": 3}  # two train, two test
    lfw_like = make_dataset(people, name="lfw", protocol=True)
    own = make_dataset(people, name="own")
    model = load_model(tiny_bundle.model_path)
    with FaceCache(tmp_path / "cache") as cache:
        scored = evaluate_model(model, lfw_like, cache, enroll_images=2, workers=1)
        plain = evaluate_model(model, own, cache, enroll_images=2, workers=1)
    assert scored["training_people"] == {"list": str(lfw_like / "peopleDevTrain.txt"), "in_pairs": 2,
                                         "pairs_people": 4, "in_identification": 2, "identification_people": 4}
    note = training_people_note(scored)
    assert note.startswith("2 of the 4 people in these pairs are LFW training people") and "optimistic" in note
    assert f"--pairs {lfw_like / 'pairsDevTest.txt'}" in note
    write_evaluation_report(tmp_path / "report", scored)
    assert f"Note: {note}." in (tmp_path / "report" / "report.md").read_text()
    assert plain["training_people"] is None and training_people_note(plain) is None
    # pairs of held-out people only: identification still scores the training people, and says so
    held_out = {**scored, "training_people": {**scored["training_people"], "in_pairs": 0}}
    assert "in identification are LFW training people" in training_people_note(held_out)


def test_an_evaluation_on_the_folder_a_model_was_built_from_counts_its_training_people(tiny_bundle, make_dataset,
                                                                                        tmp_path):
    """A build records a digest of the people it split (model.json extra.split.people): `evaluate` on
    a folder of the same people counts the model's training and validation people and calls the
    figures optimistic; on a folder of other people (one more, here) it says nothing. Was: nothing,
    on any folder but LFW."""
    import shutil

    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import load_dataset
    from tinyface.data.splits import people_fingerprint, train_val_test
    from tinyface.evaluation.report import training_people_note

    people = {"Colin_Powell": 3, "Tony_Blair": 3, "Abdullah_Gul": 3, "Adrien_Brody": 3}
    own = make_dataset(people, name="own")
    more = make_dataset({**people, "Ann_Veneman": 3}, name="more")
    split = train_val_test(load_dataset(own), 0.1, 0)
    trained = {im.identity for im in (*split.train, *split.val)}
    assert 0 < len(trained) < len(people)
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.model_path.parent, bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["extra"]["split"] = {"seed": 0, "val_fraction": 0.1, "test_filter": 0.25,
                              "people": people_fingerprint(load_dataset(own))}
    (bundle / "model.json").write_text(json.dumps(meta))
    model = load_model(bundle)
    with FaceCache(tmp_path / "cache") as cache:
        scored = evaluate_model(model, own, cache, enroll_images=2, workers=1)
        other = evaluate_model(model, more, cache, enroll_images=2, workers=1)
    assert scored["training_people"]["list"] is None
    assert scored["training_people"]["in_pairs"] == len(trained) and scored["training_people"]["pairs_people"] == 4
    note = training_people_note(scored)
    assert note.startswith(f"{len(trained)} of the 4 people in these pairs are people this model's build trained on")
    assert "optimistic" in note
    assert other["training_people"] is None and training_people_note(other) is None
