"""Evaluate one model on any folder-per-person dataset (``tinyface evaluate``).

Identification by enrollment (K images per person enrolled as a centroid, the rest as
probes; people with too few images become strangers that must be rejected) and
verification over a pairs file (LFW format) or over all pairs of the dataset, with the
same metrics as the build.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tinyface.config import DataSettings, Interval
from tinyface.errors import DataError, ModelError
from tinyface.evaluation import metrics

MAX_PAIRS = 200_000
STRANGER_SHARE = 0.25  # of the people with enough images to enroll, held out as strangers
STRANGER_SHARE_RANGE = Interval(0, 1, low_included=True)  # all strangers would leave nobody to enroll
TARGET_FAR = 1e-2
TARGET_FAR_RANGE = Interval(0, 1)  # a rate of 0 or 1 names no threshold
SHIPPED_THRESHOLD = metrics.SHIPPED_THRESHOLD
# a `tinyface build` run's scores of its stages (tinyface.train.pipeline's evaluate stage;
# tinyface.evaluation.report.BuildMetrics), with each stage's thresholds
EVALUATE_STAGE, STAGE_METRICS_FILE = "evaluate", "metrics.json"
# which scored stage (metrics.json's ``stages``) a model file of a stage folder is; "int8" is
# tflite_int8 or tflm_int8 by the runtime that runs it
STAGE_FILES = {("distill", "student.keras"): "float", ("prune", "pruned.keras"): "pruned",
               ("quantize", "float.tflite"): "tflite_float", ("quantize", "int8.tflite"): "int8"}


@dataclass
class LoadedModel:
    kind: str  # "keras", "tflite", "tflm"
    input_shape: tuple[int, int, int]
    threshold: float | None
    padding: float
    embed: object  # callable uint8 crops -> embeddings
    model_bytes: int
    path: str  # the model file --model led to (models/esp32/model.tflite): what the results name
    identify_threshold: float | None = None  # model.json's identification threshold, if it has one
    # where ``threshold`` (and ``identify_threshold``) came from, in words; with no threshold,
    # why the model has none (None: model.json's, or no reason known)
    threshold_source: str | None = None
    # model.json's extra.split: how its build split its folder's people (empty: not recorded)
    split: dict = field(default_factory=dict)
    smoke_test: bool = False  # model.json's extra.smoke_test: a `tinyface build --quick` model


@dataclass(frozen=True)
class StageThresholds:
    """The thresholds a `tinyface build` chose for one of its stages (``evaluate/metrics.json``),
    or why a stage-folder model file has none (``verification`` None, ``words`` the reason)."""

    verification: float | None
    identification: float | None
    words: str


def load_model(path: str | Path, runtime: str = "auto") -> LoadedModel:
    """Open a bundle folder, a .tflite (float or int8) or a .keras model, with its model.json
    (see :func:`tinyface.model.bundle.model_file_meta`: a lone file without one is refused).

    ``runtime``: auto (TFLite for .tflite), tflite, or tflm (int8 only: the firmware's kernels).

    What needs no TensorFlow is checked before it loads: the model.json here, a .tflite's flatbuffer
    in Embedder, which imports TensorFlow only for its TFLite runner (`tinyface evaluate` imported
    it first and said a model.json was bad after 6-7 s).
    """
    from tinyface.model.bundle import SPLIT_KEY, model_file_meta

    found = model_file_meta(path)  # the one model.json reader: validated, sha256 checked, lone files refused
    path, meta = found.model_path, found.meta
    padding = meta.crop_padding
    recorded_split = meta.extra.get(SPLIT_KEY)
    split = recorded_split if isinstance(recorded_split, dict) else {}

    def thresholds(kind: str) -> dict:
        """The bundle's shipped thresholds, else those its build chose for this stage file."""
        if found.thresholds_apply:
            return {"threshold": meta.threshold, "identify_threshold": meta.identify_threshold or None,
                    "threshold_source": SHIPPED_THRESHOLD}
        recorded = stage_thresholds(found, kind)
        return {"threshold": recorded.verification, "identify_threshold": recorded.identification,
                "threshold_source": recorded.words}

    if path.suffix == ".keras":
        from tinyface.console import quiet_tensorflow
        from tinyface.model.keras_io import embed, load_keras

        quiet_tensorflow(import_now=True)  # stderr muted while it loads (TfliteRunner does so for a .tflite)
        model = load_keras(path)
        shape = tuple(int(v) for v in model.input_shape[1:])
        return LoadedModel("keras", shape, padding=padding, embed=lambda crops: embed(model, crops),
                           model_bytes=path.stat().st_size, path=str(path), split=split,
                           smoke_test=meta.smoke_test, **thresholds("keras"))
    if path.suffix != ".tflite":
        raise ModelError(f"unsupported model file {path.name}", hint="expected a bundle folder, .tflite or .keras")
    from tinyface.model.bundle import read_model_file
    from tinyface.model.embedder import Embedder

    flat = read_model_file(path)
    # the quantization the .tflite itself carries: a stage model of a build run (float.tflite)
    # has none, and the bundle's model.json describes the same numbers for its own .tflite
    try:
        embedder = Embedder(flat, "tflm" if runtime == "tflm" else "tflite")
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}", hint=exc.hint) from None
    return LoadedModel(embedder.runtime, embedder.input_shape[1:], padding=padding, embed=embedder.embed,
                       model_bytes=len(flat), path=str(path), split=split, smoke_test=meta.smoke_test,
                       **thresholds(embedder.runtime))


