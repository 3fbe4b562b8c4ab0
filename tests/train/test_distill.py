"""tinyface.train.distill: the training set (originals, teacher views, teacher mixes, relit copies
and extra faces, each row with its own centered target, and the identities of its rows), the
loss, reproducible training (batches, augmentation and weights repeat for a seed; weight
averaging), the relit faces of distill.light_augment and the anchor-partner batches of
distill.neighbours."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.conftest import unit_targets
from tinyface.train import distill
from tinyface.train.distill import (
    LossWeights,
    center_targets,
    make_dataset,
    make_loss,
    relight,
    training_identities,
    training_set,
)
from tinyface.train.student import build_student
from tinyface.vectors import l2_normalize

# --- the training set ---------------------------------------------------------------------------------
# originals, teacher views and teacher mixes, each with its own centered target.

def _data(n=4, views=0, mixes=0, size=8):
    rng = np.random.default_rng(0)
    crops = lambda *shape: rng.integers(0, 256, (*shape, size, size, 1), dtype=np.uint8)  # noqa: E731
    teacher = lambda *shape: rng.normal(size=(*shape, 128)).astype(np.float32)  # noqa: E731
    train = SimpleNamespace(crops=crops(n), teacher=teacher(n), labels=[f"p{i % 2}" for i in range(n)])
    return SimpleNamespace(train=train,
                           train_views=(crops(n, views), teacher(n, views)) if views else None,
                           train_views_labels=train.labels,
                           train_mixes=(crops(n * mixes), teacher(n * mixes)) if mixes else None,
                           train_hard=None, extra=None)


def test_originals_alone_get_geometric_augmentation():
    data = _data()
    center = data.train.teacher.mean(axis=0)
    x, t, augment, originals = training_set(data, center)
    assert x is data.train.crops and augment is True
    assert np.array_equal(originals, np.arange(4))
    assert np.allclose(t, center_targets(data.train.teacher, center))


def test_views_and_mixes_follow_the_originals_with_their_own_targets():
    data = _data(views=2, mixes=3)
    center = data.train.teacher.mean(axis=0)
    x, t, augment, originals = training_set(data, center)
    assert len(x) == len(t) == 4 + 4 * 2 + 4 * 3
    assert np.array_equal(originals, np.arange(4))  # views and mixes are not originals
    assert augment == "photometric"  # the views carry the geometry, each with the teacher's own target
    assert np.array_equal(x[4:6], data.train_views[0][0])  # image 0's two views, in order
    assert np.allclose(t[5], center_targets(data.train_views[1][0, 1:2], center)[0])
    assert np.array_equal(x[-12:], data.train_mixes[0])
    assert np.allclose(t[-12:], center_targets(data.train_mixes[1], center))
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0)


def test_extra_faces_are_originals_after_the_views_and_mixes():
    data = _data(views=2, mixes=1)
    rng = np.random.default_rng(1)
    data.extra = SimpleNamespace(crops=rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8),
                                 teacher=rng.normal(size=(3, 128)).astype(np.float32), views=None, mixes=None,
                                 identities=[None] * 3, view_identities=[])
    x, t, _, originals = training_set(data, data.train.teacher.mean(axis=0))
    assert len(x) == 4 + 8 + 4 + 3
    assert np.array_equal(originals, [0, 1, 2, 3, 16, 17, 18])
    assert np.array_equal(x[originals[4:]], data.extra.crops)


def test_identities_follow_the_rows_and_need_two_photos():
    """LFW's people and the extra faces' people folders get an index per row (views too);
    mixes, faces of no one and people with one photo get -1; centroids are of the targets."""
    data = _data(n=5, views=2, mixes=1)  # labels p0 p1 p0 p1 p0
    data.train.labels = ["p0", "p1", "p0", "solo", "p0"]
    data.train_views_labels = data.train.labels
    rng = np.random.default_rng(1)
    data.extra = SimpleNamespace(crops=rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8),
                                 teacher=rng.normal(size=(4, 128)).astype(np.float32), views=None, mixes=None,
                                 identities=["extra1:pins_A", None, "extra1:pins_A", "extra1:pins_B"],
                                 view_identities=[])
    center = data.train.teacher.mean(axis=0)
    x, t, _, _ = training_set(data, center)
    ids, people = training_identities(data, t)
    assert len(ids) == len(x) == 5 + 10 + 5 + 4
    names = sorted(["p0", "extra1:pins_A"])  # p1, solo and pins_B have one photo each
    p0, a = names.index("p0"), names.index("extra1:pins_A")
    assert ids[:5].tolist() == [p0, -1, p0, -1, p0]
    assert ids[5:15].tolist() == [p0, p0, -1, -1, p0, p0, -1, -1, p0, p0]  # each photo's two views
    assert (ids[15:20] == -1).all()  # mixes: faces of no one
    assert ids[20:].tolist() == [a, -1, a, -1]
    rows = np.flatnonzero(ids == p0)
    expected = t[rows].mean(axis=0)
    assert np.allclose(people[p0], expected / np.linalg.norm(expected), atol=1e-6)


def test_identity_term_rewards_the_right_person_by_a_margin():
    import tensorflow as tf

    people = np.eye(3, 128, dtype=np.float32)
    t = np.eye(3, 128, dtype=np.float32)
    y = np.concatenate([t, np.array([[0], [1], [-1]], np.float32)], axis=1)
    plain = make_loss(LossWeights())
    with_id = make_loss(LossWeights(), people=people, identity_weight=1.0, identity_margin=0.2)
    right = tf.constant(t)
    wrong = tf.constant(t[[1, 0, 2]])
    assert float(with_id(y, right)) - float(plain(y[:, :-1], right)) < 0.01  # the right person, by far
    assert float(with_id(y, wrong)) - float(plain(y[:, :-1], wrong)) > 10.0  # another person's centroid
    # a batch with no person: the distillation terms alone
    none = y.copy()
    none[:, -1] = -1
    assert np.isclose(float(with_id(none, wrong)), float(plain(y[:, :-1], wrong)))


# distill.relit_views: the relit copies of a photo train on the untouched photo's targets
def test_relit_rows_train_on_the_untouched_photos_targets():
    from types import SimpleNamespace

    from tinyface.train.distill import center_targets, training_set

    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(4, 128)).astype(np.float32)
    crops = rng.integers(0, 255, (4, 8, 8, 1), dtype=np.uint8)
    relit = rng.integers(0, 255, (4, 2, 8, 8, 1), dtype=np.uint8)
    train = SimpleNamespace(crops=crops, teacher=teacher, labels=list("aabc"))
    data = SimpleNamespace(train=train, train_views=None, train_mixes=None, extra=None,
                           train_hard=(relit, teacher, list("aabc")))
    center = np.zeros(128, np.float32)
    x, t, _, originals = training_set(data, center)
    assert x.shape == (12, 8, 8, 1) and list(originals) == [0, 1, 2, 3]
    assert np.array_equal(x[4:6], relit[0]) and np.array_equal(x[10:12], relit[3])
    want = center_targets(teacher, center)
    assert np.allclose(t[4], want[0]) and np.allclose(t[5], want[0]) and np.allclose(t[11], want[3])


# --- reproducible training ----------------------------------------------------------------------------
# the same seed gives the same batches, augmentation and weights; another seed does not. (A re-run of
# a build with the same settings trains the same model.) Weight averaging (distill.ema).

def _fit_data(n=48, size=24):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
    t = distill.center_targets(rng.normal(size=(n, 16)).astype(np.float32), np.zeros(16, np.float32))
    return x, t


def _epochs(seed, n_epochs=2, augment=True):
    x, t = _fit_data()
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

    x, t = _fit_data()
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
    x, t = _fit_data()
    plain = np.concatenate([xb.numpy() for xb, _ in distill.make_dataset(x, t, 16, False, 0, shuffle=False)])
    aug = np.concatenate([xb.numpy() for xb, _ in distill.make_dataset(x, t, 16, True, 0, shuffle=False)])
    assert plain.shape == aug.shape and aug.min() >= -1.0 and aug.max() <= 127 / 128
    assert not np.allclose(plain, aug)


def _train(seed):
    x, t = _fit_data()
    distill.seed_everything(seed)
    model, _ = build_student("dsnet", (24, 24, 1), 16, 0.5)
    distill.fit(model, x, t, None, None, 2, 16, 1e-3, distill.make_loss(distill.LossWeights()), seed=seed,
                warmup_epochs=0)
    return model.get_weights()


def test_same_seed_trains_the_same_weights():
    a, b, c = _train(1), _train(1), _train(2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True))


class Stopped(Exception):
    """What stops a fit after an epoch in these tests (Ctrl-C does so in a build)."""


def _fit_with_checkpoint(folder, epochs=3, stop_after=None, ema=0.0, partners=False, key="k", resumed=None,
                         stop_at=None, every_s=None, n=48, pruning=False, taken=None):
    """A fit of 3 epochs with its checkpoint in ``folder``, stopped after ``stop_after`` epochs or
    at ``stop_at`` epochs done (a fraction: within an epoch; None: to the end), with distill.ema,
    neighbour partners and pruning as a build may; its weights and history. ``resumed`` gets where
    each take-up went on from, ``taken`` its distill.Resume."""
    from tinyface.train import prune

    x, t = _fit_data(n)
    distill.seed_everything(1)
    model, _ = build_student("dsnet", (24, 24, 1), 16, 0.5)
    if pruning:
        model = prune.wrap_for_pruning(model, 0.5, 0, 2 * n // 16)

    def on_epoch(epoch, logs):
        if stop_after is not None and epoch + 1 == stop_after:
            raise Stopped()

    def on_progress(done):
        if stop_at is not None and done >= stop_at:
            raise Stopped()

    pairs = distill.nearest_partners(t, np.arange(len(t)), 2) if partners else None
    result = distill.fit(model, x, t, x[:8], t[:8], epochs, 16, 1e-2,
                         distill.make_loss(distill.LossWeights(), paired=partners), seed=1, warmup_epochs=1,
                         ema=ema, partners=pairs, on_epoch=on_epoch, on_progress=on_progress,
                         callbacks=prune.pruning_callbacks() if pruning else (),
                         checkpoint=distill.Checkpoint(folder, key, every_s=every_s, on_resume=lambda r, n: (
                             resumed is not None and resumed.append((r.epochs_done, r.batches_done, n)),
                             taken is not None and taken.append(r))))
    return model.get_weights(), result.history


@pytest.mark.parametrize("ema, partners", [(0.0, False), (0.9, False), (0.0, True)])
def test_a_fit_stopped_after_an_epoch_goes_on_to_the_weights_of_one_never_stopped(tmp_path, ema, partners):
    # was: a build stopped in its distillation (Ctrl-C, kill) trained every epoch again: 23 of the
    # esp32 preset's 25 minutes. Each epoch's state is saved; the next fit takes it up, and draws the
    # seeds of the epochs done first, so the weights are bit for bit those of a fit never stopped
    whole, whole_history = _fit_with_checkpoint(tmp_path / "whole", ema=ema, partners=partners)
    with pytest.raises(Stopped):
        _fit_with_checkpoint(tmp_path / "run", stop_after=2, ema=ema, partners=partners)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["epoch-0002"]
    resumed = []
    again, history = _fit_with_checkpoint(tmp_path / "run", ema=ema, partners=partners, resumed=resumed)
    assert resumed == [(2, 0, 3)]
    assert all(np.array_equal(u, v) for u, v in zip(whole, again, strict=True))
    assert history == whole_history and len(history["loss"]) == 3
    # stopped after its last epoch (before the stage saved its model): no epoch to train, the same end
    resumed = []
    last, history = _fit_with_checkpoint(tmp_path / "whole", ema=ema, partners=partners, resumed=resumed)
    assert resumed == [(3, 0, 3)] and history == whole_history
    assert all(np.array_equal(u, v) for u, v in zip(whole, last, strict=True))


@pytest.mark.parametrize("ema, partners, pruning", [(0.0, False, False), (0.9, True, False), (0.0, False, True)])
def test_a_fit_stopped_within_an_epoch_goes_on_to_the_weights_and_history_of_one_never_stopped(
        tmp_path, ema, partners, pruning):
    # was: only whole epochs were saved, and an esp32s3 epoch takes 8 minutes. Saved within one too,
    # the fit taken up leaves out the batches done of the epoch's data and goes on with its running
    # loss: the weights, pruning masks and the epoch's mean loss are those of a fit never stopped
    kw = dict(ema=ema, partners=partners, pruning=pruning, n=96)  # 6 batches an epoch
    whole, whole_history = _fit_with_checkpoint(tmp_path / "whole", every_s=math.inf, **kw)
    with pytest.raises(Stopped):
        _fit_with_checkpoint(tmp_path / "run", stop_at=1.5, every_s=0, **kw)  # stopped after batch 3 of epoch 2
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["epoch-0001-batch-000003"]
    trained = json.loads((tmp_path / "run" / "epoch-0001-batch-000003" / "progress.json").read_text())["seconds"]
    resumed, taken = [], []
    again, history = _fit_with_checkpoint(tmp_path / "run", every_s=0, resumed=resumed, taken=taken, **kw)
    assert resumed == [(1, 3, 3)] and 0 < taken[0].seconds == trained  # what the stage's time adds
    assert all(np.array_equal(u, v) for u, v in zip(whole, again, strict=True))
    assert history == whole_history and len(history["loss"]) == 3
    if ema or partners or pruning:
        return
    # a save leaves two batches to go at least: stopped at the end of batch 5 of 6, batch 4 was the last saved
    with pytest.raises(Stopped):
        _fit_with_checkpoint(tmp_path / "late", stop_at=5 / 6, every_s=0, **kw)
    assert [p.name for p in (tmp_path / "late").iterdir()] == ["epoch-0000-batch-000004"]
    resumed = []
    again, history = _fit_with_checkpoint(tmp_path / "late", every_s=math.inf, resumed=resumed, **kw)
    assert resumed == [(0, 4, 3)] and history == whole_history
    assert all(np.array_equal(u, v) for u, v in zip(whole, again, strict=True))


def test_a_checkpoint_of_other_training_is_not_taken_up(tmp_path):
    with pytest.raises(Stopped):
        _fit_with_checkpoint(tmp_path / "run", stop_after=1, key="other settings")
    resumed = []
    _, history = _fit_with_checkpoint(tmp_path / "run", resumed=resumed)
    assert resumed == [] and len(history["loss"]) == 3
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["epoch-0003"]


def test_a_checkpoint_that_cannot_be_saved_stops_the_fit_in_one_line_keeping_the_epochs_saved(tmp_path, monkeypatch):
    import errno

    from tinyface import fsutil
    from tinyface.errors import OutputError

    real = fsutil.write_json
    calls = []

    def full_after_one(path, obj):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(fsutil, "write_json", full_after_one)
    with pytest.raises(OutputError) as exc:
        _fit_with_checkpoint(tmp_path / "run")
    assert exc.value.one_line() == (f"cannot save epoch 2 of the training in {tmp_path / 'run'}: No space left "
                                    "on device (free some space and run the build again: it goes on from the "
                                    "last state saved)")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["epoch-0001"]


def _train_from(seed, ema):
    x, t = _fit_data()
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


def test_weight_averaging_measures_the_batch_norm_statistics_again():
    """The averaged weights get batch-norm statistics of their own: each layer's moving mean and
    variance are its input's over the training crops (a mismatch cost 10 points of validation
    pairs in run EM1)."""
    import tf_keras as keras

    x, t = _fit_data()
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


# --- relit faces --------------------------------------------------------------------------------------
# distill.light_augment (relight): badly lit faces from well-lit ones, in the training pipeline.

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


# --- neighbour batches --------------------------------------------------------------------------------
# distill.neighbours: each anchor's nearest original faces, batches of anchors then partners, and the
# relation loss over those pairs.

def test_partners_are_the_nearest_originals_and_never_the_face_itself():
    t = unit_targets()
    pool = np.arange(0, 40, 2)  # every other row is an original
    t[1] = l2_normalize(t[4] + 0.05 * t[1])  # row 1 (not an original) looks like original 4
    partners = distill.nearest_partners(t, pool, 3, chunk=7)
    assert partners.shape == (40, 3) and partners.dtype == np.int32
    assert set(partners.ravel()) <= set(pool.tolist())
    assert all(i not in partners[i] for i in range(40))
    assert 4 in partners[1]
    sims = t @ t[pool].T
    for i in range(40):
        expected = {int(pool[j]) for j in np.argsort(-np.where(pool == i, -2, sims[i]))[:3]}
        assert set(partners[i].tolist()) == expected


def test_partners_need_more_originals_than_asked_for():
    with pytest.raises(ValueError, match="3 faces"):
        distill.nearest_partners(unit_targets(), np.arange(3), 3)


def test_paired_batches_hold_anchors_then_one_of_their_partners():
    n, k, batch = 40, 3, 8
    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(4, 1).repeat(4, 2)  # crop i is filled with i
    t = unit_targets(n)
    partners = distill.nearest_partners(t, np.arange(n), k)
    ds = distill.make_dataset(x, t, batch, False, seed=3, shuffle=True, partners=partners)
    batches = list(ds)
    assert len(batches) == n // batch  # as many steps as random batches
    seen = set()
    for crops, targets in batches:
        rows = np.rint(crops.numpy()[:, 0, 0, 0] * 128 + 128).astype(int)
        anchors, mates = rows[:batch // 2], rows[batch // 2:]
        assert all(m in partners[a] for a, m in zip(anchors, mates, strict=True))
        assert np.allclose(targets.numpy(), t[rows])
        seen |= set(anchors.tolist())
    assert len(seen) == n // 2  # distinct anchors, half the faces an epoch
    again = [c.numpy() for c, _ in distill.make_dataset(x, t, batch, False, seed=3, shuffle=True, partners=partners)]
    assert all(np.array_equal(a, b[0].numpy()) for a, b in zip(again, batches, strict=True))  # seeded


def test_paired_loss_adds_the_pairs_relation_term():
    rng = np.random.default_rng(2)
    t, s = unit_targets(8, 1), l2_normalize(rng.normal(size=(8, 128)).astype(np.float32))
    w = distill.LossWeights(cosine=1.0, relation=0.5)
    plain = float(distill.make_loss(w)(t, s))
    paired = float(distill.make_loss(w, paired=True)(t, s))
    pair_term = np.mean((np.sum(s[:4] * s[4:], 1) - np.sum(t[:4] * t[4:], 1)) ** 2)
    assert paired == pytest.approx(plain + 0.5 * pair_term, rel=1e-5)
    assert float(distill.make_loss(w, paired=True)(t, t)) == pytest.approx(0.0, abs=1e-6)
