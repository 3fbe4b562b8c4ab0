"""tinyface.evaluation.report: validation.md and validation.json (what a `--hide-test` build shows)
give TFLM-against-TFLite parity on the validation images and pairs, and no figure of the test's; the
report and the model card name the dataset actually used (tinyface.train.pipeline.describe_dataset),
flag a `--quick` model as a smoke test wherever its accuracy is printed, and give both gallery sizes;
an evaluation's report (write_evaluation_report) replaces every file of an earlier one. (`tinyface
evaluate` itself: tests/cli/test_evaluate.py.)"""

import json
import shlex

import pytest

from tests.conftest import VALIDATION_PARITY, copy_people, parity_metrics, shown_test_parity
from tinyface import config
from tinyface.config import load, load_preset as get_preset
from tinyface.evaluation.report import reproduce_command
from tinyface.train.pipeline import _accuracy_fields, describe_dataset

pytestmark = pytest.mark.usefixtures("own_folder")


def test_validation_report_gives_the_validation_parity_and_no_test_parity(tmp_path):
    from tinyface.config import load_preset
    from tinyface.evaluation.report import write_validation_report

    md = write_validation_report(tmp_path, parity_metrics(), load_preset("esp32")).read_text()
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert saved["parity"] == VALIDATION_PARITY  # was: no parity at all
    assert "on the 222 validation images: largest output difference 1 LSB" in md and "99.90%" in md
    assert shown_test_parity(md) == [] and shown_test_parity(json.dumps(saved)) == []


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
    from tinyface.config import load_preset as get_preset
    from tinyface.evaluation.report import write_model_card, write_report

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


def _report_and_card(lfw_dir, tmp_path, tiny_bundle, device_gallery: dict | None,
                     validation_identification: dict | None) -> tuple[str, str]:
    """report.md and MODEL_CARD.md of every stage identified by ``device_gallery`` (None: as
    recorded) and, on validation people, ``validation_identification``."""
    from tinyface import config
    from tinyface.evaluation.report import write_model_card, write_report

    metrics = _metrics_of(describe_dataset(lfw_dir), False)
    for st in metrics.stages.values():
        if device_gallery is not None:
            st.identification["device_gallery"] = device_gallery
        st.validation.update({"auc": 0.9, "tar_at_far_1e-3": 0.4, "identification": validation_identification})
    preset = config.load_preset("esp32")
    settings = config.apply(config.Settings(), preset.settings(), "the preset")
    out = tmp_path / "run"
    out.mkdir()
    report = write_report(out, metrics, settings, preset).read_text()
    return report, write_model_card(out, metrics, settings, preset, tiny_bundle.meta).read_text()


def test_report_and_model_card_name_both_gallery_sizes(lfw_dir, tmp_path, tiny_bundle):
    report, card = _report_and_card(
        lfw_dir, tmp_path, tiny_bundle,
        {"gallery": 3, "draws": 100, "accuracy": 0.8125, "stranger_false_accept_rate": 0.0375},
        {"probe_accuracy": 0.7125, "stranger_rate": 0.05, "enrolled": 7, "gallery": 5, "draws": 100, "probes": 30,
         "strangers": 40, "probe_accuracy_all": 0.6875, "stranger_rate_all": 0.075})
    # the stage table: the full test gallery (4 people) and the device-size galleries (3 people)
    assert "ident. acc. (4 people)" in report and "stranger FAR (3 people)" in report
    assert "| 80.00% | 0.700 | 10.00% | 81.25% | 3.75% |" in report
    # the validation table: galleries of 5 (what the threshold is chosen for) and all 7
    assert "strangers accepted (5 people)" in report and "strangers accepted (7 people)" in report
    assert "| 71.25% | 5.00% | 68.75% | 7.50% |" in report
    assert "random galleries of 3 of the 4 enrolled people (100 draws)" in report
    assert "about 5% of strangers are accepted by a gallery of 5 people (fewer when fewer are enrolled)" in card
    assert "strangers accepted, random galleries of 3 of the 4 enrolled people (100 draws) | 3.75% |" in card


