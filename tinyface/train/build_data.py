"""Assemble the arrays a build needs, from the face cache.

Roles (see tinyface/data/splits.py): training and validation images come from training
people only; ``eval`` holds the images of the verification pairs (DevTrain pairs for the protocol's
threshold, DevTest pairs for the test) and of the identification split (test people).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyface.data import lfw
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import FaceImage, load_dataset
from tinyface.data.extra import ExtraFaces, load_extra_faces, nearest_distances, person_key
from tinyface.data.faces import FaceSpec, prepare_faces
from tinyface.data.splits import people_fingerprint, quick_sample, train_val_test
from tinyface.errors import DataError
from tinyface.evaluation import metrics


@dataclass
class Faces:
    crops: np.ndarray  # uint8 (N, S, S, C)
    teacher: np.ndarray  # float32 (N, 128)
    labels: list[str]
    paths: list[Path]


@dataclass
class PairSet:
    a: np.ndarray  # indices into EvalSet.faces
    b: np.ndarray
    same: np.ndarray


@dataclass
class BuildData:
    train: Faces
    val: Faces
    eval: Faces  # every image the evaluation needs, once
    threshold_pairs: PairSet  # the protocol's threshold pairs (LFW: pairsDevTrain; folders: validation people)
    test_pairs: PairSet  # held-out verification test (pairsDevTest)
    enroll: dict[str, list[int]]  # identification: person -> indices into eval
    probes: list[tuple[int, str]]
    strangers: list[int]
    source: str
    stats: dict = field(default_factory=dict)
    train_views: tuple[np.ndarray, np.ndarray] | None = None  # crops (N, V, S, S, C), teacher (N, V, 128)
    train_views_labels: list[str] = field(default_factory=list)  # identity of each of those N images
    train_mixes: tuple[np.ndarray, np.ndarray] | None = None  # blended crops (K, S, S, C), teacher (K, 128)
    # distill.relit_views, tight_views: hard crops (N, V, S, S, C), the teacher of each untouched photo (N, 128),
    # identities
    train_hard: tuple[np.ndarray, np.ndarray, list[str]] | None = None
    extra: ExtraFaces | None = None  # faces without identities, for distillation only (tinyface/data/extra.py)
    # the people split (splits.people_fingerprint), for model.json's extra.split.people; apart from
    # ``stats``, whose every key is in the later stages' fingerprints
    people: str = ""


def _prepare(images: list[FaceImage], spec: FaceSpec, cache: FaceCache, workers: int, progress) -> Faces:
    res = prepare_faces([im.path for im in images], spec, cache, workers=workers, progress=progress)
    keep = np.flatnonzero(res.ok)
    return Faces(res.crops[keep], res.teacher[keep], [images[i].identity for i in keep],
                 [images[i].path for i in keep])


def load_build_data(settings, quick: bool = False, progress=None, step=None) -> BuildData:
    """Everything a build trains and evaluates on. ``quick`` takes a tiny seeded subset
    (for smoke tests and CI) with the same roles, and reads no test image but those it evaluates:
    they are the contamination filters' reference, not every image of the test people.

    ``progress(n)`` is called as images (or views, or mixes) are done, cached ones included;
    ``step(name, total)`` before each pass over them, so a progress display can give counts
    out of a total and an ETA per pass.

    Raises:
        DataError: the dataset is missing or unusable.
    """
    d = settings.data
    dataset = load_dataset(d.data_path())
    split = train_val_test(dataset, d.val_fraction, d.seed)
    rng = random.Random(d.seed)
    train_images, val_images = split.train, split.val
    if quick:
        train_images, val_images = quick_sample(split, rng)
    spec = FaceSpec.from_settings(settings, teacher=True)
    groups = dataset.by_identity()

    # evaluation images: pairs files (LFW) or sampled pairs of test people (own folders)
    eval_images: list[FaceImage] = []
    index: dict[Path, int] = {}

    def idx(image: FaceImage) -> int:
        if image.path not in index:
            index[image.path] = len(eval_images)
            eval_images.append(image)
        return index[image.path]

    def pairset(pairs: list[lfw.Pair]) -> PairSet:
        a, b, same = [], [], []
        for p in pairs:
            pa, pb = p.paths(dataset.images_dir)
            if not (pa.is_file() and pb.is_file()):
                continue
            a.append(idx(FaceImage(pa, p.name_a)))
            b.append(idx(FaceImage(pb, p.name_b)))
            same.append(p.same)
        return PairSet(np.array(a, int), np.array(b, int), np.array(same, bool))

    if split.source == "lfw-view1":
        dev_train = lfw.read_pairs(dataset.root / lfw.PAIRS_DEV_TRAIN)
        dev_test = lfw.read_pairs(dataset.root / lfw.PAIRS_DEV_TEST)
        if quick:
            dev_train = _balanced_subset(dev_train, 100, rng)
            dev_test = _balanced_subset(dev_test, 100, rng)
        threshold_pairs, test_pairs = pairset(dev_train), pairset(dev_test)
    else:  # own folders: threshold from pairs of validation people, test from test people
        val_people = sorted({im.identity for im in val_images})
        threshold_pairs = _sampled_pairs(val_people, groups, 300 if not quick else 50, d.seed, idx)
        test_pairs = _sampled_pairs(split.test_people, groups, 300 if not quick else 50, d.seed + 1, idx)

    # identification: the one enrolled/probe/stranger split (tinyface.evaluation.metrics), over the test
    # people's images in a stable order (person, then file name)
    people_images = [im for person in sorted(split.test_people)
                     for im in sorted(groups.get(person, []), key=lambda im: im.path.name)]
    ident = metrics.enrollment_split([im.identity for im in people_images], d.enroll_images, d.seed,
                                      min_images=d.identify_min_images, max_strangers=500 if not quick else 40)
    if len(ident.enroll) < 2:
        raise DataError(f"identification needs at least 2 people with >= {d.identify_min_images} images; "
                        f"found {len(ident.enroll)}", hint="lower data.identify_min_images or add photos")
    if quick:
        keep = sorted(ident.enroll)[:8]
        ident.enroll = {p: ident.enroll[p] for p in keep}
        ident.probes = first_probes_of_each(ident.probes, keep, 80 // len(keep))
    enroll = {p: [idx(people_images[i]) for i in ids] for p, ids in ident.enroll.items()}
    probes = [(idx(people_images[i]), p) for i, p in ident.probes]
    strangers = [idx(people_images[i]) for i in ident.strangers]

    all_count = len(train_images) + len(val_images) + len(eval_images)
    step = step or (lambda name, total: None)
    step("training faces", len(train_images))
    train = _prepare(train_images, spec, _cache(settings), d.workers, progress)
    step("validation faces", len(val_images))
    val = _prepare(val_images, spec, _cache(settings), d.workers, progress)
    eval_faces = test_teacher = None
    if d.test_filter > 0 or settings.extra.dirs:
        if quick:  # a smoke test reads no test image but those it evaluates: they are its reference
            eval_faces = _prepare_eval(eval_images, spec, settings, progress, step)
            test_teacher = _evaluated_test_teacher(eval_faces, split.test_people)
        else:
            test_teacher = _test_people_teacher(dataset, split.test_people, spec, settings, progress, step)
    filtered = {}
    if d.test_filter > 0:  # before anything is made of the training faces (views, mixes)
        train, filtered["train"] = filter_test_copies(train, test_teacher, split.test_people, d.test_filter)
        val, filtered["val"] = filter_test_copies(val, test_teacher, split.test_people, d.test_filter)
    if eval_faces is None:
        eval_faces = _prepare_eval(eval_images, spec, settings, progress, step)
    data = BuildData(train, val, eval_faces, threshold_pairs, test_pairs, enroll, probes, strangers, split.source,
                     people=people_fingerprint(dataset))
    views = settings.distill.teacher_views
    if views:
        from tinyface.data.faces import prepare_views

        step(f"teacher views ({views} per training face)", len(train.paths))
        ok, view_crops, view_teacher = prepare_views(train.paths, spec, _cache(settings), views, d.workers, progress)
        data.train_views = (view_crops[ok], view_teacher[ok])
        data.train_views_labels = [label for label, good in zip(train.labels, ok, strict=True) if good]
    kinds = []
    if settings.distill.relit_views or settings.distill.tight_views:
        from tinyface.data.faces import hard_kinds, prepare_hard_views

        kinds = hard_kinds(settings.distill.relit_views, settings.distill.tight_views)
        step(f"hard views ({len(kinds)} per training face)", len(train.paths))
        ok, hard_crops = prepare_hard_views(train.paths, spec, _cache(settings), kinds, d.workers, progress)
        data.train_hard = (hard_crops[ok], train.teacher[ok],
                           [label for label, good in zip(train.labels, ok, strict=True) if good])
    if settings.distill.teacher_mixes:
        from tinyface.data.faces import blend, plan_mixes, prepare_mixes

        plan = plan_mixes(train.labels, settings.distill.teacher_mixes, d.seed)
        step("teacher mixes", len(plan))
        ok, mix_teacher = prepare_mixes(train.paths, plan, spec, _cache(settings), d.workers, progress)
        mix_crops = np.stack([blend(train.crops[m.a], train.crops[m.b], m.lam) for m in plan]) if plan else None
        data.train_mixes = (mix_crops[ok], mix_teacher[ok]) if plan else None
    if settings.extra.dirs:
        data.extra = load_extra_faces(settings, spec, _cache(settings), test_teacher, progress, step,
                                      held_out_people=set(split.test_people) | {im.identity for im in split.val},
                                      validation_teacher=val.teacher if settings.extra.filter_validation else None)
    data.stats = {
        "train_images": len(train.labels), "train_people": len(set(train.labels)),
        "val_images": len(val.labels), "val_people": len(set(val.labels)),
        "eval_images": len(eval_images), "images_total": all_count,
        "test_pairs": int(len(test_pairs.same)), "identify_people": len(enroll),
        "identify_probes": len(probes), "identify_strangers": len(strangers),
    }
    if filtered:
        data.stats["test_filter"] = {"distance": d.test_filter, **{
            f"{role}_{what}": n for role, counts in filtered.items() for what, n in counts.items()}}
    if data.train_hard is not None:
        made = len(data.train_hard[0])
        data.stats["hard_crops"] = {kind: made * n for kind, n in Counter(kind for kind, _ in kinds).items()}
    if data.extra is not None:
        data.stats["extra"] = data.extra.counts
    data.stats["threshold_from"] = "pairsDevTrain.txt" if split.source == "lfw-view1" else "pairs of validation people"
    return data


def _prepare_eval(eval_images: list[FaceImage], spec: FaceSpec, settings, progress, step) -> Faces:
    """Every image the evaluation reads, in order (all of them, a centre crop where no face was found).

    Raises:
        DataError: an image cannot be read.
    """
    step("test faces", len(eval_images))
    res = prepare_faces([im.path for im in eval_images], spec, _cache(settings), workers=settings.data.workers,
                        progress=progress)
    if not res.ok.all():
        bad = [str(p) for p, ok in zip(res.paths, res.ok, strict=True) if not ok]
        raise DataError(f"{len(bad)} evaluation image(s) are unreadable, e.g. {bad[0]}")
    return Faces(res.crops, res.teacher, [im.identity for im in eval_images], [im.path for im in eval_images])


def _evaluated_test_teacher(eval_faces: Faces, test_people) -> np.ndarray:
    """A quick build's contamination reference: the teacher embeddings of the test people's images
    that its evaluation reads (its test pairs' and identification's; the threshold pairs' are
    training people's). It covers every image a smoke test scores, and no other test image is read,
    where every image of the test people (_test_people_teacher) would be 3,708 of LFW's."""
    people = set(test_people)
    return eval_faces.teacher[[i for i, label in enumerate(eval_faces.labels) if label in people]]


def _test_people_teacher(dataset, test_people, spec: FaceSpec, settings, progress, step) -> np.ndarray:
    """Teacher embeddings of every image of the test people: the reference of the contamination
    filters (data.test_filter, extra.max_test_distance), the one use of test images before the
    evaluation. Every image the evaluation reads is in it, a centre crop where no face was found
    included (the evaluation scores those too). A quick build's is _evaluated_test_teacher."""
    people = set(test_people)
    paths = [im.path for im in dataset.images if im.identity in people]
    step("test people's faces (the contamination filters)", len(paths))
    res = prepare_faces(paths, spec, _cache(settings), workers=settings.data.workers, progress=progress)
    return res.teacher[res.ok]


def _name_words(name: str) -> frozenset[str]:
    return frozenset(person_key(name).split("_"))


def filter_test_copies(faces: Faces, test_teacher: np.ndarray, test_people, distance: float) -> tuple[Faces, dict]:
    """``faces`` without LFW's errata (data.test_filter): images whose teacher embedding lies
    closer than ``distance`` to an image of a test person (the same photo filed under two names,
    a group photo's other face), and people whose name has a test person's words in another
    order (``Choi_Sung-hong`` is ``Sung_Hong_Choi``). Returns the kept faces and the counts."""
    near = nearest_distances(faces.teacher, test_teacher) < distance
    test_names = {_name_words(p) for p in test_people}
    named = np.array([_name_words(label) in test_names for label in faces.labels], bool)
    keep = np.flatnonzero(~(near | named))
    kept = Faces(faces.crops[keep], faces.teacher[keep], [faces.labels[i] for i in keep],
                 [faces.paths[i] for i in keep])
    return kept, {"near_test_image": int(near.sum()), "named_as_test_person": int((named & ~near).sum())}


_caches: dict[str, FaceCache] = {}


def _cache(settings) -> FaceCache:
    key = str(settings.data.cache_path())
    if key not in _caches:
        _caches[key] = FaceCache(settings.data.cache_path())
    return _caches[key]


def _balanced_subset(pairs: list[lfw.Pair], n_per_class: int, rng: random.Random) -> list[lfw.Pair]:
    same = [p for p in pairs if p.same]
    diff = [p for p in pairs if not p.same]
    return rng.sample(same, min(n_per_class, len(same))) + rng.sample(diff, min(n_per_class, len(diff)))


def first_probes_of_each(probes: list[tuple[int, str]], people: list[str], n: int) -> list[tuple[int, str]]:
    """The first ``n`` probes of each of ``people``, in their order (a quick build's 80 probes of
    8 people: the first 80 in order left the last person enrolled with none)."""
    taken = dict.fromkeys(people, 0)
    kept = []
    for index, person in probes:
        if person in taken and taken[person] < n:
            taken[person] += 1
            kept.append((index, person))
    return kept


def _sampled_pairs(people, groups, n_per_class, seed, idx) -> PairSet:
    """Up to ``n_per_class`` same and different pairs of ``people``'s images, drawn by the one
    pair sampler (metrics.sample_pairs), as indices into the evaluation images (``idx``)."""
    images = [im for person in sorted(people) for im in groups.get(person, [])]
    a, b, same = metrics.sample_pairs([im.identity for im in images], n_per_class, seed)
    return PairSet(np.array([idx(images[i]) for i in a], int), np.array([idx(images[j]) for j in b], int),
                   np.asarray(same, bool))
