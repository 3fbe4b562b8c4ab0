"""The one serial-port finder: `tinyface flash`, `tinyface bench --port auto` and the gallery
commands find a connected board by the USB ids in its board file (boards/<name>.toml).

Exactly one match is used; none or several are a one-line DeviceError listing the ports
seen, so a second board on the desk is never flashed or benchmarked by accident.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from tinyface.errors import DeviceError


@dataclass(frozen=True)
class SerialPort:
    device: str
    vid: int | None
    pid: int | None
    description: str

    def label(self) -> str:
        ids = f" {self.vid:04X}:{self.pid:04X}" if self.vid is not None and self.pid is not None else ""
        return f"{self.device}{ids}"


def list_serial_ports() -> list[SerialPort]:
    """Serial ports pyserial sees, with their USB ids where they have them."""
    from serial.tools import list_ports

    return [SerialPort(p.device, p.vid, p.pid, p.description or "") for p in list_ports.comports()]


def find_port(board, ports: list[SerialPort] | None = None) -> str:
    """The serial port of the one connected device whose USB VID:PID is one of ``board``'s.

    Args:
        board: a tinyface.boards.Board (its ``usb_ids``).
        ports: the ports to choose from (default: the ones connected now).

    Raises:
        DeviceError: no port matches, or several do (the message lists the ports seen).
    """
    ports = list_serial_ports() if ports is None else ports
    wanted = {(int(v), int(p)) for v, p in board.usb_ids}
    matches = [p for p in ports if p.vid is not None and (p.vid, p.pid) in wanted]
    if len(matches) == 1:
        return matches[0].device
    ids = ", ".join(f"{v:04X}:{p:04X}" for v, p in sorted(wanted))
    if not matches:
        seen = ", ".join(p.label() for p in ports) or "none"
        raise DeviceError(f"no {board.name} board connected: no serial port with USB id {ids}; ports seen: {seen}",
                          hint="connect the board, or pass --port PATH")
    raise DeviceError(f"several ports have a {board.name} board's USB id ({ids}): "
                      f"{', '.join(p.label() for p in matches)}", hint="pass --port PATH to choose one")


def check_port_exists(port: str | None, hint: str = "check the path, or leave out the port to find the board "
                                                   "by its USB ids") -> None:
    """Refuse, before any work, a serial port given as a plain path that does not exist, or that
    is a regular file or a folder (no serial port is either; a character device, a pty, and a
    link to one pass).

    Only a plain filesystem path is checked (``/dev/...`` or another absolute path, with no glob
    character ``*?[``), and the form of a ``socket://`` or ``rfc2217://`` URL (HOST:PORT, by
    :func:`tinyface.protocol.client.check_serial_url`, without connecting); anything else goes to
    whoever opens it as given: wildcards (``/dev/ttyUSB*``), ``COM3``-style names, such URLs and
    network addresses, which PlatformIO accepts. The wording is the one of opening such a port
    (:func:`tinyface.protocol.client.open_serial`, as `tinyface bench --port` reports it).

    Raises:
        DeviceError: ``port`` is such a path and nothing is there, or a file or a folder is; or a
            network URL without a port.
    """
    if port and "://" in port:
        from tinyface.protocol.client import check_serial_url

        check_serial_url(port)  # its own hint: the URL's form
        return
    if not port or not (port.startswith("/dev/") or os.path.isabs(port)) or any(c in port for c in "*?["):
        return
    if not os.path.exists(port):
        raise DeviceError(f"cannot open {port}: {os.strerror(errno.ENOENT)}", hint=hint)
    if os.path.isdir(port):  # links followed: a link to a device passes
        raise DeviceError(f"cannot open {port}: a folder, not a serial port", hint=hint)
    if os.path.isfile(port):
        raise DeviceError(f"cannot open {port}: not a serial port", hint=hint)
