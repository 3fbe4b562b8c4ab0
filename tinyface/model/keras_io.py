"""The float student as a Keras ``.keras`` file: save, load, embed.

The build's distill and prune stages save their students here and ``tinyface evaluate`` loads
them back, so evaluation needs no part of the training pipeline. TensorFlow is imported inside
the functions, never at import time.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from tinyface.console import use_legacy_keras
from tinyface.errors import ModelError
from tinyface.fsutil import atomic_path
from tinyface.model.embedder import l2_normalize, normalize


def save_keras(model, path: Path) -> None:
    """Save a tf_keras model atomically (.keras)."""
    # Keras picks the format by the suffix; a save cut short (Ctrl-C, a full disk) leaves no partial
    # copy beside the artifact, and one killed outright leaves a name that the next build removes
    with atomic_path(path, keep_suffix=True) as tmp:
        model.save(tmp)


def load_keras(path: Path):
    """A tf_keras model from a .keras file, for inference (the students are plain Keras
    layers; compile=False skips the training loss and optimizer, so no custom objects).

    Raises:
        ModelError: not a Keras model (:func:`keras_input_shape`), or one Keras cannot load
            (truncated or corrupt inside its archive).
    """
    keras_input_shape(path)  # a file that is no .keras archive: said before TensorFlow loads
    use_legacy_keras()  # before tf_keras imports TensorFlow
    import tf_keras as keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # h5py's OSError, zipfile's, json's, a layer's ValueError: the file, not tinyface
        raise ModelError(f"cannot load {path} as a Keras model (truncated or corrupt): "
                         f"{type(exc).__name__}: {exc}", hint=_KERAS_HINT) from None


_KERAS_HINT = "rebuild it with `tinyface build`, or pass --model the run's bundle folder"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # a legacy Keras (H5) file, which tf_keras also loads


def keras_input_shape(path: Path) -> tuple | None:
    """The input shape (batch first, None for any batch) a .keras archive records in its
    ``config.json``, read without TensorFlow; None where it records none that can be read (a
    legacy H5 file, another layout), which leaves the check to Keras itself.

    Raises:
        ModelError: the file cannot be read, or is no Keras model at all (empty, truncated: not a
            zip archive, or one without a config.json).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(8)
        if head == _HDF5_SIGNATURE:
            return None
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except IsADirectoryError:
        raise ModelError(f"{path} is a folder, not a Keras model file", hint=_KERAS_HINT) from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}", hint=_KERAS_HINT) from None
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        if not head:
            raise ModelError(f"{path} is an empty file, not a Keras model", hint=_KERAS_HINT) from None
        raise ModelError(f"{path} is not a Keras model (truncated or corrupt: no .keras archive with a config.json; "
                         f"{type(exc).__name__}: {exc})", hint=_KERAS_HINT) from None
    recorded = (config.get("build_config") or {}).get("input_shape") if isinstance(config, dict) else None
    if isinstance(recorded, list) and recorded and all(v is None or isinstance(v, int) for v in recorded):
        return tuple(recorded)
    return None


def embed(model, crops_uint8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 crops (N, H, W, C) -> L2-normalised float32 embeddings (N, D) of a Keras model."""
    out = model.predict(normalize(crops_uint8), batch_size=batch_size, verbose=0)
    out = out[0] if isinstance(out, (list, tuple)) else out
    return l2_normalize(out)
