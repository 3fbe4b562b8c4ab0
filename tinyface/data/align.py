"""Face alignment: dlib's frontal face detector, its 5-point landmarks, and a similarity
transform onto a square chip (dlib's face-chip convention, the one its ResNet was trained on).

When no face is found (after retrying with upsampling), the documented fallback is a
centered crop: a square of side ``FALLBACK_SIDE`` x the image's shorter side, centered at
(0.5 w, ``FALLBACK_CENTER_Y`` h). On LFW's deep-funneled 250x250 images this matches where
the detector puts the face chip (measured: 120 px square centered near (125, 138)).
Fallbacks are counted and reported, never hidden.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

ALIGNER_VERSION = "dlib-hog-5pt-v1"
FALLBACK_SIDE = 0.48
FALLBACK_CENTER_Y = 0.55
N_LANDMARKS = 5


@dataclass
class Alignment:
    """Five landmarks (x, y) in source pixels, whether a face was detected, and the chip box."""

    landmarks: np.ndarray  # (5, 2) float32; zeros when not detected
    detected: bool

    def to_array(self) -> np.ndarray:
        return np.concatenate([self.landmarks.reshape(-1), [1.0 if self.detected else 0.0]]).astype(np.float32)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> "Alignment":
        arr = np.asarray(arr, dtype=np.float32)
        return cls(arr[: 2 * N_LANDMARKS].reshape(N_LANDMARKS, 2), bool(arr[-1] > 0.5))


_models_lock = threading.Lock()
_models: dict[str, object] = {}


def _dlib_models():
    """Load dlib's detector and 5-point predictor once per process."""
    with _models_lock:
        if not _models:
            import dlib
            import face_recognition_models as frm

            _models["detector"] = dlib.get_frontal_face_detector()
            _models["predictor"] = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        return _models["detector"], _models["predictor"]


class Aligner:
    """Finds the 5 landmarks of the largest face and cuts aligned chips."""

    def __init__(self, upsample: int = 1):
        self.upsample = upsample

    def detect(self, rgb: np.ndarray) -> Alignment:
        detector, predictor = _dlib_models()
        rects = detector(rgb, 0)
        if len(rects) == 0 and self.upsample > 0:
            rects = detector(rgb, self.upsample)
        if len(rects) == 0:
            return Alignment(np.zeros((N_LANDMARKS, 2), np.float32), False)
        rect = max(rects, key=lambda r: r.area())
        shape = predictor(rgb, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        return Alignment(pts, True)


def chip_affine(alignment: Alignment, image_hw: tuple[int, int], size: int, padding: float) -> np.ndarray:
    """The 2x3 matrix mapping source pixel (x, y, 1) to chip pixel coordinates.

    For a detected face this is dlib's ``get_face_chip_details`` box; otherwise the
    centered fallback square.
    """
    import dlib

    if alignment.detected:
        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in alignment.landmarks]
        xs, ys = alignment.landmarks[:, 0], alignment.landmarks[:, 1]
        box = dlib.rectangle(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        details = dlib.get_face_chip_details(dlib.full_object_detection(box, parts), size, padding)
        rect, angle = details.rect, details.angle
        left, top, right, bottom = rect.left(), rect.top(), rect.right(), rect.bottom()
    else:
        h, w = image_hw
        side = FALLBACK_SIDE * min(h, w) * (1 + 2 * padding) / 1.5  # padding 0.25 -> the measured box
        cx, cy = 0.5 * w, FALLBACK_CENTER_Y * h
        left, top, right, bottom = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
        angle = 0.0
    # dlib maps the rect's corners, rotated by `angle` about its center, onto the chip's corners.
    cx, cy = (left + right) / 2, (top + bottom) / 2
    cos, sin = math.cos(angle), math.sin(angle)

    def rot(x, y):
        dx, dy = x - cx, y - cy
        return cx + cos * dx - sin * dy, cy + sin * dx + cos * dy

    src = np.array([rot(left, top), rot(right, top), rot(right, bottom)], dtype=np.float64)
    dst = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], dtype=np.float64)
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T  # (2, 3): chip = M @ [x, y, 1]


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


@dataclass(frozen=True)
class Perturbation:
    """A view of an aligned face: a mirror, then a rotation/scale about the chip's center and
    a shift (a fraction of the chip's side). Defined in chip coordinates, so the same view
    can be cut at any size: the student's crop and the teacher's chip see the same face."""

    angle_deg: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    flip: bool = False

    @classmethod
    def sample(cls, seed: int, max_angle_deg: float = 10.0, max_scale: float = 0.08, max_shift: float = 0.06):
        rng = np.random.default_rng(seed)
        return cls(float(rng.uniform(-max_angle_deg, max_angle_deg)), float(rng.uniform(1 - max_scale, 1 + max_scale)),
                   float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift)),
                   bool(rng.random() < 0.5))

    def matrix(self, size: int) -> np.ndarray:
        """3x3 map from chip pixel coordinates to the perturbed chip's."""
        c = (size - 1) / 2.0
        flip = np.array([[-1.0, 0, size - 1], [0, 1, 0], [0, 0, 1]]) if self.flip else np.eye(3)
        a = math.radians(self.angle_deg)
        rot = self.scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        sim = np.eye(3)
        sim[:2, :2] = rot
        sim[:2, 2] = np.array([c, c]) - rot @ np.array([c, c]) + np.array([self.shift_x, self.shift_y]) * size
        return sim @ flip


def cut_chip(rgb: np.ndarray, alignment: Alignment, size: int, padding: float, channels: int = 3,
             perturbation: Perturbation | None = None) -> np.ndarray:
    """Warp the face onto a ``size`` x ``size`` chip: uint8 (size, size, channels).

    Downscaling is done in two steps (an area-averaged resize, then a bilinear warp) so a
    48-pixel chip from a 120-pixel face does not alias.
    """
    from PIL import Image

    matrix = chip_affine(alignment, rgb.shape[:2], size, padding)
    if perturbation is not None:
        matrix = (perturbation.matrix(size) @ np.vstack([matrix, [0, 0, 1]]))[:2]
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))  # chip pixels per source pixel
    img = Image.fromarray(rgb)
    pre = 1.0
    if scale < 0.5:  # shrink the source first so the bilinear warp samples at most 2:1
        pre = min(1.0, 2.0 * scale)
        img = img.resize((max(1, round(img.width * pre)), max(1, round(img.height * pre))), Image.BOX)
        matrix = matrix @ np.diag([1 / pre, 1 / pre, 1.0])
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]  # chip -> source, as PIL wants
    chip = img.transform((size, size), Image.AFFINE, inverse.reshape(-1).tolist(), resample=Image.BILINEAR)
    if channels == 1:
        chip = chip.convert("L")
        return np.asarray(chip)[:, :, None]
    return np.asarray(chip)
