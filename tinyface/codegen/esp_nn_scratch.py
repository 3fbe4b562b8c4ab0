"""The scratch memory ESP-NN's kernels ask of TFLM's arena.

esp-tflite-micro's ESP-NN kernels (``kernels/esp_nn/conv.cc``, ``depthwise_conv.cc`` and
``softmax.cc``) request, in Prepare, a scratch buffer of ``esp_nn_get_conv_scratch_size`` /
``esp_nn_get_depthwise_conv_scratch_size`` / ``esp_nn_get_softmax_scratch_size`` bytes for every
int8 convolution and softmax. ESP-NN's generic C convolutions (the classic ESP32, the C3) ask for
none; the ESP32-S3's assembly ones ask for a lot (a 1x1 convolution copies its whole filter
there); every chip's softmax asks for 4 bytes per value of its input's second dimension. TFLM's
reference kernels on the host, which record the arena, ask for nothing, so the recording is short
by the scratch; tinyface.codegen.arena adds the largest.

The functions below are esp-nn 1.2.3's own size functions, line for line
(``src/convolution/esp_nn_conv_esp32s3.c``, ``esp_nn_depthwise_conv_s8_esp32s3.c``,
``esp_nn_conv_esp32p4.c``, ``esp_nn_depthwise_conv_esp32p4.c``, ``src/softmax/*``), with two
differences that only ever add: the C keeps every dimension in a ``uint16_t`` (no layer here
comes near 65,536), and the count does not check that the op is int8 (a float op asks for
nothing). tests/codegen/test_esp_nn_scratch.py compiles the C convolution functions from the
vendored esp-nn and compares them with these on every layer of the released models and on
random shapes. A newer esp-nn (idf_component.yml pins the version) may ask differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tinyface.codegen.kernels import same_padding

# esp-nn 1.2.3, src/convolution/esp_nn_conv_esp32p4.c
_P4_L1D_BUDGET = 32768
# The C size functions, by (chip, op): their file under esp-nn's src/convolution and name
C_SIZE_FUNCTIONS = {
    ("esp32s3", "CONV_2D"): ("esp_nn_conv_esp32s3.c", "esp_nn_get_conv_scratch_size_esp32s3"),
    ("esp32s3", "DEPTHWISE_CONV_2D"): ("esp_nn_depthwise_conv_s8_esp32s3.c",
                                       "esp_nn_get_depthwise_conv_scratch_size_esp32s3"),
    ("esp32p4", "CONV_2D"): ("esp_nn_conv_esp32p4.c", "esp_nn_get_conv_scratch_size_esp32p4"),
    ("esp32p4", "DEPTHWISE_CONV_2D"): ("esp_nn_depthwise_conv_esp32p4.c",
                                       "esp_nn_get_depthwise_conv_scratch_size_esp32p4"),
}


@dataclass(frozen=True)
class ConvShape:
    """What ESP-NN's size functions read of an int8 convolution, as esp-tflite-micro fills it."""

    input_wd: int
    input_ht: int
    in_ch: int
    filter_wd: int
    filter_ht: int
    out_wd: int
    out_ht: int
    out_ch: int
    stride_wd: int
    stride_ht: int
    pad_wd: int  # TFLM's leading padding (ComputePaddingHeightWidth), 0 for VALID
    pad_ht: int
    ch_mult: int = 1  # depthwise only