def test_a_device_gallery_that_holds_everyone_is_not_a_second_column(lfw_dir, tmp_path, tiny_bundle):
    # a small dataset (a --quick build, a folder of one's own people): the device's gallery holds every
    # enrolled person, and its columns repeated the whole gallery's under the same header
    report, card = _report_and_card(
        lfw_dir, tmp_path, tiny_bundle, {"gallery": 4, "draws": 1, "accuracy": 0.8, "stranger_false_accept_rate": 0.1},
        {"probe_accuracy": 0.7125, "stranger_rate": 0.05, "enrolled": 5, "gallery": 5, "draws": 1, "probes": 30,
         "strangers": 40, "probe_accuracy_all": 0.7125, "stranger_rate_all": 0.05})
    header = next(line for line in report.splitlines() if line.startswith("| stage | LFW pairsDevTest acc."))
    assert header.count("(4 people)") == 2 and header.count("|") == 14  # 13 columns, not 15
    assert "by the gallery of all 4 enrolled test people (a gallery the device can hold)" in report
    validation = next(line for line in report.splitlines() if line.startswith("| stage | pairs acc."))
    assert validation.count("(5 people)") == 2 and "|---|---|---|---|---|---|\n" in report
    assert "The last two columns" not in report
    assert "within the gallery size" not in report + card


def test_validation_people_too_few_to_identify_are_said_so_not_shown_as_question_marks(lfw_dir, tmp_path,
                                                                                        tiny_bundle):
    # a build from a folder of one's own people with 2 validation people: the table had
    # "identification (? people)" columns of dashes, and "? validation people can be enrolled"
    report, card = _report_and_card(lfw_dir, tmp_path, tiny_bundle, None, None)
    assert "| stage | pairs acc. | ROC AUC | TAR@FAR=1e-3 (every pair) |\n|---|---|---|---|\n" in report
    assert "?" not in report.split("### On validation people")[1].split("## ")[0]
    assert "too few validation people with enough photos to enroll some and keep others as strangers" in report
    assert "target 5% of strangers" not in report  # no threshold was chosen for one
    assert "chosen on validation people so that" not in card  # was said all the same
    assert "the verification threshold: too few validation people to choose one of its own on" in card


# --- an evaluation's report (`tinyface evaluate --out`) ---------------------------------------------------

def test_a_new_report_replaces_every_file_of_an_old_one(tmp_path):
    """An earlier report's files that the new one has none of go once it is written: a folder never
    mixes the two (a stale confusion matrix beside a report without identification)."""
    from tinyface.evaluation.report import write_evaluation_report

    out = tmp_path / "report"
    out.mkdir()
    for name in ("report.json", "report.md", "confusion.png", "identification.png"):
        (out / name).write_text("from an earlier run")
    result = {"model": "m", "runtime": "tflite", "data": "d", "images": 4, "n_people": 2, "skipped": [], "no_face": 0,
              "threshold": 0.5, "threshold_source": "given", "pairs": "every pair", "identification": None,
              "verification": {"roc": {"far": [0.0, 0.5, 1.0], "tar": [0.0, 0.9, 1.0]}, "auc": 0.9, "n_negative": 4,
                               "n_pairs": 6, "balanced_accuracy": 0.8, "true_accept_rate": 0.9,
                               "false_accept_rate": 0.3, "tar_at_far": {"0.01": 0.5, "0.001": 0.4}}}
    write_evaluation_report(out, result)
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "roc.png"]
    assert json.loads((out / "report.json").read_text())["model"] == "m"


def _evaluation_result() -> dict:
    return {"model": "m", "runtime": "tflite", "data": "d", "images": 4, "n_people": 2, "skipped": [], "no_face": 0,
            "threshold": 0.5, "threshold_source": "given", "pairs": "every pair", "identification": None,
            "verification": {"roc": {"far": [0.0, 0.5, 1.0], "tar": [0.0, 0.9, 1.0]}, "auc": 0.9, "n_negative": 4,
                             "n_pairs": 6, "balanced_accuracy": 0.8, "true_accept_rate": 0.9,
                             "false_accept_rate": 0.3, "tar_at_far": {"0.01": 0.5, "0.001": 0.4}}}


@pytest.mark.parametrize("name", ["report.json", "report.md", "roc.png", "confusion.png", "identification.png"])
def test_the_out_check_refuses_a_folder_in_the_place_of_any_report_file(tmp_path, name):
    """Was: only --out itself was checked, and the evaluation (minutes) ended in IsADirectoryError (exit 70)."""
    from tinyface.errors import OutputError
    from tinyface.evaluation.report import check_evaluation_out

    out = tmp_path / "report"
    (out / name).mkdir(parents=True)
    with pytest.raises(OutputError) as exc:
        check_evaluation_out(out)
    assert f"{out / name} is a folder" in exc.value.one_line() and "--out" in exc.value.one_line()
    assert check_evaluation_out(tmp_path / "new" / "report") == tmp_path / "new" / "report"  # made, as before


