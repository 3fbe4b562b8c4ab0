"""A model bundle: the int8 ``model.tflite`` plus ``model.json`` describing it.

Every consumer (emulator, bench, codegen, flash, evaluate) reads a model through
``load_bundle``, so the input quantization, embedding size and shipped threshold have one
definition. ``tinyface build`` writes one into ``build/<run>/``; released ones live in
``models/<preset>/``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tinyface.errors import ModelError
from tinyface.fsutil import write_bytes, write_json

MODEL_FILE = "model.tflite"
META_FILE = "model.json"


@dataclass
class ModelMeta:
    input_shape: list[int]  # [1, H, W, C]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    embedding_dim: int
    threshold: float  # cosine similarity at or above which two faces are the same person
    arena_bytes: int = 0  # TFLM-recorded arena use (0: not measured yet)
    macs: int = 0
    name: str = "tinyface"
    preset: str = ""
    crop_padding: float = 0.25
    # IDENTIFY's threshold (best enrolled match vs everyone): stricter than ``threshold``, chosen
    # for a target stranger-accept rate on validation people; 0 = not chosen, use ``threshold``
    identify_threshold: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def identify_at(self) -> float:
        """The similarity at or above which IDENTIFY accepts its best match."""
        return self.identify_threshold or self.threshold


@dataclass
class Bundle:
    model_path: Path
    meta: ModelMeta

    @property
    def model_bytes(self) -> bytes:
        return self.model_path.read_bytes()

    @property
    def model_hash(self) -> str:
        """sha256 of the .tflite bytes (INFO carries all 32 bytes; bench compares them with the local model's)."""
        return hashlib.sha256(self.model_bytes).hexdigest()


def model_hash(model_bytes: bytes) -> str:
    return hashlib.sha256(model_bytes).hexdigest()


def save_bundle(directory: str | Path, model_bytes: bytes, meta: ModelMeta) -> Bundle:
    """Write ``model.tflite`` and ``model.json`` atomically (the JSON last, so a bundle with
    a JSON is always complete)."""
    directory = Path(directory)
    write_bytes(directory / MODEL_FILE, model_bytes)
    write_json(directory / META_FILE, {**asdict(meta), "sha256": model_hash(model_bytes)})
    return Bundle(directory / MODEL_FILE, meta)


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle from its folder, its ``model.tflite`` or its ``model.json``.

    Raises:
        ModelError: missing files, a bad JSON, or a .tflite whose hash differs from the JSON's.
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    model_path, meta_path = directory / MODEL_FILE, directory / META_FILE
    if path.is_file() and path.suffix == ".tflite":
        model_path = path
    if not model_path.is_file():
        raise ModelError(f"no model at {path}", hint="run `tinyface build` or pass --model DIR")
    if not meta_path.is_file():
        raise ModelError(f"{model_path} has no {META_FILE} beside it", hint="models come from `tinyface build`")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
        expected = raw.pop("sha256", None)
        meta = ModelMeta(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"bad {meta_path}: {exc}") from None
    bundle = Bundle(model_path, meta)
    if expected and bundle.model_hash != expected:
        raise ModelError(f"{model_path} does not match {meta_path} (sha256 differs)",
                         hint="the model was changed after it was built; rebuild it")
    return bundle


def normalize(crops_uint8):
    """The student's float input: pixels mapped to [-1, 1) as (p - 128) / 128 (one definition)."""
    import numpy as np

    return (np.asarray(crops_uint8, dtype=np.float32) - 128.0) / 128.0


def quantize_pixels(crops_uint8, scale: float, zero_point: int):
    """uint8 aligned crops (N, H, W, C) -> int8 input of a model with this input quantization."""
    import numpy as np

    q = np.round(normalize(crops_uint8) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def quantize_input(crops_uint8, meta: ModelMeta):
    """uint8 aligned crops (N, H, W, C) -> the int8 input tensor the model and firmware take."""
    return quantize_pixels(crops_uint8, meta.input_scale, meta.input_zero_point)


def dequantize_output(out_int8, meta: ModelMeta):
    import numpy as np

    return (np.asarray(out_int8, dtype=np.float32) - meta.output_zero_point) * meta.output_scale
