"""Extra faces: images without identities, used only for distillation.

The teacher labels them and the student imitates it on them, next to the training people's
images: more distinct faces for a student that is short of data (docs/model.md, "Extra
faces"). They never serve validation, a threshold or the test.

The contamination filter is the one use of the test people's images before the final
evaluation: an extra face whose teacher embedding lies closer than
``extra.max_test_distance`` to any image of a test person is dropped, so a test person's
photo (or a near copy) is never trained on. It steers nothing else. With
``extra.filter_validation`` the same distance also drops faces near an image of a validation
person, so that validation pairs, like test pairs, have no extra face that close. Sets whose
folders are people (Pins: ``pins_Tom Cruise/``) are also filtered by name: a face in a folder
named after a validation or test person of LFW is dropped, whatever its distance (the name
filter; validation people too, so that validation stays a fair stand-in for the test).
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tinyface.data.dataset import IMAGE_EXTENSIONS
from tinyface.errors import DataError


@dataclass
class ExtraFaces:
    """The extra faces a build trains on, after the filters, and what happened to the rest."""

    crops: np.ndarray  # uint8 (N, S, S, C)
    teacher: np.ndarray  # float32 (N, 128)
    paths: list[Path]
    identities: list[str | None] = field(default_factory=list)  # per face: its person (extra.people), else None
    views: tuple[np.ndarray, np.ndarray] | None = None  # crops (M, V, S, S, C), teacher (M, V, 128)
    view_identities: list[str | None] = field(default_factory=list)  # the person of each of those M faces
    mixes: tuple[np.ndarray, np.ndarray] | None = None  # blended crops (K, S, S, C), teacher (K, 128)
    counts: dict = field(default_factory=dict)


def list_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted: the same list on every machine."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def require_extra(extra_settings) -> list[Path]:
    """The images of ``extra.dirs``, or one line saying which folder is missing and how to get it.

    Runs before any work (a build checks it before aligning or training anything).

    Raises:
        DataError: a folder is missing or holds no images.
    """
    return [image for name, folder in zip(extra_settings.dirs, extra_settings.paths(), strict=True)
            for image in folder_images(name, folder)]


def folder_images(name: str, folder: Path) -> list[Path]:
    """The images of one folder of ``extra.dirs`` (``name`` as written there; see require_extra)."""
    from tinyface.config import FETCHABLE_EXTRA

    how = (f"get it with `tinyface data fetch {name}`" if name in FETCHABLE_EXTRA
           else "put face images there, or remove it from extra.dirs (--set extra.dirs=[])")
    # the name as written in extra.dirs, where it is not the path itself (a fetchable set's name)
    called = "" if Path(name).expanduser() == folder else f" ({name})"
    if folder.exists() and not folder.is_dir():
        raise DataError(f"extra faces folder {folder}{called} is a file, not a folder: {how}")
    if not folder.is_dir():
        raise DataError(f"extra faces folder {folder}{called} not found: {how}")
    found = list_images(folder)
    if not found:
        raise DataError(f"extra faces folder {folder}{called} holds no images ({'/'.join(IMAGE_EXTENSIONS)}): {how}")
    return found


def person_key(name: str) -> str:
    """A person's name in a form folder names can be matched on: ``Tom_Cruise``, ``pins_Tom Cruise``
    and ``tom cruise`` all end in ``tom_cruise``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def named_after(paths: list[Path], people) -> np.ndarray:
    """bool per path: its folder is named after one of ``people`` (the folder's name is the
    person's name, or ends with it after a ``_``: ``pins_Tom Cruise``)."""
    keys = {person_key(p) for p in people}
    keys.discard("")
    verdict: dict[str, bool] = {}
    out = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        folder = path.parent.name
        if folder not in verdict:
            k = person_key(folder)
            parts = k.split("_")
            verdict[folder] = any("_".join(parts[j:]) in keys for j in range(len(parts)))
        out[i] = verdict[folder]
    return out


