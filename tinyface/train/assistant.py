"""A teaching assistant: a trained, larger student whose embeddings join the teacher's as targets.

The `esp32` student sits far from dlib's ResNet: after full training its embeddings keep a
cosine of about 0.75 to the teacher's centered targets on validation faces. A larger student
trained the same way (the released `esp32s3`, 7 times the MACs: 0.83) has learned a function of
the same faces that a small network may follow more easily ("teacher assistant" distillation,
Mirzadeh et al., AAAI 2020). Measured on `esp32` (docs/model.md, run T1): the student learns
faster from it (5 epochs: 91.00% of validation pairs against 89.75%), but after the preset's 18
epochs it ends where the teacher alone leads (93.10% against 93.40%), so no preset uses it.

``distill.assistant`` names a model bundle (a folder with model.tflite and model.json, or the
name of a released model such as "esp32s3"). Its own crops are cut for every training row (its
input size, channels and crop padding come from its model.json, so its face cache entries are
its preset's), it embeds them in TFLite (int8, XNNPACK: under a millisecond per face), and
every target becomes ``l2n((1 - w) * teacher + w * assistant)`` with ``w`` =
``distill.assistant_weight``. The assistant's embeddings are cached beside the face cache, keyed
by the model's sha256 and the rows they belong to: a one-time pass, like the teacher's.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyface.errors import ConfigError
from tinyface.vectors import l2_normalize

BATCH = 512  # crops embedded per progress step


@dataclass
class AssistantTargets:
    """The assistant's embeddings of every training row and validation face, and what it is."""

    train: np.ndarray  # (N, D) L2-normalised, the rows of distill.training_set
    val: np.ndarray  # (V, D)
    name: str  # as distill.assistant names it (a released model or a folder)
    sha256: str  # its model.tflite
    input_shape: list[int]
    crop_padding: float
    cached: bool = False


