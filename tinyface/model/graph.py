"""Read a .tflite flatbuffer without TensorFlow: its operators, shapes, MACs, parameters and
the quantization of its input and output (the one flatbuffer reader; the kernel generator
walks the same schema for the op parameters it specialises).

Uses the flatbuffer schema module that ships with the ``tflite-micro`` wheel, so the
profiler, the emulator's latency estimate, the firmware codegen (op resolver), the bundle
metadata of a new int8 model and ``tinyface evaluate`` can inspect a model in milliseconds
and without importing TensorFlow.

MACs are counted for the ops that multiply-accumulate (convolutions, fully connected,
batch matmul); every other op reports ``macs = 0`` and its ``elements`` (the values it
touches: the larger of its input and output sizes), which the cost model prices per value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from math import prod

from tinyface.errors import ModelError

# bytes per element by TensorType value (schema enum); unknown types count as 1
_INDEX_TYPES = (2, 4)  # INT32, INT64
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 2, 17: 1}


@dataclass(frozen=True)
class Layer:
    """One operator of the model's main subgraph, in execution order."""

    index: int
    op: str  # TFLite builtin name, e.g. CONV_2D, or CUSTOM:<code>
    output_shape: tuple[int, ...]
    macs: int  # multiply-accumulates (0 for ops that do not multiply-accumulate)
    params: int  # elements of constant inputs (weights, biases)
    param_bytes: int
    elements: int  # values touched: max(input elements, output elements)
    input_shapes: tuple[tuple[int, ...], ...] = ()
    # CONV_2D and DEPTHWISE_CONV_2D only (else (), "" and 0): strides (h, w), "SAME" or "VALID",
    # dilations (h, w) and the depthwise channel multiplier
    stride: tuple[int, int] | tuple = ()
    padding: str = ""
    dilation: tuple[int, int] | tuple = ()
    depth_multiplier: int = 0


@dataclass(frozen=True)
class TensorIO:
    """The model's input or output tensor: shape, element type, and its (first) quantization
    parameters (scale 0.0 and zero point 0 for a float tensor)."""

    shape: tuple[int, ...]
    type_code: int  # schema TensorType value (INT8 = 9, FLOAT32 = 0)
    type_name: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale > 0


@dataclass(frozen=True)
class ModelGraph:
    layers: list[Layer]
    total_macs: int
    total_params: int
    total_param_bytes: int
    op_names: frozenset[str]  # distinct builtin op names (the firmware's op resolver needs exactly these)
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_type: str
    output_type: str
    tensor_count: int = 0
    extra: dict = field(default_factory=dict)
    input: TensorIO | None = None
    output: TensorIO | None = None


@lru_cache(maxsize=1)
def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


@lru_cache(maxsize=1)
def _enum_names(enum_name: str) -> dict[int, str]:
    enum = getattr(_schema(), enum_name)
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(v) for v in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()


NOT_TFLITE_HINT = "give a .tflite model: a `tinyface build` bundle folder or its model.tflite"


