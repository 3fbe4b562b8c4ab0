"""The face cache (tinyface.data.cache): a cache path that is a file is one ConfigError, in one
wording, from every command that opens the cache; a damaged cache file is a DataError."""

import pytest

from tests.conftest import error_in_process as error_line
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
    for p in range(2):
        (tmp_path / "people" / f"person{p}").mkdir(parents=True)
        (tmp_path / "people" / f"person{p}" / "0.jpg").write_bytes(b"")
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