def resolve(name: str) -> Path:
    """The bundle folder ``distill.assistant`` names: a path to a bundle folder, else a released
    model (models/<name>/).

    Raises:
        ConfigError: neither exists (one line naming both places).
    """
    from tinyface.model.bundle import META_FILE, MODEL_FILE
    from tinyface.resources import models_dir

    candidates = [Path(name).expanduser()]
    if "/" not in name and "\\" not in name:
        candidates.append(models_dir() / name)
    for folder in candidates:
        if (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file():
            return folder
    raise ConfigError(f"distill.assistant = {name!r}: no model bundle (model.tflite + model.json) at "
                      f"{' or '.join(str(c) for c in candidates)}",
                      hint="name a released model (a folder of models/, e.g. esp32s3) "
                           "or a `tinyface build` output folder")


def check(settings) -> Path | None:
    """Resolve and load ``distill.assistant`` before any work (None when there is none).

    Raises:
        ConfigError: no such bundle, one whose embedding size differs from the student's, or one
            whose build drew its validation people otherwise (model.json ``extra.split``: another
            ``data.seed`` or ``val_fraction``, so it may have trained on this build's validation
            people) or filtered LFW's errata less (a lower ``data.test_filter``: it may have
            trained on test photos this build leaves out). A model.json written before builds
            recorded their split is taken as it is.
        ModelError: a bundle that does not load.
    """
    name = settings.distill.assistant
    if not name:
        return None
    from tinyface.model.bundle import load_bundle

    folder = resolve(name)
    meta = load_bundle(folder).meta
    if meta.embedding_dim != settings.student.embedding_dim:
        raise ConfigError(f"distill.assistant {folder} embeds in {meta.embedding_dim} dimensions, the student in "
                          f"{settings.student.embedding_dim}", hint="an assistant of the student's embedding size")
    if problem := split_problem(meta.split, settings.data):
        raise ConfigError(f"distill.assistant {folder} {problem}",
                          hint="an assistant built with this build's data.seed, data.val_fraction and data.test_filter")
    return folder


def split_problem(split: dict, data) -> str | None:
    """Why an assistant whose build recorded ``split`` (ModelMeta.split) may have trained on faces
    this build (``data``: settings.data) keeps apart, or None."""
    for name in ("seed", "val_fraction"):
        if name in split and split[name] != getattr(data, name):
            return (f"was built with data.{name} = {split[name]}, this build has {getattr(data, name)}: "
                    "it may have trained on this build's validation people")
    theirs, ours = split.get("test_filter"), data.test_filter
    if theirs is not None and ours and (not theirs or theirs < ours):
        return (f"was built with data.test_filter = {theirs}, this build has {ours}: "
                "it may have trained on LFW test photos this build leaves out")
    return None


def blend(teacher: np.ndarray, assistant: np.ndarray, weight: float) -> np.ndarray:
    """Targets ``l2n((1 - weight) * teacher + weight * assistant)``, both rows L2-normalised first."""
    if weight <= 0:
        return teacher
    mixed = (1.0 - weight) * l2_normalize(np.asarray(teacher, np.float32)) + weight * l2_normalize(
        np.asarray(assistant, np.float32))
    return l2_normalize(mixed).astype(np.float32)


def assistant_settings(settings, meta):
    """``settings`` with the data section cutting the assistant's crops (its size, channels and
    padding), everything that picks the rows unchanged."""
    _, h, w, c = meta.input_shape
    if h != w:
        raise ConfigError(f"distill.assistant takes {h}x{w} crops: only square crops are cut")
    data = dataclasses.replace(settings.data, crop_size=int(h), channels=int(c), padding=float(meta.crop_padding))
    return dataclasses.replace(settings, data=data)


def embed_rows(folder: Path, settings, quick: bool, rows: int, data_fp: str, progress=None, step=None
               ) -> AssistantTargets:
    """The assistant's embeddings of the ``rows`` training rows and of the validation faces,
    from the cache or computed (loading the build's data again at the assistant's crop spec).

    Raises:
        ConfigError: the rows at the assistant's spec differ in number from the build's (a face
            found at one crop size and not at the other: should not happen, the landmarks are shared).
    """
    from tinyface.fsutil import write_bytes
    from tinyface.model.bundle import load_bundle
    from tinyface.train.pipeline import fingerprint

    bundle = load_bundle(folder)
    meta = bundle.meta
    key = fingerprint("assistant", bundle.model_hash, data_fp, rows, meta.input_shape, meta.crop_padding)
    cache_file = settings.data.cache_path() / "assistant" / f"{key}.npz"
    info = dict(name=settings.distill.assistant, sha256=bundle.model_hash, input_shape=list(meta.input_shape),
                crop_padding=float(meta.crop_padding))
    if cache_file.is_file():
        try:
            with np.load(cache_file) as z:
                train, val = z["train"], z["val"]
            if len(train) == rows:
                return AssistantTargets(train, val, cached=True, **info)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed and replaced
    from tinyface.train import distill
    from tinyface.train.build_data import load_build_data

    step = step or (lambda name, total: None)
    named = lambda name, total: step(f"assistant's crops: {name}", total)  # noqa: E731
    data = load_build_data(assistant_settings(settings, meta), quick=quick, progress=progress, step=named)
    x, _, _, _ = distill.training_set(data, np.zeros(data.train.teacher.shape[1], np.float32))
    if len(x) != rows:
        raise ConfigError(f"distill.assistant: its crops give {len(x)} training rows, the build has {rows}",
                          hint="an assistant whose crops are cut from the same faces (report this)")
    train = _embed(bundle, x, progress, step, "assistant's embeddings (training rows)")
    val = _embed(bundle, data.val.crops, progress, step, "assistant's embeddings (validation faces)")
    buf = io.BytesIO()
    np.savez(buf, train=train, val=val)
    write_bytes(cache_file, buf.getvalue())
    return AssistantTargets(train, val, **info)


def _embed(bundle, crops: np.ndarray, progress, step, name: str) -> np.ndarray:
    from tinyface.model.embedder import Embedder

    step(name, len(crops))
    embedder = Embedder.for_bundle(bundle, kernels="optimized")  # bulk labelling, not a parity check
    out = []
    for i in range(0, len(crops), BATCH):
        out.append(embedder.embed(crops[i:i + BATCH]))
        if progress:
            progress(len(out[-1]))
    return np.concatenate(out) if out else np.zeros((0, bundle.meta.embedding_dim), np.float32)
