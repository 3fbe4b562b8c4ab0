"""Distillation: train the student to reproduce the teacher's embeddings.

Loss on L2-normalised embeddings s (student) and t (teacher), per batch:
- cosine: mean(1 - <s, t>), the direct target;
- relation: mean((S S^T - T T^T)^2), the batch's pairwise similarities — verification
  only cares about these, so the student is asked to keep the teacher's geometry;
- pairs (with ``distill.neighbours``): the same squared difference over each batch's
  anchor-partner pairs. Random batches of 128 almost never hold two photos of one person or
  two look-alikes, the pairs a verification threshold has to separate; with neighbours, half
  of every batch are random training faces and the other half one of each one's nearest
  faces by the teacher (tinyface.train.distill.nearest_partners), so these pairs are in the
  batch and weigh as much as all the random ones;
- identity KD (Hinton, optional, ``alpha`` > 0): the teacher's soft identity
  distribution, softmax(<t, c_k> / T) over per-identity centroids c_k of teacher
  embeddings, matched by the student's softmax(<s, c_k> / T); weighted alpha vs (1 - alpha)
  for the embedding terms, scaled by T^2.

Targets are *centered* teacher embeddings, l2n(t - mean(t_train)): dlib's embeddings
share a large common component (the mean has norm 0.91; random pairs sit at cosine 0.84),
so without centering a student scores a low loss by outputting the mean and learns little
about identity (measured: 64% validation accuracy without, see docs/model.md).

Augmentation (training only): horizontal flip, shifts of up to 8% and rotations of up to
8 degrees, brightness and contrast. The teacher target is the embedding of the original
crop: these changes are ones a face embedding should be invariant to. With teacher views
(``distill.teacher_views``) the geometric changes come from the views instead, each with
the teacher's embedding of that very view, and only brightness and contrast are added on
the fly ("consistent teaching", Beyer et al. 2022).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyface.model.embedder import PIXEL_MAX, PIXEL_OFFSET, PIXEL_SCALE, normalize
from tinyface.vectors import l2_normalize


@dataclass
class LossWeights:
    cosine: float = 1.0
    relation: float = 1.0
    alpha: float = 0.0
    temperature: float = 4.0


IDENTITY_SCALE = 30.0  # CosFace's scale of the identity term's cosines


def make_loss(weights: LossWeights, centroids: np.ndarray | None = None, paired: bool = False,
              people: np.ndarray | None = None, identity_weight: float = 0.0, identity_margin: float = 0.2):
    """The distillation loss as a Keras loss ``(y_true=teacher, y_pred=student)``.

    ``paired``: the batches are anchors then their partners (make_dataset with ``partners``);
    the relation term also runs over those pairs alone (weighted by ``weights.relation``).
    ``people`` (P, D) with ``identity_weight`` > 0: the identity term (training_identities);
    y_true then carries each row's person index (-1: none) as one more column.
    """
    import tensorflow as tf

    c = tf.constant(centroids, tf.float32) if centroids is not None and weights.alpha > 0 else None
    identity = people is not None and identity_weight > 0 and len(people) > 0
    p = tf.constant(people, tf.float32) if identity else None

    def loss(y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        if not identity:
            return _distill_terms(y_true, y_pred)
        who = tf.cast(y_true[:, -1], tf.int32)
        s = tf.math.l2_normalize(tf.cast(y_pred, tf.float32), axis=1)
        return _distill_terms(y_true[:, :-1], y_pred) + identity_weight * _identity_term(s, who, p, identity_margin)

    def _distill_terms(y_true, y_pred):
        t = tf.math.l2_normalize(tf.cast(y_true, tf.float32), axis=1)
        s = tf.math.l2_normalize(tf.cast(y_pred, tf.float32), axis=1)
        cos = tf.reduce_mean(1.0 - tf.reduce_sum(s * t, axis=1))
        rel = tf.reduce_mean(tf.square(tf.matmul(s, s, transpose_b=True) - tf.matmul(t, t, transpose_b=True)))
        embed = weights.cosine * cos + weights.relation * rel
        if paired:
            h = tf.shape(s)[0] // 2
            pair_s = tf.reduce_sum(s[:h] * s[h:2 * h], axis=1)
            pair_t = tf.reduce_sum(t[:h] * t[h:2 * h], axis=1)
            embed += weights.relation * tf.reduce_mean(tf.square(pair_s - pair_t))
        if c is None:
            return embed
        temp = weights.temperature
        p_teacher = tf.nn.softmax(tf.matmul(t, c, transpose_b=True) / temp)
        log_p_student = tf.nn.log_softmax(tf.matmul(s, c, transpose_b=True) / temp)
        kd = tf.reduce_mean(tf.reduce_sum(p_teacher * (tf.math.log(p_teacher + 1e-9) - log_p_student), axis=1))
        return (1.0 - weights.alpha) * embed + weights.alpha * kd * temp * temp

    return loss


def _identity_term(s, who, people, margin: float):
    """CosFace over fixed person centroids, averaged over the rows that have a person (0 if none)."""
    import tensorflow as tf

    has = who >= 0
    s, who = tf.boolean_mask(s, has), tf.boolean_mask(who, has)
    cos = tf.matmul(s, people, transpose_b=True)
    logits = IDENTITY_SCALE * (cos - margin * tf.one_hot(who, tf.shape(people)[0]))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=who, logits=logits)
    return tf.math.divide_no_nan(tf.reduce_sum(ce), tf.cast(tf.size(who), tf.float32))


def teacher_center(teacher_train: np.ndarray) -> np.ndarray:
    """The mean training-set teacher embedding (what every target has in common)."""
    return np.asarray(teacher_train, np.float64).mean(axis=0).astype(np.float32)


def center_targets(teacher: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Teacher embeddings minus the common component, L2-normalised: the student's targets."""
    t = np.asarray(teacher, np.float32) - center
    return l2_normalize(t)


