"""The face cache (tinyface.data.cache): a cache path that is a file is one ConfigError, in one
wording, from every command that opens the cache."""

import pytest

from tests.conftest import error_in_process as error_line
from tinyface import errors

pytestmark = pytest.mark.usefixtures("own_folder")


def test_a_cache_that_is_a_file_is_the_same_config_error_everywhere(capsys, tmp_path, monkeypatch):
    # was: evaluate, data stats --align: "cannot open the face cache X/faces.sqlite: [Errno 17] File exists", exit 4
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
