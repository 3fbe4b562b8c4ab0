"""tinyface.fsutil. Atomic writes: a failed write never leaves a half-written file or a temp file behind.
os_text: a name is the text its bytes spell in UTF-8, whatever the locale."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tinyface import fsutil

REPO = Path(__file__).resolve().parents[1]


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "sub" / "model.json"
    fsutil.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with fsutil.atomic_path(target) as tmp:
            tmp.write_text("half of the new cont")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.json"]


def test_a_write_creates_parents_and_replaces_whole(tmp_path):
    target = tmp_path / "a" / "b" / "c.bin"
    fsutil.write_bytes(target, b"\x00" * 1000)
    fsutil.write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["c.bin"]


def test_write_if_changed_leaves_an_identical_file_alone(tmp_path):
    target = tmp_path / "gen.h"
    assert fsutil.write_if_changed(target, b"same") is True
    os.utime(target, (1_000_000, 1_000_000))
    assert fsutil.write_if_changed(target, b"same") is False
    assert target.stat().st_mtime == 1_000_000
    assert fsutil.write_if_changed(target, b"other") is True and target.read_bytes() == b"other"


def test_write_json_handles_numpy_and_paths(tmp_path):
    target = fsutil.write_json(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.arange(3), "p": Path("/x")})
    assert json.loads(target.read_text()) == {"a": 0.5, "b": [0, 1, 2], "p": "/x"}
    with pytest.raises(TypeError, match="not JSON serialisable"):
        fsutil.write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists() and len(list(tmp_path.iterdir())) == 1


def test_sha256_file(tmp_path):
    import hashlib

    data = os.urandom(3 << 20)  # more than one read chunk
    (tmp_path / "f").write_bytes(data)
    assert fsutil.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_artifacts_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        fsutil.write_text(tmp_path / "report.md", "x")
        fsutil.write_json(tmp_path / "sub" / "model.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == mode
    assert (tmp_path / "sub" / "model.json").stat().st_mode & 0o777 == mode


def test_an_output_that_cannot_be_created_is_an_output_error(tmp_path):
    from tinyface.errors import OutputError

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for call in (lambda: fsutil.ensure_dir(blocker / "out", "--out"),
                 lambda: fsutil.check_writable(blocker / "r.json", "--out"),
                 lambda: fsutil.write_text(blocker / "sub" / "report.md", "x"),
                 lambda: fsutil.check_writable(tmp_path, "--out")):
        with pytest.raises(OutputError):
            call()
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match="cannot write"):  # os.replace onto a folder
        fsutil.write_text(tmp_path / "folder", "x")
    assert fsutil.check_writable(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    assert not list((tmp_path / "new").iterdir())  # the probe leaves nothing behind


def test_a_folder_on_a_read_only_disk_says_so_not_permission_denied(tmp_path):
    """As root a folder's permissions allow everything, so "permission denied" for a read-only disk
    (a read-only bind mount, a DVD) sent people to chmod; a real read-only tmpfs (needs root, as CI
    runs)."""
    from tests.conftest import mounted_tmpfs
    from tinyface.errors import OutputError

    with mounted_tmpfs(tmp_path / "ro", "ro") as folder, pytest.raises(OutputError) as exc:
        fsutil.check_creatable_dir(folder / "run", "the output folder")
    assert exc.value.one_line().startswith(f"cannot create the output folder {folder / 'run'}: read-only file "
                                           "system")


def test_only_the_temp_files_of_atomic_writes_are_removed_as_leftovers_never_a_users_file(tmp_path):
    """remove_temp_leftovers deletes unasked, so it must know a temp file by a name no user gives a
    file: a marker, not just a dot, 8 characters and a suffix. Names of the form used before the
    marker (``.x.keras.abcdefgh.keras``) are a user's files now, and are kept."""
    for name, keep_suffix in [("student.keras", True), ("model.json", False), ("int8.tflite", False)]:
        with fsutil.atomic_path(tmp_path / name, keep_suffix=keep_suffix) as tmp:
            assert fsutil.TEMP_MARKER in tmp.name and fsutil.is_temp_name(tmp.name)
            assert tmp.suffix == (Path(name).suffix if keep_suffix else fsutil.TEMP_SUFFIX)
            tmp.write_bytes(b"x")
    leftovers = [".student.keras.tinyface-tmp-k3x_9a0b.keras", ".model.json.tinyface-tmp-abcd1234.tmp"]
    users = [".x.keras.abcdefgh.keras", ".model.json.abcd1234.tmp", ".notes.keras.backup12.keras",
             ".student.keras.tinyface-tmp-k3x_9a0b.json",  # neither .tmp nor the name's own suffix
             ".student.keras.tinyface-tmp-short.keras", "student.keras.tinyface-tmp-k3x_9a0b.keras",
             ".tinyface-tmp-abcdefgh.tmp", "notes.tmp", ".student.keras"]
    for name in leftovers + users:
        (tmp_path / name).write_bytes(b"bytes")
    (tmp_path / ".int8.tflite.tinyface-tmp-abcdefgh.tmp").mkdir()  # a folder is never a temp file
    assert sorted(p.name for p in fsutil.remove_temp_leftovers(tmp_path)) == sorted(leftovers)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        users + ["student.keras", "model.json", "int8.tflite", ".int8.tflite.tinyface-tmp-abcdefgh.tmp"])


