"""Badly lit photos made from well-lit ones: the one definition of darkening and side light.

``benchmarks/hard_faces.py`` makes its hard sets with fixed settings (``darken`` with its
defaults: very dark, about 25 grey levels left; ``side_light`` with the light falling to 3%
across the photo). ``relit_photo`` draws the settings at random around those, for the training
views of ``distill.relit_views`` (tinyface.data.faces.prepare_relit): the photo is relit, then cut
as the pipeline cuts any photo, so an underexposed face is brightened exactly as a user's would be
(tinyface.data.align.brighten).
"""

from __future__ import annotations

import numpy as np

DARK_GAIN, DARK_GAMMA, DARK_NOISE = 0.1, 2.2, 2.0  # brightest pixel ~25/255, with sensor noise
SIDE_FLOOR, SIDE_GAMMA, SIDE_NOISE = 0.03, 1.5, 1.5  # light falls to 3% across the face
# relit_photo's draws (uniform): very dark to dim, and light falling to 3-30% across the photo
RELIT_DARK = {"gain": (0.06, 0.35), "gamma": (1.4, 2.4), "noise": (0.5, 2.5)}
RELIT_SIDE = {"floor": (0.03, 0.3), "gamma": (1.0, 1.6), "noise": (0.5, 2.0)}
RELIT_VERSION = "relit-v1"  # in the cache digest of relit crops: change it when the draws change
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


def relit_photo(rgb: np.ndarray, seed: int, kind: str) -> np.ndarray:
    """``rgb`` very dark or dim (``kind`` "dark") or lit from one side ("side"), with settings
    drawn from ``seed`` (RELIT_DARK, RELIT_SIDE)."""
    rng = np.random.default_rng(seed)
    if kind == "dark":
        draw = {k: rng.uniform(*bounds) for k, bounds in RELIT_DARK.items()}
        return darken(rgb, int(rng.integers(2**31)), **draw)
    if kind == "side":
        draw = {k: rng.uniform(*bounds) for k, bounds in RELIT_SIDE.items()}
        return side_light(rgb, int(rng.integers(2**31)), **draw)
    raise ValueError(f"kind must be one of {RELIT_KINDS}, got {kind!r}")
