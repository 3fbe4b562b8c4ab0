"""Kernels generated for one int8 model (``firmware.kernels = "generated"``).

Reads the model's flatbuffer and, for each CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
ADD it can specialise, emits one instance of the templates in firmware/src/tf_kernels_impl.h
with every shape, stride, padding and offset as a compile-time constant, plus the weights
repacked into the order the inner loop reads them (``[channel block][ky][kx][cin][4]``), the
bias with the input offset folded in (``bias + input_offset * sum(weights)``) and the
per-channel multipliers and shifts. The rendered tf_kernels.cc registers them as TFLM
kernels (TFLM stays the interpreter and arena planner); each op's Prepare checks the baked
constants against TFLM's own QuantizeMultiplier and activation range, so a mismatch fails
at AllocateTensors instead of giving different numbers.

The multipliers are computed here exactly as TFLM computes them (same double arithmetic,
frexp and round-half-away-from-zero): see ``quantize_multiplier``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tinyface.config import FIRMWARE_KERNELS
from tinyface.errors import ModelError

KERNEL_CHOICES = FIRMWARE_KERNELS  # one list: tinyface.config
# Ops the generator specialises, and the tf_kernels.cc registration function of each.
GENERATED_OPS = {
    "CONV_2D": "Register_CONV_2D",
    "DEPTHWISE_CONV_2D": "Register_DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED": "Register_FULLY_CONNECTED",
    "ADD": "Register_ADD",
}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


def _round_away(x: float) -> int:
    """TfLiteRound (std::round): halves away from zero."""
    r = math.floor(abs(x))
    if abs(x) - r >= 0.5:
        r += 1
    return int(r if x >= 0 else -r)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier (double rounding build): ``(multiplier, shift)``."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def _srdhm(a: int, b: int) -> int:
    """gemmlowp::SaturatingRoundingDoublingHighMul on int32 values."""
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    v = ab + (1 << 30 if ab >= 0 else 1 - (1 << 30))
    q = abs(v) >> 31
    return q if v >= 0 else -q


def _rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp::RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_smaller_than_one(x: int, multiplier: int, left_shift: int) -> int:
    """tflite::MultiplyByQuantizedMultiplierSmallerThanOneExp (double rounding build)."""
    return _rounding_divide_by_pot(_srdhm(x, multiplier), -left_shift)


def _to_int32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """tflite::CalculateActivationRangeQuantized for int8 (float32 ``f / scale``)."""
    qmin, qmax = -128, 127

    def quantize(f: float) -> int:
        return zero_point + _round_away(float(np.float32(f) / np.float32(scale)))

    name = _ACTIVATIONS.get(activation)
    if name == "NONE":
        return qmin, qmax
    if name == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if name == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if name == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise ModelError(f"unsupported fused activation {activation}")


def same_padding(size: int, kernel: int, stride: int, out: int, dilation: int = 1) -> int:
    """The leading padding TFLM's ComputePaddingHeightWidth gives for SAME padding."""
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2


def fnv1a32(data: bytes) -> int:
    """FNV-1a hash of a weights tensor: how Prepare finds the generated kernel of a node."""
    h = 0x811C9DC5
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    for b in arr.tolist():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


