"""The generated kernels against TFLM's reference integer kernels, compiled together with g++.

Each test renders tf_kernels.cc for a batch of op configurations (random weights, biases,
scales and zero points; activations pushed to -128/127; odd channel counts; SAME and VALID;
stride 1 and 2), writes a host program that runs every op through both the generated kernel
and the header-only reference in tensorflow/lite/kernels/internal/reference/integer_ops/,
and compares the int8 outputs byte for byte. The program also recomputes each baked
multiplier with TFLM's own QuantizeMultiplier. Real compilers, real TFLM sources.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import skip_or_fail
from tinyface.codegen import kernels as K

REPO = Path(__file__).resolve().parents[2]
TFLM = Path(os.environ.get("TFLM_DIR", REPO.parent / "shared" / "vendor" / "esp-tflite-micro"))
THIRD = Path(os.environ.get("TFLM_THIRD_PARTY_DIR", TFLM / "third_party"))


def needs_compiler(test):
    """The tests that compile C++: g++ and the tflite-micro sources (../shared/vendor or TFLM_DIR);
    skipped without them, failed in CI (tests.conftest.skip_or_fail)."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        if shutil.which("g++") is None:
            skip_or_fail("g++ not found")
        if not (TFLM / "tensorflow/lite/kernels/internal/common.h").is_file():
            skip_or_fail(f"no tflite-micro sources at {TFLM} (set TFLM_DIR)")
        return test(*args, **kwargs)
    return run

FLAGS = ["-std=c++17", "-O1", "-DTF_LITE_STATIC_MEMORY", "-DTFK_KERNELS_ONLY", f"-I{TFLM}",
         f"-I{THIRD / 'gemmlowp'}", f"-I{THIRD / 'flatbuffers' / 'include'}", f"-I{THIRD / 'ruy'}"]


@pytest.fixture(scope="session")
def tflm_objects(tmp_path_factory) -> list[str]:
    """common.cc (MultiplyByQuantizedMultiplier) and quantization_util.cc, compiled once."""
    out = tmp_path_factory.mktemp("tflm_objs")
    objs = []
    for src in ("tensorflow/lite/kernels/internal/common.cc", "tensorflow/lite/kernels/internal/quantization_util.cc"):
        obj = out / (Path(src).stem + ".o")
        subprocess.run(["g++", *FLAGS, "-c", str(TFLM / src), "-o", str(obj)], check=True)
        objs.append(str(obj))
    return objs


def _c_ints(values) -> str:
    return ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))


def _extreme_int8(rng, shape) -> np.ndarray:
    """Random int8 with a good share of -128 and 127."""
    x = rng.integers(-128, 128, size=shape)
    mask = rng.random(shape)
    x[mask < 0.15] = -128
    x[mask > 0.85] = 127
    return x.astype(np.int8)


