"""A user's journey with the generated project: `tinyface flash --dry-run` into a folder, their own
edits of it, a regeneration cut short, and a board file of their own that the project cannot
describe. Each refusal is one line and docs/cli.md's exit code, with nothing written."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.codegen.conftest import defines
from tests.conftest import RELEASED, error_in_process, run_cli, run_in_process, skip_or_fail
from tinyface import errors
from tinyface.boards import load_board
from tinyface.codegen import BANNER, generate_project, project as project_module

pytestmark = pytest.mark.usefixtures("own_folder", "no_boards_dir")


def _board_file(folder: Path, name: str, edit=lambda text: text, source: str = "esp32") -> Path:
    """A board file of the user's: boards/<source>.toml renamed ``name``, its text passed through ``edit``."""
    from tinyface.resources import boards_dir

    folder.mkdir(parents=True, exist_ok=True)
    text = (boards_dir() / f"{source}.toml").read_text().replace(f'name = "{source}"', f'name = "{name}"')
    path = folder / f"{name}.toml"
    path.write_text(edit(text), encoding="utf-8")
    return path


# --- the user's edits of generated files --------------------------------------------------------------

def test_an_edited_generated_file_is_refused_not_overwritten(capsys, tmp_path):
    # was: regenerating rewrote the user's platformio.ini (its banner intact) without a word
    project = tmp_path / "fw"
    assert run_in_process(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                          "--project-dir", project)[0] == 0
    ini = project / "platformio.ini"
    edited = ini.read_text() + "upload_port = /dev/ttyUSB3\n"
    ini.write_text(edited)
    before = {p: p.stat().st_mtime_ns for p in project.rglob("*")}
    code, line = error_in_process(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                                  "--project-dir", project)
    assert code == errors.ProjectDirError.exit_code == 11
    assert "platformio.ini is edited since tinyface generated it" in line and "--force" in line
    assert ini.read_text() == edited and {p: p.stat().st_mtime_ns for p in project.rglob("*")} == before
    manifest = json.loads((project / "tinyface-project.json").read_text())  # every file's sha256 as written
    assert set(manifest["files_sha256"]) == set(manifest["files"])
    assert project_module.edited_files(project) == ["platformio.ini"]
    # --force overwrites it, and the next regeneration is quiet again
    assert run_in_process(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                          "--project-dir", project, "--force")[0] == 0
    assert "upload_port" not in ini.read_text() and BANNER in ini.read_text().splitlines()[0]
    assert project_module.edited_files(project) == []


