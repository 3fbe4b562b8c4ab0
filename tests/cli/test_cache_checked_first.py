"""`tinyface build` and `tinyface evaluate` with a face cache they cannot use ($TINYFACE_CACHE a file, or
a folder that cannot be written): one line and the code every command that uses the cache gives (3, 14),
before the run folder is made and before TensorFlow loads, not when the data stage (the build) or the
evaluation (once the model is loaded) opens the cache."""

import os

import pytest

from tests.conftest import (
    LFW_DIR,
    REPO,
    assert_one_error_line,
    drop_file_permission_bypass,
    needs_lfw,
    run_cli,
    tensorflow_tripwire,
)
from tinyface import errors


@needs_lfw
@pytest.mark.parametrize("command", ["build", "evaluate"])
@pytest.mark.parametrize("cache_is", ["unwritable", "a file"])
def test_a_cache_the_command_cannot_use_is_refused_before_the_run_folder_and_tensorflow(tmp_path, cache_is, command):
    # was: build: the run folder made, TensorFlow loaded, the data stage started, then the cache's line
    # (exit 14); evaluate: TensorFlow and the model loaded, then the cache's line
    cache, out = tmp_path / "cache", tmp_path / "run"
    prefix = ()
    if cache_is == "unwritable":
        prefix = drop_file_permission_bypass()
        cache.mkdir(mode=0o555)
        code, words = errors.OutputError.exit_code, f"cannot write the face cache {cache}: permission denied"
    else:
        cache.write_text("not a folder")
        code, words = errors.ConfigError.exit_code, f"the cache {cache} is not a folder"
    tripwire, mark = tensorflow_tripwire(tmp_path)
    # the build's own settings (LFW, --quick: no extra faces), so that nothing but the cache stops it
    env = {"TINYFACE_CACHE": str(cache), "TINYFACE_DATA": str(LFW_DIR), **tripwire}
    try:
        args = (("build", "--quick", "--out", str(out)) if command == "build" else
                ("evaluate", "--model", str(REPO / "models" / "esp32"), "--runtime", "tflite"))
        proc = run_cli(*args, env=env, cwd=tmp_path, prefix=prefix, timeout=300)
    finally:
        if cache.is_dir():
            cache.chmod(0o755)
    assert_one_error_line(proc, code, words)
    assert not mark.exists()  # TensorFlow was not imported
    assert sorted(os.listdir(tmp_path)) == ["cache", "fake"]  # the run folder was not made, nor anything else
