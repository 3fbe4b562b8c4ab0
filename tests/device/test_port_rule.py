"""The one --port rule of `flash`, `bench` and the gallery commands (tinyface.device.ports.resolve_port):
`--port auto` finds the one connected board by its USB ids in every command, with the same line and
exit code when none or several are found (`flash` refused `auto` as a path that does not exist);
a port that exists but cannot be opened for lack of permission says what to do about access (it
said "check the path"); and the port options are one definition with examples and ranges.

What cannot happen here is replaced and named in the test: the USB enumeration of connected boards
(`usb_mocked`) and PlatformIO's upload (`upload_mocked`). Ports are real pseudo-terminals, made
unopenable by their mode, under a child process without root's permission bypass."""

import grp
import os

import pytest

from tests.conftest import RELEASED, drop_file_permission_bypass, error_in_process, run_cli, run_in_process
from tinyface import errors
from tinyface.boards import load_board

pytestmark = pytest.mark.usefixtures("own_folder")

ESP32_USB_ID = (0x10C4, 0xEA60)  # boards/esp32.toml's first USB id (a CP2102)


@pytest.fixture
def lfw_pairs(tmp_path):
    """A folder with a one-pair-each pairsDevTest.txt in LFW's format: what bench reads before its port."""
    data = tmp_path / "lfw"
    data.mkdir()
    (data / "pairsDevTest.txt").write_text("1\nAlice\t1\t2\nAlice\t1\tBob\t1\n")
    return data


def connected_usb_mocked(monkeypatch, *devices):
    """The USB enumeration replaced (no board here): ``devices`` (paths) connected, each an esp32."""
    from tinyface.device import ports

    seen = [ports.SerialPort(d, *ESP32_USB_ID, "CP2102 USB to UART") for d in devices]
    monkeypatch.setattr(ports, "list_serial_ports", lambda: list(seen))


def uploads_mocked(monkeypatch, pio_home) -> list:
    """PlatformIO's real command and platform check (espressif32 6.9.0 in its home); its build and
    upload replaced: the ports they were given."""
    import json

    from tinyface.device import platformio

    (pio_home / "platforms" / "espressif32").mkdir(parents=True)
    (pio_home / "platforms" / "espressif32" / "platform.json").write_text(
        json.dumps({"name": "espressif32", "version": "6.9.0"}))
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_home))
    uploads = []
    monkeypatch.setattr(platformio, "build_and_upload",
                        lambda project_dir, env, port, on_line=None: uploads.append(port))
    return uploads


def no_platformio(monkeypatch):
    from tinyface.device import platformio

    def refuse(*args, **kwargs):
        raise AssertionError("flash got as far as PlatformIO")

    monkeypatch.setattr(platformio, "pio_command", refuse)


# --- --port auto: flash finds the board as bench and the gallery commands do ---------------------------

def test_flash_port_auto_uploads_to_the_one_board_found_usb_and_upload_mocked(capsys, tmp_path, monkeypatch,
                                                                              pty_port):
    # was: "cannot open auto: No such file or directory (check the path, ...)", exit 7
    connected_usb_mocked(monkeypatch, pty_port)
    uploads = uploads_mocked(monkeypatch, tmp_path / "pio")
    code, out, err = run_in_process(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--port", "auto",
                                    "--project-dir", tmp_path / "fw", "--json")
    assert code == 0, err
    import json

    assert uploads == [pty_port] and json.loads(out)["port"] == pty_port


def test_flash_port_auto_finds_the_board_before_anything_is_rendered_usb_mocked(capsys, tmp_path, monkeypatch,
                                                                                pty_port):
    """The board is looked for first: it is found before the model is read (a missing one here)."""
    from tinyface.device import ports
    from tinyface.device.flash import flash

    connected_usb_mocked(monkeypatch)  # none connected
    with pytest.raises(errors.DeviceError, match="no esp32 board connected"):
        flash(load_board("esp32"), model=tmp_path / "no-model", project_dir=tmp_path / "fw", port="auto")
    assert not (tmp_path / "fw").exists()
    looked = []
    monkeypatch.setattr(ports, "list_serial_ports", lambda: looked.append(1) or [])
    flash(load_board("esp32"), model=RELEASED, project_dir=tmp_path / "dry", port="auto", dry_run=True)
    assert looked == []  # a dry run uses no port: no board is looked for


@pytest.mark.parametrize("connected", [0, 2], ids=["none", "several"])
def test_flash_bench_and_gallery_refuse_auto_alike_when_not_one_board_usb_mocked(
        capsys, tmp_path, monkeypatch, connected, lfw_pairs):
    # was: flash said "cannot open auto: No such file or directory" where bench and gallery listed the ports
    connected_usb_mocked(monkeypatch, *[f"/dev/ttyUSB{k}" for k in range(connected)])
    no_platformio(monkeypatch)
    lines = {}
    for command in (["flash", "--board", "esp32", "--model", RELEASED, "--project-dir", tmp_path / "fw"],
                    ["bench", "--board", "esp32", "--model", RELEASED, "--data", lfw_pairs, "--no-host-check"],
                    ["gallery", "list", "--board", "esp32"]):
        code, line = error_in_process(capsys, *command, "--port", "auto")
        assert code == errors.DeviceError.exit_code == 7, line
        lines[command[0]] = line
    assert len(set(lines.values())) == 1, lines  # one function, one line
    expected = "no esp32 board connected" if connected == 0 else "several ports have a esp32 board's USB id"
    assert expected in lines["flash"] and "--port" in lines["flash"]
    assert not (tmp_path / "fw").exists()  # refused before anything was rendered