def smooth_targets(targets: np.ndarray, labels: list[str], beta: float) -> np.ndarray:
    """Pull each target toward its identity's centroid: l2n((1 - beta) t + beta c). People
    with one image keep their own target. Less per-photo noise for the student to imitate."""
    if beta <= 0:
        return targets
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        groups.setdefault(name, []).append(i)
    out = np.array(targets, np.float32)
    for idx in groups.values():
        if len(idx) > 1:
            c = out[idx].mean(axis=0)
            out[idx] = (1 - beta) * out[idx] + beta * l2_normalize(c)
    return l2_normalize(out)


def identity_centroids(teacher: np.ndarray, labels: list[str], min_images: int = 2) -> np.ndarray:
    """L2-normalised mean teacher embedding of every identity with >= ``min_images`` images."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        groups.setdefault(name, []).append(i)
    cents = [teacher[idx].mean(axis=0) for idx in groups.values() if len(idx) >= min_images]
    cents = np.array(cents, np.float32)
    return l2_normalize(cents)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (weight initialisation) so a re-run trains the same model."""
    import tf_keras as keras

    keras.utils.set_random_seed(int(seed))


def nearest_partners(targets: np.ndarray, pool: np.ndarray, k: int, chunk: int = 2048,
                     progress=None) -> np.ndarray:
    """For every row of ``targets`` (L2-normalised teacher targets), the row indices of its ``k``
    nearest rows among ``pool`` (row indices: the original images, not their views or mixes) by
    cosine; the row itself and exact copies (cosine > 0.999) are left out. (N, k) int32.
    ``progress(n)`` is called with the rows done after every chunk.

    Raises:
        ValueError: the pool holds no more than ``k`` rows.
    """
    pool = np.asarray(pool, np.int64)
    if len(pool) <= k:
        raise ValueError(f"{len(pool)} faces to draw partners from, {k} asked for each")
    candidates = np.ascontiguousarray(targets[pool], np.float32)
    out = np.empty((len(targets), k), np.int32)
    for start in range(0, len(targets), chunk):
        sims = np.asarray(targets[start:start + chunk], np.float32) @ candidates.T
        sims[sims > 0.999] = -2.0
        out[start:start + chunk] = pool[np.argpartition(sims, -k, axis=1)[:, -k:]]
        if progress:
            progress(len(sims))
    return out