def stage_thresholds(found, runtime: str) -> StageThresholds:
    """The thresholds the build chose for the stage a stage-folder model file is (``found``:
    :func:`tinyface.model.bundle.model_file_meta`'s, for ``build/X/quantize/float.tflite`` and the
    like), from the run's ``evaluate/metrics.json``: the verification threshold the build applied
    to that stage's test pairs (chosen on pairs of validation people, or on the protocol's pairs:
    data.threshold_from) and the identification threshold chosen on validation people.

    They apply only when the run's model.json ties both folders to one build: its ``extra.stages``
    holds the fingerprints of the model's stage folder and of the evaluate folder (a build stopped
    before its last step leaves a newer stage beside an older evaluation). Otherwise, or for a file
    the evaluation did not score (``int8_qat.tflite`` when PTQ was chosen), ``verification`` is None
    and ``words`` says why. ``runtime``: "tflm" picks the TFLM int8 stage's thresholds for the int8
    model, anything else the TFLite one's.

    Raises:
        ModelError: metrics.json is unreadable, not JSON, or its thresholds are not numbers.
    """
    import json

    from tinyface.model.bundle import STAGE_RECORD, STAGES_KEY, stage_fingerprint

    path, run_dir = Path(found.model_path), Path(found.meta_path).parent
    stage_dir = path.parent

    def none(why: str) -> StageThresholds:
        return StageThresholds(None, None, why)

    if stage_dir.parent != run_dir or not (stage_dir / STAGE_RECORD).is_file():
        return none(f"{found.meta_path} describes its own model's thresholds, not {path.name}'s")
    key = (stage_dir.name, path.name)
    if key not in STAGE_FILES and stage_dir.name == "quantize" and path.suffix == ".tflite":
        chosen = stage_dir / "int8.tflite"  # the PTQ or QAT candidate the build kept is its int8 model
        if chosen.is_file() and chosen.read_bytes() == path.read_bytes():
            key = (stage_dir.name, chosen.name)
    stage = STAGE_FILES.get(key)
    if stage is None:
        return none(f"the build's evaluation did not score {stage_dir.name}/{path.name}")
    if stage == "int8":
        stage = "tflm_int8" if runtime == "tflm" else "tflite_int8"
    metrics_path = run_dir / EVALUATE_STAGE / STAGE_METRICS_FILE
    if not metrics_path.is_file():
        return none(f"no {EVALUATE_STAGE}/{STAGE_METRICS_FILE} in {run_dir}: the build has not evaluated its stages")
    recorded = found.meta.extra.get(STAGES_KEY)
    if not isinstance(recorded, dict):
        return none(f"{found.meta_path} records no stage fingerprints (written before builds kept them), so "
                    f"{metrics_path} cannot be tied to this file")
    for folder in (stage_dir, run_dir / EVALUATE_STAGE):
        if recorded.get(folder.name) is None or stage_fingerprint(folder) != recorded.get(folder.name):
            return none(f"{folder} is not the one the build that wrote {found.meta_path} made")
    try:
        raw = json.loads(metrics_path.read_text(encoding="utf-8"))
        scored = raw["stages"][stage]
        verification = scored["verification"]["threshold"]
        identification = scored["identification"].get("threshold")
        chosen_on = raw.get("threshold_from") or "the build's rule (data.threshold_from)"
    except KeyError:
        return none(f"{metrics_path} has no thresholds for the {stage} stage")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise ModelError(f"bad {metrics_path}: {exc}", hint="rerun the build (the same `tinyface build` command "
                                                            "redoes only what is missing)") from None
    for value in (verification, identification):
        if value is not None and not (isinstance(value, (int, float)) and -1.0 <= value <= 1.0):
            raise ModelError(f"bad {metrics_path}: the {stage} stage's threshold {value!r} is not a cosine similarity")
    return StageThresholds(float(verification), None if identification is None else float(identification),
                           f"the build's threshold for its {stage} stage ({metrics_path}), chosen on {chosen_on}")


