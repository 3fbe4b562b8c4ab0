"""`tinyface evaluate` (tinyface/cli/evaluate.py): the released model on a small folder-per-person
dataset of real LFW photos, in TFLite and in TFLM, with the report; and its one-line errors. (The
report's files themselves: tests/evaluation/test_report.py.)"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import RELEASED, run_cli as conftest_run_cli

PEOPLE = {"Colin_Powell": 8, "Tony_Blair": 8, "Donald_Rumsfeld": 8, "Gerhard_Schroeder": 8, "Ariel_Sharon": 3,
          "Hugo_Chavez": 3}


def run_cli(*args):
    return conftest_run_cli(*args, env={"TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)


@pytest.fixture
def people(make_dataset):
    return make_dataset(PEOPLE, name="people")


@pytest.mark.usefixtures("released_model")
@pytest.mark.parametrize("runtime", ["tflite", "tflm"])
def test_evaluate_released_model_on_own_people(people, tmp_path, runtime):
    out = tmp_path / "report"
    proc = run_cli("evaluate", "--model", str(RELEASED), "--data", str(people), "--enroll", "4", "--runtime", runtime,
                   "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["images"] == sum(PEOPLE.values()) and result["n_people"] == len(PEOPLE)
    assert result["runtime"] == runtime
    n = sum(PEOPLE.values())
    v = result["verification"]
    assert v["n_pairs"] == n * (n - 1) // 2 and 0.5 < v["auc"] <= 1.0
    assert "shipped threshold" in result["threshold_source"]
    assert v["balanced_accuracy"] == pytest.approx((v["true_accept_rate"] + 1 - v["false_accept_rate"]) / 2)
    i = result["identification"]
    # 4 people have more than 4 images: a quarter of them (1) is held out as a stranger, 3 are
    # enrolled; the 2 with 3 images are strangers too
    assert i["n_people"] == 3 and i["n_probes"] == 3 * 4 and i["n_strangers"] == 6 + 8
    assert i["stranger_people"] == 3 and len(i["held_out_people"]) == 1
    assert 0.0 <= i["accuracy"] <= i["closed_set_accuracy"] <= 1.0
    for name in ("report.md", "report.json", "roc.png", "scores.png", "confusion.png", "identification.png"):
        assert (out / name).is_file()
    assert "![identification by threshold](identification.png)" in (out / "report.md").read_text()
    # what each threshold trades, by the device's galleries: in report.json, not in --json's summary
    assert "identification_curve" not in result
    curve = json.loads((out / "report.json").read_text())["identification_curve"]
    assert len(curve["thresholds"]) == len(curve["accuracy"]) == len(curve["stranger_false_accept_rate"]) == 200
    assert curve["accuracy"] == sorted(curve["accuracy"], reverse=True)
    assert curve["stranger_false_accept_rate"][0] == 1.0 and curve["stranger_false_accept_rate"][-1] < 1.0


def test_evaluate_missing_model_is_one_line(people, tmp_path):
    proc = run_cli("evaluate", "--model", str(tmp_path / "nope"), "--data", str(people))
    assert proc.returncode == 6 and "model not found" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_evaluate_rejects_a_file_that_is_not_a_model(people, tmp_path):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"not a flatbuffer at all")
    proc = run_cli("evaluate", "--model", str(bogus), "--data", str(people))
    assert proc.returncode == 6 and "Traceback" not in proc.stderr, proc.stderr


# Training people (peopleDevTrain.txt): 6 with 8 photos, 4 with 3
OWN_PEOPLE = {"Colin_Powell": 8, "Tony_Blair": 8, "Ariel_Sharon": 8, "Hugo_Chavez": 8, "Jean_Chretien": 8,
              "Serena_Williams": 8, "Al_Gore": 3, "Bob_Hope": 3, "Yao_Ming": 3, "Kevin_Costner": 3}


@pytest.mark.usefixtures("released_model")
def test_evaluate_holds_strangers_out_and_reports_false_accepts_and_target_thresholds(make_dataset, tmp_path):
    data = make_dataset(OWN_PEOPLE, name="own")
    meta = json.loads((RELEASED / "model.json").read_text())
    results = {}
    for far in ("0.05", "0.001"):
        proc = run_cli("evaluate", "--model", str(RELEASED), "--data", str(data), "--enroll", "3", "--strangers", "0.5",
                       "--target-far", far, "--json")
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[far] = json.loads(proc.stdout)
    r = results["0.05"]
    i, v, t = r["identification"], r["verification"], r["target_far"]
    # half of the 6 people with enough photos are strangers, with the 4 who have too few
    assert i["n_people"] == 3 and len(i["held_out_people"]) == 3 and i["stranger_people"] == 7
    assert i["n_strangers"] == 3 * 8 + 4 * 3 and i["n_probes"] == 3 * 5
    assert not set(i["held_out_people"]) & set(i["people"] if "people" in i else [])
    # the false-accept rate is measured at the shipped identification threshold (model.json)
    assert i["threshold"] == pytest.approx(meta["identify_threshold"])
    assert 0.0 <= i["stranger_false_accept_rate"] <= 1.0
    # balanced accuracy, not the accuracy over all pairs (here ~85% of them are negative)
    assert v["n_negative"] / v["n_pairs"] > 0.8
    assert v["balanced_accuracy"] == pytest.approx((v["true_accept_rate"] + 1 - v["false_accept_rate"]) / 2)
    assert set(v["tar_at_far"]) == {"0.01", "0.001"}
    assert v["tar_at_far_measurable"] == {"0.01": True, "0.001": True}  # 1,500 different-person pairs
    # the thresholds for the target rate hold it on these people, and a stricter rate is stricter
    assert t["far"] == 0.05 and t["verification"]["false_accept_rate"] <= 0.05
    assert t["identification"]["stranger_false_accept_rate"] <= 0.05 and t["identification"]["measurable"]
    strict = results["0.001"]["target_far"]
    assert strict["verification"]["threshold"] >= t["verification"]["threshold"]
    assert strict["identification"]["threshold"] >= t["identification"]["threshold"]
    assert not strict["identification"]["measurable"]  # 36 stranger photos cannot measure 1 in 1000
    assert strict["identification"]["stranger_false_accept_rate"] == 0.0
    # the same seed holds the same people out; the printed summary says what was measured
    proc = run_cli("evaluate", "--model", str(RELEASED), "--data", str(data), "--enroll", "3", "--strangers", "0.5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "balanced accuracy" in proc.stdout and "false-accept rate" in proc.stdout and "for FAR 0.01" in proc.stdout
    own = run_cli("evaluate", "--model", str(RELEASED), "--data", str(data), "--enroll", "3", "--strangers", "0.5",
                  "--json")
    at = json.loads(own.stdout)["target_far"]["identification"]["threshold"]  # the default FAR, 0.01
    assert f"--set firmware.identify_threshold={at:.4f}`" in proc.stdout  # how to put it on a board
    # identification by a gallery of the device's size (16): the 3 enrolled people fit, so the same figures
    assert r["identify_gallery"] == 16
    assert i["device_gallery"] == {"gallery": 3, "draws": 1, "accuracy": i["accuracy"],
                                   "stranger_false_accept_rate": i["stranger_false_accept_rate"]}
    assert "by a gallery of 16 people (data.identify_gallery; the device holds up to 16): all 3 enrolled" in proc.stdout


def _evaluate_by_galleries_of_2(tmp_path, data, enroll: str, strangers: str):
    """`tinyface evaluate --json` of the released model with data.identify_gallery = 2: (its
    arguments without --json, the finished process)."""
    cfg = tmp_path / "gallery.toml"
    cfg.write_text("[data]\nidentify_gallery = 2\n")
    args = ("--config", str(cfg), "evaluate", "--model", str(RELEASED), "--data", str(data), "--enroll", enroll,
            "--strangers", strangers)
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return args, proc


@pytest.mark.usefixtures("released_model")
def test_evaluate_names_the_gallery_size_it_reports_identification_at(make_dataset, tmp_path):
    data = make_dataset(OWN_PEOPLE, name="own")
    args, proc = _evaluate_by_galleries_of_2(tmp_path, data, "3", "0.5")
    r = json.loads(proc.stdout)
    i = r["identification"]
    dg = i["device_gallery"]
    assert r["identify_gallery"] == 2 and (dg["gallery"], dg["draws"]) == (2, 100) and i["n_people"] == 3
    # two people to be mistaken for instead of three: no more strangers accepted than by all three
    assert dg["stranger_false_accept_rate"] <= i["stranger_false_accept_rate"]
    # the threshold for a target rate is the device gallery's too, so that it can be flashed as it is:
    # it holds the rate by galleries of 2, and it is no stricter than the one for all 3 enrolled
    t = r["target_far"]["identification"]
    assert (t["gallery"], t["draws"]) == (2, 100) and t["stranger_false_accept_rate"] <= r["target_far"]["far"]
    everyone = json.loads(run_cli("evaluate", "--model", str(RELEASED), "--data", str(data), "--enroll", "3",
                                  "--strangers", "0.5", "--json").stdout)["target_far"]["identification"]
    assert (everyone["gallery"], everyone["draws"]) == (3, 1) and t["threshold"] <= everyone["threshold"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "by a gallery of 2 people (data.identify_gallery; the device holds up to 16), mean of 100 random " \
           "galleries of 2 of the 3: accuracy" in proc.stdout
    assert "identification threshold" in proc.stdout and "(by galleries of 2, the mean of 100 draws: identifies" \
        in proc.stdout


@pytest.mark.usefixtures("released_model")
def test_evaluate_gives_no_figure_it_could_not_measure(make_dataset, tmp_path):
    """Two people, everyone enrolled: no stranger to reject and 9 different-person pairs. The
    stranger false-accept rate is not measured (null, and the text and report.md say so, not
    0.0%), TAR at FAR 1e-2 and 1e-3 carry measurable: false as the text's "not measurable" does,
    and the model is named by its path, not a bare model.tflite."""
    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="two")
    out = tmp_path / "report"
    args = ("evaluate", "--model", str(RELEASED), "--data", str(data), "--enroll", "2")
    proc = run_cli(*args, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for r in (json.loads(proc.stdout), json.loads((out / "report.json").read_text())):
        i, v = r["identification"], r["verification"]
        assert i["n_strangers"] == 0 and i["stranger_people"] == 0
        assert i["stranger_false_accept_rate"] is None and i["device_gallery"]["stranger_false_accept_rate"] is None
        assert v["n_negative"] == 9 and v["tar_at_far_measurable"] == {"0.01": False, "0.001": False}
        assert r["target_far"]["verification"]["measurable"] is False and "identification" not in r["target_far"]
        assert r["model"] == str(RELEASED / "model.tflite")
    report = (out / "report.md").read_text()
    assert "| strangers accepted (0 photos) | not measured (no strangers) |" in report
    assert "100.00% (not measurable with 9 different-person pairs)" in report
    assert f"# tinyface evaluation — {RELEASED / 'model.tflite'} (tflite)" in report
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "false-accept rate not measured (no strangers)" in proc.stdout and "of strangers" not in proc.stdout
    assert "FAR=0.001 100.0% (not measurable with 9 negative pairs)" in proc.stdout
    assert proc.stdout.startswith(f"{RELEASED / 'model.tflite'} (tflite) on {data}:")


@pytest.mark.usefixtures("released_model")
def test_evaluate_by_galleries_without_strangers_says_the_rate_is_not_measured(make_dataset, tmp_path):
    """--strangers 0: every one of 3 people enrolled, identification by galleries of 2 of them
    (data.identify_gallery): the galleries' stranger false-accept rate is not measured either."""
    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3, "Gerhard_Schroeder": 3}, name="three")
    args, proc = _evaluate_by_galleries_of_2(tmp_path, data, "2", "0")
    dg = json.loads(proc.stdout)["identification"]["device_gallery"]
    assert (dg["gallery"], dg["draws"]) == (2, 100) and dg["stranger_false_accept_rate"] is None
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout.splitlines() if "random galleries of 2 of the 3: accuracy" in ln)
    assert line.endswith("%  false-accept rate not measured (no strangers)"), line


