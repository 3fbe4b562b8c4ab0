"""benchmarks/compare_runs.py: paired comparison of two models on the same validation pairs (its
functions live in benchmarks/_lib.py, which whiten.py and mirror_enroll.py share)."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from tinyface.errors import DataError
from tinyface.evaluation import metrics

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("benchmarks_lib", REPO / "benchmarks" / "_lib.py")
lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lib)


def _pairs(n=400, separation=1.5, seed=0, people=40):
    """Scores and same flags of ``n`` pairs, and each pair's two people (same pairs: one person)."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    a = rng.integers(0, people, n)
    b = np.where(same, a, (a + rng.integers(1, people, n)) % people)
    return rng.normal(0, 1, n) + separation * same, same, a, b


def test_best_accuracy_is_the_accuracy_at_the_best_threshold_ties_included():
    for seed in range(5):
        scores, same, _, _ = _pairs(seed=seed)
        scores = np.round(scores, 1)  # many ties
        expected = np.mean((scores >= metrics.best_threshold(scores, same)) == same)
        assert metrics.best_accuracy(scores, same) == expected


def test_auc_matches_the_roc_curve_and_counts_ties_half():
    scores, same, _, _ = _pairs(seed=1)
    fpr, tpr = metrics.roc_curve(scores, same)
    assert abs(lib.roc_auc(scores, same) - metrics.auc(fpr, tpr)) < 1e-12
    assert lib.roc_auc(np.zeros(10), np.arange(10) % 2 == 0) == 0.5


def test_weights_count_as_repeated_pairs():
    scores, same, _, _ = _pairs(n=200, seed=4)
    scores = np.round(scores, 1)
    w = np.random.default_rng(5).integers(0, 4, len(scores))
    rows = np.repeat(np.arange(len(scores)), w)
    assert np.isclose(metrics.best_accuracy(scores, same, w), metrics.best_accuracy(scores[rows], same[rows]))
    assert np.isclose(lib.roc_auc(scores, same, w), lib.roc_auc(scores[rows], same[rows]))


def test_mcnemar_exact_p():
    assert lib.mcnemar_p(0, 0) == 1.0
    assert lib.mcnemar_p(5, 5) == 1.0
    assert lib.mcnemar_p(10, 0) == lib.mcnemar_p(0, 10) == 2 / 1024
    assert 0.05 < lib.mcnemar_p(12, 6) < 0.5
    # thousands of discordant pairs (a large selection set): no float overflow, sane values
    assert lib.mcnemar_p(1500, 1500) == 1.0 and lib.mcnemar_p(1400, 1600) < 0.001


def test_a_model_against_itself_is_within_the_noise_and_a_much_better_one_is_not():
    scores, same, a, b = _pairs(n=600, separation=1.0, seed=2)
    itself = lib.compare(scores, scores.copy(), same, a, b, draws=200)
    assert itself["difference"] == 0 and itself["mcnemar_p"] == 1.0
    assert itself["accuracy_interval"] == (0.0, 0.0) and itself["auc_interval"] == (0.0, 0.0)
    better = scores + 2.0 * same  # the same pairs, separated much more
    c = lib.compare(scores, better, same, a, b, draws=200)
    assert c["difference"] > 0.1 and c["only_this_right"] > c["only_reference_right"] and c["mcnemar_p"] < 1e-6
    assert c["accuracy_interval"][0] > 0 and c["auc_interval"][0] > 0
    slightly = scores + 0.02 * np.random.default_rng(3).normal(size=len(scores))  # noise, no gain
    lo, hi = lib.compare(scores, slightly, same, a, b, draws=200)["accuracy_interval"]
    assert lo <= 0 <= hi


def test_few_people_behind_many_pairs_widen_the_interval():
    """The same pairs and scores: spread over a person each, or 4 people behind all of them. The
    people bootstrap finds the second far less certain, as drawing pairs again would not."""
    scores, same, _, _ = _pairs(n=800, separation=1.0, seed=6)
    other = scores + np.random.default_rng(7).normal(0, 0.5, len(scores))
    i = np.arange(len(scores))
    many = (2 * i, np.where(same, 2 * i, 2 * i + 1))  # every pair its own people
    few = (i % 4, np.where(same, i % 4, (i + 1) % 4))  # 800 pairs of 4 people
    wide = lib.paired_intervals(scores, other, same, *few, draws=300)["accuracy"]
    narrow = lib.paired_intervals(scores, other, same, *many, draws=300)["accuracy"]
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