def read_pairs_file(pairs_file: str | Path):
    """The rows of an LFW-format pairs file.

    Raises:
        DataError: missing, unreadable, a folder, not text, or not in the LFW pairs format.
    """
    from tinyface.data import lfw

    fmt = "--pairs takes an LFW-format pairs file (a count, then lines 'name i j' or 'name_a i name_b j')"
    try:
        return lfw.read_pairs(pairs_file)
    except UnicodeDecodeError:
        raise DataError(f"{pairs_file} is not a text file", hint=fmt) from None
    except DataError as exc:  # missing, unreadable (lfw's lines), a bad header or line: what the format is
        raise DataError(str(exc), hint=exc.hint or fmt) from None


def evaluate_model(model: LoadedModel, data_dir: str | Path, cache, pairs_file: str | Path | None = None,
                   enroll_images: int = DataSettings.enroll_images, seed: int = 0, workers: int = 0,
                   stranger_share: float = STRANGER_SHARE, target_far: float = TARGET_FAR, settings=None,
                   steps=None) -> dict:
    """Metrics of ``model`` on the dataset at ``data_dir`` (see module docstring).

    The thresholds are the model's shipped ones (model.json: ``threshold`` for verification,
    ``identify_threshold`` for identification), or for a stage file of a build run those the
    build chose for that stage (:func:`stage_thresholds`); ``threshold_source`` says which. Without
    any, the verification threshold is chosen on the verification pairs themselves, which is
    optimistic, and ``threshold_source`` says so and why the model has none.

    Identification holds ``stranger_share`` of the people who have enough images out as
    strangers (seeded), besides the people with too few images: all their images must be
    rejected, and the share accepted is the false-accept rate at the shipped threshold. It is
    reported by the gallery of every enrolled person and, as ``identification["device_gallery"]``,
    by galleries of ``settings.data.identify_gallery`` people (default the device's capacity;
    :func:`tinyface.evaluation.metrics.identification_at_gallery`).
    ``target_far``: also report the thresholds that would give this false-accept rate on these
    people (verification pairs and strangers), and what they would cost. ``steps(description,
    total)``, if given, is a context manager around each step of the work, yielding ``advance(n)``
    (tinyface.console.step; default: none shown): "faces" and "embeddings (RUNTIME)" (``total`` the
    images), then the scoring (``total`` None: nothing to count), so that a caller shows progress
    all the way (the CLI: a bar, or a plain line every 10 s), not only while faces are prepared.

    Only what was measured is given as a figure: with no strangers the stranger false-accept
    rates are None, and ``verification["tar_at_far_measurable"]`` says for each FAR whether
    there are enough different-person pairs to measure it (metrics.measurable), as
    ``target_far``'s ``measurable`` does. ``model`` is the model file's path as ``--model`` led
    to it (``models/esp32/model.tflite``).

    Raises:
        DataError: the dataset or the pairs file is unusable.
        NoFaceError: no image has a face found (:func:`_require_a_face`).
    """
    from tinyface.data.dataset import FaceImage, load_dataset
    from tinyface.data.faces import FaceSpec, prepare_faces

    dataset = load_dataset(data_dir)
    images = list(dataset.images)
    index = {im.path: i for i, im in enumerate(images)}
    pair_rows = None
    if pairs_file:
        pair_rows = read_pairs_file(pairs_file)
        for p in pair_rows:
            for path, name in zip(p.paths(dataset.images_dir), (p.name_a, p.name_b), strict=True):
                if path not in index:
                    if not path.is_file():
                        raise DataError(f"{pairs_file} names an image that is not in the dataset: {path}")
                    index[path] = len(images)
                    images.append(FaceImage(path, name))
    # the one face spec of a model (its input and padding, the settings' detector retry)
    h, w, c = model.input_shape
    spec = FaceSpec.for_model(SimpleNamespace(input_shape=(1, h, w, c), crop_padding=model.padding), settings)
    from tinyface.console import no_step

    step = steps or no_step
    with step("faces", len(images)) as advance:
        faces = prepare_faces([im.path for im in images], spec, cache, workers=workers, progress=advance)
    _require_a_face(faces, data_dir)  # before minutes of embedding
    with step(f"embeddings ({model.kind})", len(images)) as advance:
        emb = _embed(model, faces.crops, advance)
    with step("scoring pairs and identification", None):
        return _score(model, dataset, images, index, pair_rows, faces, emb, pairs_file, data_dir, enroll_images,
                      seed, stranger_share, target_far, settings)


