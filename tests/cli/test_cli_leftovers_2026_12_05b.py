"""CLI leftovers of 2026-12-05 (second pass): each test failed before its fix.

1. `build --print-config` checks the board as the build does (an unknown board: exit 3).
2. A `socket://` or `rfc2217://` URL without a port is one line naming socket://HOST:PORT (exit 7),
   read from its text: nothing is loaded, opened or connected.
3. `--boards-dir` and `$TINYFACE_BOARDS_DIR` refuse a bad folder by one rule, in the same words:
   a bad option value (exit 2) and a bad environment (exit 3), as docs/cli.md's table says.
4. Enroll's refusal hints are chosen by the refusal's code, not by the words of its reason.

Everything runs in this process, without TensorFlow, a board or the network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinyface import errors, resources
from tinyface.cli import main as cli_main

from test_bad_inputs import REPO, _own_folder, tinyface  # noqa: F401  (_own_folder: autouse fixture)


@pytest.fixture(autouse=True)
def _no_boards_dir(monkeypatch):
    """--boards-dir sets a module global: each test starts (and leaves) without one."""
    monkeypatch.setattr(resources, "_user_boards_dir", None)
    monkeypatch.delenv("TINYFACE_BOARDS_DIR", raising=False)


def run(capsys, *args) -> tuple[int, str, str]:
    """`tinyface ARGS` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        cli_main.main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return exc.value.code or 0, captured.out, captured.err


