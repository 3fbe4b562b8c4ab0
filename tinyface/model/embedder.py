"""From aligned face crops to embeddings with a TFLite model: the one chain

    uint8 crops -> [-1, 1) floats -> int8 input -> TFLite or TFLM -> int8 output
    -> dequantized floats -> L2-normalised embeddings

that ``tinyface evaluate``, the gallery compiled into the firmware (``flash --enroll``),
``tinyface bench``'s host check and the emulator share, so the pixel mapping, the rounding
and the normalisation are written once. A float .tflite runs the same chain without the
quantization steps.

Only ``runtime="tflite"`` imports TensorFlow, and only when the embedder is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyface.vectors import l2_normalize

RUNTIMES = ("tflite", "tflm")


# The student's float input: pixels mapped to [-1, 1) as (p - PIXEL_OFFSET) / PIXEL_SCALE; the
# largest value a pixel can take is PIXEL_MAX. Training (in TensorFlow) uses the same constants.
PIXEL_OFFSET = 128.0
PIXEL_SCALE = 128.0
PIXEL_MAX = (255.0 - PIXEL_OFFSET) / PIXEL_SCALE  # 127/128


def normalize(crops_uint8) -> np.ndarray:
    """The student's float input: pixels mapped to [-1, 1) as (p - 128) / 128 (one definition)."""
    return (np.asarray(crops_uint8, dtype=np.float32) - PIXEL_OFFSET) / PIXEL_SCALE


