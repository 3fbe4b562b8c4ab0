"""FaceSpec.for_model: the one way to cut faces for a model (issue 14, item 2)."""

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