def _cdiv(a: int, b: int) -> int:
    """C's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _align(x: int, to: int) -> int:
    return (x + to - 1) & ~(to - 1)


def conv_scratch_esp32s3(s: ConvShape) -> int:
    """esp_nn_get_conv_scratch_size_esp32s3."""
    new_channels = _align(s.in_ch, 8)
    input_scratch = s.input_wd * s.input_ht * s.in_ch
    align_buf_size = 64
    if s.filter_wd == 1 and s.filter_ht == 1 and s.pad_wd == 0 and s.pad_ht == 0 \
            and s.stride_wd == 1 and s.stride_ht == 1:
        transpose_buf_size = 2 * (8 * new_channels)
        if s.input_wd * s.input_ht < 8:
            transpose_buf_size = 0
        input_scratch = s.input_wd * s.input_ht * new_channels if s.in_ch % 8 else 0
        filter_scratch = new_channels * s.out_ch
        return input_scratch + filter_scratch + transpose_buf_size + align_buf_size
    filter_row_size = s.filter_wd * s.in_ch
    window_len = s.filter_wd * s.filter_ht * s.in_ch
    if filter_row_size < 16 and window_len >= 16:  # im2col
        window_len_aligned = _align(window_len, 16)
        return s.out_ch * 4 + 16 + s.out_ch * window_len_aligned + 16 + window_len_aligned + align_buf_size
    new_channels = _align(s.in_ch, 16)
    if s.pad_wd == 0 and s.pad_ht == 0:
        input_scratch = 0
    else:
        input_scratch = (s.input_wd + 2 * s.pad_wd) * (s.input_ht + 2 * s.pad_ht) * s.in_ch
    filter_scratch = s.filter_wd * s.filter_ht * new_channels * s.out_ch
    aligned_filter_row_size = _cdiv(filter_row_size + 15, 16) * 16
    filter_alignment_scratch = aligned_filter_row_size * s.filter_ht * s.out_ch
    pad_right = max(0, (s.out_wd * s.stride_wd + s.filter_wd - 1) - s.input_wd)
    pad_bottom = max(0, (s.out_ht * s.stride_ht + s.filter_ht - 1) - s.input_ht)
    boundary_padding_scratch = 0
    if pad_right > 0 or pad_bottom > 0:
        boundary_padding_scratch = (s.input_wd + pad_right) * (s.input_ht + pad_bottom) * s.in_ch
    offset_acc_scratch = s.out_ch * 4
    return (input_scratch + filter_scratch + filter_alignment_scratch + boundary_padding_scratch
            + align_buf_size + offset_acc_scratch)


def depthwise_scratch_esp32s3(s: ConvShape) -> int:
    """esp_nn_get_depthwise_conv_scratch_size_esp32s3."""
    channels, ch_mult = s.in_ch, s.ch_mult
    filter_size = s.filter_wd * s.filter_ht * channels * ch_mult
    if ch_mult == 1 and channels % 8 == 0:
        if s.filter_wd == 3 and s.filter_ht == 3:
            if channels % 16 == 0:
                if s.pad_wd or s.pad_ht:
                    pad_width, pad_height = s.pad_wd * 2, s.pad_ht * 2
                else:
                    pad_width = (s.out_wd * s.stride_wd + s.filter_wd - 1) - s.input_wd
                    pad_height = (s.out_ht * s.stride_ht + s.filter_ht - 1) - s.input_ht
                if pad_width or pad_height:
                    full_input = (s.input_wd + pad_width) * (s.input_ht + pad_height) * channels
                    if full_input <= 40 * 1024:
                        return filter_size + full_input + 16
                    strip = (s.input_wd + pad_width) * s.filter_ht * channels
                    return filter_size + strip + 16
                return filter_size + 16
            if channels >= 12:
                new_ch = _align(channels, 16)
                new_filter_size = 9 * new_ch
                total_pad_wd = s.pad_wd * 2 + max(0, (s.out_wd * s.stride_wd + 2) - s.input_wd)
                total_pad_ht = s.pad_ht * 2 + max(0, (s.out_ht * s.stride_ht + 2) - s.input_ht)
                new_input_size = (s.input_wd + total_pad_wd) * (s.input_ht + total_pad_ht) * new_ch
                out_buf_size = s.out_wd * s.out_ht * new_ch
                return new_filter_size + new_input_size + out_buf_size + 64
            input_s = s.input_wd * s.input_ht * channels
            return 2 * (filter_size + input_s) + 32
        input_size = s.input_wd * s.input_ht * channels
        total_s16 = 2 * (filter_size + input_size)
        if total_s16 <= 48 * 1024:
            return total_s16 + 32
        tile_s16 = 2 * s.input_wd * s.filter_ht * channels
        return 2 * filter_size + tile_s16 + 32
    if ch_mult == 1 and channels > 3:
        padded_channels = _align(channels, 8)
        padded_input_size = s.input_wd * s.input_ht * padded_channels
        padded_filter_size = s.filter_wd * s.filter_ht * padded_channels
        filter_bytes = padded_filter_size * 2
        input_start = _align(filter_bytes, 16)
        out_start = _align(input_start + padded_input_size * 2, 16)
        out_bytes = s.out_wd * s.out_ht * padded_channels
        bias_start = _align(out_start + out_bytes, 16)
        return bias_start + 3 * padded_channels * 4 + 16
    if ch_mult % 4 == 0:
        input_size = s.input_wd * s.input_ht * channels
        return 2 * (filter_size + input_size) + 32
    return 32


def conv_scratch_esp32p4(s: ConvShape) -> int:
    """esp_nn_get_conv_scratch_size_esp32p4."""
    new_channels = _align(s.in_ch, 8)
    align_buf_size = 32
    if s.filter_wd == 1 and s.filter_ht == 1 and s.pad_wd == 0 and s.pad_ht == 0 \
            and s.stride_wd == 1 and s.stride_ht == 1:
        if s.in_ch < 16:
            return s.out_ch * 4 + 16 * s.out_ch + 32 + align_buf_size
        transpose_buf_size = 0 if s.input_wd * s.input_ht < 8 else 2 * (8 * new_channels)
        input_scratch = s.input_wd * s.input_ht * new_channels if s.in_ch % 8 else 0
        return input_scratch + new_channels * s.out_ch + transpose_buf_size + align_buf_size
    new_channels = _align(s.in_ch, 16)
    offset_acc_scratch = s.out_ch * 4
    if s.pad_wd == 0 and s.pad_ht == 0 and s.filter_wd * s.in_ch >= 16:
        return s.filter_wd * s.filter_ht * new_channels * s.out_ch + align_buf_size + offset_acc_scratch
    if s.filter_wd * s.filter_ht * s.in_ch >= 16:  # im2col
        return offset_acc_scratch + s.filter_wd * s.filter_ht * s.in_ch + align_buf_size
    if s.pad_wd == 0 and s.pad_ht == 0:  # a very small window: tiled
        eff_ch = _align(_cdiv(16 + s.filter_wd - 1, s.filter_wd), 16)
        filt_aligned = s.filter_wd * s.filter_ht * eff_ch * s.out_ch
        return offset_acc_scratch + filt_aligned + s.input_wd * s.input_ht * eff_ch + align_buf_size
    padded_input_wd = s.input_wd + 2 * s.pad_wd
    full_input_size = padded_input_wd * (s.input_ht + 2 * s.pad_ht) * s.in_ch
    if full_input_size + offset_acc_scratch > _P4_L1D_BUDGET:
        eff_ch, filt_aligned = s.in_ch, 0
        if s.filter_wd * s.in_ch < 16:
            eff_ch = _align(_cdiv(16 + s.filter_wd - 1, s.filter_wd), 16)
            filt_aligned = s.filter_wd * s.filter_ht * eff_ch * s.out_ch
        tile_row_bytes = padded_input_wd * eff_ch
        budget_for_input = _P4_L1D_BUDGET - offset_acc_scratch - filt_aligned
        tile_t = 1
        if budget_for_input > 0 and s.filter_ht * tile_row_bytes <= budget_for_input:
            tile_t = _cdiv(budget_for_input - s.filter_ht * tile_row_bytes, s.stride_ht * tile_row_bytes) + 1
            tile_t = min(tile_t, s.out_ht)
        tile_input_rows = (tile_t - 1) * s.stride_ht + s.filter_ht + 2 * s.pad_ht
        input_scratch, filter_scratch = tile_input_rows * tile_row_bytes, filt_aligned
    else:
        input_scratch = full_input_size
        filter_scratch = s.filter_wd * s.filter_ht * new_channels * s.out_ch
    return input_scratch + filter_scratch + align_buf_size + offset_acc_scratch


def depthwise_scratch_esp32p4(s: ConvShape) -> int:
    """esp_nn_get_depthwise_conv_scratch_size_esp32p4 (it asks for none)."""
    return 0


def _no_scratch(s: ConvShape) -> int:
    """esp_nn_get_conv_scratch_size_opt / esp_nn_get_depthwise_conv_scratch_size_opt (generic C)."""
    return 0


# by chip.esp_nn_kernels (tinyface.boards.ESP_NN_KERNELS)
SIZE_FUNCTIONS = {
    "generic": {"CONV_2D": _no_scratch, "DEPTHWISE_CONV_2D": _no_scratch},
    "esp32s3": {"CONV_2D": conv_scratch_esp32s3, "DEPTHWISE_CONV_2D": depthwise_scratch_esp32s3},
    "esp32p4": {"CONV_2D": conv_scratch_esp32p4, "DEPTHWISE_CONV_2D": depthwise_scratch_esp32p4},
}


def softmax_scratch(input_shape: tuple[int, ...]) -> int:
    """esp_nn_get_softmax_scratch_size_{opt,esp32s3,esp32p4}(width, height): ``width * 4``,
    ``width`` being the input's dims->data[1] as esp-tflite-micro's softmax.cc passes it."""
    return 4 * (input_shape[1] if len(input_shape) > 1 else input_shape[0]) if input_shape else 0


def conv_shape(layer) -> ConvShape | None:
    """The ConvShape of an int8 convolution (a tinyface.model.graph.Layer), None for other ops."""
    if layer.op not in ("CONV_2D", "DEPTHWISE_CONV_2D") or len(layer.input_shapes) < 2:
        return None
    (_, in_h, in_w, in_c), filt, (_, out_h, out_w, out_c) = layer.input_shapes[0], layer.input_shapes[1], \
        layer.output_shape
    f_h, f_w = filt[1], filt[2]
    (s_h, s_w), (d_h, d_w) = layer.stride, layer.dilation
    pad_h = same_padding(in_h, f_h, s_h, out_h, d_h) if layer.padding == "SAME" else 0
    pad_w = same_padding(in_w, f_w, s_w, out_w, d_w) if layer.padding == "SAME" else 0
    return ConvShape(in_w, in_h, in_c, f_w, f_h, out_w, out_h, out_c, s_w, s_h, pad_w, pad_h,
                     layer.depth_multiplier if layer.op == "DEPTHWISE_CONV_2D" else 1)


def layer_scratch_bytes(layer, esp_nn_kernels: str) -> int:
    """The scratch ``layer`` asks for when ESP-NN's ``esp_nn_kernels`` kernels run it (0: none)."""
    if layer.op == "SOFTMAX":
        return softmax_scratch(layer.input_shapes[0] if layer.input_shapes else ())
    shape = conv_shape(layer)
    if shape is None:
        return 0
    return max(0, SIZE_FUNCTIONS[esp_nn_kernels][layer.op](shape))


