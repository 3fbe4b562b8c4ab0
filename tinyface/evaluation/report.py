"""The build report: ``report.md``, ``report.json`` and plots in ``<out>/``.

The main table follows the seed thesis (model, accuracy, memory footprint), extended with
MACs, TFLM arena and estimated on-board latency.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator

from tinyface.fsutil import write_json, write_text
from tinyface.protocol.spec import GALLERY_CAPACITY


@dataclass
class StageMetrics:
    """One stage's figures (``report.json``'s ``stages.<name>``): the test verification
    (tinyface.evaluation.metrics's Verification dict, with the accuracy and threshold at each threshold
    source), the identification, the validation figures, and the stage's cost."""

    verification: dict
    identification: dict
    validation: dict
    kind: str | None
    params: int | None
    macs: int | None
    model_bytes: int | None
    latency_ms_host: float | None
    # only where they apply (left out of the JSON otherwise)
    model_bytes_gzip: int | None = None
    sparsity_per_layer: dict | None = None
    sparsity_overall: float | None = None
    arena_bytes: int | None = None
    estimated_ms_on_board: float | None = None
    board: str | None = None
    cost_model_source: str | None = None

    _OPTIONAL = ("model_bytes_gzip", "sparsity_per_layer", "sparsity_overall", "arena_bytes",
                 "estimated_ms_on_board", "board", "cost_model_source")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not (f.name in self._OPTIONAL and getattr(self, f.name) is None)}

    @classmethod
    def from_dict(cls, d: dict) -> "StageMetrics":
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})


@dataclass
class Parity:
    """TFLM against TFLite on the same int8 inputs (``report.json``'s ``parity``): on the images the
    evaluation reads (test pairs' and identification's, and the protocol's threshold pairs'), with
    the decisions on the test pairs; ``validation``: the same on the validation images, with
    ``identical_decisions_validation_pairs`` (what validation.json and `build --hide-test` show;
    None in an evaluation from before it was kept)."""

    max_lsb_diff: int
    mean_lsb_diff: float
    outputs_identical_share: float
    identical_decisions_test_pairs: float
    n_images: int
    validation: dict | None = None


@dataclass
class BuildMetrics:
    """Every figure of a build (``evaluate/metrics.json``; ``report.json`` adds the plots, the
    settings and the stages run). ``dataset`` and ``smoke_test`` are the build's, added after
    the evaluation (metrics.json has neither)."""

    preset: str
    mac_budget: int
    data: dict  # tinyface.train.build_data's stats: images and people of each split, extra faces
    threshold_from: str  # where the shipped threshold was chosen, in words
    threshold_source: str  # data.threshold_from: "validation" or "protocol"
    stages: dict[str, StageMetrics]
    parity: Parity
    ops: list[str] = field(default_factory=list)
    dataset: dict | None = None  # pipeline.describe_dataset: name, kind, test, root
    smoke_test: bool | None = None

    def to_dict(self) -> dict:
        out = {"preset": self.preset, "mac_budget": self.mac_budget, "data": self.data,
               "threshold_from": self.threshold_from, "threshold_source": self.threshold_source,
               "stages": {name: st.to_dict() for name, st in self.stages.items()}, "parity": asdict(self.parity),
               "ops": self.ops}
        if self.dataset is not None:
            out["dataset"] = self.dataset
        if self.smoke_test is not None:
            out["smoke_test"] = self.smoke_test
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "BuildMetrics":
        return cls(preset=d.get("preset"), mac_budget=d.get("mac_budget"), data=d.get("data") or {},
                   threshold_from=d.get("threshold_from"), threshold_source=d.get("threshold_source", "protocol"),
                   stages={name: StageMetrics.from_dict(st) for name, st in d["stages"].items()},
                   parity=Parity(**d["parity"]), ops=list(d.get("ops", [])), dataset=d.get("dataset"),
                   smoke_test=d.get("smoke_test"))

    @property
    def tflm(self) -> StageMetrics:
        """The shipped model's stage: TFLM int8, the firmware's kernels."""
        return self.stages["tflm_int8"]

    @property
    def dataset_or_lfw(self) -> dict:
        """``dataset``; builds from before it existed were LFW builds."""
        return self.dataset or {"name": "LFW", "kind": "lfw-view1", "test": "LFW pairsDevTest"}

STAGE_ORDER = ["teacher", "float", "pruned", "tflite_float", "tflite_int8", "tflm_int8"]
STAGE_LABEL = {
    "teacher": "teacher (dlib ResNet)", "float": "student float32", "pruned": "student pruned",
    "tflite_float": "TFLite float32", "tflite_int8": "TFLite int8", "tflm_int8": "TFLM int8 (on-device kernels)",
}


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _num(x, unit="") -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.2f}{unit}"
    return f"{x:,}{unit}"


def _kib(x) -> str:
    return "—" if x is None else f"{x / 1024:.1f} KiB"


def test_name(metrics: BuildMetrics) -> str:
    """What the test pairs are ("LFW pairsDevTest", or pairs of a folder's held-out people);
    reports from before ``dataset`` existed were LFW builds."""
    return metrics.dataset_or_lfw.get("test", "LFW pairsDevTest")


SMOKE_TEST = ("SMOKE TEST (`tinyface build --quick`): trained on a small subset for a few epochs to check that "
              "the pipeline runs. Its accuracy says nothing about a real model; do not deploy it.")


def smoke_test_lines(metrics: BuildMetrics) -> list[str]:
    """The warning a `--quick` model's report and model card open with (none otherwise)."""
    return [f"> **{SMOKE_TEST}**", ""] if metrics.smoke_test else []


def _device_gallery(ident: dict | None) -> dict:
    """A stage's identification by random galleries of the device's size (``device_gallery``;
    empty for builds from before it was recorded)."""
    return (ident or {}).get("device_gallery") or {}


def _fewer_than(record: dict, everyone) -> bool:
    """Whether a gallery record (``gallery``, ``draws``) is of fewer people than ``everyone``
    enrolled: smaller galleries drawn. Where it holds them all, its figures are the whole gallery's,
    and a second column of them would only repeat it."""
    return record.get("draws", 1) > 1 or record.get("gallery", everyone) != everyone


def _smaller_gallery(ident: dict | None) -> dict:
    """``device_gallery`` where it is a smaller gallery than every enrolled test person's
    (:func:`_fewer_than`); empty where the device's gallery holds them all or it was not recorded."""
    dg = _device_gallery(ident)
    return dg if dg and _fewer_than(dg, (ident or {}).get("n_people")) else {}


def _validation_identification(metrics: BuildMetrics) -> dict:
    """The TFLM stage's identification on validation people, where the shipped identification
    threshold was chosen (empty: too few validation people to choose one)."""
    return (metrics.tflm.validation or {}).get("identification") or {}


def _gallery_words(dg: dict, n_people) -> str:
    """How a gallery-size figure was measured, in words: "random galleries of 16 of the 47
    enrolled people (100 draws)", or the whole gallery when it fits."""
    if dg.get("draws", 1) > 1:
        return f"random galleries of {dg['gallery']} of the {n_people} enrolled people ({dg['draws']} draws)"
    return f"all {dg.get('gallery', n_people)} enrolled people (within the gallery size)"


def stage_table(metrics: BuildMetrics) -> list[str]:
    """The stages' figures; identification by the gallery of every enrolled test person and by
    galleries of the device's size (``data.identify_gallery``), each named by its size."""
    i_tflm = metrics.tflm.identification
    n_all = i_tflm.get("n_people", "?")
    # the device's gallery size apart only where it is smaller than the whole gallery
    smaller = bool(_smaller_gallery(i_tflm)) or not _device_gallery(i_tflm)
    n_dev = _device_gallery(i_tflm).get("gallery", "?")
    device = f" ident. acc. ({n_dev} people) | stranger FAR ({n_dev} people) |" if smaller else ""
    rows = [f"| stage | {test_name(metrics)} acc. | ROC AUC | TAR@FAR=1e-2 | ident. acc. ({n_all} people) | macro F1 | "
            f"stranger FAR ({n_all} people) |{device} "
            "model size | MACs | arena | host ms/img | est. board ms | validation acc. |",
            "|---|---|---|---|---|---|---|" + "---|---|" * smaller + "---|---|---|---|---|---|"]
    for name in STAGE_ORDER:
        st = metrics.stages.get(name)
        if not st:
            continue
        v, i = st.verification, st.identification
        dg = _device_gallery(i)
        device = f" {_pct(dg.get('accuracy'))} | {_pct(dg.get('stranger_false_accept_rate'))} |" if smaller else ""
        rows.append(
            f"| {STAGE_LABEL[name]} | {_pct(v['accuracy'])} | {v['auc']:.4f} | {_measured_tar(v, '0.01')} | "
            f"{_pct(i['accuracy'])} | {i['macro_f1']:.3f} | {_pct(i['stranger_false_accept_rate'])} |{device} "
            f"{_kib(st.model_bytes)} | {_num(st.macs)} | {_kib(st.arena_bytes)} | "
            f"{_num(st.latency_ms_host)} | {_num(st.estimated_ms_on_board)} | "
            f"{_pct((st.validation or {}).get('accuracy'))} |")
    return rows


def validation_table(metrics: BuildMetrics) -> list[str]:
    """The device's job measured on validation people (what presets are chosen on; never the test):
    identification by galleries of the size the threshold is chosen for, and by all of them where
    those are more (:func:`_fewer_than`)."""
    ident = _validation_identification(metrics)
    apart = _fewer_than(ident, ident.get("enrolled"))
    rows = []
    for name in STAGE_ORDER:
        st = metrics.stages.get(name)
        v = (st.validation if st else None) or {}
        if "tar_at_far_1e-3" not in v:
            continue
        i = v.get("identification") or {}
        rows.append(f"| {STAGE_LABEL[name]} | {_pct(v['accuracy'])} | {v['auc']:.4f} | {_pct(v['tar_at_far_1e-3'])} |"
                    + (f" {_pct(i.get('probe_accuracy'))} | {_pct(i.get('stranger_rate'))} |" if ident else "")
                    + (f" {_pct(i.get('probe_accuracy_all'))} | {_pct(i.get('stranger_rate_all'))} |" if apart else ""))
    if not rows:
        return []
    if not ident:  # too few validation people to enroll some and keep others as strangers
        return ["### On validation people (the device's job; presets are chosen on these)", "",
                "| stage | pairs acc. | ROC AUC | TAR@FAR=1e-3 (every pair) |", "|---|---|---|---|", *rows, "",
                "Identification on validation: too few validation people with enough photos to enroll some and keep "
                "others as strangers, so no identification threshold was chosen on them; identification uses the "
                "verification threshold.", ""]
    enrolled = ident.get("enrolled", "?")
    gallery = ident.get("gallery", enrolled)
    drawn = (f"random galleries of {gallery} of them ({ident['draws']} draws), the threshold chosen so that such a "
             "gallery accepts the target share of those strangers on average"
             if ident.get("draws", 1) > 1 else
             "a gallery of all of them, the threshold chosen so that it accepts the target share of those strangers")
    by_all = (f" probes accepted and right ({enrolled} people) | strangers accepted ({enrolled} people) |"
              if apart else "")
    last_two = (f" The last two columns: the same threshold by a gallery of all {enrolled} (a stranger is compared "
                "with every enrolled person, so a larger gallery accepts more strangers)." if apart else "")
    return ["### On validation people (the device's job; presets are chosen on these)", "",
            f"| stage | pairs acc. | ROC AUC | TAR@FAR=1e-3 (every pair) | identification ({gallery} people): probes "
            f"accepted and right | strangers accepted ({gallery} people) |{by_all}",
            "|---|---|---|---|---|---|" + "---|---|" * apart, *rows, "",
            f"Identification on validation: {enrolled} validation people can be enrolled, "
            f"{ident.get('probes', '?')} probes, {ident.get('strangers', '?')} strangers; {drawn}.{last_two}", ""]