def test_a_report_that_cannot_be_written_is_an_output_error(tmp_path):
    """Whatever the check could not foresee (the folder changed during the evaluation): an
    OutputError (exit 14), not an internal error. Was: IsADirectoryError from removing the old report."""
    from tinyface.errors import OutputError
    from tinyface.evaluation.report import write_evaluation_report

    out = tmp_path / "report"
    (out / "report.json").mkdir(parents=True)
    with pytest.raises(OutputError) as exc:
        write_evaluation_report(out, _evaluation_result())
    assert exc.value.exit_code == 14 and str(out / "report.json") in str(exc.value)


def _identification(people: int = 3) -> dict:
    """An identification (tinyface.evaluation.metrics) of ``people`` made-up people, as a result's."""
    import numpy as np

    from tinyface.evaluation import metrics

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(people, 16))
    emb = np.concatenate([centres[k] + 0.3 * rng.normal(size=(4, 16)) for k in range(people)])
    enroll = {f"P{k}": [4 * k, 4 * k + 1] for k in range(people)}
    probes = [(4 * k + j, f"P{k}") for k in range(people) for j in (2, 3)]
    return metrics.identification(emb, enroll, probes, [], 0.5).to_dict(with_confusion=True)


def _contents(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _build_report_folder(folder, lfw_dir):
    """A build's report (write_report), as `tinyface build` leaves it beside its bundle."""
    from tinyface.evaluation.report import write_report

    preset = get_preset("esp32")
    folder.mkdir()
    write_report(folder, _metrics_of(describe_dataset(lfw_dir), False),
                 config.apply(config.Settings(), preset.settings(), "the preset"), preset)
    return folder


def _user_folder(folder, lfw_dir):
    folder.mkdir()
    (folder / "report.md").write_text("my own notes")
    (folder / "confusion.png").write_bytes(b"my own picture")
    (folder / "other.txt").write_text("mine too")
    return folder


@pytest.mark.parametrize("make", [_user_folder, _build_report_folder])
def test_the_out_check_refuses_a_folder_of_files_no_evaluation_wrote(tmp_path, lfw_dir, make):
    """Was: every folder passed, and the report then replaced the user's report.md and removed their
    confusion.png (or a build's report, `evaluate --out build/esp32`), exit 0. Refused now (exit 14),
    as `build --out` refuses a folder of other files, and nothing in it changes."""
    from tinyface.errors import OutputError
    from tinyface.evaluation.report import check_evaluation_out

    out = make(tmp_path / "folder", lfw_dir)
    before = _contents(out)
    with pytest.raises(OutputError) as exc:
        check_evaluation_out(out)
    line = exc.value.one_line()
    assert exc.value.exit_code == 14 and f"--out {out} " in line and "choose another --out" in line
    assert ("build" in line) == (make is _build_report_folder)
    assert "report.md" in line  # what is there, named
    assert _contents(out) == before


@pytest.mark.parametrize("report", ["not json", "[]", json.dumps({"kind": "someone else's"})])
def test_the_out_check_refuses_a_report_json_that_is_no_evaluations(tmp_path, report):
    from tinyface.errors import OutputError
    from tinyface.evaluation.report import check_evaluation_out

    out = tmp_path / "folder"
    out.mkdir()
    (out / "report.json").write_text(report)
    with pytest.raises(OutputError):
        check_evaluation_out(out)
    assert (out / "report.json").read_text() == report


def test_the_out_check_accepts_a_new_or_empty_folder_and_an_earlier_evaluations_old_or_new(tmp_path):
    """An evaluation's folder is known by its report.json: its ``kind`` (written since), or for a report
    written before, the keys every evaluation's report has had. A temp file a killed run left is no
    file of the user's."""
    from tinyface.evaluation.report import EVALUATION_KIND, check_evaluation_out, write_evaluation_report

    assert check_evaluation_out(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_evaluation_out(tmp_path / "empty")
    leftover = tmp_path / "left" / ".report.md.tinyface-tmp-abcd1234.tmp"
    leftover.parent.mkdir()
    leftover.write_text("half a report")
    check_evaluation_out(leftover.parent)
    earlier = tmp_path / "earlier"
    write_evaluation_report(earlier, _evaluation_result())
    (earlier / "notes.txt").write_text("beside the report: left as it is")
    assert json.loads((earlier / "report.json").read_text())["kind"] == EVALUATION_KIND
    check_evaluation_out(earlier)
    report = json.loads((earlier / "report.json").read_text())
    del report["kind"]  # as written before there was one, and before "people" was named n_people
    report["people"] = report.pop("n_people")
    (earlier / "report.json").write_text(json.dumps(report))
    check_evaluation_out(earlier)


def test_an_evaluation_out_folder_is_held_while_it_runs_and_cleared_of_a_killed_runs_temp_files(tmp_path):
    """One `tinyface evaluate` at a time writes a folder (a second is refused, naming the first's
    pid), and the holder removes what a killed run left of its atomic writes; its lock file marks no
    build's folder and counts as nothing of the user's."""
    import os

    from tinyface.errors import OutputError
    from tinyface.evaluation.report import EVALUATION_LOCK, hold_evaluation_out
    from tinyface.fsutil import LOCK_NAME, TEMP_MARKER, TEMP_SUFFIX

    out = tmp_path / "eval"
    out.mkdir()
    left = out / f".report.md{TEMP_MARKER}abcd1234{TEMP_SUFFIX}"  # as atomic_path names it
    left.write_text("half a report")
    with hold_evaluation_out(out):
        assert not left.exists()
        assert (out / EVALUATION_LOCK).read_text().strip() == str(os.getpid())
        with pytest.raises(OutputError, match=f"in use by another tinyface evaluate \\(pid {os.getpid()}\\)"):
            with hold_evaluation_out(out):
                pass
    assert not (out / LOCK_NAME).exists() and list(out.iterdir()) == []  # not a build's folder; nothing left
    (out / EVALUATION_LOCK).write_text("4242\n")  # a killed run's lock file: not the user's, and free
    with hold_evaluation_out(out):
        pass


def test_a_report_that_fails_to_write_leaves_the_earlier_report_as_it_was(tmp_path, monkeypatch):
    """A full disk at report.json, the last file, after every plot and report.md of the new report
    were written: the earlier report stays whole, and no temp file is left. Was: the earlier report's
    files were removed first, so a failed write lost both. Once the write succeeds, the earlier
    report's confusion.png, which the new report has none of, goes."""
    import errno
    import os

    from tinyface.errors import OutputError
    from tinyface.evaluation import report
    from tinyface.evaluation.report import EVALUATION_KIND, write_evaluation_report

    out = tmp_path / "report"
    write_evaluation_report(out, _evaluation_result() | {"identification": _identification(), "model": "earlier"})
    before = _contents(out)
    assert set(before) == {"report.json", "report.md", "roc.png", "confusion.png"}

    def disk_full(path, obj):
        with open(path, "wb") as f:
            f.write(b'{"kind": "tinyface')  # as far as the disk had room for
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(report, "write_json", disk_full)
    with pytest.raises(OutputError) as exc:
        write_evaluation_report(out, _evaluation_result() | {"model": "later"})
    line = exc.value.one_line()
    assert exc.value.exit_code == 14 and f"cannot write the report in {out}: {out / 'report.json'}: " in line
    assert os.strerror(errno.ENOSPC) in line and "any earlier report there is as it was" in line
    assert _contents(out) == before
    monkeypatch.undo()
    write_evaluation_report(out, _evaluation_result() | {"model": "later"})
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "roc.png"]
    written = json.loads((out / "report.json").read_text())
    assert written["model"] == "later" and written["kind"] == EVALUATION_KIND


# --- the model card's words for the training settings ---

def test_relit_views_is_a_count_and_the_model_card_says_so():
    from tinyface.evaluation.report import _training_data_line

    ds = config.load(overrides={"distill": {"relit_views": 2, "teacher_views": 3}}).distill
    assert "2 relit copies of each training photo" in _training_data_line(ds)
    assert "relit" not in _training_data_line(config.load().distill)
    ds = config.load(overrides={"distill": {"tight_views": 1}}).distill
    assert "1 tight crop of each training photo" in _training_data_line(ds)
    with pytest.raises(config.ConfigError, match="distill.relit_views must be in"):
        config.load(overrides={"distill": {"relit_views": 9}})
    with pytest.raises(config.ConfigError, match="distill.tight_views must be in"):
        config.load(overrides={"distill": {"tight_views": -1}})


def test_the_model_card_says_the_faces_were_relit():
    from tinyface.evaluation.report import _training_data_line

    ds = config.load(overrides={"distill": {"light_augment": 0.2, "teacher_views": 3}}).distill
    assert "20% of the samples seen very dark (then brightened) or lit from one side" in _training_data_line(ds)
    assert "very dark" not in _training_data_line(config.load().distill)


def test_the_model_card_names_repeats_only_when_set():
    from tinyface.evaluation.report import _student_words

    assert "3/3/3 blocks per stage" in _student_words(load(overrides={"student": {"repeats": [3, 3, 3]}}).student)
    assert "blocks" not in _student_words(load().student)


def test_the_model_card_says_the_student_was_trained_with_branches():
    from tinyface.config import load
    from tinyface.evaluation.report import _student_words

    two = load(overrides={"student": {"branches": 2}}).student
    assert "trained with 2 parallel convolutions" in _student_words(two)
    assert "parallel" not in _student_words(load().student)


# --- the model card's `reproduce:` command rebuilds the same settings: the preset plus a --set for
# every setting that differs from it ---

def _settings(preset, *sets):
    return config.load(None, config.parse_set_option(sets), base=preset.settings())


def test_a_plain_preset_build_is_reproduced_by_the_preset_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./tinyface.toml
    preset = get_preset("esp32")
    assert reproduce_command(_settings(preset, "data.dir=/somewhere", "data.workers=2"), preset) == \
        "tinyface build --preset esp32"


def test_overrides_appear_and_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preset = get_preset("esp32s3")
    settings = _settings(preset, "prune.epochs=1", "quantize.qat=false", "distill.learning_rate=0.001")
    command = reproduce_command(settings, preset)
    assert command.startswith("tinyface build --preset esp32s3 ")
    words = shlex.split(command)
    sets = tuple(words[i + 1] for i, w in enumerate(words) if w == "--set")
    assert sorted(sets) == ["distill.learning_rate=0.001", "prune.epochs=1", "quantize.qat=false"]
    assert _settings(preset, *sets).to_dict() == settings.to_dict()


@pytest.mark.parametrize("people", [3, 60])
def test_the_confusion_plot_names_the_people_and_counts_the_probes(tmp_path, monkeypatch, people):
    """confusion.png: rows and columns named after the enrolled people (rows with their probes'
    count), the rejected probes' column named and set apart, each cell's count written in it. Was:
    axes numbered -0.5, 0.0, 0.5, ... and no names, so nobody could tell who was taken for whom; then
    above 40 people, numbered rows and columns, unreadable. Above 40, the 20 people with the most
    errors, and a column for the probes taken for someone not shown."""
    import numpy as np

    from tinyface.boards import plots
    from tinyface.evaluation import metrics
    from tinyface.evaluation.report import (
        CONFUSION_WORST,
        OTHERS_COLUMN,
        REJECTED_COLUMN,
        confusion_rows,
        write_evaluation_report,
    )

    rng = np.random.default_rng(0)
    names = [f"Person {k} Ünïcode" for k in range(people)]
    centres = rng.normal(size=(people, 16))
    noise = [0.3 + (0.9 if k % 3 == 0 else 0) for k in range(people)]  # every third person's photos: errors
    emb = np.concatenate([centres[k] + noise[k] * rng.normal(size=(4, 16)) for k in range(people)])
    enroll = {name: [4 * k, 4 * k + 1] for k, name in enumerate(names)}
    probes = [(4 * k + j, name) for k, name in enumerate(names) for j in (2, 3)]
    ident = metrics.identification(emb, enroll, probes, [], 0.5).to_dict(with_confusion=True)
    names = ident["people"]  # sorted
    result = _evaluation_result() | {"identification": ident}
    figures = {}
    save_png = plots.save_png

    def keep(fig, path):
        saved = save_png(fig, path)  # drawn: every tick label is set
        ax = fig.axes[0]
        name = path.name.split(".tinyface-tmp-")[0].lstrip(".")  # written to a temp file: the file it stands for
        figures[name] = ([t.get_text() for t in ax.get_xticklabels()],
                         [t.get_text() for t in ax.get_yticklabels()], [t.get_text() for t in ax.texts],
                         ax.get_title())
        return saved

    monkeypatch.setattr(plots, "save_png", keep)
    write_evaluation_report(tmp_path, result)
    assert (tmp_path / "confusion.png").is_file()
    x, y, cells, title = figures["confusion.png"]
    counts = np.array(ident["confusion"])
    rows, selected = confusion_rows(ident)
    shown = [names[r] for r in rows]
    assert y == [f"{name} (2)" for name in shown]  # each person's probes: what the row's shares are of
    if people <= 40:
        assert not selected and x == [*names, REJECTED_COLUMN]
        assert sorted(cells) == sorted(str(n) for n in counts[counts > 0])
    else:  # was: 60 numbered rows and columns
        assert selected and len(rows) == CONFUSION_WORST and x == [*shown, OTHERS_COLUMN, REJECTED_COLUMN]
        assert f"the {CONFUSION_WORST} people with the most probes misidentified or rejected" in title
        errors = counts.sum(axis=1) - np.diag(counts[:, :people])
        assert sorted(errors[rows], reverse=True) == list(errors[rows])  # the worst first
        assert min(errors[rows]) >= max(np.delete(errors, rows))  # nobody left out has more
