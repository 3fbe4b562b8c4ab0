"""distill.assistant: naming the assistant, refusing an unfit one before any work, and the targets' blend."""

import dataclasses

import numpy as np
import pytest

from tinyface import config
from tinyface.errors import ConfigError
from tinyface.resources import models_dir
from tinyface.train import assistant
from tinyface.vectors import l2_normalize


def _settings(**distill):
    return config.load(None, {"distill": distill}, base=config.load_preset("esp32").settings())


def test_a_released_model_is_named_by_its_folder_and_a_path_is_a_path(tmp_path):
    assert assistant.resolve("esp32s3") == models_dir() / "esp32s3"
    assert assistant.resolve(str(models_dir() / "esp32")) == models_dir() / "esp32"
    with pytest.raises(ConfigError,
                       match=r"distill.assistant = 'esp32x': no model bundle .* at esp32x or .*esp32x") as err:
        assistant.resolve("esp32x")
    assert err.value.exit_code == 3
    with pytest.raises(ConfigError, match="no model bundle"):
        assistant.resolve(str(tmp_path))  # a folder without a bundle


def test_check_refuses_an_assistant_of_another_embedding_size_before_any_work():
    assert assistant.check(_settings()) is None  # none named: nothing to check
    assert assistant.check(_settings(assistant="esp32s3")) == models_dir() / "esp32s3"
    s = _settings(assistant="esp32s3")
    s = dataclasses.replace(s, student=dataclasses.replace(s.student, embedding_dim=64))
    with pytest.raises(ConfigError, match="embeds in 128 dimensions, the student in 64"):
        assistant.check(s)


def _bundle_with_split(tmp_path, split):
    import json
    import shutil

    folder = tmp_path / "assistant"
    shutil.copytree(models_dir() / "esp32s3", folder)
    meta = json.loads((folder / "model.json").read_text())
    meta.setdefault("extra", {})["split"] = split
    (folder / "model.json").write_text(json.dumps(meta))
    return str(folder)


def test_check_refuses_an_assistant_whose_build_kept_other_people_apart(tmp_path):
    same = {"seed": 0, "val_fraction": 0.1, "test_filter": 0.25}
    assert assistant.check(_settings(assistant=_bundle_with_split(tmp_path / "a", same))) is not None
    stricter = {**same, "test_filter": 0.3}  # it left out more than this build: fine
    assert assistant.check(_settings(assistant=_bundle_with_split(tmp_path / "b", stricter))) is not None
    for changed, says in ((dict(seed=1), "data.seed = 1, this build has 0: .* validation people"),
                          (dict(val_fraction=0.2), "data.val_fraction = 0.2, this build has 0.1"),
                          (dict(test_filter=0.0), "data.test_filter = 0.0, this build has 0.25: .* LFW test photos"),
                          (dict(test_filter=0.2), "data.test_filter = 0.2, this build has 0.25")):
        folder = _bundle_with_split(tmp_path / str(changed), {**same, **changed})
        with pytest.raises(ConfigError, match=says) as err:
            assistant.check(_settings(assistant=folder))
        assert err.value.exit_code == 3
    # a build without the filter takes any assistant's filter
    off = _settings(assistant=_bundle_with_split(tmp_path / "c", {**same, "test_filter": 0.0}))
    assert assistant.check(dataclasses.replace(off, data=dataclasses.replace(off.data, test_filter=0.0))) is not None


def test_the_weight_is_checked():
    with pytest.raises(ConfigError, match=r"distill.assistant_weight must be in \[0, 1\]"):
        _settings(assistant="esp32s3", assistant_weight=1.5)


def test_blend_is_the_teacher_at_0_the_assistant_at_1_and_unit_length_between():
    rng = np.random.default_rng(0)
    teacher, other = l2_normalize(rng.normal(size=(5, 8))), rng.normal(size=(5, 8)) * 3
    assert assistant.blend(teacher, other, 0.0) is teacher
    np.testing.assert_allclose(assistant.blend(teacher, other, 1.0), l2_normalize(other), atol=1e-6)
    half = assistant.blend(teacher, other, 0.5)
    np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-6)
    # halfway: as close to the teacher as to the (normalised) assistant
    np.testing.assert_allclose((half * teacher).sum(1), (half * l2_normalize(other)).sum(1), atol=1e-6)


def test_the_assistant_cuts_its_own_crops():
    """Its crop size, channels and padding come from its model.json; the rows are the build's."""
    s = _settings(assistant="esp32s3")
    from tinyface.model.bundle import load_bundle

    meta = load_bundle(models_dir() / "esp32s3").meta
    a = assistant.assistant_settings(s, meta)
    assert (a.data.crop_size, a.data.channels, a.data.padding) == (80, 1, meta.crop_padding)
    assert a.data.seed == s.data.seed and a.distill == s.distill and a.extra == s.extra
    meta = dataclasses.replace(meta, input_shape=[1, 80, 64, 1])
    with pytest.raises(ConfigError, match="takes 80x64 crops"):
        assistant.assistant_settings(s, meta)
