"""What the reports' plots show (tinyface.evaluation.report: the build's write_plots, `evaluate --out`'s
write_evaluation_report), asserted on the matplotlib figures as they are saved, not on pixels: the
ROC's operating points, chance line and % axis; every build stage's curve seen; the confusion matrix's
shares of each row, its rejected column, its worst 20 people on a large gallery; identification.png's
marked points whole and uncovered; the training stages told apart; size_accuracy.png's intervals;
every plot of a smoke test marked; scores.png; and why a plot is not drawn."""

import json

import numpy as np
import pytest

from tests.evaluation.test_report import _evaluation_result, _metrics_of
from tinyface.evaluation import metrics
from tinyface.evaluation.report import STAGE_LABEL

pytestmark = pytest.mark.usefixtures("own_folder")

LFW = {"name": "LFW", "kind": "lfw-view1", "test": "LFW pairsDevTest"}


@pytest.fixture
def saved(monkeypatch):
    """The figures the reports save, by file name (a temp file's too: the file it stands for), saved
    as ever (drawn: every tick label is set)."""
    from tinyface.boards import plots

    figures = {}
    save_png = plots.save_png

    def keep(fig, path):
        result = save_png(fig, path)
        figures[path.name.split(".tinyface-tmp-")[0].lstrip(".")] = fig
        return result

    monkeypatch.setattr(plots, "save_png", keep)
    return figures


def _pairs(seed: int, n_same: int = 100, n_different: int = 400, gap: float = 0.45):
    """Seeded pair scores: same-person pairs ``gap`` higher on average."""
    rng = np.random.default_rng(seed)
    same = np.array([True] * n_same + [False] * n_different)
    return rng.normal(0.1, 0.15, len(same)) + gap * same, same


def _build_metrics(smoke: bool = False):
    """A build's metrics (test_report._metrics_of) whose stages have real verification figures: the
    pruned and TFLite float32 stages one curve, TFLite and TFLM int8 one curve, as a build often has."""
    m = _metrics_of(LFW, smoke)
    seeds = {"teacher": 1, "float": 2, "pruned": 3, "tflite_float": 3, "tflite_int8": 4, "tflm_int8": 4}
    for name, seed in seeds.items():
        scores, same = _pairs(seed, gap=0.6 if name == "teacher" else 0.45)
        m.stages[name].verification.update(metrics.verification(scores, same, 0.4).to_dict(with_roc=True))
    return m


def _write_build_plots(tmp_path, m, histories=None):
    from tinyface.evaluation.report import write_plots

    return write_plots(tmp_path, m, histories or {})


def _lines(ax, label_part: str):
    return [line for line in ax.get_lines() if label_part in line.get_label()]


def _one_point(ax, label_part: str):
    """The marker labelled with ``label_part``: its (x, y) and the line."""
    (line,) = _lines(ax, label_part)
    assert len(line.get_xdata()) == 1, line.get_label()
    return (float(line.get_xdata()[0]), float(line.get_ydata()[0])), line


def _chance_line(ax):
    chance = [line for line in ax.get_lines() if len(line.get_xdata()) > 2
              and np.allclose(line.get_xdata(), line.get_ydata())]
    assert len(chance) == 1, "no chance line (y = x)"
    assert chance[0].get_linestyle() == ":"
    return chance[0]


# --- roc.png ------------------------------------------------------------------------------------------