def nearest_distances(queries: np.ndarray, references: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance from every row of ``queries`` to its nearest row of ``references``."""
    q = np.asarray(queries, np.float32)
    r = np.asarray(references, np.float32)
    if len(r) == 0:
        return np.full(len(q), np.inf, np.float32)
    r_sq = np.sum(r * r, axis=1)
    out = np.empty(len(q), np.float32)
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        d2 = np.sum(block * block, axis=1)[:, None] + r_sq[None, :] - 2.0 * block @ r.T
        out[start:start + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def load_extra_faces(settings, spec, cache, test_teacher: np.ndarray,
                     progress: Callable[[int], None] | None = None,
                     step: Callable[[str, int], None] | None = None,
                     held_out_people=(), validation_teacher: np.ndarray | None = None) -> ExtraFaces | None:
    """Prepare ``settings.extra``'s faces for distillation: cut the student's crops and the
    teacher's embeddings (cached like LFW's), drop the unreadable ones, those with no face,
    those in a folder named after one of ``held_out_people`` (LFW's validation and test
    people) and those too close to a test person (``test_teacher``: teacher embeddings of
    every image of the test people) or, given ``validation_teacher``, to a validation image,
    then make the views and mixes the settings ask for.

    Returns None when ``extra.dirs`` is empty.

    Raises:
        DataError: a folder is missing or empty (see require_extra).
    """
    from tinyface.data.faces import blend, plan_mixes, prepare_faces, prepare_mixes, prepare_views

    x = settings.extra
    if not x.dirs:
        return None
    kind_of: dict[Path, str] = {}
    person_of: dict[Path, str | None] = {}
    folders = zip(x.dirs, x.paths(), x.kinds(), x.people_folders(), strict=True)
    for number, (name, folder, kind, people) in enumerate(folders):
        for image in folder_images(name, folder):
            kind_of.setdefault(image, kind)
            person_of.setdefault(image, f"extra{number}:{image.parent.name}" if people else None)
    images = list(kind_of)
    found = len(images)
    if x.limit and found > x.limit:
        images = sorted(random.Random(settings.data.seed).sample(images, x.limit))
    specs = {kind: dataclasses.replace(spec, teacher=True,
                                       source_chip_padding=x.chip_padding if kind == "chips" else None)
             for kind in dict.fromkeys(kind_of.values())}  # in the folders' order
    workers = settings.data.workers
    step = step or (lambda name, total: None)
    step("extra faces", len(images))
    n, size, channels = len(images), spec.crop_size, spec.channels
    crops = np.zeros((n, size, size, channels), np.uint8)
    teacher = np.zeros((n, 128), np.float32)
    ok, detected = np.zeros(n, bool), np.zeros(n, bool)
    for kind, kind_spec in specs.items():
        rows = [i for i, image in enumerate(images) if kind_of[image] == kind]
        if not rows:
            continue
        res = prepare_faces([images[i] for i in rows], kind_spec, cache, workers=workers, progress=progress)
        crops[rows], teacher[rows], ok[rows], detected[rows] = res.crops, res.teacher, res.ok, res.detected
    usable = ok & detected
    named = named_after(images, held_out_people) & usable
    candidates = np.flatnonzero(usable & ~named)
    candidate_teacher = teacher[candidates]
    clean = nearest_distances(candidate_teacher, test_teacher) >= x.max_test_distance
    counts = {
        "found": found, "sampled": len(images), "unreadable": int((~ok).sum()),
        "no_face": int((ok & ~detected).sum()), "named_after_held_out_person": int(named.sum()),
        "too_close_to_test": int((~clean).sum()),
    }
    if validation_teacher is not None:  # a face near both counts as near the test
        near_val = nearest_distances(candidate_teacher, validation_teacher) < x.max_test_distance
        counts["too_close_to_validation"] = int((near_val & clean).sum())
        clean &= ~near_val
    keep = candidates[clean]
    counts.update(used=int(len(keep)), max_test_distance=x.max_test_distance, kind="/".join(sorted(specs)))
    out = ExtraFaces(crops[keep], teacher[keep], [images[i] for i in keep],
                     [person_of[images[i]] for i in keep], counts=counts)
    named_people = {person for person in out.identities if person is not None}
    if named_people:
        counts["people"] = len(named_people)
    spec = next(iter(specs.values()))  # views and mixes: one kind for every folder (ExtraSettings.validate)
    if x.views and len(keep):
        step("extra faces' views", len(out.paths))
        ok, view_crops, view_teacher = prepare_views(out.paths, spec, cache, x.views, workers, progress)
        out.views = (view_crops[ok], view_teacher[ok])
        out.view_identities = [person for person, good in zip(out.identities, ok, strict=True) if good]
        counts["views"] = int(ok.sum()) * x.views
    if x.mixes and len(keep) > 1:
        plan = plan_mixes([str(p) for p in out.paths], x.mixes, settings.data.seed + 7)
        step("extra faces' mixes", len(plan))
        ok, mix_teacher = prepare_mixes(out.paths, plan, spec, cache, workers, progress)
        mix_crops = np.stack([blend(out.crops[m.a], out.crops[m.b], m.lam) for m in plan])
        out.mixes = (mix_crops[ok], mix_teacher[ok])
        counts["mixes"] = int(ok.sum())
    return out
