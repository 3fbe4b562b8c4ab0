"""`tinyface enroll`, `gallery list|delete` (tinyface/cli/gallery.py; named test_cli_gallery.py
beside tests/device/test_gallery.py, as test modules need unique names): `--name Zoë` whatever the
locale. The name is the text its bytes spell in UTF-8 (tinyface.fsutil.os_text): under a C locale
with UTF-8 mode off (PYTHONUTF8=0) it was refused as "'Zo\\udcc3\\udcab' is not valid UTF-8 text"
(exit 2); under a Latin-1 locale in a UTF-8 terminal it was enrolled as 'ZoÃ«' (6 bytes of mojibake
on the board). Bytes that are no text at all are one line and exit 2, before the port is opened.
A plain C locale, where Python turns UTF-8 mode on by itself (PEP 540), shows what already worked.

The board is `tinyface emulate` (the released models/esp32) on a real pseudo-terminal, driven by
`tinyface` processes under real locales; the photos are LFW's. The gallery commands also open a
board at a pyserial URL (`socket://HOST:PORT`). (The gallery end to end against every device kind:
tests/device/test_gallery.py.)"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import (
    RELEASED,
    env_without_locale as _env,
    error_in_process as tinyface,
    latin1_locale,
    require_released_model,
    run_in_process,
)
from tinyface import errors

pytestmark = pytest.mark.usefixtures("own_folder")

ZOE = "Zoë"
ZOE_UTF8 = ZOE.encode("utf-8")  # b"Zo\xc3\xab": 4 bytes on the wire
# Python's reading of those bytes under a C locale with UTF-8 mode off (surrogate escapes)
ZOE_IN_C_LOCALE = ZOE_UTF8.decode("ascii", "surrogateescape")


def test_a_name_in_surrogate_escapes_is_taken_and_bytes_of_no_text_are_one_line(capsys, tmp_path):
    """In this process: the name check passes the C locale's reading of Zoë (the command goes on to
    the port, which does not exist: exit 7), and refuses bytes that are not UTF-8 (exit 2) first."""
    photo = tmp_path / "zoe.jpg"
    photo.write_bytes(b"")
    port = str(tmp_path / "no-board")
    code, line = tinyface(capsys, "enroll", "--port", port, "--name", ZOE_IN_C_LOCALE, photo)
    assert code == errors.DeviceError.exit_code == 7, line  # was: 2, "'Zo\udcc3\udcab' is not valid UTF-8 text"
    for command in (["enroll", "--port", port, "--name", "Zo\udceb", str(photo)],
                    ["gallery", "delete", "--port", port, "--name", "Zo\udceb"]):
        code, line = tinyface(capsys, *command)
        assert code == errors.EXIT_USAGE == 2
        assert "Invalid value for '--name': its bytes b'Zo\\xeb' are not valid UTF-8 text" in line


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """`tinyface emulate` of the released model on a pseudo-terminal: its port."""
    require_released_model()
    err = tmp_path_factory.mktemp("board") / "stderr"
    with open(err, "wb") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", "emulate", "--model", str(RELEASED)],
                                stdout=subprocess.PIPE, stderr=err_file, start_new_session=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        port = proc.stdout.readline().decode().strip() if ready else ""
        assert port.startswith("/dev/"), err.read_text(errors="replace")[-2000:]
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()


def _tinyface(env: dict, *args) -> subprocess.CompletedProcess:
    """`tinyface ARGS` in a process with ``env``; arguments as bytes, as a terminal passes them."""
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return subprocess.run([sys.executable.encode(), b"-m", b"tinyface.cli.main", *argv], capture_output=True,
                          env=env, timeout=300)


def _people(board) -> list[tuple[bytes, int]]:
    """Who the board holds: (name as UTF-8 bytes, samples), read in a UTF-8 locale."""
    proc = _tinyface(_env(LANG="C.UTF-8"), "gallery", "list", "--port", board, "--json")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return [(p["name"].encode("utf-8"), p["samples"]) for p in json.loads(proc.stdout)["people"]]


@pytest.mark.parametrize("where", ["C, PYTHONUTF8=0", "C", "Latin-1"])
def test_enroll_list_and_delete_zoe_under_a_locale(board, lfw_dir, tmp_path, where):
    if where == "Latin-1":
        locale = latin1_locale(tmp_path)
    else:
        locale = {"LC_ALL": "C", "LANG": "C", **({"PYTHONUTF8": "0"} if "PYTHONUTF8" in where else {})}
    env = _env(**locale)
    photos = sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[:2]
    assert _people(board) == []
    try:
        proc = _tinyface(env, "enroll", "--port", board, "--name", ZOE_UTF8, *photos)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")  # C, PYTHONUTF8=0: was 2
        assert b"Traceback" not in proc.stderr
        # the board holds the 4 bytes typed (Latin-1: was b"Zo\xc3\x83\xc2\xab", the mojibake 'ZoÃ«')
        assert _people(board) == [(ZOE_UTF8, 2)]
        # printed back in the locale's encoding (an ASCII stdout gets UTF-8), never a crash
        shown = ZOE.encode("latin-1") if where == "Latin-1" else ZOE_UTF8
        assert b" of " + shown + b" on " in proc.stdout
        listed = _tinyface(env, "gallery", "list", "--port", board)
        assert listed.returncode == 0 and b"Traceback" not in listed.stderr
        assert b"  " + shown + b" " in listed.stdout, listed.stdout
        as_json = json.loads(_tinyface(env, "gallery", "list", "--port", board, "--json").stdout)
        assert [p["name"] for p in as_json["people"]] == [ZOE]
        # the name typed the same way finds the person again
        proc = _tinyface(env, "gallery", "delete", "--port", board, "--name", ZOE_UTF8)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        assert _people(board) == []
    finally:
        _tinyface(_env(LANG="C.UTF-8"), "gallery", "delete", "--port", board, "--all", "--yes")


@pytest.mark.parametrize("where", ["C, PYTHONUTF8=0", "C.UTF-8"])
def test_bytes_that_are_no_utf8_are_one_line_and_nothing_is_enrolled(board, lfw_dir, where):
    env = _env(LC_ALL="C", PYTHONUTF8="0") if "PYTHONUTF8" in where else _env(LC_ALL="C.UTF-8")
    photo = sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[0]
    proc = _tinyface(env, "enroll", "--port", board, "--name", b"Zo\xeb", photo, "--json")
    err = proc.stderr.decode("ascii")  # one ASCII line, whatever the locale
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "its bytes b'Zo\\xeb' are not valid UTF-8 text" in err
    assert json.loads(proc.stdout)["exit_code"] == 2
    assert _people(board) == []


# --- a board at a pyserial URL: the gallery commands open `socket://HOST:PORT` as a URL ------------------
# The board is tests/conftest.py's TcpBoard: the Python emulation of the released models/esp32, served
# in this process on a TCP socket.

def test_gallery_list_on_a_socket_url(capsys, tcp_board):
    require_released_model()
    board = tcp_board()
    code, out, err = run_in_process(capsys, "gallery", "list", "--board", "esp32", "--port", board.url, "--json")
    assert code == 0, err
    assert '"count": 0' in out


@pytest.mark.parametrize("command", [["gallery", "list"], ["gallery", "delete", "--name", "Bob"],
                                     ["gallery", "delete", "--all"], ["bench"],
                                     ["identify", str(RELEASED / "model.json")]],
                         ids=["list", "delete-name", "delete-all", "bench", "identify"])
def test_a_board_that_does_not_answer_is_waited_for_with_progress_then_one_error_line(capsys, tcp_board, monkeypatch,
                                                                                       command):
    # was: silence for bench.timeout_s x (bench.retries + 1) seconds (20 by default), then the error
    from tests.conftest import plain_progress_every

    plain_progress_every(monkeypatch, 0.1, heartbeat=True)  # a line every 0.1 s instead of 10 s
    board = tcp_board(emulate=False)
    code, out, err = run_in_process(capsys, *command, "--port", board.url, "--board", "esp32", "--timeout", "0.3",
                                    "--retries", "1")
    lines = err.splitlines()
    assert code == errors.DeviceError.exit_code, err
    assert lines[-1].startswith("tinyface: error: ") and "did not answer" in lines[-1], err
    assert lines[:-1] and all(line.startswith(f"waiting for {board.url} to answer, ") for line in lines[:-1]), err


# --- gallery delete --all: asked first in a terminal, refused without one unless --yes ------------------
# As `tinyface data cache --clear` (tests/cli/test_data.py). Was: everyone removed at once, no --yes option.
# The board is the TcpBoard above, its gallery filled directly (as enroll would, without the photos).

def _board_with(tcp_board, *names):
    require_released_model()
    board = tcp_board()
    for name in names:
        board.board.gallery.enroll(name, np.ones(board.board.output_size, np.float32))
    return board


def _enrolled(board) -> list[str]:
    return [n for n in board.board.gallery.names if n is not None]


def _delete(board, *args, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "gallery", "delete", "--board", "esp32",
                           "--port", board.url, *args], capture_output=True, text=True, timeout=120, stdin=stdin)


def test_delete_all_without_a_terminal_needs_yes_and_removes_nobody(tcp_board):
    board = _board_with(tcp_board, "Alice", "Bob")
    for extra in ((), ("--json",)):
        proc = _delete(board, "--all", *extra)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == errors.EXIT_USAGE == 2 and len(lines) == 1, proc.stderr
        assert f"--all would remove everyone enrolled on {board.url} (2 people: Alice, Bob); add --yes" in lines[0]
        if extra:
            assert json.loads(proc.stdout)["exit_code"] == 2
        assert _enrolled(board) == ["Alice", "Bob"]
    empty = _board_with(tcp_board)  # a script learns it needs --yes on its first run, empty board or not
    proc = _delete(empty, "--all")
    assert proc.returncode == 2 and "(0 people); add --yes" in proc.stderr, proc.stderr
    proc = _delete(board, "--name", "Bob")  # one named person: as before, no question
    assert proc.returncode == 0 and _enrolled(board) == ["Alice"], proc.stderr


def test_delete_all_with_yes_removes_everyone(tcp_board):
    board = _board_with(tcp_board, "Alice", "Bob", "Carol")
    proc = _delete(board, "--all", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed"] == 3 and _enrolled(board) == []


@pytest.mark.parametrize("answer", ["n", "y"])
def test_delete_all_in_a_terminal_asks_first(tcp_board, answer):
    board = _board_with(tcp_board, "Alice", "Bob")
    master, slave = os.openpty()
    try:
        os.write(master, f"{answer}\n".encode())  # typed ahead: read when the question is asked
        proc = _delete(board, "--all", stdin=slave)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, proc.stderr
    assert f"remove everyone enrolled on {board.url} (2 people: Alice, Bob)? [y/N]" in proc.stderr
    if answer == "n":
        assert "nothing deleted" in proc.stderr and proc.stdout == "" and _enrolled(board) == ["Alice", "Bob"]
    else:
        assert "removed everyone (2 people)" in proc.stdout and _enrolled(board) == []


# --- a folder as PHOTOS: the photos in it ---------------------------------------------------------------
# Was: "Invalid value for 'PHOTOS...': File 'alice/' is a directory" (exit 2).

def test_enroll_and_identify_take_a_folder_for_the_photos_in_it(capsys, tcp_board, lfw_dir, tmp_path):
    import shutil

    require_released_model()
    board = tcp_board()
    colin = tmp_path / "colin"
    colin.mkdir()
    for photo in sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[:3]:
        shutil.copy(photo, colin / photo.name)
    (colin / "notes.txt").write_text("not a photo")
    (colin / ".hidden.jpg").write_text("not read")
    (colin / "older").mkdir()  # not read either
    shutil.copy(next((lfw_dir / "images" / "Colin_Powell").glob("*.jpg")), colin / "older" / "x.jpg")
    photos = sorted(p for p in colin.glob("*.jpg") if not p.name.startswith("."))
    # the folder and a photo in it: each photo once (a second reading would be refused as a duplicate)
    code, out, err = run_in_process(capsys, "enroll", "--board", "esp32", "--port", board.url, "--name", "Colin",
                                    colin, photos[0], "--json")
    assert code == 0, err
    assert json.loads(out)["enrolled"] == 3 and _enrolled(board) == ["Colin"]
    code, out, err = run_in_process(capsys, "identify", "--board", "esp32", "--port", board.url, str(colin) + "/",
                                    "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert [r["path"] for r in results] == [str(colin / p.name) for p in photos]
    assert all(r["name"] == "Colin" for r in results)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    for command in (["identify"], ["enroll", "--name", "Nobody"]):
        code, line = tinyface(capsys, *command, "--board", "esp32", "--port", board.url, empty)
        assert code == errors.EXIT_USAGE == 2
        assert f"the folder {empty} holds no photos (.jpg, .jpeg, .png" in line