def _random_case(rng, index: int, op: str, **shape) -> tuple[K.KernelSpec, dict]:
    """A random op config; returns the spec and what the reference call needs."""
    in_scale = float(np.float32(rng.uniform(0.005, 0.1)))
    out_scale = float(np.float32(rng.uniform(0.01, 0.2)))
    if shape.get("large_multiplier"):  # multipliers above 1/2: shifts >= 0, the general requantization
        in_scale, out_scale = float(np.float32(rng.uniform(2.0, 8.0))), float(np.float32(0.01))
    if shape.get("power_of_two_multiplier"):  # in * filter / out = 2^-8: TFLM's multiplier is exactly 2^30
        in_scale, out_scale = 2.0**-6, 2.0**-4
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    act = int(shape["act"]) if "act" in shape else int(rng.choice([0, 1, 3]))
    if op == "ADD":
        n = shape["n"]
        s2, z2 = float(np.float32(rng.uniform(0.005, 0.1))), int(rng.integers(-128, 128))
        spec = K.add_spec(index, n, in_scale, in_zp, s2, z2, out_scale, out_zp, act)
        return spec, {"in": [_extreme_int8(rng, n), _extreme_int8(rng, n)], "scales": (in_scale, s2, out_scale)}
    if op == "FULLY_CONNECTED":
        units, depth = shape["units"], shape["depth"]
        w = _extreme_int8(rng, (units, depth))
        bias = rng.integers(-20000, 20000, size=units).astype(np.int32)
        fs = np.float32(rng.uniform(0.001, 0.02, size=1 if shape.get("per_tensor") else units))
        spec = K.fully_connected_spec(index, w, bias, in_scale, in_zp, fs, out_scale, out_zp, act)
        return spec, {"in": [_extreme_int8(rng, depth)], "w": w, "bias": bias, "fs": fs,
                      "scales": (in_scale, out_scale), "zp": (in_zp, out_zp)}
    h, w_, c = shape["h"], shape["w"], shape["cin"]
    k, s, pad = shape["k"], shape["stride"], shape["padding"]
    kh, kw = (k, k) if isinstance(k, int) else k
    cout = shape.get("cout", c) if op == "CONV_2D" else c
    if op == "CONV_2D":
        w = _extreme_int8(rng, (cout, kh, kw, c))
    else:
        w = _extreme_int8(rng, (1, kh, kw, c))
    bias_max = shape.get("bias_max", 20000)
    bias = rng.integers(-bias_max, bias_max, size=cout).astype(np.int32)
    fs = np.float32(rng.uniform(0.001, 0.02, size=cout))
    if shape.get("power_of_two_multiplier"):
        fs = np.full(cout, 2.0**-6, np.float32)
    make = K.conv_spec if op == "CONV_2D" else K.depthwise_spec
    spec = make(index, (1, h, w_, c), w, bias, (s, s), pad, in_scale, in_zp, fs, out_scale, out_zp, act)
    oh, ow, pt, pl = K._output_geometry(h, w_, kh, kw, s, s, pad)
    return spec, {"in": [_extreme_int8(rng, (1, h, w_, c))], "w": w, "bias": bias, "fs": fs,
                  "scales": (in_scale, out_scale), "zp": (in_zp, out_zp),
                  "geom": (h, w_, c, oh, ow, cout, kh, kw, s, pt, pl)}


def _reference_call(spec: K.KernelSpec, ref: dict) -> str:
    """C++ that runs TFLM's reference kernel for one case into ref_out."""
    i = spec.index
    if spec.op == "ADD":
        a = spec.add
        return f"""
  {{
    tflite::ArithmeticParams p{{}};
    p.input1_offset = {a['input1_offset']}; p.input2_offset = {a['input2_offset']}; p.left_shift = {a['left_shift']};
    p.input1_multiplier = {a['input1_multiplier']}; p.input1_shift = {a['input1_shift']};
    p.input2_multiplier = {a['input2_multiplier']}; p.input2_shift = {a['input2_shift']};
    p.output_multiplier = {a['output_multiplier']}; p.output_shift = {a['output_shift']};
    p.output_offset = {a['output_offset']};
    p.quantized_activation_min = {a['act_min']}; p.quantized_activation_max = {a['act_max']};
    tflite::reference_integer_ops::AddElementwise({spec.out_bytes}, p, in{i}_0, in{i}_1, ref{i});
    check_add({i}, {float.hex(ref['scales'][0])}f, {float.hex(ref['scales'][1])}f, {float.hex(ref['scales'][2])}f,
              kKernels[{i}].add_params);
  }}"""
    fs = ", ".join(float.hex(float(v)) + "f" for v in ref["fs"])
    head = f"""
  {{
    static const int8_t w[] = {{ {_c_ints(ref['w'])} }};
    static const int32_t bias[] = {{ {_c_ints(ref['bias'])} }};
    static const float fs[] = {{ {fs} }};
    static int32_t mult[{spec.channels}]; static int32_t shift_[{spec.channels}];
    for (int c = 0; c < {spec.channels}; ++c) {{
      baked({i}, c, &mult[c], &shift_[c]);
    }}
    check_mult({i}, {float.hex(ref['scales'][0])}f, fs, {len(ref['fs'])}, {float.hex(ref['scales'][1])}f,
               {int(spec.op == 'FULLY_CONNECTED')}, {ref['zp'][1]});"""
    in_zp, out_zp = ref["zp"]
    if spec.op == "FULLY_CONNECTED":
        units, depth = ref["w"].shape
        return head + f"""
    tflite::FullyConnectedParams p{{}};
    p.input_offset = {-in_zp}; p.weights_offset = 0; p.output_offset = {out_zp};
    p.quantized_activation_min = {spec.act_min}; p.quantized_activation_max = {spec.act_max};
    tflite::reference_integer_ops::FullyConnectedPerChannel(p, mult, shift_, S({{1, {depth}}}), in{i}_0,
        S({{{units}, {depth}}}), w, S({{{units}}}), bias,
        S({{1, {units}}}), ref{i});
  }}"""
    h, w_, c, oh, ow, cout, kh, kw, s, pt, pl = ref["geom"]
    common = f"""
    p.input_offset = {-in_zp}; p.output_offset = {out_zp};
    p.stride_height = {s}; p.stride_width = {s}; p.dilation_height_factor = 1; p.dilation_width_factor = 1;
    p.padding_values.height = {pt}; p.padding_values.width = {pl};
    p.quantized_activation_min = {spec.act_min}; p.quantized_activation_max = {spec.act_max};"""
    shapes = (f"S({{1, {h}, {w_}, {c}}}), in{i}_0, "
              f"S({{{ref['w'].shape[0]}, {kh}, {kw}, {ref['w'].shape[3]}}}), w, "
              f"S({{{cout}}}), bias, S({{1, {oh}, {ow}, {cout}}}), ref{i}")
    if spec.op == "CONV_2D":
        return head + f"""
    tflite::ConvParams p{{}};{common}
    tflite::reference_integer_ops::ConvPerChannel(p, mult, shift_, {shapes});
  }}"""
    return head + f"""
    tflite::DepthwiseParams p{{}};{common}
    p.depth_multiplier = 1;
    tflite::reference_integer_ops::DepthwiseConvPerChannel(p, mult, shift_, {shapes});
  }}"""