def test_the_evaluation_roc_marks_the_threshold_and_target_far_points_over_a_chance_line(tmp_path, saved):
    """Was: the curve alone, rates 0-1 while the text gives %, and neither the threshold's point nor
    the --target-far one drawn, though the text reports both."""
    from tinyface.evaluation.report import write_evaluation_report

    scores, same = _pairs(0)
    result = _evaluation_result() | {"threshold": 0.4}
    result["verification"] = metrics.verification(scores, same, 0.4).to_dict(with_roc=True)
    t = metrics.threshold_at_far(scores, same, 0.01)
    tar, far = metrics.rates_at(scores, same, t)
    result["target_far"] = {"far": 0.01, "verification": {"threshold": t, "true_accept_rate": tar,
                                                          "false_accept_rate": far, "negative_pairs": 400,
                                                          "measurable": True}}
    write_evaluation_report(tmp_path, result)
    ax = saved["roc.png"].axes[0]
    v = result["verification"]
    (x, y), point = _one_point(ax, "0.4000")
    assert (x, y) == pytest.approx((100 * v["false_accept_rate"], 100 * v["true_accept_rate"]))
    assert point.get_clip_on() is False and point.get_zorder() > 2
    (x, y), _ = _one_point(ax, "--target-far 0.01")
    assert (x, y) == pytest.approx((100 * far, 100 * tar)) and f"{t:.4f}" in _lines(ax, "--target-far")[0].get_label()
    _chance_line(ax)
    assert ax.get_ylim()[1] == pytest.approx(101) and "%" in ax.get_yticklabels()[-1].get_text()
    assert ax.get_xlim() == pytest.approx((100 / 400, 100))  # from one in the 400 different-person pairs
    (curve,) = _lines(ax, "AUC")
    assert max(curve.get_ydata()) == pytest.approx(100)


def test_a_threshold_that_accepts_no_different_person_pair_is_drawn_at_the_axis_left_end(tmp_path, saved):
    """A FAR of 0 has no place on a log axis: the point is drawn on its left end and its label says so."""
    from tinyface.evaluation.report import write_evaluation_report

    scores, same = _pairs(0, gap=2.0)
    result = _evaluation_result() | {"threshold": 1.0}
    result["verification"] = metrics.verification(scores, same, 1.0).to_dict(with_roc=True)
    assert result["verification"]["false_accept_rate"] == 0
    write_evaluation_report(tmp_path, result)
    ax = saved["roc.png"].axes[0]
    (x, _), point = _one_point(ax, "1.0000")
    assert x == pytest.approx(ax.get_xlim()[0]) and "none accepted" in point.get_label()


def test_the_build_roc_shows_every_stage_and_the_shipped_threshold(tmp_path, saved):
    """Was: pruned under TFLite float32 and TFLite int8 under TFLM int8, one solid line each, so two
    legend entries pointed at nothing; x from a fixed 1e-3 whatever the pairs measure; no
    operating point."""
    m = _build_metrics()
    m.tflm.verification["n_negative"] = 400
    _write_build_plots(tmp_path, m)
    ax = saved["roc.png"].axes[0]
    labels = {line.get_label(): line for line in ax.get_lines()}
    same_as = {label.split(": the same curve as ")[0]: label.split(": the same curve as ")[1]
               for label in labels if ": the same curve as " in label}
    assert same_as == {"TFLite float32 (AUC " + f"{m.stages['tflite_float'].verification['auc']:.3f})":
                       "student pruned",
                       "TFLM int8 (on-device kernels) (AUC " + f"{m.tflm.verification['auc']:.3f})": "TFLite int8"}
    for first, second in (("pruned", "tflite_float"), ("tflite_int8", "tflm_int8")):
        (a,), (b,) = _lines(ax, f"{STAGE_LABEL[first]} (AUC"), _lines(ax, f"{STAGE_LABEL[second]} (AUC")
        # the second on top, thinner and dashed: both seen
        assert a.get_linewidth() > b.get_linewidth() and a.get_linestyle() != b.get_linestyle()
        assert a.get_color() != b.get_color()
    v = m.tflm.verification
    (x, y), point = _one_point(ax, "shipped threshold 0.4000")
    assert (x, y) == pytest.approx((100 * v["false_accept_rate"], 100 * v["true_accept_rate"]))
    assert "TFLM int8" in point.get_label() and point.get_clip_on() is False
    _chance_line(ax)
    assert ax.get_xlim() == pytest.approx((100 / 400, 100))  # was: (1e-3, 1) whatever the pairs


# --- confusion.png ------------------------------------------------------------------------------------