def make_dataset(x_uint8: np.ndarray, targets: np.ndarray, batch_size: int, augment: bool | str, seed: int,
                 shuffle: bool, partners: np.ndarray | None = None, light: float = 0.0, skip=None):
    """A tf.data pipeline: uint8 crops -> [-1, 1) floats (augmented), teacher targets.

    Reproducible for a given ``seed``: the shuffle is seeded, and every batch's augmentation is
    drawn by stateless random ops from its own seed, taken from a seeded random stream that
    is zipped with the batches (stateful random ops in a parallel map would race).

    ``partners`` (training only; (N, K) row indices, see nearest_partners): every batch is
    ``batch_size // 2`` shuffled anchors followed by one of each anchor's K partners, drawn
    from the batch's seed; an epoch has as many batches as without partners.

    ``light`` (with ``augment``): the share of samples badly lit (see relight).

    ``skip`` (training only; a tf.Variable, int64): an iterator leaves out the first ``skip`` batches
    it would give, read as it goes, so setting it to 0 after the first epoch gives whole epochs
    again; the batches it gives are the very ones an iterator without it gives in those places.
    The dataset still counts whole epochs (Keras, told to start at batch ``skip``, asks for the
    rest only). A fit taken up in the middle of an epoch goes on so (:class:`Checkpoint`).

    Autotuning is off (``untuned``): with it, every epoch's end waited up to a minute.
    """
    import tensorflow as tf

    if partners is not None and shuffle:
        ds = _paired_batches(x_uint8, targets, partners, batch_size, seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x_uint8, targets.astype(np.float32)))
        if shuffle:
            ds = ds.shuffle(len(x_uint8), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=shuffle)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)))
    if skip is not None:  # before the augmentation: batches left out cost only their draw
        batches = ds.cardinality()
        ds = (ds.enumerate().filter(lambda i, element: i >= skip).map(lambda i, element: element)
              .apply(tf.data.experimental.assert_cardinality(batches)))

    size = x_uint8.shape[1]

    def prep(batch, batch_seed):
        x, t = batch
        x = (tf.cast(x, tf.float32) - PIXEL_OFFSET) / PIXEL_SCALE  # embedder.normalize, in TensorFlow
        if augment:
            x = _augment(x, size, batch_seed, geometric=augment != "photometric", light=light)
        return x, t

    return untuned(ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def untuned(ds):
    """``ds`` with tf.data's autotuning off. Its optimisation thread (one per iterator) sleeps on a
    timer that doubles up to a minute between rounds, and an ending iterator is not freed before
    that thread wakes: with autotuning, an epoch of a long fit ended in a wait of 0 to 60 s (up to
    40 s after the build's QAT epoch; docs/model.md, "Epochs no longer wait for tf.data"). Without
    it, a parallel map asked for ``tf.data.AUTOTUNE`` runs on the smaller of 16 and the schedulable
    cores; the batches are the same (the map keeps its order)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _paired_batches(x_uint8: np.ndarray, targets: np.ndarray, partners: np.ndarray, batch_size: int, seed: int):
    """``((crops, targets), batch_seed)`` batches of anchors then their partners (make_dataset)."""
    import tensorflow as tf

    n, half, k = len(x_uint8), batch_size // 2, partners.shape[1]
    x_all = tf.constant(x_uint8)
    t_all = tf.constant(targets.astype(np.float32))
    p_all = tf.constant(partners.astype(np.int64))
    anchors = (tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
               .batch(half, drop_remainder=True).take(max(1, n // batch_size)))
    ds = tf.data.Dataset.zip((anchors, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)))

    def gather(a, batch_seed):
        pick = tf.random.stateless_uniform([tf.shape(a)[0]], tf.stack([batch_seed, tf.constant(6, tf.int64)]),
                                           0, k, dtype=tf.int64)
        rows = tf.concat([a, tf.gather(tf.gather(p_all, a), pick, batch_dims=1)], 0)
        return (tf.gather(x_all, rows), tf.gather(t_all, rows)), batch_seed

    return ds.map(gather)


def _uniform(shape, low, high, batch_seed, k: int):
    """The ``k``-th independent uniform draw of a batch, from the batch's seed."""
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, tf.stack([batch_seed, tf.constant(k, tf.int64)]), low, high)


def _augment(x, size, batch_seed, geometric: bool = True, light: float = 0.0):
    import tensorflow as tf

    n = tf.shape(x)[0]
    if geometric:
        x = _geometric(x, size, batch_seed)
    if light > 0:
        x = relight(x, size, batch_seed, light)
    brightness = _uniform([n, 1, 1, 1], -0.15, 0.15, batch_seed, 0)
    contrast = _uniform([n, 1, 1, 1], 0.75, 1.25, batch_seed, 1)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * contrast + mean + brightness
    return tf.clip_by_value(x, -1.0, PIXEL_MAX)