MAIN_HEAD = r"""
#include <cstdio>
#include <cstring>
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/add.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/conv.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/depthwise_conv.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h"
#include "tf_kernels.h"
#include "tf_kernels_impl.h"
#include <initializer_list>
using tfk::kKernels;
static tflite::RuntimeShape S(std::initializer_list<int32_t> dims) {
  int32_t d[6]; int n = 0;
  for (int32_t v : dims) d[n++] = v;
  return tflite::RuntimeShape(n, d);
}
static int failures = 0;
// TFLM's multiplier and shift of channel c as baked in the kernel's requantization form:
// kRequantFast {2m, -shift, 2^(-shift-1)}, kRequantMulh {m, B, 1 - shift}, else the plain arrays.
static void baked(int op, int c, int32_t* m, int32_t* s) {
  const tfk::Kernel& k = kKernels[op];
  const int32_t* q = k.requant ? k.requant + 3 * c : nullptr;
  *m = k.requant_mode == tfk::kRequantFast ? static_cast<int32_t>(static_cast<uint32_t>(q[0]) >> 1)
       : k.requant_mode == tfk::kRequantMulh ? q[0] : k.multiplier[c];
  *s = k.requant_mode == tfk::kRequantFast ? -q[1] : k.requant_mode == tfk::kRequantMulh ? 1 - q[2] : k.shift[c];
}
// The baked multipliers must equal TFLM's QuantizeMultiplier on the same scales.
static void check_mult(int op, float in_scale, const float* fs, int n, float out_scale, int fc_per_tensor,
                       int32_t out_zp) {
  for (int c = 0; c < kKernels[op].channels; ++c) {
    const float f = n > 1 ? fs[c] : fs[0];
    double real = (fc_per_tensor && n == 1)
        ? static_cast<double>(in_scale * f) / static_cast<double>(out_scale)
        : static_cast<double>(in_scale) * static_cast<double>(f) / static_cast<double>(out_scale);
    int32_t m; int s;
    tflite::QuantizeMultiplier(real, &m, &s);
    const tfk::Kernel& k = kKernels[op];
    const int32_t* q = k.requant ? k.requant + 3 * c : nullptr;
    int32_t baked_m, baked_s;
    baked(op, c, &baked_m, &baked_s);
    const bool fast_bad = k.requant_mode == tfk::kRequantFast &&
                          ((static_cast<uint32_t>(q[0]) & 1u) || q[2] != (1 << (q[1] - 1)));
    const bool mulh_bad = k.requant_mode == tfk::kRequantMulh &&
                          q[1] != static_cast<int32_t>(static_cast<uint32_t>(out_zp) << q[2]) + (1 << (q[2] - 1)) + 1;
    if (m != baked_m || s != baked_s || fast_bad || mulh_bad) {
      std::printf("MULT op %d channel %d: baked %d/%d, TFLM %d/%d\n", op, c, baked_m, baked_s, m, s);
      ++failures;
    }
  }
}
static void check_add(int op, float s1, float s2, float so, const int32_t* p) {
  const double twice = 2 * static_cast<double>(s1 > s2 ? s1 : s2);
  int32_t m[3]; int s[3];
  tflite::QuantizeMultiplierSmallerThanOneExp(static_cast<double>(s1) / twice, &m[0], &s[0]);
  tflite::QuantizeMultiplierSmallerThanOneExp(static_cast<double>(s2) / twice, &m[1], &s[1]);
  tflite::QuantizeMultiplierSmallerThanOneExp(twice / ((1 << 20) * static_cast<double>(so)), &m[2], &s[2]);
  if (p[3] != m[0] || p[4] != s[0] || p[5] != m[1] || p[6] != s[1] || p[7] != m[2] || p[8] != s[2]) {
    std::printf("MULT op %d: ADD multipliers differ from TFLM's\n", op);
    ++failures;
  }
}
"""


