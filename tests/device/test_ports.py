"""The one serial-port finder (tinyface.device.ports) that flash, bench and the gallery commands share."""

import os

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


@pytest.mark.parametrize("port", ["/dev/ttyUSB*", "/dev/ttyACM[01]", "/dev/tty?", "COM3", "rfc2217://localhost:4000",
                                  "socket://192.168.1.5:3333", "192.168.1.5", "esp32.local", "", None])
def test_check_port_exists_leaves_what_platformio_resolves_alone(port):
    from tinyface.device.ports import check_port_exists

    check_port_exists(port)  # wildcards, Windows names, URLs, network addresses: PlatformIO's to resolve


def test_check_port_exists_refuses_only_a_missing_path(tmp_path):
    from tinyface.device.ports import check_port_exists
    from tinyface.errors import DeviceError

    there = tmp_path / "ttyUSB0"  # a link to a character device (a regular file is refused: the next test)
    there.symlink_to("/dev/null")
    check_port_exists(str(there))
    with pytest.raises(DeviceError) as info:
        check_port_exists("/dev/ttyNONE")
    assert info.value.one_line().startswith("cannot open /dev/ttyNONE: No such file or directory (check the path")


def test_check_port_exists_refuses_a_file_or_a_folder_and_passes_devices(tmp_path):
    from tinyface.device.ports import check_port_exists

    afile = tmp_path / "afile"
    afile.write_text("x")
    for port, reason in ((afile, "not a serial port"), (tmp_path, "a folder, not a serial port")):
        with pytest.raises(errors.DeviceError) as info:
            check_port_exists(str(port))
        assert info.value.one_line().startswith(f"cannot open {port}: {reason} (check the path")
    link = tmp_path / "ttyUSB0"
    link.symlink_to("/dev/null")
    master, slave = os.openpty()
    try:
        for port in ("/dev/null", str(link), os.ttyname(slave)):  # a character device, a link to one, a pty
            check_port_exists(port)
    finally:
        os.close(master)
        os.close(slave)
