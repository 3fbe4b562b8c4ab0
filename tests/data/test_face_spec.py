"""FaceSpec: for_model, the one way to cut faces for a model (issue 14, item 2), and
cut_teacher_chip, the one cut of the teacher's chips."""

import numpy as np
import pytest

from tinyface import config
from tinyface.data.faces import FaceSpec
from tinyface.errors import DataError
from tinyface.model.bundle import ModelMeta


def _meta(shape, padding=0.3):
    return ModelMeta(input_shape=shape, input_scale=1.0, input_zero_point=-128, output_scale=0.1,
                     output_zero_point=0, embedding_dim=128, threshold=0.5, crop_padding=padding)


def test_for_model_takes_the_crop_from_model_json_and_the_retry_from_the_settings():
    settings = config.load(overrides={"data": {"detector_upsample": 2, "crop_size": 32, "padding": 0.1}})
    spec = FaceSpec.for_model(_meta([1, 64, 64, 3]), settings)
    # the model decides the crop (not data.crop_size / data.padding, which are the build's)
    assert (spec.crop_size, spec.channels, spec.padding) == (64, 3, 0.3)
    assert spec.detector_upsample == 2
    assert not spec.teacher


def test_for_model_without_settings_uses_the_default_retry():
    assert FaceSpec.for_model(_meta([1, 48, 48, 1])).detector_upsample == config.DataSettings().detector_upsample


def test_a_model_with_a_non_square_input_is_refused():
    with pytest.raises(DataError, match="48x40"):
        FaceSpec.for_model(_meta([1, 48, 40, 1]))


def _face_photo(seed: int = 0):
    """A photo (noise: the cut is geometry) and the landmarks of the face it holds."""
    from tinyface.data.align import Alignment, chip_landmarks

    rgb = np.random.default_rng(seed).integers(0, 256, (180, 160, 3), dtype=np.uint8)
    # the template of a 120-pixel chip at padding 0.25, moved into the photo: a face away from its edges
    return rgb, Alignment(chip_landmarks(120, 120, 0.25) + np.float32([20, 30]), True, "detector")


def test_the_teacher_chip_is_dlibs_150_pixel_chip_at_padding_025_from_the_teacher_settings():
    from tinyface.data.align import Perturbation, cut_chip
    from tinyface.teacher.dlib_net import CHIP_SIZE

    rgb, alignment = _face_photo()
    spec = FaceSpec()
    chip = spec.cut_teacher_chip(rgb, alignment)
    assert (spec.teacher_chip_size, spec.teacher_padding) == (150, 0.25) == (
        config.TeacherSettings.chip_size, config.TeacherSettings.chip_padding)
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3) and chip.dtype == np.uint8  # what the network reads
    assert np.array_equal(chip, cut_chip(rgb, alignment, 150, 0.25, 3))
    view = Perturbation(scale=1.05, shift_x=0.02)
    assert np.array_equal(spec.cut_teacher_chip(rgb, alignment, view), cut_chip(rgb, alignment, 150, 0.25, 3, view))
    assert not np.array_equal(spec.cut_teacher_chip(rgb, alignment, view), chip)


def test_the_teacher_chip_follows_the_settings_and_not_the_students_crop():
    from tinyface.data.align import cut_chip

    rgb, alignment = _face_photo(1)
    settings = config.load(overrides={"teacher": {"chip_padding": 0.3}, "data": {"crop_size": 48, "padding": 0.1}})
    chip = FaceSpec.from_settings(settings, teacher=True).cut_teacher_chip(rgb, alignment)
    assert np.array_equal(chip, cut_chip(rgb, alignment, 150, 0.3, 3))
    assert not np.array_equal(chip, FaceSpec().cut_teacher_chip(rgb, alignment))
