"""tinyface.model.graph reads .tflite files without TensorFlow; checked against TFLite's own view."""

import subprocess
import sys

import pytest

from tinyface.errors import ModelError
from tinyface.model.graph import analyze


def test_layers_match_the_tflite_interpreter(tiny_bundle):
    import tensorflow as tf

    graph = analyze(tiny_bundle.model_bytes)
    interp = tf.lite.Interpreter(  # without XNNPACK, which would fuse the ops into one DELEGATE node
        model_content=tiny_bundle.model_bytes,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    ops = interp._get_ops_details()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    assert [layer.op for layer in graph.layers] == [op["op_name"] for op in ops]
    for layer, op in zip(graph.layers, ops, strict=True):
        assert layer.output_shape == tuple(int(v) for v in tensors[op["outputs"][0]]["shape"])
    assert graph.op_names == {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"}
    assert graph.input_shape == (1, 48, 48, 1) and graph.output_shape == (1, 32)
    assert graph.input_type == graph.output_type == "INT8"


def test_macs_and_params_of_the_tiny_model(tiny_bundle):
    """Hand-counted from the architecture in tests/conftest.py (48x48x1 input)."""
    graph = analyze(tiny_bundle.model_bytes)
    by_op = [(layer.op, layer.macs) for layer in graph.layers]
    assert by_op == [
        ("CONV_2D", 24 * 24 * 8 * 3 * 3 * 1),  # 3x3, stride 2, 8 filters
        ("DEPTHWISE_CONV_2D", 12 * 12 * 8 * 3 * 3),  # 3x3, stride 2
        ("CONV_2D", 12 * 12 * 16 * 8),  # 1x1, 16 filters
        ("MEAN", 0),
        ("FULLY_CONNECTED", 32 * 16),
    ]
    assert graph.total_macs == sum(m for _, m in by_op)
    conv, dw, pw, mean, fc = graph.layers
    assert conv.params == 8 * 9 + 8 and dw.params == 9 * 8 + 8 and pw.params == 16 * 8 + 16
    assert mean.params == 0  # the axis constant is not a parameter
    assert mean.elements == 12 * 12 * 16
    assert fc.params in (16 * 32, 16 * 32 + 32)  # the converter drops an all-zero bias
    assert graph.total_params == sum(layer.params for layer in graph.layers)


@pytest.mark.parametrize("data", [b"", b"garbage", b"\0\0\0\0TFL3" + b"\xff" * 40])
def test_not_a_model_is_a_model_error(data):
    with pytest.raises(ModelError):
        analyze(data)


def test_truncated_model_is_a_model_error(tiny_bundle):
    with pytest.raises(ModelError):
        analyze(tiny_bundle.model_bytes[:200])


def test_analyze_does_not_import_tensorflow(tiny_bundle):
    code = ("import sys; from tinyface.model.graph import analyze; "
            f"g = analyze(open({str(tiny_bundle.model_path)!r}, 'rb').read()); "
            "assert g.total_macs > 0; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- a corrupt graph (a flatbuffer that parses, with impossible contents) is refused where it is parsed ---

def _released_conv():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from tests.conftest import RELEASED, require_released_model

    require_released_model()
    data = bytearray((RELEASED / "model.tflite").read_bytes())
    graph = schema.Model.GetRootAs(bytes(data), 0).Subgraphs(0)
    return data, graph, graph.Operators(0)


def test_a_shape_of_impossible_length_is_a_model_error_naming_the_tensor():
    # was: a graph whose layer 0 output was 1x32x32x16x-13582x... (profile printed it; flash's
    # codegen failed with "too many values to unpack", an internal error)
    import struct

    data, graph, conv = _released_conv()
    out = graph.Tensors(conv.Outputs(0))
    struct.pack_into("<I", data, out._tab.Vector(out._tab.Offset(4)) - 4, 6)
    with pytest.raises(ModelError, match=r"^m\.tflite is a corrupt TFLite model: (tensor|operator) \d+ "):
        analyze(bytes(data), source="m.tflite")


def test_a_convolution_whose_shapes_disagree_is_a_model_error():
    # as the audit's fuzzed model (seed 1): a width of 52488 where the convolution makes 8 (TFLM then
    # asked for a 20 MB arena, printing its own lines)
    import struct

    data, graph, conv = _released_conv()
    out = graph.Tensors(conv.Outputs(0))
    struct.pack_into("<i", data, out._tab.Vector(out._tab.Offset(4)) + 8, 52488)  # the output's width
    with pytest.raises(ModelError, match=r"operator 0 \(CONV_2D\) maps \[1x64x64x1\] with a \[16x3x3x1\] filter "
                                         r"\(strides \(2, 2\), SAME\) to \[1x32x52488x16\]"):
        analyze(bytes(data), source="m.tflite")


def test_an_index_out_of_range_is_a_model_error():
    import struct

    data, graph, conv = _released_conv()
    struct.pack_into("<i", data, conv._tab.Vector(conv._tab.Offset(8)), 1_000_000)  # its first output tensor
    with pytest.raises(ModelError, match=r"operator 0 has output tensor 1000000 of \d+"):
        analyze(bytes(data), source="m.tflite")


def test_every_released_model_passes_the_checks():
    from tests.conftest import REPO, require_released_model

    require_released_model()  # models/esp32 is tracked: the glob finds it at least
    models = sorted((REPO / "models").glob("*/model.tflite"))
    for path in models:
        analyze(path.read_bytes(), source=str(path))
    assert models