def relight(x, size, batch_seed, share: float):
    """Badly lit faces from well-lit ones (``x``: a batch in [-1, 1)): a ``share / 2`` of the
    samples very dark, a ``share / 2`` lit from one side, the rest untouched.

    Very dark, as the pipeline delivers such a face (tinyface.data.align.brighten): gain 0.08-0.35
    and gamma 1.4-2.4 crush the light, sensor noise of 0.2-1 grey levels (a photo's noise,
    smoothed and averaged down to the crop), rounding to the few grey levels left, then one gain
    that brings the brightest pixel to 0.8-1.0 (brighten's gain: the noise and the steps come up
    with the face). Side light: brightness falls along a
    random direction across the crop to 0.1-0.6 of the lit side, gamma 1.0-1.6 (the pipeline
    does not correct it). Draws come from the batch's seed, as every augmentation's do.
    """
    import tensorflow as tf

    shape = tf.shape(x)
    n = shape[0]
    v = (x + 1.0) / 2.0
    pick = _uniform([n, 1, 1, 1], 0.0, 1.0, batch_seed, 10)
    noise = tf.random.stateless_normal(shape, tf.stack([batch_seed, tf.constant(11, tf.int64)]))
    # very dark, then brightened
    gain = _uniform([n, 1, 1, 1], 0.08, 0.35, batch_seed, 12)
    gamma = _uniform([n, 1, 1, 1], 1.4, 2.4, batch_seed, 13)
    sigma = _uniform([n, 1, 1, 1], 0.2, 1.0, batch_seed, 14)
    levels = tf.clip_by_value(tf.round(255.0 * gain * tf.pow(v, gamma) + sigma * noise), 0.0, 255.0)
    top = _uniform([n, 1, 1, 1], 0.8, 1.0, batch_seed, 15)
    dark = levels * top / tf.maximum(tf.reduce_max(levels, axis=[1, 2, 3], keepdims=True), 1.0)
    # light from one side
    angle = _uniform([n, 1, 1, 1], 0.0, 2.0 * math.pi, batch_seed, 16)
    floor = _uniform([n, 1, 1, 1], 0.1, 0.6, batch_seed, 17)
    side_gamma = _uniform([n, 1, 1, 1], 1.0, 1.6, batch_seed, 18)
    grid = (tf.range(size, dtype=tf.float32) - (size - 1) / 2.0) / size  # -0.5 .. 0.5
    along = tf.cos(angle) * grid[None, None, :, None] + tf.sin(angle) * grid[None, :, None, None]
    ramp = 1.0 - (1.0 - floor) * tf.clip_by_value(along + 0.5, 0.0, 1.0)
    side = tf.clip_by_value(tf.pow(v * ramp, side_gamma) + 0.5 / 255.0 * sigma * noise, 0.0, 1.0)
    out = tf.where(pick < share / 2, dark, tf.where(pick < share, side, v))
    return out * 2.0 - 1.0


def _geometric(x, size, batch_seed):
    import tensorflow as tf

    n = tf.shape(x)[0]
    flip = _uniform([n, 1, 1, 1], 0.0, 1.0, batch_seed, 2) < 0.5
    x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    # random similarity transform: rotation +-8 deg, shift +-8%, scale 0.95..1.05
    angle = _uniform([n], -8.0, 8.0, batch_seed, 3) * math.pi / 180.0
    scale = _uniform([n], 0.95, 1.05, batch_seed, 4)
    shift = _uniform([n, 2], -0.08, 0.08, batch_seed, 5) * size
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    c = (size - 1) / 2.0
    # output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2)
    a2 = c - cos * c + sin * c + shift[:, 0]
    b2 = c - sin * c - cos * c + shift[:, 1]
    zeros = tf.zeros([n])
    transforms = tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=transforms, output_shape=[size, size],
                                                 interpolation="BILINEAR", fill_mode="REFLECT", fill_value=0.0)


@dataclass
class TrainResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs: int = 0