def extra_faces_lines(metrics: BuildMetrics) -> list[str]:
    """What the build did with the extra faces (extra.dirs), in one paragraph."""
    x = (metrics.data or {}).get("extra")
    if not x:
        return []
    more = "".join(f", {x[k]:,} teacher {k}" for k in ("views", "mixes") if x.get(k))
    named = (f"{x['named_after_held_out_person']:,} in a folder named after a validation or test person, "
             if x.get("named_after_held_out_person") else "")
    people = f" ({x['people']:,} people in people folders)" if x.get("people") else ""
    what = "distillation only" if x.get("people") else "no identities, distillation only"
    return [f"Extra faces ({what}; {x['kind']}): {x['found']:,} found, "
            f"{x['sampled']:,} taken, {x['unreadable']:,} unreadable, {x['no_face']:,} without a face found, {named}"
            f"{x['too_close_to_test']:,} dropped by the contamination filter (teacher distance < "
            f"{x['max_test_distance']} to an image of a test person{_near_validation(x)}), **{x['used']:,} used**"
            f"{people}{more}.", ""]


def _near_validation(x: dict) -> str:
    """The filter's count against validation images (extra.filter_validation), if it ran."""
    n = x.get("too_close_to_validation")
    return "" if n is None else f"; {n:,} more within it of a validation image"


def assistant_lines(metrics: BuildMetrics) -> list[str]:
    """The teaching assistant (distill.assistant) the targets were blended with, in one paragraph."""
    a = (metrics.data or {}).get("assistant")
    if not a:
        return []
    _, h, w, c = a["input_shape"]
    return [f"Teaching assistant: `{a['model']}` (sha256 {a['sha256'][:12]}, {h}x{w}x{c} crops at padding "
            f"{a['crop_padding']:g}), its share of every target {a['weight']:g}. On this build's validation pairs it "
            f"scores {a['val_pairs_accuracy']:.2%}; the cosine of its embeddings to the teacher's targets is "
            f"{a['cosine_to_teacher_val']:.3f} on validation faces, "
            f"{a['cosine_to_teacher_train']:.3f} on the training rows.",
            ""]


def _assistant_card_line(metrics: BuildMetrics) -> str:
    """The model card's line on the teaching assistant, if any."""
    a = (metrics.data or {}).get("assistant")
    if not a:
        return ""
    return (f"- teaching assistant: every target is l2n({1 - a['weight']:g} x the teacher's embedding "
            f"+ {a['weight']:g} x that of `{a['model']}`) "
            f"(sha256 {a['sha256'][:12]}, a larger student; both unit length first)")


def _identification_words(metrics: BuildMetrics, settings) -> str:
    """The report's paragraph on the identification threshold and the gallery sizes."""
    i = metrics.tflm.identification
    n_people = i.get("n_people", "?")
    at_verification = i.get("at_verification_threshold", {}).get("stranger_false_accept_rate")
    chosen_on = i.get("threshold_from", "the verification threshold")
    return (f"Identification (ident. acc., macro F1, stranger FAR) is measured at each stage's identification "
            f"threshold (TFLM int8: {i['threshold']:.4f}, chosen on {chosen_on}"
            + (f"; target {settings.data.identify_stranger_rate:.0%} of strangers accepted by a gallery of "
               f"{_chosen_gallery(metrics, settings)} people" if _validation_identification(metrics)
               else "")
            + f") by the gallery of all {n_people} enrolled test people"
            + (f", and by {_gallery_words(_smaller_gallery(i), n_people)}; " if _smaller_gallery(i) else
               " (a gallery the device can hold); " if _device_gallery(i) else "; ")
            + f"the device holds at most {GALLERY_CAPACITY}. "
            "IDENTIFY compares a stranger with every enrolled person, so it needs a stricter threshold than a pair "
            "does, and a larger gallery accepts more strangers. At the pair-verification threshold the TFLM int8 "
            f"model would accept {_pct(at_verification)} of strangers.")


def _threshold_sources(metrics: BuildMetrics) -> tuple[str, str]:
    """(the shipped threshold's source, the other one); reports from before the setting: protocol."""
    source = metrics.threshold_source or "protocol"
    return source, "protocol" if source == "validation" else "validation"


_OTHER_WORDS = {"validation": "pairs of validation people (never trained on)",
                "protocol": "the protocol's pairs (`pairsDevTrain.txt` for LFW)"}


def _stage_seconds(stage) -> str:
    """A stage's seconds in this run, and those of the earlier runs whose training it took up."""
    earlier = stage.earlier_seconds
    return f"{stage.seconds:.1f}" + (f" (+ {earlier:.1f} in earlier runs, taken up)" if earlier else "")


def write_report(out_dir: Path, metrics: BuildMetrics, settings, preset, stages_run=(),
                 histories: dict[str, dict] | None = None) -> Path:
    """Write report.md, report.json and the plots; returns the report.md path.

    Args:
        metrics: the build's figures.
        stages_run: the pipeline's StageInfo records (name, fingerprint, skipped, seconds, earlier_seconds).
        histories: the training curves by stage ("distill", "prune", "QAT"): Keras histories.
    """
    out_dir = Path(out_dir)
    plots = write_plots(out_dir, metrics, histories or {})
    stages = metrics.stages
    tflm, student = metrics.tflm, stages["float"]
    parity = metrics.parity
    source, other = _threshold_sources(metrics)
    dataset = metrics.dataset_or_lfw
    data = metrics.data
    lines = [
        f"# tinyface build report — preset `{preset.name}`" + (" — SMOKE TEST" if metrics.smoke_test else ""),
        "",
        *smoke_test_lines(metrics),
        f"Data: {dataset['name']}" + (f" (`{dataset['root']}`)" if dataset.get("root") else "") + ". "
        f"{data['train_images']:,} training images of {data['train_people']:,} people "
        f"(validation: {data['val_images']:,} images of {data['val_people']:,} other people). "
        f"Verification tested on {data['test_pairs']:,} held-out pairs ({test_name(metrics)}), "
        f"threshold chosen on {metrics.threshold_from}. Identification: "
        f"{data['identify_people']} enrolled people, {data['identify_probes']} probes, "
        f"{data['identify_strangers']} strangers." + _after(errata_sentence(data)),
        "",
        "## Stages",
        "",
        *stage_table(metrics),
        "",
        "Validation accuracy: pairs of validation people (training-set people held out), at each stage's best "
        "threshold on those pairs; the only accuracy any choice in the build (QAT vs PTQ, presets, search) "
        "may look at. Host ms/img: this machine's time per image, the TFLite and TFLM models' one image at a "
        "time on an aligned crop, the teacher's with finding and aligning the face, in batches of 64 as the "
        "build embeds.",
        "",
        *validation_table(metrics),
        *extra_faces_lines(metrics),
        *assistant_lines(metrics),
        _identification_words(metrics, settings),
        "",
        f"MAC budget of `{preset.name}`: {metrics.mac_budget:,}; the int8 graph has {tflm.macs:,} MACs "
        f"({'within' if tflm.macs <= metrics.mac_budget else 'OVER'} budget). Estimated board latency uses the "
        f"cost model of board `{tflm.board}` ({tflm.cost_model_source}): an estimate, not a measurement.",
        "",
        "## Compression losses (vs the float student, on the test pairs)",
        "",
        f"Accuracy in percentage points at each stage's shipped threshold, chosen on {metrics.threshold_from}, "
        f"and at its threshold chosen on {_OTHER_WORDS[other]}. LFW's protocol pairs (`pairsDevTrain.txt`) are mostly "
        "training images, so their threshold fits the people the student learned; validation people are people it "
        "never saw, as on the device (docs/model.md). ROC AUC needs no threshold.",
        "",
        f"| stage | accuracy ({source} threshold, shipped) | accuracy ({other} threshold) | ROC AUC |",
        "|---|---|---|---|",
    ]
    for name in STAGE_ORDER[2:]:
        if name in stages:
            v, ref = stages[name].verification, student.verification
            at, ref_at = v.get(f"accuracy_at_{other}_threshold"), ref.get(f"accuracy_at_{other}_threshold")
            other_delta = f"{100 * (at - ref_at):+.2f} pp" if at is not None and ref_at is not None else "—"
            lines.append(f"| {STAGE_LABEL[name]} | {100 * (v['accuracy'] - ref['accuracy']):+.2f} pp | {other_delta} | "
                         f"{v['auc'] - ref['auc']:+.4f} |")
    at = tflm.verification.get(f"accuracy_at_{other}_threshold")
    if at is not None:
        lines += ["", f"TFLM int8 on the test pairs: {_pct(tflm.verification['accuracy'])} at the {source} "
                  f"threshold ({tflm.verification['threshold']:.4f}, shipped in model.json), {_pct(at)} at the "
                  f"{other} threshold ({tflm.verification.get(f'{other}_threshold', float('nan')):.4f})."]
    lines += [
        "",
        "## TFLM vs TFLite int8",
        "",
        f"- largest output difference: {parity.max_lsb_diff} LSB (mean {parity.mean_lsb_diff:.4f}); "
        f"identical output vectors: {_pct(parity.outputs_identical_share)} of {parity.n_images:,} images",
        f"- identical same/different decisions on the test pairs: {_pct(parity.identical_decisions_test_pairs)}",
        *parity_lines(parity.validation),
        "",
    ]
    if "pruned" in stages:
        p = stages["pruned"]
        lines += ["## Pruning", "",
                  f"Overall sparsity of pruned layers: {100 * p.sparsity_overall:.1f}% of their weights. "
                  f"The int8 model is {_kib(tflm.model_bytes)} raw and {_kib(tflm.model_bytes_gzip)} gzip-compressed. "
                  "Dense TFLM kernels do not skip zeros: pruning makes the model compress better (OTA, compressed "
                  "flash images), it does not make it faster or smaller in RAM.", ""]
    lines += ["## Plots", "", *plots.markdown(), ""]
    if stages_run:
        lines += ["## Stages run", "", "| stage | fingerprint | reused | seconds |", "|---|---|---|---|"]
        lines += [f"| {s.name} | `{s.fingerprint}` | {'yes' if s.skipped else 'no'} | {_stage_seconds(s)} |"
                  for s in stages_run]
        lines.append("")
    lines += ["## Settings", "", "```toml", settings.to_toml().rstrip(), "```", ""]
    write_text(out_dir / "report.md", "\n".join(lines))
    public = json.loads(json.dumps(metrics.to_dict()))
    for st in public["stages"].values():
        st["verification"].pop("roc", None)
    public["plots"] = {k: v.name for k, v in plots.drawn.items()}
    public["plots_not_drawn"] = plots.not_drawn
    public["settings"] = settings.to_dict()
    if stages_run:
        public["stages_run"] = [s.to_dict(fingerprint=True) for s in stages_run]
    write_json(out_dir / "report.json", public)
    return out_dir / "report.md"


