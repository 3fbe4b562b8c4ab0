"""Folder-per-person datasets, LFW's included.

A dataset root is either an LFW-style folder (``images/<person>/*.jpg`` beside the
protocol files) or a plain folder with one sub-folder of photos per person. Listing a
dataset only looks at names; ``check_images`` opens every file and sorts out the bad ones.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tinyface.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
MIN_IMAGE_SIDE = 32  # pixels; smaller images cannot hold a face worth aligning
# Larger images are refused before decoding (a decompression bomb, or a 20000x20000 scan:
# 1.2 GB decoded); smaller ones that are still large are decoded at a reduced size.
MAX_IMAGE_PIXELS = 200_000_000
LARGE_IMAGE_PIXELS = 24_000_000  # above this an image is reduced by an integer factor when decoded


@dataclass(frozen=True)
class FaceImage:
    path: Path
    identity: str


@dataclass
class Skipped:
    path: Path
    reason: str


@dataclass
class Dataset:
    """The images of a dataset, grouped by identity, plus what was skipped and why."""

    root: Path
    images_dir: Path
    images: list[FaceImage]
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def identities(self) -> list[str]:
        return sorted({im.identity for im in self.images})

    def by_identity(self) -> dict[str, list[FaceImage]]:
        groups: dict[str, list[FaceImage]] = {}
        for im in self.images:
            groups.setdefault(im.identity, []).append(im)
        return groups

    def counts(self) -> Counter:
        return Counter(im.identity for im in self.images)

    def is_lfw(self) -> bool:
        return self.images_dir != self.root and (self.root / "pairs.txt").is_file()

    def subset(self, identities) -> "Dataset":
        keep = set(identities)
        return Dataset(self.root, self.images_dir, [im for im in self.images if im.identity in keep], [])


def resolve_images_dir(root: Path) -> Path:
    """LFW keeps its people under ``images/``; a user's folder has them at the top."""
    candidate = root / "images"
    # os.path.isdir: False where root cannot be searched (Path.is_dir raises PermissionError on 3.11),
    # so an unreadable root fails on listing, as a DataError naming it
    return candidate if os.path.isdir(candidate) else root


# As require_dataset's: where a dataset comes from, and what it must be.
_DATASET_HINT = ("pass --data DIR (or set TINYFACE_DATA / data.dir) to a folder with one sub-folder of photos "
                 "per person, or run `tinyface data fetch lfw`")


def photos_in(folder: str | os.PathLike) -> list[Path]:
    """The photos directly in ``folder``, by name, as a person folder's are taken (load_dataset,
    by :func:`_why_not_a_photo`); not its sub-folders.

    Raises:
        OSError: ``folder`` cannot be listed.
    """
    return [entry for entry in sorted(Path(folder).iterdir()) if _why_not_a_photo(entry) is None]


def _why_not_a_photo(entry: Path) -> str | None:
    """Why an entry of a person folder is not one of its photos, as a dataset's skipped list says it
    (None: it is one; "": a hidden entry, passed over without a word). A photo is not hidden, has an
    image extension (IMAGE_EXTENSIONS) and is a regular file."""
    if entry.name.startswith("."):
        return ""
    if entry.is_dir():  # one level only: say so rather than silently ignoring photos
        return "a folder inside a person folder (not searched)"
    if entry.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file (extension {entry.suffix or 'none'})"
    if not entry.is_file():
        # a FIFO or device would block or stream forever when opened; a dangling link has no data
        return "broken symbolic link" if entry.is_symlink() and not entry.exists() else "not a regular file"
    return None


