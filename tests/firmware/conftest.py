"""Firmware-test fixtures: a protocol client on a real pyserial port."""

import pytest


@pytest.fixture
def connect():
    """Factory: a tinyface.protocol Client on a real serial port (pyserial); closed at teardown."""
    from tinyface.protocol.client import Client, open_serial

    opened = []

    def make(port: str, timeout_s: float = 2.0, retries: int = 3, baud: int = 921600):
        serial_port = open_serial(port, baud)
        opened.append(serial_port)
        return Client(serial_port, timeout_s=timeout_s, retries=retries, port=port)

    yield make
    for s in opened:
        s.close()
