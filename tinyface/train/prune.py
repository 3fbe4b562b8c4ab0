"""Magnitude pruning with tensorflow-model-optimization.

Dense TFLM kernels do not skip zeros: pruning buys a smaller *compressed* model (what an
OTA update or a compressed flash image would carry), not a faster or smaller-in-RAM one.
The report states both.
"""

from __future__ import annotations

import gzip

import numpy as np


def prunable(layer) -> bool:
    """Prune convolutions and dense layers; depthwise kernels are tiny and sensitive."""
    from tf_keras import layers

    return isinstance(layer, (layers.Conv2D, layers.Dense)) and not isinstance(layer, layers.DepthwiseConv2D)


def wrap_for_pruning(model, target_sparsity: float, begin_step: int, end_step: int):
    """A copy of ``model`` with prune_low_magnitude on prunable layers (polynomial decay 0 -> target).

    ``model`` itself is left untouched: tfmot's wrappers share the layers they wrap, so
    wrapping ``model`` directly would prune the float student in place (seen: the float
    and pruned stages reported identical metrics).
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    copy = keras.models.clone_model(model)  # fresh layers
    copy.set_weights(model.get_weights())
    model = copy

    # tfmot prunes only on steps where (step - begin) % frequency == 0: pick a frequency
    # that divides the schedule, so short runs (--quick) still reach the target
    frequency = max(1, min(20, (end_step - begin_step) // 5))
    end_step = begin_step + max(frequency, (end_step - begin_step) // frequency * frequency)
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=target_sparsity,
                                                    begin_step=begin_step, end_step=end_step, frequency=frequency)

    def clone(layer):
        if prunable(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    return keras.models.clone_model(model, clone_function=clone)


def pruning_callbacks():
    import tensorflow_model_optimization as tfmot

    return [tfmot.sparsity.keras.UpdatePruningStep()]


def strip(model):
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def _prunable_kernels(model):
    """(layer name, kernel) of each prunable layer."""
    return [(layer.name, layer.get_weights()[0]) for layer in model.layers if prunable(layer)]


def sparsity_per_layer(model) -> dict[str, float]:
    """Share of exactly-zero weights in each prunable layer's kernel."""
    return {name: float(np.mean(w == 0)) for name, w in _prunable_kernels(model)}


def overall_sparsity(model) -> float:
    """Share of exactly-zero weights in all prunable layers' kernels together (each weight counts
    once: the mean of sparsity_per_layer would count a 100-weight layer as much as a 100,000-weight
    one); 0.0 with no prunable layer."""
    kernels = [w for _, w in _prunable_kernels(model)]
    total = sum(w.size for w in kernels)
    return sum(int(np.count_nonzero(w == 0)) for w in kernels) / total if total else 0.0


def gzip_size(data: bytes) -> int:
    """What a compressed flash image / OTA update of the model would take."""
    return len(gzip.compress(data, compresslevel=9))