def parity_lines(validation: dict | None) -> list[str]:
    """TFLM against TFLite int8 on the validation images and pairs (``Parity.validation``), as
    list items (none for an evaluation from before it was kept)."""
    if not validation:
        return []
    return [f"- on the {validation['n_images']:,} validation images: largest output difference "
            f"{validation['max_lsb_diff']} LSB (mean {validation['mean_lsb_diff']:.4f}), identical output vectors "
            f"{_pct(validation['outputs_identical_share'])}, identical same/different decisions on the validation "
            f"pairs {_pct(validation['identical_decisions_validation_pairs'])}"]


def write_validation_report(out_dir: Path, metrics: BuildMetrics, preset, stages_run=()) -> Path:
    """Write validation.md and validation.json: the figures a rule written before an experiment's
    build may read (validation people, compression on their pairs, TFLM-vs-TFLite parity on their
    images and pairs, cost, time) and no figure of the held-out test, so that reading them cannot
    show the test by accident (`build --hide-test` ends by pointing here).

    Args:
        metrics: the build's figures; only their validation figures, data counts and cost are read.
        preset: the build's preset (its name heads the file).
        stages_run: the pipeline's StageInfo records (name, skipped, seconds, earlier_seconds).

    Returns:
        The validation.md path.
    """
    out_dir = Path(out_dir)
    stages, tflm, data = metrics.stages, metrics.tflm, metrics.data
    smoke = " — SMOKE TEST" if metrics.smoke_test else ""
    lines = [f"# tinyface build: validation figures — preset `{preset.name}`{smoke}", "", *smoke_test_lines(metrics),
             "No figure of the held-out test is in this file (nor in validation.json): those are in report.md, "
             "report.json and the model card, to be read once the choice they could steer is made.", "",
             f"{data['train_images']:,} training images of {data['train_people']:,} people; validation: "
             f"{data['val_images']:,} images of {data['val_people']:,} other people."
             + _after(errata_sentence(data)), ""]
    lines += validation_table(metrics)
    val = {n: stages[n].validation for n in STAGE_ORDER
           if n in stages and (stages[n].validation or {}).get("accuracy") is not None
           and stages[n].validation.get("auc") is not None}
    ref = val.get("float")
    rows = [f"| {STAGE_LABEL[n]} | {100 * (v['accuracy'] - ref['accuracy']):+.2f} pp | {v['auc'] - ref['auc']:+.4f} |"
            for n, v in val.items() if n in STAGE_ORDER[2:]] if ref else []
    if rows:
        lines += ["## Compression losses (vs the float student, on the validation pairs)", "",
                  "| stage | pairs acc. | ROC AUC |", "|---|---|---|", *rows, ""]
    if metrics.parity.validation:
        lines += ["## TFLM vs TFLite int8 (validation images)", "", *parity_lines(metrics.parity.validation),
                  ""]
    lines += [*extra_faces_lines(metrics), *assistant_lines(metrics),
              f"Cost: {tflm.macs:,} MACs (budget {metrics.mac_budget:,}), {_kib(tflm.model_bytes)} model, "
              f"{_kib(tflm.arena_bytes)} arena, estimated {_num(tflm.estimated_ms_on_board)} ms "
              f"on board `{tflm.board}` "
              "(an estimate, not a measurement).", ""]
    if stages_run:
        lines += ["| stage | reused | seconds |", "|---|---|---|"]
        lines += [f"| {s.name} | {'yes' if s.skipped else 'no'} | {_stage_seconds(s)} |" for s in stages_run]
        lines.append("")
    write_text(out_dir / "validation.md", "\n".join(lines))
    public = {"preset": preset.name, "smoke_test": bool(metrics.smoke_test),
              "data": {k: data[k] for k in ("train_images", "train_people", "val_images", "val_people", "test_filter")
                       if k in data},
              "stages": {n: {k: v for k, v in (st.validation or {}).items() if k != "identification_curve"}
                         for n, st in stages.items()},
              "macs": tflm.macs, "mac_budget": metrics.mac_budget, "model_bytes": tflm.model_bytes,
              "arena_bytes": tflm.arena_bytes, "estimated_ms_on_board": tflm.estimated_ms_on_board, "board": tflm.board}
    if metrics.parity.validation:
        public["parity"] = metrics.parity.validation
    for key in ("extra", "assistant"):
        if data.get(key):
            public[key] = data[key]
    if stages_run:
        public["stages_run"] = [s.to_dict() for s in stages_run]
    write_json(out_dir / "validation.json", public)
    return out_dir / "validation.md"


@dataclass
class Plots:
    """The PNG plots a report drew (``drawn``: name -> path, in the order report.md shows them) and
    those it could not draw, each with why (``not_drawn``: name -> reason, a sentence without its
    full stop), which report.md and report.json say rather than leave a plot out without a word."""

    drawn: dict[str, Path] = field(default_factory=dict)
    not_drawn: dict[str, str] = field(default_factory=dict)

    def markdown(self, alt: dict[str, str] | None = None) -> list[str]:
        """report.md's lines: an image for each plot drawn (``alt``: its alternative text by name;
        the name otherwise), then a line for each plot not drawn, with why."""
        alt = alt or {}
        lines = [f"![{alt.get(name, name)}]({path.name})" for name, path in self.drawn.items()]
        missing = [f"- `{name}.png` is not drawn: {why}." for name, why in self.not_drawn.items()]
        return lines + ([""] if lines and missing else []) + missing


SMOKE_TITLE = " (smoke test)"  # ends the title of every plot of a `--quick` build's (or model's) report
STAGE_COLOR = {name: f"C{k}" for k, name in enumerate(STAGE_ORDER)}  # a stage's colour in every build plot
# the build's ROC: the stages that are the same network under another runtime (pruned under TFLite
# float32, TFLite int8 under TFLM int8) give curves on top of one another, so the first of each pair is
# drawn wide and solid and the second thin and dashed over it: both are seen, whichever way they differ
ROC_STYLE = {"teacher": ("-", 1.6), "float": ("-", 1.6), "pruned": ("-", 3.4), "tflite_float": ((0, (4, 2)), 1.3),
             "tflite_int8": ("-", 3.4), "tflm_int8": ((0, (4, 2)), 1.3)}
LEGEND_BELOW = -0.13  # where _legend_below puts a legend, in axes heights under the axes


def _smoke(title: str, smoke_test) -> str:
    """``title``, marked as a smoke test's for a `--quick` build or model."""
    return title + (SMOKE_TITLE if smoke_test else "")


def _roc_low_far(n_negative) -> float:
    """The lowest false-accept rate a ROC draws: one of the ``n_negative`` different-person pairs (below
    it nothing is measured: the curve there would be a flat line drawn from no pair), and not below
    1e-4; 1e-3 where the count is not known (figures from before it was kept)."""
    return max(1e-4, 1 / n_negative) if n_negative else 1e-3


def _roc_axes(ax, low_far: float) -> None:
    """A ROC's axes, both in % as the reports' text gives the rates: the false-accept rate on a log
    scale from ``low_far`` to 100%, the true-accept rate from 0 to 100%, and the chance line (a
    rule that accepts a pair at random accepts as many of either kind: y = x), dotted."""
    import numpy as np

    low = 100 * low_far
    xs = np.logspace(np.log10(low), 2, 60)
    ax.plot(xs, xs, ":", color="0.45", linewidth=1.2, label="chance (accepting pairs at random)", zorder=1)
    ax.set_xscale("log")
    ax.set_xlim(low, 100)
    ax.set_ylim(0, 101)
    ticks = [t for t in (0.01, 0.1, 1, 10, 100) if t >= low * (1 - 1e-9)]
    labels = [f"{t:g}%" for t in ticks]
    if ticks[0] / low > 2:  # the axis' left end named too: one of the different-person pairs
        ticks, labels = [low, *ticks], [f"{low:.2g}%", *labels]
    ax.set_xticks(ticks, labels)
    ax.set_yticks(range(0, 101, 20), [f"{t}%" for t in range(0, 101, 20)])
    ax.set_xlabel("different-person pairs accepted (false accept rate, log scale)")
    ax.set_ylabel("same-person pairs accepted (true accept rate)")
    ax.grid(True, alpha=0.3)


def _operating_point(ax, far: float, tar: float, low_far: float, label: str, color: str, marker: str = "o",
                     size: float = 9) -> None:
    """One threshold's (false accept rate, true accept rate) marked on a ROC drawn by :func:`_roc_axes`,
    over the curves and not cut by the axes; a rate below the axis' left end (none of the pairs
    accepted, or fewer than its one in ``1/low_far``) is drawn on that end, and its label says so."""
    below = far < low_far
    label += " (fewer than the axis' lowest rate: drawn at its left end)" if below and far else \
        " (none accepted: drawn at the axis' left end)" if below else ""
    ax.plot([100 * max(far, low_far)], [100 * tar], marker=marker, markersize=size, color=color,
            markeredgecolor="black", markeredgewidth=0.8, linestyle="none", clip_on=False, zorder=10, label=label)


def _rates(tar: float, far: float) -> str:
    return f"{100 * tar:.1f}% of same-person, {100 * far:.2f}% of different-person pairs accepted"


