"""distill.light_augment: badly lit faces from well-lit ones, in the training pipeline."""

import numpy as np
import pytest
from PIL import Image

from tinyface import config
from tinyface.train.distill import make_dataset, relight


def _faces(lfw_dir, n=8, size=48):
    """Gray centre crops of real LFW photos, as [-1, 1) floats (the student's input range)."""
    photos = sorted((lfw_dir / "images").glob("*/*.jpg"))[:n]
    crops = [np.asarray(Image.open(p).convert("L").crop((65, 65, 185, 185)).resize((size, size))) for p in photos]
    return (np.stack(crops)[..., None].astype(np.float32) - 128.0) / 128.0


def test_relight_darkens_half_and_side_lights_half(lfw_dir):
    import tensorflow as tf

    x = _faces(lfw_dir)
    seed = tf.constant(5, tf.int64)
    out = relight(tf.constant(x), 48, seed, 1.0).numpy()
    assert out.shape == x.shape and out.min() >= -1.0 and out.max() <= 1.0
    assert np.array_equal(out, relight(tf.constant(x), 48, seed, 1.0).numpy())  # the batch's seed decides
    assert np.array_equal(relight(tf.constant(x), 48, seed, 0.0).numpy(), x)  # share 0: untouched
    levels = [len(np.unique(np.round((o + 1) * 127.5, 3))) for o in out]
    changed = [not np.allclose(o, a, atol=1e-6) for o, a in zip(out, x, strict=True)]
    assert all(changed)
    dark = [i for i, k in enumerate(levels) if k <= 100]  # crushed to the few grey levels left
    assert dark and len(dark) < len(x)
    for i in dark:  # brightened back: the brightest pixel is 80-100% of white
        assert 0.6 - 1e-6 <= out[i].max() <= 1.0
    for i in set(range(len(x))) - set(dark):  # lit from one side: darker than the face, never brighter
        v, w = (out[i] + 1) / 2, (x[i] + 1) / 2
        assert v.mean() < w.mean() and (v <= w + 3 / 255).mean() > 0.99


def test_light_share_reaches_only_that_share_of_the_batch(lfw_dir):
    x = ((_faces(lfw_dir, n=64) + 1) * 127.5 + 0.5).astype(np.uint8)
    t = np.zeros((64, 128), np.float32)
    plain = next(iter(make_dataset(x, t, 64, "photometric", 3, shuffle=False)))[0].numpy()
    lit = next(iter(make_dataset(x, t, 64, "photometric", 3, shuffle=False, light=0.25)))[0].numpy()
    touched = np.mean([not np.allclose(a, b, atol=1e-6) for a, b in zip(plain, lit, strict=True)])
    assert 0.05 <= touched <= 0.5


def test_light_augment_is_a_share():
    assert config.load(overrides={"distill": {"light_augment": 0.2}}).distill.light_augment == 0.2
    with pytest.raises(config.ConfigError, match="distill.light_augment must be in"):
        config.load(overrides={"distill": {"light_augment": 1.5}})


def test_the_model_card_says_the_faces_were_relit():
    from tinyface.evaluation.report import _training_data_line

    ds = config.load(overrides={"distill": {"light_augment": 0.2, "teacher_views": 3}}).distill
    assert "20% of the samples seen very dark (then brightened) or lit from one side" in _training_data_line(ds)
    assert "very dark" not in _training_data_line(config.load().distill)
