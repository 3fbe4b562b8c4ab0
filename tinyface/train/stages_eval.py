"""Evaluate every stage of a build with the same metrics (tinyface.evaluation.metrics).

Stages: the teacher, the float student (Keras), the pruned student (Keras), TFLite float,
TFLite int8 and TFLM int8 (the real TFLM kernels, i.e. what the firmware runs). Each
stage's verification threshold is chosen with its own embeddings, on pairs of validation
people (default) or on the protocol's pairs (LFW's pairsDevTrain.txt; ``data.threshold_from``),
and applied unchanged to the test pairs; the test accuracy at the other source's threshold is
recorded too. Its identification threshold is chosen on validation people for a target
stranger-accept rate by a gallery of ``data.identify_gallery`` people (metrics.open_set_threshold);
identification is recorded by the gallery of every enrolled test person and by random galleries
of ``data.identify_gallery`` of them (``identification["device_gallery"]``).
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np

from tinyface.evaluation import metrics
from tinyface.evaluation.report import BuildMetrics, Parity, StageMetrics
from tinyface.model.embedder import l2_normalize, normalize

VALIDATION_SAME = 1000  # the build's validation pairs: this many same-person pairs, as many different ones
VALIDATION_SEED = 1


def validation_pairs(labels: list[str]):
    """The build's seeded pairs of validation people (2,000: 1,000 same, 1,000 different; with
    fewer same ones, as in a --quick build, as many different ones)."""
    return metrics.sample_pairs(labels, VALIDATION_SAME, seed=VALIDATION_SEED, balanced=True)


def validation_accuracy(emb_val: np.ndarray, labels: list[str]) -> float:
    """Accuracy of embeddings on the build's validation pairs at their best threshold."""
    a, b, same = validation_pairs(labels)
    return metrics.best_accuracy(metrics.pair_scores(emb_val, a, b), same)


def validation_figures(emb_val: np.ndarray, labels: list[str], val_pairs, d,
                       val_scores: np.ndarray | None = None) -> tuple[dict, dict | None]:
    """A stage's figures on validation people, the only ones model choice may read: pair accuracy
    at its best threshold (the stage's validation threshold), AUC, TAR at FAR 1e-3 over every
    pair, and identification at the identification threshold chosen there for
    ``d.identify_stranger_rate`` by galleries of ``d.identify_gallery``. Returns the figures and
    the chosen identification threshold's record (None with too few validation people).
    ``val_scores``: the pairs' scores where the caller has them already."""
    val_a, val_b, val_same = val_pairs
    if val_scores is None:
        val_scores = metrics.pair_scores(emb_val, val_a, val_b)
    threshold = metrics.best_threshold(val_scores, val_same)
    chosen = metrics.open_set_threshold(emb_val, labels, d.enroll_images, d.identify_stranger_rate, d.seed,
                                        gallery=metrics.gallery_for(d.identify_gallery))
    figures = {"accuracy": metrics.accuracy_at(val_scores, val_same, threshold),
               "auc": metrics.auc(*metrics.roc_curve(val_scores, val_same)), "n_pairs": int(len(val_same)),
               "threshold": float(threshold),
               # the device's job, on validation people (model choice may read these; the test never)
               "tar_at_far_1e-3": metrics.all_pairs_tar_at_far(emb_val, labels, 1e-3)["tar"],
               "identification": ({k: chosen[k] for k in ("probe_accuracy", "stranger_rate", "enrolled", "gallery",
                                                           "draws", "probes", "strangers", "probe_accuracy_all",
                                                           "stranger_rate_all")} if chosen else None)}
    if chosen:  # every threshold's trade on the same people and draws (the report's identification.png)
        split = metrics.enrollment_split(labels, d.enroll_images, d.seed)
        figures["identification_curve"] = metrics.identification_curve(
            emb_val, split.enroll, split.probes, split.strangers, metrics.CURVE_THRESHOLDS,
            metrics.gallery_for(d.identify_gallery), d.seed)
    return figures, chosen


