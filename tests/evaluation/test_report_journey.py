"""What a user reads in a build's artifacts before shipping its model (tinyface.evaluation.report):
the model card's `reproduce:` command makes the same model again, a `--quick` one included; the
training curves draw every stage, one of a single epoch too; the model card says what the targets
were centered on as the build centered them. (The renderer's other sentences: test_report.py.)"""

import shlex

import pytest

from tests.evaluation.test_report import _metrics_of
from tinyface import config
from tinyface.cli.build import QUICK

pytestmark = pytest.mark.usefixtures("own_folder")

LFW = {"name": "LFW", "kind": "lfw-view1", "test": "LFW pairsDevTest"}


def _card(tmp_path, tiny_bundle, metrics, settings, preset) -> str:
    from tinyface.evaluation.report import write_model_card

    out = tmp_path / "run"
    out.mkdir(exist_ok=True)
    return write_model_card(out, metrics, settings, preset, tiny_bundle.meta).read_text()


def _reproduce(card: str) -> list[str]:
    line = next(line for line in card.splitlines() if line.startswith("- reproduce: `"))
    return shlex.split(line.split("`")[1])


@pytest.mark.parametrize("smoke", [True, False])
def test_the_model_cards_command_reproduces_a_quick_build_with_quick(tmp_path, tiny_bundle, smoke):
    """A `--quick` build trains on a 1,000-image subset and tests on 200 pairs, which no setting
    says: its card's command is `--quick` plus the settings. Was: the settings alone, a build of
    every image (hours, another model) for the smoke test's card."""
    preset = config.load_preset("esp32")
    settings = config.load(None, base=preset.settings(), quick=QUICK if smoke else None)
    words = _reproduce(_card(tmp_path, tiny_bundle, _metrics_of(LFW, smoke), settings, preset))
    assert words[:4] == ["tinyface", "build", "--preset", "esp32"]
    assert ("--quick" in words) == smoke
    sets = tuple(words[i + 1] for i, w in enumerate(words) if w == "--set")
    # what the command's settings are: the preset, --quick's layer, then its --set (as `build` loads them)
    again = config.load(None, config.parse_set_option(sets), base=preset.settings(), quick=QUICK if smoke else None)
    assert again.to_dict() == settings.to_dict()


def test_the_training_curves_draw_a_stage_of_one_epoch(tmp_path, monkeypatch):
    """training.png: the quick build's pruning (prune.epochs = 1) is one point per curve. Was: drawn
    as a line of one point, i.e. nothing, beside its legend entries."""
    from tinyface.boards import plots
    from tinyface.evaluation.report import write_plots

    drawn = {}
    save_png = plots.save_png

    def keep(fig, path):  # saved as ever; what was drawn kept to read
        drawn[path.name] = [(line.get_label(), len(line.get_xdata()), line.get_marker())
                            for line in fig.axes[0].get_lines()]
        return save_png(fig, path)

    monkeypatch.setattr(plots, "save_png", keep)
    histories = {"distill": {"loss": [1.0, 0.9, 0.8], "val_loss": [1.1, 0.95, 0.9]},
                 "prune": {"loss": [0.85], "val_loss": [0.92]}, "QAT": {"loss": [0.84]}}
    assert "training" in write_plots(tmp_path, _metrics_of(LFW, True), histories).drawn
    lines = drawn["training.png"]
    assert [label for label, _, _ in lines] == ["distill train", "distill validation", "prune train",
                                                "prune validation", "QAT train"]
    for label, points, marker in lines:
        assert points > 1 or marker not in (None, "None", "", " "), f"{label}: one point and no marker"


@pytest.mark.parametrize("extra", [None, {"kind": "unlabelled", "found": 10, "used": 8, "too_close_to_test": 2}])
def test_the_model_card_centers_on_extra_faces_only_when_the_build_had_some(tmp_path, tiny_bundle, extra):
    """distill.center = "all" centers the targets on the training images and the extra faces, where
    there are extra faces (tinyface.train.pipeline). Was: a build without any (every `--quick` one)
    had a card saying it centered on extra faces too."""
    preset = config.load_preset("esp32")
    settings = config.load(None, base=preset.settings(), quick=QUICK)
    assert settings.distill.center == "all"
    metrics = _metrics_of(LFW, True)
    if extra:
        metrics.data["extra"] = extra
    card = _card(tmp_path, tiny_bundle, metrics, settings, preset)
    together = "centered on the training images and the extra faces together"
    assert (together in card) == bool(extra)
    assert "centered on the training images" in card


@pytest.mark.parametrize("negatives", [4, 1000])
def test_an_evaluation_report_says_a_target_far_it_could_not_measure(tmp_path, negatives):
    """`evaluate --target-far 0.001` on 4 different-person pairs: the threshold "for FAR 0.001" is the
    one that accepts none of them, as the text output says. Was: report.md gave it as a threshold for
    that rate, without a word."""
    from tests.evaluation.test_report import _evaluation_result
    from tinyface.evaluation.report import write_evaluation_report

    result = _evaluation_result()
    result["verification"]["n_negative"] = negatives
    result["target_far"] = {"far": 0.001, "verification": {
        "threshold": 0.91, "true_accept_rate": 0.25, "false_accept_rate": 0.0, "negative_pairs": negatives,
        "measurable": negatives * 0.001 >= 1}}
    md = write_evaluation_report(tmp_path, result).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| verification threshold for FAR 0.001"))
    assert "0.9100 (25.00%)" in row
    assert ("not measurable: 0.001 is below one in 4 different-person pairs" in row) == (negatives == 4)


def test_a_build_report_says_a_tar_at_far_it_could_not_measure(tmp_path, tiny_bundle):
    """A `--quick` build on one's own folder tests on 50 different-person pairs: "TAR@FAR=1e-2" there
    is the TAR at which none of them is accepted (metrics.measurable). Was: given in the stage table
    and the model card as the TAR at 1e-2, as `evaluate` never gives it."""
    from tinyface.evaluation.report import write_report

    preset = config.load_preset("esp32")
    settings = config.load(None, base=preset.settings(), quick=QUICK)
    metrics = _metrics_of(LFW, True)
    for st in metrics.stages.values():
        st.verification.update(n_negative=50, tar_at_far_measurable={"0.01": False})
    out = tmp_path / "run"
    out.mkdir()
    report = write_report(out, metrics, settings, preset).read_text()
    card = _card(tmp_path, tiny_bundle, metrics, settings, preset)
    note = "50.00% (not measurable with 50 different-person pairs)"
    assert report.count(note) == len(metrics.stages)
    assert f"| TAR @ FAR = 1e-2 | {note} | {note} |" in card


def test_the_build_plots_say_which_people_they_are_on(tmp_path, monkeypatch):
    """confusion.png is the test people's identification, identification.png beside it the validation
    people's: each title says which. Was: confusion.png's said neither."""
    from tinyface.boards import plots
    from tinyface.evaluation.report import write_plots

    titles = {}
    save_png = plots.save_png

    def keep(fig, path):  # saved as ever; the titles kept to read
        titles[path.name] = fig.axes[0].get_title()
        return save_png(fig, path)

    monkeypatch.setattr(plots, "save_png", keep)
    metrics = _metrics_of(LFW, True)
    metrics.tflm.identification.update(people=["Ann", "Bob"], confusion=[[3, 0, 1], [0, 2, 2]], n_probes=8)
    write_plots(tmp_path, metrics, {})
    assert "on test people" in titles["confusion.png"] and "validation" not in titles["confusion.png"]
    assert "ROC on LFW pairsDevTest" in titles["roc.png"]
