"""L2 normalisation, defined once: the embedder, the teacher, the emulated board, the gallery
checks and the metrics all scale embeddings to unit length with this function.

It lives in the foundation because its lowest users (``model/`` and ``teacher/``) share a row
of the layering and may not import each other (docs/architecture.md).
"""

from __future__ import annotations

import numpy as np


def l2_normalize(embeddings, dtype=np.float32) -> np.ndarray:
    """Rows (the last axis) scaled to unit length; all-zero rows stay zero.

    Args:
        embeddings: an array of shape (..., D).
        dtype: the precision of the result and of the arithmetic: float32 (the default) as the
            firmware computes it; the metrics (tinyface.evaluation.metrics) ask for float64.
    """
    e = np.asarray(embeddings, dtype=dtype)
    norms = np.linalg.norm(e, axis=-1, keepdims=True)
    return e / np.where(norms > 0, norms, dtype(1.0))
