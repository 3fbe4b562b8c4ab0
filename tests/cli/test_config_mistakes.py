"""Mistakes in the settings and data folders a user names: every command checks the settings
file, a missing dataset's hint fits where its path came from, and `tinyface --help` lists the
exit codes."""

import re

from tests.conftest import assert_one_error_line, run_cli
from tinyface import errors


def test_every_command_refuses_a_settings_file_with_a_mistake_even_one_that_reads_no_setting(tmp_path):
    (tmp_path / "bad.toml").write_text("[data]\ncrop_sise = 64\n")
    (tmp_path / "broken.toml").write_text("[data\n")
    assert_one_error_line(run_cli("--config", "bad.toml", "boards", cwd=tmp_path), 3, "unknown key 'data.crop_sise'",
                          "bad.toml")
    assert_one_error_line(run_cli("--config", "broken.toml", "data", "fetch", "lfw", "--dest", "x", cwd=tmp_path), 3,
                          "broken.toml is not valid TOML")
    assert not (tmp_path / "x").exists()  # refused before anything was fetched
    (tmp_path / "tinyface.toml").write_text("[data\n")  # found, not named: read by every command too
    assert_one_error_line(run_cli("boards", cwd=tmp_path), 3, "tinyface.toml is not valid TOML")
    # --help is still shown
    assert run_cli("--config", "broken.toml", "boards", "--help", cwd=tmp_path).returncode == 0


def test_a_missing_dataset_named_by_data_dir_gets_a_hint_for_that_folder(tmp_path):
    missing = tmp_path / "lfw-here"
    (tmp_path / "lab.toml").write_text(f'[data]\ndir = "{missing}"\n')
    line = assert_one_error_line(run_cli("--config", "lab.toml", "build", "--quick", "--out", "run", cwd=tmp_path), 4,
                                 f"no dataset at {missing}", "data.dir", f"tinyface data fetch lfw --dest {missing}")
    assert "TINYFACE_DATA" not in line  # data.dir wins over it: setting it would not help
    # and `data fetch lfw` fetches LFW where data.dir says (here a folder that holds something else)
    missing.mkdir()
    (missing / "notes.txt").write_text("mine")
    assert_one_error_line(run_cli("--config", "lab.toml", "data", "fetch", "lfw", cwd=tmp_path), 14,
                          f"{missing} already exists but is not the lfw dataset")


def test_an_extra_faces_folder_that_is_a_file_is_said_to_be_one(tmp_path, lfw_dir):
    (tmp_path / "afile").write_text("not a folder")
    proc = run_cli("build", "--quick", "--data", str(lfw_dir), "--out", "run", "--set", 'extra.dirs=["afile"]',
                   cwd=tmp_path)
    line = assert_one_error_line(proc, 4, "extra faces folder afile is a file, not a folder")
    assert line.count("afile") == 1  # not named twice


def test_a_board_file_that_is_a_folder_or_a_dangling_link_is_said_to_be_so(tmp_path):
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "mine.toml").mkdir()
    assert_one_error_line(run_cli("--boards-dir", str(boards), "boards", "mine"), 3, "is a folder, not a board file")
    (boards / "mine.toml").rmdir()
    (boards / "mine.toml").symlink_to(boards / "gone.toml")
    assert_one_error_line(run_cli("--boards-dir", str(boards), "boards", "mine"), 3,
                          "a link to a file that does not exist")


def test_help_lists_every_exit_code():
    text = " ".join(run_cli("--help").stdout.split())
    listed = dict(re.findall(r"(\d+) ([a-zA-Z -]+?)(?:,|;)", text.split("Exit codes:")[1]))
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.TinyfaceError)]
    for cls in classes:
        if cls is not errors.TinyfaceError:
            assert str(cls.exit_code) in listed, cls
    for code in (0, errors.EXIT_USAGE, errors.EXIT_INTERNAL, errors.EXIT_TERMINATED):
        assert str(code) in listed
    assert listed["6"] == "model" and listed["14"] == "output"
