"""`tinyface data` (tinyface/cli/data.py): `data fetch` names its argument NAME, as its help calls
it; `data stats` prints what stdout cannot encode (a file name that is not UTF-8, the histogram's
bars on an ASCII stdout) instead of an internal error in the middle of the results."""

import os
import subprocess
import sys

import pytest

from tests.conftest import error_in_process as tinyface
from tinyface import errors

pytestmark = pytest.mark.usefixtures("own_folder")


def test_data_fetch_names_its_argument_name(capsys):
    code, line = tinyface(capsys, "data", "fetch", "nosuch")
    # was: "Invalid value for '{lfw|fairface|utkface|pins|celeba}': ..."
    assert code == errors.EXIT_USAGE and "Invalid value for 'NAME': 'nosuch' is not one of 'lfw'" in line


# --- stdout that cannot encode what is printed: the results, not an internal error ------------------

def _stats_run(tmp_path, encoding: str) -> subprocess.CompletedProcess:
    """`tinyface data stats` on two people, one with a file whose name is not UTF-8, with stdout in
    ``encoding`` (strict errors, as in a UTF-8 desktop locale or PYTHONIOENCODING=ascii)."""
    from PIL import Image

    root = tmp_path / "photos"
    for person in ("alice", "bob"):
        (root / person).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (32, 32), 128).save(root / person / f"{i}.png")
    bad_name = os.fsdecode(b"bad\xff.jpg")  # a Latin-1 name, not UTF-8
    (root / "bob" / bad_name).write_text("not an image")
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "stats", "--data", str(root)],
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path, env=env)


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_data_stats_prints_a_name_that_is_not_utf8(tmp_path, encoding):
    # was: "internal error: UnicodeEncodeError: ... surrogates not allowed" (exit 70) after half the table
    proc = _stats_run(tmp_path, encoding)
    out, err = proc.stdout.decode(encoding), proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, err
    assert "internal error" not in err and "Traceback" not in err
    assert "identities: 2" in out and "skipped files: 1" in out
    assert "bad\\udcff.jpg: not a readable image" in out  # escaped, as stderr escapes it


def test_data_stats_histogram_on_an_ascii_stdout(tmp_path):
    # was: internal error 70 (the histogram's "█" bars), before the first bar was printed
    proc = _stats_run(tmp_path, "ascii")
    out = proc.stdout.decode("ascii")
    assert proc.returncode == 0
    assert "|      2 |      2 | " + "#" * 30 in out
