"""Training is reproducible: the same seed gives the same batches, augmentation and weights;
another seed does not. (A re-run of a build with the same settings trains the same model.)"""

import numpy as np

from tinyface.train import distill
from tinyface.train.student import build_student


def _data(n=48, size=24):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
    t = distill.center_targets(rng.normal(size=(n, 16)).astype(np.float32), np.zeros(16, np.float32))
    return x, t


def _epochs(seed, n_epochs=2, augment=True):
    x, t = _data()
    ds = distill.make_dataset(x, t, 16, augment, seed, shuffle=True)
    return [[(xb.numpy(), tb.numpy()) for xb, tb in ds] for _ in range(n_epochs)]


def test_batches_and_augmentation_repeat_for_a_seed_and_change_every_epoch():
    a, b, other = _epochs(3), _epochs(3), _epochs(4)
    for ea, eb in zip(a, b, strict=True):
        for (xa, ta), (xb, tb) in zip(ea, eb, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ta, tb)
    assert not np.array_equal(a[0][0][0], a[1][0][0]), "every epoch must draw new augmentation"
    assert not np.array_equal(a[0][0][0], other[0][0][0]), "another seed must give other batches"


def test_training_batches_run_without_tf_data_autotuning_and_are_the_ones_it_gives():
    """tf.data's autotuning held every ending iterator for up to a minute (distill.untuned): the
    build's datasets, plain and anchor-partner, have it off, and give the batches they gave with it."""
    import tensorflow as tf

    x, t = _data()
    partners = distill.nearest_partners(t, np.arange(len(t)), 2)
    tuned = tf.data.Options()
    tuned.autotune.enabled = True
    for kind in (None, partners):
        ds = distill.make_dataset(x, t, 16, True, 5, shuffle=True, partners=kind)
        assert ds.options().autotune.enabled is False
        untuned = [xb.numpy() for xb, _ in ds]
        autotuned = [xb.numpy() for xb, _ in distill.make_dataset(x, t, 16, True, 5, shuffle=True,
                                                                  partners=kind).with_options(tuned)]
        assert len(untuned) == len(autotuned) == len(x) // 16
        for a, b in zip(untuned, autotuned, strict=True):
            np.testing.assert_array_equal(a, b)


def test_augmentation_stays_in_range_and_changes_the_images():
    x, t = _data()
    plain = np.concatenate([xb.numpy() for xb, _ in distill.make_dataset(x, t, 16, False, 0, shuffle=False)])
    aug = np.concatenate([xb.numpy() for xb, _ in distill.make_dataset(x, t, 16, True, 0, shuffle=False)])
    assert plain.shape == aug.shape and aug.min() >= -1.0 and aug.max() <= 127 / 128
    assert not np.allclose(plain, aug)


def _train(seed):
    x, t = _data()
    distill.seed_everything(seed)
    model, _ = build_student("dsnet", (24, 24, 1), 16, 0.5)
    distill.fit(model, x, t, None, None, 2, 16, 1e-3, distill.make_loss(distill.LossWeights()), seed=seed,
                warmup_epochs=0)
    return model.get_weights()


def test_same_seed_trains_the_same_weights():
    a, b, c = _train(1), _train(1), _train(2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True))


def _train_from(seed, ema):
    x, t = _data()
    distill.seed_everything(seed)
    model, _ = build_student("dsnet", (24, 24, 1), 16, 0.5)
    start = [w.numpy() for w in model.trainable_weights]
    distill.fit(model, x, t, None, None, 2, 16, 1e-2, distill.make_loss(distill.LossWeights()), seed=seed,
                warmup_epochs=0, ema=ema)
    return start, [w.numpy() for w in model.trainable_weights]  # batch-norm statistics are not averaged


def _distance(a, b):
    return sum(float(np.sum((u - v) ** 2)) for u, v in zip(a, b, strict=True))


def test_weight_averaging_ends_with_the_average_not_the_last_step():
    start, plain = _train_from(1, 0.0)
    _, tiny = _train_from(1, 1e-9)  # remembers only the last step: the last step's weights
    _, slow = _train_from(1, 0.999)  # 6 steps remembered at 0.1%: close to the first step's weights
    assert all(np.allclose(u, v, atol=1e-6) for u, v in zip(plain, tiny, strict=True))
    assert _distance(slow, start) < 0.2 * _distance(plain, start)


def test_weight_averaging_is_checked():
    from tinyface.config import ConfigError, DistillSettings

    for bad in (-0.1, 1.0):
        try:
            DistillSettings(ema=bad).validate()
        except ConfigError as e:
            assert "distill.ema" in str(e)
        else:
            raise AssertionError(f"ema={bad} accepted")


def test_weight_averaging_measures_the_batch_norm_statistics_again():
    """The averaged weights get batch-norm statistics of their own: each layer's moving mean and
    variance are its input's over the training crops (a mismatch cost 10 points of validation
    pairs in run EM1)."""
    import tf_keras as keras

    x, t = _data()
    distill.seed_everything(1)
    model, _ = build_student("dsnet", (24, 24, 1), 16, 0.5)
    distill.fit(model, x, t, None, None, 2, 16, 1e-2, distill.make_loss(distill.LossWeights()), seed=1,
                warmup_epochs=0, ema=0.9)
    scaled = (x.astype(np.float32) - 128.0) / 128.0  # every crop: the sample is all of them here
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert layers
    for layer in layers:
        inputs = keras.Model(model.inputs, layer.input).predict(scaled, verbose=0)
        mean, var = layer.get_weights()[-2:]
        axes = tuple(range(inputs.ndim - 1))  # all but the channels (convolutions and dense layers)
        np.testing.assert_allclose(mean, inputs.mean(axes), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(var, inputs.var(axes), rtol=1e-3, atol=1e-4)
