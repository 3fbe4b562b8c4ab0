"""client.py's defaults: a Client made without a timeout or retries waits and retries as
`tinyface bench` does (the settings' bench.timeout_s and bench.retries), as docs/protocol.md says."""

from pathlib import Path

from tinyface.config import BenchSettings
from tinyface.protocol import spec
from tinyface.protocol.client import Client

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def test_a_client_without_settings_waits_and_retries_as_bench_does():
    client = Client(transport=None)
    assert (client.timeout_s, client.retries) == (BenchSettings().timeout_s, BenchSettings().retries)
    assert (spec.DEFAULT_TIMEOUT_S, spec.DEFAULT_RETRIES) == (client.timeout_s, client.retries)
    assert f"`bench.timeout_s`, default {client.timeout_s:g} s" in DOC
    assert f"`bench.retries`, default {client.retries}" in DOC