def quantize_pixels(crops_uint8, scale: float, zero_point: int) -> np.ndarray:
    """uint8 aligned crops (N, H, W, C) -> int8 input of a model with this input quantization."""
    q = np.round(normalize(crops_uint8) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def quantize_input(crops_uint8, meta) -> np.ndarray:
    """uint8 aligned crops (N, H, W, C) -> the int8 input tensor the model and firmware take
    (``meta``: a ModelMeta, or anything with ``input_scale`` and ``input_zero_point``)."""
    return quantize_pixels(crops_uint8, meta.input_scale, meta.input_zero_point)


def dequantize_output(out_int8, meta) -> np.ndarray:
    """int8 outputs -> float32 embeddings (not normalised), by ``meta``'s output quantization."""
    return (np.asarray(out_int8, dtype=np.float32) - meta.output_zero_point) * np.float32(meta.output_scale)


# what an embedder's arrays hold (Embedder._batch): its crops, and an int8 or a float model's input
_INPUT_TYPES = {"uint8 pixels (0-255)": lambda dtype: dtype == np.uint8,
                "int8 (Embedder.quantize)": lambda dtype: dtype == np.int8,
                "floats": lambda dtype: np.issubdtype(dtype, np.floating)}


@dataclass(frozen=True)
class Quantization:
    """The input and output quantization of a model (scales 0.0: a float model)."""

    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int

    @property
    def int8(self) -> bool:
        return self.input_scale > 0


class Embedder:
    """One model in one interpreter, mapping uint8 crops to L2-normalised embeddings.

    Args:
        model_bytes: the .tflite flatbuffer.
        runtime: "tflite" (TFLite's reference kernels, the host reference) or "tflm" (the
            TFLM kernels the firmware runs; int8 models only).
        quantization: the model's I/O quantization (default: read from the flatbuffer; a
            bundle passes its model.json's, which the firmware also uses).
        arena_bytes: TFLM's arena (default: the runtime's).
        kernels: TFLite's kernels (runtime "tflite"): "reference" (the host reference every parity
            check compares against) or "optimized" (XNNPACK: faster, up to 3 LSB from TFLM; for
            bulk work that is not a parity check, such as an assistant's targets).
        source: where the model was read (a path), named in a parse error.

    Raises:
        ModelError: not a TFLite model, an unknown runtime or kernel set, TFLM with a float model,
            an arena too small for TFLM, or an interpreter that cannot load it.
    """

    def __init__(self, model_bytes: bytes, runtime: str = "tflite", quantization: Quantization | None = None,
                 arena_bytes: int | None = None, kernels: str = "reference", source: str = ""):
        from tinyface.errors import ModelError
        from tinyface.model.graph import analyze

        if runtime not in RUNTIMES:
            raise ModelError(f"unknown runtime {runtime!r}", hint=f"one of {', '.join(RUNTIMES)}")
        graph = analyze(model_bytes, source=source)
        if quantization is None:
            quantization = Quantization(graph.input.scale, graph.input.zero_point, graph.output.scale,
                                        graph.output.zero_point)
        if runtime == "tflm" and not quantization.int8:
            raise ModelError("--runtime tflm needs an int8 model (TFLM runs the firmware's int8 kernels)")
        self.runtime = runtime
        self.quantization = quantization
        self.input_shape = tuple(int(v) for v in graph.input_shape)
        self.output_size = int(np.prod(graph.output_shape))
        self.model_size = len(model_bytes)
        if runtime == "tflm":
            from tinyface.model.runtime import DEFAULT_ARENA_BYTES, TflmRunner

            self.runner = TflmRunner(model_bytes, arena_bytes or DEFAULT_ARENA_BYTES, source=source)
        else:
            from tinyface.model.runtime import TfliteRunner

            self.runner = TfliteRunner(model_bytes, kernels, source=source)

    @classmethod
    def for_bundle(cls, bundle, runtime: str = "tflite", arena_bytes: int | None = None,
                   kernels: str = "reference") -> "Embedder":
        """The embedder of a model bundle, with its model.json's quantization."""
        m = bundle.meta
        q = Quantization(m.input_scale, m.input_zero_point, m.output_scale, m.output_zero_point)
        return cls(bundle.model_bytes, runtime, q, arena_bytes, kernels, source=str(bundle.model_path))

    def quantize(self, crops_uint8) -> np.ndarray:
        """The model's input for uint8 crops (N, H, W, C): int8, or [-1, 1) floats for a float model.

        Raises:
            DataError: the crops are not uint8 pixels.
            ModelError: the crops are not a batch of this model's input size and channels (crops cut
                for another model; :meth:`tinyface.data.faces.FaceSpec.for_model` gives the cut).
        """
        crops = self._batch(crops_uint8, "crops", "uint8 pixels (0-255)")
        q = self.quantization
        return quantize_pixels(crops, q.input_scale, q.input_zero_point) if q.int8 else normalize(crops)

    def run(self, x) -> np.ndarray:
        """The interpreter's raw outputs (int8 for an int8 model), (N, D), for the model's input ``x``
        (N, H, W, C): int8 for an int8 model (:meth:`quantize`), floats for a float model.

        Raises:
            DataError: ``x`` is not of the model's input type.
            ModelError: ``x`` is not a batch of this model's input size and channels.
        """
        x = self._batch(x, "inputs", "int8 (Embedder.quantize)" if self.quantization.int8 else "floats")
        if len(x) == 0:
            return np.zeros((0, self.output_size), np.int8 if self.quantization.int8 else np.float32)
        return np.asarray(self.runner.run(x)).reshape(len(x), -1)

    def _batch(self, x, what: str, kind: str) -> np.ndarray:
        """``x`` as an array, checked to be a batch of this model's inputs: an interpreter given
        another shape fails deep inside (or TFLM reshapes what fits), and another type is cast
        silently (uint8 crops as int8 wrap around)."""
        from tinyface.errors import DataError, ModelError

        x = np.asarray(x)
        if x.ndim == 1 and x.size == 0:  # an empty list: no crops
            return x
        if not _INPUT_TYPES[kind](x.dtype):
            raise DataError(f"the model's {what} must be {kind}, got an array of {x.dtype}",
                            hint="crops are uint8 (N, H, W, C), as tinyface.data.align.cut_chip cuts them")
        expected = tuple(self.input_shape[1:])
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            h, w, c = expected
            one = " (one crop: pass crops[None])" if tuple(x.shape) == expected else ""
            raise ModelError(f"this model takes {what} of shape (N, {h}, {w}, {c}), got {tuple(x.shape)}{one}",
                             hint="cut the faces for this model: tinyface.data.faces.FaceSpec.for_model(bundle.meta)")
        return x

    def dequantize(self, outputs) -> np.ndarray:
        """Raw outputs -> float32 embeddings (not normalised)."""
        q = self.quantization
        return dequantize_output(outputs, q) if q.int8 else np.asarray(outputs, dtype=np.float32)

    def embed(self, crops_uint8) -> np.ndarray:
        """uint8 crops (N, H, W, C) -> L2-normalised float32 embeddings (N, D)."""
        return l2_normalize(self.dequantize(self.run(self.quantize(crops_uint8))))

    __call__ = embed
