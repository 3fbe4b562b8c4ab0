"""ESP-NN's scratch sizes: tinyface's port against esp-nn's own C size functions, and the arena the
firmware reserves for them.

The C functions are cut out of the vendored esp-nn sources (the rest of those files is S3 or P4
assembly, which the host cannot compile) and compiled with the host's gcc."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tinyface.codegen.esp_nn_scratch import (
    C_SIZE_FUNCTIONS,
    SIZE_FUNCTIONS,
    ConvShape,
    c_size_functions,
    conv_scratch_esp32s3,
    conv_shape,
    largest_scratch_bytes,
    layer_scratch_bytes,
)
from tinyface.model.graph import Layer, analyze

REPO = Path(__file__).resolve().parents[2]
ESP_NN = Path(os.environ.get("ESP_NN_DIR") or REPO.parent / "shared" / "vendor" / "esp-nn")
RELEASED = ("esp32", "esp32c3", "esp32s3")
PORTS = {(chip, op): SIZE_FUNCTIONS[chip][op] for chip, op in C_SIZE_FUNCTIONS}  # the port of each C function

DRIVER = r"""
#include <stdio.h>
int main(void) {
  int fn, a[13];
  while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d", &fn, a, a+1, a+2, a+3, a+4, a+5, a+6, a+7, a+8,
               a+9, a+10, a+11, a+12) == 14) {
    data_dims_t in = {.width = a[0], .height = a[1], .channels = a[2], .extra = 1};
    data_dims_t f = {.width = a[3], .height = a[4], .channels = 0, .extra = 0};
    data_dims_t out = {.width = a[5], .height = a[6], .channels = a[7], .extra = 1};
    conv_params_t c = {.stride = {a[8], a[9]}, .padding = {a[10], a[11]}};
    dw_conv_params_t d = {.ch_mult = a[12], .stride = {a[8], a[9]}, .padding = {a[10], a[11]}};
    int r = fn == 0 ? FN0(&in, &f, &out, &c) : fn == 1 ? FN1(&in, &f, &out, &d)
          : fn == 2 ? FN2(&in, &f, &out, &c) : FN3(&in, &f, &out, &d);
    printf("%d\n", r);
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def esp_nn_sizes(tmp_path_factory):
    """A host program running esp-nn's four size functions on lines of shapes."""
    src_dir = ESP_NN / "src" / "convolution"
    if not src_dir.is_dir():
        skip_or_fail(f"no esp-nn sources at {ESP_NN} (set ESP_NN_DIR)")
    if shutil.which("gcc") is None:
        skip_or_fail("no gcc")
    keys = list(C_SIZE_FUNCTIONS)
    parts = ['#include "esp_nn_defs.h"', c_size_functions(ESP_NN)]
    parts += [f"#define FN{i} {C_SIZE_FUNCTIONS[k][1]}" for i, k in enumerate(keys)] + [DRIVER]
    work = tmp_path_factory.mktemp("esp_nn_sizes")
    (work / "sizes.c").write_text("\n\n".join(parts), encoding="utf-8")
    program = work / "sizes"
    subprocess.run(["gcc", "-O1", "-w", f"-I{ESP_NN / 'include'}", f"-I{ESP_NN / 'src' / 'common'}",
                    str(work / "sizes.c"), "-o", str(program)], check=True, capture_output=True, text=True)

    def run(cases: list[tuple[tuple[str, int], ConvShape]]) -> list[int]:
        lines = []
        for key, s in cases:
            lines.append(" ".join(str(v) for v in (keys.index(key), s.input_wd, s.input_ht, s.in_ch, s.filter_wd,
                                                   s.filter_ht, s.out_wd, s.out_ht, s.out_ch, s.stride_wd,
                                                   s.stride_ht, s.pad_wd, s.pad_ht, s.ch_mult)))
        out = subprocess.run([str(program)], input="\n".join(lines) + "\n", check=True, capture_output=True,
                             text=True).stdout.split()
        return [int(v) for v in out]

    return run


def _layer(op: str, in_hw, in_ch: int, k_hw, stride_hw, dilation_hw=(1, 1), same=True, mult=1, out_ch=None):
    """A graph Layer of a convolution, shaped as the TFLite converter would (SAME: ceil(in / stride))."""
    def out(size, k, s, d):
        return -(-size // s) if same else max(1, (size - ((k - 1) * d + 1)) // s + 1)
    oh, ow = (out(in_hw[i], k_hw[i], stride_hw[i], dilation_hw[i]) for i in (0, 1))
    if op == "DEPTHWISE_CONV_2D":
        out_ch, filt = in_ch * mult, (1, *k_hw, in_ch * mult)
    else:
        filt = (out_ch, *k_hw, in_ch)
    return Layer(0, op, (1, oh, ow, out_ch), 0, 0, 0, 0, ((1, *in_hw, in_ch), filt), stride=tuple(stride_hw),
                 padding="SAME" if same else "VALID", dilation=tuple(dilation_hw),
                 depth_multiplier=mult if op == "DEPTHWISE_CONV_2D" else 0)


# one shape for each branch of the four size functions (chip, op, layer)
NAMED = {
    "s3 conv 1x1, channels a multiple of 8": _layer("CONV_2D", (5, 5), 224, (1, 1), (1, 1), out_ch=448),
    "s3 conv 1x1, channels padded to 8, a small map": _layer("CONV_2D", (2, 3), 13, (1, 1), (1, 1), out_ch=40),
    "s3 conv im2col (row < 16, window >= 16)": _layer("CONV_2D", (40, 40), 3, (3, 3), (2, 2), out_ch=16),
    "s3 conv strided 3x3 stem, 1 channel": _layer("CONV_2D", (80, 80), 1, (3, 3), (2, 2), out_ch=32),
    "s3 conv padded 3x3": _layer("CONV_2D", (20, 20), 32, (3, 3), (1, 1), out_ch=64),
    "s3 conv valid 3x3 with a ragged edge": _layer("CONV_2D", (21, 20), 32, (3, 3), (2, 2), same=False, out_ch=8),
    "s3 dw 3x3, 16n channels, padded, small": _layer("DEPTHWISE_CONV_2D", (20, 20), 64, (3, 3), (1, 1)),
    "s3 dw 3x3, 16n channels, padded, tiled": _layer("DEPTHWISE_CONV_2D", (60, 60), 32, (3, 3), (1, 1)),
    "s3 dw 3x3, 16n channels, no padding": _layer("DEPTHWISE_CONV_2D", (9, 9), 16, (3, 3), (3, 3), same=False),
    "s3 dw 3x3, 8n channels >= 12": _layer("DEPTHWISE_CONV_2D", (20, 20), 24, (3, 3), (2, 2)),
    "s3 dw 3x3, 8 channels": _layer("DEPTHWISE_CONV_2D", (20, 20), 8, (3, 3), (1, 1)),
    "s3 dw 5x5, 8n channels, small": _layer("DEPTHWISE_CONV_2D", (20, 20), 16, (5, 5), (1, 1)),
    "s3 dw 5x5, 8n channels, tiled": _layer("DEPTHWISE_CONV_2D", (100, 100), 16, (5, 5), (1, 1)),
    "s3 dw mult 1, channels > 3": _layer("DEPTHWISE_CONV_2D", (20, 20), 13, (3, 3), (1, 1)),
    "s3 dw mult 4": _layer("DEPTHWISE_CONV_2D", (20, 20), 3, (3, 3), (1, 1), mult=4),
    "s3 dw fallback (mult 2)": _layer("DEPTHWISE_CONV_2D", (20, 20), 3, (3, 3), (1, 1), mult=2),
    "p4 conv 1x1, under 16 channels": _layer("CONV_2D", (10, 10), 8, (1, 1), (1, 1), out_ch=32),
    "p4 conv direct, no padding": _layer("CONV_2D", (20, 20), 32, (3, 3), (1, 1), same=False, out_ch=16),
    "p4 conv im2col": _layer("CONV_2D", (20, 20), 4, (3, 3), (1, 1), out_ch=16),
    "p4 conv tiny window, no padding": _layer("CONV_2D", (20, 20), 1, (3, 3), (1, 1), same=False, out_ch=16),
    "p4 conv padded, tiled past L1D": _layer("CONV_2D", (200, 200), 1, (3, 3), (1, 1), out_ch=16),
    "p4 conv padded, tiled, wide channels": _layer("CONV_2D", (200, 200), 1, (1, 7), (2, 2), out_ch=8),
    "p4 conv padded, one piece": _layer("CONV_2D", (20, 20), 1, (3, 3), (1, 1), out_ch=16),
    "dilated SAME conv": _layer("CONV_2D", (30, 30), 16, (3, 3), (1, 1), dilation_hw=(2, 2), out_ch=16),
    "dilated SAME dw": _layer("DEPTHWISE_CONV_2D", (30, 30), 16, (3, 3), (1, 1), dilation_hw=(2, 3)),
}


def _random_layers(n: int, seed: int = 0):
    """Random convolutions: not square, strides and dilations per axis, inputs up to 300 wide."""
    rng = random.Random(seed)
    channels = (1, 3, 4, 8, 12, 13, 16, 24, 32, 40, 48, 56, 64, 96, 112, 128, 224, 448)
    for _ in range(n):
        dw = rng.random() < 0.5
        k_hw = tuple(rng.choice((1, 3, 5, 7) if not dw else (3, 3, 5)) for _ in range(2))
        stride_hw = tuple(rng.choice((1, 1, 2, 3)) for _ in range(2))
        dilation_hw = tuple(rng.choice((1, 1, 1, 2)) for _ in range(2))
        in_hw = tuple(rng.choice((rng.randint(1, 24), rng.randint(1, 96), rng.randint(1, 300))) for _ in range(2))
        ch = rng.choice(channels) if rng.random() < 0.8 else rng.randint(1, 300)
        yield _layer("DEPTHWISE_CONV_2D" if dw else "CONV_2D", in_hw, ch, k_hw, stride_hw, dilation_hw,
                     same=rng.random() < 0.7, mult=rng.choice((1, 1, 1, 2, 4, 8)) if dw else 1,
                     out_ch=None if dw else rng.choice((8, 16, 32, 64, 96, 128, 256, 448, rng.randint(1, 512))))


def test_the_port_gives_esp_nn_s_own_sizes(esp_nn_sizes):
    """Every convolution of the released models, a named case for each branch, and 1,500 random
    ones, on both chips."""
    layers = [layer for name in RELEASED for layer in analyze((REPO / "models" / name / "model.tflite")
                                                              .read_bytes()).layers if conv_shape(layer)]
    layers += [*NAMED.values(), *_random_layers(1500)]
    cases = [((chip, layer.op), conv_shape(layer)) for chip in ("esp32s3", "esp32p4") for layer in layers]
    expected = esp_nn_sizes(cases)
    got = [PORTS[key](shape) for key, shape in cases]
    wrong = [(key, shape, e, g) for (key, shape), e, g in zip(cases, expected, got, strict=True) if e != g]
    assert not wrong, wrong[:5]


def test_the_named_cases_reach_their_branches():
    """The named shapes take different paths: each chip's sizes for them differ from one another
    in the ways the branches do (a change that sends two branches through one formula shows)."""
    s3 = {name: PORTS[("esp32s3", layer.op)](conv_shape(layer)) for name, layer in NAMED.items()
          if name.startswith("s3")}
    assert len(set(s3.values())) == len(s3), s3
    p4 = {name: PORTS[("esp32p4", layer.op)](conv_shape(layer)) for name, layer in NAMED.items()
          if name.startswith("p4")}
    assert len(set(p4.values())) == len(p4), p4
    tiled = conv_shape(NAMED["p4 conv padded, tiled past L1D"])
    assert (tiled.input_wd + 2) * (tiled.input_ht + 2) * tiled.in_ch + tiled.out_ch * 4 > 32768  # past L1D_BUDGET
    dilated = conv_shape(NAMED["dilated SAME conv"])
    assert dilated.pad_wd == dilated.pad_ht == 2  # (3 - 1) * 2 + 1 = 5 wide: 2 on each side


def test_softmax_asks_for_four_bytes_a_value_on_every_chip():
    layer = Layer(0, "SOFTMAX", (1, 10), 0, 0, 0, 10, ((1, 10),))
    assert {layer_scratch_bytes(layer, chip) for chip in ("generic", "esp32s3", "esp32p4")} == {40}


def test_conv_shape_reads_tflm_s_padding():
    """models/esp32s3's layer 22 (a 1x1 conv, 5x5x224 -> 448) and its strided 3x3 stem."""
    graph = analyze((REPO / "models" / "esp32s3" / "model.tflite").read_bytes())
    stem = conv_shape(graph.layers[0])
    assert (stem.input_wd, stem.in_ch, stem.filter_wd, stem.stride_wd, stem.out_wd, stem.pad_wd) == (80, 1, 3, 2, 40, 0)
    assert conv_shape(graph.layers[1]).pad_wd == 0 and conv_shape(graph.layers[3]).pad_wd == 1  # strided / not
    assert conv_scratch_esp32s3(conv_shape(graph.layers[22])) == 448 * 224 + 2 * 8 * 224 + 64 == 104_000
    assert largest_scratch_bytes(graph, "esp32s3") == 104_000
    assert largest_scratch_bytes(graph, "generic") == 0  # the ESP32's and the C3's kernels ask for none
    assert largest_scratch_bytes(graph, "esp32s3", on_esp_nn=set()) == 0  # generated kernels run every op


def test_the_s3_firmware_reserves_the_scratch(tmp_path):
    """The S3's arena is TFLM's recording + margin + the largest scratch; the ESP32's has none."""
    from tinyface.boards import load_board
    from tinyface.codegen import generate_project
    from tinyface.model.bundle import load_bundle

    s3 = generate_project(load_bundle(REPO / "models" / "esp32s3"), load_board("esp32s3"), tmp_path / "s3")
    assert s3.arena.esp_nn_scratch_bytes == 104_000
    assert s3.arena.bytes == -(-(int(s3.arena.used_bytes * 1.15 + 0.999999) + 104_000) // 16) * 16
    settings = (tmp_path / "s3" / "src" / "model_settings.h").read_text()
    assert f"#define TF_ARENA_BYTES {s3.arena.bytes}\n" in settings
    assert "#define TF_ARENA_ESP_NN_SCRATCH_BYTES 104000\n" in settings
    esp32 = generate_project(load_bundle(REPO / "models" / "esp32"), load_board("esp32"), tmp_path / "esp32")
    assert esp32.arena.esp_nn_scratch_bytes == 0