def load_dataset(root: str | os.PathLike, min_identities: int = 2) -> Dataset:
    """List a folder-per-person dataset.

    Non-image files are skipped and named; so are unreadable folders.

    Raises:
        DataError: the folder does not exist, holds no images, or fewer than
            ``min_identities`` people.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"dataset folder not found: {root}", hint=_DATASET_HINT)
    if not root.is_dir():
        raise DataError(f"dataset path is not a folder: {root}", hint=_DATASET_HINT)
    images_dir = resolve_images_dir(root)
    images: list[FaceImage] = []
    skipped: list[Skipped] = []
    try:
        people = sorted(p for p in images_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except PermissionError:
        raise DataError(f"cannot read dataset folder (permission denied): {images_dir}") from None
    for person_dir in people:
        try:
            entries = sorted(person_dir.iterdir())
        except PermissionError:
            skipped.append(Skipped(person_dir, "folder not readable (permission denied)"))
            continue
        for entry in entries:
            why = _why_not_a_photo(entry)
            if why is None:
                images.append(FaceImage(entry, person_dir.name))
            elif why:
                skipped.append(Skipped(entry, why))
    loose = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        if loose:
            raise DataError(f"no person folders in {images_dir}: found {len(loose)} loose images",
                            hint="put each person's photos in a sub-folder named after the person")
        raise DataError(f"no images found in {images_dir}",
                        hint=f"expected one sub-folder per person holding {', '.join(IMAGE_EXTENSIONS)} files")
    skipped += [Skipped(p, "image outside a person folder (whose photo is it?)") for p in loose]
    dataset = Dataset(root, images_dir, images, skipped)
    n_people = len(dataset.identities)
    if n_people < min_identities:
        raise DataError(f"{images_dir} has {n_people} person folder(s); "
                        f"face recognition needs at least {min_identities}",
                        hint="add a folder of photos for each other person, named after the person")
    return dataset


class ImageError(DataError):
    """One image cannot be used; ``reason`` says why without the path (for skip lists)."""

    def __init__(self, reason: str, path: Path):
        super().__init__(f"{reason}: {path}")
        self.reason = reason
        self.path = path


def read_image(path: str | os.PathLike, mode: str = "RGB"):
    """Decode one image fully (truncation is an error) as a uint8 array (H, W, 3) or (H, W).

    Images over ``LARGE_IMAGE_PIXELS`` come back reduced by the smallest integer factor that
    brings them under it (JPEGs are decoded at that scale, so a 144-megapixel photo never
    exists in memory at full size); the same file always gives the same array.

    Raises:
        ImageError: unreadable, not a regular file, corrupt, truncated, too small, or over
            ``MAX_IMAGE_PIXELS`` (refused from its header, before decoding).
    """
    import math
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.exists() and not path.is_file():  # opening a FIFO would block forever
        raise ImageError("not a regular file", path)
    try:
        with warnings.catch_warnings():
            # the size check is ours (below), with a message that names the limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None
            img = Image.open(path)
        with img:
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageError(f"image too large ({w}x{h} px = {w * h / 1e6:.0f} megapixels; "
                                 f"the limit is {MAX_IMAGE_PIXELS / 1e6:.0f})", path)
            factor = math.ceil(math.sqrt(w * h / LARGE_IMAGE_PIXELS)) if w * h > LARGE_IMAGE_PIXELS else 1
            if factor > 1:
                img.draft("RGB" if mode == "RGB" else mode, (math.ceil(w / factor), math.ceil(h / factor)))
            img.load()
            if factor > 1 and img.size != (math.ceil(w / factor), math.ceil(h / factor)):
                # draft() only scales JPEGs, by powers of two: finish with a box reduction
                if img.mode not in ("L", "RGB", "RGBA"):
                    img = img.convert("RGB")
                img = img.reduce(max(1, round(img.size[0] / math.ceil(w / factor))))
            if min(img.size) < MIN_IMAGE_SIDE:
                raise ImageError(f"image too small ({img.size[0]}x{img.size[1]} px, need >= {MIN_IMAGE_SIDE})", path)
            return np.asarray(img.convert(mode))
    except PermissionError:
        raise ImageError("permission denied", path) from None
    except FileNotFoundError:
        raise ImageError("image not found", path) from None
    except UnidentifiedImageError:
        raise ImageError("not a readable image", path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image ({exc})", path) from None


def check_images(dataset: Dataset, progress=None) -> Dataset:
    """Open every image; move unreadable, corrupt, truncated and tiny ones to ``skipped``.

    Raises:
        DataError: fewer than 2 identities keep at least one good image.
    """
    good, skipped = [], list(dataset.skipped)
    for im in dataset.images:
        try:
            read_image(im.path)
            good.append(im)
        except ImageError as exc:
            skipped.append(Skipped(im.path, exc.reason))
        if progress:
            progress(1)
    checked = Dataset(dataset.root, dataset.images_dir, good, skipped)
    if len(checked.identities) < 2:
        raise DataError(f"{dataset.images_dir}: fewer than 2 people have a readable image "
                        f"({len(skipped)} file(s) skipped)")
    return checked


def require_dataset(root: Path, named: bool = False) -> None:
    """Fail with one line that says exactly what to do when the dataset is absent. ``named``: the
    folder is data.dir's (a settings file, --set or --data named it), not the default one, which
    `tinyface data fetch lfw` fills and TINYFACE_DATA moves (data.dir wins over both)."""
    root = Path(root)
    if not root.exists():
        hint = (f"check data.dir (tinyface.toml, --config, --set) or --data, or put LFW there: "
                f"`tinyface data fetch lfw --dest {root}`" if named else
                "run `tinyface data fetch lfw`, or set TINYFACE_DATA / pass --data DIR "
                "to a folder with one sub-folder of photos per person")
        raise DataError(f"no dataset at {root}", hint=hint)