def _require_a_face(faces, where) -> None:
    """Refuse images none of which has a face found: each would be scored as its centered crop (the
    fallback of tinyface.data.faces), and the figures (a balanced accuracy of 50%, an AUC) would
    measure those crops, not the model. Where some have a face, the others are scored so, and
    counted (``no_face``).

    Raises:
        NoFaceError: not one of the readable images (``faces``) has a face found.
    """
    from tinyface.errors import NoFaceError

    n_read = int(faces.ok.sum())
    if n_read and not faces.usable.any():
        raise NoFaceError(f"no face was found in any of the {n_read:,} images of {where}: each would be scored as its "
                          "centered crop, and the figures would not measure the model",
                          hint="use photos in which a face can be seen, upright and not too small; `tinyface data "
                               "stats --align --data DIR` counts the faces found")


EMBED_CHUNK = 256  # crops per model.embed call, with progress between calls (Keras' predict batch size)


def _embed(model: LoadedModel, crops: np.ndarray, advance) -> np.ndarray:
    """``model.embed`` over ``crops`` in chunks of EMBED_CHUNK, calling ``advance(n)`` after each: the
    same embeddings (TFLite and TFLM run one crop at a time, Keras in batches of that size), with
    progress (13,233 LFW crops take TFLM about a minute)."""
    if len(crops) == 0:
        return model.embed(crops)
    parts = []
    for start in range(0, len(crops), EMBED_CHUNK):
        parts.append(model.embed(crops[start:start + EMBED_CHUNK]))
        advance(len(parts[-1]))
    return np.concatenate(parts)


