"""A gallery compiled into the firmware (``tinyface flash --enroll DIR``): one folder per
person, each image aligned like the training data, embedded by the int8 model in TFLM, and
summed as the device does it (sum of L2-normalised dequantized embeddings; see
docs/protocol.md, "Gallery"), so IDENTIFY behaves the same for people enrolled at build
time and people enrolled over serial."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyface.errors import DataError
from tinyface.protocol import spec


@dataclass(frozen=True)
class GalleryPerson:
    name: str
    samples: int
    sum: tuple[float, ...]  # float32 values, embedding_dim of them


def require_gallery_fits(directory, people: int) -> None:
    """Raises GalleryFullError: ``directory``'s ``people`` person folders do not fit the device's gallery."""
    from tinyface.errors import GalleryFullError

    if people > spec.GALLERY_CAPACITY:
        raise GalleryFullError(f"{directory} has {people} people; the board's gallery holds {spec.GALLERY_CAPACITY}",
                               hint=f"keep at most {spec.GALLERY_CAPACITY} person folders in {directory}: move "
                                    f"{people - spec.GALLERY_CAPACITY} out")


def enroll_folder(directory: str | Path, bundle, settings, progress=None) -> list[GalleryPerson]:
    """Embed every person folder in ``directory`` with ``bundle``'s model.

    Args:
        directory: one sub-folder per person (the folder name is the person's name).
        bundle: the model bundle the firmware runs.
        settings: tinyface settings (face detection upsampling, workers, cache folder).
        progress: called with the number of images done, as they finish.

    Raises:
        DataError: no people, a name longer than the protocol allows, or a person with no
            usable image.
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
    people = dataset.identities
    require_gallery_fits(directory, len(people))
    for name in people:
        try:
            spec.encode_name(name)
        except ValueError:
            raise DataError(f"person folder name {name!r} must be 1..{spec.MAX_NAME_BYTES - 1} bytes of UTF-8",
                            hint="rename the folder") from None
    face_spec = FaceSpec.for_model(bundle.meta, settings)
    images = dataset.images
    with FaceCache(settings.data.cache_path()) as cache:
        faces = prepare_faces([im.path for im in images], face_spec, cache, workers=settings.data.workers,
                              progress=progress)
    refuse_unusable(faces, directory)
    embedder = Embedder.for_bundle(bundle, "tflm")  # the firmware's kernels and its quantization
    result = []
    for name in people:
        idx = [i for i, im in enumerate(images) if im.identity == name and faces.ok[i]]
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