def run_cases(cases, tmp_path: Path, tflm_objects) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Build and run the comparison program; returns ``{op index: (generated, reference)}``."""
    specs = [spec for spec, _ in cases]
    for name, text in K.render_sources(specs).items():
        (tmp_path / name).write_text(text)
    body = [MAIN_HEAD]
    for spec, ref in cases:
        i = spec.index
        for j, x in enumerate(ref["in"]):
            body.append(f"static const int8_t in{i}_{j}[] = {{ {_c_ints(x)} }};")
        body.append(f"static int8_t gen{i}[{spec.out_bytes}]; static int8_t ref{i}[{spec.out_bytes}];")
    body.append("int main() {")
    for spec, _ in cases:  # different fill bytes: an output a kernel does not write cannot agree
        body.append(f"  std::memset(gen{spec.index}, 0x5a, sizeof gen{spec.index}); "
                    f"std::memset(ref{spec.index}, 0xa5, sizeof ref{spec.index});")
    for spec, ref in cases:
        i = spec.index
        if spec.op == "ADD":
            body.append(f"  kKernels[{i}].run2(in{i}_0, in{i}_1, gen{i});")
        else:
            body.append(f"  kKernels[{i}].run(in{i}_0, gen{i});")
        body.append(_reference_call(spec, ref))
        body.append(f'  std::printf("OUT %d", {i}); for (int k = 0; k < {spec.out_bytes}; ++k) '
                    f'std::printf(" %d %d", gen{i}[k], ref{i}[k]); std::printf("\\n");')
    body.append("  return failures ? 1 : 0;\n}\n")
    (tmp_path / "main.cc").write_text("\n".join(body))
    exe = tmp_path / "compare"
    subprocess.run(["g++", *FLAGS, f"-I{tmp_path}", str(tmp_path / "main.cc"), str(tmp_path / "tf_kernels.cc"),
                    *tflm_objects, "-o", str(exe)], check=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("OUT "):
            vals = np.array(line.split()[2:], dtype=np.int32).reshape(-1, 2)
            results[int(line.split()[1])] = (vals[:, 0], vals[:, 1])
    assert len(results) == len(cases)
    return results


def _assert_identical(results, cases):
    for spec, _ in cases:
        gen, ref = results[spec.index]
        diff = np.flatnonzero(gen != ref)
        assert diff.size == 0, (f"op {spec.index} {spec.template}: {diff.size} of {gen.size} outputs differ, "
                                f"first at {diff[0]}: generated {gen[diff[0]]}, reference {ref[diff[0]]}")


@needs_compiler
def test_conv_1x1_is_bit_exact(tmp_path, tflm_objects):
    rng = np.random.default_rng(18)
    cases = [_random_case(rng, i, "CONV_2D", h=h, w=w, cin=cin, cout=cout, k=1, stride=1, padding="VALID")
             for i, (h, w, cin, cout) in enumerate([(4, 4, 16, 24), (3, 5, 7, 5), (2, 3, 24, 48), (1, 1, 9, 3),
                                                    (5, 5, 1, 13)])]
    _assert_identical(run_cases(cases, tmp_path, tflm_objects), cases)


@needs_compiler
def test_depthwise_is_bit_exact(tmp_path, tflm_objects):
    rng = np.random.default_rng(19)
    configs = [(8, 8, 16, 3, 2, "SAME"), (8, 8, 24, 3, 1, "SAME"), (7, 6, 5, 3, 1, "SAME"), (7, 7, 7, 3, 2, "SAME"),
               (6, 5, 9, 3, 2, "VALID"), (4, 4, 12, 4, 1, "VALID"), (5, 5, 3, 3, 1, "VALID"), (3, 3, 4, 5, 1, "SAME"),
               # border rows and columns of odd length (pixels paired across a row, down a column, one alone)
               (9, 7, 8, 3, 1, "SAME"), (10, 9, 6, 3, 2, "SAME"), (8, 9, 12, 5, 1, "SAME")]
    cases = [_random_case(rng, i, "DEPTHWISE_CONV_2D", h=h, w=w, cin=c, k=k, stride=s, padding=p)
             for i, (h, w, c, k, s, p) in enumerate(configs)]
    _assert_identical(run_cases(cases, tmp_path, tflm_objects), cases)


@needs_compiler
def test_conv_3x3_and_strided_is_bit_exact(tmp_path, tflm_objects):
    rng = np.random.default_rng(20)
    configs = [(9, 9, 1, 16, 3, 2, "SAME"), (8, 8, 1, 16, 3, 2, "SAME"), (6, 7, 3, 5, 3, 1, "SAME"),
               (7, 7, 2, 6, 3, 2, "VALID"), (6, 6, 4, 8, 1, 2, "VALID"), (5, 6, 3, 7, (2, 3), 1, "SAME"),
               (4, 4, 5, 3, 3, 1, "VALID"),
               # rows with four inside pixels at stride 2 (the 4-pixel tile with taps), one input channel too
               (5, 12, 2, 6, 3, 2, "SAME"), (6, 11, 1, 16, 3, 2, "VALID")]
    cases = [_random_case(rng, i, "CONV_2D", h=h, w=w, cin=cin, cout=cout, k=k, stride=s, padding=p)
             for i, (h, w, cin, cout, k, s, p) in enumerate(configs)]
    cases.append(_random_case(rng, len(cases), "CONV_2D", h=5, w=4, cin=3, cout=6, k=3, stride=1, padding="SAME",
                              large_multiplier=True))
    assert not cases[-1][0].fast and all(spec.fast for spec, _ in cases[:-1])
    _assert_identical(run_cases(cases, tmp_path, tflm_objects), cases)


@needs_compiler
def test_add_and_fully_connected_are_bit_exact(tmp_path, tflm_objects):
    rng = np.random.default_rng(21)
    cases = [_random_case(rng, 0, "ADD", n=384), _random_case(rng, 1, "ADD", n=7),
             _random_case(rng, 2, "FULLY_CONNECTED", units=24, depth=19),
             _random_case(rng, 3, "FULLY_CONNECTED", units=13, depth=8, per_tensor=True),
             _random_case(rng, 4, "FULLY_CONNECTED", units=3, depth=32)]
    _assert_identical(run_cases(cases, tmp_path, tflm_objects), cases)


@needs_compiler
def test_each_requantization_form_is_bit_exact(tmp_path, tflm_objects):
    """Ops that codegen gives each requantization form: kRequantMulh with and without the sign
    term (activation NONE, RELU), kRequantFast where the mulh proof fails (a bias near 2^30; a
    multiplier of exactly 2^30 under an activation that keeps negative values) and
    kRequantMulh again for that multiplier under RELU; odd channel counts, extreme values."""
    rng = np.random.default_rng(22)
    conv = {"h": 5, "w": 6, "cin": 7, "cout": 5, "k": 3, "stride": 1, "padding": "SAME"}
    configs = [("CONV_2D", dict(conv, act=0), K.REQUANT_MULH), ("CONV_2D", dict(conv, act=1), K.REQUANT_MULH),
               ("DEPTHWISE_CONV_2D", dict(conv, cin=11, act=0), K.REQUANT_MULH),
               ("CONV_2D", dict(conv, act=0, bias_max=2**30), K.REQUANT_FAST),
               ("DEPTHWISE_CONV_2D", dict(conv, cin=6, act=1, bias_max=2**30), K.REQUANT_FAST),
               ("CONV_2D", dict(conv, k=1, act=0, power_of_two_multiplier=True), K.REQUANT_FAST),
               ("CONV_2D", dict(conv, k=1, act=1, power_of_two_multiplier=True), K.REQUANT_MULH),
               ("FULLY_CONNECTED", {"units": 9, "depth": 33, "act": 0}, K.REQUANT_MULH)]
    cases = [_random_case(rng, i, op, **shape) for i, (op, shape, _) in enumerate(configs)]
    assert [spec.requant_mode for spec, _ in cases] == [mode for _, _, mode in configs]
    _assert_identical(run_cases(cases, tmp_path, tflm_objects), cases)


def lfw_faces(lfw_dir: Path, meta, n: int) -> np.ndarray:
    """``n`` photos of LFW training-split people as the firmware's input: those of
    benchmarks/kernels.py (the benchmark that compares the same two implementations on more faces;
    benchmarks/_lib.py's lfw_faces)."""
    from tests.conftest import load_benchmark

    return load_benchmark("_lib").lfw_faces(lfw_dir, meta, n)


@pytest.mark.native
@needs_compiler
def test_native_firmware_with_generated_kernels_matches_tflm(lfw_dir):
    """The released esp32 model in the native firmware build with every conv, depthwise, FC and
    ADD generated gives the pip TFLM interpreter's int8 outputs on LFW faces (photos of
    peopleDevTrain's people, used only to compare two implementations of the same model)."""
    if not os.environ.get("TFLM_DIR"):
        skip_or_fail("the native firmware build needs TFLM_DIR")
    from tinyface.boards import load_board
    from tinyface.device.native import prepare_native, spawn_native
    from tinyface.model.bundle import load_bundle
    from tinyface.model.runtime import TflmRunner
    from tinyface.protocol.client import Client, open_serial

    bundle = load_bundle(REPO / "models" / "esp32")
    program = prepare_native(bundle, load_board("esp32"), kernels="generated")
    faces = lfw_faces(lfw_dir, bundle.meta, 24)
    expected = TflmRunner(bundle.model_bytes).run(faces)
    proc = spawn_native(program, own_pty=True)
    try:
        port = proc.stdout.readline().split()[-1]
        with open_serial(port, 0) as transport:
            got = np.stack([r.output for r in Client(transport, port=port).infer_many(faces)])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"{int((got != expected).sum())} of {got.size} outputs differ"


def test_generated_project_registers_the_kernels_in_the_op_resolver(tiny_bundle, tmp_path):
    from tinyface.boards import load_board
    from tinyface.codegen import generate_project

    project = generate_project(tiny_bundle, load_board("esp32"), tmp_path / "gen", kernels="generated")
    resolver = (tmp_path / "gen/src/op_resolver.h").read_text()
    assert project.generated_ops == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    assert "resolver.AddConv2D(tfk::Register_CONV_2D())" in resolver
    assert "resolver.AddFullyConnected(tfk::Register_FULLY_CONNECTED())" in resolver
    assert "resolver.AddMean()" in resolver  # not generated: TFLM's own kernel
    default = generate_project(tiny_bundle, load_board("esp32"), tmp_path / "esp", kernels="esp-nn")
    assert default.generated_ops == [] and "tfk::" not in (tmp_path / "esp/src/op_resolver.h").read_text()
    assert "#define TF_GENERATED_KERNEL_COUNT 0" in (tmp_path / "esp/src/tf_kernels.h").read_text()


@needs_compiler
def test_requantize_matches_multiply_by_quantized_multiplier(tmp_path, tflm_objects):
    """tfk::requantize (and ADD's requantize_smaller_than_one) on the whole int32 range, and
    tfk::requantize_fast and requantize_mulh (with and without its sign term) within the bounds
    codegen proves, against TFLM's MultiplyByQuantizedMultiplier (2 million draws, rounding ties
    included)."""
    (tmp_path / "tf_kernels_impl.h").write_text(K.render_sources([])["tf_kernels_impl.h"])
    (tmp_path / "main.cc").write_text(r"""
#include <cstdio>
#include <random>
#include "tensorflow/lite/kernels/internal/common.h"
#include "tf_kernels_impl.h"
int main() {
  std::mt19937_64 rng(18);
  long bad = 0, fast_checked = 0, mulh_checked = 0;
  for (int i = 0; i < 2000000; ++i) {
    const int32_t m = static_cast<int32_t>((1u << 30) + rng() % (1u << 30));  // [2^30, 2^31)
    const int shift = -static_cast<int>(rng() % 31) + (i % 7 == 0 ? static_cast<int>(rng() % 4) : 0);
    int32_t x = static_cast<int32_t>(rng());
    if (i % 3 == 0) x = static_cast<int32_t>(rng() % 4096) - 2048;   // near zero: rounding ties
    if (i % 5 == 0) x = (x >> (rng() % 31)) << (rng() % 8);
    if (shift > 0 && (x > (INT32_MAX >> shift) || x < (INT32_MIN >> shift))) x >>= shift;
    const int32_t want = tflite::MultiplyByQuantizedMultiplier(x, m, shift);
    if (tfk::requantize(x, m, shift) != want) ++bad;
    if (shift <= 0 && tfk::requantize_smaller_than_one(x, m, shift) !=
                          tflite::MultiplyByQuantizedMultiplierSmallerThanOneExp(x, m, shift)) ++bad;
    if (shift <= -1) {
      const int64_t bound = (x < 0 ? -static_cast<int64_t>(x) : x) + (static_cast<int64_t>(1) << (-shift - 1));
      if (bound < (static_cast<int64_t>(1) << 31)) {
        ++fast_checked;
        if (tfk::requantize_fast(x, m, shift) != want) ++bad;
      }
      // kRequantMulh where codegen allows it (4|x| and 2|x| + |B| inside int32, shift >= -30),
      // offset included; without the sign term it must agree wherever TFLM's value is positive
      // and be <= 0 elsewhere.
      const int32_t offset = static_cast<int32_t>(rng() % 256) - 128;
      const int64_t b_bound = (static_cast<int64_t>(offset < 0 ? -offset : offset) << (1 - shift)) +
                              (static_cast<int64_t>(1) << -shift) + 1;
      const int64_t x_abs = x < 0 ? -static_cast<int64_t>(x) : x;
      if (shift >= -30 && x_abs < (1 << 29) && 2 * x_abs + b_bound + 3 < (static_cast<int64_t>(1) << 31)) {
        const int32_t b = static_cast<int32_t>(static_cast<uint32_t>(offset) << (1 - shift)) + (1 << -shift) + 1;
        ++mulh_checked;
        if (m > (1 << 30) && tfk::requantize_mulh<true>(x, m, b, 1 - shift) != want + offset) ++bad;
        const int32_t unsigned_form = tfk::requantize_mulh<false>(x, m, b, 1 - shift) - offset;
        if (want > 0 ? unsigned_form != want : unsigned_form > 0) ++bad;
      }
    }
  }
  std::printf("%ld %ld %ld\n", bad, fast_checked, mulh_checked);
  return 0;
}
""")
    exe = tmp_path / "requant"
    subprocess.run(["g++", *FLAGS, f"-I{tmp_path}", str(tmp_path / "main.cc"), *tflm_objects, "-o", str(exe)],
                   check=True)
    bad, fast_checked, mulh_checked = (int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True,
                                                                      check=True).stdout.split())
    assert fast_checked > 1_000_000 and mulh_checked > 500_000
    assert bad == 0