def build_roc_figure(plt, metrics: BuildMetrics):
    """roc.png's figure (the build's report): every stage's ROC on the test pairs, each in its own
    colour and style (a curve identical to an earlier stage's says so in the legend), the TFLM int8
    stage's operating point at its shipped threshold marked, and the chance line."""
    stages = metrics.stages
    v_tflm = stages["tflm_int8"].verification if "tflm_int8" in stages else {}
    low_far = _roc_low_far(v_tflm.get("n_negative"))
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    _roc_axes(ax, low_far)
    drawn: list[tuple[str, dict]] = []
    for name in STAGE_ORDER:
        v = stages[name].verification if name in stages else {}
        roc = v.get("roc")
        if not roc:
            continue
        same_as = next((other for other, o in drawn if o["far"] == roc["far"] and o["tar"] == roc["tar"]), None)
        style, width = ROC_STYLE[name]
        label = f"{STAGE_LABEL[name]} (AUC {v['auc']:.3f})" + (f": the same curve as {STAGE_LABEL[same_as]}"
                                                              if same_as else "")
        ax.plot([100 * x for x in roc["far"]], [100 * y for y in roc["tar"]], linestyle=style, linewidth=width,
                color=STAGE_COLOR[name], label=label, zorder=2)
        drawn.append((name, roc))
    if "true_accept_rate" in v_tflm and "false_accept_rate" in v_tflm:  # kept since balanced accuracy was
        _operating_point(ax, v_tflm["false_accept_rate"], v_tflm["true_accept_rate"], low_far,
                         f"TFLM int8 at the shipped threshold {v_tflm['threshold']:.4f}: "
                         f"{_rates(v_tflm['true_accept_rate'], v_tflm['false_accept_rate'])}", STAGE_COLOR["tflm_int8"])
    pairs = f" ({v_tflm['n_pairs']:,} pairs)" if v_tflm.get("n_pairs") else ""
    ax.set_title(_smoke(f"ROC on {test_name(metrics)}{pairs}", metrics.smoke_test), fontsize=10)
    _legend_below(ax, fontsize=7)
    return fig


def evaluation_roc_figure(plt, result: dict):
    """roc.png's figure (`evaluate --out`): the model's ROC on the scored pairs, its operating point
    at the threshold it was judged at, the ``--target-far`` threshold's, and the chance line."""
    v = result["verification"]
    low_far = _roc_low_far(v["n_negative"])
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    _roc_axes(ax, low_far)
    ax.plot([100 * x for x in v["roc"]["far"]], [100 * y for y in v["roc"]["tar"]], color="C0", linewidth=1.6,
            label=f"{result['model']} (AUC {v['auc']:.3f})", zorder=2)
    if "true_accept_rate" in v:
        _operating_point(ax, v["false_accept_rate"], v["true_accept_rate"], low_far,
                         f"{_threshold_words(result)} {result['threshold']:.4f}: "
                         f"{_rates(v['true_accept_rate'], v['false_accept_rate'])}", "C1")
    t = result.get("target_far")
    if t:
        tv = t["verification"]
        _operating_point(ax, tv["false_accept_rate"], tv["true_accept_rate"], low_far,
                         f"--target-far {t['far']:g}: threshold {tv['threshold']:.4f}, "
                         f"{_rates(tv['true_accept_rate'], tv['false_accept_rate'])}", "C2", marker="s", size=6.5)
    # was: no title (a build's roc.png has one)
    ax.set_title(_smoke(f"ROC: {v['n_pairs']:,} pairs of {Path(result['data']).name} ({result['pairs']})",
                        result.get("smoke_test")), fontsize=10)
    _legend_below(ax, fontsize=7.5)
    return fig


def _threshold_words(result: dict) -> str:
    """The threshold an evaluation was judged at, in the fewest words (report.md has its source in full)."""
    from tinyface.evaluation.metrics import BEST_THRESHOLD_SOURCE, SHIPPED_THRESHOLD

    source = result.get("threshold_source") or ""
    if source == SHIPPED_THRESHOLD:
        return "the model's threshold"
    if source.startswith(BEST_THRESHOLD_SOURCE):
        return "the best threshold on these pairs (optimistic)"
    return "the threshold"


def training_figure(plt, histories: dict[str, dict], metrics: BuildMetrics):
    """training.png's figure, or None where no stage recorded a loss: the distillation loss of each
    training stage ("distill", "prune", "QAT": Keras histories) epoch after epoch, one colour per
    stage, training solid and validation dashed, each stage's epochs on a shaded band named after it."""
    history = [(label, hist) for label, hist in histories.items() if hist and hist.get("loss")]
    if not history:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    offset = 0
    for k, (label, hist) in enumerate(history):
        n = len(hist["loss"])
        epochs = range(offset + 1, offset + n + 1)
        color = f"C{k}"
        ax.axvspan(offset + 0.5, offset + n + 0.5, color=color, alpha=0.08, linewidth=0, zorder=0)
        ax.text(offset + 0.5 + n / 2, 0.98, label, transform=ax.get_xaxis_transform(), ha="center", va="top",
                fontsize=8, color=color, fontweight="bold")
        # a marker on every epoch: a stage of one epoch (prune.epochs = 1) is a point, which a
        # line alone does not draw (its legend entry stood beside nothing)
        ax.plot(epochs, hist["loss"], "-", color=color, marker="o", markersize=3, label=f"{label} train")
        if "val_loss" in hist:
            ax.plot(epochs, hist["val_loss"], "--", color=color, marker="o", markersize=3, markerfacecolor="white",
                    label=f"{label} validation")
        offset += n
    ax.set_xlim(0.5, offset + 0.5)
    ax.margins(y=0.12)  # room for the stages' names at the top
    ax.set_xlabel("epoch (the stages one after another)")
    ax.set_ylabel("distillation loss")
    ax.set_title(_smoke(f"training curves, preset {metrics.preset}: solid training, dashed validation",
                        metrics.smoke_test), fontsize=10)
    ax.grid(True, alpha=0.3)
    _legend_below(ax, fontsize=8, ncol=3)
    return fig


