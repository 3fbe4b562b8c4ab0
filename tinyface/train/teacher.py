"""The teacher: dlib's ResNet face embedder (128-D, 99.38% on LFW per dlib), from the
``face-recognition-models`` package. It runs on dlib's own 150x150 face chips."""

from __future__ import annotations

import threading

import numpy as np

TEACHER_VERSION = "dlib_resnet_v1"
EMBEDDING_DIM = 128

_lock = threading.Lock()
_model = None


def _load():
    global _model
    with _lock:
        if _model is None:
            import dlib
            import face_recognition_models as frm

            _model = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        return _model


def embed_chips(chips: list[np.ndarray]) -> np.ndarray:
    """Embed RGB uint8 150x150 chips: float32 (N, 128), L2-normalised."""
    if not chips:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    model = _load()
    out = np.array(model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips]), dtype=np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