def test_an_edited_stale_file_is_refused_not_removed(tiny_bundle, tmp_path):
    board = load_board("esp32")
    generate_project(tiny_bundle, board, tmp_path)
    manifest_path = tmp_path / "tinyface-project.json"
    manifest = json.loads(manifest_path.read_text())
    old = tmp_path / "src" / "old_generated.h"
    old.write_text(f"// {BANNER} (template: firmware/src/old_generated.h.j2)\n")
    manifest["files"].append("src/old_generated.h")
    manifest["files_sha256"]["src/old_generated.h"] = hashlib.sha256(old.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    old.write_text(old.read_text() + "#define MINE 1\n")
    with pytest.raises(errors.ProjectDirError, match="src/old_generated.h is edited"):
        generate_project(tiny_bundle, board, tmp_path)
    assert old.is_file()


def test_a_regeneration_cut_short_is_no_edit_of_the_users(tiny_bundle, tmp_path, monkeypatch):
    """A run killed among the files leaves some of them new and the manifest of the last complete
    generation: the next run, for yet another board setting, regenerates without --force."""
    project = tmp_path / "fw"
    generate_project(tiny_bundle, load_board("esp32"), project)
    qio = load_board(str(_board_file(tmp_path / "boards", "esp32", lambda t: t.replace('"dio"', '"qio"'))))
    real_write, writes = project_module.write_if_changed, []

    def killed_after_one(path, data):  # the second file that changes is never written
        path = Path(path)
        if path.name != "tinyface-project.json" and not (path.is_file() and path.read_bytes() == data):
            if len(writes) == 1:
                raise KeyboardInterrupt
            writes.append(path)
        return real_write(path, data)

    monkeypatch.setattr(project_module, "write_if_changed", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        generate_project(tiny_bundle, qio, project)
    monkeypatch.undo()
    assert [str(p.relative_to(project)) for p in writes] == ["platformio.ini"]
    assert "CONFIG_ESPTOOLPY_FLASHMODE_DIO=y" in (project / "sdkconfig.defaults").read_text()
    slow = load_board(str(_board_file(tmp_path / "boards2", "esp32",
                                      lambda t: t.replace('"dio"', '"qio"').replace("upload_baud = 921_600",
                                                                                      "upload_baud = 460_800"))))
    again = generate_project(tiny_bundle, slow, project)
    assert "platformio.ini" in again.written and "upload_speed = 460800" in (project / "platformio.ini").read_text()
    assert "pending_sha256" not in json.loads((project / "tinyface-project.json").read_text())


# --- a board file of the user's that the project cannot describe --------------------------------------

@pytest.mark.parametrize("name, edit, what", [
    ("my board", lambda t: t, "cannot name the firmware project's PlatformIO environment"),
    # INFO's board field holds 15 characters: the board would report 'esp32-devkitc-v' and bench would
    # find no such board file
    ("esp32-devkitc-v4", lambda t: t, "is 16 characters; the firmware reports at most 15"),
    ("myboard", lambda t: t.replace("flash_bytes = 4_194_304", "flash_bytes = 3_000_000"),
     "'chip.flash_bytes' = 3,000,000 is not a flash size ESP-IDF knows"),
    ("myboard", lambda t: t.replace("cpu_mhz = 240", "cpu_mhz = 200"),
     "'chip.cpu_mhz' = 200 is not a clock the ESP32 (Xtensa LX6) runs at"),
    ("myboard", lambda t: t.replace("cpu_mhz = 240", "cpu_mhz = 239.9"), "'chip.cpu_mhz' = 239.9"),
])
def test_a_board_the_project_cannot_describe_is_refused_before_anything_is_written(capsys, tmp_path, name, edit,
                                                                                   what):
    # was: rendered; `pio run` then refused the environment name 'my board', or the build failed on a
    # partition table larger than the 2MB sdkconfig.defaults said, or the chip ran at ESP-IDF's default
    # clock (CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_200 does not exist and is ignored)
    _board_file(tmp_path / "boards", name, edit)
    project = tmp_path / "fw"
    code, line = error_in_process(capsys, "--boards-dir", tmp_path / "boards", "flash", "--board", name,
                                  "--model", RELEASED, "--dry-run", "--project-dir", project)
    assert code == errors.ConfigError.exit_code == 3
    assert what in line and f"{name}.toml" in line
    assert not project.exists()


def test_a_board_title_on_several_lines_stays_in_its_comments(tiny_bundle, tmp_path):
    # was: the title's second line became a line of sdkconfig.defaults and of model_settings.h (C code),
    # and a title ending in a backslash joined `#define TF_BOARD_NAME` to its C++ comment
    title = 'title = """ESP32 of mine\nCONFIG_FREERTOS_HZ=10 \\\\"""'
    path = _board_file(tmp_path / "boards", "myboard",
                       lambda t: t.replace('title = "ESP32-DevKitC (ESP32-WROOM-32, 4 MB flash)"', title))
    board = load_board(str(path))
    assert "\n" in board.title and board.title.endswith("\\")
    generate_project(tiny_bundle, board, tmp_path / "fw")
    sdk = (tmp_path / "fw" / "sdkconfig.defaults").read_text().splitlines()
    assert [line for line in sdk if line.startswith("CONFIG_FREERTOS_HZ")] == []
    settings = tmp_path / "fw" / "src" / "model_settings.h"
    assert defines(settings.read_text())["TF_BOARD_NAME"] == '"myboard"'
    assert "// Board: ESP32 of mine CONFIG_FREERTOS_HZ=10 /\n" in settings.read_text()
    ini = (tmp_path / "fw" / "platformio.ini").read_text().splitlines()
    assert [line for line in ini if line.startswith("CONFIG_")] == []
    if shutil.which("g++") is None:
        skip_or_fail("g++ not installed: model_settings.h was not compiled")
    probe = tmp_path / "probe.cc"
    probe.write_text('#include "model_settings.h"\nconst char* kName = TF_BOARD_NAME;\n')
    result = subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", str(probe), "-I", str(settings.parent),
                             "-o", str(tmp_path / "probe.o")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- a disk that cannot take the project ---------------------------------------------------------------

def test_a_project_that_cannot_be_written_is_one_line_and_the_next_run_completes_it(tmp_path):
    # was: "internal error: OSError: [Errno 27] File too large", exit 70, as for a bug of tinyface's
    project = tmp_path / "fw"
    args = ("flash", "--board", "esp32", "--model", RELEASED, "--dry-run", "--project-dir", project)
    limited = run_cli(*args, cwd=tmp_path, prefix=("bash", "-c", 'ulimit -f 200 && exec "$@"', "ulimit"))
    lines = [line for line in limited.stderr.splitlines() if line.strip()]
    assert limited.returncode == errors.OutputError.exit_code == 14, limited.stderr
    assert len(lines) == 1 and lines[0].startswith(f"tinyface: error: the firmware project is unfinished: "
                                                   f"cannot write {project}/")
    assert "the next run completes the project" in lines[0]
    assert not (project / "tinyface-project.json").exists()  # not taken for a complete project
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    manifest = json.loads((project / "tinyface-project.json").read_text())
    assert all((project / rel).is_file() for rel in manifest["files"])