def test_evaluate_out_that_cannot_be_created_fails_before_the_evaluation(make_dataset, tmp_path):
    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="two")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = tmp_path / "cache"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TINYFACE_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "evaluate", "--model", str(RELEASED),
                           "--data", str(data), "--out", str(blocker / "report")], capture_output=True, text=True,
                          env=env, timeout=600)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 14 and len(lines) == 1 and "cannot create --out" in lines[0], proc.stderr
    assert not cache.exists()  # no face was aligned: it stopped before the evaluation


def test_evaluate_binary_pairs_file_is_one_line(people, tmp_path):
    pairs = tmp_path / "pairs.bin"
    pairs.write_bytes(bytes(range(256)) * 4)
    proc = run_cli("evaluate", "--model", str(RELEASED), "--data", str(people), "--pairs", str(pairs))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 4 and len(lines) == 1 and "is not a text file" in lines[0], proc.stderr


@pytest.mark.usefixtures("released_model")
def test_evaluate_out_with_a_folder_in_the_place_of_a_report_file_fails_before_the_evaluation(make_dataset,
                                                                                              tmp_path):
    # was: the whole evaluation, then `internal error: IsADirectoryError` (exit 70) and nothing on stdout
    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="two")
    out = tmp_path / "o"
    (out / "report.json").mkdir(parents=True)
    cache = tmp_path / "cache"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TINYFACE_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "evaluate", "--model", str(RELEASED),
                           "--data", str(data), "--out", str(out), "--json"], capture_output=True, text=True,
                          env=env, timeout=600)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 14 and len(lines) == 1, proc.stderr
    assert f"{out / 'report.json'} is a folder" in lines[0] and "--out" in lines[0]
    assert json.loads(proc.stdout)["exit_code"] == 14
    assert not cache.exists()  # no face was aligned: it stopped before the evaluation


