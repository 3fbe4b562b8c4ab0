"""Hard photos made from good ones: the one definition of darkening, side light and tight crops.

``benchmarks/hard_faces.py`` makes its hard sets with fixed settings (``darken`` with its
defaults: very dark, about 25 grey levels left; ``side_light`` with the light falling to 3%
across the photo; ``tight_crop`` at 0.7, 0.85 and 1.0 of the detector's face box).
``hard_view`` draws the settings at random around those, for the training views of
``distill.relit_views`` and ``distill.tight_views`` (tinyface.data.faces.prepare_hard_views): the
photo is made hard, then cut as the pipeline cuts any photo, so an underexposed face is
brightened (tinyface.data.align.brighten) and a crop past the photo's edge is filled from the
edge exactly as a user's would be.
"""

from __future__ import annotations

import numpy as np

DARK_GAIN, DARK_GAMMA, DARK_NOISE = 0.1, 2.2, 2.0  # brightest pixel ~25/255, with sensor noise
SIDE_FLOOR, SIDE_GAMMA, SIDE_NOISE = 0.03, 1.5, 1.5  # light falls to 3% across the face
TIGHT_BOX = 0.7  # the crop's side / the detector's box side: the face fills the frame (forehead, chin cut)
# hard_view's draws (uniform): very dark to dim; light falling to 3-30% across the photo; a crop of
# 0.6-0.95 of the face box, its center moved by up to 8% of the box
RELIT_DARK = {"gain": (0.06, 0.35), "gamma": (1.4, 2.4), "noise": (0.5, 2.5)}
RELIT_SIDE = {"floor": (0.03, 0.3), "gamma": (1.0, 1.6), "noise": (0.5, 2.0)}
TIGHT_FACTOR, TIGHT_SHIFT = (0.6, 0.95), 0.08
# in the cache digest of each kind's crops: change one when its draws change
VIEW_VERSIONS = {"dark": "relit-v1", "side": "relit-v1", "tight": "tight-v1"}
RELIT_KINDS = ("dark", "side")  # relit view v is RELIT_KINDS[v % 2]


def darken(rgb: np.ndarray, seed: int, gain: float = DARK_GAIN, gamma: float = DARK_GAMMA,
           noise: float = DARK_NOISE) -> np.ndarray:
    """An underexposed photo: gain and gamma crush the light, then sensor noise (the default:
    very dark, ~25 grey levels left)."""
    rng = np.random.default_rng(seed)
    x = 255 * gain * (rgb / 255.0) ** gamma + rng.normal(0, noise, rgb.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def side_light(rgb: np.ndarray, seed: int, floor: float = SIDE_FLOOR, gamma: float = SIDE_GAMMA,
               noise: float = SIDE_NOISE) -> np.ndarray:
    """Light from one side: brightness falls across the photo to ``floor`` (the side is chosen
    by the seed), then sensor noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(1.0, floor, rgb.shape[1]) ** gamma
    if rng.random() < 0.5:
        ramp = ramp[::-1]
    x = 255 * (rgb / 255.0) ** gamma * ramp[None, :, None] + rng.normal(0, noise, rgb.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def tight_window(box: tuple[float, float, float, float], hw: tuple[int, int], factor: float = TIGHT_BOX,
                 shift: tuple[float, float] = (0.0, 0.0)) -> tuple[int, int, int, int]:
    """The pixels (x0, y0, x1, y1) of a square of ``factor`` x the face box (left, top, right,
    bottom), centered on the box's center moved by ``shift`` x its side, inside a photo of
    ``hw`` = (height, width)."""
    left, top, right, bottom = box
    side = right - left
    cx, cy = (left + right) / 2 + shift[0] * side, (top + bottom) / 2 + shift[1] * side
    half = factor * side / 2
    h, w = hw
    return (int(max(0, cx - half)), int(max(0, cy - half)), int(min(w, cx + half)), int(min(h, cy + half)))


def tight_crop(rgb: np.ndarray, box: tuple[float, float, float, float], factor: float = TIGHT_BOX) -> np.ndarray:
    """A square of ``factor`` x the detector's box, same center: the face fills the frame, as
    tight crops from cameras and face datasets do."""
    x0, y0, x1, y1 = tight_window(box, rgb.shape[:2], factor)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def hard_view(rgb: np.ndarray, alignment, seed: int, kind: str):
    """``rgb`` made hard, with settings drawn from ``seed``: very dark or dim ("dark"), lit
    from one side ("side") or cropped tightly around its face ("tight", the box estimated from
    ``alignment``'s landmarks as the aligner estimates it). Returns the photo and its face's
    alignment in it (tinyface.data.align.Alignment; moved with the crop). A photo without a
    face found (the pipeline's centered fallback) is not cropped."""
    from dataclasses import replace

    from tinyface.data.align import box_from_landmarks

    rng = np.random.default_rng(seed)
    if kind == "dark":
        draw = {k: rng.uniform(*bounds) for k, bounds in RELIT_DARK.items()}
        return darken(rgb, int(rng.integers(2**31)), **draw), alignment
    if kind == "side":
        draw = {k: rng.uniform(*bounds) for k, bounds in RELIT_SIDE.items()}
        return side_light(rgb, int(rng.integers(2**31)), **draw), alignment
    if kind == "tight":
        if not alignment.usable:  # no face found: no box to crop around; the pipeline's centered crop stays
            return rgb, alignment
        rect = box_from_landmarks(alignment.landmarks)
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        window = tight_window(box, rgb.shape[:2], rng.uniform(*TIGHT_FACTOR),
                              tuple(rng.uniform(-TIGHT_SHIFT, TIGHT_SHIFT, 2)))
        x0, y0, x1, y1 = window
        moved = replace(alignment, landmarks=(alignment.landmarks - np.float32([x0, y0])).astype(np.float32))
        return np.ascontiguousarray(rgb[y0:y1, x0:x1]), moved
    raise ValueError(f"kind must be one of {tuple(VIEW_VERSIONS)}, got {kind!r}")