def test_model_kernels_use_the_fast_requantization_where_proven():
    specs, skipped = K.model_kernel_specs((REPO / "models/esp32/model.tflite").read_bytes())
    assert not skipped and {s.op for s in specs} == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"}
    assert all(s.requant_mode == K.REQUANT_MULH for s in specs)
    # A multiplier above 1/2 (shift 0) is outside the proofs: the general path is generated.
    rng = np.random.default_rng(3)
    spec, _ = _random_case(rng, 0, "CONV_2D", h=3, w=3, cin=2, cout=4, k=1, stride=1, padding="VALID")
    big = K.conv_spec(0, (1, 3, 3, 2), np.ones((4, 1, 1, 2), np.int8), np.zeros(4, np.int32), (1, 1), "VALID",
                      1.0, 0, np.float32([0.9] * 4), 1.0, 0)
    assert spec.fast and not big.fast and big.template.endswith(f"{K.REQUANT_EXACT}>")
    # 4 * |acc| past int32 (127 * 255 * 17,000 input channels): requantize_fast, not mulh.
    wide = K.conv_spec(0, (1, 1, 1, 17000), np.full((4, 1, 1, 17000), 127, np.int8), np.zeros(4, np.int32),
                       (1, 1), "VALID", 0.01, 0, np.float32([0.001] * 4), 1.0, 0)
    assert wide.requant_mode == K.REQUANT_FAST