@pytest.mark.usefixtures("released_model")
@pytest.mark.parametrize("as_json", [True, False])
def test_evaluate_report_that_fails_at_the_end_keeps_the_results(make_dataset, tmp_path, capsys, monkeypatch,
                                                                 as_json):
    """A report that cannot be written after the evaluation (here its folder changes meanwhile, as
    another program could change it) fails the command (exit 14, one line) after the results
    are printed, not instead of them; with --json, inside the failure object (was: the success's
    document on stdout and exit 14, a failure a script reading stdout could not tell)."""
    from tests.conftest import run_in_process
    from tinyface.evaluation import model_eval

    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="two")
    out = tmp_path / "o"
    evaluate_model = model_eval.evaluate_model

    def and_then_a_folder_in_the_way(*args, **kwargs):
        result = evaluate_model(*args, **kwargs)  # the real evaluation
        (out / "report.md").mkdir()  # after the check of --out, before the report
        return result

    monkeypatch.setattr(model_eval, "evaluate_model", and_then_a_folder_in_the_way)
    code, stdout, stderr = run_in_process(capsys, "evaluate", "--model", RELEASED, "--data", data, "--runtime",
                                          "tflm", "--out", out, *(["--json"] if as_json else []))
    errors = [line for line in stderr.splitlines() if line.startswith("tinyface:")]
    assert code == 14 and len(errors) == 1, stderr
    assert "cannot write the report" in errors[0] and str(out / "report.md") in errors[0]
    assert f"the results are printed {'on stdout' if as_json else 'above'}" in errors[0]
    if as_json:  # the one JSON document on stdout: the failure, with the evaluation as its result
        reply = json.loads(stdout)
        assert set(reply) == {"error", "kind", "exit_code", "result"} and reply["exit_code"] == 14
        assert reply["error"] == errors[0].removeprefix("tinyface: error: ") and reply["result"]["images"] == 6
        assert "error" not in reply["result"] and "roc" not in reply["result"]["verification"]
    else:
        assert "verification (" in stdout and "report:" not in stdout


