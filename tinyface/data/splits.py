"""Who is used for what.

LFW (View 1): training and validation people come only from ``peopleDevTrain.txt``;
verification is tested on ``pairsDevTest.txt`` with the threshold chosen on pairs of
validation people (or on ``pairsDevTrain.txt``: ``data.threshold_from``); identification by
enrollment uses ``peopleDevTest.txt`` people.
The test people and pairs are never used for training, calibration or model selection.

A user's folder-per-person dataset has no protocol files: its people are split by a
seeded shuffle into train / validation / test people in the same roles.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from tinyface.data import lfw
from tinyface.data.dataset import Dataset, FaceImage
from tinyface.errors import DataError


@dataclass
class Split:
    train: list[FaceImage]
    val: list[FaceImage]
    test_people: list[str]  # identification / verification test identities (never trained on)
    source: str  # "lfw-view1" or "folders"


def train_val_test(dataset: Dataset, val_fraction: float, seed: int, test_fraction: float = 0.3,
                   min_train: int = 2) -> Split:
    """Split a dataset's people into train / validation / test roles (see module docstring).

    Raises:
        DataError: fewer than ``min_train`` training people (0: never; a caller that reports
            every role's count itself, tinyface.train.pipeline.check_dataset_size, passes 0).
    """
    groups = dataset.by_identity()
    rng = random.Random(seed)
    if dataset.is_lfw() and (dataset.root / lfw.PEOPLE_DEV_TRAIN).is_file():
        dev_train = [name for name, _ in lfw.read_people(dataset.root / lfw.PEOPLE_DEV_TRAIN)]
        dev_test = [name for name, _ in lfw.read_people(dataset.root / lfw.PEOPLE_DEV_TEST)]
        overlap = set(dev_train) & set(dev_test)
        if overlap:
            raise DataError(f"peopleDevTrain and peopleDevTest share {len(overlap)} people")
        train_people = [p for p in dev_train if p in groups]
        test_people = [p for p in dev_test if p in groups]
        source = "lfw-view1"
    else:
        lfw_root = dataset.images_dir.parent
        if dataset.images_dir.name == "images" and (lfw_root / lfw.PEOPLE_DEV_TEST).is_file():
            # a seeded shuffle of LFW's people would train on its held-out test people
            raise DataError(f"{dataset.images_dir} is the images/ folder of an LFW dataset: as a folder of "
                            "people it would train on LFW's test people",
                            hint=f"give the LFW folder itself: --data {lfw_root}")
        people = sorted(groups)
        rng.shuffle(people)
        n_test = max(1, round(len(people) * test_fraction))
        test_people, train_people = sorted(people[:n_test]), people[n_test:]
        source = "folders"
    if len(train_people) < min_train:
        raise DataError(f"only {len(train_people)} training people; need at least {min_train}")
    people = sorted(train_people)
    rng.shuffle(people)
    n_val = max(1, round(len(people) * val_fraction))
    val_people = set(people[:n_val])
    train = [im for p in sorted(train_people) if p not in val_people for im in groups[p]]
    val = [im for p in sorted(val_people) for im in groups[p]]
    return Split(train, val, sorted(test_people), source)


# A quick build's images (`tinyface build --quick`, a smoke test): a seeded sample of this many.
QUICK_TRAIN_IMAGES = 1000
QUICK_VAL_IMAGES = 150


def quick_sample(split: Split, rng: random.Random) -> tuple[list[FaceImage], list[FaceImage]]:
    """The training and validation images a quick build uses: a sample of QUICK_TRAIN_IMAGES and
    QUICK_VAL_IMAGES of ``split``'s, drawn by ``rng`` (``random.Random(data.seed)``, before any
    other draw: the build's and :func:`built_on`'s are the same)."""
    train = rng.sample(split.train, min(len(split.train), QUICK_TRAIN_IMAGES))
    val = rng.sample(split.val, min(len(split.val), QUICK_VAL_IMAGES))
    return train, val


def people_fingerprint(dataset: Dataset) -> str:
    """A digest of a dataset's people (their names, sorted). :func:`train_val_test` splits by them
    and its settings alone, so a build that records it (model.json ``extra.split.people``) says
    which people of a folder with the same people it trained on (:func:`built_on`)."""
    names = "\n".join(dataset.identities).encode("utf-8", "surrogateescape")
    return hashlib.sha256(names).hexdigest()[:16]


def built_on(dataset: Dataset, record: dict) -> set[str] | None:
    """The people of ``dataset``, a folder of people, that a build trained on or chose its
    thresholds on (its training and validation people; a quick build's, ``record["quick"]``, those
    of its sample: :func:`quick_sample`), where ``record`` (model.json's ``extra.split``) says the
    build split a folder of the same people; else None (another folder, LFW, whose
    peopleDevTrain.txt says it, or a model.json from before builds recorded it)."""
    if record.get("people") != people_fingerprint(dataset) or not {"seed", "val_fraction"} <= set(record):
        return None
    try:
        split = train_val_test(dataset, record["val_fraction"], record["seed"], min_train=0)
    except DataError:  # LFW's images/ folder given as a folder of people
        return None
    if split.source != "folders":
        return None
    train, val = quick_sample(split, random.Random(record["seed"])) if record.get("quick") else (split.train, split.val)
    return {im.identity for im in (*train, *val)}


def lfw_pairs(root: Path, name: str) -> list[lfw.Pair]:
    """Read a pairs file of an LFW-style dataset root."""
    return lfw.read_pairs(Path(root) / name)