def fit(model, x_train, t_train, x_val, t_val, epochs: int, batch_size: int, learning_rate: float, loss,
        augment: bool | str = True, seed: int = 0, callbacks=(), on_epoch=None, warmup_epochs: int = 1,
        on_progress=None, partners: np.ndarray | None = None, light: float = 0.0,
        ema: float = 0.0, checkpoint: Checkpoint | None = None) -> TrainResult:
    """Train ``model`` (embedding output) on teacher targets with cosine-decayed Adam.

    ``ema`` > 0 ends with the exponential moving average of the trainable weights (momentum
    ``ema`` a step) instead of the last step's; the validation loss of every epoch is the
    last step's weights'.

    ``on_epoch(epoch, logs)`` is called after every epoch, ``on_progress(epochs)`` after every
    batch with the epochs done so far as a float (progress display: an epoch can take minutes).

    ``checkpoint``: the weights and optimizer state are saved there after every epoch (before
    ``on_epoch``, which may end the run) and within an epoch every ``checkpoint.every_s``, and a
    fit that finds what an earlier fit of the same training saved there goes on from it, to the
    same weights and history as a fit never stopped (:class:`Checkpoint`).
    """
    import tensorflow as tf
    import tf_keras as keras

    steps = max(1, len(x_train) // batch_size)
    total = steps * epochs
    warm = min(total // 2, steps * warmup_epochs)
    decay = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total - warm), alpha=0.01)

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm_lr = learning_rate * (step + 1) / max(1, warm)
            return tf.where(step < warm, warm_lr, decay(step - warm))

        def get_config(self):
            return {}

    seed_everything(seed)
    optimizer = (keras.optimizers.Adam(Schedule(), use_ema=True, ema_momentum=ema) if ema > 0
                 else keras.optimizers.Adam(Schedule()))
    model.compile(optimizer=optimizer, loss=loss)
    cbs = list(callbacks)
    start = Resume()
    if checkpoint is not None:
        start = checkpoint.restore(model, optimizer, epochs, steps)
    skip = tf.Variable(start.batches_done, dtype=tf.int64, trainable=False) if start.batches_done else None
    train = make_dataset(x_train, t_train, batch_size, augment, seed, shuffle=True, partners=partners, light=light,
                         skip=skip)
    val = make_dataset(x_val, t_val, 256, False, seed, shuffle=False) if x_val is not None and len(x_val) else None
    done = start.epochs_done
    if checkpoint is not None:
        for _ in range(done):  # each epoch's iterator draws its shuffle and augmentation seeds: those done drew theirs
            iter(train)
        if skip is not None:
            cbs.append(_go_on_in_epoch(model, skip, start.metrics))
        # after the caller's callbacks (pruning masks the weights at an epoch's end), before on_epoch (which may
        # stop the run)
        cbs.append(checkpoint.saver(model, optimizer, epochs, steps, start))
    if on_epoch:
        cbs.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, logs)))
    if on_progress:
        current = {"epoch": 0}
        cbs.append(keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda e, logs: current.update(epoch=e),
            on_train_batch_end=lambda b, logs: on_progress(current["epoch"] + (b + 1) / steps)))
    # Keras starts the epoch taken up at the batch after those saved (its hook for a fault-tolerant fit)
    model._training_state = _StartAt(done, start.batches_done) if skip is not None else None
    try:
        hist = model.fit(train, validation_data=val, epochs=epochs, initial_epoch=done, verbose=0, callbacks=cbs)
    finally:
        model._training_state = None
    if ema > 0:  # the averaged weights with the last step's batch-norm statistics would not match
        recalibrate_batch_norm(model, x_train, seed)
    history = {k: [float(v) for v in vals] for k, vals in start.history.items()}
    for k, vals in hist.history.items():
        history[k] = history.get(k, []) + [float(v) for v in vals]
    return TrainResult(history, epochs)


@dataclass
class Resume:
    """Where a fit goes on from (:meth:`Checkpoint.restore`): the epochs done, then the batches
    done of the next (0: it starts at a whole epoch), the history of the epochs done, the
    running loss metrics of the epoch taken up (``{name: [variable values]}``) and the seconds
    the earlier runs trained for what they saved."""
    epochs_done: int = 0
    batches_done: int = 0
    steps: int = 0
    history: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def of(cls, progress: dict) -> Resume:
        """Where a state saved (its progress.json, as :meth:`Checkpoint.latest` found it) goes on from."""
        seconds = progress.get("seconds")
        return cls(int(progress["epochs_done"]), int(progress.get("batches_done", 0)), int(progress.get("steps", 0)),
                   progress.get("history") or {}, progress.get("metrics") or {},
                   float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else 0.0)