def test_a_pairs_file_that_is_missing_unreadable_or_a_folder_is_the_datasets_error(make_dataset, tmp_path):
    # was: click's "Invalid value for '--pairs': File '...' does not exist / is a directory / is not
    # readable" (exit 2), where the dataset's own --data is exit 4; a pairs file is part of the dataset
    from tests.conftest import assert_one_error_line, drop_file_permission_bypass

    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="two")
    locked = tmp_path / "locked.txt"
    locked.write_text("1\nColin_Powell 1 2\nColin_Powell 1 Tony_Blair 1\n")
    locked.chmod(0)
    prefix = drop_file_permission_bypass()
    cases = {tmp_path / "nope.txt": "LFW protocol file not found: ", tmp_path: "is a directory",
             locked: "permission denied"}
    try:
        for pairs, why in cases.items():
            # a model that is not there either: the pairs file is refused first, before any model is loaded
            proc = conftest_run_cli("evaluate", "--model", str(tmp_path / "no-model"), "--data", str(data),
                                    "--pairs", str(pairs), prefix=prefix, env={"TINYFACE_CACHE": str(tmp_path / "c")})
            line = assert_one_error_line(proc, 4, str(pairs), why, "--pairs takes an LFW-format pairs file")
            assert "Errno" not in line
    finally:
        locked.chmod(0o644)
    assert not (tmp_path / "c").exists()
    # given as "" it is a usage error, as --data "" is (was: click's "does not exist", exit 2 too)
    assert_one_error_line(conftest_run_cli("evaluate", "--model", str(RELEASED), "--data", str(data), "--pairs", ""),
                          2, "--pairs")


