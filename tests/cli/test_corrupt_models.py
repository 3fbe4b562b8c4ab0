"""A model file that is corrupt, truncated, or described wrongly by its model.json: every command
answers with ONE line naming the file and exit 6 (ModelError), never an internal error (70), never a
native library's own lines on stderr, and never a result computed from it.

Each corrupt model is made here from the released one (models/esp32): bytes changed where the
flatbuffer keeps a shape or a quantization parameter, then model.json's sha256 re-stamped, as a
file damaged before it was bundled would be. Each test failed before its fix.
"""

import hashlib
import json
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

from tests.conftest import (
    RELEASED,
    assert_one_error_line,
    error_in_process as tinyface,  # (exit code, its one stderr line)
    people_folder,
    require_released_model,
    run_cli,
)
from tinyface import errors

pytestmark = pytest.mark.usefixtures("own_folder")
MODEL_ERROR = errors.ModelError.exit_code


def _bundle(folder: Path, model_bytes: bytes | None = None, restamp: bool = True, **meta_changes) -> Path:
    """A copy of the released bundle in ``folder`` with ``model_bytes`` as its model.tflite and
    ``meta_changes`` in its model.json, whose sha256 is re-stamped to the new bytes (``restamp``)."""
    require_released_model()
    shutil.copytree(RELEASED, folder)
    if model_bytes is not None:
        (folder / "model.tflite").write_bytes(model_bytes)
    meta = json.loads((folder / "model.json").read_text())
    meta.update(meta_changes)
    if restamp:
        meta["sha256"] = hashlib.sha256((folder / "model.tflite").read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def _first_conv():
    """(the released model's bytes as a bytearray, its subgraph, its first operator: a CONV_2D)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    data = bytearray((RELEASED / "model.tflite").read_bytes())
    graph = schema.Model.GetRootAs(bytes(data), 0).Subgraphs(0)
    return data, graph, graph.Operators(0)


def with_a_corrupt_shape() -> bytes:
    """The released model with its first convolution's output shape 6 dimensions long instead of 4
    (the bytes after the vector read as dimensions): as models/flip3 of the audit."""
    data, graph, conv = _first_conv()
    tensor = graph.Tensors(conv.Outputs(0))
    struct.pack_into("<I", data, tensor._tab.Vector(tensor._tab.Offset(4)) - 4, 6)  # Tensor.shape's length
    return bytes(data)


def with_a_filter_zero_point() -> bytes:
    """The released model with its first convolution's int8 filter given zero point 5: a valid
    graph, which TFLite refuses when it prepares the op (per-channel filters have zero point 0)."""
    data, graph, conv = _first_conv()
    quant = graph.Tensors(conv.Inputs(1)).Quantization()
    struct.pack_into("<q", data, quant._tab.Vector(quant._tab.Offset(10)), 5)  # zero_point[0]
    return bytes(data)


# --- a corrupt .tflite: the same line from every command (the graph is checked where it is parsed) ---

@pytest.mark.parametrize("command", [
    ["flash", "--board", "esp32", "--dry-run", "--project-dir", "{tmp}/fw"],  # was: internal error (conv_shape)
    ["profile", "--board", "esp32"],  # was: exit 0, a table with an output shape of 1x32x32x16x-13582x...
    ["bench", "--port", "{tmp}/ttyNONE"],
], ids=lambda c: c[0])
def test_a_corrupt_tflite_is_refused_in_one_line_naming_it(capsys, tmp_path, command):
    bundle = _bundle(tmp_path / "bundle", with_a_corrupt_shape())
    code, line = tinyface(capsys, *(a.format(tmp=tmp_path) for a in command), "--model", bundle)
    assert code == MODEL_ERROR, line
    assert f"{bundle / 'model.tflite'} is a corrupt TFLite model" in line, line
    assert "tinyface build" in line  # what to do


@pytest.mark.parametrize("command", [["emulate", "--once", "--board", "esp32"], ["evaluate", "--data", "{data}"]],
                         ids=lambda c: c[0])
def test_a_corrupt_tflite_is_refused_alike_by_emulate_and_evaluate(tmp_path, command):
    # a subprocess: emulate installs a SIGTERM handler, evaluate may load TensorFlow
    bundle = _bundle(tmp_path / "bundle", with_a_corrupt_shape())
    data = people_folder(tmp_path / "people", 3)
    proc = run_cli(*(a.format(data=data) for a in command), "--model", str(bundle), cwd=tmp_path)
    assert_one_error_line(proc, MODEL_ERROR, f"{bundle / 'model.tflite'} is a corrupt TFLite model")
    assert proc.stdout == ""


def test_a_model_tflite_refuses_when_preparing_is_a_model_error(tmp_path):
    # was: internal error: RuntimeError: tensorflow/lite/kernels/conv.cc:372 ... failed to prepare (exit 70)
    bundle = _bundle(tmp_path / "bundle", with_a_filter_zero_point())
    data = people_folder(tmp_path / "people", 3)
    proc = run_cli("evaluate", "--model", str(bundle), "--data", str(data), cwd=tmp_path)
    line = assert_one_error_line(proc, MODEL_ERROR, str(bundle / "model.tflite"), "TFLite cannot load")
    assert "failed to prepare" in line


# --- profile refuses what every other command refuses -------------------------------------------------

def test_profile_refuses_a_model_that_does_not_match_its_model_json(capsys, tmp_path):
    # was: exit 0 (profile read the .tflite alone); flash says the same line
    bundle = _bundle(tmp_path / "bundle", with_a_filter_zero_point(), restamp=False)
    lines = []
    for command in (["profile"], ["flash", "--dry-run", "--project-dir", tmp_path / "fw"]):
        code, line = tinyface(capsys, *command, "--board", "esp32", "--model", bundle)
        assert code == MODEL_ERROR and "sha256 differs" in line, line
        lines.append(line)
    assert lines[0] == lines[1]


def test_profile_still_takes_a_lone_tflite(capsys, tmp_path):
    """docs/cli.md: a .tflite without a model.json is profiled as it is (its graph alone)."""
    require_released_model()
    lone = tmp_path / "lone.tflite"
    shutil.copy(RELEASED / "model.tflite", lone)
    with pytest.raises(SystemExit) as exc:
        from tinyface.cli import main as cli_main

        cli_main.main(["profile", "--board", "esp32", "--model", str(lone), "--json"])
    assert (exc.value.code or 0) == 0
    assert json.loads(capsys.readouterr().out)["layers"]


# --- a model.json that says another input than the model has: evaluate refuses it as flash does --------

def test_evaluate_refuses_a_model_json_with_another_input_as_flash_does(capsys, tmp_path):
    # was: exit 0 (evaluate cut its crops for the model, whatever model.json said)
    bundle = _bundle(tmp_path / "bundle", input_shape=[1, 1000, 1000, 1])
    data = people_folder(tmp_path / "people", 3)
    code, line = tinyface(capsys, "evaluate", "--model", bundle, "--data", data)
    assert code == MODEL_ERROR
    assert "model.json says input [1, 1000, 1000, 1], the .tflite has [1, 64, 64, 1]" in line, line
    assert str(bundle / "model.tflite") in line
    code, flash_line = tinyface(capsys, "flash", "--board", "esp32", "--dry-run", "--model", bundle,
                                "--project-dir", tmp_path / "fw")
    assert (code, flash_line) == (MODEL_ERROR, line)


def _keras_archive(path: Path, input_shape: list | None = None, cut_to: int | None = None) -> Path:
    """A .keras-shaped zip (config.json recording ``input_shape``, weights of random bytes), cut to
    ``cut_to`` bytes if given (a download or copy cut short)."""
    import random

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "2.15.0"}))
        archive.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"layers": []},
                                                    "build_config": {"input_shape": input_shape}}))
        archive.writestr("model.weights.h5", random.Random(0).randbytes(20_000))
    if cut_to is not None:
        path.write_bytes(path.read_bytes()[:cut_to])
    return path


@pytest.mark.parametrize("kind", ["empty", "truncated", "text"])
def test_evaluate_names_a_keras_file_that_is_not_a_keras_model(capsys, tmp_path, kind):
    # was: internal error: OSError: Unable to synchronously open file (file signature not found)
    bundle = _bundle(tmp_path / "run")
    keras = bundle / "model.keras"
    if kind == "empty":
        keras.write_bytes(b"")
    elif kind == "truncated":
        _keras_archive(keras, [None, 64, 64, 1], cut_to=3000)
    else:
        keras.write_text("not a model\n")
    data = people_folder(tmp_path / "people", 3)
    code, line = tinyface(capsys, "evaluate", "--model", keras, "--data", data)
    assert code == MODEL_ERROR
    assert f"{keras} is " in line and "Keras model" in line, line


def test_evaluate_refuses_a_keras_model_with_another_input_than_its_model_json(capsys, tmp_path):
    # was: exit 0 (models/kshape of the audit: a 32x32x3 student beside a 64x64x1 model.json)
    bundle = _bundle(tmp_path / "run")
    keras = _keras_archive(bundle / "model.keras", [None, 32, 32, 3])
    data = people_folder(tmp_path / "people", 3)
    code, line = tinyface(capsys, "evaluate", "--model", keras, "--data", data)
    assert code == MODEL_ERROR
    assert f"{keras} does not match" in line and "model.json says input [1, 64, 64, 1], the .keras has [1, 32, 32, 3]" \
        in line, line


# --- a path that is no model: what it is, not "no model at" ----------------------------------------------

@pytest.mark.parametrize("command", [
    ["flash", "--board", "esp32", "--dry-run", "--project-dir", "{tmp}/fw"],
    ["bench", "--port", "{tmp}/ttyNONE"],
    ["identify", "--port", "{tmp}/ttyNONE", "{tmp}/photo.jpg"],
    ["evaluate", "--data", "{tmp}/people"],
], ids=lambda c: c[0])
@pytest.mark.parametrize("given, needle", [
    ("notes.txt", "is a text file, not a model"),
    ("model.keras", "is a folder without a model"),
], ids=["text-file", "folder"])
def test_a_path_that_is_no_model_says_what_it_is(capsys, tmp_path, command, given, needle):
    # was: "no model at X (run `tinyface build` or pass --model DIR)" for a path that is there
    people_folder(tmp_path / "people", 3)
    (tmp_path / "photo.jpg").write_bytes(b"")
    model = tmp_path / given
    if given.endswith(".txt"):
        model.write_text("my notes\n")
    else:
        model.mkdir()
    args = [a.format(tmp=tmp_path) for a in command]
    code, line = tinyface(capsys, *args[:1], "--model", model, *args[1:])
    assert code == MODEL_ERROR
    assert f"{model} {needle}" in line and "no model at" not in line, line