def _ident(confusion: list[list[int]], people: list[str]) -> dict:
    matrix = np.array(confusion)
    return {"people": people, "confusion": confusion, "threshold": 0.6, "n_probes": int(matrix.sum()),
            "accuracy": float(np.trace(matrix[:, :len(people)]) / matrix.sum()), "macro_f1": 0.5,
            "stranger_false_accept_rate": 0.0, "n_people": len(people), "n_strangers": 0,
            "closed_set_accuracy": 0.9, "macro_precision": 0.5, "macro_recall": 0.5}


def test_the_confusion_matrix_is_coloured_by_each_rows_share(tmp_path, saved):
    """One person with 230 probes set the colour scale, and everyone else's row was near white. Each
    cell is now its share of the row; the rejected column is set apart by a line and named."""
    from tinyface.evaluation.report import write_evaluation_report

    people = ["Ann", "Bob", "Cid"]
    confusion = [[200, 10, 0, 20], [1, 2, 0, 1], [0, 1, 3, 0]]
    write_evaluation_report(tmp_path, _evaluation_result() | {"identification": _ident(confusion, people)})
    ax = saved["confusion.png"].axes[0]
    (image,) = ax.get_images()
    shares = np.asarray(image.get_array())
    counts = np.array(confusion)
    assert shares == pytest.approx(100 * counts / counts.sum(axis=1, keepdims=True))
    assert image.get_clim() == (0, 100)
    assert [t.get_text() for t in ax.get_xticklabels()][-1].startswith("rejected")
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [2.5]  # the separator, before "rejected"
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(n) for n in counts[counts > 0])
    assert "share of the person's probes" in saved["confusion.png"].axes[1].get_ylabel()


# --- identification.png -------------------------------------------------------------------------------

def _curve() -> dict:
    thresholds = [round(0.05 * k, 2) for k in range(20)]
    return {"gallery": 5, "draws": 1, "thresholds": thresholds,
            "stranger_false_accept_rate": [max(0.0, 1 - 0.07 * k) for k in range(20)],
            "accuracy": [max(0.0, 1 - 0.03 * k) for k in range(20)]}


def test_identification_points_are_whole_and_no_threshold_label_sits_under_one(tmp_path, saved):
    """Was: a point at 0% strangers cut in half by the axis, and the threshold labels written under
    the markers."""
    from tinyface.evaluation.report import identification_plot

    curve = _curve()
    k = curve["thresholds"].index(0.5)  # a labelled threshold, marked: its label would sit under the marker
    points = [("marked at 0.50", curve["stranger_false_accept_rate"][k], curve["accuracy"][k]),
              ("at 0% strangers", 0.0, 0.5)]
    identification_plot(tmp_path / "identification.png", [("model", curve)], points, "title")
    ax = saved["identification.png"].axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert "0.50" not in labels and "0.30" in labels  # the others are still labelled
    (curve_line,) = _lines(ax, "model")
    for label, _, _ in points:
        _, point = _one_point(ax, label)
        assert point.get_clip_on() is False and point.get_zorder() > curve_line.get_zorder()


# --- training.png -------------------------------------------------------------------------------------

def test_the_training_curves_tell_the_stages_apart(tmp_path, saved):
    """Was: distill, prune and QAT strung along one epoch axis, each series a colour of its own, with no
    boundary between the stages and no preset named."""
    histories = {"distill": {"loss": [1.0, 0.9, 0.8], "val_loss": [1.1, 0.95, 0.9]},
                 "prune": {"loss": [0.85, 0.84], "val_loss": [0.92, 0.91]}, "QAT": {"loss": [0.84]}}
    _write_build_plots(tmp_path, _metrics_of(LFW, False), histories)
    ax = saved["training.png"].axes[0]
    colour = {}
    for stage in histories:
        (train,) = _lines(ax, f"{stage} train")
        assert train.get_linestyle() == "-"
        colour[stage] = train.get_color()
        for val in _lines(ax, f"{stage} validation"):
            assert val.get_linestyle() == "--" and val.get_color() == train.get_color()
    assert len(set(colour.values())) == 3
    bands = [p.get_x() if hasattr(p, "get_x") else None for p in ax.patches]
    assert len(ax.patches) == 3, bands  # one shaded band per stage
    spans = sorted((p.get_path().get_extents().transformed(p.get_patch_transform()).x0, p) for p in ax.patches)
    assert [round(x0, 1) for x0, _ in spans] == [0.5, 3.5, 5.5]  # the stages' boundaries
    assert [t.get_text() for t in ax.texts] == list(histories)  # each band named
    assert "preset esp32" in ax.get_title()