def _score_stage(emb: np.ndarray, emb_val: np.ndarray, val_pairs, data, d) -> dict:
    """Verification on the test pairs at the shipped threshold (and at the other source's),
    identification, and validation accuracy of one stage's embeddings."""
    tp, te = data.threshold_pairs, data.test_pairs
    val_scores = metrics.pair_scores(emb_val, val_pairs[0], val_pairs[1])
    validation, chosen = validation_figures(emb_val, data.val.labels, val_pairs, d, val_scores)
    thresholds = {"validation": validation["threshold"],
                  "protocol": metrics.best_threshold(metrics.pair_scores(emb, tp.a, tp.b), tp.same)}
    threshold = thresholds[d.threshold_from]
    test_scores = metrics.pair_scores(emb, te.a, te.b)
    ver = metrics.verification(test_scores, te.same, threshold).to_dict(with_roc=True)
    for source, t in thresholds.items():
        ver[f"accuracy_at_{source}_threshold"] = metrics.accuracy_at(test_scores, te.same, t)
        ver[f"{source}_threshold"] = float(t)
    ident_threshold = chosen["threshold"] if chosen else threshold
    ident = metrics.identification(emb, data.enroll, data.probes, data.strangers, ident_threshold).to_dict(
        with_confusion=True)
    ident["threshold_from"] = (_chosen_words(chosen) if chosen
                               else "the verification threshold (too few validation people to choose one)")
    # the device holds at most GALLERY_CAPACITY people: identification by random galleries of
    # that size (the figures above are by the gallery of every enrolled test person)
    ident["device_gallery"] = metrics.identification_at_gallery(emb, data.enroll, data.probes, data.strangers,
                                                                ident_threshold,
                                                                metrics.gallery_for(d.identify_gallery), d.seed)
    at_verification = metrics.identification(emb, data.enroll, data.probes, data.strangers, threshold)
    ident["at_verification_threshold"] = {"accuracy": at_verification.accuracy,
                                          "stranger_false_accept_rate": at_verification.stranger_false_accept_rate}
    return {"verification": ver, "identification": ident, "validation": validation, "_test_scores": test_scores,
            "_val_scores": val_scores}


def _chosen_words(chosen: dict) -> str:
    """Where a stage's identification threshold was chosen, in words (the report prints it)."""
    if chosen["draws"] > 1:
        return (f"{chosen['draws']} random galleries of {chosen['gallery']} of {chosen['enrolled']} enrollable "
                f"validation people, {chosen['strangers']} strangers, {chosen['stranger_rate']:.1%} of them accepted "
                "on average")
    return (f"a gallery of all {chosen['enrolled']} enrollable validation people, {chosen['strangers']} strangers, "
            f"{chosen['stranger_rate']:.1%} of them accepted")


def metric_event(stage: str, result: dict) -> dict:
    """The progress display's figure for a scored stage: its accuracy on *validation* pairs. The
    test figures are read once, in the report after the build (the held-out rule), not as they
    scroll past."""
    return {"stage": f"{stage} on validation pairs", "accuracy": result["validation"]["accuracy"]}


def threshold_source(data, d) -> str:
    """Where the shipped verification threshold was chosen, in words."""
    if d.threshold_from == "protocol":
        return data.stats.get("threshold_from", "the protocol's pairs")
    return "pairs of validation people (training-set people the student never trained on)"


def _timed(fn, items, limit=200):
    sample = items[:limit]
    t0 = time.perf_counter()
    fn(sample)
    return 1000 * (time.perf_counter() - t0) / max(1, len(sample))


