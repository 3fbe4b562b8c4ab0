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
        ModelError: not a TFLite flatbuffer (a path instead of the bytes too), no subgraph, or a
            corrupt one: an index out of range, a shape no tensor can have, or a convolution whose
            shapes contradict each other (see :func:`_graph_problem`), so that no reader of the
            graph (codegen, the cost model, the arena planner) meets one.
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

        problem = _index_problem(model, graph, len(opcodes))
        if problem:
            raise ModelError(_corrupt(source, problem), hint=CORRUPT_HINT)

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
        problem = _graph_problem(layers, [_shape(graph.Tensors(t)) for t in range(graph.TensorsLength())])
        if problem:
            raise ModelError(_corrupt(source, problem), hint=CORRUPT_HINT)
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


CORRUPT_HINT = "the file was damaged after it was built: rebuild it with `tinyface build`, or restore a copy"
# a TFLite tensor has at most this many dimensions (TFLite's own kernels stop at 6; 8 leaves room)
MAX_RANK = 8
# a tensor larger than this many elements cannot be allocated by TFLite (int32 sizes), nor fit any board
MAX_ELEMENTS = 2**31 - 1


def _corrupt(source: str, problem: str) -> str:
    return f"{source + ' is' if source else 'this is'} a corrupt TFLite model: {problem}"


def _index_problem(model, graph, opcode_count: int) -> str | None:
    """An index of the subgraph that points outside its table (an operator's opcode, tensor or
    buffer; the subgraph's inputs and outputs): the flatbuffer reader would read whatever bytes lie
    there as a tensor (or an IndexError, or a wrapped-around list index)."""
    tensors, buffers = graph.TensorsLength(), model.BuffersLength()
    if graph.InputsLength() < 1 or graph.OutputsLength() < 1:
        return "its subgraph has no input or no output"
    for what, count, get in (("input", graph.InputsLength(), graph.Inputs),
                             ("output", graph.OutputsLength(), graph.Outputs)):
        for j in range(count):
            if not 0 <= get(j) < tensors:
                return f"its {what} is tensor {get(j)} of {tensors}"
    for t in range(tensors):
        if not 0 <= graph.Tensors(t).Buffer() < max(buffers, 1):
            return f"tensor {t} names buffer {graph.Tensors(t).Buffer()} of {buffers}"
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if not 0 <= op.OpcodeIndex() < opcode_count:
            return f"operator {i} names opcode {op.OpcodeIndex()} of {opcode_count}"
        for what, count, get in (("input", op.InputsLength(), op.Inputs), ("output", op.OutputsLength(), op.Outputs)):
            for j in range(count):
                if not -1 <= get(j) < tensors:  # -1: an optional input left out
                    return f"operator {i} has {what} tensor {get(j)} of {tensors}"
    return None


def _graph_problem(layers: list[Layer], shapes: list[tuple[int, ...]]) -> str | None:
    """What makes a parsed graph impossible (None: nothing found): a tensor shape with a negative
    dimension, more than MAX_RANK dimensions or more than MAX_ELEMENTS elements, or a convolution
    whose input, filter, output, strides and padding disagree. A flipped byte in a shape or an
    option is read as a valid flatbuffer; only these checks tell such a model from a real one."""
    for t, shape in enumerate(shapes):
        if len(shape) > MAX_RANK or any(d < 0 for d in shape) or prod(shape) > MAX_ELEMENTS:
            return f"tensor {t} has the shape {_dims(shape, 12)}"
    for layer in layers:
        problem = _conv_problem(layer)
        if problem:
            return f"operator {layer.index} ({layer.op}) {problem}"
    return None


def _dims(shape: tuple[int, ...], at_most: int = 8) -> str:
    text = "x".join(map(str, shape[:at_most])) + ("x..." if len(shape) > at_most else "")
    return f"[{text}] ({len(shape)} dimensions)" if len(shape) > at_most else f"[{text}]"


def _conv_problem(layer: Layer) -> str | None:
    """What in a CONV_2D or DEPTHWISE_CONV_2D contradicts the rest (None: nothing, or another op):
    input, filter and output of 4 dimensions, strides and dilations of at least 1, the channels the
    filter maps, and the output's height and width that the strides and padding give."""
    if layer.op not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return None
    if len(layer.input_shapes) < 2 or not layer.output_shape:
        return "lacks its input, filter or output"
    (inp, filt), out = layer.input_shapes[:2], layer.output_shape
    for what, shape in (("input", inp), ("filter", filt), ("output", out)):
        if len(shape) != 4:
            return f"has a {what} of shape {_dims(shape)}, not 4 dimensions"
    if len(layer.stride) != 2 or len(layer.dilation) != 2:
        return "has no options (strides, padding, dilations)"
    if min(*layer.stride, *layer.dilation) < 1:
        return f"has strides {layer.stride} and dilations {layer.dilation}"
    if layer.op == "CONV_2D":
        channels_ok = out[3] == filt[0] and filt[3] > 0 and inp[3] % filt[3] == 0
    else:
        channels_ok = filt[0] == 1 and out[3] == filt[3] and inp[3] > 0 and out[3] % inp[3] == 0
    expected = tuple(_conv_out(size, k, s, d, layer.padding)
                     for size, k, s, d in zip(inp[1:3], filt[1:3], layer.stride, layer.dilation, strict=True))
    if not channels_ok or inp[0] != out[0] or tuple(out[1:3]) != expected:
        return (f"maps {_dims(inp)} with a {_dims(filt)} filter (strides {layer.stride}, {layer.padding}) "
                f"to {_dims(out)}")
    return None


def _conv_out(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """A convolution's output height or width (TFLite's ComputeOutSize)."""
    span = (kernel - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == "SAME" else max(0, (size - span + stride) // stride)


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
