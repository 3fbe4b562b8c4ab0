"""benchmarks/hard_faces.py: the sets it cuts from LFW training photos (its faces found the hard way
by tinyface.data.align: tests/data/test_align.py)."""

import numpy as np

from tests.conftest import (
    LFW_TRAIN_IMAGES as TRAIN_IMAGES,
    detector_truth as _truth,
    landmark_error as _error,
    load_benchmark as _load,
)
from tinyface.data.align import Aligner
from tinyface.data.dataset import read_image


def test_the_tight100_set_is_the_detector_box_cut_out_and_its_face_is_found(lfw_dir):
    hard_faces = _load("hard_faces")
    assert hard_faces.SETS == ("untouched", "tight100", "tight85", "tight", "dim", "dark", "side")
    rgb = read_image(lfw_dir / "images" / TRAIN_IMAGES[2])
    box, truth = _truth(rgb)
    crop = hard_faces.tight_crop(rgb, box, hard_faces.TIGHT100_BOX)
    left, top = max(0, box[0]), max(0, box[1])
    right, bottom = min(rgb.shape[1], box[2]), min(rgb.shape[0], box[3])
    assert abs(crop.shape[0] - (bottom - top)) <= 1 and abs(crop.shape[1] - (right - left)) <= 1
    # the box's pixels, to within a pixel's rounding of its corner
    h, w = crop.shape[:2]
    at = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
          if np.array_equal(crop, rgb[top + dy:top + dy + h, left + dx:left + dx + w])]
    assert at
    alignment = Aligner(upsample=1).detect(crop)
    assert alignment.usable and _error(alignment.landmarks, truth - [left + at[0][0], top + at[0][1]]) < 0.3