@pytest.mark.usefixtures("released_model")
def test_evaluate_shows_progress_while_it_embeds_and_scores_not_only_while_it_finds_faces(people, capsys,
                                                                                        monkeypatch):
    """Where stderr is no terminal (a log, `> out.txt 2>&1`), every step of the evaluation gets its
    plain progress lines. All of LFW in TFLM took 90 s after its cached faces, with no line until
    the last one, which called the whole run `faces: 13,233/13,233 (100%), 1 min 31 s elapsed`."""
    from tests.conftest import plain_progress_every, run_in_process

    # a line at every step and at each end (the CLI prints one every 10 s where stderr is no terminal)
    plain_progress_every(monkeypatch, 0)
    code, out, err = run_in_process(capsys, "evaluate", "--model", RELEASED, "--data", people, "--runtime", "tflm",
                                    "--json")
    assert code == 0, err
    json.loads(out)  # progress never reaches stdout
    n = sum(PEOPLE.values())
    lines = err.splitlines()
    steps = [next((k for k, line in enumerate(lines) if line.startswith(head)), None)
             for head in (f"faces: {n}/{n} (100%)", f"embeddings (tflm): {n}/{n} (100%)",
                          "scoring pairs and identification")]
    assert None not in steps and steps == sorted(steps), err