def evaluate_all(data, float_model, pruned_model, quant_dir: Path, settings, preset,
                 notify=lambda e, i: None) -> BuildMetrics:
    """Metrics of every stage plus TFLM-vs-TFLite int8 parity: on the images the evaluation reads
    and the test pairs, and (``parity.validation``) on the validation images and pairs."""
    from tinyface.boards.profile import profile_model
    from tinyface.model.embedder import Embedder
    from tinyface.model.graph import analyze
    from tinyface.model.keras_io import embed
    from tinyface.model.runtime import TfliteRunner
    from tinyface.train.prune import gzip_size, overall_sparsity, sparsity_per_layer

    crops = data.eval.crops
    stages: dict[str, StageMetrics] = {}
    scores: dict[str, np.ndarray] = {}
    val_scores: dict[str, np.ndarray] = {}  # the validation pairs' (parity that --hide-test may show)
    val_pairs = validation_pairs(data.val.labels)
    n_eval = len(crops)
    both = np.concatenate([crops, data.val.crops])  # every model runs once over eval + validation images

    def add(name, emb_both, **info):
        result = _score_stage(emb_both[:n_eval], emb_both[n_eval:], val_pairs, data, settings.data)
        scores[name] = result.pop("_test_scores")
        val_scores[name] = result.pop("_val_scores")
        stages[name] = StageMetrics(**result, **info)
        notify("metric", metric_event(name, result))

    # teacher: embeddings come from the cache
    add("teacher", np.concatenate([data.eval.teacher, data.val.teacher]), kind="dlib ResNet (teacher)", params=None,
        macs=None, model_bytes=_teacher_bytes(), latency_ms_host=_teacher_latency_ms(data))
    crops = both

    float_flat = (quant_dir / "float.tflite").read_bytes()
    int8_flat = (quant_dir / "int8.tflite").read_bytes()
    # every row's MACs are the converted graph's (graph.analyze), as the budget counts them: the
    # float, pruned and int8 students are one architecture (Keras's own count differs by ~2%)
    float_macs = int(analyze(float_flat).total_macs)
    add("float", embed(float_model, crops), kind="Keras float32", params=int(float_model.count_params()),
        macs=float_macs, model_bytes=len(float_flat), latency_ms_host=None)
    if pruned_model is not None:
        sparsity = sparsity_per_layer(pruned_model)
        add("pruned", embed(pruned_model, crops), kind="Keras float32, pruned", params=int(pruned_model.count_params()),
            macs=float_macs, model_bytes=len(float_flat), model_bytes_gzip=gzip_size(float_flat),
            sparsity_per_layer=sparsity,
            sparsity_overall=overall_sparsity(pruned_model), latency_ms_host=None)

    x_float = normalize(crops)
    tfl_float = TfliteRunner(float_flat, kernels="optimized")
    add("tflite_float", tfl_float.run(x_float), kind="TFLite float32", params=None, macs=float_macs,
        model_bytes=len(float_flat), latency_ms_host=_timed(tfl_float.run, x_float))

    # the one int8 embedder (tinyface.model.embedder), in TFLite and in TFLM: the raw int8
    # outputs are kept for the parity check, the embeddings are its dequantized, normalised ones
    tfl_int8 = Embedder(int8_flat, "tflite")
    x_int8 = tfl_int8.quantize(crops)
    out_tflite = tfl_int8.run(x_int8)
    graph = analyze(int8_flat)
    common = dict(params=int(graph.total_params), macs=int(graph.total_macs), model_bytes=len(int8_flat),
                  model_bytes_gzip=len(gzip.compress(int8_flat, 9)))
    add("tflite_int8", l2_normalize(tfl_int8.dequantize(out_tflite)), kind="TFLite int8",
        latency_ms_host=_timed(TfliteRunner(int8_flat, kernels="optimized").run, x_int8), **common)

    tflm = Embedder(int8_flat, "tflm")
    notify("step", {"name": "TFLM int8 (the firmware's kernels) on the faces", "total": len(x_int8)})
    chunks = []
    t0 = time.perf_counter()
    for start in range(0, len(x_int8), 256):
        chunks.append(tflm.run(x_int8[start:start + 256]))
        notify("advance", {"n": len(chunks[-1])})
    tflm_ms = 1000 * (time.perf_counter() - t0) / max(1, len(x_int8))
    tflm_out_both = np.concatenate(chunks) if chunks else np.zeros_like(out_tflite)
    board, cost = _board_cost_model(settings.firmware.board, settings.firmware.kernels)
    est_ms = profile_model(int8_flat, cost).total_est_ms  # the figure `tinyface profile` and the emulator give
    add("tflm_int8", l2_normalize(tflm.dequantize(tflm_out_both)), kind="TFLM int8 (firmware kernels)",
        latency_ms_host=tflm_ms, arena_bytes=tflm.runner.arena_used_bytes(), estimated_ms_on_board=est_ms,
        board=board, cost_model_source=cost.source, **common)

    # the same/different decisions at the shipped threshold: TFLM's (model.json's `threshold`, chosen on
    # validation or protocol pairs; TFLite's, chosen on its own scores, can differ a little)
    thr = stages["tflm_int8"].verification["threshold"]
    parity = Parity(
        **output_parity(tflm_out_both[:n_eval], out_tflite[:n_eval]),
        identical_decisions_test_pairs=metrics.decision_agreement(scores["tflm_int8"], scores["tflite_int8"], thr),
        validation={**output_parity(tflm_out_both[n_eval:], out_tflite[n_eval:]),
                    "identical_decisions_validation_pairs": metrics.decision_agreement(
                        val_scores["tflm_int8"], val_scores["tflite_int8"], thr)},
    )
    return BuildMetrics(preset=preset.name, mac_budget=_mac_budget(preset.board, preset.kernels), data=data.stats,
                        threshold_from=threshold_source(data, settings.data),
                        threshold_source=settings.data.threshold_from, stages=stages, parity=parity,
                        ops=sorted(graph.op_names))