def _score(model: LoadedModel, dataset, images, index, pair_rows, faces, emb, pairs_file, data_dir,
           enroll_images: int, seed: int, stranger_share: float, target_far: float, settings) -> dict:
    """:func:`evaluate_model`'s figures from the embeddings ``emb`` of ``images`` (``faces``: their
    PreparedFaces)."""
    ok = faces.ok
    labels = [im.identity for im in images]
    rng = random.Random(seed)

    if pair_rows is not None:
        a, b, same = [], [], []
        for p in pair_rows:
            pa, pb = (index[x] for x in p.paths(dataset.images_dir))
            if ok[pa] and ok[pb]:
                a.append(pa), b.append(pb), same.append(p.same)
        a, b, same = np.array(a, int), np.array(b, int), np.array(same, bool)
        pairs_source = str(pairs_file)
    else:
        good = np.flatnonzero(ok)
        a, b, same = metrics.all_pairs([labels[i] for i in good], MAX_PAIRS, rng)
        a, b = good[a], good[b]
        pairs_source = "all pairs of the dataset" + (f" (sampled {MAX_PAIRS:,})" if len(a) >= MAX_PAIRS else "")
    if len(same) == 0 or same.all() or not same.any():
        n_same = int(np.sum(same))
        raise DataError(f"verification needs both same-person and different-person pairs; "
                        f"{pairs_source if pair_rows is not None else data_dir} gives {n_same:,} same-person and "
                        f"{len(same) - n_same:,} different-person pairs of readable photos",
                        hint="use at least 2 people, one of them with 2+ photos; `tinyface data stats --data DIR` "
                             "lists the files that cannot be read")
    scores = metrics.pair_scores(emb, a, b)
    threshold, threshold_source = model.threshold, model.threshold_source or SHIPPED_THRESHOLD
    if threshold is None:
        threshold = metrics.best_threshold(scores, same)
        threshold_source = (f"{metrics.BEST_THRESHOLD_SOURCE} (optimistic: "
                            f"{model.threshold_source or 'the model has no threshold of its own'})")
    ver = metrics.verification(scores, same, threshold).to_dict(with_roc=True)  # with tar_at_far_measurable

    # the dataset's own images (not those a pairs file added) with a face: the one split of
    # tinyface.evaluation.metrics, drawn with the same generator after the pairs
    people_images = np.array([i for i in range(len(dataset.images)) if ok[i]], int)
    split = metrics.enrollment_split([labels[i] for i in people_images], enroll_images, seed,
                                      stranger_images="all", held_out_share=stranger_share, rng=rng)
    enroll = {p: [int(people_images[k]) for k in ks] for p, ks in split.enroll.items()}
    probes = [(int(people_images[k]), p) for k, p in split.probes]
    strangers = [int(people_images[k]) for k in split.strangers]
    held_out = split.held_out
    n_people = len({labels[i] for i in people_images})
    ident = None
    # the device holds at most data.identify_gallery people (0: GALLERY_CAPACITY): with more
    # enrolled here, identification is also the mean over random galleries of that size
    gallery = metrics.gallery_for(settings.data.identify_gallery if settings is not None else 0)
    # the threshold IDENTIFY uses on the device (as ModelMeta.identify_at): the identification
    # one, else the verification one
    ident_threshold = model.identify_threshold or threshold
    if len(enroll) >= 2:
        ident = metrics.identification(emb, enroll, probes, strangers, ident_threshold).to_dict(with_confusion=True)
        ident["stranger_people"] = n_people - len(enroll)
        ident["held_out_people"] = sorted(held_out)
        ident["device_gallery"] = metrics.identification_at_gallery(emb, enroll, probes, strangers, ident_threshold,
                                                                    gallery, seed)
        if not strangers:  # nobody to reject: the metrics' 0 of 0 accepted is no measured rate
            ident["stranger_false_accept_rate"] = ident["device_gallery"]["stranger_false_accept_rate"] = None
    target = _at_target_far(emb, scores, same, enroll, probes, strangers, target_far, ident_threshold, gallery, seed)
    # what every threshold would trade on these people (the report's identification.png)
    curve = (metrics.identification_curve(emb, enroll, probes, strangers, metrics.CURVE_THRESHOLDS, gallery,
                                                  seed)
             if len(enroll) >= 2 and strangers else None)
    return {
        "model": model.path, "smoke_test": model.smoke_test, "runtime": model.kind, "data": str(data_dir),
        "images": int(ok.sum()),
        "training_people": _training_people(data_dir, {labels[i] for i in (*a, *b)},
                                            {labels[i] for i in people_images}, dataset, model.split),
        # what listing the folder left out (a photo beside the person folders, a broken link, a file
        # that is no image: `data stats` names them too), then the images that could not be read
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in [*dataset.skipped, *faces.skipped]],
        "no_face": int((ok & ~faces.detected).sum()), "n_people": n_people,
        "threshold": threshold, "threshold_source": threshold_source, "pairs": pairs_source,
        "verification": ver, "identification": ident,
        "enroll_images": enroll_images, "stranger_share": stranger_share, "identify_gallery": gallery,
        "target_far": target, "identification_curve": curve,
        "note": None if ident else (f"identification needs >= 2 enrolled people (people with more than "
                                    f"{enroll_images} images, less the {stranger_share:.0%} held out as strangers)"),
    }