@pytest.mark.usefixtures("released_model")
def test_evaluate_names_every_file_it_left_out_as_data_stats_does(people):
    """A photo beside the person folders, a file that is no image, a broken link and a corrupt JPEG are
    all left out of the evaluation, and all named with their reasons, as `data stats` names them. Was:
    only the corrupt JPEG ("1 skipped"), while `data stats` listed 4; the others went unmentioned."""
    images = people / "images"
    photo = next((images / "Colin_Powell").glob("*.jpg"))
    (images / "Colin_Powell" / "notes.txt").write_text("who is who")
    (images / "Tony_Blair" / "gone.jpg").symlink_to(people / "nowhere.jpg")
    (images / "Hugo_Chavez" / "cut.jpg").write_bytes(photo.read_bytes()[:3000])
    (images / "whose.jpg").write_bytes(photo.read_bytes())
    proc = run_cli("evaluate", "--model", str(RELEASED), "--data", str(people), "--runtime", "tflm", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    skipped = {os.path.basename(s["path"]): s["reason"] for s in json.loads(proc.stdout)["skipped"]}
    stats = run_cli("data", "stats", "--data", str(people), "--json")
    assert stats.returncode == 0, stats.stderr[-2000:]
    assert skipped == {os.path.basename(s["path"]): s["reason"] for s in json.loads(stats.stdout)["skipped"]}
    assert set(skipped) == {"notes.txt", "gone.jpg", "cut.jpg", "whose.jpg"}
    assert skipped["whose.jpg"] == "image outside a person folder (whose photo is it?)"
    text = run_cli("evaluate", "--model", str(RELEASED), "--data", str(people), "--runtime", "tflm")
    assert f"{sum(PEOPLE.values())} images, {len(PEOPLE)} people, 4 skipped" in text.stdout
    # the text names them too (was: the count alone; only --json had the names)
    assert f"  skipped {images / 'whose.jpg'}: image outside a person folder (whose photo is it?)" in text.stdout
    assert sum(line.startswith("  skipped ") for line in text.stdout.splitlines()) == 4


def test_a_smoke_test_model_says_so_where_its_figures_are_printed(people, tmp_path):
    """A `build --quick` model (model.json extra.smoke_test) was said to be one by `flash` alone;
    evaluate printed its figures as any model's. Now a note line, and smoke_test in --json."""
    import shutil

    quick = shutil.copytree(RELEASED, tmp_path / "quick")
    meta = json.loads((quick / "model.json").read_text())
    meta["extra"]["smoke_test"] = True
    (quick / "model.json").write_text(json.dumps(meta))
    text = run_cli("evaluate", "--model", str(quick), "--data", str(people), "--runtime", "tflm",
                   "--out", str(tmp_path / "report"))
    assert text.returncode == 0, text.stderr[-2000:]
    assert "is a smoke-test model (`tinyface build --quick`)" in text.stdout.splitlines()[1]
    assert "> **SMOKE TEST (`tinyface build --quick`)" in (tmp_path / "report" / "report.md").read_text()
    shown = run_cli("evaluate", "--model", str(quick), "--data", str(people), "--runtime", "tflm", "--json")
    assert json.loads(shown.stdout)["smoke_test"] is True
    released = run_cli("evaluate", "--model", str(RELEASED), "--data", str(people), "--runtime", "tflm", "--json")
    assert json.loads(released.stdout)["smoke_test"] is False


def _contents(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _bundle_copy(folder):
    """A copy of the released bundle (model.tflite, model.json, MODEL_CARD.md), as a build's folder holds it."""
    import shutil

    return shutil.copytree(RELEASED, folder)


def _own_files(folder):
    folder.mkdir()
    (folder / "report.md").write_text("my own report")
    (folder / "confusion.png").write_bytes(b"my own picture")
    (folder / "other.txt").write_text("mine too")
    return folder


@pytest.mark.usefixtures("released_model")
@pytest.mark.parametrize("make", [_own_files, _bundle_copy])
def test_evaluate_out_refuses_a_folder_no_evaluation_wrote_before_the_evaluation(make_dataset, tmp_path, make):
    """`--out` a folder of the user's files, or the bundle folder that is also `--model` (`evaluate
    --model build/esp32 --out build/esp32`): refused in one line, exit 14, before any face is
    aligned, and nothing in it changes. Was: exit 0, report.md replaced and confusion.png deleted."""
    from tests.conftest import assert_one_error_line

    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="two")
    out = make(tmp_path / "folder")
    before = _contents(out)
    model = out if make is _bundle_copy else RELEASED
    proc = conftest_run_cli("evaluate", "--model", str(model), "--data", str(data), "--out", str(out),
                            env={"TINYFACE_CACHE": str(tmp_path / "cache")})
    assert_one_error_line(proc, 14, f"--out {out} ", "choose another --out")
    assert _contents(out) == before
    assert not (tmp_path / "cache").exists()  # no face was aligned: it stopped before the evaluation


@pytest.mark.usefixtures("released_model")
def test_evaluate_out_replaces_an_earlier_evaluations_report_and_keeps_the_rest(make_dataset, tmp_path):
    """An earlier evaluation's folder is evaluated into again: its report is replaced (its
    confusion.png goes where the new report has no identification), a file of the user's beside it
    stays, and report.json says it is an evaluation's."""
    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="two")
    out = tmp_path / "report"
    args = ("evaluate", "--model", str(RELEASED), "--data", str(data), "--out", str(out), "--json")
    proc = run_cli(*args, "--enroll", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "confusion.png").is_file()
    (out / "notes.txt").write_text("my notes on the first run")
    proc = run_cli(*args)  # --enroll 5: nobody enrolled, no identification
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.json", "report.md", "roc.png", "scores.png"]
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "tinyface evaluate" and report["identification"] is None