def output_parity(out_tflm: np.ndarray, out_tflite: np.ndarray) -> dict:
    """How far TFLM's raw int8 outputs lie from TFLite's on the same inputs (rows: images):
    ``max_lsb_diff``, ``mean_lsb_diff``, ``outputs_identical_share`` and ``n_images``."""
    diff = np.abs(out_tflm.astype(int) - out_tflite.astype(int))
    return {"max_lsb_diff": int(diff.max()), "mean_lsb_diff": float(diff.mean()),
            "outputs_identical_share": float(np.mean(np.all(diff == 0, axis=1))), "n_images": int(len(diff))}


def _mac_budget(name: str, kernels: str) -> int:
    """The preset's budget: its board's, for its kernel set (boards/*.toml [budget])."""
    from tinyface.boards import load_board

    return load_board(name).mac_budget_for(kernels)


def _board_cost_model(name: str, kernels: str):
    """The board's latency estimate for the kernels the firmware will run (firmware.kernels)."""
    from tinyface.boards import load_board

    board = load_board(name)
    return board.name, board.cost_model_for(kernels)


def _teacher_bytes() -> int:
    import face_recognition_models as frm

    return Path(frm.face_recognition_model_location()).stat().st_size


def _teacher_latency_ms(data) -> float:
    """Host time of one teacher embedding (find and align the face, cut its 150x150 chip, the
    ResNet), as the build embeds: one batch (teacher.BATCH images), after one untimed image (the
    first loads the teacher and traces its graph, seconds). The ResNet always runs a whole batch:
    one image alone took it 175 ms, 64 images about 3 ms each."""
    from tinyface.data.align import Aligner
    from tinyface.data.dataset import read_image
    from tinyface.data.faces import FaceSpec
    from tinyface.teacher import BATCH, embed_chips

    paths = data.eval.paths[:BATCH + 1]
    aligner, spec = Aligner(), FaceSpec()

    def chip(path):
        rgb = read_image(path)
        return spec.cut_teacher_chip(rgb, aligner.detect(rgb))

    embed_chips([chip(paths[0])])
    t0 = time.perf_counter()
    embed_chips([chip(p) for p in paths[1:]])
    return 1000 * (time.perf_counter() - t0) / max(1, len(paths) - 1)
