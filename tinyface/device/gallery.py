"""The board's gallery from the host: enroll people from photos, list, delete, identify.

The host finds and aligns each face exactly as ``bench`` does (the face spec comes from the
model the board runs, recognised by the sha256 its INFO reports); the board embeds the
faces and keeps one centroid per person. Before anything is enrolled every photo passes a
quality check, using the board's own INFER embeddings:

- a face was found (a photo where alignment fell back to the centred crop is refused);
- it is not a duplicate: not the same file as another photo, not near-identical
  (cosine >= :data:`DUPLICATE_SIMILARITY`) to another photo of this enrollment, and not
  the photo already enrolled for the person (when the person has one sample on the board);
- it is consistent: similar to the person's other photos of this enrollment (cosine to their
  centroid >= the model's verification threshold) and to the person's centroid on the board
  when the board names the person as the best match, and not identified by the board as a
  different enrolled person unless it looks more like the person's other photos of this
  enrollment than like that one (a lookalike is enrolled; a lone photo is refused).

An enrollment is all or nothing unless ``skip_bad`` is set: a refused photo stops it before
the board's gallery changes, and the error names every refused photo with its reason.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from tinyface.errors import DataError, DeviceError, GalleryError, GalleryFullError, Interrupted, ModelError, NoFaceError
from tinyface.model.bundle import Bundle, load_bundle, read_meta
from tinyface.model.embedder import quantize_input
from tinyface.protocol import spec
from tinyface.protocol.client import Client, DeviceInfo, GalleryEntry, RemoteError

# Two photos whose board embeddings are at least this similar are the same picture (a copy,
# a resized or re-encoded version, a burst shot): a second copy adds nothing to a centroid.
DUPLICATE_SIMILARITY = 0.98


# --- the board and its model --------------------------------------------------------------

@contextlib.contextmanager
def open_board(port: str, board: str, baud: int | None = None, timeout_s: float = spec.DEFAULT_TIMEOUT_S,
               retries: int = spec.DEFAULT_RETRIES) -> Iterator[Client]:
    """A protocol client on ``port`` (``auto``: the one board found by its USB id), as bench opens it.

    Raises:
        ConfigError: unknown board.
        DeviceError: the port cannot be opened, or ``auto`` found none or several boards.
    """
    from tinyface.boards import load_board
    from tinyface.device.ports import resolve_port
    from tinyface.protocol.client import open_serial

    b = load_board(board)
    port = resolve_port(port, b, check=False)  # the port rule of flash and bench; open_serial checks a path
    baud = baud or b.baud
    # boards whose adapter holds the chip in reset with RTS/DTR asserted (ESP32-CAM) say so
    # in their board file, where this tinyface knows that setting
    extra = {"release_rts_dtr": True} if getattr(b, "release_rts_dtr", False) else {}
    transport = open_serial(port, baud, **extra)
    try:
        yield Client(transport, timeout_s=timeout_s, retries=retries, baud=baud, port=port)
    finally:
        transport.close()


def board_bundle(client: Client, model_path: str | Path | Bundle | None = None) -> tuple[DeviceInfo, Bundle]:
    """INFO, and the local bundle of the model the board runs.

    With ``model_path`` (a path, or a bundle already loaded) that bundle must be the board's
    (bench's handshake); without it the released models are searched for the sha256 the board
    reports.

    Raises:
        ProtocolError: ``model_path`` is not the board's model, or the board answers wrongly.
        ModelError: no released model matches the board's.
        DeviceError: no answer.
    """
    from tinyface.device.bench import handshake

    if model_path is not None:
        bundle = model_path if isinstance(model_path, Bundle) else load_bundle(model_path)
        return handshake(client, bundle), bundle
    info = client.info()
    bundle = find_bundle(info.model_sha256)
    if bundle is None:
        raise ModelError(f"{client.port} runs a model (sha256 {info.model_sha256[:16]}…) that is not one of the "
                         "released models", hint="pass --model with the bundle the board was flashed with")
    return handshake(client, bundle), bundle


def find_bundle(sha256: str, roots: Sequence[Path] | None = None) -> Bundle | None:
    """The released bundle (``models/<name>/``) whose model.tflite has ``sha256``, or None."""
    from tinyface.resources import models_dir

    for root in roots if roots is not None else [models_dir()]:
        for meta in sorted(Path(root).glob("*/model.json")):
            try:
                recorded = read_meta(meta)[1]
            except ModelError:
                continue
            if recorded == sha256:
                try:
                    bundle = load_bundle(meta.parent)
                except ModelError:
                    continue
                if bundle.model_hash == sha256:
                    return bundle
    return None


# --- photos -------------------------------------------------------------------------------

class Refusal(enum.Enum):
    """Why a photo was refused: the code the refusal's hint is chosen by (:data:`REFUSAL_HINTS`).
    Each value is the words its reason starts with, typed only here (:meth:`Photo.refuse` writes
    them before what was measured), so rewording a reason cannot change its hint."""

    UNREADABLE = ""  # the face pipeline's own words: cannot read the image, too large, ...
    NO_FACE = "no face found"
    SAME_FILE = "the same file as"
    DUPLICATE = "a duplicate of"
    ALREADY_ENROLLED = "already enrolled for"
    UNLIKE_ENROLLED = "does not look like the enrolled photos of"
    UNLIKE_OTHERS = "does not look like the other photos of"
    OTHER_PERSON = "the board identifies it as"


# Refused for want of a face (Photo.no_face: NoFaceError rather than DataError).
NO_FACE_REFUSALS = frozenset({Refusal.UNREADABLE, Refusal.NO_FACE})
# What to do about refused photos, by their codes, in the order the hints are given.
REFUSAL_HINTS: tuple[tuple[frozenset[Refusal], str], ...] = (
    (NO_FACE_REFUSALS, "use photos where one face is clearly visible"),
    (frozenset({Refusal.SAME_FILE, Refusal.DUPLICATE, Refusal.ALREADY_ENROLLED}),
     "use other photos of {name}, not copies of photos given or enrolled already"),
    (frozenset({Refusal.UNLIKE_ENROLLED, Refusal.UNLIKE_OTHERS, Refusal.OTHER_PERSON}),
     "check that every photo is of {name}"),
)


@dataclass
class Photo:
    """One photo given on the command line and what became of it."""

    path: str
    status: str = "pending"  # enrolled | refused | identified
    reason: str = ""  # why it was refused
    face: str = ""  # how its face was found ("detected", or the face pipeline's method); "fallback": none
    refusal: Refusal | None = None  # the reason's code (not in to_dict: --json gives the reason)

    @property
    def no_face(self) -> bool:
        """Refused for want of a face: unreadable, or none found (a refused photo whose face was
        found was refused by a later check: a duplicate, or inconsistent)."""
        return self.status == "refused" and self.refusal in NO_FACE_REFUSALS

    def refuse(self, code: Refusal, detail: str) -> None:
        """Mark refused for ``code``; the reason is the code's words, then ``detail``."""
        self.status, self.refusal = "refused", code
        self.reason = f"{code.value} {detail}" if code.value else detail

    def to_dict(self) -> dict:
        """--json's entry: every key, ``None`` where it has no value (no reason, no face read)."""
        return {k: v or None if k in ("reason", "face") else v for k, v in asdict(self).items() if k != "refusal"}


@dataclass
class AlignedPhotos:
    photos: list[Photo]
    x_int8: np.ndarray  # (N, H, W, C); zeros for refused photos
    hashes: list[str | None]

    def usable(self) -> list[int]:
        return [i for i, p in enumerate(self.photos) if p.status == "pending"]


def align_photos(paths: Sequence[str | Path], bundle: Bundle, settings,
                 progress: Callable[[int], None] | None = None) -> AlignedPhotos:
    """Find, align and quantize the face in each photo for ``bundle`` (cut as its model.json
    and ``settings.data`` say; the crop cache and workers of ``settings.data``); photos without
    a usable face (unreadable, or the detector found none) are marked refused with the reason."""
    from tinyface.data.cache import FaceCache, content_hash
    from tinyface.data.faces import FaceSpec, prepare_faces

    fs = FaceSpec.for_model(bundle.meta, settings)
    with FaceCache(settings.data.cache_path()) as cache:
        prepared = prepare_faces(list(paths), fs, cache, workers=settings.data.workers, progress=progress)
    photos = [Photo(str(p)) for p in paths]
    reasons = {str(s.path): s.reason for s in prepared.skipped}
    # how each face was found, where the face pipeline records it (else detector or not)
    methods = list(getattr(prepared, "methods", None) or [])
    hashes: list[str | None] = []
    for i, photo in enumerate(photos):
        try:
            hashes.append(content_hash(Path(photo.path).read_bytes()) if prepared.ok[i] else None)
        except OSError:
            hashes.append(None)
        if not prepared.ok[i]:
            photo.refuse(Refusal.UNREADABLE, reasons.get(photo.path, "cannot read the image"))
        elif not prepared.detected[i]:
            photo.face = "fallback"
            photo.refuse(Refusal.NO_FACE, "(alignment would fall back to a centred crop)")
        else:
            photo.face = (methods[i] if i < len(methods) else "") or "detected"
    return AlignedPhotos(photos, quantize_input(prepared.crops, bundle.meta), hashes)


def embeddings(client: Client, info: DeviceInfo, x_int8: np.ndarray, progress=None) -> np.ndarray:
    """The board's embeddings (INFER, dequantized and L2-normalised) of ``x_int8``; ``progress(1)``
    after each."""
    from tinyface.model.embedder import dequantize_output
    from tinyface.vectors import l2_normalize

    if len(x_int8) == 0:
        return np.zeros((0, info.output_size), np.float32)
    outputs = []
    for r in client.infer_many(x_int8):
        outputs.append(r.output)
        if progress:
            progress(1)
    out = np.stack(outputs)
    return l2_normalize(dequantize_output(out, info))


# --- enroll -------------------------------------------------------------------------------

@dataclass
class EnrollResult:
    name: str
    port: str
    photos: list[Photo]
    enrolled: int = 0
    samples: int = 0  # the person's samples on the board now
    slot: int = -1
    count: int = 0  # people enrolled on the board now (gallery list's count)
    capacity: int = spec.GALLERY_CAPACITY

    def to_dict(self) -> dict:
        d = asdict(self)
        d["photos"] = [p.to_dict() for p in self.photos]
        return d


def enroll(client: Client, info: DeviceInfo, bundle: Bundle, name: str, photos: AlignedPhotos,
           skip_bad: bool = False, steps=None) -> EnrollResult:
    """Check ``photos`` (see the module docstring) and ENROLL the good ones as ``name``.

    Args:
        skip_bad: enroll the photos that pass and report the others, instead of refusing all.
        steps: ``steps(description, total)``, a context manager around each exchange with the
            board yielding ``advance(n)`` (tinyface.console.step; default: none shown): a photo
            takes the board a few tenths of a second each time (its INFER, the gallery check, its
            ENROLL), seconds to minutes for a person.

    Returns:
        What was enrolled, and each photo's status.

    Raises:
        ValueError: a name the protocol does not allow (see :func:`tinyface.protocol.spec.check_name`).
        NoFaceError: a photo has no usable face (unreadable, or none found) and was refused
            (without ``skip_bad``), or none is left to enroll; the message names every refused
            photo, whatever its reason; the board's gallery is unchanged.
        DataError: the same, where every refused photo has a face (a duplicate, or inconsistent).
        GalleryFullError: ``name`` is new and the gallery is full.
        DeviceError: the link failed.
    """
    spec.check_name(name, info.max_name_bytes)
    gallery = {e.name: e for e in client.list()}
    capacity = info.gallery_capacity
    if name not in gallery and len(gallery) >= capacity:
        raise GalleryFullError(f"the gallery on {client.port} is full ({len(gallery)} of {capacity} people); "
                               f"{name!r} is not one of them", hint="`tinyface gallery delete` someone first")
    from tinyface.console import no_step

    step = steps or no_step
    _check_duplicates_and_consistency(client, info, bundle, name, photos, gallery, step)
    result = EnrollResult(name, client.port, photos.photos, capacity=capacity)
    refused = [p for p in photos.photos if p.status == "refused"]
    good = photos.usable()
    # as `flash --enroll` refuses an image without a face (NoFaceError), whatever else is refused
    refusal = NoFaceError if any(p.no_face for p in refused) else DataError
    if refused and not skip_bad:
        raise refusal(f"refused {len(refused)} of {len(photos.photos)} photos of {name}: {_reasons(refused)}; "
                      "nothing was enrolled",
                      hint=f"remove them, or pass --skip-bad to enroll the other {len(good)}" if good
                      else _refusal_hint(refused, name))
    if not good:
        raise refusal(f"no photo of {name} is usable: {_reasons(refused)}; nothing was enrolled",
                      hint=_refusal_hint(refused, name))
    sent = 0
    try:
        with step(f"enrolling {name}", len(good)) as advance:
            for i in good:
                try:
                    sent += 1  # counted before the request: a Ctrl-C while its reply is awaited may find it enrolled
                    reply = client.enroll(name, photos.x_int8[i])
                except RemoteError as exc:
                    if exc.code == spec.ErrorCode.GALLERY_FULL:
                        raise GalleryFullError(f"the gallery on {client.port} is full ({exc.detail} people)",
                                               hint="`tinyface gallery delete` someone first") from None
                    raise
                photos.photos[i].status = "enrolled"
                result.enrolled += 1
                result.samples, result.slot, result.count = reply["samples"], reply["index"], reply["count"]
                advance(1)
    except (KeyboardInterrupt, DeviceError) as exc:
        _cut_short(client, name, gallery.get(name), sent, len(good), exc)
    return result


def _cut_short(client: Client, name: str, before: GalleryEntry | None, sent: int, total: int,
               exc: BaseException) -> None:
    """An enrollment stopped at the ``sent``-th of ``total`` photos (Ctrl-C, or the link failed;
    that photo's reply never came, so whether the board took it is unknown): all or nothing, as
    far as the protocol allows. A person who was new is deleted again (Ctrl-C ignored meanwhile);
    the samples of one enrolled ``before`` cannot be told apart, so they stay and the message says
    how many the board now holds. Always raises: Interrupted (exit 130) or the link's DeviceError."""
    from tinyface.console import interruption, interrupts_ignored

    what = f"after sending {sent} of {total} photos of {name}"
    hint = None
    with interrupts_ignored():
        try:
            if before is None:
                client.delete(name)  # removes nothing when the first photo never got there
                what += f"; {name} was deleted again: nothing was enrolled"
            else:
                added = {e.name: e.samples for e in client.list()}.get(name, before.samples) - before.samples
                what += (f"; {name} was enrolled before: {added} new sample{'s' * (added != 1)} "
                         f"stay{'s' * (added == 1)} with the {before.samples} earlier")
                hint = f"to start over: `tinyface gallery delete --name {name}`, then enroll every photo again"
        except DeviceError:
            what += f"; the board did not answer afterwards, so what it holds of {name} is unknown"
            hint = f"check with `tinyface gallery list`; `tinyface gallery delete --name {name}` to start over"
    if isinstance(exc, KeyboardInterrupt):
        raise Interrupted(f"{interruption()} {what}", hint=hint) from None
    exc.args = (f"{exc} ({what})",)  # the link's own error, class and exit code kept, told what it left
    exc.hint = hint or exc.hint
    raise exc


def _reasons(photos: list[Photo]) -> str:
    return "; ".join(f"{Path(p.path).name}: {p.reason}" for p in photos)


def _refusal_hint(refused: list[Photo], name: str) -> str:
    """What to do when no photo is left to enroll, for the codes the photos were refused with."""
    codes = {p.refusal for p in refused}
    hints = [hint.format(name=name) for group, hint in REFUSAL_HINTS if codes & group]
    return "; ".join(hints) or "use other photos"


def centroid_similarity(x: np.ndarray, group: Sequence[np.ndarray]) -> float:
    """Cosine of the L2-normalised embedding ``x`` to the centroid of ``group`` (what the board keeps
    per person: the normalised sum of the person's embeddings)."""
    from tinyface.evaluation.metrics import l2n

    return float(x @ l2n(np.sum(group, axis=0)[None])[0])


def _check_duplicates_and_consistency(client, info, bundle, name, photos: AlignedPhotos, gallery: dict,
                                      steps=None) -> None:
    """Mark the photos that are duplicates or inconsistent as refused (in place). ``steps``: as
    :func:`enroll`'s, around the board's INFERs and the gallery's IDENTIFYs."""
    from tinyface.console import no_step

    step = steps or no_step
    seen: dict[str, int] = {}
    for i in photos.usable():
        h = photos.hashes[i]
        if h in seen:
            photos.photos[i].refuse(Refusal.SAME_FILE, Path(photos.photos[seen[h]].path).name)
        else:
            seen[h] = i
    good = photos.usable()
    if not good:
        return
    with step("embedding the photos on the board", len(good)) as advance:
        emb = dict(zip(good, embeddings(client, info, photos.x_int8[good], advance), strict=True))
    kept: list[int] = []
    for i in good:
        twin = next((j for j in kept if float(emb[i] @ emb[j]) >= DUPLICATE_SIMILARITY), None)
        if twin is not None:
            photos.photos[i].refuse(Refusal.DUPLICATE, f"{Path(photos.photos[twin].path).name} "
                                                       f"(similarity {float(emb[i] @ emb[twin]):.3f})")
        else:
            kept.append(i)
    # Against the gallery as it is now: the person's own single enrolled photo, or someone else.
    # Someone else enrolled refuses a photo only if it looks at least as much like them as like
    # this enrollment's other photos: a lookalike (a sibling, or two people the model confuses:
    # about identify_stranger_rate of strangers pass the threshold) who is closer to their own
    # photos is identified as themselves once enrolled. A lone photo cannot be told apart.
    if gallery:
        snapshot = list(kept)
        with step("checking them against the board's gallery", len(snapshot)) as advance:
            for i in snapshot:
                others = [j for j in snapshot if j != i]
                own = centroid_similarity(emb[i], [emb[j] for j in others]) if others else None
                r = client.identify(photos.x_int8[i])
                advance(1)
                if r.name == name and gallery[name].samples == 1 and r.similarity >= DUPLICATE_SIMILARITY:
                    photos.photos[i].refuse(Refusal.ALREADY_ENROLLED, f"{name} (similarity {r.similarity:.3f})")
                    kept.remove(i)
                elif r.name == name and r.similarity < bundle.meta.threshold:
                    photos.photos[i].refuse(Refusal.UNLIKE_ENROLLED,
                                            f"{name} (similarity {r.similarity:.3f} < {bundle.meta.threshold:.3f})")
                    kept.remove(i)
                elif r.name and r.name != name and r.accepted and (own is None or r.similarity >= own):
                    photos.photos[i].refuse(Refusal.OTHER_PERSON,
                                            f"{r.name} (similarity {r.similarity:.3f} >= {info.identify_threshold:.3f})"
                                            + (f", no less like {r.name} than like the other photos of {name} "
                                               f"({own:.3f})" if own is not None else ""))
                    kept.remove(i)
    # Among this enrollment's photos: each must match the centroid of the others. The worst
    # is dropped first and the others are checked again; two that disagree are both dropped
    # (which of them is the wrong person cannot be told).
    threshold = bundle.meta.threshold
    while len(kept) >= 2:
        sims = {}
        for i in kept:
            sims[i] = centroid_similarity(emb[i], [emb[j] for j in kept if j != i])
        worst = min(sims, key=sims.get)
        if sims[worst] >= threshold:
            break
        drop = kept if len(kept) == 2 else [worst]
        for i in drop:
            photos.photos[i].refuse(Refusal.UNLIKE_OTHERS, f"{name} (similarity {sims[i]:.3f} < {threshold:.3f})")
        kept = [i for i in kept if i not in drop]


# --- list, delete, identify -----------------------------------------------------------------

def list_gallery(client: Client) -> dict:
    """``{"people": [{"name", "slot", "samples"}], "count", "capacity"}`` from LIST and INFO."""
    info = client.info()
    entries = client.list()
    return {"port": client.port, "people": [{"name": e.name, "slot": e.index, "samples": e.samples} for e in entries],
            "count": len(entries), "capacity": info.gallery_capacity}


def delete(client: Client, name: str | None) -> dict:
    """DELETE ``name`` (None: everyone). Returns ``{"removed", "count"}``.

    Raises:
        ValueError: a name the protocol does not allow.
        GalleryError: ``name`` is not enrolled (the message lists who is).
    """
    if name is not None:
        spec.check_name(name)
    reply = client.delete(name)
    if name is not None and reply["removed"] == 0:
        people = [e.name for e in client.list()]
        raise GalleryError(f"{name!r} is not enrolled on {client.port}",
                           hint=f"enrolled: {', '.join(people)}" if people else "the gallery is empty")
    return {"port": client.port, "name": name, **reply}


@dataclass
class Identification:
    path: str
    name: str | None  # the accepted match, or None (unknown; --json's null)
    best: str  # the best match whatever its similarity
    similarity: float
    accepted: bool
    identify_threshold: float
    face: str = "detected"  # how the face was found: Photo.face


def check_someone_enrolled(client: Client, info: DeviceInfo) -> None:
    """Refuse to identify on a board whose gallery is empty (INFO's ``gallery_count``): before any
    photo is aligned, which takes seconds a photo (25 s for a 100-megapixel one) to no purpose.

    Raises:
        GalleryError: nobody is enrolled.
    """
    if info.gallery_count == 0:
        raise GalleryError(f"nobody is enrolled on {client.port}", hint="enroll people first with `tinyface enroll`")


def identify(client: Client, info: DeviceInfo, photos: AlignedPhotos, skip_bad: bool = False,
             steps=None) -> list[Identification]:
    """IDENTIFY each photo's face on the board. ``steps``: as :func:`enroll`'s, around the IDENTIFYs.

    Raises:
        GalleryError: nobody is enrolled.
        NoFaceError: a photo has no usable face (without ``skip_bad``; nothing is identified), or
            none has one; exit 15, as enrolling such a photo is refused.
    """
    check_someone_enrolled(client, info)
    refused = [p for p in photos.photos if p.status == "refused"]
    if refused and not skip_bad:
        raise NoFaceError(f"refused {len(refused)} of {len(photos.photos)} photos: {_reasons(refused)}",
                          hint="remove them, or pass --skip-bad to identify the others")
    if not photos.usable():
        raise NoFaceError(f"no photo has a usable face: {_reasons(refused)}",
                          hint="use photos where one face is clearly visible")
    from tinyface.console import no_step

    results = []
    with (steps or no_step)("identifying on the board", len(photos.usable())) as advance:
        for i in photos.usable():
            r = client.identify(photos.x_int8[i])
            photos.photos[i].status = "identified"
            results.append(Identification(photos.photos[i].path, r.name if r.accepted else None, r.name,
                                          float(r.similarity), r.accepted, float(info.identify_threshold),
                                          face=photos.photos[i].face))  # how it was found, as enroll says
            advance(1)
    return results
