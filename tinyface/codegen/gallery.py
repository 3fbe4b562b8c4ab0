"""A gallery compiled into the firmware (``tinyface flash --enroll DIR``): one folder per
person, each image aligned like the training data, embedded by the int8 model in TFLM, and
summed as the device does it (sum of L2-normalised dequantized embeddings; see
docs/protocol.md, "Gallery"), so IDENTIFY behaves the same for people enrolled at build
time and people enrolled over serial."""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from tinyface.errors import DataError
from tinyface.protocol import spec


@dataclass(frozen=True)
class GalleryPerson:
    name: str
    samples: int
    sum: tuple[float, ...]  # float32 values, embedding_dim of them


GALLERY_HASH_TAG = b"tinyface compiled-in gallery 1"


def gallery_hash(people) -> int:
    """A 32-bit identity of the compiled-in gallery ``people`` (GalleryPersons), rendered into
    gallery_data.h as TF_GALLERY_BUILTIN_HASH: the saved gallery records the one it started from,
    so a board re-flashed with another ``--enroll`` folder loads its new people instead of the
    old saved ones (firmware/src/gallery.cc, Gallery::Load). Names, samples and every float32 of
    each sum count, in order; an empty gallery has its own fixed value."""
    digest = hashlib.sha256(GALLERY_HASH_TAG)
    for person in people:
        name = person.name.encode("utf-8")
        digest.update(struct.pack(f"<I{len(name)}sII", len(name), name, person.samples, len(person.sum)))
        digest.update(struct.pack(f"<{len(person.sum)}f", *person.sum))
    return int.from_bytes(digest.digest()[:4], "little")


def require_gallery_fits(directory, people: int) -> None:
    """Raises GalleryFullError: ``directory``'s ``people`` person folders do not fit the device's gallery."""
    from tinyface.errors import GalleryFullError

    if people > spec.GALLERY_CAPACITY:
        raise GalleryFullError(f"{directory} has {people} people; the board's gallery holds {spec.GALLERY_CAPACITY}",
                               hint=f"keep at most {spec.GALLERY_CAPACITY} person folders in {directory}: move "
                                    f"{people - spec.GALLERY_CAPACITY} out")


def gallery_names(directory: str | Path, dataset=None) -> dict[str, str]:
    """The person folders of ``directory`` (as tinyface.data.dataset lists them), each with the
    gallery name it stands for: the text its bytes spell in UTF-8, whatever the locale made of
    them (fsutil.os_text, as ``--name`` is read), so that a ``Zoë`` folder is the 4 bytes of
    ``Zoë`` under a C locale with UTF-8 mode off or a Latin-1 locale too; each checked by
    ``--name``'s rule (tinyface.protocol.spec.check_name).

    Raises:
        DataError: ``directory`` is not a folder of person folders holding images; a folder name
            that is no text, or no gallery name (spec.check_name: 1..MAX_NAME_BYTES - 1 bytes of
            UTF-8, no control character, no leading or trailing space); two folders that spell
            the same name.
        GalleryFullError: more people than the device's gallery holds.

    ``dataset``: ``directory`` as load_dataset read it, where the caller has it already.
    """
    from tinyface.data.dataset import load_dataset
    from tinyface.fsutil import os_text

    folders = (dataset or load_dataset(directory, min_identities=1)).identities
    require_gallery_fits(directory, len(folders))
    names: dict[str, str] = {}
    for folder in folders:
        try:
            name = os_text(folder)
        except ValueError as exc:
            raise DataError(f"a person folder's name in {directory}: {exc}",
                            hint="rename the folder in UTF-8") from None
        try:
            spec.check_name(name)  # --name's rule: a folder enrolls no name that `tinyface enroll` refuses
        except ValueError as exc:
            raise DataError(f"person folder name {exc}", hint="rename the folder") from None
        twin = next((other for other, known in names.items() if known == name), None)
        if twin is not None:  # a UTF-8 folder and a Latin-1 one that the locale reads alike
            raise DataError(f"person folders {os.fsencode(twin)!r} and {os.fsencode(folder)!r} in {directory} are both "
                            f"named {name!r}", hint="merge or rename them")
        names[folder] = name
    return names


def enroll_folder(directory: str | Path, bundle, settings, progress=None, on_total=None) -> list[GalleryPerson]:
    """Embed every person folder in ``directory`` with ``bundle``'s model.

    Args:
        directory: one sub-folder per person (the folder name is the person's name, as
            gallery_names reads it).
        bundle: the model bundle the firmware runs.
        settings: tinyface settings (face detection upsampling, workers, cache folder).
        progress: called with the number of images done, as they finish.
        on_total: called with the number of images to align, before the first ``progress``.

    Raises:
        DataError: no people, a folder name that is no text or no gallery name (gallery_names),
            or a person with no usable image.
        GalleryFullError: more people than the device's gallery holds.
        NoFaceError: images in which no face was found (or that cannot be read): every one
            is named; nothing is enrolled.
    """
    import numpy as np

    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import load_dataset
    from tinyface.data.faces import FaceSpec, prepare_faces
    from tinyface.model.embedder import Embedder

    dataset = load_dataset(directory, min_identities=1)
    names = gallery_names(directory, dataset)
    face_spec = FaceSpec.for_model(bundle.meta, settings)
    images = dataset.images
    if on_total:
        on_total(len(images))
    with FaceCache(settings.data.cache_path()) as cache:
        faces = prepare_faces([im.path for im in images], face_spec, cache, workers=settings.data.workers,
                              progress=progress)
    refuse_unusable(faces, directory)
    embedder = Embedder.for_bundle(bundle, "tflm")  # the firmware's kernels and its quantization
    result = []
    for folder, name in names.items():
        idx = [i for i, im in enumerate(images) if im.identity == folder and faces.ok[i]]
        if not idx:
            raise DataError(f"no usable image of {name!r} in {directory}")
        total = embedder.embed(faces.crops[idx]).sum(axis=0, dtype=np.float32)
        result.append(GalleryPerson(name, len(idx), tuple(float(v) for v in total)))
    return result


def refuse_unusable(faces, directory) -> None:
    """Raise NoFaceError naming every image of ``faces`` (a PreparedFaces) with no usable face.

    A centered-crop fallback is not a face: enrolling it would store an embedding of whatever
    the middle of the photo holds.
    """
    from tinyface.errors import NoFaceError

    bad = faces.unusable()
    if bad:
        root = Path(directory)
        named = "; ".join(f"{_relative(p, root)} ({why})" for p, why in bad)
        raise NoFaceError(f"{len(bad)} image(s) in {directory} have no usable face: {named}",
                          hint="remove or replace them; `tinyface data stats --data DIR --align` shows how each "
                               "face was found")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
