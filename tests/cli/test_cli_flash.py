"""`tinyface flash` (tinyface/cli/flash.py; named test_cli_flash.py beside tests/device/test_flash.py,
as test modules need unique names): a --port that is a file or a folder, and a --project-dir full
of other files, are refused in one line with docs/cli.md's exit code, before anything is rendered
or aligned. Runs `tinyface` in this process, from an empty folder."""

import pytest

from tests.conftest import RELEASED
from tests.conftest import error_in_process as error_line
from tests.conftest import run_in_process as tinyface
from tinyface import errors

pytestmark = pytest.mark.usefixtures("own_folder")


# --- --port: a regular file or a folder is refused first ----------------------------------------------

@pytest.mark.parametrize("what", ["file", "folder"])
def test_flash_refuses_a_port_that_is_a_file_or_a_folder_before_rendering(capsys, tmp_path, monkeypatch, what):
    # was: accepted, then the project rendered and built, and PlatformIO's upload failed
    from tinyface.device import platformio

    def no_pio(*args, **kwargs):
        raise AssertionError("flash got as far as PlatformIO")

    monkeypatch.setattr(platformio, "pio_command", no_pio)
    port = tmp_path / "afile"
    if what == "file":
        port.write_text("x")
    else:
        port.mkdir()
    code, line = error_line(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--port", port,
                            "--project-dir", tmp_path / "fw")
    assert code == errors.DeviceError.exit_code == 7
    assert f"cannot open {port}: " in line and "not a serial port (" in line and "--port" in line
    assert not (tmp_path / "fw").exists()


# --- --project-dir: a folder of other files is not filled with a project --------------------------------

def test_a_folder_of_other_files_is_refused_before_the_gallery_is_aligned(capsys, tmp_path, monkeypatch):
    # was: ~35 files and a manifest written among them (it once filled docs/)
    from tinyface.device import flash as flash_mod

    def no_budget(*args, **kwargs):
        raise AssertionError("flash went on into the folder of other files")

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("mine")
    (docs / "img").mkdir()
    monkeypatch.setattr(flash_mod, "check_fits", no_budget)
    code, line = error_line(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                            "--project-dir", docs)
    assert code == errors.ProjectDirError.exit_code == 11
    assert f"{docs} is not a tinyface project (no tinyface-project.json) and not empty" in line
    assert "guide.md, img are there" in line and "--force" in line and "--project-dir" in line
    assert sorted(p.name for p in docs.iterdir()) == ["guide.md", "img"]


def test_force_generates_into_it_and_a_project_folder_is_regenerated(capsys, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("mine")
    args = ("flash", "--board", "esp32", "--model", RELEASED, "--dry-run", "--project-dir", docs)
    code, _, err = tinyface(capsys, *args, "--force")
    assert code == 0, err
    assert (docs / "tinyface-project.json").is_file() and (docs / "guide.md").read_text() == "mine"
    code, _, err = tinyface(capsys, *args)  # now a tinyface project: no --force needed
    assert code == 0, err
    fresh = tmp_path / "fresh"  # an empty folder, and one that does not exist, need none either
    fresh.mkdir()
    for folder in (fresh, tmp_path / "new"):
        code, _, err = tinyface(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                                "--project-dir", folder)
        assert code == 0, err