def test_flash_port_auto_with_no_board_connected_lists_the_ports_seen(capsys, tmp_path, monkeypatch):
    """The real USB enumeration of this machine (no ESP32 on it)."""
    from tinyface.device.ports import list_serial_ports

    board = load_board("esp32")
    if any((p.vid, p.pid) in board.usb_ids for p in list_serial_ports()):
        pytest.skip("a board with ESP32 USB ids is connected")
    no_platformio(monkeypatch)
    code, line = error_in_process(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--port", "auto",
                                  "--project-dir", tmp_path / "fw")
    assert code == 7 and "no esp32 board connected" in line and "ports seen:" in line and "10C4:EA60" in line
    assert not (tmp_path / "fw").exists()


# --- a port that exists but may not be opened: say so, and what to do --------------------------------

def _locked(port: str, mode: int, group: int | None = None) -> None:
    os.chmod(port, mode)
    if group is not None:
        os.chown(port, -1, group)


def _commands(tmp_path, lfw_pairs):
    return {"flash": ["flash", "--board", "esp32", "--model", str(RELEASED), "--project-dir", str(tmp_path / "fw")],
            "bench": ["bench", "--board", "esp32", "--model", str(RELEASED), "--data", str(lfw_pairs),
                      "--no-host-check"],
            "gallery": ["gallery", "list", "--board", "esp32"]}


@pytest.mark.parametrize("command", ["flash", "bench", "gallery"])
def test_a_port_without_permission_says_how_to_get_access(tmp_path, pty_port, lfw_pairs, command):
    # was: "cannot open P: Permission denied (check the path, ...)": the path was right
    prefix = drop_file_permission_bypass()
    _locked(pty_port, 0o000)
    proc = run_cli(*_commands(tmp_path, lfw_pairs)[command], "--port", pty_port, prefix=prefix, cwd=tmp_path)
    assert proc.returncode == errors.DeviceError.exit_code == 7, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"tinyface: error: cannot open {pty_port}: Permission denied (")
    assert "dialout" in lines[0] and "access" in lines[0] and "check the path" not in lines[0], lines[0]
    assert not (tmp_path / "fw").exists()


def test_the_permission_hint_names_the_group_that_may_use_the_port(tmp_path, pty_port, lfw_pairs):
    """A port its group may read and write (0660 root:uucp, as Arch gives USB serial ports): that group."""
    prefix = drop_file_permission_bypass()
    groups = [g for g in grp.getgrall() if g.gr_gid != 0 and g.gr_name != "dialout"]
    if not groups:
        pytest.skip("no group other than root and dialout on this machine")
    group = next((g for g in groups if g.gr_name == "uucp"), groups[0])
    _locked(pty_port, 0o060, group.gr_gid)  # the owner (root, the child's user) has no access
    proc = run_cli("gallery", "list", "--port", pty_port, prefix=prefix, cwd=tmp_path)
    assert proc.returncode == 7, proc.stderr
    assert f"add your user to the {group.gr_name} group" in proc.stderr and "dialout" not in proc.stderr, proc.stderr


# --- the port options: one definition, each command's help still teaching ------------------------------

@pytest.mark.parametrize("command", [["bench"], ["enroll"], ["identify"], ["gallery", "list"],
                                     ["gallery", "delete"]], ids=" ".join)
def test_the_port_options_are_one_definition_with_examples_and_ranges(capsys, command):
    from tinyface.cli import bench

    code, out, _ = run_in_process(capsys, *command, "--help")
    assert code == 0
    text = " ".join(out.split())
    for needle in ("--port TEXT", "or 'auto' to find the board by its USB VID:PID", "Example: --port /dev/ttyUSB0",
                   "Example: --board esp32s3", "--baud INTEGER RANGE", "Example: --baud 115200", "x>=1",
                   "--timeout FLOAT RANGE", "[default: bench.timeout_s]", "Example: --timeout 5",
                   "--retries INTEGER RANGE", "[default: bench.retries]", "Example: --retries 5"):
        assert needle in text, (needle, text)
    ours = {p.name: p.to_info_dict() for p in _command(command).params if p.name in PORT_PARAMS}
    assert ours == {p.name: p.to_info_dict() for p in bench.bench.params if p.name in PORT_PARAMS}
    assert len(ours) == len(PORT_PARAMS)


PORT_PARAMS = ("port", "board", "baud", "timeout_s", "retries")


def _command(words):
    import click

    from tinyface.cli.main import cli

    command = cli
    ctx = click.Context(cli)
    for word in words:
        command = command.get_command(ctx, word)
    return command


def test_flash_help_teaches_port_auto(capsys):
    code, out, _ = run_in_process(capsys, "flash", "--help")
    text = " ".join(out.split())
    assert code == 0 and "'auto'" in text and "--port auto" in text, text