# --- size_accuracy.png --------------------------------------------------------------------------------

def test_size_accuracy_gives_each_accuracy_its_interval_and_says_where_the_axis_starts(tmp_path, saved):
    """Was: points alone, an axis from wherever matplotlib began it, nothing on how sure each figure is."""
    m = _metrics_of(LFW, False)
    for k, st in enumerate(m.stages.values()):
        st.verification.update(accuracy=0.9 + 0.01 * k, n_pairs=1000)
    _write_build_plots(tmp_path, m)
    fig = saved["size_accuracy.png"]
    ax = fig.axes[0]
    from matplotlib.collections import LineCollection

    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(bars) == len(m.stages)
    for bar, st in zip(bars, m.stages.values(), strict=True):
        (segment,) = bar.get_segments()
        low, high = metrics.wilson_interval(st.verification["accuracy"], 1000)
        assert sorted(segment[:, 1]) == pytest.approx([100 * low, 100 * high])
    bottom = ax.get_ylim()[0]
    assert bottom > 0 and f"starts at {bottom:.1f}%, not 0" in ax.get_ylabel()
    assert any("95% confidence interval" in t.get_text() and "1,000 test pairs" in t.get_text() for t in fig.texts)


def test_the_wilson_interval():
    assert metrics.wilson_interval(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = metrics.wilson_interval(1.0, 20)  # not (1, 1): 20 right of 20 is no certainty
    assert high == 1.0 and low == pytest.approx(0.8389, abs=1e-4)
    assert metrics.wilson_interval(0.7, 0) == (0.7, 0.7)


# --- every plot of a smoke test -----------------------------------------------------------------------

@pytest.mark.parametrize("smoke", [True, False])
def test_every_build_plot_of_a_smoke_test_says_so(tmp_path, saved, smoke):
    """Was: the ROC's title alone said "(smoke test)"."""
    m = _build_metrics(smoke)
    m.tflm.identification.update(people=["Ann", "Bob"], confusion=[[3, 0, 1], [0, 2, 2]], n_probes=8)
    curve = _curve()
    m.tflm.validation.update(identification_curve=curve, identification={"stranger_rate": 0.05,
                                                                          "probe_accuracy": 0.8})
    _write_build_plots(tmp_path, m, {"distill": {"loss": [1.0, 0.9]}})
    for name, fig in saved.items():
        assert ("(smoke test)" in fig.axes[0].get_title()) == smoke, name
    assert set(saved) == {"roc.png", "scores.png", "training.png", "confusion.png", "identification.png",
                          "size_accuracy.png"}


def test_every_evaluation_plot_of_a_smoke_test_model_says_so(tmp_path, saved):
    from tinyface.evaluation.report import write_evaluation_report

    scores, same = _pairs(0)
    result = _evaluation_result() | {"smoke_test": True, "identification": _ident([[3, 0, 1], [0, 2, 2]],
                                                                                  ["Ann", "Bob"]),
                                     "identification_curve": _curve()}
    result["identification"]["device_gallery"] = {"gallery": 2, "draws": 1, "accuracy": 0.6,
                                                  "stranger_false_accept_rate": 0.1}
    result["verification"] = metrics.verification(scores, same, 0.5).to_dict(with_roc=True)
    write_evaluation_report(tmp_path, result)
    for name, fig in saved.items():
        assert "smoke test" in fig.axes[0].get_title(), name
    assert set(saved) == {"roc.png", "scores.png", "confusion.png", "identification.png"}


# --- scores.png ---------------------------------------------------------------------------------------

def test_scores_shows_both_kinds_of_pairs_and_the_threshold(tmp_path, saved):
    from tinyface.evaluation.report import write_evaluation_report

    scores, same = _pairs(0)
    result = _evaluation_result() | {"threshold": 0.4}
    result["verification"] = metrics.verification(scores, same, 0.4).to_dict(with_roc=True)
    md = write_evaluation_report(tmp_path, result).read_text()
    assert "![scores](scores.png)" in md
    ax = saved["scores.png"].axes[0]
    (line,) = _lines(ax, "0.4000")
    assert list(line.get_xdata()) == [0.4, 0.4]
    v = result["verification"]
    assert f"{100 * v['true_accept_rate']:.1f}% of same-person" in line.get_label()
    labels = [p.get_label() for p in ax.patches if p.get_label() and not p.get_label().startswith("_")]
    assert labels == ["same-person pairs (100)", "different-person pairs (400)"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert "roc" not in report["verification"]  # the histogram is plot data, as the curve


def test_the_similarity_histogram_counts_every_pair():
    scores = np.array([-1.0, -1.0000001, 0.0, 0.5, 0.99, 1.0, 1.0000002])
    same = np.array([False, False, False, True, True, True, True])
    h = metrics.similarity_histogram(scores, same)
    assert len(h["edges"]) == metrics.SIMILARITY_BINS + 1 and (h["edges"][0], h["edges"][-1]) == (-1, 1)
    assert sum(h["same"]) == 4 and sum(h["different"]) == 3
    assert h["different"][0] == 2 and h["same"][-1] == 3  # a score rounded past either end: the end bin


# --- why a plot is not there --------------------------------------------------------------------------

def test_an_evaluation_says_why_a_plot_is_not_drawn(tmp_path):
    """A folder with nobody left over as a stranger: no identification.png. Was: left out without a word,
    while the docs list it."""
    from tinyface.evaluation.report import write_evaluation_report

    result = _evaluation_result() | {"identification": _ident([[3, 0, 1], [0, 2, 2]], ["Ann", "Bob"]),
                                     "identification_curve": None, "enroll_images": 5}
    md = write_evaluation_report(tmp_path, result).read_text()
    assert not (tmp_path / "identification.png").exists()
    line = next(line for line in md.splitlines() if "identification.png" in line)
    assert "is not drawn: no strangers" in line and "all 2 people were enrolled" in line
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["plots_not_drawn"]) == {"identification", "scores"}  # the fixture keeps no histogram
    assert report["plots"] == {"roc": "roc.png", "confusion": "confusion.png"}

    result = _evaluation_result() | {"note": "identification needs >= 2 enrolled people (...)"}
    md = write_evaluation_report(tmp_path, result).read_text()
    for name in ("confusion", "identification"):
        assert f"`{name}.png` is not drawn: no identification: identification needs >= 2 enrolled people" in md


def test_a_build_report_says_why_a_plot_is_not_drawn(tmp_path):
    from tinyface import config
    from tinyface.evaluation.report import write_report

    preset = config.load_preset("esp32")
    settings = config.apply(config.Settings(), preset.settings(), "the preset")
    md = write_report(tmp_path, _metrics_of(LFW, False), settings, preset).read_text()
    plots = md.split("## Plots")[1].split("## ")[0]
    assert "![roc](roc.png)" in plots and "![size_accuracy](size_accuracy.png)" in plots
    for name in ("training", "confusion", "identification", "scores"):
        assert f"- `{name}.png` is not drawn: " in plots, name
    assert "too few validation people" in plots
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["plots_not_drawn"]) == {"training", "confusion", "identification", "scores"}


# --- the same run, the same bytes ---------------------------------------------------------------------

def test_the_build_plots_are_the_same_bytes_each_time(tmp_path):
    m = _build_metrics(True)
    histories = {"distill": {"loss": [1.0, 0.9], "val_loss": [1.1, 1.0]}, "prune": {"loss": [0.8]}}
    first = _write_build_plots(tmp_path / "a", m, histories)
    second = _write_build_plots(tmp_path / "b", m, histories)
    assert list(first.drawn) == list(second.drawn)
    for name, path in first.drawn.items():
        assert path.read_bytes() == second.drawn[name].read_bytes(), name
