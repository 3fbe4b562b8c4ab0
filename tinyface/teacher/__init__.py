"""The teacher: dlib's ResNet face embedder (128-D, 99.38% on LFW per dlib), from the
``face-recognition-models`` package. It runs on dlib's own 150x150 face chips.

The network is read from dlib's model file and run in TensorFlow (see tinyface/teacher/dlib_net.py: the
same embeddings as dlib to float round-off, about 20x faster on this project's machines);
``backend="dlib"`` runs dlib itself, the reference the tests compare against.
"""

from __future__ import annotations

import threading

import numpy as np

from tinyface.vectors import l2_normalize

TEACHER_VERSION = "dlib_resnet_v1"
EMBEDDING_DIM = 128
# Chips go through the network in batches of this size (the last one zero-padded), so a
# chip's embedding does not depend on how many others were embedded with it.
BATCH = 64

_lock = threading.Lock()
_models: dict[str, object] = {}


def _load(backend: str):
    with _lock:
        if backend not in _models:
            import face_recognition_models as frm

            path = frm.face_recognition_model_location()
            if backend == "dlib":
                import dlib

                _models[backend] = dlib.face_recognition_model_v1(path)
            else:
                import tensorflow as tf

                from tinyface.teacher.dlib_net import build_model, read_weights

                model = build_model(read_weights(path))
                _models[backend] = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return _models[backend]


def embed_chips(chips: list[np.ndarray], backend: str = "tf", normalised: bool = True) -> np.ndarray:
    """Embed RGB uint8 150x150 chips: float32 (N, 128), L2-normalised (unless ``normalised=False``).

    Args:
        chips: aligned face chips (dlib's ``get_face_chip``, 150x150, padding 0.25).
        backend: "tf" (dlib's network in TensorFlow) or "dlib" (dlib itself, slow).
        normalised: False: the network's raw descriptors (dlib's own scale, about 1.42 long).
    """
    if not chips:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    model = _load(backend)
    if backend == "dlib":
        out = np.array(model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips]), dtype=np.float32)
    else:
        batch = np.zeros((BATCH, *chips[0].shape), np.float32)
        parts = []
        for start in range(0, len(chips), BATCH):
            part = chips[start:start + BATCH]
            batch[:len(part)] = np.stack(part)
            batch[len(part):] = 0
            parts.append(model(batch).numpy()[:len(part)])
        out = np.concatenate(parts).astype(np.float32)
    return l2_normalize(out) if normalised else out