@dataclass
class KernelSpec:
    """One op to generate: what tf_kernels.cc.j2 needs, as values."""

    index: int  # operator index in the model (names the C++ symbols)
    op: str  # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD
    template: str = ""  # the tfk:: template instance
    weights: np.ndarray | None = None  # repacked int8
    bias: list[int] = field(default_factory=list)  # padded to channel blocks
    bias_folded: list[int] = field(default_factory=list)
    multiplier: list[int] = field(default_factory=list)
    shift: list[int] = field(default_factory=list)
    channels: int = 0  # real output channels (multiplier/shift entries Prepare checks)
    weights_hash: int = 0
    in_bytes: int = 0
    out_bytes: int = 0
    act_min: int = -128
    act_max: int = 127
    add: dict | None = None  # ADD's AddParams
    add_tables: list | None = None  # ADD: each input's rescaled value for int8 -128..127
    # How outputs are requantized (tf_kernels_impl.h): REQUANT_EXACT (TFLM's form), REQUANT_FAST
    # (requant = {2m, -shift, 2^(-shift-1)} per channel) or REQUANT_MULH (requant = {m, B, S}: one
    # mulh, an add and a shift); the shorter forms only where _requant_mode proves them exact.
    requant_mode: int = 0
    requant: list[int] = field(default_factory=list)  # the per-channel operands of requant_mode
    macs: int = 0

    @property
    def fast(self) -> bool:
        """A shorter requantization than TFLM's written-out form is used."""
        return self.requant_mode != REQUANT_EXACT

    @property
    def repacked_bytes(self) -> int:
        """Flash the generated constants take (weights + four int32 arrays)."""
        n = 0 if self.weights is None else int(self.weights.size)
        n += 4 * 256 * len(self.add_tables or [])
        return n + 4 * (len(self.bias) + len(self.bias_folded) + len(self.multiplier) + len(self.shift)
                        + len(self.requant))


def _ceil4(n: int) -> int:
    return (n + 3) // 4 * 4


def _channel_arrays(spec: KernelSpec, bias: np.ndarray, wsum: np.ndarray, in_offset: int,
                    mults: list[tuple[int, int]], padded: int, wabs: np.ndarray, out_offset: int) -> None:
    """Fill ``spec``'s per-channel arrays (``spec.act_min`` must be set first)."""
    n = len(bias)
    b = np.zeros(padded, dtype=np.int64)
    b[:n] = bias
    s = np.zeros(padded, dtype=np.int64)
    s[:n] = wsum
    folded = b + in_offset * s
    if np.abs(folded).max(initial=0) >= 2**31:
        raise ModelError(f"op {spec.index}: folded bias overflows int32")
    spec.bias = [int(v) for v in b]
    spec.bias_folded = [int(v) for v in folded]
    spec.multiplier = [m for m, _ in mults] + [0] * (padded - n)
    spec.shift = [s_ for _, s_ in mults] + [-1] * (padded - n)
    spec.channels = n
    # The largest |accumulator|: |bias| + 255 * sum|w| (|x + input_offset| <= 255), for inside
    # pixels (folded bias) and border pixels (raw bias, fewer taps) alike.
    abs_bound = [int(v) for v in np.abs(b[:n]) + 255 * wabs[:n]]
    spec.requant_mode = _requant_mode(mults, abs_bound, spec.act_min, out_offset)
    spec.requant = requant_operands(spec.requant_mode, mults, out_offset)
    spec.requant += spec.requant[-3:] * (padded - n) if spec.requant else []
    if spec.requant:
        spec.multiplier, spec.shift = [], []


# The requantization forms of tf_kernels_impl.h (its tfk::kRequant* constants).
REQUANT_EXACT, REQUANT_FAST, REQUANT_MULH = 0, 1, 2


def mulh_operands(multiplier: int, shift: int, out_offset: int) -> tuple[int, int, int]:
    """``(m, B, S)`` of tfk's kRequantMulh form for one channel: the output (with the output
    offset added) is ``(mulh(4 * acc, m) + B + 2 * (acc >> 31)) >> S``.

    Why it is TFLM's MultiplyByQuantizedMultiplier (double rounding), for a right shift r =
    -shift >= 1: with h = SaturatingRoundingDoublingHighMul(acc, m) = floor((acc*m + 2^30) /
    2^31), RoundingDivideByPOT(h, r) = floor((h + 2^(r-1) - [h < 0]) / 2^r), and as floors
    nest, that is floor((acc*m + 2^30 + 2^(30+r) - [h < 0] 2^31) / 2^(31+r)). mulh(4 acc, m) =
    floor(acc*m / 2^30), so with S = r + 1 and B = offset 2^S + 2^r + 1 the form gives the same
    floor plus the offset. h < 0 exactly when acc < 0 if m > 2^30; the sign term can be left
    out when the activation's lower bound is at least the output offset (every value <= 0 then
    clamps to that bound either way). Valid while 4 |acc| fits int32 (``_requant_mode``).
    """
    r = -shift
    return multiplier, out_offset * (1 << (r + 1)) + (1 << r) + 1, r + 1


