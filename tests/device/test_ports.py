"""The one serial-port finder (tinyface.device.ports) that flash, bench and the gallery commands share."""

import os
from pathlib import Path

import pytest

from tinyface import errors
from tinyface.boards import load_board


def test_find_port_matches_usb_ids():
    from tinyface.device.ports import SerialPort, find_port
    from tinyface.errors import DeviceError

    board = load_board("esp32s3")
    ports = [SerialPort("/dev/ttyS0", None, None, "n/a"), SerialPort("/dev/ttyACM0", 0x303A, 0x1001, "USB JTAG")]
    assert find_port(board, ports) == "/dev/ttyACM0"
    with pytest.raises(DeviceError) as info:
        find_port(load_board("esp32"), ports)
    assert "ports seen: /dev/ttyS0, /dev/ttyACM0 303A:1001" in info.value.one_line()


def test_find_port_refuses_several_matching_boards():
    """Two boards of the kind connected: neither is chosen (flash and bench share this rule)."""
    from tinyface.device.ports import SerialPort, find_port
    from tinyface.errors import DeviceError

    ports = [SerialPort("/dev/ttyACM0", 0x303A, 0x1001, "USB JTAG"),
             SerialPort("/dev/ttyACM1", 0x303A, 0x1001, "USB JTAG")]
    with pytest.raises(DeviceError) as info:
        find_port(load_board("esp32s3"), ports)
    line = info.value.one_line()
    assert "several ports" in line and "/dev/ttyACM0 303A:1001, /dev/ttyACM1 303A:1001" in line and "--port" in line


@pytest.mark.parametrize("port", ["/dev/ttyUSB*", "/dev/ttyACM[01]", "/dev/tty?", "COM3", "com12", "rfc2217://localhost:4000",
                                  "socket://192.168.1.5:3333", "192.168.1.5", "esp32.local", "fe80::1", "", None])
def test_check_port_exists_leaves_what_platformio_resolves_alone(port, tmp_path, monkeypatch):
    from tinyface.device.ports import check_port_exists

    monkeypatch.chdir(tmp_path)  # nothing of those names here
    # wildcards, Windows names, URLs, network addresses: PlatformIO's to resolve, handed on as given
    assert check_port_exists(port) == port


def test_check_port_exists_refuses_a_missing_path(tmp_path, pty_port):
    from tinyface.device.ports import check_port_exists
    from tinyface.errors import DeviceError

    there = tmp_path / "ttyUSB0"  # a link to a terminal (a regular file is refused: the next test)
    there.symlink_to(pty_port)
    assert check_port_exists(str(there)) == str(there)
    for missing in ("/dev/ttyNONE", str(tmp_path / "broken")):
        if missing != "/dev/ttyNONE":
            Path(missing).symlink_to(tmp_path / "nothing")  # a link to nothing is nothing
        with pytest.raises(DeviceError) as info:
            check_port_exists(missing)
        assert info.value.one_line().startswith(f"cannot open {missing}: No such file or directory (check the path")



def test_a_bare_name_of_a_device_in_dev_is_answered_with_its_path(tmp_path, monkeypatch):
    """`--port ttyUSB0` (the name without /dev/) is a path in the current folder; the line now
    says which path was meant, for flash's check and bench's open alike (null: a device every
    Linux has)."""
    import subprocess
    import sys

    from tinyface.device.ports import check_port_exists
    from tinyface.errors import DeviceError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeviceError) as info:
        check_port_exists("null")
    assert "did you mean /dev/null?" in info.value.one_line()
    bench = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "bench", "--port", "null"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bench.returncode != 0 and "did you mean /dev/null?" in bench.stderr, bench.stderr
    with pytest.raises(DeviceError) as info:  # a name with nothing of it in /dev: the path advice alone
        check_port_exists("ttyNONE")
    assert "did you mean" not in info.value.one_line()


def test_check_port_exists_refuses_a_file_a_folder_or_a_device_that_is_no_terminal(tmp_path, pty_port):
    # was: /dev/null and /dev/zero passed (any character device did), and flash failed after the build
    from tinyface.device.ports import check_port_exists

    afile = tmp_path / "afile"
    afile.write_text("x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    null_link = tmp_path / "ttyUSB1"
    null_link.symlink_to("/dev/null")
    for port, reason in ((afile, "not a serial port"), (tmp_path, "a folder, not a serial port"),
                         (fifo, "not a serial port"), ("/dev/null", "not a serial port"),
                         ("/dev/zero", "not a serial port"), (null_link, "not a serial port")):
        with pytest.raises(errors.DeviceError) as info:
            check_port_exists(str(port))
        assert info.value.one_line().startswith(f"cannot open {port}: {reason} (check the path")
    link = tmp_path / "ttyUSB0"
    link.symlink_to(pty_port)
    for port in (pty_port, str(link)):  # a pseudo-terminal, a link to one: as given
        assert check_port_exists(port) == port


def test_check_port_exists_reads_a_relative_path_as_a_path(tmp_path, monkeypatch, pty_port):
    """A relative --port is a path in the current folder: checked as an absolute one is, and handed on
    absolute (PlatformIO runs in the project folder). Was: a relative folder, file, missing path or
    bare name passed, and flash failed at PlatformIO's upload after the build."""
    from tinyface.device.ports import check_port_exists

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ds1").mkdir()
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "COM4.txt").write_bytes(b"")
    for port, reason in (("ds1", "a folder, not a serial port"), ("empty.jpg", "not a serial port"),
                         ("./empty.jpg", "not a serial port"), ("COM4.txt", "not a serial port"),
                         ("nonexist_rel", "No such file or directory"), ("ttyUSB0", "No such file or directory"),
                         ("dev/ttyUSB0", "No such file or directory"), ("../nothing/tty", "No such file or directory")):
        with pytest.raises(errors.DeviceError) as info:
            check_port_exists(port)
        assert info.value.one_line().startswith(f"cannot open {port}: {reason} (check the path"), port
    (tmp_path / "tty").symlink_to(pty_port)
    assert check_port_exists("tty") == str(tmp_path / "tty")
    assert check_port_exists("./tty") == str(tmp_path / "tty")


def test_permission_hint_names_the_group_that_may_read_and_write_the_port(pty_port):
    """A port that exists but may not be opened: get access, through the group that may read and
    write it (Arch's root:uucp 0660), else dialout; never "check the path" (was: the path hint)."""
    import grp

    from tinyface.protocol.client import permission_hint

    os.chmod(pty_port, 0o600)  # root's group, and no access for it: the usual group
    assert "add your user to the dialout group" in permission_hint(pty_port)
    assert "check the path" not in permission_hint(pty_port)
    group = next((g for g in grp.getgrall() if g.gr_gid != 0), None)
    if group is None:
        pytest.skip("no group other than root on this machine")
    os.chown(pty_port, -1, group.gr_gid)
    os.chmod(pty_port, 0o660)
    assert f"add your user to the {group.gr_name} group with `sudo usermod -aG {group.gr_name} $USER`" in \
        permission_hint(pty_port)
    os.chmod(pty_port, 0o640)  # the group may only read it: joining it would not help
    assert "the dialout group" in permission_hint(pty_port)
