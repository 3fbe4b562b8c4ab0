"""The float student as a Keras ``.keras`` file: save, load, embed.

The build's distill and prune stages save their students here and ``tinyface evaluate`` loads
them back, so evaluation needs no part of the training pipeline. TensorFlow is imported inside
the functions, never at import time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyface.console import use_legacy_keras
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
    layers; compile=False skips the training loss and optimizer, so no custom objects)."""
    use_legacy_keras()  # before tf_keras imports TensorFlow
    import tf_keras as keras

    return keras.models.load_model(path, compile=False)


def embed(model, crops_uint8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 crops (N, H, W, C) -> L2-normalised float32 embeddings (N, D) of a Keras model."""
    out = model.predict(normalize(crops_uint8), batch_size=batch_size, verbose=0)
    out = out[0] if isinstance(out, (list, tuple)) else out
    return l2_normalize(out)