class _StartAt:
    """What Keras's fit asks, as a fault-tolerant fit's state, for the epoch and batch to start at."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def maybe_load_initial_counters_from_ckpt(self, steps_per_epoch, initial_epoch, mode=None):
        return self.epoch, self.batch


def _loss_metrics(model) -> dict:
    """The running metrics of the epoch so far (the mean loss: its total and count)."""
    return {m.name: [float(v.numpy()) for v in m.variables] for m in model.metrics}


def _go_on_in_epoch(model, skip, metrics: dict):
    """The callback of a fit taken up in the middle of an epoch: after its first batch, the
    epoch's running loss goes on from the one saved (Keras starts every fit at 0, and its
    metrics exist once a batch has run); after the epoch, the data give whole epochs again."""
    import tensorflow as tf
    import tf_keras as keras

    state = {"first": True}

    def batch_end(batch, logs):
        if state["first"]:
            state["first"] = False
            for m in model.metrics:
                for v, saved in zip(m.variables, metrics.get(m.name, ()), strict=True):
                    v.assign_add(tf.constant(saved, v.dtype))  # as the batch's own update added to the total saved

    return keras.callbacks.LambdaCallback(on_train_batch_end=batch_end,
                                          on_epoch_end=lambda epoch, logs: skip.assign(0))


class Checkpoint:
    """Where a fit saves its state, so that a run stopped (Ctrl-C, kill -9, a power cut) goes on
    from where it was: after every epoch, and within an epoch every ``every_s`` seconds (an
    ``esp32s3`` epoch takes minutes). ``folder/epoch-NNNN/`` (NNNN epochs done) or
    ``folder/epoch-NNNN-batch-BBBBBB/`` (and BBBBBB batches of the next) holds the model's weights
    and the optimizer's state (its step, moments and averages: tf.train.Checkpoint) and
    ``progress.json`` (where it is, the history so far, the epoch's running loss, the seconds of
    training it holds and ``key``);
    each is written under a temporary name and renamed when complete, and the older ones are then
    removed. ``key`` names the training (the stage's fingerprint): a state of other training is
    never taken up. The data's order and each batch's augmentation come from seeds each epoch's
    iterator draws in turn, so a fit that goes on draws those of the epochs done first, and in an
    epoch taken up leaves out the batches done (:func:`fit`): the weights it ends with are those
    of a fit never stopped. A save within an epoch leaves at least two of its batches to go
    (the epoch's running loss is taken up after the first of them).

    ``on_resume(resume, epochs)`` is called when what an earlier fit saved is taken up
    (:class:`Resume`).
    """

    PREFIX = "epoch-"
    EVERY_S = 60.0  # a save costs 58 ms (esp32) to 80 ms (esp32s3): benchmarks/checkpoint_cost.py

    def __init__(self, folder: Path, key: str, on_resume=None, every_s: float | None = None):
        self.folder, self.key, self.on_resume = Path(folder), key, on_resume
        self.every_s = self.EVERY_S if every_s is None else every_s  # math.inf: whole epochs only

    def latest(self) -> tuple[Path, dict] | None:
        """The last complete state saved for this training (its folder and progress.json)."""
        import json

        found = sorted(self.folder.glob(f"{self.PREFIX}[0-9]*")) if self.folder.is_dir() else []
        for path in reversed(found):
            try:
                progress = json.loads((path / "progress.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(progress, dict) and progress.get("key") == self.key \
                    and isinstance(progress.get("epochs_done"), int) \
                    and isinstance(progress.get("batches_done", 0), int):
                return path, progress
        return None

    def restore(self, model, optimizer, epochs: int, steps: int) -> Resume:
        """Load the last state saved into ``model`` and ``optimizer``, and say where the fit goes
        on (a fresh :class:`Resume` when there is none of this training of ``epochs`` epochs of
        ``steps`` batches: anything else in the folder is removed)."""
        import tensorflow as tf

        found = self.latest()
        if found is None or not self._fits(found[1], epochs, steps):
            self.clear()
            return Resume()
        path, progress = found
        optimizer.build(model.trainable_variables)  # its slots exist, to be read into
        try:
            saved = tf.train.Checkpoint(model=model, optimizer=optimizer).read(str(path / "state"))
            saved.assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError):  # damaged, or of another model: start over
            self.clear()
            return Resume()
        resume = Resume.of(progress)
        if self.on_resume:
            self.on_resume(resume, epochs)
        return resume

    @staticmethod
    def _fits(progress: dict, epochs: int, steps: int) -> bool:
        done, batches = progress["epochs_done"], progress.get("batches_done", 0)
        if progress.get("epochs") != epochs:
            return False
        if batches == 0:  # a whole epoch (saved before batches were, too)
            return 0 < done <= epochs
        return progress.get("steps") == steps and 0 <= done < epochs and 0 < batches <= steps - 2 \
            and isinstance(progress.get("metrics"), dict)

    def saver(self, model, optimizer, epochs: int, steps: int, earlier: Resume):
        """The Keras callback that saves after every epoch and every ``every_s`` within one (after
        what ``earlier`` took up: its history, and its seconds, to which each save adds this fit's)."""
        import time

        import tf_keras as keras

        history = {k: list(v) for k, v in earlier.history.items()}
        state = self
        started = time.monotonic()
        clock = {"epoch": 0, "last": started}

        def seconds() -> float:
            return earlier.seconds + time.monotonic() - started

        class Save(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock["epoch"] = epoch

            def on_train_batch_end(self, batch, logs=None):
                if batch + 2 >= steps or time.monotonic() - clock["last"] < state.every_s:
                    return
                state.save(model, optimizer, clock["epoch"], epochs, history, batches=batch + 1, steps=steps,
                           metrics=_loss_metrics(model), seconds=seconds())
                clock["last"] = time.monotonic()

            def on_epoch_end(self, epoch, logs=None):
                for k, v in (logs or {}).items():
                    history.setdefault(k, []).append(float(v))
                state.save(model, optimizer, epoch + 1, epochs, history, seconds=seconds())
                clock["last"] = time.monotonic()

        return Save()

    def save(self, model, optimizer, done: int, epochs: int, history: dict, batches: int = 0, steps: int = 0,
             metrics: dict | None = None, seconds: float = 0.0) -> None:
        """Save the state after ``done`` epochs and ``batches`` of the next (of ``steps``), which
        took ``seconds`` of training (this run's and the earlier runs' it took up)."""
        import shutil

        import tensorflow as tf

        from tinyface.errors import OutputError
        from tinyface.fsutil import write_json

        final = self.folder / (f"{self.PREFIX}{done:04d}" + (f"-batch-{batches:06d}" if batches else ""))
        tmp = self.folder / f".{final.name}.tmp"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp / "state"))
            progress = {"key": self.key, "epochs_done": done, "epochs": epochs, "history": history,
                        "seconds": round(seconds, 3)}
            if batches:
                progress.update(batches_done=batches, steps=steps, metrics=metrics or {})
            write_json(tmp / "progress.json", progress)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        except (OSError, tf.errors.OpError) as exc:  # a full disk: said as one, the state saved before kept
            shutil.rmtree(tmp, ignore_errors=True)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else getattr(exc, "message", str(exc))
            what = f"batch {batches} of epoch {done + 1}" if batches else f"epoch {done}"
            raise OutputError(f"cannot save {what} of the training in {self.folder}: {why}",
                              hint="free some space and run the build again: it goes on from the last state "
                                   "saved") from None
        for older in self.folder.iterdir():
            if older != final:
                shutil.rmtree(older, ignore_errors=True)

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def scaled_sample(x_uint8: np.ndarray, seed: int, sample: int = 2048) -> np.ndarray:
    """A seeded sample of ``sample`` crops (in their order), scaled as make_dataset scales them."""
    rows = np.sort(np.random.default_rng(seed).choice(len(x_uint8), min(sample, len(x_uint8)), replace=False))
    return normalize(x_uint8[rows])


def recalibrate_batch_norm(model, x_uint8: np.ndarray, seed: int, sample: int = 2048, batch_size: int = 256) -> None:
    """Set every batch norm's moving mean and variance to the statistics of its input over a
    seeded sample of ``x_uint8`` crops (unaugmented, as make_dataset scales them), layer by layer
    in the network's order, so each layer sees its predecessors already recalibrated ("precise
    batch norm"). For weights that were not the last step's (``fit(ema=...)``)."""
    import tf_keras as keras

    if any(isinstance(layer, keras.Model) for layer in model.layers):
        raise ValueError("recalibrate_batch_norm: a model nested in the student is not walked")
    x = scaled_sample(x_uint8, seed, sample)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        inputs = keras.Model(model.inputs, layer.input).predict(x, batch_size=batch_size, verbose=0)
        axes = tuple(range(inputs.ndim - 1))
        gamma_beta = [w for w in layer.get_weights()[:-2]]
        layer.set_weights([*gamma_beta, inputs.mean(axes), inputs.var(axes)])


def _parts(data, center: np.ndarray, smoothing: float):
    """The training set's parts in row order: ``(crops, targets, identities, original)``, one
    identity (or None) per row; ``original``: the rows are photos, not views or mixes."""
    yield data.train.crops, smooth_targets(center_targets(data.train.teacher, center), data.train.labels,
                                           smoothing), list(data.train.labels), True
    if data.train_views is not None:
        view_crops, view_teacher = data.train_views
        v = view_crops.shape[1]
        labels = [label for label in data.train_views_labels for _ in range(v)]
        yield (view_crops.reshape(-1, *view_crops.shape[2:]),
               smooth_targets(center_targets(view_teacher.reshape(-1, view_teacher.shape[-1]), center), labels,
                              smoothing), labels, False)
    if data.train_mixes is not None:
        yield data.train_mixes[0], center_targets(data.train_mixes[1], center), [None] * len(data.train_mixes[0]), False
    if data.train_hard is not None:  # a hard photo's target: the teacher's embedding of the untouched one
        hard_crops, hard_teacher, hard_labels = data.train_hard
        v = hard_crops.shape[1]
        labels = [label for label in hard_labels for _ in range(v)]
        yield (hard_crops.reshape(-1, *hard_crops.shape[2:]),
               smooth_targets(center_targets(np.repeat(hard_teacher, v, axis=0), center), labels, smoothing), labels,
               False)
    extra = data.extra
    if extra is not None and len(extra.crops):  # the teacher's embedding is the whole target
        people = list(extra.identities) or [None] * len(extra.crops)
        yield extra.crops, center_targets(extra.teacher, center), people, True
        if extra.views is not None and len(extra.views[0]):
            crops, teacher = extra.views
            v = crops.shape[1]
            view_people = list(extra.view_identities) or [None] * len(crops)
            yield (crops.reshape(-1, *crops.shape[-3:]), center_targets(teacher.reshape(-1, teacher.shape[-1]), center),
                   [person for person in view_people for _ in range(v)], False)
        if extra.mixes is not None and len(extra.mixes[0]):
            crops, teacher = extra.mixes
            yield crops, center_targets(teacher, center), [None] * len(crops), False


def training_set(data, center: np.ndarray, smoothing: float = 0.0):
    """Training crops, centered targets, the augmentation mode and the rows that are original
    images (not views or mixes; nearest_partners draws from them): the training images, plus
    every teacher view, mix and hard view (relit, tight) when the build made them, plus the
    extra faces (and their views and mixes)."""
    xs, ts, originals = [], [], []
    augment = "photometric" if data.train_views is not None else True
    rows = 0
    for x, t, _, original in _parts(data, center, smoothing):
        if original:
            originals.append(rows + np.arange(len(x)))
        xs.append(x)
        ts.append(t)
        rows += len(x)
    originals = np.concatenate(originals)
    if len(xs) == 1:
        return xs[0], ts[0], augment, originals
    return np.concatenate(xs), np.concatenate(ts), augment, originals


def training_identities(data, targets: np.ndarray, min_images: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """For the identity term (distill.identity_weight): every training row's person as an index
    (-1: no person, or one with fewer than ``min_images`` original photos), and each person's
    centroid of ``targets`` (training_set's rows, views included), L2-normalised: (N,) int32,
    (P, D) float32."""
    names, originals = [], []
    for x, _, people, original in _parts(data, np.zeros(targets.shape[1], np.float32), 0.0):
        names.extend(people)
        originals.extend([original] * len(x))
    photos: dict[str, int] = {}
    for name, original in zip(names, originals, strict=True):
        if name is not None and original:
            photos[name] = photos.get(name, 0) + 1
    index = {name: i for i, name in enumerate(sorted(n for n, k in photos.items() if k >= min_images))}
    ids = np.array([index.get(name, -1) if name is not None else -1 for name in names], np.int32)
    sums = np.zeros((len(index), targets.shape[1]), np.float64)
    np.add.at(sums, ids[ids >= 0], targets[ids >= 0])
    return ids, l2_normalize(sums.astype(np.float32)) if len(index) else sums.astype(np.float32)
