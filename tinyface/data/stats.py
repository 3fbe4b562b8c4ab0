"""Dataset statistics: identities, images, images per person, and what is wrong with it."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tinyface.data.dataset import Dataset, ImageError, Skipped, read_image

HISTOGRAM_BINS = [(1, 1), (2, 2), (3, 4), (5, 9), (10, 19), (20, 49), (50, None)]


@dataclass
class DatasetStats:
    data: str  # the folder (--data)
    identities: int
    images: int
    images_per_person: dict[str, int]  # bin label -> number of people
    people_with_at_least: dict[int, int]
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}
    checked: bool = False  # images were decoded
    aligned: bool = False
    no_face: list[str] = field(default_factory=list)  # images where no face was found (centered fallback)
    # how the faces were found (tinyface.data.align.METHODS -> images), and each image found
    # other than by the plain detector (path -> method)
    face_methods: dict[str, int] = field(default_factory=dict)
    rescued: dict[str, str] = field(default_factory=dict)
    # images whose face was underexposed: their chips are cut from a normalised copy
    normalised: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _label(lo: int, hi: int | None) -> str:
    return f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")


def histogram(counts: Counter) -> dict[str, int]:
    out = {}
    for lo, hi in HISTOGRAM_BINS:
        out[_label(lo, hi)] = sum(1 for c in counts.values() if c >= lo and (hi is None or c <= hi))
    return out


def decode_all(dataset: Dataset, progress: Callable[[int], None] | None = None) -> list[Skipped]:
    """Decode every image (threads: PIL releases the GIL); return the ones that fail."""
    def check(path: Path):
        try:
            read_image(path)
            return None
        except ImageError as exc:
            return Skipped(path, exc.reason)

    bad = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for result in pool.map(check, [im.path for im in dataset.images], chunksize=64):
            if result:
                bad.append(result)
            if progress:
                progress(1)
    return bad


def dataset_stats(dataset: Dataset, check: bool = True, align_result=None,
                  progress: Callable[[int], None] | None = None) -> DatasetStats:
    """Count a dataset; with ``check`` decode every image; with ``align_result`` (a
    PreparedFaces over ``dataset.images``) also count how each face was found and list the
    images with no face found."""
    skipped = list(dataset.skipped)
    bad_paths: set[Path] = set()
    if align_result is not None:
        skipped += align_result.skipped
        bad_paths = {s.path for s in align_result.skipped}
    elif check:
        bad = decode_all(dataset, progress)
        skipped += bad
        bad_paths = {s.path for s in bad}
    good = [im for im in dataset.images if im.path not in bad_paths]
    counts = Counter(im.identity for im in good)
    no_face, face_methods, rescued, normalised = [], {}, {}, []
    if align_result is not None:
        no_face = [str(p) for p, ok, det in zip(align_result.paths, align_result.ok, align_result.detected, strict=True)
                   if ok and not det]
        face_methods = align_result.method_counts()
        rescued = {str(p): m for p, ok, m in zip(align_result.paths, align_result.ok, align_result.methods, strict=True)
                   if ok and m not in ("detector", "fallback")}
        normalised = [str(p) for p, ok, norm in zip(align_result.paths, align_result.ok, align_result.normalised,
                                                    strict=True) if ok and norm]
    return DatasetStats(
        data=str(dataset.root),
        identities=len(counts),
        images=len(good),
        images_per_person=histogram(counts),
        people_with_at_least={k: sum(1 for c in counts.values() if c >= k) for k in (2, 5, 10)},
        skipped=[{"path": str(s.path), "reason": s.reason} for s in skipped],
        checked=check or align_result is not None,
        aligned=align_result is not None,
        no_face=no_face,
        face_methods=face_methods,
        rescued=rescued,
        normalised=normalised,
    )