def test_a_builds_temporary_files_go_into_its_folder_and_a_killed_runs_are_swept(tmp_path):
    """tempfile (TensorFlow's converter copies its SavedModel there) points into the run's folder
    for the block; what a SIGKILLed run left there is removed by the next, and nothing stays after."""
    import tempfile

    from tinyface.fsutil import scratch_tempdir

    left = tmp_path / ".tmp" / "tmpabc123"  # a converter's copy from a run the OOM killer ended
    left.mkdir(parents=True)
    (left / "saved_model.pb").write_bytes(b"x" * 100)
    before = tempfile.gettempdir()
    with scratch_tempdir(tmp_path) as scratch:
        assert not left.exists()
        made = tempfile.mkdtemp()
        assert Path(made).parent == scratch == tmp_path / ".tmp"
    assert tempfile.gettempdir() == before and not scratch.exists()


HOLDER = """
import sys, time
from tinyface.fsutil import exclusive_folder
with exclusive_folder(sys.argv[1], "--out", "tinyface build"):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold(folder):
    """Another process that holds ``folder`` as a build does, until killed."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_folder_another_process_writes_is_refused_until_that_process_ends(tmp_path):
    """One build at a time in a folder: the second is told who holds it. The lock ends with its
    process, killed or not, so nothing is left to clean up."""
    holder = _hold(tmp_path)
    try:
        with pytest.raises(fsutil.OutputError) as refused:
            with fsutil.exclusive_folder(tmp_path, "--out", "tinyface build"):
                pytest.fail("entered a folder another process holds")
        assert f"is in use by another tinyface build (pid {holder.pid})" in str(refused.value)
        assert refused.value.exit_code == 14
    finally:
        holder.kill()  # SIGKILL: no cleanup runs
        holder.wait()
    with fsutil.exclusive_folder(tmp_path):  # free again
        assert (tmp_path / fsutil.LOCK_NAME).read_text().strip() == str(os.getpid())