@pytest.mark.usefixtures("released_model")
@pytest.mark.parametrize("as_json", [True, False])
def test_evaluate_out_on_a_full_disk_keeps_the_earlier_report(make_dataset, tmp_path, capsys, monkeypatch, as_json):
    """No room for the new report (a file-size limit, `ulimit -f`, put on once the evaluation is done
    and the face cache closed: every write past it fails, as on a full disk): exit 14 in one line
    after the results, and the earlier report is as it was, with no temp file beside it. Was: its
    files were removed before the new ones failed to be written."""
    import resource

    from tests.conftest import run_in_process
    from tinyface.evaluation import report

    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="two")
    out = tmp_path / "report"
    args = ("evaluate", "--model", RELEASED, "--data", data, "--enroll", "2", "--out", out,
            *(["--json"] if as_json else []))
    code, _, stderr = run_in_process(capsys, *args)
    assert code == 0, stderr
    before = _contents(out)
    assert set(before) == {"report.json", "report.md", "roc.png", "scores.png", "confusion.png"}
    write_evaluation_report = report.write_evaluation_report

    def on_a_full_disk(*a, **kw):
        limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, limits[1]))  # Python ignores SIGXFSZ: writes fail, EFBIG
        try:
            return write_evaluation_report(*a, **kw)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)

    monkeypatch.setattr(report, "write_evaluation_report", on_a_full_disk)
    code, stdout, stderr = run_in_process(capsys, *args)
    errors = [line for line in stderr.splitlines() if line.startswith("tinyface:")]
    assert code == 14 and len(errors) == 1, stderr
    assert f"cannot write the report in {out}: " in errors[0] and "File too large" in errors[0]
    assert "any earlier report there is as it was" in errors[0] and "tinyface-tmp" not in errors[0]
    if as_json:  # the results all the same, in the failure object
        reply = json.loads(stdout)
        assert reply["exit_code"] == 14 and reply["result"]["images"] == 6
    else:
        assert "verification (" in stdout and "report:" not in stdout
    assert _contents(out) == before


def _pixelated(photo):
    """``photo`` (a real LFW photo) as a 10 x 10 mosaic at its size: no face a detector can find."""
    from PIL import Image

    with Image.open(photo) as im:
        im.resize((10, 10), Image.BILINEAR).resize(im.size, Image.NEAREST).save(photo)


@pytest.mark.usefixtures("released_model")
def test_evaluate_with_no_face_in_any_photo_fails_in_one_line(make_dataset, tmp_path):
    """Not one face found: each photo would be scored as its centered crop. Was: exit 0, "balanced
    accuracy 50.00%" and an AUC, with "6 without a detected face" the only hint."""
    from tests.conftest import assert_one_error_line

    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="blurred")
    for photo in (data / "images").glob("*/*.jpg"):
        _pixelated(photo)
    out = tmp_path / "report"
    proc = run_cli("evaluate", "--model", str(RELEASED), "--data", str(data), "--out", str(out))
    assert_one_error_line(proc, 15, "no face was found in any of the 6 images", "centered crop",
                          "tinyface data stats --align")
    assert proc.stdout == "" and not list(out.iterdir())


@pytest.mark.usefixtures("released_model")
def test_evaluate_says_photos_without_a_face_were_scored_as_centered_crops(make_dataset):
    data = make_dataset({"Colin_Powell": 3, "Tony_Blair": 3}, name="one-blurred")
    _pixelated(sorted((data / "images" / "Tony_Blair").glob("*.jpg"))[0])
    proc = run_cli("evaluate", "--model", str(RELEASED), "--data", str(data))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "6 images, 2 people, 0 skipped, 1 without a detected face (each scored as a centered crop)" in proc.stdout
