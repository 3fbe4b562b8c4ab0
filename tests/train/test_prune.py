"""Pruning reaches its target sparsity on the pruned copy and leaves the float model untouched."""

import numpy as np

from tinyface.train import distill, prune
from tinyface.train.student import build_student


def test_pruning_a_copy_leaves_the_float_student_intact():
    model, _ = build_student("dsnet", (32, 32, 1), 16, 0.5)
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 1), dtype=np.uint8)
    t = distill.center_targets(rng.normal(size=(64, 16)).astype(np.float32), np.zeros(16, np.float32))
    wrapped = prune.wrap_for_pruning(model, 0.5, 0, 8)
    distill.fit(wrapped, x, t, None, None, 2, 8, 1e-3, distill.make_loss(distill.LossWeights()), augment=False,
                callbacks=prune.pruning_callbacks(), warmup_epochs=0)
    pruned = prune.strip(wrapped)
    sparsity = prune.sparsity_per_layer(pruned)
    assert sparsity and all(abs(s - 0.5) < 0.02 for s in sparsity.values()), sparsity
    unchanged = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert unchanged, "the float student was modified"
    assert max(prune.sparsity_per_layer(model).values()) < 0.05


def test_training_reports_the_epochs_done_after_every_batch():
    model, _ = build_student("dsnet", (32, 32, 1), 16, 0.5)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 1), dtype=np.uint8)
    t = distill.center_targets(rng.normal(size=(64, 16)).astype(np.float32), np.zeros(16, np.float32))
    seen = []
    distill.fit(model, x, t, None, None, 2, 16, 1e-3, distill.make_loss(distill.LossWeights()), augment=False,
                warmup_epochs=0, on_progress=seen.append)
    assert seen == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


def test_overall_sparsity_counts_each_weight_once():
    # was: the mean of the layers' shares, which counted a 16-weight layer as much as a 4,096-weight one
    import tf_keras as keras

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, use_bias=False),
                              keras.layers.Dense(1, use_bias=False)])
    big, small = model.layers
    big.set_weights([np.where(np.arange(64 * 64).reshape(64, 64) % 4 == 0, 0.0, 1.0).astype(np.float32)])
    small.set_weights([np.zeros((64, 1), np.float32)])
    per_layer = prune.sparsity_per_layer(model)
    assert sorted(per_layer.values()) == [0.25, 1.0]
    assert prune.overall_sparsity(model) == (1024 + 64) / (4096 + 64)
