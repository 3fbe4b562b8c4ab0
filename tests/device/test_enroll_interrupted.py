"""An enrollment cut short (Ctrl-C, or the link failing between two photos) is all or nothing
as far as the protocol allows: a new person is deleted again, and one enrolled before keeps the
samples sent, with a message that says so. Against a real device process serving the released
esp32 model, with real LFW photos; the Ctrl-C is raised where the signal handler would raise it
(between two ENROLL requests), the link failure as the client raises it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyface.errors import Interrupted
from tinyface.protocol.client import LinkLost

REPO = Path(__file__).resolve().parents[2]
RELEASED = REPO / "models" / "esp32"
pytestmark = pytest.mark.skipif(not (RELEASED / "model.tflite").is_file(), reason="no released model in models/esp32")


@pytest.fixture
def board(start_device, connect, lfw_dir):
    from tinyface import config
    from tinyface.device import gallery

    client = connect(start_device(RELEASED).port)
    info, bundle = gallery.board_bundle(client, RELEASED)
    paths = sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[:4]
    aligned = gallery.align_photos(paths, bundle, config.load(None, {}))
    return client, info, bundle, aligned


def _fail_at(client, monkeypatch, call: int, exc: BaseException, after_sending: bool = False) -> None:
    """``client.enroll`` raises ``exc`` on its ``call``-th use (1-based), as the signal handler or
    the link would: before that request is sent, or ``after_sending`` it (the board took it, the
    reply was never read: where Ctrl-C usually lands, since the board's time is spent there)."""
    real, calls = client.enroll, []

    def enroll(name, x):
        calls.append(name)
        if len(calls) == call:
            if after_sending:
                real(name, x)
            raise exc
        return real(name, x)
    monkeypatch.setattr(client, "enroll", enroll)


def _samples(client) -> dict[str, int]:
    return {e.name: e.samples for e in client.list()}


def test_ctrl_c_in_a_new_persons_enrollment_deletes_them_again(board, monkeypatch):
    from tinyface.device import gallery

    client, info, bundle, aligned = board
    _fail_at(client, monkeypatch, 3, KeyboardInterrupt())
    with pytest.raises(Interrupted) as caught:
        gallery.enroll(client, info, bundle, "Colin", aligned)
    assert "after sending 3 of 4 photos of Colin" in str(caught.value)
    assert "deleted again: nothing was enrolled" in str(caught.value) and caught.value.exit_code == 130
    assert _samples(client) == {}


def test_ctrl_c_for_someone_enrolled_before_keeps_the_samples_and_says_so(board, monkeypatch):
    from tinyface.device import gallery

    client, info, bundle, aligned = board
    first = gallery.AlignedPhotos(aligned.photos[:1], aligned.x_int8[:1], aligned.hashes[:1])
    gallery.enroll(client, info, bundle, "Colin", first)
    rest = gallery.AlignedPhotos(aligned.photos[1:], aligned.x_int8[1:], aligned.hashes[1:])
    _fail_at(client, monkeypatch, 2, KeyboardInterrupt())
    with pytest.raises(Interrupted) as caught:
        gallery.enroll(client, info, bundle, "Colin", rest)
    message = caught.value.one_line()
    assert "after sending 2 of 3 photos of Colin; Colin was enrolled before: 1 new sample stays with the 1 earlier" \
        in message
    assert "gallery delete --name Colin" in message
    assert _samples(client) == {"Colin": 2}


def test_a_link_lost_mid_enrollment_is_the_links_error_and_undoes_a_new_person(board, monkeypatch):
    from tinyface.device import gallery

    client, info, bundle, aligned = board
    _fail_at(client, monkeypatch, 2, LinkLost("the port went away"))
    with pytest.raises(LinkLost) as caught:
        gallery.enroll(client, info, bundle, "Colin", aligned)
    assert "after sending 2 of 4 photos of Colin; Colin was deleted again" in str(caught.value)
    assert _samples(client) == {}


def test_ctrl_c_while_the_first_reply_is_awaited_still_deletes_the_new_person(board, monkeypatch):
    """The board took the first photo and the reply was never read: the person is on the board,
    and is deleted again all the same."""
    from tinyface.device import gallery

    client, info, bundle, aligned = board
    _fail_at(client, monkeypatch, 1, KeyboardInterrupt(), after_sending=True)
    with pytest.raises(Interrupted) as caught:
        gallery.enroll(client, info, bundle, "Colin", aligned)
    assert "after sending 1 of 4 photos of Colin; Colin was deleted again" in str(caught.value)
    assert _samples(client) == {}
