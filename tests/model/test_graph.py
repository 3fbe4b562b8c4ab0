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