def largest_scratch_bytes(graph, esp_nn_kernels: str, on_esp_nn=None) -> int:
    """The largest scratch any op of ``graph`` (tinyface.model.graph.ModelGraph) asks for, among
    the ops ESP-NN runs: every op, or the op indexes in ``on_esp_nn`` (generated kernels run the
    others)."""
    return max([layer_scratch_bytes(layer, esp_nn_kernels) for layer in graph.layers
                if on_esp_nn is None or layer.index in on_esp_nn] or [0])


def c_size_functions(esp_nn_dir: str | Path, prefix: str = "") -> str:
    """esp-nn's own C size functions, cut out of its sources at ``esp_nn_dir`` (the rest of
    those files is S3 or P4 assembly, which other compilers cannot build), as one block of C for
    checks that compile them: after ``#include "esp_nn_defs.h"``, with each function renamed
    ``prefix + name`` and ``static`` when a prefix is given, and the ``max``/``min`` macros they
    use defined for them alone."""
    src = Path(esp_nn_dir) / "src" / "convolution"
    p4 = (src / "esp_nn_conv_esp32p4.c").read_text(encoding="utf-8")
    budget = re.search(r"#define L1D_BUDGET (\d+)", p4).group(1)
    parts = ["#include <stddef.h>",
             "#define max(a, b) ((a) > (b) ? (a) : (b))",
             "#define min(a, b) ((a) < (b) ? (a) : (b))",
             f"#define L1D_BUDGET {budget}"]
    for file, name in C_SIZE_FUNCTIONS.values():
        text = (src / file).read_text(encoding="utf-8")
        start = text.index(f"int {name}(")
        depth, end = 0, -1
        for i in range(text.index("{", start), len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                end = i + 1
                break
        body = text[start:end]
        if prefix:
            body = "static " + body.replace(f"int {name}(", f"int {prefix}{name}(", 1)
        parts.append(body)
    parts += ["#undef max", "#undef min", "#undef L1D_BUDGET"]
    return "\n\n".join(parts) + "\n"
