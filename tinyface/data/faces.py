"""Prepare faces for training and evaluation: decode, align, crop, embed with the teacher.

Everything is cached per image content (see cache.py): a second run over the same data
and settings reads the cache and never calls the aligner or the teacher. Work on cache
misses runs in worker processes (decoding, alignment, cutting crops and teacher chips);
the teacher embeds the workers' chips in this process, in batches (it is fast per batch and
slow per chip). Results are committed in batches so an interrupted run keeps what it
finished.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tinyface.config import DataSettings, TeacherSettings
from tinyface.data.align import (
    ALIGNER_VERSION,
    CROP_OUTSIDE,
    FALLBACK,
    Aligner,
    Alignment,
    ChipAligner,
    Perturbation,
    cut_chip,
    is_legacy_not_found,
)
from tinyface.data.cache import FaceCache, content_hash, settings_digest
from tinyface.data.dataset import ImageError, Skipped, read_image
from tinyface.vectors import l2_normalize

COMMIT_EVERY = 256


@dataclass(frozen=True)
class FaceSpec:
    """What to produce for each image (the defaults are the settings' defaults, ``from_settings``)."""

    crop_size: int = DataSettings.crop_size
    channels: int = DataSettings.channels
    padding: float = DataSettings.padding
    detector_upsample: int = DataSettings.detector_upsample
    teacher: bool = False  # also compute the teacher embedding
    teacher_chip_size: int = TeacherSettings.chip_size
    teacher_padding: float = TeacherSettings.chip_padding
    teacher_flip_average: bool = TeacherSettings.flip_average
    source_chip_padding: float | None = None  # the images are dlib face chips cut with this padding (no detector)

    @property
    def aligner_id(self) -> str:
        """What found the landmarks, in every cache digest (chips and photos never share entries)."""
        if self.source_chip_padding is None:
            return ALIGNER_VERSION
        return f"chip-template-v1-padding-{self.source_chip_padding:g}"

    def aligner_factory(self) -> Callable[[int], Aligner]:
        if self.source_chip_padding is None:
            return Aligner
        return functools.partial(ChipAligner, self.source_chip_padding)

    @classmethod
    def from_settings(cls, settings, teacher: bool = False) -> "FaceSpec":
        d, t = settings.data, settings.teacher
        return cls(d.crop_size, d.channels, d.padding, d.detector_upsample, teacher,
                   t.chip_size, t.chip_padding, t.flip_average)

    @classmethod
    def for_model(cls, meta, settings=None) -> "FaceSpec":
        """How to cut faces for a model: crop size and channels from its input shape, padding
        from its model.json (``crop_padding``), the detector's retry from the settings
        (``data.detector_upsample``), so a board's faces are cut as the build cut its test faces.
        The one construction for `bench`, `flash --enroll`, `enroll`, `identify` and `evaluate`.

        Args:
            meta: the model's description (a tinyface.model.bundle.ModelMeta: ``input_shape``
                ``[1, H, W, C]`` and ``crop_padding``).
            settings: tinyface.config.Settings (default: the defaults).

        Raises:
            DataError: the model's input is not square.
        """
        from tinyface.errors import DataError

        _, h, w, c = (int(v) for v in meta.input_shape)
        if h != w:
            raise DataError(f"the model's input is {h}x{w}; the face pipeline makes square crops")
        data = settings.data if settings is not None else DataSettings()
        return cls(crop_size=h, channels=c, padding=float(meta.crop_padding),
                   detector_upsample=data.detector_upsample)

    def cut_teacher_chip(self, rgb: np.ndarray, alignment: Alignment,
                         perturbation: Perturbation | None = None) -> np.ndarray:
        """The teacher's chip of a face: RGB, ``teacher_chip_size`` pixels square at
        ``teacher_padding`` (by default dlib's 150x150 at 0.25, TeacherSettings), black past the
        photo as dlib's ``get_face_chip``; the one cut of every teacher chip.

        Args:
            rgb: the photo, uint8 (H, W, 3).
            alignment: its face's landmarks.
            perturbation: a teacher view's perturbation (align.Perturbation), or None.

        Returns:
            uint8 (S, S, 3).
        """
        return cut_chip(rgb, alignment, self.teacher_chip_size, self.teacher_padding, 3, perturbation)

    def landmark_digest(self) -> str:
        return settings_digest(aligner=self.aligner_id, upsample=self.detector_upsample)

    def crop_digest(self) -> str:
        return settings_digest(aligner=self.aligner_id, upsample=self.detector_upsample,
                               size=self.crop_size, channels=self.channels, padding=self.padding, outside=CROP_OUTSIDE)

    def teacher_digest(self) -> str:
        from tinyface.teacher import TEACHER_VERSION

        return settings_digest(aligner=self.aligner_id, upsample=self.detector_upsample, teacher=TEACHER_VERSION,
                               size=self.teacher_chip_size, padding=self.teacher_padding,
                               flip=self.teacher_flip_average)


@dataclass
class PreparedFaces:
    """Per-input results; ``ok[i]`` is False for images that were skipped."""

    paths: list[Path]
    ok: np.ndarray  # bool (N,)
    crops: np.ndarray  # uint8 (N, S, S, C); zeros where not ok
    detected: np.ndarray  # bool (N,): a face was found (else the centered fallback was used)
    teacher: np.ndarray | None  # float32 (N, 128) or None
    skipped: list[Skipped] = field(default_factory=list)
    computed: int = 0  # images that missed the cache and were processed
    methods: list[str] = field(default_factory=list)  # per image: how its face was found (align.METHODS), "" if skipped
    # per image: its face was underexposed, so its crops and chips were cut brightened (align.underexposed)
    normalised: list[bool] = field(default_factory=list)

    @property
    def n_fallback(self) -> int:
        return int(np.sum(self.ok & ~self.detected))

    @property
    def usable(self) -> np.ndarray:
        """bool (N,): readable and a face was found (by any method), so the crop is a face."""
        return self.ok & self.detected

    def method_counts(self) -> dict[str, int]:
        """How many readable images each method found (``fallback``: none found)."""
        from tinyface.data.align import METHODS

        counts = {method: 0 for method in METHODS}
        for ok, method in zip(self.ok, self.methods, strict=True):
            if ok:
                counts[method] += 1
        return {method: n for method, n in counts.items() if n}

    def unusable(self) -> list[tuple[Path, str]]:
        """(path, reason) of every image that must not be enrolled or trained on: unreadable
        ones (the reason from ``skipped``) and those with no face found."""
        reasons = {s.path: s.reason for s in self.skipped}
        out = []
        for path, ok, det in zip(self.paths, self.ok, self.detected, strict=True):
            if not ok:
                out.append((path, reasons.get(path, "unreadable")))
            elif not det:
                out.append((path, "no face found"))
        return out


# --- worker side -------------------------------------------------------------------------

_worker_aligner: Aligner | None = None


def _worker_init(upsample: int, aligner_factory) -> None:
    global _worker_aligner
    _worker_aligner = aligner_factory(upsample)


def _process(job) -> tuple[int, dict | str]:
    """Compute what ``job`` asks for one image; returns (index, results) or (index, error)."""
    index, path, spec, landmarks, need_crop, need_teacher = job
    try:
        rgb = read_image(path)
    except ImageError as exc:
        return index, exc.reason
    out: dict[str, np.ndarray] = {}
    alignment = Alignment.from_array(landmarks) if landmarks is not None else _worker_aligner.detect(rgb)
    if landmarks is None:
        out["lmk"] = alignment.to_array()
    if need_crop:
        out["crop"] = cut_chip(rgb, alignment, spec.crop_size, spec.padding, spec.channels, outside=CROP_OUTSIDE)
    if need_teacher:
        chip = spec.cut_teacher_chip(rgb, alignment)
        out["chips"] = {"plain": chip, "flip": chip[:, ::-1]} if spec.teacher_flip_average else {"plain": chip}
    return index, out


# --- main side ---------------------------------------------------------------------------

class _PendingWrites:
    """Cache entries waiting to be committed, flushed every COMMIT_EVERY (and at the end),
    so an interrupted run keeps what it finished."""

    def __init__(self, cache: FaceCache):
        self.cache = cache
        self.items: dict[str, np.ndarray] = {}

    def add(self, key: str, value: np.ndarray) -> None:
        self.items[key] = value
        if len(self.items) >= COMMIT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.items:
            self.cache.put_many(self.items)
            self.items.clear()


class _TeacherQueue:
    """Results waiting for the teacher: a result with ``chips`` ({name: RGB chip}) is held
    until enough chips are waiting for a batch, then handed on with ``teacher``
    ({name: embedding}) in their place; other results pass straight through."""

    def __init__(self, collect, batch_chips: int = 256):
        self.collect, self.batch_chips = collect, batch_chips
        self.waiting: list[tuple[int, dict]] = []
        self.n_chips = 0

    def __call__(self, index: int, result) -> None:
        if isinstance(result, str) or "chips" not in result:
            self.collect(index, result)
            return
        self.waiting.append((index, result))
        self.n_chips += len(result["chips"])
        if self.n_chips >= self.batch_chips:
            self.flush()

    def flush(self) -> None:
        if not self.waiting:
            return
        from tinyface.teacher import embed_chips

        embeddings = iter(embed_chips([c for _, r in self.waiting for c in r["chips"].values()]))
        waiting, self.waiting, self.n_chips = self.waiting, [], 0
        for index, result in waiting:
            result["teacher"] = {name: next(embeddings) for name in result.pop("chips")}
            self.collect(index, result)


def _pool_worker_init(initializer, initargs) -> None:
    """Every pool worker ignores Ctrl-C (a terminal sends it to the whole process group): the
    parent alone stops and terminates the pool, and no worker prints its own traceback. (Under
    console.catch_interrupts a worker already ignores it from its fork on, and SIGTERM, with which
    the pool terminates its workers, has its default in them.)"""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer:
        initializer(*initargs)


def _run_jobs(jobs: list, process, collect, workers: int, initializer=None, initargs=(), chunksize: int = 8) -> None:
    """Run ``process`` over ``jobs`` (in this process when few or ``workers`` == 1, else in a
    fork pool) and hand each ``(index, result)`` to ``collect`` as it finishes, after the
    teacher embedded the chips it asks for (see _TeacherQueue)."""
    workers = workers or os.cpu_count() or 1
    queue = _TeacherQueue(collect)
    if workers == 1 or len(jobs) <= 8:
        if initializer:
            initializer(*initargs)
        for job in jobs:
            queue(*process(job))
        queue.flush()
        return
    import multiprocessing as mp

    with mp.get_context("fork").Pool(workers, initializer=_pool_worker_init, initargs=(initializer, initargs)) as pool:
        # chunks of our own, one task each: Pool's own chunking gives a generator, whose waits have no timeout
        chunks = [jobs[start:start + chunksize] for start in range(0, len(jobs), chunksize)]
        results = pool.imap_unordered(functools.partial(_run_chunk, process), chunks)
        while True:
            try:
                done = results.next(timeout=POOL_WAKE_S)
            except mp.TimeoutError:
                # back in Python for a moment: a Ctrl-C that the kernel gave one of the pool's threads
                # is raised here. A wait with no timeout slept on until a job ended (a CI run waited 60 s)
                continue
            except StopIteration:
                break
            for index, result in done:
                queue(index, result)
    queue.flush()


POOL_WAKE_S = 0.25  # the longest a pool's results are waited for before a Ctrl-C is looked at


def _run_chunk(process, chunk: list) -> list:
    """``process`` over one chunk of jobs, in a pool worker (:func:`_run_jobs`)."""
    return [process(job) for job in chunk]

def prepare_faces(
    paths: Sequence[str | os.PathLike],
    spec: FaceSpec,
    cache: FaceCache,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
    aligner_factory: Callable[[int], Aligner] | None = None,
) -> PreparedFaces:
    """Aligned crops (and teacher embeddings) for ``paths``, from the cache where possible.

    Args:
        paths: image files.
        spec: crop and teacher settings.
        cache: where results are looked up and stored.
        workers: processes for cache misses (0: one per core; 1: in this process).
        progress: called with the number of images finished, as they finish.
        aligner_factory: builds the aligner (default: the spec's; tests substitute one that must not be called).

    Returns:
        PreparedFaces; unreadable images are listed in ``skipped`` with the reason.
    """
    paths = [Path(p) for p in paths]
    n = len(paths)
    s = spec.crop_size
    crops = np.zeros((n, s, s, spec.channels), np.uint8)
    detected = np.zeros(n, bool)
    ok = np.zeros(n, bool)
    teacher = np.zeros((n, 128), np.float32) if spec.teacher else None
    skipped: list[Skipped] = []
    methods = [""] * n
    normalised = [False] * n

    hashes: list[str | None] = []
    for p in paths:
        if p.exists() and not p.is_file():  # reading a FIFO would block forever
            hashes.append(None)
            skipped.append(Skipped(p, "not a regular file"))
            continue
        try:
            hashes.append(content_hash(p.read_bytes()))
        except OSError as exc:
            hashes.append(None)
            skipped.append(Skipped(p, f"cannot read file ({exc.strerror or exc})"))
    # the teacher's digest imports tinyface.train: only when embeddings are wanted
    lmk_d, crop_d = spec.landmark_digest(), spec.crop_digest()
    teach_d = spec.teacher_digest() if spec.teacher else ""

    def keys(h):
        return (FaceCache.key("lmk", lmk_d, h), FaceCache.key("crop", crop_d, h), FaceCache.key("teacher", teach_d, h))

    wanted = [k for h in hashes if h for k in keys(h)]
    found = cache.get_many(wanted)

    jobs = []
    done_from_cache = 0
    for i, h in enumerate(hashes):
        if h is None:
            continue
        k_lmk, k_crop, k_teach = keys(h)
        lmk = found.get(k_lmk)
        if lmk is not None and is_legacy_not_found(lmk):
            # cached before the rescue steps existed: look again, and re-cut what came from it
            lmk = None
            for k in (k_lmk, k_crop, k_teach):
                found.pop(k, None)
        need_crop = k_crop not in found
        need_teacher = spec.teacher and k_teach not in found
        if lmk is not None and not need_crop and not need_teacher:
            _store(i, lmk, found[k_crop], found.get(k_teach), crops, detected, ok, teacher, methods, normalised)
            done_from_cache += 1
            continue
        jobs.append((i, paths[i], spec, lmk, need_crop, need_teacher))
    if progress and done_from_cache:
        progress(done_from_cache)

    pending = _PendingWrites(cache)

    def collect(index: int, result) -> None:
        if isinstance(result, str):
            skipped.append(Skipped(paths[index], result))
        else:
            k_lmk, k_crop, k_teach = keys(hashes[index])
            if "teacher" in result:  # the mean of the chip's (and its mirror's) embeddings
                emb = np.mean(list(result["teacher"].values()), axis=0)
                result["teacher"] = l2_normalize(emb)
            for name, key in (("lmk", k_lmk), ("crop", k_crop), ("teacher", k_teach)):
                if name in result:
                    pending.add(key, result[name])
                    found[key] = result[name]
            _store(index, found[k_lmk], found[k_crop], found.get(k_teach), crops, detected, ok, teacher, methods,
                   normalised)
        if progress:
            progress(1)

    try:
        _run_jobs(jobs, _process, collect, workers, _worker_init,
                  (spec.detector_upsample, aligner_factory or spec.aligner_factory()))
    finally:
        pending.flush()
    return PreparedFaces(paths, ok, crops, detected, teacher, skipped, computed=len(jobs), methods=methods,
                         normalised=normalised)


def _store(i, lmk, crop, emb, crops, detected, ok, teacher, methods, normalised) -> None:
    crops[i] = crop
    alignment = Alignment.from_array(lmk)
    methods[i] = alignment.method
    normalised[i] = alignment.normalised
    detected[i] = methods[i] != FALLBACK
    ok[i] = True
    if teacher is not None and emb is not None:
        teacher[i] = emb


# --- the landmarks prepare_faces cached -------------------------------------------------------

def _cached_landmarks(hashes: Sequence[str], spec: FaceSpec, cache: FaceCache) -> dict[str, np.ndarray]:
    """The landmark arrays ``cache`` holds for the images of these content hashes, by hash."""
    digest = spec.landmark_digest()
    keys = {h: FaceCache.key("lmk", digest, h) for h in hashes}
    found = cache.get_many(keys.values())
    return {h: found[k] for h, k in keys.items() if k in found}


def cached_alignments(paths: Sequence[str | os.PathLike], spec: FaceSpec, cache: FaceCache,
                      hashes: Sequence[str] | None = None) -> list[Alignment | None]:
    """The alignment prepare_faces cached for each image, without running the aligner (one
    cache look-up). As prepare_views, prepare_hard_views and prepare_mixes read them: an entry
    cached before the rescue steps (align.is_legacy_not_found) comes back as it is, where
    prepare_faces would align the image again.

    Args:
        paths: image files.
        spec: the landmark settings they were aligned with (``landmark_digest``: the aligner and
            its retry; the crop and teacher settings do not matter).
        cache: the face cache prepare_faces wrote.
        hashes: the files' content hashes, where the caller has them (default: read here).

    Returns:
        One Alignment per path, None where the cache holds no landmarks for it.
    """
    if hashes is None:
        hashes = [content_hash(Path(p).read_bytes()) for p in paths]
    found = _cached_landmarks(hashes, spec, cache)
    return [Alignment.from_array(found[h]) if h in found else None for h in hashes]


# --- teacher views: the same perturbed view for the student crop and the teacher chip -------

def _run_and_store(cache: FaceCache, found: dict, jobs: list, process, store, workers: int, progress,
                   chunksize: int) -> None:
    """Run ``jobs``; ``store(index, result, put)`` files each successful result with
    ``put(key, value)``, which records it in ``found`` and commits it to the cache in batches
    (also when interrupted). Failed jobs (an error string) are only counted."""
    pending = _PendingWrites(cache)

    def put(key, value):
        pending.add(key, value)
        found[key] = value

    def collect(index, result):
        if not isinstance(result, str):
            store(index, result, put)
        if progress:
            progress(1)

    try:
        _run_jobs(jobs, process, collect, workers, chunksize=chunksize)
    finally:
        pending.flush()


def view_seed(image_hash: str, view: int) -> int:
    return int(image_hash[:12], 16) * 1000 + view


def _process_views(job) -> tuple[int, dict | str]:
    index, path, spec, landmarks, image_hash, views, teacher_views = job
    try:
        rgb = read_image(path)
    except ImageError as exc:
        return index, str(exc)
    alignment = Alignment.from_array(landmarks)
    crops, chips = {}, {}
    for v in views:
        p = Perturbation.sample(view_seed(image_hash, v))
        crops[v] = cut_chip(rgb, alignment, spec.crop_size, spec.padding, spec.channels, p, outside=CROP_OUTSIDE)
        if v in teacher_views:
            chips[v] = spec.cut_teacher_chip(rgb, alignment, p)
    return index, {"crops": crops, "chips": chips}


def prepare_views(paths: Sequence[str | os.PathLike], spec: FaceSpec, cache: FaceCache, views: int,
                  workers: int = 0, progress: Callable[[int], None] | None = None):
    """``views`` perturbed views of each image (see align.Perturbation), each with the
    teacher's embedding *of that view*: uint8 crops (N, V, S, S, C), float32 (N, V, 128).

    Needs the landmarks in the cache (run prepare_faces first); images without them are
    returned with ``ok`` False. Cached per image and view like everything else.
    """
    paths = [Path(p) for p in paths]
    n, s = len(paths), spec.crop_size
    crops = np.zeros((n, views, s, s, spec.channels), np.uint8)
    teacher = np.zeros((n, views, 128), np.float32)
    ok = np.zeros(n, bool)
    hashes = [content_hash(p.read_bytes()) for p in paths]
    crop_digests = [settings_digest(base=spec.crop_digest(), view=v) for v in range(views)]
    teacher_digests = [settings_digest(base=spec.teacher_digest(), view=v) for v in range(views)]

    def keys(h, v):  # the teacher's view does not depend on the student's crop settings
        return FaceCache.key("vcrop", crop_digests[v], h), FaceCache.key("vteacher", teacher_digests[v], h)

    lmks = _cached_landmarks(hashes, spec, cache)
    found = cache.get_many([k for h in hashes for v in range(views) for k in keys(h, v)])
    jobs = []
    for i, h in enumerate(hashes):
        lmk = lmks.get(h)
        if lmk is None:
            continue
        missing = [v for v in range(views) if any(k not in found for k in keys(h, v))]
        if missing:
            jobs.append((i, paths[i], spec, lmk, h, missing, [v for v in missing if keys(h, v)[1] not in found]))
    if progress and n > len(jobs):
        progress(n - len(jobs))  # images whose views are all cached (or have no landmarks)
    def store(index, result, put):
        for v, crop in result["crops"].items():
            kc, kt = keys(hashes[index], v)
            put(kc, crop)
            if v in result["teacher"]:
                put(kt, result["teacher"][v])

    _run_and_store(cache, found, jobs, _process_views, store, workers, progress, chunksize=4)
    for i, h in enumerate(hashes):
        ks = [keys(h, v) for v in range(views)]
        if all(kc in found and kt in found for kc, kt in ks):
            crops[i] = np.stack([found[kc] for kc, _ in ks])
            teacher[i] = np.stack([found[kt] for _, kt in ks])
            ok[i] = True
    return ok, crops, teacher


# --- hard views: the student's crop of the photo made hard, cut as any photo is -------------

def _process_hard(job) -> tuple[int, dict | str]:
    from tinyface.data.hard_photos import hard_view

    index, path, spec, landmarks, views = job
    try:
        rgb = read_image(path)
    except ImageError as exc:
        return index, str(exc)
    alignment = Alignment.from_array(landmarks)
    crops = {}
    for v, kind, seed in views:
        hard, moved = hard_view(rgb, alignment, seed, kind)
        # cut_chip judges the face itself (an underexposed one is brightened) and fills past the
        # photo's edge as for a user's photo
        crops[v] = cut_chip(hard, moved, spec.crop_size, spec.padding, spec.channels, outside=CROP_OUTSIDE)
    return index, {"crops": crops}


def hard_kinds(relit: int, tight: int) -> list[tuple[str, int]]:
    """The hard views of ``distill.relit_views`` and ``distill.tight_views``: (kind, index among
    that setting's views), relit view v very dark or dim when v is even, lit from one side when
    odd (tinyface.data.hard_photos)."""
    from tinyface.data.hard_photos import RELIT_KINDS

    return [(RELIT_KINDS[v % len(RELIT_KINDS)], v) for v in range(relit)] + [("tight", v) for v in range(tight)]


def prepare_hard_views(paths: Sequence[str | os.PathLike], spec: FaceSpec, cache: FaceCache,
                       kinds: Sequence[tuple[str, int]], workers: int = 0,
                       progress: Callable[[int], None] | None = None):
    """Hard crops of each photo, one per ``kinds`` entry (``hard_kinds``; made by
    tinyface.data.hard_photos.hard_view), each cut with the photo's own landmarks through the
    pipeline's cut: uint8 (N, V, S, S, C). No teacher pass: the target of a hard crop is the
    teacher's embedding of the untouched photo.

    Needs the landmarks in the cache (run prepare_faces first); images without them are
    returned with ``ok`` False. Cached per image and view.
    """
    from tinyface.data.hard_photos import VIEW_VERSIONS

    paths = [Path(p) for p in paths]
    n, s, views = len(paths), spec.crop_size, len(kinds)
    crops = np.zeros((n, views, s, s, spec.channels), np.uint8)
    ok = np.zeros(n, bool)
    hashes = [content_hash(p.read_bytes()) for p in paths]
    # relit views keep the digests and seeds they had when they were the only hard views (runs R3);
    # tight view i is seeded as view 100 + i, apart from them
    digests = [settings_digest(base=spec.crop_digest(), relit=VIEW_VERSIONS[kind], view=i) if kind != "tight"
               else settings_digest(base=spec.crop_digest(), tight=VIEW_VERSIONS[kind], view=i) for kind, i in kinds]
    seed_offsets = [0 if kind != "tight" else 100 for kind, _ in kinds]

    def key(h, v):
        return FaceCache.key("rcrop", digests[v], h)

    lmks = _cached_landmarks(hashes, spec, cache)
    found = cache.get_many([key(h, v) for h in hashes for v in range(views)])
    jobs = []
    for i, h in enumerate(hashes):
        lmk = lmks.get(h)
        if lmk is None:
            continue
        missing = [(v, kinds[v][0], view_seed(h, seed_offsets[v] + kinds[v][1])) for v in range(views)
                   if key(h, v) not in found]
        if missing:
            jobs.append((i, paths[i], spec, lmk, missing))
    if progress and n > len(jobs):
        progress(n - len(jobs))  # images whose hard views are all cached (or have no landmarks)

    def store(index, result, put):
        for v, crop in result["crops"].items():
            put(key(hashes[index], v), crop)

    _run_and_store(cache, found, jobs, _process_hard, store, workers, progress, chunksize=4)
    for i, h in enumerate(hashes):
        ks = [key(h, v) for v in range(views)]
        if views and all(k in found for k in ks):
            crops[i] = np.stack([found[k] for k in ks])
            ok[i] = True
    return ok, crops


# --- teacher mixes -----------------------------------------------------------------------

@dataclass(frozen=True)
class Mix:
    """A blend of two aligned faces, ``lam * a + (1 - lam) * b``: a face of no one in
    the data, so a new point where the student can imitate the teacher."""

    a: int  # indices into the image list
    b: int
    lam: float


def plan_mixes(labels: Sequence[str], mixes_per_image: int, seed: int) -> list[Mix]:
    """``mixes_per_image`` blends for every image, each with a random image of another person;
    ``lam`` uniform in [0.2, 0.8]. Seeded: the same list gives the same plan."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    plan = []
    for _ in range(mixes_per_image):
        partners = rng.integers(0, n, n)
        lams = rng.uniform(0.2, 0.8, n)
        for i in range(n):
            j = int(partners[i])
            while n > 1 and labels[j] == labels[i]:
                j = int(rng.integers(0, n))
            plan.append(Mix(i, j, round(float(lams[i]), 3)))
    return plan


def blend(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    """uint8 blend of two aligned crops or chips (warping is linear, so blending crops is
    the same as cutting the crop of a blended image)."""
    return np.clip(np.rint(lam * a.astype(np.float32) + (1.0 - lam) * b.astype(np.float32)), 0, 255).astype(np.uint8)


# Teacher chips held in memory at once while blending (67.5 KB each: about 1.1 GB).
MIX_CHIPS_IN_MEMORY = 16384


def _process_chip(job) -> tuple[int, dict | str]:
    index, path, lmk, spec = job
    try:
        rgb = read_image(path)
    except ImageError as exc:
        return index, str(exc)
    return index, {"chip": spec.cut_teacher_chip(rgb, Alignment.from_array(lmk))}


def _chunks_by_images(todo: list[int], plan: Sequence[Mix], limit: int):
    """Split the mixes ``todo`` into runs that need at most ``limit`` distinct images."""
    chunk: list[int] = []
    images: set[int] = set()
    for k in todo:
        pair = {plan[k].a, plan[k].b}
        if chunk and len(images | pair) > limit:
            yield chunk
            chunk, images = [], set()
        chunk.append(k)
        images |= pair
    if chunk:
        yield chunk


def prepare_mixes(paths: Sequence[str | os.PathLike], plan: Sequence[Mix], spec: FaceSpec, cache: FaceCache,
                  workers: int = 0, progress: Callable[[int], None] | None = None):
    """The teacher's embedding of every blend in ``plan``: ok (K,), float32 (K, 128).

    Needs the landmarks in the cache (run prepare_faces first). Cached per pair and ratio.
    Each image's teacher chip is cut once (in worker processes) and blended with its
    partners in memory, so the teacher's batches are the only per-mix cost.
    """
    paths = [Path(p) for p in paths]
    hashes = [content_hash(p.read_bytes()) for p in paths]
    digest = settings_digest(base=spec.teacher_digest(), kind="mix")
    keys = [FaceCache.key("mteacher", digest, f"{hashes[m.a]}-{hashes[m.b]}-{m.lam:.3f}") for m in plan]
    by_hash = _cached_landmarks(hashes, spec, cache)
    lmks = {i: by_hash[h] for i, h in enumerate(hashes) if h in by_hash}
    found = cache.get_many(keys)
    todo = [k for k, (m, key) in enumerate(zip(plan, keys, strict=True))
            if key not in found and m.a in lmks and m.b in lmks]
    if progress and len(plan) > len(todo):
        progress(len(plan) - len(todo))  # cached, or impossible (an image without landmarks)
    chips: dict[int, np.ndarray] = {}  # the teacher chips of one chunk's images, emptied for each chunk

    def keep_chip(index, result):
        if not isinstance(result, str):
            chips[index] = result["chip"]

    def mix(k):
        m = plan[k]
        if m.a not in chips or m.b not in chips:
            return k, "unreadable image"
        return k, {"chips": {"mix": blend(chips[m.a], chips[m.b], m.lam)}}

    for chunk in _chunks_by_images(todo, plan, MIX_CHIPS_IN_MEMORY):
        chips.clear()
        need = sorted({i for k in chunk for i in (plan[k].a, plan[k].b)})
        _run_jobs([(i, paths[i], lmks[i], spec) for i in need], _process_chip, keep_chip, workers, chunksize=16)
        _run_and_store(cache, found, chunk, mix, lambda index, result, put: put(keys[index], result["teacher"]["mix"]),
                       1, progress, chunksize=1)
    ok = np.array([key in found for key in keys], bool)
    teacher = np.zeros((len(plan), 128), np.float32)
    for k, key in enumerate(keys):
        if key in found:
            teacher[k] = found[key]
    return ok, teacher