def size_accuracy_figure(plt, metrics: BuildMetrics):
    """size_accuracy.png's figure: each stage's accuracy on the test pairs against its size, with the
    95% interval of each accuracy (Wilson, over the test pairs); the accuracy axis spans the stages'
    intervals, and its label says where it starts when that is not 0."""
    from tinyface.boards.plots import caption
    from tinyface.evaluation.metrics import wilson_interval

    stages = metrics.stages
    fig, ax = plt.subplots(figsize=(7, 4.5))
    # a legend, not labels beside the points: stages of one size and nearly one accuracy (pruned and
    # TFLite float32, TFLite and TFLM int8) wrote their labels over each other. Each later stage is
    # drawn smaller and in its own marker, so one on top of another leaves both seen.
    shown = [name for name in STAGE_ORDER if stages.get(name) and stages[name].model_bytes]
    lows, highs, counts = [], [], set()
    for k, name in enumerate(shown):
        st = stages[name]
        kib, share = st.model_bytes / 1024, st.verification["accuracy"]
        n = st.verification.get("n_pairs") or 0
        low, high = wilson_interval(share, n)
        lows.append(100 * low), highs.append(100 * high), counts.add(n)
        ax.errorbar([kib], [100 * share], yerr=[[100 * (share - low)], [100 * (high - share)]], fmt="none",
                    ecolor=STAGE_COLOR[name], elinewidth=1.2, capsize=4, zorder=1 + k)
        ax.scatter(kib, 100 * share, s=110 - 14 * k, marker="osD^vP*X"[k % 8], color=STAGE_COLOR[name],
                   edgecolors="black", linewidths=0.5, zorder=10 + k,
                   label=f"{STAGE_LABEL[name]}: {100 * share:.2f}% (95%: {100 * low:.1f}-{100 * high:.1f}), "
                         f"{kib:,.0f} KiB")
    ylabel = f"{test_name(metrics)} accuracy (%)"
    if shown:
        ax.legend(fontsize=7, loc="best")
        span = max(highs) - min(lows)
        bottom, top = max(0.0, min(lows) - 0.15 * span - 0.5), min(100.0, max(highs) + 0.15 * span + 0.5)
        ax.set_ylim(bottom, top)
        if bottom > 0:
            ylabel += f"\nthe axis starts at {bottom:.1f}%, not 0"
    ax.set_xscale("log")
    ax.set_xlabel("model size (KiB, log)")
    ax.set_ylabel(ylabel)
    ax.set_title(_smoke("accuracy vs size per stage", metrics.smoke_test), fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    pairs = " and ".join(f"{n:,}" for n in sorted(counts)) or "the"
    caption(fig, [f"Bars: the 95% confidence interval of each accuracy over its {pairs} test pairs (Wilson score "
                  "interval). Every stage is scored on the same pairs, so the difference between two stages is "
                  "known better than two overlapping bars suggest."])
    return fig


def similarity_figure(plt, v: dict, title: str, lines: list[tuple[str, float, str, tuple[float, float] | None]]):
    """scores.png's figure: the cosine similarity of the same-person and of the different-person
    pairs (the histograms of ``v["roc"]``, metrics.similarity_histogram), each as the share of its own
    kind (there are many more different-person pairs), and a vertical line at each of ``lines``:
    ``(label, threshold, linestyle, (true accept rate, false accept rate) or None)``, with the share
    of either kind it accepts in the legend (where the rates are None, read off the histogram: "~").

    Returns None where ``v`` holds no histogram (figures from before it was kept)."""
    import numpy as np

    from tinyface.evaluation.metrics import SIMILARITY_HISTOGRAM_KEY

    hist = (v.get("roc") or {}).get(SIMILARITY_HISTOGRAM_KEY)
    if not hist:
        return None
    edges = np.array(hist["edges"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    kinds = {"same": ("same-person pairs", "C0"), "different": ("different-person pairs", "C3")}
    for key, (words, color) in kinds.items():
        counts = np.array(hist[key], float)
        total = counts.sum()
        share = 100 * counts / (total or 1)
        ax.stairs(share, edges, fill=True, alpha=0.35, color=color)
        ax.stairs(share, edges, color=color, linewidth=1.2, label=f"{words} ({int(total):,})")
    occupied = np.flatnonzero(np.array(hist["same"]) + np.array(hist["different"]))
    if len(occupied):
        ax.set_xlim(edges[occupied[0]] - 0.05, edges[occupied[-1] + 1] + 0.05)
    for label, threshold, style, rates in lines:
        about = "~" if rates is None else ""
        tar, far = rates or (_share_at_or_above(edges, hist["same"], threshold),
                             _share_at_or_above(edges, hist["different"], threshold))
        ax.axvline(threshold, color="black", linestyle=style, linewidth=1.3, zorder=5,
                   label=f"{label} {threshold:.4f}: accepts what is right of it, {about}{100 * tar:.1f}% of "
                         f"same-person, {about}{100 * far:.2f}% of different-person pairs")
    ax.set_xlabel("cosine similarity of the pair's embeddings")
    ax.set_ylabel("share of the pairs of its kind (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    _legend_below(ax, fontsize=7.5)
    return fig


def _at_threshold(v: dict) -> tuple[float, float] | None:
    """(true accept rate, false accept rate) at a verification's threshold, where it has them."""
    return (v["true_accept_rate"], v["false_accept_rate"]) if "true_accept_rate" in v else None


def _share_at_or_above(edges, counts, threshold: float) -> float:
    """The share of a histogram's pairs in the bins at or above ``threshold`` (a bin split by it counts
    in proportion): what the legend's "~" means; the exact rates are in the report's text."""
    import numpy as np

    counts = np.asarray(counts, float)
    low, high = np.asarray(edges[:-1]), np.asarray(edges[1:])
    part = np.clip((high - threshold) / (high - low), 0, 1)
    return float((counts * part).sum() / (counts.sum() or 1))


def write_plots(out_dir: Path, metrics: BuildMetrics, histories: dict[str, dict]) -> Plots:
    """roc.png, scores.png, training.png (from ``histories``: Keras histories by stage), confusion.png,
    identification.png and size_accuracy.png in ``out_dir``; those that cannot be drawn are in the
    result's ``not_drawn``, with why."""
    from tinyface.boards.plots import pyplot, save_png

    plt = pyplot()

    plots = Plots()
    stages, smoke = metrics.stages, metrics.smoke_test
    plots.drawn["roc"] = save_png(build_roc_figure(plt, metrics), out_dir / "roc.png")

    v = metrics.tflm.verification
    fig = similarity_figure(plt, v, _smoke(f"TFLM int8 on {test_name(metrics)}: similarity of the "
                                           f"{v.get('n_pairs', 0):,} test pairs", smoke),
                            [("the shipped threshold", v["threshold"], "-", _at_threshold(v))])
    if fig is None:
        plots.not_drawn["scores"] = ("this build's evaluation (evaluate/metrics.json) was made before the pairs' "
                                     "similarities were kept; remove the build's evaluate folder and run the build "
                                     "again to redo that step alone")
    else:
        plots.drawn["scores"] = save_png(fig, out_dir / "scores.png")

    fig = training_figure(plt, histories, metrics)
    if fig is None:
        plots.not_drawn["training"] = "no training stage recorded a loss (distill/history.json and the others)"
    else:
        plots.drawn["training"] = save_png(fig, out_dir / "training.png")

    ident = metrics.tflm.identification
    if ident.get("confusion"):
        # the test people's (identification.png beside it is on validation people): said in the title
        label = f"TFLM int8 on test people, accuracy {100 * ident['accuracy']:.1f}%"
        plots.drawn["confusion"] = save_png(confusion_figure(plt, ident, label, smoke), out_dir / "confusion.png")
    else:
        plots.not_drawn["confusion"] = ("the TFLM int8 stage's identification on test people has no confusion "
                                        "matrix (fewer than 2 test people could be enrolled)")

    validation = {name: st.validation for name, st in stages.items()
                  if (st.validation or {}).get("identification_curve")}
    if "tflm_int8" in validation:
        chosen = validation["tflm_int8"]["identification"]
        curves = [(STAGE_LABEL[name], validation[name]["identification_curve"])
                  for name in ("tflm_int8", "teacher") if name in validation]
        plots.drawn["identification"] = identification_plot(
            out_dir / "identification.png", curves,
            [(f"the shipped threshold {metrics.tflm.identification['threshold']:.4f}", chosen["stranger_rate"],
              chosen["probe_accuracy"])],
            _smoke("IDENTIFY on validation people: what each threshold trades", smoke)
            + "\n(labels along the line: thresholds)")
    else:
        plots.not_drawn["identification"] = (
            "too few validation people with enough photos to enroll some and keep others as strangers, so no "
            "identification threshold was chosen on them, nor its trade drawn"
            if not _validation_identification(metrics)
            else "this build's evaluation (evaluate/metrics.json) was made before the curve was kept")

    plots.drawn["size_accuracy"] = save_png(size_accuracy_figure(plt, metrics), out_dir / "size_accuracy.png")
    return plots


def identification_figure(plt, curves: list[tuple[str, dict]], points: list[tuple[str, float, float]],
                          title: str):
    """identification.png's figure: the share of enrolled people's photos accepted under the right name
    against the share of strangers accepted as IDENTIFY's threshold moves, one line per
    ``(label, metrics.identification_curve record)`` (thresholds labelled every 0.05 along the
    first, none where it would sit under a marked point), and ``(label, strangers accepted,
    accuracy)`` points marked (a shipped threshold, a --target-far one), whole even on the axes:
    what a threshold of one's own would trade, seen rather than read."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 5))
    # the axes first: whether a label would sit under a marked point is measured on them
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(0, 100)
    ticks = [0, 0.5, 1, 2, 5, 10, 20, 50, 100]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_ylim(0, 102)  # a line at 100% stays visible
    marked = [ax.transData.transform((100 * rate, 100 * accuracy)) for _, rate, accuracy in points]
    points_per_pixel = 72 / fig.dpi

    def under_a_mark(x: float, y: float, dx: float, dy: float) -> bool:
        """Whether a label at (x, y), its middle (dx, dy) points away, is within a marker of a marked point."""
        at = ax.transData.transform((x, y))
        return any(np.hypot(*(at - m)) * points_per_pixel < 8 or
                   np.hypot(*(at - m) * points_per_pixel + (dx, dy)) < 14 for m in marked)

    for k, (label, c) in enumerate(curves):
        rates = [100 * r for r in c["stranger_false_accept_rate"]]
        accuracy = [100 * a for a in c["accuracy"]]
        drawn = (f"random galleries of {c['gallery']} ({c['draws']} draws)" if c["draws"] > 1
                 else f"the gallery of all {c['gallery']}")
        ax.plot(rates, accuracy, color=f"C{k}", label=f"{label}, {drawn}")
        if k:
            continue
        last = None  # every 0.05, where the curve moves, none crowding the last
        for t, x, y in zip(c["thresholds"], rates, accuracy, strict=True):
            if abs(t * 20 - round(t * 20)) < 1e-6 and 0.2 < x < 90 and (last is None or x < last / 1.4):
                # left of the point, where the line has come from (was: right of it, so cut at 100%), and under
                # the line, but over it near 0% (was: on the axis' numbers)
                up = y < 12
                if under_a_mark(x, y, -12, 7 if up else -7):  # was: drawn under the marker, unreadable
                    continue
                last = x
                ax.annotate(f"{t:.2f}", (x, y), textcoords="offset points", fontsize=7, color="C0",
                            xytext=(-4, 4 if up else -10), ha="right")
    for k, (label, rate, accuracy) in enumerate(points):
        # whole at 0% or 100% (was: cut in half by the axes) and over the lines
        ax.plot(100 * rate, 100 * accuracy, "os^"[k % 3], color=f"C{len(curves) + k}", markersize=9 - 2 * k,
                markeredgecolor="black", markeredgewidth=0.8, clip_on=False, zorder=10, label=label)
    ax.set_xlabel("strangers accepted (%; linear up to 1%, logarithmic above: the low rates a door needs, spread out)",
                  fontsize=8)
    ax.set_ylabel("enrolled people's photos accepted under the right name (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    _legend_below(ax, fontsize=8)
    return fig


def identification_plot(path: Path, curves: list[tuple[str, dict]], points: list[tuple[str, float, float]],
                        title: str) -> Path:
    """identification.png (:func:`identification_figure`) written to ``path``."""
    from tinyface.boards.plots import pyplot, save_png

    return save_png(identification_figure(pyplot(), curves, points, title), path)


def _legend_below(ax, fontsize: float, ncol: int = 1) -> None:
    """The legend under the plot, below its x label: inside, no corner is free for every model (a
    good model's curves leave the lower right empty, a poor one's cross it, and matplotlib's "best"
    place, which weighs a line by its points, put it over a long flat stretch at 0%)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, LEGEND_BELOW), fontsize=fontsize, frameon=False, ncol=ncol)


EVALUATION_REPORT_FILES = ("report.json", "report.md", "roc.png", "scores.png", "confusion.png", "identification.png")
# What a build's report step writes beside its bundle (write_report, write_validation_report,
# write_model_card and the plots): the pipeline removes them first (tests/train/test_build_quick.py
# checks that a build writes nothing else there).
BUILD_REPORT_FILES = ("MODEL_CARD.md", "report.md", "report.json", "validation.md", "validation.json", "roc.png",
                      "scores.png", "training.png", "confusion.png", "size_accuracy.png", "identification.png")


# report.json's "kind": what marks a folder as an evaluation's, which a later `evaluate --out` may replace
EVALUATION_KIND = "tinyface evaluate"
# the keys every evaluation's report.json has had since the first: one written before EVALUATION_KIND
# is recognised by them (a build's report.json has none of "runtime", "no_face", "pairs")
_EARLIER_EVALUATION_KEYS = frozenset({"model", "runtime", "data", "images", "skipped", "no_face", "people",
                                      "threshold", "threshold_source", "pairs", "verification", "identification"})


def check_evaluation_out(out_dir: str | Path) -> Path:
    """Create ``out_dir`` (`tinyface evaluate --out`) and check that every file of the report
    (EVALUATION_REPORT_FILES) can be written there: before the evaluation (minutes), not after it.
    A folder that exists must be empty or hold an earlier evaluation's report
    (:func:`is_evaluation_report`): the report replaces files of those names, and in a build's folder
    or among the user's own files they are someone else's.

    Raises:
        OutputError: the folder cannot be created or written (tinyface.fsutil.ensure_dir,
            check_writable), a report file's name is taken by a folder, or the folder holds files
            that are not an evaluation's.
    """
    from tinyface.errors import OutputError
    from tinyface.fsutil import check_writable, ensure_dir

    out_dir = Path(out_dir)
    for name in EVALUATION_REPORT_FILES:
        if (out_dir / name).is_dir():  # neither removed nor replaced by a file
            raise OutputError(f"cannot write the report in --out {out_dir}: {out_dir / name} is a folder",
                              hint="move that folder away, or choose another --out")
    _check_own_folder(out_dir)
    out_dir = ensure_dir(out_dir, "--out")
    check_writable(out_dir / EVALUATION_REPORT_FILES[0], "--out")  # a real file made and removed: a read-only disk
    return out_dir


# held by `tinyface evaluate --out` in its folder while it runs (not .lock, which marks a build's folder)
EVALUATION_LOCK = ".evaluate.lock"


@contextlib.contextmanager
def hold_evaluation_out(out_dir: str | Path) -> Iterator[Path]:
    """``out_dir`` checked (:func:`check_evaluation_out`) and held for this process until the block
    ends: a second `tinyface evaluate` into the same folder is refused (its pid), instead of
    interleaving its report's files with this one's, and the temporary files a killed evaluation
    left there are removed (only the holder may: a running writer's look the same). The lock file is
    removed as the block ends, still held (exclusive_folder's ``remove``): the folder is left with the
    report alone."""
    from tinyface.fsutil import exclusive_folder, remove_temp_leftovers

    out_dir = check_evaluation_out(out_dir)
    with exclusive_folder(out_dir, "--out", "tinyface evaluate", lock_name=EVALUATION_LOCK, remove=True):
        remove_temp_leftovers(out_dir)
        yield out_dir


def is_evaluation_report(path: str | Path) -> bool:
    """Whether the file ``path`` is the report.json of a `tinyface evaluate --out`: its ``kind``, or
    for a report written before there was one, the keys every evaluation's report has had."""
    return _is_evaluation(_read_json_object(path))


def _is_evaluation(report: dict | None) -> bool:
    """Whether a report.json's object (None: none readable) is an evaluation's (is_evaluation_report)."""
    if report is None:
        return False
    if "kind" in report:
        return report["kind"] == EVALUATION_KIND
    return _EARLIER_EVALUATION_KEYS <= report.keys() and "stages" not in report


def _read_json_object(path: str | Path) -> dict | None:
    """The JSON object in the file ``path``; None where it is missing, unreadable or no JSON object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, not UTF-8
        return None
    return data if isinstance(data, dict) else None


def _check_own_folder(out_dir: Path) -> None:
    """Refuse an ``out_dir`` that holds files, unless it holds an earlier evaluation's report
    (tinyface's own temp files, left by a killed run, do not count).

    Raises:
        OutputError: it cannot be listed, or holds files that are not an evaluation's report.
    """
    from tinyface.errors import OutputError
    from tinyface.fsutil import LOCK_NAME, is_temp_name

    if not out_dir.is_dir():
        return  # made by ensure_dir, or refused there (a file in the way)
    try:
        names = sorted(entry.name for entry in os.scandir(out_dir)
                       if not is_temp_name(entry.name) and entry.name != EVALUATION_LOCK)
    except OSError as exc:
        raise OutputError(f"cannot read --out {out_dir}: {exc.strerror or exc}",
                          hint="choose another --out, a new or empty folder") from None
    if not names:
        return
    report = _read_json_object(out_dir / "report.json")
    if _is_evaluation(report):
        return
    build = (LOCK_NAME in names or "model.json" in names or "MODEL_CARD.md" in names or "stages" in (report or {}))
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    what = ("is a tinyface build or model folder" if build else
            "holds files that are not an earlier evaluation's report")
    raise OutputError(f"--out {out_dir} {what} ({shown}): the report's report.md, report.json and plots would be "
                      "written among them, over any of the same name",
                      hint="choose another --out: a new or empty folder, or one of an earlier `tinyface evaluate "
                           "--out`")


def training_people_note(result: dict) -> str | None:
    """One sentence for an evaluation that scored LFW training people (its figures are optimistic
    for a tinyface build), with the held-out pairs to use instead; None when it scored none."""
    t = result.get("training_people")
    if not t or not (t["in_pairs"] or t["in_identification"]):
        return None
    if t["list"] is None:  # a folder of people the model's own build split
        where = (f"{t['in_pairs']:,} of the {t['pairs_people']:,} people in these pairs" if t["in_pairs"] else
                 f"{t['in_identification']:,} of the {t['identification_people']:,} people in identification")
        return (f"{where} are people this model's build trained on or chose its thresholds on (it split the people "
                "of this folder, model.json's extra.split), so these figures are optimistic; its build's report "
                "has the figures on the people it held out")
    if not t["in_pairs"]:
        return (f"{t['in_identification']:,} of the {t['identification_people']:,} people in identification are LFW "
                f"training people ({t['list']}; the pairs hold none): tinyface builds train and choose their "
                f"thresholds on them, so for such a model the identification figures are optimistic")
    from tinyface.data.lfw import PAIRS_DEV_TEST

    test_pairs = Path(t["list"]).with_name(PAIRS_DEV_TEST)
    return (f"{t['in_pairs']:,} of the {t['pairs_people']:,} people in these pairs are LFW training people "
            f"({t['list']}): tinyface builds train and choose their thresholds on them, so for such a model these "
            f"figures are optimistic; for held-out pairs: --pairs {test_pairs}")


def write_evaluation_report(out_dir: Path, result: dict) -> Path:
    """report.md / report.json / roc.png (and confusion.png, identification.png) for
    ``tinyface evaluate``, in place of an earlier report's files: the new ones are written in full
    to temp names first, then renamed onto their names (report.json last), and only then are the
    earlier report's files that the new one has no counterpart for removed (a confusion.png beside a
    report without identification). A failed write leaves an earlier report as it was.

    Raises:
        OutputError: a file cannot be written (the folder changed since
            :func:`check_evaluation_out`, a full disk), or an earlier file cannot be removed.
    """
    from tinyface.errors import OutputError
    from tinyface.fsutil import replace_together

    out_dir = Path(out_dir)
    files = None
    try:
        with replace_together(out_dir) as files:
            _write_evaluation_report(files, result)
    except (OutputError, OSError) as exc:  # OSError: what no writer turned into an OutputError
        if isinstance(exc, OutputError):
            detail, hint = str(exc).removeprefix("cannot write "), exc.hint
        else:
            detail, hint = (f"{exc.filename}: " if exc.filename else "") + str(exc.strerror or exc), None
        replaced = files.replaced if files else []
        # a rename fails only where the folder changed meanwhile (another program): then say what it left
        kept = (f"the report in {out_dir} is incomplete: {', '.join(p.name for p in replaced)} replaced" if replaced
                else f"no file in {out_dir} was replaced: any earlier report there is as it was")
        raise OutputError(f"cannot write the report in {out_dir}: {detail}",
                          hint="; ".join(filter(None, (hint, kept)))) from None
    written = {target.name for target in files.staged}
    for name in EVALUATION_REPORT_FILES:
        if name not in written:
            try:
                (out_dir / name).unlink(missing_ok=True)
            except OSError as exc:
                raise OutputError(f"the report in {out_dir} is written, but the earlier report's {name} cannot be "
                                  f"removed: {exc.strerror or exc}", hint="remove it yourself") from None
    return out_dir / "report.md"


def _write_evaluation_report(files, result: dict) -> None:
    """The report's files, each through ``files.write`` (tinyface.fsutil.FileGroup); report.json last."""
    from tinyface.boards.plots import pyplot

    plt = pyplot()
    v, i = result["verification"], result["identification"]
    plots = _evaluation_plots(files, plt, result)
    lines = [f"# tinyface evaluation — {result['model']} ({result['runtime']})", "",
             f"Dataset `{result['data']}`: {result['images']:,} images of {result['n_people']:,} people; "
             f"{len(result['skipped'])} skipped, {result['no_face']} without a detected face (each scored as a "
             "centered crop).", "",
             *([f"> **{SMOKE_TEST}**", ""] if result.get("smoke_test") else []),
             *([f"Note: {note}.", ""] if (note := training_people_note(result)) else []),
             f"Threshold {result['threshold']:.4f}: {result['threshold_source']}.", "",
             "| metric | value |", "|---|---|",
             f"| verification balanced accuracy ({v['n_pairs']:,} pairs: {result['pairs']}) | "
             f"{_pct(v['balanced_accuracy'])} |",
             f"| same-person pairs accepted / different-person pairs accepted ({v['n_negative']:,}) | "
             f"{_pct(v['true_accept_rate'])} / {_pct(v['false_accept_rate'])} |",
             f"| ROC AUC | {v['auc']:.4f} |",
             f"| TAR @ FAR=1e-2 / 1e-3 | {_measured_tar(v, '0.01')} / {_measured_tar(v, '0.001')} |"]
    if i:
        lines += [f"| identification accuracy ({i['n_people']} people, {i['n_probes']} probes; accepted at "
                  f"{i['threshold']:.4f}) | {_pct(i['accuracy'])} |",
                  f"| closed-set accuracy (threshold ignored) | {_pct(i['closed_set_accuracy'])} |",
                  f"| macro precision / recall / F1 | {i['macro_precision']:.3f} / {i['macro_recall']:.3f} / "
                  f"{i['macro_f1']:.3f} |",
                  f"| strangers accepted ({i['n_strangers']} photos) | "
                  f"{_stranger_rate(i['stranger_false_accept_rate'])} |"]
        dg = _smaller_gallery(i)
        if dg:
            words = _gallery_words(dg, i["n_people"])
            lines += [f"| identification accuracy, {words} | {_pct(dg['accuracy'])} |",
                      f"| strangers accepted, {words} | {_stranger_rate(dg['stranger_false_accept_rate'])} |"]
    t = result.get("target_far")
    if t:
        tv = t["verification"]
        lines.append(f"| verification threshold for FAR {t['far']:g} on these people (TAR) | "
                     f"{tv['threshold']:.4f} ({_pct(tv['true_accept_rate'])})"
                     f"{_unmeasured_far(tv, t['far'], tv.get('negative_pairs'), 'different-person pairs')} |")
        if "identification" in t:
            ti = t["identification"]
            lines.append(f"| identification threshold for FAR {t['far']:g} on these strangers, by galleries of "
                         f"{ti['gallery']} (accuracy; `--set firmware.identify_threshold=` puts it on a board) | "
                         f"{ti['threshold']:.4f} ({_pct(ti['accuracy'])})"
                         f"{_unmeasured_far(ti, t['far'], ti.get('strangers'), 'stranger photos')} |")
    lines += ["", *plots.markdown({"identification": "identification by threshold"}), ""]
    with files.write("report.md") as tmp:
        write_text(tmp, "\n".join(lines))
    public = {"kind": EVALUATION_KIND, **json.loads(json.dumps(result))}
    public["verification"].pop("roc", None)
    public["plots"] = {name: path.name for name, path in plots.drawn.items()}
    public["plots_not_drawn"] = plots.not_drawn
    with files.write("report.json") as tmp:  # the mark of an evaluation's folder (check_evaluation_out)
        write_json(tmp, public)


def _evaluation_plots(files, plt, result: dict) -> Plots:
    """`evaluate --out`'s plots, each through ``files.write`` (tinyface.fsutil.FileGroup): roc.png,
    scores.png, confusion.png and identification.png, or why one cannot be drawn."""
    from tinyface.boards.plots import save_png

    plots = Plots()
    v, i, smoke = result["verification"], result["identification"], result.get("smoke_test")

    def write(name: str, fig) -> None:
        with files.write(f"{name}.png") as tmp:
            save_png(fig, tmp)
        plots.drawn[name] = Path(files.folder) / f"{name}.png"

    write("roc", evaluation_roc_figure(plt, result))
    t = result.get("target_far")
    fig = similarity_figure(
        plt, v, _smoke(f"similarity of the {v['n_pairs']:,} pairs of {Path(result['data']).name} ({result['pairs']})",
                       smoke),
        [(_threshold_words(result), result["threshold"], "-", _at_threshold(v))]
        + ([(f"--target-far {t['far']:g}: threshold", t["verification"]["threshold"], "--",
             _at_threshold(t["verification"]))] if t else []))
    if fig is None:
        plots.not_drawn["scores"] = "the evaluation kept no histogram of the pairs' similarities"
    else:
        write("scores", fig)
    no_identification = f"no identification: {result.get('note') or 'fewer than 2 people could be enrolled'}"
    if i:
        write("confusion", confusion_figure(plt, i, smoke_test=smoke))
    else:
        plots.not_drawn["confusion"] = no_identification
    if result.get("identification_curve"):
        dg = _device_gallery(i) if i else None
        ti = (t or {}).get("identification")
        write("identification", identification_figure(
            plt, [(result["model"], result["identification_curve"])],
            ([(f"the model's threshold {i['threshold']:.4f}", dg["stranger_false_accept_rate"],
               dg["accuracy"])] if dg else []) +
            ([(f"--target-far {t['far']:g}: {ti['threshold']:.4f}", ti["stranger_false_accept_rate"],
               ti["accuracy"])] if ti else []),
            _smoke("IDENTIFY: what each threshold trades", smoke) + "\n(labels along the line: thresholds)"))
    else:
        plots.not_drawn["identification"] = no_identification if not i else (
            f"no strangers (photos of people not enrolled) whose acceptance it could show: all {i['n_people']} "
            f"people were enrolled (`--strangers` holds a share of them out only where 3 or more have more than "
            f"{result.get('enroll_images', '?')} photos); add people, or people with fewer photos")
    return plots


CONFUSION_NAMED = 40  # people up to which confusion.png shows every one; beyond, the CONFUSION_WORST
CONFUSION_WORST = 20  # people with the most probes misidentified or rejected
CONFUSION_COUNTED = 20  # rows up to which it writes each cell's count
REJECTED_COLUMN = "rejected\n(unknown)"
OTHERS_COLUMN = "someone\nnot shown"


def confusion_rows(ident: dict) -> tuple[list[int], bool]:
    """The rows (indices into ``ident["people"]``) confusion.png shows, and whether they are a
    selection: every person up to CONFUSION_NAMED, in the order of ``people``; beyond, the
    CONFUSION_WORST with the most probes misidentified or rejected (most first; ties by name), since
    hundreds of rows show a near-white diagonal and nothing else."""
    import numpy as np

    matrix = np.array(ident["confusion"], int)
    k = len(ident["people"])
    if k <= CONFUSION_NAMED:
        return list(range(k)), False
    errors = matrix.sum(axis=1) - np.diag(matrix[:, :k])
    return sorted(range(k), key=lambda r: (-int(errors[r]), ident["people"][r]))[:CONFUSION_WORST], True


def confusion_figure(plt, ident: dict, label: str = "", smoke_test: bool = False):
    """confusion.png's figure (`evaluate --out` and the build's report): who each enrolled person's
    probes were identified as, at the identification threshold (``ident``: an identification, with
    ``people``, ``confusion``, ``threshold`` and ``n_probes``; ``label`` ends the title, and
    ``smoke_test`` marks it as a smoke test's).

    Each cell is coloured by its share of the row (that person's probes), so that a person with 230
    probes does not wash out everyone else's colours; the count is written in each cell (up to
    CONFUSION_COUNTED rows). Rows are named after the people (with their probes' count); the last
    column, set apart by a line, is the probes rejected as unknown. Above CONFUSION_NAMED people
    only the CONFUSION_WORST with the most errors are shown (:func:`confusion_rows`), with a column
    for the probes taken for someone not shown, and the title says so."""
    import numpy as np

    matrix = np.array(ident["confusion"], int)
    people = list(ident["people"])
    k = len(people)
    rows, selected = confusion_rows(ident)
    names = [people[r] for r in rows]
    cells = matrix[np.ix_(rows, rows)] if rows else np.zeros((0, 0), int)
    extra = [REJECTED_COLUMN]
    if selected:
        others = matrix[rows, :k].sum(axis=1) - cells.sum(axis=1)
        shown = np.column_stack([cells, others, matrix[rows, k]])
        extra = [OTHERS_COLUMN, REJECTED_COLUMN]
    else:
        shown = matrix
    probes = matrix[rows].sum(axis=1) if rows else np.zeros(0, int)
    share = 100 * shown / np.maximum(probes, 1)[:, None]
    n_rows, n_cols = shown.shape
    side = min(16.0, max(6.0, 3.0 + 0.3 * n_cols))
    fig, ax = plt.subplots(figsize=(side + 2.5, min(16.0, max(5.0, 2.5 + 0.3 * n_rows))))
    im = ax.imshow(share, cmap="Blues", aspect="auto", vmin=0, vmax=100)
    small = 9 if n_rows <= CONFUSION_COUNTED else 7
    ax.set_xticks(range(n_cols), [*names, *extra], rotation=90, fontsize=small)
    ax.set_yticks(range(n_rows), [f"{name} ({n})" for name, n in zip(names, probes, strict=True)], fontsize=small)
    for tick in ax.get_xticklabels()[len(names):]:
        tick.set_fontweight("bold")
    for col in range(len(names), n_cols):  # the columns that are no person of the rows, set apart
        ax.axvline(col - 0.5, color="black", linewidth=1.5)
    if n_rows <= CONFUSION_COUNTED:
        for (row, col), n in np.ndenumerate(shown):
            if n:
                ax.text(col, row, str(n), ha="center", va="center", fontsize=8,
                        color="white" if share[row, col] > 50 else "black")
    ax.set_xlabel("identified as (last column: rejected as unknown, below the threshold)")
    ax.set_ylabel("true person (their probes)")
    head = f"IDENTIFY at threshold {ident['threshold']:.4f}: {ident['n_probes']:,} probes of {k} enrolled people"
    if selected:
        head += (f"\nthe {len(rows)} people with the most probes misidentified or rejected; "
                 f"'someone not shown': one of the other {k - len(rows)}")
    ax.set_title(_smoke(head + (f"\n({label})" if label else ""), smoke_test), fontsize=10)
    fig.colorbar(im, ax=ax, label="share of the person's probes (%)")
    return fig


def _measured_tar(v: dict, far: str) -> str:
    """An evaluation's TAR at ``far``, and that it could not be measured where there are fewer
    than 1/far different-person pairs (``tar_at_far_measurable``, tinyface.evaluation.model_eval)."""
    if v.get("tar_at_far_measurable", {}).get(far, True):
        return _pct(v["tar_at_far"][far])
    return f"{_pct(v['tar_at_far'][far])} (not measurable with {v['n_negative']:,} different-person pairs)"


def _unmeasured_far(target: dict, far: float, negatives, what: str) -> str:
    """What a --target-far threshold is where the rate is below one of the ``negatives`` (its
    ``measurable`` False, metrics.measurable): the threshold that accepts none of them, as the
    text output says; nothing where it was measured."""
    if target.get("measurable", True):
        return ""
    return f" (not measurable: {far:g} is below one in {negatives:,} {what}; this threshold accepts none of them)"


def _stranger_rate(rate: float | None) -> str:
    """An evaluation's stranger false-accept rate, or that there were no strangers to measure it on."""
    return "not measured (no strangers)" if rate is None else _pct(rate)


def write_model_card(out_dir: Path, metrics: BuildMetrics, settings, preset, meta) -> Path:
    """MODEL_CARD.md beside model.tflite: data, metrics, cost, threshold and how it was built."""
    tflm, teacher = metrics.tflm, metrics.stages["teacher"]
    v, i = tflm.verification, tflm.identification
    d, ds, pr, q = settings.data, settings.distill, settings.prune, settings.quantize
    dataset = metrics.dataset_or_lfw
    data = metrics.data
    lfw = dataset["kind"] == "lfw-view1"
    held_out = ("LFW `pairsDevTest.txt` and `peopleDevTest.txt`" if lfw
                else f"{test_name(metrics)}, people never trained on")
    lines = [
        f"# Model card: {meta.name}" + (" — SMOKE TEST" if metrics.smoke_test else ""),
        "",
        *smoke_test_lines(metrics),
        f"A {meta.input_shape[1]}x{meta.input_shape[2]}x{meta.input_shape[3]} "
        f"{'grayscale' if meta.input_shape[3] == 1 else 'RGB'} face -> {meta.embedding_dim}-value embedding; two faces "
        f"are the same person when the cosine similarity of their embeddings is >= **{meta.threshold:.4f}**; "
        + (f"{identify_sentence(meta.identify_at, d.identify_stranger_rate, _chosen_gallery(metrics, settings))} "
           if _validation_identification(metrics) else
           f"identification (IDENTIFY on the device: the best of the enrolled people) accepts at >= "
           f"**{meta.identify_at:.4f}**, the verification threshold: too few validation people to choose one of "
           "its own on. ")
        + f"Fully int8 (weights, activations, input, output) for TensorFlow Lite Micro; board preset `{preset.name}`.",
        "",
        "## Intended use",
        "",
        "Face verification and identification of a few enrolled people on an ESP32-class microcontroller, on "
        "faces already detected and aligned the way `tinyface` aligns them (dlib 5-point landmarks, "
        f"face-chip padding {d.padding}). Not for surveillance or any decision with legal or safety consequences; "
        + ("accuracy on people unlike LFW's (mostly adult public figures in news photos) is not measured here."
           if lfw else f"accuracy on people unlike those in {dataset['name']} is not measured here."),
        "",
        f"## Metrics (held-out: {held_out}, never used for training or selection)",
        "",
        "| metric | this model (TFLM int8) | teacher (dlib ResNet) |",
        "|---|---|---|",
        f"| {test_name(metrics)} verification accuracy ({v['n_pairs']} pairs)"
        f"{' (smoke test)' if metrics.smoke_test else ''} | {_pct(v['accuracy'])} | "
        f"{_pct(teacher.verification['accuracy'])} |",
        *_other_threshold_row(metrics, v, teacher.verification),
        f"| ROC AUC | {v['auc']:.4f} | {teacher.verification['auc']:.4f} |",
        f"| TAR @ FAR = 1e-2 | {_measured_tar(v, '0.01')} | {_measured_tar(teacher.verification, '0.01')} |",
        f"| identification accuracy ({i['n_people']} people x {d.enroll_images} enrolled, {i['n_probes']} probes) | "
        f"{_pct(i['accuracy'])} | {_pct(teacher.identification['accuracy'])} |",
        f"| identification macro F1 | {i['macro_f1']:.3f} | {teacher.identification['macro_f1']:.3f} |",
        f"| closed-set identification (best match, no threshold) | {_pct(i['closed_set_accuracy'])} | "
        f"{_pct(teacher.identification['closed_set_accuracy'])} |",
        f"| strangers accepted ({i['n_strangers']}, at the identification threshold) | "
        f"{_pct(i['stranger_false_accept_rate'])} | {_pct(teacher.identification['stranger_false_accept_rate'])} |",
        *_card_gallery_rows(i, teacher.identification),
        "",
        "## Cost",
        "",
        f"- model: {tflm.model_bytes:,} bytes ({tflm.model_bytes_gzip:,} gzip-compressed); "
        f"{tflm.params:,} parameters; {tflm.macs:,} MACs per face (budget {metrics.mac_budget:,})",
        f"- tensor arena: {tflm.arena_bytes:,} bytes, recorded by TFLM (the firmware adds a margin, and on "
        "the ESP32-S3 the scratch ESP-NN's kernels ask for: docs/firmware.md)",
        f"- estimated latency on `{tflm.board}`: {tflm.estimated_ms_on_board:.1f} ms "
        f"(cost model, not a measurement: {tflm.cost_model_source})",
        f"- ops: {', '.join(metrics.ops)}",
        "",
        "## How it was built",
        "",
        (f"- data: LFW deep-funneled, {data['train_images']:,} images of {data['train_people']:,} "
         f"`peopleDevTrain` people for training, {data['val_images']:,} images of "
         f"{data['val_people']:,} other `peopleDevTrain` people for validation; the threshold was chosen "
         f"on {metrics.threshold_from}" if lfw else
         f"- data: {dataset['name']} (one folder per person), {data['train_images']:,} images of "
         f"{data['train_people']:,} people for training, {data['val_images']:,} images of "
         f"{data['val_people']:,} other people for validation, the rest held out for the test; the "
         f"threshold was chosen on {metrics.threshold_from}"),
        *[line for line in [_test_filter_card_line(data), _extra_card_line(metrics, settings),
                            _assistant_card_line(metrics)] if line],
        f"- student: {_student_words(settings.student)}, distilled for {ds.epochs} epochs "
        f"(batch {ds.batch_size}, Adam, lr {ds.learning_rate}, cosine decay) toward the dlib ResNet embeddings "
        f"centered on "
        f"{_centered_on(ds, data)} "
        f"(cosine + relation loss, alpha {ds.alpha}), "
        + _training_data_line(ds),
        "- pruning: " + (f"magnitude pruning to {pr.target_sparsity:.0%} sparsity, {pr.epochs} fine-tuning "
                         f"epoch{'s' if pr.epochs != 1 else ''}" if pr.enabled else "off"),
        f"- quantization: full int8 ({'PTQ and QAT, the better on validation kept' if q.qat else 'post-training'}), "
        f"calibrated on {q.calibration_images} training images",
        f"- reproduce: `{reproduce_command(settings, preset, bool(metrics.smoke_test))}` (every setting in "
        "report.json)",
        "",
    ]
    return write_text(Path(out_dir) / "MODEL_CARD.md", "\n".join(lines))


# the model card's identification sentence: one function writes it, and
# benchmarks/identify_threshold.py --write finds it (this or its earlier wording) to replace it
IDENTIFY_SENTENCE_RE = (r"identification \(IDENTIFY on the device: the best of the enrolled people\) accepts at >= "
                        r"\*\*\d+\.\d+\*\*, chosen on validation people so that about \d+% of strangers are "
                        r"accepted( by a gallery of \d+ people \(fewer when fewer are enrolled\))?\.")


def identify_sentence(threshold: float, stranger_rate: float, gallery: int) -> str:
    """The model card's sentence on the identification threshold (``gallery``: the gallery size
    it was chosen for, :func:`tinyface.evaluation.metrics.open_set_threshold`)."""
    return (f"identification (IDENTIFY on the device: the best of the enrolled people) accepts at >= "
            f"**{threshold:.4f}**, chosen on validation people so that about {stranger_rate:.0%} of strangers are "
            f"accepted by a gallery of {gallery} people (fewer when fewer are enrolled).")


def _chosen_gallery(metrics: BuildMetrics, settings) -> int:
    """The gallery size the shipped identification threshold was chosen for: the validation
    record's (fewer than ``data.identify_gallery`` when fewer validation people could be enrolled)."""
    ident = _validation_identification(metrics)
    from tinyface.evaluation.metrics import gallery_for

    return ident.get("gallery") or ident.get("enrolled") or gallery_for(settings.data.identify_gallery)


def _card_gallery_rows(i: dict, teacher: dict) -> list[str]:
    """The model card's identification by galleries of the device's size (none for builds
    from before it was recorded)."""
    dg, dt = _smaller_gallery(i), _device_gallery(teacher)
    if not dg:
        return []
    words = _gallery_words(dg, i["n_people"])
    return [f"| identification accuracy, {words} | {_pct(dg['accuracy'])} | {_pct(dt.get('accuracy'))} |",
            f"| strangers accepted, {words} | {_pct(dg['stranger_false_accept_rate'])} | "
            f"{_pct(dt.get('stranger_false_accept_rate'))} |"]


def _other_threshold_row(metrics: BuildMetrics, v: dict, teacher: dict) -> list[str]:
    other = _threshold_sources(metrics)[1]
    key = f"accuracy_at_{other}_threshold"
    if key not in v or key not in teacher:
        return []
    return [f"| the same pairs, at a threshold chosen on {_OTHER_WORDS[other]} | {_pct(v[key])} | "
            f"{_pct(teacher[key])} |"]


# machine-specific settings: where the data and the cache are, how many processes
_LOCAL_SETTINGS = {("data", "dir"), ("data", "cache_dir"), ("data", "workers")}


def reproduce_command(settings, preset, quick: bool = False) -> str:
    """The `tinyface build` command that makes this model again: the preset (and ``--quick`` for a
    smoke test: it also takes a subset of the data, which no setting does) plus a ``--set`` for
    every setting that differs from the preset (paths and process counts aside; --set wins over
    --quick, so the settings are these whatever --quick's layer holds)."""
    from tinyface import config

    base = config.Settings()
    config.apply(base, preset.settings(), "the preset")
    want, have = settings.to_dict(), base.to_dict()
    sets = [f"--set {shlex.quote(f'{section}.{key}={config._toml_value(value)}')}"
            for section, values in want.items() for key, value in values.items()
            if (section, key) not in _LOCAL_SETTINGS and value != have[section][key]]
    return " ".join([f"tinyface build --preset {preset.name}", *(["--quick"] if quick else []), *sets])


def errata_sentence(data: dict) -> str:
    """What data.test_filter dropped, as a sentence (empty when it was off)."""
    f = (data or {}).get("test_filter")
    if not f:
        return ""
    train = f.get("train_near_test_image", 0) + f.get("train_named_as_test_person", 0)
    val = f.get("val_near_test_image", 0) + f.get("val_named_as_test_person", 0)
    return (f"{train:,} training and {val:,} validation images were dropped as test images filed again "
            f"(within {f['distance']:g} of a test person's image, or a test person under another spelling: "
            "data.test_filter).")


def _after(sentence: str) -> str:
    """``sentence`` to follow another one, or nothing."""
    return f" {sentence}" if sentence else ""


def _test_filter_card_line(data: dict) -> str:
    sentence = errata_sentence(data)
    return f"- LFW's errata: {sentence}" if sentence else ""


def _extra_card_line(metrics: BuildMetrics, settings) -> str:
    """The model card's line on extra faces, crediting the sets that need it."""
    x = (metrics.data or {}).get("extra")
    if not x:
        return ""
    from tinyface.config import DATASETS, FETCHABLE_EXTRA

    credits = [DATASETS[d].credit if d in FETCHABLE_EXTRA else f"`{d}`" for d in settings.extra.dirs]
    who = (f"{x['people']:,} people in people folders, the rest without identities" if x.get("people")
           else "no identities")
    return (f"- extra faces for distillation ({who}): {x['used']:,} of {x['found']:,} images from "
            f"{', '.join(credits)}; {x['too_close_to_test']:,} dropped as too close to a test person"
            + (f", {x['named_after_held_out_person']:,} as named after a validation or test person"
               if x.get("named_after_held_out_person") else ""))


def _student_words(st) -> str:
    """The student's architecture in words (model card)."""
    words = f"`{st.arch}` width {st.width}"
    if "repeats" in st.key():
        words += f", {'/'.join(map(str, st.repeats))} blocks per stage"
    if st.branches:
        words += (f" (trained with {st.branches} parallel convolution{'s' if st.branches > 1 else ''} in each, "
                  "plus 1x1 and identity branches, folded into one after distillation: the same network on the board)")
    return words


def _centered_on(ds, data: dict) -> str:
    """What the distillation targets were centered on (model card): distill.center "all" adds the
    extra faces only where the build had some, as the pipeline centers them."""
    if ds.center == "all" and (data or {}).get("extra"):
        return "the training images and the extra faces together"
    return "the training images"


def _training_data_line(ds) -> str:
    """What the student was trained on, in words (model card)."""
    extra = []
    if ds.teacher_views:
        extra.append(f"{ds.teacher_views} perturbed views of each (mirror, rotation, scale, shift)")
    if ds.teacher_mixes:
        extra.append(f"{ds.teacher_mixes} blend(s) of each with a face of another person")
    hard = (f"; {ds.light_augment:.0%} of the samples seen very dark (then brightened) or lit from one side"
            if ds.augment and ds.light_augment else "")
    if ds.relit_views:
        hard += (f"; {ds.relit_views} relit cop{'y' if ds.relit_views == 1 else 'ies'} of each training photo "
                 "(very dark or dim, then brightened as the pipeline brightens such faces, or lit from one side), "
                 "each with the teacher's embedding of the untouched photo")
    if ds.tight_views:
        hard += (f"; {ds.tight_views} tight crop{'' if ds.tight_views == 1 else 's'} of each training photo "
                 "(0.6-0.95 of the face box), each with the teacher's embedding of the untouched photo")
    if not extra:
        return "with flip/shift/rotation/brightness/contrast augmentation" + hard
    return ("over the training images plus " + " and ".join(extra) + ", each with the teacher's embedding of "
            "that very image, and brightness/contrast augmentation" + hard)
