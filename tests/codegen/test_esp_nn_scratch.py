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

from tinyface.codegen.esp_nn_scratch import (C_SIZE_FUNCTIONS, ConvShape, c_size_functions, conv_scratch_esp32p4,
                                             conv_scratch_esp32s3, conv_shape, depthwise_scratch_esp32p4,
                                             depthwise_scratch_esp32s3, largest_scratch_bytes)
from tinyface.model.graph import analyze

from tests.conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
ESP_NN = Path(os.environ.get("ESP_NN_DIR") or REPO.parent / "shared" / "vendor" / "esp-nn")
RELEASED = ("esp32", "esp32c3", "esp32s3")
PORTS = {("esp32s3", "CONV_2D"): conv_scratch_esp32s3, ("esp32s3", "DEPTHWISE_CONV_2D"): depthwise_scratch_esp32s3,
         ("esp32p4", "CONV_2D"): conv_scratch_esp32p4, ("esp32p4", "DEPTHWISE_CONV_2D"): depthwise_scratch_esp32p4}

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


def _released_shapes():
    for name in RELEASED:
        graph = analyze((REPO / "models" / name / "model.tflite").read_bytes())
        for layer in graph.layers:
            shape = conv_shape(layer)
            if shape is not None:
                yield layer.op, shape


def _random_shapes(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        dw = rng.random() < 0.5
        k = rng.choice((1, 3, 5)) if not dw else rng.choice((3, 5))
        stride = rng.choice((1, 2))
        size = rng.randint(1, 96)
        ch = rng.choice((1, 3, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 96, 112, 128, 224, 448)) if rng.random() < 0.8 \
            else rng.randint(1, 300)
        mult = rng.choice((1, 1, 1, 2, 4, 8)) if dw else 1
        out_ch = ch * mult if dw else rng.choice((8, 16, 32, 48, 64, 96, 128, 256, 448, rng.randint(1, 512)))
        same = rng.random() < 0.7
        out = -(-size // stride) if same else max(1, (size - k) // stride + 1)
        pad = max((out - 1) * stride + k - size, 0) // 2 if same else 0
        yield "DEPTHWISE_CONV_2D" if dw else "CONV_2D", ConvShape(size, size, ch, k, k, out, out, out_ch, stride, stride, pad, pad, mult)


def test_the_port_gives_esp_nn_s_own_sizes(esp_nn_sizes):
    """Every convolution of the released models, and 600 random ones, on both chips."""
    cases = [((chip, op), shape) for chip in ("esp32s3", "esp32p4")
             for op, shape in [*_released_shapes(), *_random_shapes(600)]]
    expected = esp_nn_sizes(cases)
    got = [PORTS[key](shape) for key, shape in cases]
    wrong = [(key, shape, e, g) for (key, shape), e, g in zip(cases, expected, got) if e != g]
    assert not wrong, wrong[:5]
    assert len({v for v in expected}) > 100  # the shapes reach many branches, not one size


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
