"""A real pseudo-terminal for the emulated board (and the native firmware build).

The board side holds the master; the host opens the slave path like any serial port
(pyserial works on it unchanged). Both sides are raw: no echo, no line editing, no CR/LF
translation, so binary frames pass through byte for byte.
"""

from __future__ import annotations

import os
import termios
import tty

from tinyface.errors import DeviceError


def open_pty() -> tuple[int, str]:
    """Open a pseudo-terminal pair in raw mode.

    Returns:
        (master_fd, slave_path). The slave fd is closed again: the host opens the path. The
        caller owns master_fd and must close it (closing it removes the pty).

    Raises:
        DeviceError: the system has no free pseudo-terminal.
    """
    try:
        master_fd, slave_fd = os.openpty()
    except OSError as exc:
        raise DeviceError(f"cannot open a pseudo-terminal: {exc.strerror or exc}") from None
    try:
        # Raw on the slave (the line discipline lives there): no echo of the host's bytes back
        # to it, no CR/LF mapping, no signals on 0x03.
        tty.setraw(slave_fd, termios.TCSANOW)
        attrs = termios.tcgetattr(slave_fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave_fd, termios.TCSANOW, attrs)
        path = os.ttyname(slave_fd)
    except OSError as exc:
        os.close(master_fd)
        raise DeviceError(f"cannot configure the pseudo-terminal: {exc.strerror or exc}") from None
    finally:
        os.close(slave_fd)
    os.set_blocking(master_fd, False)
    return master_fd, path
