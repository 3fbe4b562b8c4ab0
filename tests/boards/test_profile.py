"""`tinyface profile`: per-layer estimates from the board's cost model, totals, --json, errors."""

import json
import subprocess
import sys

import pytest

from tinyface.boards import load_board
from tinyface.boards.profile import default_model_dir, profile_model
from tinyface.model.graph import analyze
from tinyface.resources import models_dir


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "profile", *args], capture_output=True,
                          text=True, timeout=120)


def test_profile_prices_every_layer_with_the_board_cost_model(tiny_bundle):
    board = load_board("esp32")
    result = profile_model(tiny_bundle.model_bytes, board.cost_model, board="esp32")
    graph = analyze(tiny_bundle.model_bytes)
    assert [layer.op for layer in result.layers] == [layer.op for layer in graph.layers]
    for est, layer in zip(result.layers, graph.layers, strict=True):
        assert est.est_ms == pytest.approx(board.cost_model.estimate_ms(layer.op, layer.macs, layer.elements))
    assert result.total_est_ms == pytest.approx(sum(layer.est_ms for layer in result.layers))
    assert result.total_macs == graph.total_macs and result.total_params == graph.total_params
    assert result.total_est_cycles == round(result.total_est_ms * board.cpu_mhz * 1e3)
    faster = profile_model(tiny_bundle.model_bytes, load_board("esp32s3").cost_model)
    assert faster.total_est_ms < result.total_est_ms  # the S3's vector unit: fewer cycles per MAC


def test_profile_json(tiny_bundle):
    proc = _cli("--board", "esp32c3", "--model", str(tiny_bundle.model_path.parent), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["board"] == "esp32c3" and data["estimated"] is True
    assert data["total_macs"] == analyze(tiny_bundle.model_bytes).total_macs
    assert len(data["layers"]) == 5 and data["layers"][0]["op"] == "CONV_2D"
    assert data["cost_source"] == load_board("esp32c3").cost_model.source
    # its model.json names the same bundle, as for flash and emulate (profile took it for a .tflite)
    proc = _cli("--board", "esp32c3", "--model", str(tiny_bundle.model_path.with_name("model.json")), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == data


def test_profile_table_names_the_estimate_and_its_source(tiny_bundle):
    proc = _cli("--model", str(tiny_bundle.model_path))
    assert proc.returncode == 0, proc.stderr
    assert "ESTIMATED" in proc.stdout and "DEPTHWISE_CONV_2D" in proc.stdout
    assert "cost model: " in proc.stdout and "esp-tflite-micro" in proc.stdout
    # the title is one line, not broken at the table's width (as a table title was)
    assert proc.stdout.splitlines()[0].rstrip().endswith("kernels (latency ESTIMATED from the board's cost model)")


def test_profile_bad_inputs_are_one_line(tmp_path):
    proc = _cli("--board", "nope", "--model", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "unknown board" in proc.stderr
    proc = _cli("--model", str(tmp_path / "missing"))
    assert proc.returncode == 6 and proc.stderr.count("\n") == 1 and "no model" in proc.stderr
    (tmp_path / "bad.tflite").write_bytes(b"not a model at all")
    proc = _cli("--model", str(tmp_path / "bad.tflite"))
    assert proc.returncode == 6 and "not a TFLite model" in proc.stderr


def test_profile_refuses_a_float_model(tmp_path):
    # issue #17: a float model was priced as if it ran the int8 kernels
    import tensorflow as tf
    import tf_keras as keras

    inp = keras.Input((16, 16, 1))
    model = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inp))))
    (tmp_path / "float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    proc = _cli("--model", str(tmp_path / "float.tflite"))
    assert proc.returncode == 6 and proc.stderr.count("\n") == 1
    assert "FLOAT32" in proc.stderr and "int8" in proc.stderr and "Traceback" not in proc.stderr


def test_default_model_is_the_released_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no build/ here: a checkout's own build would come first
    assert (models_dir() / "esp32" / "model.tflite").is_file()  # released with the package
    assert default_model_dir("esp32") == models_dir() / "esp32"


def test_no_model_anywhere_is_one_clear_error(tmp_path, monkeypatch, capsys):
    import tinyface.resources
    from tinyface.cli import main as cli_main

    empty = tmp_path / "no-released-models"
    empty.mkdir()
    monkeypatch.setattr(tinyface.resources, "models_dir", lambda: empty)
    monkeypatch.chdir(tmp_path)  # and no build/
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["profile", "--board", "esp32s3"])
    err = capsys.readouterr().err
    assert exc.value.code == 6, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    looked = ", ".join(["build/esp32s3", str(empty / "esp32s3"), "build/esp32", str(empty / "esp32")])
    assert lines[0].startswith(f"tinyface: error: no model for esp32s3: nothing in {looked}"), lines[0]
    assert "pass --model PATH" in lines[0]


def test_profile_prices_the_kernel_set(tiny_bundle):
    """--kernels picks the board's cost model of that kernel set (default: firmware.kernels)."""
    c3 = load_board("esp32c3")
    results = {}
    for kernels in ("esp-nn", "generated"):
        proc = _cli("--board", "esp32c3", "--kernels", kernels, "--model", str(tiny_bundle.model_path), "--json")
        assert proc.returncode == 0, proc.stderr
        results[kernels] = json.loads(proc.stdout)
        assert results[kernels]["kernels"] == kernels
        assert results[kernels]["cost_source"] == c3.cost_model_for(kernels).source
        expected = profile_model(tiny_bundle.model_bytes, c3.cost_model_for(kernels)).total_est_ms
        assert results[kernels]["total_est_ms"] == pytest.approx(expected)
    assert results["generated"]["total_est_ms"] < results["esp-nn"]["total_est_ms"]
    default = _cli("--board", "esp32c3", "--model", str(tiny_bundle.model_path), "--json",
                   "--set", 'firmware.kernels="generated"')
    assert default.returncode == 0 and json.loads(default.stdout)["kernels"] == "generated"
    bad = _cli("--kernels", "cmsis", "--model", str(tiny_bundle.model_path))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
