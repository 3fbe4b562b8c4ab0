"""An enrollment cut short (Ctrl-C, or the link failing between two photos) is all or nothing
as far as the protocol allows: a new person is deleted again, and one enrolled before keeps the
samples sent, with a message that says so. Against a real device process serving the released
esp32 model, with real LFW photos; the Ctrl-C is raised where the signal handler would raise it
(between two ENROLL requests, or with an ENROLL sent and its reply unread), a link failure either
injected (LinkLost raised by a wrapper: the ``_injected`` test) or real (the device process killed)."""

from __future__ import annotations

import pytest

from tests.conftest import RELEASED
from tinyface.errors import Interrupted
from tinyface.protocol.client import LinkLost

pytestmark = pytest.mark.usefixtures("released_model")  # tracked in git: missing, the tests fail


@pytest.fixture
def device(start_device):
    """The device process (a DeviceProcess: ``kill()`` is the board dying)."""
    return start_device(RELEASED)


@pytest.fixture
def board(device, connect, lfw_dir):
    from tinyface import config
    from tinyface.device import gallery

    client = connect(device.port)
    info, bundle = gallery.board_bundle(client, RELEASED)
    paths = sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[:4]
    aligned = gallery.align_photos(paths, bundle, config.load(None, {}))
    return client, info, bundle, aligned


def _fail_at(client, monkeypatch, call: int, exc: BaseException) -> None:
    """``client.enroll`` raises ``exc`` on its ``call``-th use (1-based), before that request is
    sent: as the signal handler would between two requests, or as an injected link failure."""
    real, calls = client.enroll, []

    def enroll(name, x):
        calls.append(name)
        if len(calls) == call:
            raise exc
        return real(name, x)
    monkeypatch.setattr(client, "enroll", enroll)


def _interrupt_after_sending(client, monkeypatch, call: int) -> None:
    """``client.enroll``'s ``call``-th use (1-based) sends its ENROLL frame as the client does and
    raises KeyboardInterrupt before reading anything: the board takes the photo and its reply
    waits, unread, on the link (where Ctrl-C usually lands, since the board's time is spent there)."""
    import numpy as np

    from tinyface.protocol import spec
    from tinyface.protocol.codec import encode_frame

    real, calls = client.enroll, []

    def enroll(name, x):
        calls.append(name)
        if len(calls) == call:
            payload = spec.ENROLL_REQUEST.pack(name=spec.encode_name(name)) + np.ascontiguousarray(x, np.int8).tobytes()
            client.send_raw(encode_frame(spec.MsgType.ENROLL, client._next_seq(), payload))
            raise KeyboardInterrupt
        return real(name, x)
    monkeypatch.setattr(client, "enroll", enroll)


def _spy_deletes(client, monkeypatch) -> list[dict]:
    """The replies of the client's DELETE requests (the real ones), as they come."""
    real, replies = client.delete, []

    def delete(name=None):
        replies.append(real(name))
        return replies[-1]
    monkeypatch.setattr(client, "delete", delete)
    return replies


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


def test_a_link_lost_mid_enrollment_is_the_links_error_and_undoes_a_new_person_injected(board, monkeypatch):
    """The client's LinkLost raised by a wrapper (an injected fault: the link still works, so the
    cleanup reaches the board); the real loss is the next test."""
    from tinyface.device import gallery

    client, info, bundle, aligned = board
    _fail_at(client, monkeypatch, 2, LinkLost("the port went away"))
    with pytest.raises(LinkLost) as caught:
        gallery.enroll(client, info, bundle, "Colin", aligned)
    assert "after sending 2 of 4 photos of Colin; Colin was deleted again" in str(caught.value)
    assert _samples(client) == {}


def test_the_board_dying_mid_enrollment_says_what_it_holds_is_unknown(board, device, monkeypatch):
    """The device process is killed right after the 2nd photo's reply: the 3rd request fails on the
    real link, the cleanup (DELETE) cannot reach the board either, and the error says so: the
    link's own error and exit code, told that what the board holds of the person is unknown."""
    from tinyface.device import gallery
    from tinyface.errors import DeviceError

    client, info, bundle, aligned = board
    real, replies = client.enroll, []

    def enroll(name, x):
        replies.append(real(name, x))
        if len(replies) == 2:
            device.kill()  # SIGKILL, whole group: the board dies with 2 photos of Colin on it
        return replies[-1]
    monkeypatch.setattr(client, "enroll", enroll)
    with pytest.raises(DeviceError) as caught:
        gallery.enroll(client, info, bundle, "Colin", aligned)
    assert [r["samples"] for r in replies] == [1, 2]  # the board really took two photos
    assert device.proc.poll() is not None
    error = caught.value
    assert type(error) is LinkLost, repr(error)  # the link's own error, class kept (the pty is gone: EIO)
    assert error.exit_code == DeviceError.exit_code == 7  # and so the CLI's exit code
    assert str(error).startswith(f"lost the connection to {device.port}"), str(error)
    assert str(error).endswith("(after sending 3 of 4 photos of Colin; the board did not answer afterwards, "
                               "so what it holds of Colin is unknown)"), str(error)
    assert error.hint == ("check with `tinyface gallery list`; `tinyface gallery delete --name Colin` "
                          "to start over")
    assert error.one_line() == f"{error} ({error.hint})"  # what the CLI prints, with the exit code above


def test_ctrl_c_while_the_first_reply_is_awaited_still_deletes_the_new_person(board, monkeypatch):
    """The board took the first photo and the reply was never read: the person is on the board,
    and is deleted again all the same; the DELETE's reply is told from the stale ENROLL reply."""
    from tinyface.device import gallery

    client, info, bundle, aligned = board
    stale_before = client.stats.stale_replies
    _interrupt_after_sending(client, monkeypatch, 1)
    deletes = _spy_deletes(client, monkeypatch)
    with pytest.raises(Interrupted) as caught:
        gallery.enroll(client, info, bundle, "Colin", aligned)
    assert "after sending 1 of 4 photos of Colin; Colin was deleted again" in str(caught.value)
    assert caught.value.exit_code == 130
    assert client.stats.stale_replies == stale_before + 1  # the unread ENROLL reply, skipped
    assert [d["removed"] for d in deletes] == [1]  # Colin was on the board when the DELETE ran
    assert _samples(client) == {}
