"""The one int8 embedder: quantize, run (TFLite or TFLM), dequantize, normalise."""

import numpy as np
import pytest

from tinyface.errors import ModelError
from tinyface.model.embedder import Embedder, dequantize_output, quantize_input
from tinyface.model.graph import analyze
from tinyface.vectors import l2_normalize


def _crops(bundle, n=4, seed=1):
    _, h, w, c = bundle.meta.input_shape
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def test_the_flatbuffer_reader_and_model_json_agree_on_the_quantization(tiny_bundle):
    graph, meta = analyze(tiny_bundle.model_bytes), tiny_bundle.meta
    assert graph.input.type_name == graph.output.type_name == "INT8" and graph.input.quantized
    assert (graph.input.scale, graph.input.zero_point) == (meta.input_scale, meta.input_zero_point)
    assert (graph.output.scale, graph.output.zero_point) == (meta.output_scale, meta.output_zero_point)
    assert list(graph.input.shape) == meta.input_shape


@pytest.mark.parametrize("runtime", ["tflite", "tflm"])
def test_embed_is_the_chain_written_out(tiny_bundle, runtime):
    from tinyface.model.runtime import TfliteRunner, TflmRunner

    crops = _crops(tiny_bundle)
    embedder = Embedder.for_bundle(tiny_bundle, runtime)
    runner = (TflmRunner if runtime == "tflm" else TfliteRunner)(tiny_bundle.model_bytes)
    raw = runner.run(quantize_input(crops, tiny_bundle.meta)).reshape(len(crops), -1)
    by_hand = dequantize_output(raw, tiny_bundle.meta)
    by_hand = by_hand / np.linalg.norm(by_hand, axis=1, keepdims=True)
    got = embedder.embed(crops)
    assert got.dtype == np.float32 and got.shape == (len(crops), tiny_bundle.meta.embedding_dim)
    np.testing.assert_allclose(got, by_hand, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_tflm_and_tflite_embedders_agree_within_one_lsb(tiny_bundle):
    crops = _crops(tiny_bundle, n=6)
    x = Embedder.for_bundle(tiny_bundle, "tflm").quantize(crops)
    tflm = Embedder.for_bundle(tiny_bundle, "tflm").run(x).astype(np.int16)
    tflite = Embedder.for_bundle(tiny_bundle, "tflite").run(x).astype(np.int16)
    assert np.abs(tflm - tflite).max() <= 1


def test_quantization_read_from_the_flatbuffer_equals_the_bundles(tiny_bundle):
    crops = _crops(tiny_bundle, n=2)
    from_file = Embedder(tiny_bundle.model_bytes, "tflm")
    from_json = Embedder.for_bundle(tiny_bundle, "tflm")
    assert from_file.quantization == from_json.quantization
    np.testing.assert_array_equal(from_file.embed(crops), from_json.embed(crops))


def test_an_empty_batch_and_a_zero_row(tiny_bundle):
    embedder = Embedder.for_bundle(tiny_bundle, "tflm")
    empty = embedder.embed(_crops(tiny_bundle, n=0))
    assert empty.shape == (0, tiny_bundle.meta.embedding_dim)
    assert np.array_equal(l2_normalize(np.zeros((2, 3))), np.zeros((2, 3), np.float32))


def test_bad_models_and_runtimes_are_model_errors(tiny_bundle):
    with pytest.raises(ModelError, match="not a TFLite model"):
        Embedder(b"not a model at all", "tflite")
    with pytest.raises(ModelError, match="unknown runtime"):
        Embedder(tiny_bundle.model_bytes, "onnx")



@pytest.mark.parametrize("kernels", ["reference", "optimized"])
def test_tflite_says_nothing_on_stderr_when_it_loads_a_model(tiny_bundle, kernels):
    # was: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in every build's evaluate stage.
    # A fresh process: TFLite prints that line once per process, so an earlier test could hide it.
    import os
    import subprocess
    import sys

    code = ("import sys, numpy as np; from tinyface.model.runtime import TfliteRunner; "
            f"r = TfliteRunner(open(sys.argv[1], 'rb').read(), {kernels!r}); "
            "r.run(np.zeros((1, *r.input_details['shape'][1:]), r.input_details['dtype']))")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_bundle.model_path)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


# --- arguments a script gets wrong: one tinyface error naming what was expected ---------------------

@pytest.mark.parametrize("runtime", ["tflite", "tflm"])
def test_crops_of_another_size_or_type_are_refused_by_name(tiny_bundle, runtime):
    # was: a bare ValueError from deep inside the interpreter ("cannot reshape array of size 6400",
    # "Dimension mismatch"), and float or int8 crops embedded silently as if they were pixels
    from tinyface.errors import DataError

    embedder = Embedder.for_bundle(tiny_bundle, runtime)
    crops = _crops(tiny_bundle, n=2)
    for wrong in (np.zeros((2, 80, 80, 1), np.uint8), np.zeros((2, 48, 48, 3), np.uint8), crops[..., 0]):
        with pytest.raises(ModelError, match=r"takes crops of shape \(N, 48, 48, 1\)"):
            embedder.embed(wrong)
    with pytest.raises(ModelError, match=r"one crop: pass crops\[None\]"):
        embedder.embed(crops[0])
    for wrong in (crops / 255.0, crops.astype(np.int8)):
        with pytest.raises(DataError, match="must be uint8 pixels"):
            embedder.embed(wrong)
    with pytest.raises(DataError, match="must be int8"):
        embedder.run(crops)  # crops, where the model's int8 input belongs: they would wrap around
    assert embedder.embed(crops).shape == (2, tiny_bundle.meta.embedding_dim)
    assert embedder.embed([]).shape == (0, tiny_bundle.meta.embedding_dim)


def test_a_path_unknown_kernels_and_a_garbage_model_are_model_errors(tiny_bundle):
    # was: TypeError "string argument without an encoding", KeyError 'fast', struct.error
    from tinyface.model.runtime import TflmRunner

    with pytest.raises(ModelError, match="expected the model's bytes, got the path"):
        Embedder(str(tiny_bundle.model_path))
    with pytest.raises(ModelError, match="unknown TFLite kernels 'fast'"):
        Embedder.for_bundle(tiny_bundle, "tflite", kernels="fast")
    with pytest.raises(ModelError, match="TFLM cannot load the model"):
        TflmRunner(b"x" * 100)


def test_an_arena_too_small_for_tflm_itself_is_a_model_error_not_a_crash(tiny_bundle):
    # was: a segmentation fault (below about 480 bytes TFLM's allocator overruns its arena), and for
    # -1 a TypeError whose message held the whole model. A fresh process: the old code killed it.
    import subprocess
    import sys

    code = ("import sys; from tinyface.errors import ModelError; from tinyface.model.runtime import TflmRunner\n"
            "model = open(sys.argv[1], 'rb').read()\n"
            "for arena in (100, 0, -1, 400.5):\n"
            "    try:\n"
            "        TflmRunner(model, arena)\n"
            "    except ModelError as exc:\n"
            "        print(exc)\n"
            "print(len(TflmRunner(model, 64 * 1024).run(__import__('numpy').zeros((1, 48, 48, 1), 'int8'))))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_bundle.model_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 5 and lines[-1] == "1", proc.stdout
    assert all("it must be an integer of at least 1,024" in line for line in lines[:4]), proc.stdout