def own_board(folder: Path, name: str = "myboard") -> Path:
    """A folder holding one board file: the shipped esp32's, renamed ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (resources.boards_dir() / "esp32.toml").read_text()
    (folder / f"{name}.toml").write_text(re.sub(r'(?m)^name = "esp32"', f'name = "{name}"', text, count=1))
    return folder


# --- 1. build --print-config refuses a board the build would refuse -------------------------

def test_print_config_refuses_an_unknown_board_as_the_build_does(capsys, tmp_path):
    # was: the settings printed, exit 0, with a board no build accepts
    code, line = tinyface(capsys, "build", "--print-config", "--set", "firmware.board=nosuch")
    # the build's own refusal (before any data is read or anything trained)
    build_code, build_line = tinyface(capsys, "build", "--set", "firmware.board=nosuch", "--data", tmp_path / "none",
                                      "--out", tmp_path / "out")
    assert code == build_code == errors.ConfigError.exit_code == 3
    assert line == build_line and "unknown board 'nosuch'" in line and "known boards: esp32" in line
    assert not (tmp_path / "out").exists()


def test_print_config_json_with_an_unknown_board_is_the_error_object(capsys):
    code, out, err = run(capsys, "build", "--print-config", "--json", "--set", "firmware.board=nosuch")
    assert code == 3 and json.loads(out) == {"error": err.strip().removeprefix("tinyface: error: "),
                                             "kind": "ConfigError", "exit_code": 3}


def test_print_config_accepts_a_board_of_ones_own(capsys, tmp_path):
    own = own_board(tmp_path / "mine")
    code, out, err = run(capsys, "--boards-dir", own, "build", "--print-config", "--json",
                         "--set", "firmware.board=myboard")
    assert code == 0, err
    assert json.loads(out)["firmware"]["board"] == "myboard"


# --- 2. a network URL without a port -------------------------------------------------------------

@pytest.fixture
def nothing_opened(monkeypatch):
    """Fail the test if anything tries to open a port or reach the network."""
    import socket

    import serial

    def refuse(*args, **kwargs):
        raise AssertionError("a port was opened or the network reached")

    monkeypatch.setattr(serial, "serial_for_url", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("command", [
    ["bench"],
    ["enroll", "--name", "Bob", "photo.jpg"],
    ["identify", "photo.jpg"],
    ["gallery", "list"],
    ["gallery", "delete", "--name", "Bob"],
    ["flash", "--board", "esp32", "--project-dir", "fw"],
], ids=lambda c: " ".join(c[:2]))
def test_a_socket_url_without_a_port_is_one_line_naming_the_form(capsys, tmp_path, nothing_opened, command):
    # was: "cannot open socket://x: Could not open port socket://x: '<=' not supported between
    # instances of 'int' and 'NoneType'" (bench: after the model and the data were loaded)
    (tmp_path / "photo.jpg").write_bytes(b"")
    code, line = tinyface(capsys, *command, "--port", "socket://x")
    assert code == errors.DeviceError.exit_code == 7
    assert line == ("tinyface: error: cannot open socket://x: the URL has no port "
                    "(give it as socket://HOST:PORT, e.g. socket://192.168.1.20:3333)")
    assert not (tmp_path / "fw").exists()  # flash: refused before anything was rendered


@pytest.mark.parametrize("url, problem", [
    ("socket://x", "the URL has no port"),
    ("socket://", "the URL has no port"),
    ("socket://x:", "the URL has no port"),
    ("rfc2217://board.local", "the URL has no port"),
    ("socket://x:abc", "the URL's port 'abc' is not a number from 1 to 65535"),  # was: "'debug|info|warning|error'"
    ("socket://x:99999", "the URL's port '99999' is not a number from 1 to 65535"),
    ("RFC2217://x:0", "the URL's port '0' is not a number from 1 to 65535"),
    ("socket://[::1", "not a valid URL: Invalid IPv6 URL"),
])
def test_check_serial_url_reads_only_the_text(nothing_opened, url, problem):
    from tinyface.protocol.client import check_serial_url

    with pytest.raises(errors.DeviceError) as info:
        check_serial_url(url)
    scheme = url.partition("://")[0].lower()
    assert info.value.one_line() == f"cannot open {url}: {problem} (give it as {scheme}://HOST:PORT, " \
                                    f"e.g. {scheme}://192.168.1.20:3333)"


@pytest.mark.parametrize("port", ["socket://192.168.1.20:3333", "rfc2217://[::1]:4000?logging=debug",
                                  "socket://:7000", "/dev/ttyUSB0", "COM3", "loop://", "spy:///dev/ttyUSB0"])
def test_check_serial_url_passes_whatever_has_its_port_or_is_no_network_url(nothing_opened, port):
    from tinyface.device.ports import check_port_exists
    from tinyface.protocol.client import check_serial_url

    check_serial_url(port)
    if "://" in port:
        check_port_exists(port)  # flash's check: a URL with its port goes on to PlatformIO


# --- 3. --boards-dir and $TINYFACE_BOARDS_DIR: one rule, the table's exit codes -------------------

@pytest.mark.parametrize("what", ["missing", "file"])
def test_a_bad_boards_folder_is_said_alike_by_the_option_and_the_variable(capsys, tmp_path, monkeypatch, what):
    path = tmp_path / "my-bords"
    if what == "file":
        path.write_text("name = 'myboard'\n")
    reason = (f"must be a folder of board files, got {str(path)!r}, which "
              + ("does not exist" if what == "missing" else "is not a folder"))
    code, out, _ = run(capsys, "--boards-dir", path, "boards", "--json")
    option = json.loads(out)
    # was: "Invalid value for '--boards-dir': Directory '...' does not exist." / "... is a file."
    assert code == option["exit_code"] == errors.EXIT_USAGE == 2 and option["kind"] == "UsageError"
    assert option["error"].startswith("Invalid value for '--boards-dir': " + reason)
    monkeypatch.setenv("TINYFACE_BOARDS_DIR", str(path))
    code, out, _ = run(capsys, "boards", "--json")
    variable = json.loads(out)
    assert code == variable["exit_code"] == errors.ConfigError.exit_code == 3 and variable["kind"] == "ConfigError"
    assert variable["error"].startswith("TINYFACE_BOARDS_DIR " + reason)


def test_the_boards_dir_option_expands_a_tilde_as_the_variable_does(capsys, tmp_path, monkeypatch):
    # was: `--boards-dir=~/mine` (no shell expands that ~) refused as "Directory '~/mine' does not exist"
    monkeypatch.setenv("HOME", str(tmp_path))
    own_board(tmp_path / "mine")
    for args in (["--boards-dir", "~/mine"], []):
        if not args:
            monkeypatch.setenv("TINYFACE_BOARDS_DIR", "~/mine")
        code, out, err = run(capsys, *args, "boards", "--json")
        assert code == 0, err
        assert "myboard" in [b["name"] for b in json.loads(out)]


def test_docs_exit_code_table_says_which_code_each_way_gives():
    text = (REPO / "docs" / "cli.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"(?m)^\| (\d+) \| .*$", text)}
    assert "--boards-dir" in rows["2"] and "TINYFACE_BOARDS_DIR" in rows["3"]
    env_row = next(line for line in text.splitlines() if line.startswith("| `TINYFACE_BOARDS_DIR` |"))
    assert "exit 3" in env_row and "exit 2" in env_row


# --- 4. enroll: the hint is chosen by the refusal's code -------------------------------------

def _scenario(monkeypatch, vectors: dict[int, list[float]], identified: dict[int, tuple[str, float, bool]]):
    """A fake board for _check_duplicates_and_consistency: photo i's input is [i], its embedding
    ``vectors[i]`` (normalised), and IDENTIFY answers ``identified[i]`` (name, similarity, accepted)."""
    from tinyface.device import gallery

    table = {i: np.asarray(v, dtype=np.float32) / np.linalg.norm(v) for i, v in vectors.items()}
    monkeypatch.setattr(gallery, "embeddings", lambda client, info, x: np.stack([table[int(r[0])] for r in x]))
    client = SimpleNamespace(identify=lambda x: SimpleNamespace(
        name=identified[int(x[0])][0], similarity=identified[int(x[0])][1], accepted=identified[int(x[0])][2]))
    return client, SimpleNamespace(threshold=0.7), SimpleNamespace(meta=SimpleNamespace(threshold=0.5))


def _aligned(names: list[str], hashes: list[str]):
    from tinyface.device.gallery import AlignedPhotos, Photo

    return AlignedPhotos([Photo(n, face="detected") for n in names], np.arange(len(names))[:, None], hashes)


def test_every_refusal_of_a_photo_with_a_face_carries_its_code_and_the_same_words(monkeypatch):
    from tinyface.device.gallery import Refusal, _check_duplicates_and_consistency, _refusal_hint

    # without a gallery: a copy, a near-copy, and two photos that disagree
    client, info, bundle = _scenario(monkeypatch, {0: [1, 0], 2: [1, 0.01], 3: [0, 1]}, {})
    photos = _aligned(["a.jpg", "b.jpg", "c.jpg", "d.jpg"], ["h0", "h0", "h2", "h3"])
    _check_duplicates_and_consistency(client, info, bundle, "Bob", photos, {})
    got = [(p.refusal, p.reason) for p in photos.photos]
    assert got == [(Refusal.UNLIKE_OTHERS, "does not look like the other photos of Bob (similarity 0.000 < 0.500)"),
                   (Refusal.SAME_FILE, "the same file as a.jpg"),
                   (Refusal.DUPLICATE, "a duplicate of a.jpg (similarity 1.000)"),
                   (Refusal.UNLIKE_OTHERS, "does not look like the other photos of Bob (similarity 0.000 < 0.500)")]
    assert _refusal_hint(photos.photos, "Bob") == ("use other photos of Bob, not copies of photos given or enrolled "
                                                   "already; check that every photo is of Bob")
    # against a gallery: Bob's one enrolled photo, a photo unlike Bob's, a photo of Alice
    client, info, bundle = _scenario(monkeypatch, {0: [1, 0, 0], 1: [0, 1, 0], 2: [0, 0, 1]},
                                     {0: ("Bob", 0.99, True), 1: ("Bob", 0.3, False), 2: ("Alice", 0.9, True)})
    photos = _aligned(["a.jpg", "b.jpg", "c.jpg"], ["h0", "h1", "h2"])
    gallery = {"Bob": SimpleNamespace(samples=1), "Alice": SimpleNamespace(samples=3)}
    _check_duplicates_and_consistency(client, info, bundle, "Bob", photos, gallery)
    got = [(p.refusal, p.reason) for p in photos.photos]
    assert got == [(Refusal.ALREADY_ENROLLED, "already enrolled for Bob (similarity 0.990)"),
                   (Refusal.UNLIKE_ENROLLED, "does not look like the enrolled photos of Bob (similarity 0.300 < 0.500)"),
                   (Refusal.OTHER_PERSON, "the board identifies it as Alice (similarity 0.900 >= 0.700), no less like "
                                          "Alice than like the other photos of Bob (0.000)")]
    assert all(p.to_dict() == {"path": p.path, "status": "refused", "reason": p.reason, "face": "detected"}
               for p in photos.photos)  # --json unchanged: the reason in words, no code


@pytest.mark.parametrize("code, hint", [
    ("NO_FACE", "use photos where one face is clearly visible"),
    ("UNREADABLE", "use photos where one face is clearly visible"),
    ("SAME_FILE", "use other photos of Bob, not copies of photos given or enrolled already"),
    ("DUPLICATE", "use other photos of Bob, not copies of photos given or enrolled already"),
    ("ALREADY_ENROLLED", "use other photos of Bob, not copies of photos given or enrolled already"),
    ("UNLIKE_ENROLLED", "check that every photo is of Bob"),
    ("UNLIKE_OTHERS", "check that every photo is of Bob"),
    ("OTHER_PERSON", "check that every photo is of Bob"),
])
def test_the_hint_follows_the_code_whatever_the_reason_says(code, hint):
    # was: chosen by the first words of the reason, so rewording a reason lost its hint
    from tinyface.device.gallery import Photo, Refusal, _refusal_hint

    photo = Photo("a.jpg", face="fallback" if code == "NO_FACE" else "" if code == "UNREADABLE" else "detected")
    photo.refuse(Refusal[code], "(details)")
    assert _refusal_hint([photo], "Bob") == hint
    photo.reason = "reworded: nothing like any of the words above"
    assert _refusal_hint([photo], "Bob") == hint
