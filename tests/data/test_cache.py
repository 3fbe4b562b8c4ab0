"""The face cache (tinyface.data.cache): a cache path that is a file is one ConfigError, in one
wording, from every command that opens the cache; a damaged cache file is a DataError."""

import pytest

from tests.conftest import drop_file_permission_bypass, error_in_process as error_line
from tinyface import errors

pytestmark = pytest.mark.usefixtures("own_folder")


def test_a_cache_that_is_a_file_is_the_same_config_error_everywhere(capsys, tmp_path, monkeypatch):
    # was: evaluate, data stats --align: "cannot open the face cache X/faces.sqlite: [Errno 17] File exists", exit 4;
    # data cache: 0.0 MB listed and exit 0, and the next build failed on it
    from tinyface.data.cache import FaceCache

    cachefile = tmp_path / "cachefile"
    cachefile.write_text("")
    monkeypatch.setenv("TINYFACE_CACHE", str(cachefile))
    code, cache_line = error_line(capsys, "data", "cache")
    assert code == errors.ConfigError.exit_code == 3
    _two_people(tmp_path / "people")
    code, line = error_line(capsys, "data", "stats", "--align", "--data", tmp_path / "people")
    assert code == 3 and line == cache_line
    assert f"the cache {cachefile} is not a folder (" in line and "TINYFACE_CACHE" in line and "Errno" not in line
    with pytest.raises(errors.ConfigError) as info:
        FaceCache(cachefile / "below")
    assert f"the cache {cachefile / 'below'} is not a folder ({cachefile} is a file)" in info.value.one_line()


def test_an_unusable_cache_is_a_data_error_that_says_what_to_do(tmp_path):
    from tinyface.data.cache import FaceCache
    from tinyface.errors import ConfigError, DataError

    (tmp_path / "file").write_text("x")
    # a cache folder set under a file is a bad setting, as `data cache` says it (ConfigError)
    with pytest.raises(ConfigError, match="is not a folder") as exc:
        FaceCache(tmp_path / "file" / "cache")
    assert "set TINYFACE_CACHE" in exc.value.one_line()  # the hint says what to do
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "faces.sqlite").write_bytes(b"not sqlite" * 100)
    with pytest.raises(DataError, match="not a database"):
        FaceCache(tmp_path / "bad")


def _two_people(folder):
    """A dataset ``folder`` of two people with one empty photo each: enough for `data stats --align`
    to open the face cache."""
    for p in range(2):
        (folder / f"person{p}").mkdir(parents=True)
        (folder / f"person{p}" / "0.jpg").write_bytes(b"")


def test_a_cache_folder_that_cannot_be_written_is_one_output_error_from_every_command(tmp_path):
    # was: data stats --align: "cannot open the face cache X/faces.sqlite: [Errno 13] ...", exit 4 (DataError,
    # the dataset's code); the same line for /proc/x
    from tests.conftest import assert_one_error_line, run_cli
    from tinyface.data.cache import FaceCache

    prefix = drop_file_permission_bypass()
    _two_people(tmp_path / "people")
    closed = tmp_path / "closed"
    (closed / "cache").mkdir(parents=True)
    closed.chmod(0o555)
    try:
        for cache_dir, at in ((closed / "cache", ""), (closed / "new", f" ({closed})")):
            env = {"TINYFACE_CACHE": str(cache_dir)}
            if cache_dir.exists():
                cache_dir.chmod(0o555)
            line = assert_one_error_line(
                run_cli("data", "stats", "--align", "--data", tmp_path / "people", env=env, prefix=prefix),
                errors.OutputError.exit_code, f"cannot write the face cache {cache_dir}: permission denied{at}",
                "TINYFACE_CACHE")
            assert "Errno" not in line
            # the same words from --set, and looking at it (`data cache`) still works: it writes nothing
            by_set = run_cli("data", "stats", "--align", "--data", tmp_path / "people",
                             "--set", f"data.cache_dir={cache_dir}", prefix=prefix)
            assert by_set.returncode == 14 and by_set.stderr.strip() == line
            assert run_cli("data", "cache", env=env, prefix=prefix).returncode == 0
    finally:
        (closed / "cache").chmod(0o755)
        closed.chmod(0o755)
    assert not (closed / "new").exists()  # nothing was made
    # a folder the check passes but mkdir refuses (/proc: root may "write" it) is the same error
    with pytest.raises(errors.OutputError, match="cannot create the face cache /proc/tinyface-x"):
        FaceCache("/proc/tinyface-x")


def test_a_cache_file_that_cannot_be_written_is_an_output_error_and_a_damaged_one_a_data_error(tmp_path):
    from tests.conftest import assert_one_error_line, run_cli

    prefix = drop_file_permission_bypass()
    _two_people(tmp_path / "people")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "faces.sqlite").write_bytes(b"not sqlite" * 100)
    (cache / "faces.sqlite").chmod(0o444)
    args = ("data", "stats", "--align", "--data", tmp_path / "people")
    env = {"TINYFACE_CACHE": str(cache)}
    assert_one_error_line(run_cli(*args, env=env, prefix=prefix), 14,
                          f"cannot write the face cache {cache}: permission denied ({cache / 'faces.sqlite'})")
    # root may write it: then it is read, and found damaged (the dataset's kind of problem, exit 4)
    assert_one_error_line(run_cli(*args, env=env), 4, "file is not a database", "--clear faces")


FULL_CACHE = """
import resource, sys
import numpy as np
from tinyface.data.cache import FaceCache
from tinyface.errors import OutputError
cache = FaceCache(sys.argv[1])
cache.put_many({"crop/a/1": np.zeros(100, np.uint8)})
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # as a disk that fills up now
try:
    cache.put_many({"crop/a/2": np.random.default_rng(0).integers(0, 255, 1_000_000, dtype=np.uint8)})
except OutputError as exc:
    print(exc.exit_code, exc.one_line())
print(sorted(cache.get_many(["crop/a/1", "crop/a/2"])))
"""


def test_a_cache_the_disk_cannot_take_is_an_output_error_and_keeps_what_it_had(tmp_path):
    """A full disk while the face cache stores crops (sqlite's SQLITE_FULL or SQLITE_IOERR) was an
    internal error (exit 70); it is one line, exit 14, and what the cache held stays."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", FULL_CACHE, str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    first, held = proc.stdout.splitlines()
    assert first.startswith(f"14 cannot write the face cache {tmp_path}"), proc.stdout
    assert held == "['crop/a/1']"
