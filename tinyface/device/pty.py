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


def serve_process_on_pty(spawn, on_ready=None, stop=None) -> int:
    """Serve a board program on a new pseudo-terminal until it exits, ``stop`` is set, SIGTERM
    or Ctrl-C: the one serving loop of the native and the instruction-set builds.

    Args:
        spawn: called with the pty's master fd; starts the program on it and returns its Popen.
        on_ready: called with (port_path, process) once the port accepts connections.
        stop: a threading.Event; set it to stop serving.

    Returns:
        The program's exit status.
    """
    import signal
    import subprocess
    import threading

    master_fd, path = open_pty()
    stop = stop or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    proc = spawn(master_fd)
    try:
        if on_ready:
            on_ready(path, proc)
        while proc.poll() is None and not stop.wait(0.1):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.close(master_fd)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return proc.returncode