def _requant_mode(mults: list[tuple[int, int]], abs_bound: list[int], act_min: int, out_offset: int) -> int:
    """The shortest requantization form proven exact for every channel of an op.

    REQUANT_MULH: every right shift in 1..30, 4 * max|acc| inside int32, mulh's result (below
    2 |acc| in size) plus B and the sign term inside int32, and, if values below the output
    offset survive the activation, every multiplier above 2^30 (see mulh_operands). REQUANT_FAST (requantize_fast):
    every shift <= -1 and max|acc| + 2^(right shift - 1) inside int32. Otherwise REQUANT_EXACT.
    """
    if not mults or any(sh > -1 for _, sh in mults):
        return REQUANT_EXACT
    signed = act_min < out_offset
    mulh = all(
        -sh <= 30 and 4 * bound < 2**31 and (not signed or m > 2**30)
        and 2 * bound + 1 + abs(mulh_operands(m, sh, out_offset)[1]) + 2 < 2**31
        for (m, sh), bound in zip(mults, abs_bound, strict=True))
    if mulh:
        return REQUANT_MULH
    if all(bound + (1 << (-sh - 1)) < 2**31 for (_, sh), bound in zip(mults, abs_bound, strict=True)):
        return REQUANT_FAST
    return REQUANT_EXACT


def requant_operands(mode: int, mults: list[tuple[int, int]], out_offset: int) -> list[int]:
    """The per-channel triples of ``mode`` (empty for REQUANT_EXACT): REQUANT_FAST {2m (int32 bit
    pattern), right shift, 2^(right shift - 1)}, REQUANT_MULH {m, B, S} (mulh_operands)."""
    if mode == REQUANT_FAST:
        return [v for m, sh in mults for v in (_to_int32(2 * m), -sh, 1 << (-sh - 1))]
    if mode == REQUANT_MULH:
        return [v for m, sh in mults for v in mulh_operands(m, sh, out_offset)]
    return []


