"""Full-integer int8 conversion: int8 weights, activations, input and output.

Representative data come from training images only (never validation or test people).
Quantization-aware training (QAT) is an option; the build keeps whichever int8 model
scores better on validation pairs.
"""

from __future__ import annotations

import numpy as np


def convert_float(model) -> bytes:
    """A float32 TFLite flatbuffer of a Keras model."""
    import tensorflow as tf

    from tinyface.console import muted_stderr

    with muted_stderr():  # the converter's C++ notes ("fully_quantize: 0, ...") and absl's start-up lines
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def convert_int8(model, calibration_uint8: np.ndarray) -> bytes:
    """Post-training full-int8 quantization calibrated on ``calibration_uint8`` crops.

    The calibration set gets one extra image spanning the full pixel range, so the input
    tensor's scale is exactly 1/128 with zero point 0 (int8 input = pixel - 128): the
    firmware's camera path then needs no arithmetic.
    """
    import tensorflow as tf

    from tinyface.model.embedder import PIXEL_MAX, normalize

    calib = normalize(calibration_uint8)
    span = np.linspace(-1.0, PIXEL_MAX, calib[0].size, dtype=np.float32).reshape(calib[0].shape)

    def representative():
        yield [span[None]]
        for x in calib:
            yield [x[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    from tinyface.console import muted_stderr

    with muted_stderr():  # the converter's C++ notes ("fully_quantize: 0, ...") and absl's start-up lines
        return conv.convert()


def bundle_meta(model_bytes: bytes, embedding_dim: int | None = None, **fields):
    """The ModelMeta of an int8 model: shapes and quantization read from the flatbuffer
    itself, the rest (threshold, name, ...) from ``fields``."""
    from tinyface.model.bundle import ModelMeta

    io = io_quantization(model_bytes)
    return ModelMeta(input_shape=io["input_shape"], input_scale=io["input_scale"],
                     input_zero_point=io["input_zero_point"], output_scale=io["output_scale"],
                     output_zero_point=io["output_zero_point"],
                     embedding_dim=int(embedding_dim or io["output_shape"][-1]), **fields)


def quantize_aware(model, prune_preserving: bool = False):
    """Wrap a float Keras model for quantization-aware training (optionally keeping sparsity)."""
    import tensorflow_model_optimization as tfmot

    if prune_preserving:
        annotated = tfmot.quantization.keras.quantize_annotate_model(model)
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        return tfmot.quantization.keras.quantize_apply(annotated, scheme)
    return tfmot.quantization.keras.quantize_model(model)


def io_quantization(model_bytes: bytes) -> dict:
    """Input/output shapes, (scale, zero point) and element types of a TFLite model, read
    without TensorFlow by the one flatbuffer reader (:func:`tinyface.model.graph.analyze`).

    Raises:
        ModelError: not a TFLite flatbuffer.
    """
    from tinyface.model.graph import analyze

    graph = analyze(model_bytes)
    i, o = graph.input, graph.output
    return dict(input_shape=list(i.shape), input_scale=i.scale, input_zero_point=i.zero_point,
                input_type=i.type_code, output_shape=list(o.shape), output_scale=o.scale,
                output_zero_point=o.zero_point, output_type=o.type_code)