def test_flash_dry_run_with_generated_kernels(tmp_path):
    """`tinyface flash --kernels generated --dry-run`: the project registers the generated kernels
    and the budget counts their repacked weights."""
    import json
    import sys

    cmd = [sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--model",
           str(REPO / "models/esp32"), "--project-dir", str(tmp_path / "p"), "--dry-run", "--json"]
    generated = json.loads(subprocess.run([*cmd, "--kernels", "generated"], capture_output=True, text=True,
                                          check=True, cwd=tmp_path).stdout)
    default = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp_path).stdout)
    assert generated["project"]["kernels"] == "generated" and default["project"]["kernels"] == "esp-nn"
    assert generated["project"]["generated_ops"] == ["ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    specs, _ = K.model_kernel_specs((REPO / "models/esp32/model.tflite").read_bytes())
    extra = generated["project"]["budget"]["model_bytes"] - default["project"]["budget"]["model_bytes"]
    assert extra == sum(s.repacked_bytes for s in specs) > 0
    bad = subprocess.run([*cmd, "--set", "firmware.kernels=fast"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 3 and bad.stderr.startswith("tinyface: error: firmware.kernels")


def _op_configs():
    from hypothesis import strategies as st

    @st.composite
    def config(draw):
        op = draw(st.sampled_from(["CONV_2D", "DEPTHWISE_CONV_2D"]))
        h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
        padding = draw(st.sampled_from(["SAME", "VALID"]))
        kh = draw(st.integers(1, 5 if padding == "SAME" else h))
        kw = draw(st.integers(1, 5 if padding == "SAME" else w))
        return {"op": op, "h": h, "w": w, "cin": draw(st.integers(1, 9)), "cout": draw(st.integers(1, 9)),
                "k": (kh, kw), "stride": draw(st.integers(1, 2)), "padding": padding,
                "seed": draw(st.integers(0, 2**32 - 1)), "large_multiplier": draw(st.booleans())}

    return st.lists(config(), min_size=6, max_size=6)


@needs_compiler
def test_random_op_configurations_are_bit_exact(tmp_path_factory, tflm_objects):
    """Property: for any small conv/depthwise configuration (shape, kernel, stride, padding,
    channel counts, multipliers) the generated kernel equals TFLM's reference kernel. Each
    example compiles one program of six ops."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_op_configs())
    def check(configs):
        cases = []
        for i, c in enumerate(configs):
            c = dict(c)
            rng = np.random.default_rng(c.pop("seed"))
            cases.append(_random_case(rng, i, c.pop("op"), **c))
        _assert_identical(run_cases(cases, tmp_path_factory.mktemp("prop"), tflm_objects), cases)

    check()