def conv_spec(index: int, input_shape, weights: np.ndarray, bias: np.ndarray, stride: tuple[int, int],
              padding: str, input_scale: float, input_zp: int, filter_scales, output_scale: float,
              output_zp: int, activation: int = 0) -> KernelSpec:
    """A CONV_2D kernel. ``weights`` is TFLite's ``[COUT, KH, KW, CIN]`` int8, ``input_shape``
    ``(1, H, W, CIN)``, ``padding`` "SAME" or "VALID", ``filter_scales`` one per channel or one."""
    _, ih, iw, cin = (int(v) for v in input_shape)
    cout, kh, kw, wcin = weights.shape
    if wcin != cin:
        raise ModelError(f"op {index}: filter has {wcin} input channels, input has {cin}")
    sh, sw = stride
    oh, ow, pt, pl = _output_geometry(ih, iw, kh, kw, sh, sw, padding)
    spec = KernelSpec(index, "CONV_2D", channels=cout)
    padded = _ceil4(cout)
    w = np.zeros((padded, kh, kw, cin), dtype=np.int8)
    w[:cout] = weights
    # [COUT/4][4][KH][KW][CIN] -> [COUT/4][KH][KW][CIN][4]
    spec.weights = w.reshape(padded // 4, 4, kh, kw, cin).transpose(0, 2, 3, 4, 1).copy()
    wsum = weights.astype(np.int64).reshape(cout, -1).sum(axis=1)
    mults = _multipliers(input_scale, filter_scales, output_scale, cout)
    wabs = np.abs(weights.astype(np.int64)).reshape(cout, -1).sum(axis=1)
    spec.act_min, spec.act_max = activation_range(activation, output_scale, output_zp)
    _channel_arrays(spec, bias.astype(np.int64), wsum, -input_zp, mults, padded, wabs, output_zp)
    if kh == kw == 1 and sh == sw == 1:
        # A 1x1 stride-1 convolution is a matrix product: one long row pairs every pixel.
        ih, iw, oh, ow = 1, ih * iw, 1, oh * ow
    spec.template = (f"tfk::Conv<{ih}, {iw}, {cin}, {oh}, {ow}, {cout}, {kh}, {kw}, {sh}, {sw}, {pt}, {pl}, "
                     f"{-input_zp}, {output_zp}, {spec.act_min}, {spec.act_max}, {spec.requant_mode}>")
    spec.in_bytes, spec.out_bytes = ih * iw * cin, oh * ow * cout
    spec.macs = oh * ow * cout * kh * kw * cin
    spec.weights_hash = fnv1a32(weights.tobytes())
    return spec


def depthwise_spec(index: int, input_shape, weights: np.ndarray, bias: np.ndarray, stride: tuple[int, int],
                   padding: str, input_scale: float, input_zp: int, filter_scales, output_scale: float,
                   output_zp: int, activation: int = 0) -> KernelSpec:
    """A DEPTHWISE_CONV_2D kernel with depth multiplier 1; ``weights`` is ``[1, KH, KW, C]``."""
    _, ih, iw, c = (int(v) for v in input_shape)
    _, kh, kw, wc = weights.shape
    if wc != c:
        raise ModelError(f"op {index}: depth multiplier other than 1 is not generated")
    sh, sw = stride
    oh, ow, pt, pl = _output_geometry(ih, iw, kh, kw, sh, sw, padding)
    spec = KernelSpec(index, "DEPTHWISE_CONV_2D", channels=c)
    w = weights.reshape(kh, kw, c)
    blocks = c // 4
    full = w[:, :, : blocks * 4].reshape(kh, kw, blocks, 4).transpose(2, 0, 1, 3).reshape(-1)
    rest = w[:, :, blocks * 4:].reshape(-1)
    spec.weights = np.concatenate([full, rest]).astype(np.int8)
    wsum = w.astype(np.int64).reshape(-1, c).sum(axis=0)
    mults = _multipliers(input_scale, filter_scales, output_scale, c)
    wabs = np.abs(w.astype(np.int64)).reshape(-1, c).sum(axis=0)
    spec.act_min, spec.act_max = activation_range(activation, output_scale, output_zp)
    _channel_arrays(spec, bias.astype(np.int64), wsum, -input_zp, mults, _ceil4(c), wabs, output_zp)
    spec.template = (f"tfk::Depthwise<{ih}, {iw}, {c}, {oh}, {ow}, {kh}, {kw}, {sh}, {sw}, {pt}, {pl}, "
                     f"{-input_zp}, {output_zp}, {spec.act_min}, {spec.act_max}, {spec.requant_mode}>")
    spec.in_bytes, spec.out_bytes = ih * iw * c, oh * ow * c
    spec.macs = oh * ow * c * kh * kw
    spec.weights_hash = fnv1a32(weights.tobytes())
    return spec


def fully_connected_spec(index: int, weights: np.ndarray, bias: np.ndarray, input_scale: float, input_zp: int,
                         filter_scales, output_scale: float, output_zp: int, activation: int = 0) -> KernelSpec:
    """A FULLY_CONNECTED kernel (batch 1, weights zero point 0); ``weights`` is ``[OUT, IN]``."""
    units, depth = weights.shape
    spec = KernelSpec(index, "FULLY_CONNECTED", channels=units)
    padded = (units + 7) // 8 * 8  # blocks of 8 units (tfk::FullyConnected)
    w = np.zeros((padded, depth), dtype=np.int8)
    w[:units] = weights
    spec.weights = w.reshape(padded // 8, 8, depth).transpose(0, 2, 1).copy()
    wsum = weights.astype(np.int64).sum(axis=1)
    scales = np.asarray(filter_scales, dtype=np.float32).reshape(-1)
    if scales.size == 1:
        # Per-tensor FC: GetQuantizedConvolutionMultipler multiplies the scales in float.
        real = float(np.float32(input_scale) * scales[0]) / float(np.float32(output_scale))
        mults = [quantize_multiplier(real)] * units
    else:
        mults = _multipliers(input_scale, scales, output_scale, units)
    wabs = np.abs(weights.astype(np.int64)).sum(axis=1)
    spec.act_min, spec.act_max = activation_range(activation, output_scale, output_zp)
    _channel_arrays(spec, bias.astype(np.int64), wsum, -input_zp, mults, padded, wabs, output_zp)
    spec.template = (f"tfk::FullyConnected<{depth}, {units}, {output_zp}, {spec.act_min}, {spec.act_max}, "
                     f"{spec.requant_mode}>")
    spec.in_bytes, spec.out_bytes = depth, units
    spec.macs = depth * units
    spec.weights_hash = fnv1a32(weights.tobytes())
    return spec


def add_spec(index: int, size: int, scale1: float, zp1: int, scale2: float, zp2: int, output_scale: float,
             output_zp: int, activation: int = 0) -> KernelSpec:
    """An ADD of two same-shape int8 tensors of ``size`` values (TFLM's CalculateOpDataAdd)."""
    s1, s2, so = (float(np.float32(v)) for v in (scale1, scale2, output_scale))
    left_shift = 20
    twice_max = 2 * max(s1, s2)
    m1 = quantize_multiplier(s1 / twice_max)
    m2 = quantize_multiplier(s2 / twice_max)
    mo = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    act_min, act_max = activation_range(activation, output_scale, output_zp)
    spec = KernelSpec(index, "ADD", channels=0, act_min=act_min, act_max=act_max)
    spec.add = {"input1_offset": -zp1, "input2_offset": -zp2, "left_shift": left_shift,
                "input1_multiplier": m1[0], "input1_shift": m1[1], "input2_multiplier": m2[0],
                "input2_shift": m2[1], "output_multiplier": mo[0], "output_shift": mo[1],
                "output_offset": output_zp, "act_min": act_min, "act_max": act_max}
    spec.add_tables = [[multiply_smaller_than_one(_to_int32((v + off) * (1 << left_shift)), m, sh)
                        for v in range(-128, 128)] for off, (m, sh) in ((-zp1, m1), (-zp2, m2))]
    # The output rescaling's shorter forms, proven as for the convolutions with the largest
    # |table1 + table2| as the accumulator bound.
    bound = max(abs(v) for v in spec.add_tables[0]) + max(abs(v) for v in spec.add_tables[1])
    spec.requant_mode = _requant_mode([mo], [bound], act_min, output_zp)
    spec.add["requant_bias"] = mulh_operands(mo[0], mo[1], output_zp)[1] if spec.requant_mode == REQUANT_MULH else 0
    spec.template = f"tfk::add<{size}, {spec.requant_mode}, {str(act_min < output_zp).lower()}>"
    spec.in_bytes = spec.out_bytes = size
    return spec


def _multipliers(input_scale, filter_scales, output_scale, channels: int) -> list[tuple[int, int]]:
    # PopulateConvolutionQuantizationParams: float scales widened to double, then
    # input * filter / output in double.
    scales = np.asarray(filter_scales, dtype=np.float32).reshape(-1)
    if scales.size not in (1, channels):
        raise ModelError(f"{scales.size} filter scales for {channels} channels")
    si, so = float(np.float32(input_scale)), float(np.float32(output_scale))
    return [quantize_multiplier(si * float(scales[c if scales.size > 1 else 0]) / so) for c in range(channels)]


def _output_geometry(ih: int, iw: int, kh: int, kw: int, sh: int, sw: int, padding: str):
    if padding == "SAME":
        oh, ow = (ih + sh - 1) // sh, (iw + sw - 1) // sw
        return oh, ow, same_padding(ih, kh, sh, oh), same_padding(iw, kw, sw, ow)
    if padding == "VALID":
        return (ih - kh + sh) // sh, (iw - kw + sw) // sw, 0, 0
    raise ModelError(f"unknown padding {padding!r}")


# ---------------------------------------------------------------------------------------------
# The model


def model_kernel_specs(model_bytes: bytes) -> tuple[list[KernelSpec], list[str]]:
    """The generated kernels for a .tflite model's ops.

    Returns:
        ``(specs, skipped)``: one KernelSpec per op generated, and a line per op of a
        generated type that is not (such an op type then stays with TFLM's own kernel).

    Raises:
        ModelError: the flatbuffer cannot be read.
    """
    from tinyface.model.graph import _enum_names, _schema

    schema = _schema()
    data = bytes(model_bytes)
    model = schema.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    names = _enum_names("BuiltinOperator")

    def opname(op) -> str:
        oc = model.OperatorCodes(op.OpcodeIndex())
        return names.get(max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode())), "?")

    def tensor(i):
        return graph.Tensors(i)

    def quant(i) -> tuple[np.ndarray, int]:
        q = tensor(i).Quantization()
        if q is None or q.ScaleLength() == 0:
            raise ModelError(f"tensor {i} is not quantized")
        return q.ScaleAsNumpy().astype(np.float32), int(q.ZeroPointAsNumpy()[0]) if q.ZeroPointLength() else 0

    def const(i, dtype) -> np.ndarray:
        t = tensor(i)
        buf = model.Buffers(t.Buffer())
        if buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:
            raw = data[buf.Offset(): buf.Offset() + buf.Size()]
        else:
            raise ModelError(f"tensor {i} has no constant data")
        shape = tuple(int(v) for v in t.ShapeAsNumpy())
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def shape(i) -> tuple[int, ...]:
        return tuple(int(v) for v in tensor(i).ShapeAsNumpy())

    def options(op, cls):
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    specs, skipped = [], []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        name = opname(op)
        if name not in GENERATED_OPS:
            continue
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        out = op.Outputs(0)
        try:
            if any(tensor(i).Type() != 9 for i in (ins[0], out)):  # INT8
                raise ModelError("not int8")
            scales_in, zi = quant(ins[0])
            scales_out, zo = quant(out)
            si, so = float(scales_in[0]), float(scales_out[0])
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                cls = schema.Conv2DOptions if name == "CONV_2D" else schema.DepthwiseConv2DOptions
                o = options(op, cls)
                if o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
                    raise ModelError("dilation")
                if len(shape(ins[0])) != 4 or shape(ins[0])[0] != 1:
                    raise ModelError("batch other than 1")
                w = const(ins[1], np.int8)
                fs, fz = quant(ins[1])
                bias = const(ins[2], np.int32).reshape(-1) if len(ins) > 2 and ins[2] >= 0 else \
                    np.zeros(w.shape[0 if name == "CONV_2D" else 3], np.int32)
                pad = "SAME" if o.Padding() == 0 else "VALID"
                make = conv_spec if name == "CONV_2D" else depthwise_spec
                spec = make(index, shape(ins[0]), w, bias, (o.StrideH(), o.StrideW()), pad, si, zi, fs, so, zo,
                            o.FusedActivationFunction())
                if spec.out_bytes != int(np.prod(shape(out))):
                    raise ModelError("output shape")
            elif name == "FULLY_CONNECTED":
                o = options(op, schema.FullyConnectedOptions)
                w = const(ins[1], np.int8)
                fs, fz = quant(ins[1])
                if fz != 0 or w.ndim != 2 or int(np.prod(shape(ins[0]))) != w.shape[1]:
                    raise ModelError("weights zero point, rank or batch")
                bias = const(ins[2], np.int32).reshape(-1) if len(ins) > 2 and ins[2] >= 0 else \
                    np.zeros(w.shape[0], np.int32)
                spec = fully_connected_spec(index, w, bias, si, zi, fs, so, zo, o.FusedActivationFunction())
            else:  # ADD
                o = options(op, schema.AddOptions)
                if shape(ins[0]) != shape(ins[1]):
                    raise ModelError("broadcast")
                s2, z2 = quant(ins[1])
                spec = add_spec(index, int(np.prod(shape(out))), si, zi, float(s2[0]), z2, so, zo,
                                o.FusedActivationFunction())
        except ModelError as exc:
            skipped.append(f"op {index} {name}: {exc}")
            continue
        specs.append(spec)
    return specs, skipped