def _people_folder(lfw_dir: Path, folder: Path) -> Path:
    """A folder-per-person set of 3 LFW training people (peopleDevTrain) with 3 photos each, plus a
    photo with no face."""
    import shutil

    from PIL import Image

    for name in ("Aaron_Peirsol", "Abdullah", "Alejandro_Toledo"):
        (folder / name).mkdir(parents=True)
        for photo in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:3]:
            shutil.copy(photo, folder / name / photo.name)
    Image.new("RGB", (120, 120), (128, 128, 128)).save(folder / "Alejandro_Toledo" / "blank.jpg")
    return folder


def test_people_folder_pairs_with_the_teacher_first(lfw_dir, tmp_path):
    import shutil
    import subprocess
    import sys

    people = _people_folder(lfw_dir, tmp_path / "people")
    copy = shutil.copytree(REPO / "models" / "esp32", tmp_path / "copy")  # the same model, another bundle
    run = [sys.executable, str(REPO / "benchmarks" / "compare_runs.py"), "--preset", "esp32",
           "--model", str(REPO / "models" / "esp32"), "--model", str(copy)]
    proc = subprocess.run([*run, "--people", str(people), "--same", "6"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "12 pairs of" in out and "(1 photos without a detected face left out)" in out and "3 people" in out
    assert "teacher (dlib ResNet): pairs" in out
    assert "+0.00 points, 95% +0.00 to +0.00" in out  # a model against itself
    missing = subprocess.run([*run, "--people", str(tmp_path / "nowhere")], capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 2 and "no such folder" in missing.stderr and "Traceback" not in missing.stderr
    twice = subprocess.run([*run[:-2], "--model", run[-3]], capture_output=True, text=True, timeout=300)
    assert twice.returncode == 2 and "given twice" in twice.stderr
    # a selection set that holds a test person (peopleDevTest's AJ_Lamas) is refused before any face is cut
    shutil.copytree(lfw_dir / "images" / "AJ_Lamas", people / "AJ_Lamas")
    held_out = subprocess.run([*run, "--people", str(people)], capture_output=True, text=True, timeout=300)
    assert held_out.returncode == DataError.exit_code and "Traceback" not in held_out.stderr  # was a plain 1
    assert held_out.stderr.strip().splitlines() == [
        f"compare_runs.py: error: {people}: 1 of its people are LFW test people (peopleDevTest.txt), e.g. AJ_Lamas: "
        "a selection set must not hold the held-out test's people"]
    meta = json.loads((copy / "model.json").read_text())  # a bundle that distilled from these people
    meta["extra"]["extra_faces"] = ["fairface", str(people.parent)]
    (copy / "model.json").write_text(json.dumps(meta))
    seen = subprocess.run([*run, "--people", str(people)], capture_output=True, text=True, timeout=300)
    assert seen.returncode == 2 and f"{copy} distilled from it (extra faces {people.parent})" in seen.stderr
    assert "Traceback" not in seen.stderr


def test_a_set_is_refused_only_to_the_models_that_distilled_from_it(tmp_path, monkeypatch):
    from tinyface.model.bundle import load_bundle

    monkeypatch.setenv("TINYFACE_DATASETS", str(tmp_path / "datasets"))
    celeba = tmp_path / "datasets" / "celeba" / "images"
    celeba.mkdir(parents=True)
    bundle = load_bundle(REPO / "models" / "esp32")
    assert lib.distilled_from(bundle, celeba) == []  # built before the field: nothing recorded
    bundle.meta.extra["extra_faces"] = ["fairface", "celeba"]  # a fetchable name: its default place
    assert lib.distilled_from(bundle, celeba) == ["celeba"]
    assert lib.distilled_from(bundle, celeba.parent) == ["celeba"]
    assert lib.distilled_from(bundle, tmp_path / "datasets" / "pins") == []
    bundle.meta.extra["extra_faces"] = [str(celeba / "7")]  # one person's folder of the set: also seen
    assert lib.distilled_from(bundle, celeba) == [str(celeba / "7")]
