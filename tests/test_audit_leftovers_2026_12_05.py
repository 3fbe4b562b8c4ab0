"""Audit leftovers of 2026-12-05: each is one clear line and the exit code of docs/cli.md's table.

pyserial URLs for the commands that open a port, a path that is no serial port, a --project-dir
full of other files, a face cache set to a file, a dataset path that is a file, the enroll
hint by the reason of the refusal, and a --set value that starts as TOML but is not.

The board side is the Python emulation (tinyface.device.emulator) of the released models/esp32,
served in this process on a TCP socket, as `socket://127.0.0.1:PORT` reaches it.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from tinyface import errors
from tinyface.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
RELEASED = REPO / "models" / "esp32"


@pytest.fixture(autouse=True)
def _own_folder(tmp_path, monkeypatch):
    """No ./tinyface.toml of the repository (or anyone's) changes the settings."""
    monkeypatch.chdir(tmp_path)


def tinyface(capsys, *args) -> tuple[int, str, str]:
    """Run `tinyface ARGS` in this process: (exit code, stdout, stderr); never a traceback."""
    with pytest.raises(SystemExit) as exc:
        cli_main.main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return exc.value.code or 0, captured.out, captured.err


def error_line(capsys, *args) -> tuple[int, str]:
    """(exit code, the one stderr line) of a command that fails."""
    code, _, err = tinyface(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: "), err
    return code, lines[0]


class TcpBoard:
    """A TCP server on 127.0.0.1: with ``emulate``, each connection is served by one emulated
    board (its gallery kept between connections, as a board's); without, it accepts and never
    answers (a board that does not speak)."""

    def __init__(self, emulate: bool = True):
        self.board = None
        self.session: threading.Event | None = None
        if emulate:
            from tinyface.boards import load_board
            from tinyface.device.emulator import EmulatedBoard
            from tinyface.model.bundle import load_bundle

            self.board = EmulatedBoard(load_bundle(RELEASED), "esp32", load_board("esp32").cost_model_for("esp-nn"))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from tinyface.device.emulator import serve

        self.server.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                if self.board is None:
                    conn.settimeout(0.1)
                    while not self.stop.is_set():
                        try:
                            if not conn.recv(4096):
                                break
                        except TimeoutError:
                            continue
                else:
                    # serve() sets its ``stop`` when the session ends: one per connection
                    self.session = threading.Event()
                    serve(conn.fileno(), self.board, once=True, stop=self.session)

    def close(self) -> None:
        self.stop.set()
        if self.session is not None:
            self.session.set()
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def tcp_board():
    servers = []

    def make(emulate: bool = True) -> TcpBoard:
        servers.append(TcpBoard(emulate))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


# --- 1. pyserial URLs: bench, enroll, gallery and identify open them as URLs -----------------

def test_open_serial_speaks_the_protocol_over_a_socket_url(tcp_board):
    # was: serial.Serial("socket://...") took the URL as a path: "No such file or directory", exit 7
    from tinyface.model.bundle import load_bundle
    from tinyface.protocol.client import Client, open_serial

    board = tcp_board()
    transport = open_serial(board.url, 921600)
    try:
        client = Client(transport, timeout_s=5.0, retries=2, port=board.url)
        info = client.info()
        assert info.model_sha256 == load_bundle(RELEASED).model_hash and client.list() == []
    finally:
        transport.close()


def test_a_socket_url_whose_server_does_not_answer_times_out(tcp_board):
    from tinyface.protocol.client import Client, open_serial

    board = tcp_board(emulate=False)
    transport = open_serial(board.url, 921600)
    try:
        with pytest.raises(errors.DeviceError) as info:
            Client(transport, timeout_s=0.2, retries=1, port=board.url).info()
    finally:
        transport.close()
    line = info.value.one_line()
    assert f"{board.url} did not answer INFO" in line and "No such file" not in line


def test_gallery_list_on_a_socket_url(capsys, tcp_board):
    board = tcp_board()
    code, out, err = tinyface(capsys, "gallery", "list", "--board", "esp32", "--port", board.url, "--json")
    assert code == 0, err
    assert '"count": 0' in out


def test_a_socket_url_with_nothing_listening_is_one_line(capsys):
    with socket.create_server(("127.0.0.1", 0)) as s:
        url = f"socket://127.0.0.1:{s.getsockname()[1]}"
    code, line = error_line(capsys, "gallery", "list", "--board", "esp32", "--port", url)
    assert code == errors.DeviceError.exit_code == 7
    assert f"cannot open {url}: Connection refused (" in line and "No such file" not in line and "Errno" not in line


# --- 2. a path that opens but is no serial port ------------------------------------------------

@pytest.mark.parametrize("what", ["/dev/null", "file", "folder"])
def test_a_path_that_is_no_serial_port_says_so(capsys, tmp_path, what):
    # was: "Could not configure port: (25, 'Inappropriate ioctl for device')"
    port = {"/dev/null": "/dev/null", "file": str(tmp_path / "afile"), "folder": str(tmp_path)}[what]
    if what == "file":
        Path(port).write_text("x")
    code, line = error_line(capsys, "gallery", "list", "--board", "esp32", "--port", port)
    assert code == errors.DeviceError.exit_code == 7
    reason = "a folder, not a serial port" if what == "folder" else "not a serial port"
    assert f"cannot open {port}: {reason} (" in line and "ioctl" not in line and "25" not in line


# --- 3. flash --port: a regular file or a folder is refused first --------------------------------

def test_check_port_exists_refuses_a_file_or_a_folder_and_passes_devices(tmp_path):
    from tinyface.device.ports import check_port_exists

    afile = tmp_path / "afile"
    afile.write_text("x")
    for port, reason in ((afile, "not a serial port"), (tmp_path, "a folder, not a serial port")):
        with pytest.raises(errors.DeviceError) as info:
            check_port_exists(str(port))
        assert info.value.one_line().startswith(f"cannot open {port}: {reason} (check the path")
    link = tmp_path / "ttyUSB0"
    link.symlink_to("/dev/null")
    master, slave = os.openpty()
    try:
        for port in ("/dev/null", str(link), os.ttyname(slave)):  # a character device, a link to one, a pty
            check_port_exists(port)
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_flash_refuses_a_port_that_is_a_file_or_a_folder_before_rendering(capsys, tmp_path, monkeypatch, what):
    # was: accepted, then the project rendered and built, and PlatformIO's upload failed
    from tinyface.device import platformio

    def no_pio(*args, **kwargs):
        raise AssertionError("flash got as far as PlatformIO")

    monkeypatch.setattr(platformio, "pio_command", no_pio)
    port = tmp_path / "afile"
    if what == "file":
        port.write_text("x")
    else:
        port.mkdir()
    code, line = error_line(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--port", port,
                            "--project-dir", tmp_path / "fw")
    assert code == errors.DeviceError.exit_code == 7
    assert f"cannot open {port}: " in line and "not a serial port (" in line and "--port" in line
    assert not (tmp_path / "fw").exists()


# --- 4. flash --project-dir: a folder of other files is not filled with a project ----------------

def test_a_folder_of_other_files_is_refused_before_the_gallery_is_aligned(capsys, tmp_path, monkeypatch):
    # was: ~35 files and a manifest written among them (it once filled docs/)
    from tinyface.device import flash as flash_mod

    def no_budget(*args, **kwargs):
        raise AssertionError("flash went on into the folder of other files")

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("mine")
    (docs / "img").mkdir()
    monkeypatch.setattr(flash_mod, "check_fits", no_budget)
    code, line = error_line(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                            "--project-dir", docs)
    assert code == errors.ProjectDirError.exit_code == 11
    assert f"{docs} is not a tinyface project (no tinyface-project.json) and not empty" in line
    assert "guide.md, img are there" in line and "--force" in line and "--project-dir" in line
    assert sorted(p.name for p in docs.iterdir()) == ["guide.md", "img"]


def test_force_generates_into_it_and_a_project_folder_is_regenerated(capsys, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("mine")
    args = ("flash", "--board", "esp32", "--model", RELEASED, "--dry-run", "--project-dir", docs)
    code, _, err = tinyface(capsys, *args, "--force")
    assert code == 0, err
    assert (docs / "tinyface-project.json").is_file() and (docs / "guide.md").read_text() == "mine"
    code, _, err = tinyface(capsys, *args)  # now a tinyface project: no --force needed
    assert code == 0, err
    fresh = tmp_path / "fresh"  # an empty folder, and one that does not exist, need none either
    fresh.mkdir()
    for folder in (fresh, tmp_path / "new"):
        code, _, err = tinyface(capsys, "flash", "--board", "esp32", "--model", RELEASED, "--dry-run",
                                "--project-dir", folder)
        assert code == 0, err


def test_a_generation_cut_short_before_its_manifest_is_still_a_project(tmp_path):
    from tinyface.codegen.project import BANNER, check_project_dir, project_paths

    first = project_paths()[0]
    (tmp_path / first).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / first).write_text(f"# {BANNER}\n")
    check_project_dir(tmp_path)  # no manifest, but a file tinyface generated: regenerated as before
    (tmp_path / first).unlink()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(errors.ProjectDirError):
        check_project_dir(tmp_path)
    check_project_dir(tmp_path, force=True)


# --- 5. a face cache set to a file: one wording, ConfigError, from every command -------------------

def test_a_cache_that_is_a_file_is_the_same_config_error_everywhere(capsys, tmp_path, monkeypatch):
    # was: evaluate, data stats --align: "cannot open the face cache X/faces.sqlite: [Errno 17] File exists", exit 4
    from tinyface.data.cache import FaceCache

    cachefile = tmp_path / "cachefile"
    cachefile.write_text("")
    monkeypatch.setenv("TINYFACE_CACHE", str(cachefile))
    code, cache_line = error_line(capsys, "data", "cache")
    assert code == errors.ConfigError.exit_code == 3
    for p in range(2):
        (tmp_path / "people" / f"person{p}").mkdir(parents=True)
        (tmp_path / "people" / f"person{p}" / "0.jpg").write_bytes(b"")
    code, line = error_line(capsys, "data", "stats", "--align", "--data", tmp_path / "people")
    assert code == 3 and line == cache_line
    assert f"the cache {cachefile} is not a folder (" in line and "TINYFACE_CACHE" in line and "Errno" not in line
    with pytest.raises(errors.ConfigError) as info:
        FaceCache(cachefile / "below")
    assert f"the cache {cachefile / 'below'} is not a folder ({cachefile} is a file)" in info.value.one_line()


# --- 6. a dataset path that is a file ------------------------------------------------------------

def test_a_dataset_path_that_is_a_file_says_what_to_pass(tmp_path):
    from tinyface.data.dataset import load_dataset

    (tmp_path / "afile").write_text("x")
    with pytest.raises(errors.DataError) as info:
        load_dataset(tmp_path / "afile")
    line = info.value.one_line()
    assert line.startswith(f"dataset path is not a folder: {tmp_path / 'afile'} (") and "--data DIR" in line
    assert "one sub-folder of photos per person" in line


# --- 7. enroll: the hint fits the reason -----------------------------------------------------------

def _photos(x: np.ndarray, names: list[str], hashes: list[str]):
    from tinyface.device.gallery import AlignedPhotos, Photo

    return AlignedPhotos([Photo(n, face="detected") for n in names], np.stack([x] * len(names)), hashes)


def test_an_enroll_refused_as_a_duplicate_or_another_person_gets_a_fitting_hint(tcp_board):
    # was: "use photos where one face is clearly visible", which fits only photos without a face
    from tinyface.device.gallery import enroll
    from tinyface.model.bundle import load_bundle
    from tinyface.protocol.client import Client, open_serial

    bundle = load_bundle(RELEASED)
    board = tcp_board()
    x = np.random.default_rng(0).integers(-128, 128, size=tuple(bundle.meta.input_shape[1:]), dtype=np.int8)
    transport = open_serial(board.url, 921600)
    try:
        client = Client(transport, timeout_s=5.0, retries=2, port=board.url)
        info = client.info()
        client.enroll("Alice", x)
        with pytest.raises(errors.DataError) as refused:  # Alice's photo, enrolled as Bob
            enroll(client, info, bundle, "Bob", _photos(x, ["a.jpg"], ["h1"]))
        line = refused.value.one_line()
        assert "the board identifies it as Alice" in line and "check that every photo is of Bob" in line
        assert "clearly visible" not in line
        with pytest.raises(errors.DataError) as refused:  # Alice's enrolled photo again, and a copy of it
            enroll(client, info, bundle, "Alice", _photos(x, ["a.jpg", "b.jpg"], ["h1", "h1"]))
        line = refused.value.one_line()
        assert "already enrolled for Alice" in line and "the same file as a.jpg" in line
        assert "use other photos of Alice, not copies" in line and "clearly visible" not in line
    finally:
        transport.close()


def test_the_no_face_hint_stays_for_photos_without_a_face():
    from tinyface.device.gallery import Photo, Refusal, _refusal_hint

    no_face = Photo("a.jpg", face="fallback")
    no_face.refuse(Refusal.NO_FACE, "(alignment would fall back to a centred crop)")
    other = Photo("b.jpg", face="detected")
    other.refuse(Refusal.UNLIKE_OTHERS, "Bob")
    assert _refusal_hint([no_face], "Bob") == "use photos where one face is clearly visible"
    assert _refusal_hint([no_face, other], "Bob") == ("use photos where one face is clearly visible; "
                                                      "check that every photo is of Bob")


# --- 8. --set: a value that starts as TOML must be TOML --------------------------------------------

@pytest.mark.parametrize("item, example", [("extra.dirs=[1,2", "--set 'extra.dirs=[\"a\", \"b\"]'"),
                                           ("extra.dirs=[a, b]", "--set 'extra.dirs=[\"a\", \"b\"]'"),
                                           ('data.dir="C:\\photos"', "--set 'data.dir=\"text\"'"),
                                           ("distill.x={a=1", "--set 'distill.x={ key = \"value\" }'")])
def test_a_set_value_that_starts_as_toml_but_is_not_is_refused(item, example):
    # was: silently the string "[1,2"
    from tinyface import config

    with pytest.raises(errors.ConfigError) as info:
        config.parse_set_option((item,))
    line = info.value.one_line()
    name, _, raw = item.partition("=")
    assert line.startswith(f"--set {name}: {raw} is not a valid TOML value: ") and example in line
    assert "(at " not in line  # tomllib's position is in "v = ...", not in what was typed


def test_set_values_that_are_not_toml_are_still_strings_and_the_cli_says_exit_3(capsys):
    from tinyface import config

    assert config.parse_set_option(("data.dir=/x/y z", "extra.dirs=[]", "extra.kind=photos",
                                    'firmware.board="esp32s3"', "data.dir2=C:\\photos")) == {
        "data": {"dir": "/x/y z", "dir2": "C:\\photos"}, "extra": {"dirs": [], "kind": "photos"},
        "firmware": {"board": "esp32s3"}}
    code, line = error_line(capsys, "data", "cache", "--set", "extra.dirs=[1,2")
    assert code == errors.ConfigError.exit_code == 3 and "extra.dirs" in line and "Unclosed array" in line
