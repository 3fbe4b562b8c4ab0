"""tinyface.model.runtime: the interpreters' failures are ModelErrors of one line each, with what
the native library said inside it, not on stderr."""

import pytest

from tests.conftest import RELEASED, require_released_model
from tinyface.errors import ModelError
from tinyface.model.runtime import TflmRunner


def test_tflm_says_why_it_cannot_load_in_the_error_not_on_stderr(capfd):
    # was: "Failed to allocate tail memory. ..." lines printed on stderr by TFLM's C++ before the error
    # line (three "Failed to resize buffer" lines for `flash --dry-run` of a corrupt model)
    require_released_model()
    with pytest.raises(ModelError) as exc:
        TflmRunner((RELEASED / "model.tflite").read_bytes(), arena_bytes=4096, source="m.tflite")
    line = exc.value.one_line()
    assert line.startswith("TFLM cannot load m.tflite: ") and "Failed to allocate" in line, line
    assert "\n" not in str(exc.value)
    assert capfd.readouterr().err == ""


def test_tflm_loads_a_model_and_prints_nothing(capfd):
    require_released_model()
    runner = TflmRunner((RELEASED / "model.tflite").read_bytes())
    assert runner.input_shape == (1, 64, 64, 1)
    assert runner.arena_used_bytes() > 0
    assert capfd.readouterr().err == ""