def generated_op_types(specs: list[KernelSpec], skipped: list[str]) -> set[str]:
    """Op types every instance of which is generated (the others keep TFLM's kernel)."""
    bad = {line.split()[2].rstrip(":") for line in skipped}
    return {s.op for s in specs} - bad


def render_context(specs: list[KernelSpec], op_types: set[str]) -> dict:
    """Values for firmware/src/tf_kernels.cc.j2."""
    def rows(values, per_row: int = 24) -> list[str]:
        values = [int(v) for v in values]
        return [", ".join(str(v) for v in values[i:i + per_row]) + "," for i in range(0, len(values), per_row)]

    def ints(values) -> str:
        return ", ".join(str(int(v)) for v in values)

    kernels = []
    for s in specs:
        if s.op not in op_types:
            continue
        kernels.append({
            "index": s.index, "op": s.op, "template": s.template,
            "weight_rows": rows(s.weights.reshape(-1)) if s.weights is not None else [],
            "weight_bytes": 0 if s.weights is None else int(s.weights.size),
            "bias": ints(s.bias), "bias_folded": ints(s.bias_folded), "multiplier": ints(s.multiplier),
            "shift": ints(s.shift), "requant": ints(s.requant), "fast": int(s.fast),
            "requant_mode": s.requant_mode, "channels": s.channels, "hash": f"0x{s.weights_hash:08x}u",
            "in_bytes": s.in_bytes, "out_bytes": s.out_bytes, "act_min": s.act_min, "act_max": s.act_max,
            "add": s.add, "add_tables": [ints(t) for t in s.add_tables] if s.add_tables else None,
        })
    return {"kernels": kernels, "op_types": sorted(op_types),
            "registrations": [(op, GENERATED_OPS[op]) for op in sorted(op_types)]}


def render_sources(specs: list[KernelSpec], op_types: set[str] | None = None, banner: str = "generated") -> dict:
    """``{file name: text}`` of tf_kernels_impl.h and tf_kernels.cc for ``specs`` (used by tests
    and benchmarks; the firmware project renders the same templates)."""
    from tinyface.codegen.project import template_environment
    from tinyface.resources import firmware_dir

    env = template_environment(firmware_dir())
    types = {s.op for s in specs} if op_types is None else op_types
    context = render_context(specs, types)
    sources = {name: env.get_template(f"src/{name}.j2").render(banner=banner, **context)
               for name in ("tf_kernels.h", "tf_kernels.cc")}
    # the kernel templates themselves are plain C++ (their shapes are C++ template arguments)
    sources["tf_kernels_impl.h"] = f"// {banner}\n" + (firmware_dir() / "src" / "tf_kernels_impl.h").read_text()
    return sources