def _training_people(data_dir, pair_people: set[str], ident_people: set[str], dataset=None,
                     split: dict | None = None) -> dict | None:
    """How many of the people scored are LFW's training people (the data folder's
    peopleDevTrain.txt, on which every tinyface build trains and chooses its thresholds), or, in a
    folder of people whose build split these very people (model.json's ``extra.split``:
    tinyface.data.splits.built_on), the model's own training and validation people; None where
    neither is known. ``list``: the LFW list, or None for the model's own split."""
    from tinyface.data.lfw import PEOPLE_DEV_TRAIN, read_people

    listed = Path(data_dir) / PEOPLE_DEV_TRAIN
    if listed.is_file():
        try:
            trained = {name for name, _ in read_people(listed)}
        except (DataError, OSError):  # a damaged list: say nothing rather than something wrong
            return None
        where = str(listed)
    else:
        from tinyface.data.splits import built_on

        trained = built_on(dataset, split) if dataset is not None and split else None
        if trained is None:
            return None
        where = None
    return {"list": where, "in_pairs": len(pair_people & trained), "pairs_people": len(pair_people),
            "in_identification": len(ident_people & trained), "identification_people": len(ident_people)}


def _at_target_far(emb, scores, same, enroll, probes, strangers, far: float, ident_threshold: float,
                   gallery: int, seed: int = 0) -> dict:
    """The thresholds that would give false-accept rate ``far`` on these people, and their cost.

    The identification one is for the device's gallery (``gallery`` people: every stranger's
    best match pooled over the random galleries of that size that identification is measured
    on, as metrics.open_set_threshold chooses the shipped one), so that it can be flashed as it
    is; with no more people enrolled than ``gallery``, for the gallery of all of them."""
    neg = int((~same).sum())
    ver_t = metrics.threshold_at_far(scores, same, far)
    tar, got = metrics.rates_at(scores, same, ver_t)
    out = {"far": far,
           "verification": {"threshold": ver_t, "true_accept_rate": tar, "false_accept_rate": got,
                            "negative_pairs": neg, "measurable": metrics.measurable(far, neg)}}
    if len(enroll) >= 2 and strangers:
        ident_t, at = metrics.threshold_at_gallery(emb, enroll, probes, strangers, far, gallery, seed)
        out["identification"] = {"threshold": ident_t, "accuracy": at["accuracy"],
                                 "stranger_false_accept_rate": at["stranger_false_accept_rate"],
                                 "gallery": at["gallery"], "draws": at["draws"],
                                 "strangers": len(strangers), "measurable": metrics.measurable(far, len(strangers)),
                                 "shipped_threshold": ident_threshold}
    return out
