"""The one serial-port rule of `tinyface flash`, `tinyface bench` and the gallery commands
(:func:`resolve_port`): ``--port auto`` finds a connected board by the USB ids in its board file
(boards/<name>.toml); `flash` checks a path before any work (:func:`check_port_exists`), the others
when they open it (tinyface.protocol.client.open_serial), in the same words.

Exactly one match is used; none or several are a one-line DeviceError listing the ports
seen, so a second board on the desk is never flashed or benchmarked by accident.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from tinyface.errors import DeviceError
from tinyface.protocol.client import PATH_HINT, port_hint

AUTO = "auto"  # --port auto: the one board connected, found by its USB ids


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


# Port names PlatformIO resolves itself, not paths on this machine: Windows' COM ports, and the
# host names and addresses of boards reached over the network (esp32.local, 192.168.1.5, fe80::1).
_COM_PORT = re.compile(r"COM[0-9]+", re.IGNORECASE)
_HOST_NAME = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\.?")


def resolve_port(port: str | None, board, check: bool = True) -> str | None:
    """The port a ``--port`` value names, by the one rule of `flash`, `bench` and the gallery
    commands: ``auto`` is the one connected board found by ``board``'s USB ids (:func:`find_port`);
    anything else is checked as :func:`check_port_exists` checks it where ``check`` (``None``
    stays ``None``).

    Args:
        port: the --port value.
        board: a tinyface.boards.Board (its ``usb_ids`` and ``name``), for ``auto``.
        check: check a path now (`flash`, which hands it to PlatformIO after minutes of build);
            False where the caller opens it next (`bench`, the gallery commands: open_serial
            refuses it in the same words, and the board's port is opened once, not twice).

    Returns:
        The port to open or hand on (with ``check``, a relative path made absolute; without, as
        given).

    Raises:
        DeviceError: ``auto`` and no board connected (the ports seen are listed), or several (the
            matching ones); with ``check``, a path that is no serial port or may not be opened, or
            a network URL without a port.
    """
    if port == AUTO:
        return find_port(board)
    return check_port_exists(port) if check else port


def _open_error(port: str, exc: OSError) -> DeviceError:
    """The one line of a port that cannot be opened: the system's reason, and what to do about it."""
    return DeviceError(f"cannot open {port}: {os.strerror(exc.errno)}", hint=port_hint(port, exc.errno))


def check_port_exists(port: str | None) -> str | None:
    """Refuse, before any work, a serial port given as a path that is no serial port: nothing
    there, a regular file, a folder, or a character device that is no terminal (``/dev/null``,
    ``/dev/zero``). A serial device, a pseudo-terminal, and a link to either pass.

    The rule is the one of opening such a port (:func:`tinyface.protocol.client.open_serial`, as
    `tinyface bench --port` reports it, in the same words): a character device is opened as
    pyserial opens it (read-write, no controlling terminal, not waiting for a carrier) and closed
    at once; one that opens but is no terminal (ENOTTY to pyserial) is "not a serial port", one
    that does not open gives the system's reason; ``Permission denied`` with what to do about
    access (:func:`permission_hint`). The others say to check the path, or pass ``--port auto``.

    What is a path: an absolute one (``/dev/ttyUSB0``), one with a folder in it (``./tty``,
    ``dev/ttyUSB0``), a name of something in the current folder, and any other bare name
    (``ttyUSB0``, ``nonexist``) except those PlatformIO resolves itself: ``COM3``-style
    names and network host names or addresses (``esp32.local``, ``192.168.1.5``, ``fe80::1``).
    Those, wildcards (``/dev/ttyUSB*``, any of ``*?[``) and ``socket://`` / ``rfc2217://``
    URLs go on as given; of a URL only the form is checked, HOST:PORT
    (:func:`tinyface.protocol.client.check_serial_url`, without connecting).

    Returns:
        The port to hand on: ``port`` as given, or a relative path made absolute (PlatformIO
        runs in the project folder, where the relative path would name something else).

    Raises:
        DeviceError: ``port`` is such a path and is no serial port, or may not be opened; or a
            network URL without a port.
    """
    if port and "://" in port:
        from tinyface.protocol.client import check_serial_url

        check_serial_url(port)  # its own hint: the URL's form
        return port
    if not port or any(c in port for c in "*?[") or not _is_path(port):
        return port
    try:
        mode = os.stat(port).st_mode  # links followed: a link to a device is that device
    except OSError as exc:  # nothing there, a broken link, a file in the middle of the path, a folder barred
        raise _open_error(port, exc) from None
    if stat.S_ISDIR(mode):
        raise DeviceError(f"cannot open {port}: a folder, not a serial port", hint=PATH_HINT)
    if not stat.S_ISCHR(mode):  # a regular file, a pipe, a socket, a disk
        raise DeviceError(f"cannot open {port}: not a serial port", hint=PATH_HINT)
    _check_terminal(port)
    return port if os.path.isabs(port) else os.path.abspath(port)


def _is_path(port: str) -> bool:
    """Whether ``port`` names a file on this machine rather than something PlatformIO resolves."""
    if _COM_PORT.fullmatch(port):  # first: Windows may say that its device names exist as files
        return False
    if os.path.isabs(port) or "/" in port or os.sep in port or os.path.lexists(port):
        return True
    return not (_HOST_NAME.fullmatch(port) or ":" in port)


def _check_terminal(port: str) -> None:
    """Open the character device ``port`` as pyserial does and refuse it if it is no terminal.

    Opening a USB serial port raises RTS and DTR for a moment, as any serial monitor does; only
    `flash` checks a port this way (bench and the gallery commands leave a path to open_serial),
    and it flashes the board next (esptool resets it)."""
    flags = os.O_RDWR | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(port, flags)
    except OSError as exc:  # EACCES: not the user's to open (a USB serial port is root:dialout 0660)
        raise _open_error(port, exc) from None
    try:
        terminal = os.isatty(fd)
    finally:
        os.close(fd)
    if not terminal:  # /dev/null, /dev/zero: pyserial's set-up fails with ENOTTY
        raise DeviceError(f"cannot open {port}: not a serial port", hint=PATH_HINT)