def analyze(model_bytes: bytes, source: str = "") -> ModelGraph:
    """Per-op structure of a .tflite model's first subgraph.

    Args:
        model_bytes: the flatbuffer.
        source: where it was read (a path), named in the errors.

    Returns:
        ModelGraph with one Layer per operator, totals and the set of op names.

    Raises:
        ModelError: not a TFLite flatbuffer (a path instead of the bytes too), or no subgraph.
    """
    if isinstance(model_bytes, (str, os.PathLike)):  # bytes() of a str fails with "without an encoding"
        raise ModelError(f"expected the model's bytes, got the path {str(model_bytes)!r}",
                         hint="read the file first: tinyface.model.bundle.read_model_file(path), or load_bundle(path)")
    schema = _schema()
    data = bytes(model_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{source + ' is ' if source else ''}not a TFLite model (no TFL3 identifier)",
                         hint=NOT_TFLITE_HINT)
    try:
        model = schema.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ModelError(f"{source + ': ' if source else ''}the TFLite model has no subgraph",
                             hint=NOT_TFLITE_HINT)
        graph = model.Subgraphs(0)
        op_names_by_code = _enum_names("BuiltinOperator")
        type_names = _enum_names("TensorType")
        opcodes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            # Newer converters fill builtin_code; older ones only the deprecated int8 field.
            code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
            name = op_names_by_code.get(code, f"BUILTIN_{code}")
            if name == "CUSTOM":
                name = f"CUSTOM:{(oc.CustomCode() or b'').decode(errors='replace')}"
            opcodes.append(name)

        def is_constant(tensor_index: int) -> bool:
            buf = model.Buffers(graph.Tensors(tensor_index).Buffer())
            return buf is not None and (buf.DataLength() > 0 or buf.Size() > 0)

        layers = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            name = opcodes[op.OpcodeIndex()]
            inputs = [op.Inputs(j) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
            outputs = [op.Outputs(j) for j in range(op.OutputsLength()) if op.Outputs(j) >= 0]
            in_shapes = tuple(_shape(graph.Tensors(t)) for t in inputs)
            out_shape = _shape(graph.Tensors(outputs[0])) if outputs else ()
            params = param_bytes = 0
            macs = _macs(name, in_shapes, out_shape)
            for t in inputs:
                tensor = graph.Tensors(t)
                # int32/int64 constants of ops that do not multiply are axes, shapes or paddings,
                # not parameters; a convolution's int32 constant is its bias and counts.
                if is_constant(t) and (macs or int(tensor.Type()) not in _INDEX_TYPES):
                    n = prod(_shape(tensor)) if tensor.ShapeLength() else 1
                    params += n
                    param_bytes += n * _TYPE_BYTES.get(int(tensor.Type()), 1)
            elements = max([prod(s) for s in (*in_shapes, out_shape) if s] or [0])
            layers.append(Layer(i, name, out_shape, macs, params, param_bytes,
                                elements, in_shapes, **_conv_geometry(schema, op, name)))
        in_t = graph.Tensors(graph.Inputs(0))
        out_t = graph.Tensors(graph.Outputs(0))
        model_in, model_out = _tensor_io(in_t, type_names), _tensor_io(out_t, type_names)
        return ModelGraph(
            layers=layers,
            total_macs=sum(layer.macs for layer in layers),
            total_params=sum(layer.params for layer in layers),
            total_param_bytes=sum(layer.param_bytes for layer in layers),
            op_names=frozenset(layer.op for layer in layers),
            input_shape=_shape(in_t), output_shape=_shape(out_t),
            input_type=type_names.get(int(in_t.Type()), "?"), output_type=type_names.get(int(out_t.Type()), "?"),
            tensor_count=graph.TensorsLength(), input=model_in, output=model_out,
        )
    except ModelError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer raises anything from struct to IndexError
        raise ModelError(f"cannot parse {source + ' as a' if source else 'the'} TFLite model (truncated or corrupt): "
                         f"{type(exc).__name__}: {exc}", hint=NOT_TFLITE_HINT) from None


def _conv_geometry(schema, op, name: str) -> dict:
    """A convolution's strides, padding, dilations and channel multiplier (Layer's fields)."""
    if name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or op.BuiltinOptions() is None:
        return {}
    opts = (schema.Conv2DOptions if name == "CONV_2D" else schema.DepthwiseConv2DOptions)()
    table = op.BuiltinOptions()
    opts.Init(table.Bytes, table.Pos)
    return {"stride": (int(opts.StrideH()), int(opts.StrideW())),
            "padding": "SAME" if opts.Padding() == schema.Padding.SAME else "VALID",
            "dilation": (int(opts.DilationHFactor()), int(opts.DilationWFactor())),
            "depth_multiplier": int(opts.DepthMultiplier()) if name == "DEPTHWISE_CONV_2D" else 0}


def _tensor_io(tensor, type_names: dict[int, str]) -> TensorIO:
    q = tensor.Quantization()
    scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
    zero_point = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
    code = int(tensor.Type())
    return TensorIO(_shape(tensor), code, type_names.get(code, "?"), scale, zero_point)


def _macs(op: str, in_shapes: tuple[tuple[int, ...], ...], out_shape: tuple[int, ...]) -> int:
    out = prod(out_shape) if out_shape else 0
    if op == "CONV_2D" and len(in_shapes) >= 2 and len(in_shapes[1]) == 4:
        _, kh, kw, cin = in_shapes[1]  # filter [Cout, KH, KW, Cin]
        return out * kh * kw * cin
    if op == "DEPTHWISE_CONV_2D" and len(in_shapes) >= 2 and len(in_shapes[1]) == 4:
        _, kh, kw, _ = in_shapes[1]  # filter [1, KH, KW, Cout]
        return out * kh * kw
    if op == "TRANSPOSE_CONV" and len(in_shapes) >= 2 and len(in_shapes[1]) == 4:
        _, kh, kw, _ = in_shapes[1]
        cin = in_shapes[2][-1] if len(in_shapes) > 2 and in_shapes[2] else 1
        return out * kh * kw * cin
    if op == "FULLY_CONNECTED" and len(in_shapes) >= 2 and len(in_shapes[1]) == 2:
        return out * in_shapes[1][1]  # weights [units, in_features]
    if op == "BATCH_MATMUL" and len(in_shapes) >= 2 and in_shapes[0]:
        return out * in_shapes[0][-1]
    return 0