def test_a_lock_removed_by_its_holder_is_not_held_by_whoever_opened_it_before(tmp_path, monkeypatch):
    """A holder with ``remove`` (evaluate --out) unlinks its lock file as it ends. A second command that
    opened that file just before and locks it just after holds a file no name leads to, so a third
    would lock a new one beside it: two holders. The second must find its file gone and lock the name's."""
    import contextlib
    import fcntl

    held = contextlib.ExitStack()
    held.enter_context(fsutil.exclusive_folder(tmp_path, lock_name=".x.lock", remove=True))
    real_flock = fcntl.flock
    calls = []

    def flock_after_the_holder_ended(handle, op):
        if not calls:
            held.close()  # the holder removes its file and lets go, between our open and our lock
        calls.append(op)
        return real_flock(handle, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_holder_ended)
    with fsutil.exclusive_folder(tmp_path, lock_name=".x.lock", remove=True):
        assert len(calls) == 2  # the removed file, then the one the name leads to
        with open(tmp_path / ".x.lock") as third, pytest.raises(BlockingIOError):
            real_flock(third, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not (tmp_path / ".x.lock").exists()


def test_without_fcntl_the_folder_is_still_marked_as_tinyfaces(tmp_path, monkeypatch):
    """Windows has no ``fcntl``: nothing is locked there, but ``.lock`` is written all the same, so
    that a build killed before its first stage's record leaves a folder ``build --out`` reuses
    instead of refusing it as the user's files."""
    import sys

    from tinyface.train.pipeline import check_run_folder

    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` raises ImportError
    with fsutil.exclusive_folder(tmp_path, "--out", "tinyface build"):
        (tmp_path / "distill").mkdir()  # a stage begun, its record not yet written
    assert (tmp_path / fsutil.LOCK_NAME).read_text().strip() == str(os.getpid())
    check_run_folder(tmp_path)  # reused, not refused


def test_a_second_build_into_the_same_folder_is_one_line_and_exit_14(tmp_path, lfw_dir):
    """`tinyface build` into a folder a running build holds stops before any stage, in one line."""
    from tests.conftest import run_cli

    out = tmp_path / "run"
    out.mkdir()
    holder = _hold(out)
    try:
        proc = run_cli("build", "--quick", "--data", str(lfw_dir), "--out", str(out))
    finally:
        holder.kill()
        holder.wait()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 14, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0] == (f"tinyface: error: --out {out} is in use by another tinyface build "
                                            f"(pid {holder.pid}) (wait for it to end, or choose another --out)"), lines
    assert not (out / "distill").exists() and not (out / ".tmp").exists()  # nothing of a stage was started


# --- os_text: a name as the text its bytes spell in UTF-8, whatever the locale -------------------------
# `enroll --name Zoë`, `gallery delete --name` and `flash --enroll DIR`'s folders read a name so.

ZOE = "Zoë"
ZOE_UTF8 = ZOE.encode("utf-8")  # b"Zo\xc3\xab": 4 bytes on the wire
# Python's reading of those bytes under a C locale with UTF-8 mode off (surrogate escapes)
ZOE_IN_C_LOCALE = ZOE_UTF8.decode("ascii", "surrogateescape")


def test_os_text_reads_the_bytes_as_utf8():
    from tinyface.fsutil import os_text  # was tinyface.cli.common.argv_text (flash --enroll's folders use it too)

    assert ZOE_IN_C_LOCALE == "Zo\udcc3\udcab"
    assert os_text(ZOE_IN_C_LOCALE) == ZOE  # was: taken as it came, and refused as "not valid UTF-8"
    assert os_text(ZOE) == ZOE and os_text("Bob") == "Bob"
    with pytest.raises(ValueError) as info:
        os_text("Zo\udceb")  # the Latin-1 byte of ë, in a UTF-8 (or C) locale
    assert "b'Zo\\xeb'" in str(info.value) and "not valid UTF-8" in str(info.value)


def test_the_name_rule_lives_in_a_foundation_module_codegen_may_import():
    import tinyface.cli.common as common
    from tinyface import fsutil

    assert not hasattr(common, "argv_text")
    assert fsutil.os_text("Zo\udcc3\udcab") == ZOE
    source = (REPO / "tinyface" / "codegen" / "gallery.py").read_text(encoding="utf-8")
    assert "from tinyface.fsutil import os_text" in source


def test_a_signal_during_replace_together_s_renames_waits_until_every_file_is_in_place(tmp_path, monkeypatch):
    """An evaluate --out report is replaced by renames, one file after another: a Ctrl-C between two
    of them left the folder mixing the new run's first files with the old run's others. It is now
    held back until the last rename, then raised."""
    import signal

    class Stopped(Exception):
        pass

    def on_signal(signum, frame):
        raise Stopped

    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text("old")
    put = fsutil._put_in_place

    def put_then_interrupted(tmp, target):
        put(tmp, target)
        os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C right after the first rename

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        monkeypatch.setattr(fsutil, "_put_in_place", put_then_interrupted)
        with pytest.raises(Stopped):
            with fsutil.replace_together(tmp_path) as group:
                for name in ("a.txt", "b.txt", "c.txt"):
                    with group.write(name) as tmp:
                        tmp.write_text("new")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [(tmp_path / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["new"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt"]
