"""The firmware sources built natively (TFLM_DIR) answer the protocol on a real pty, match
TFLite int8 within 1 LSB, keep their gallery in storage across a restart (the board's NVS)
and load a compiled-in gallery. The bench, gallery and fault tests of tests/device run
against this build too (their `device_kind` fixture has a "native" kind)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import KILLED_COMPILER, mounted_tmpfs, planned_tflm_compiles, skip_or_fail
from tests.firmware.conftest import random_inputs as _inputs
from tinyface.boards import load_board
from tinyface.protocol import spec

pytestmark = pytest.mark.native


def test_info_says_native_and_infer_is_within_one_lsb_of_tflite(native_program, serve, tiny_bundle):
    """What only this build says and does. PING, the model's hash and shape in INFO and INFER bit for
    bit against TFLM are checked of this same program (`emulate --native`) by
    tests/device/test_protocol_pty.py's test_info_ping_infer_match_the_model[native]."""
    from tinyface.model.runtime import TfliteRunner

    _, client = serve(native_program)
    info = client.info()
    assert info.native and not info.emulated and info.board == "esp32"
    assert info.cpu_hz == 1_000_000_000  # the host's nanosecond counter
    x = _inputs(24, tiny_bundle.meta.input_shape)
    device = np.stack([client.infer(item).output for item in x]).astype(np.int16)
    host_tflite = TfliteRunner(tiny_bundle.model_bytes).run(x).astype(np.int16)
    assert np.abs(device - host_tflite).max() <= 1


def test_timings_are_measured(native_program, serve, tiny_bundle):
    _, client = serve(native_program)
    result = client.infer(_inputs(1, tiny_bundle.meta.input_shape)[0])
    assert result.cycles > 0 and result.latency_us > 0
    # the firmware reads the microsecond clock around the nanosecond counter (t0, c0, Invoke, c1, t1):
    # a preemption between them adds to latency_us only, so the bound is one-sided
    assert result.cycles / 1e3 <= result.latency_us + 1


def test_gallery_survives_a_restart_with_storage(native_program, serve, tiny_bundle, tmp_path):
    storage = tmp_path / "nvs"
    proc, client = serve(native_program, storage_dir=storage)
    x = _inputs(3, tiny_bundle.meta.input_shape, seed=5)
    client.enroll("ana", x[0])
    client.enroll("ana", x[1])
    client.enroll("ben", x[2])
    before = [(e.name, e.samples) for e in client.list()]
    assert before == [("ana", 2), ("ben", 1)]
    assert (storage / "gallery.bin").is_file()
    # the blob the firmware saves is what budget.py counts in the board's RAM (its trailing builtin_hash too)
    from tinyface.codegen.budget import gallery_ram_bytes

    assert (storage / "gallery.bin").stat().st_size == gallery_ram_bytes(tiny_bundle.meta.embedding_dim)
    proc.send_signal(signal.SIGKILL)  # a reset, not a clean shutdown
    proc.wait(timeout=10)
    _, client2 = serve(native_program, storage_dir=storage)
    assert [(e.name, e.samples) for e in client2.list()] == before
    assert client2.identify(x[2]).name == "ben"
    client2.delete("ana")
    _, client3 = serve(native_program, storage_dir=storage)
    assert [e.name for e in client3.list()] == ["ben"]


def test_without_storage_the_gallery_is_memory_only(native_program, serve, tiny_bundle):
    proc, client = serve(native_program)
    client.enroll("ana", _inputs(1, tiny_bundle.meta.input_shape)[0])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    _, client2 = serve(native_program)
    assert client2.list() == []


def test_compiled_in_gallery_is_loaded_at_boot(native_toolchain, serve, tiny_bundle, tmp_path):
    from tinyface.codegen import generate_project
    from tinyface.codegen.gallery import GalleryPerson
    from tinyface.device.native import build_native
    from tinyface.model.embedder import dequantize_output
    from tinyface.model.runtime import TflmRunner

    x = _inputs(2, tiny_bundle.meta.input_shape, seed=9)
    emb = dequantize_output(TflmRunner(tiny_bundle.model_bytes).run(x), tiny_bundle.meta)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    people = [GalleryPerson("cara", 1, tuple(unit[0].tolist())), GalleryPerson("dan", 1, tuple(unit[1].tolist()))]
    generate_project(tiny_bundle, load_board("esp32"), tmp_path / "project", gallery=people)
    program = build_native(tmp_path / "project")
    _, client = serve(program)
    assert [(e.name, e.samples) for e in client.list()] == [("cara", 1), ("dan", 1)]
    assert client.info().gallery_count == 2
    match = client.identify(x[1])
    assert match.name == "dan" and match.similarity == pytest.approx(1.0, abs=1e-5)


def _with_compiled_in(bundle, directory, names) -> Path:
    """The native program of ``bundle`` with ``names`` compiled in (random unit sums); the TFLM
    objects come from the shared native cache, so only the app's sources compile."""
    from tinyface.codegen import generate_project
    from tinyface.codegen.gallery import GalleryPerson
    from tinyface.device.native import build_native

    rng = np.random.default_rng(len(names))
    unit = rng.standard_normal((len(names), bundle.meta.embedding_dim)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    people = [GalleryPerson(name, 1, tuple(u.tolist())) for name, u in zip(names, unit, strict=True)]
    generate_project(bundle, load_board("esp32"), directory, gallery=people)
    return build_native(directory)


def test_a_different_compiled_in_gallery_replaces_the_saved_one(native_program, serve, tiny_bundle, tmp_path):
    """Uploading firmware leaves NVS as it was: the same model flashed with another `--enroll`
    folder booted the old saved gallery, and the new people never appeared. The saved gallery
    is kept by the same compiled-in gallery (runtime enrollments on top of it survive) and by a
    firmware with none compiled in (a plain update); another compiled-in gallery replaces it."""
    storage = tmp_path / "nvs"
    x = _inputs(2, tiny_bundle.meta.input_shape, seed=11)

    def boot(program, enroll=None):
        """Start ``program`` on the storage (enrolling ``enroll``, an (name, input)), list, reset."""
        proc, client = serve(program, storage_dir=storage)
        if enroll:
            client.enroll(*enroll)
        listed = [e.name for e in client.list()]
        proc.send_signal(signal.SIGKILL)  # a reset, not a clean shutdown
        proc.wait(timeout=10)
        return listed

    firmware_a = _with_compiled_in(tiny_bundle, tmp_path / "a", ["cara", "dan"])
    assert boot(firmware_a, enroll=("eve", x[0])) == ["cara", "dan", "eve"]
    assert boot(firmware_a) == ["cara", "dan", "eve"]  # the same --enroll again keeps what was added

    firmware_b = _with_compiled_in(tiny_bundle, tmp_path / "b", ["fay"])
    assert boot(firmware_b) == ["fay"]  # another --enroll folder: its people, not the old ones
    assert boot(native_program) == ["fay"]  # none compiled in: what storage holds (B saved it at boot)

    assert boot(native_program, enroll=("gus", x[1])) == ["fay", "gus"]
    assert boot(firmware_b) == ["fay", "gus"]  # the blob still records B's gallery: kept
    assert boot(firmware_a) == ["cara", "dan"]


def test_pipe_transport_and_exit_when_the_link_closes(native_program):
    """On plain pipes (no pty) the program serves and exits when its input closes."""
    from tinyface.protocol.codec import StreamDecoder, encode_frame

    proc = subprocess.Popen([str(native_program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.stdin.write(b"\x00garbage\xa5" + encode_frame(spec.MsgType.PING, 7, b"abc"))
    proc.stdin.flush()
    decoder, events, deadline = StreamDecoder(), [], time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        events = decoder.feed(os.read(proc.stdout.fileno(), 4096))
    assert events[0].seq == 7 and events[0].payload == b"abc" and events[0].type == spec.MsgType.PING.reply
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()


def test_missing_tflm_dir_is_one_clear_error(monkeypatch):
    from tinyface.device.native import find_toolchain
    from tinyface.errors import ToolchainError

    monkeypatch.delenv("TFLM_DIR", raising=False)
    with pytest.raises(ToolchainError, match="TFLM_DIR is not set"):
        find_toolchain()
    monkeypatch.setenv("TFLM_DIR", "/nonexistent")
    with pytest.raises(ToolchainError, match="not a tflite-micro checkout"):
        find_toolchain()


def _tflm_tree(root, third_party_in=None):
    """A folder with TFLM's interpreter header and, under ``third_party_in``, the third-party probes."""
    from tinyface.device.native import _THIRD_PARTY

    (root / "tensorflow/lite/micro").mkdir(parents=True)
    (root / "tensorflow/lite/micro/micro_interpreter.h").write_text("")
    if third_party_in:
        for probe in _THIRD_PARTY.values():
            (root / third_party_in / probe).parent.mkdir(parents=True, exist_ok=True)
            (root / third_party_in / probe).write_text("")
    return root


@pytest.mark.parametrize("layout", ["third_party", "tensorflow/lite/micro/tools/make/downloads"])
def test_both_builds_find_the_third_party_headers_of_either_layout(monkeypatch, tmp_path, layout):
    """esp-tflite-micro keeps them in third_party/, tflite-micro's Makefile downloads them to
    tools/make/downloads: with TFLM_DIR alone, the native and the ESP32-C3 builds take the same
    folder (the native build looked only in downloads/, the ESP32-C3 build only in third_party/)."""
    from tinyface.device import isa, native
    from tinyface.errors import ToolchainError

    tree = _tflm_tree(tmp_path / "tflm", layout)
    monkeypatch.setenv("TFLM_DIR", str(tree))
    monkeypatch.delenv("TFLM_THIRD_PARTY_DIR", raising=False)
    assert native.find_tflm("x") == (tree.resolve(), (tree / layout).resolve())
    assert native.find_toolchain().third_party_dir == (tree / layout).resolve()
    try:
        found = isa.find_toolchain("reference").third_party_dir
    except ToolchainError as exc:  # here only a missing RISC-V package or compiler may stop it
        assert "TFLM" not in exc.one_line(), exc.one_line()
    else:
        assert found == (tree / layout).resolve()


def test_third_party_headers_missing_is_one_line_naming_where_it_looked(monkeypatch, tmp_path):
    from tinyface.device.native import find_tflm
    from tinyface.errors import ToolchainError

    tree = _tflm_tree(tmp_path / "tflm")
    monkeypatch.setenv("TFLM_DIR", str(tree))
    monkeypatch.delenv("TFLM_THIRD_PARTY_DIR", raising=False)
    with pytest.raises(ToolchainError) as err:
        find_tflm("the native build")
    line = err.value.one_line()
    assert "\n" not in line and "TFLM_THIRD_PARTY_DIR" in line
    for place in ("third_party", "tensorflow/lite/micro/tools/make/downloads"):
        assert str(tree.resolve() / place) in line, line
    partial = tmp_path / "deps"
    (partial / "flatbuffers/include/flatbuffers").mkdir(parents=True)
    (partial / "flatbuffers/include/flatbuffers/flatbuffers.h").write_text("")
    monkeypatch.setenv("TFLM_THIRD_PARTY_DIR", str(partial))  # set: only there, and what it lacks is named
    with pytest.raises(ToolchainError, match=r"\(gemmlowp, ruy\) are not in TFLM_THIRD_PARTY_DIR="):
        find_tflm("the native build")


def test_project_cache_folder_differs_by_what_the_project_renders(tiny_bundle, tmp_path):
    """Two boards emulated at once from one .tflite with other thresholds (firmware.identify_threshold)
    or arena margins get their own project folders (native and ISA builds name them this way); the
    same bundle and settings always the same folder, so the build cache holds."""
    from tinyface.device.native import project_cache_folder

    board = load_board("esp32")
    base = project_cache_folder(tmp_path, tiny_bundle, board, "esp-nn", 0.15)
    assert base == project_cache_folder(tmp_path, tiny_bundle, board, "esp-nn", 0.15)
    assert base.name.startswith(f"esp32-{tiny_bundle.model_hash[:16]}-")
    others = {project_cache_folder(tmp_path, tiny_bundle.identifying_at(0.9), board, "esp-nn", 0.15),
              project_cache_folder(tmp_path, tiny_bundle, board, "esp-nn", 0.3),
              project_cache_folder(tmp_path, tiny_bundle, board, "generated", 0.15),
              project_cache_folder(tmp_path, tiny_bundle, load_board("esp32c3"), "esp-nn", 0.15)}
    assert base not in others and len(others) == 4


def killed_compiler(tmp_path, real: str):
    """A compiler (KILLED_COMPILER) that kills its build mid-object; ``real`` answers the rest."""
    path = tmp_path / f"killed-{os.path.basename(real)}"
    path.write_text(KILLED_COMPILER.format(real=real))
    path.chmod(0o755)
    return path


def test_an_object_cut_short_by_a_killed_build_is_compiled_again(native_toolchain, tiny_bundle, tmp_path):
    """A build killed mid-compile leaves no object make would take as up to date: before, the shared
    TFLM cache kept a 4-byte debug_log.o and every later build failed to link (undefined DebugLog).
    One object of the generated native/Makefile, compiled for real; then linked and run."""
    from tinyface.codegen import generate_project
    from tinyface.device.native import find_toolchain

    toolchain = find_toolchain()
    project = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32"), project)
    obj_dir = tmp_path / "tflm"
    obj = obj_dir / "tensorflow/lite/micro/debug_log.o"

    def make(cxx):
        return subprocess.run(["make", "-C", str(project / "native"), *toolchain.make_vars(), f"CXX={cxx}",
                               f"TFLM_OBJ_DIR={obj_dir}", str(obj)],
                              capture_output=True, text=True, timeout=300, start_new_session=True)

    killed = make(killed_compiler(tmp_path, toolchain.cxx))
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr  # make died with its compiler
    assert not obj.exists()
    rebuilt = make(toolchain.cxx)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "debug_log.cc" in rebuilt.stdout  # compiled again, not "up to date"
    assert not list(obj_dir.rglob("*.tmp"))
    main = tmp_path / "main.cc"
    main.write_text('#include <cstdarg>\nextern "C" void DebugLog(const char* format, va_list args);\n'
                    "static void Log(const char* format, ...) {\n"
                    "  va_list args; va_start(args, format); DebugLog(format, args); va_end(args);\n}\n"
                    'int main() { Log("linked %d\\n", 42); return 0; }\n')
    linked = subprocess.run([toolchain.cxx, str(main), str(obj), "-o", str(tmp_path / "main")],
                            capture_output=True, text=True)
    assert linked.returncode == 0, linked.stderr
    ran = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=10)
    assert ran.returncode == 0 and ran.stderr == "linked 42\n"


def _running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has: it holds no files)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # the state, after "(comm)"
    except FileNotFoundError:
        return False


def _lock_is_free(root) -> bool:
    import fcntl

    with open(root / ".build.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True  # closing releases it



def test_a_first_build_precompiles_the_schema_for_the_sources_that_read_it(native_program, tiny_bundle, tmp_path):
    """Most of TFLM's sources spend nearly all their compile time parsing the flatbuffers schema:
    a first build precompiles it once and compiles those sources against it (-include: the same
    code, half the build's time), the ones that never read it as before; a build that adds only a
    few objects compiles them without it. Its .gch (about 250 MB) does not stay in the cache."""
    from tinyface.codegen import generate_project
    from tinyface.device.native import cache_dir, find_toolchain

    assert native_program.is_file()
    assert not list(cache_dir().glob("tflm-*/*.gch*"))  # the real build's, gone once it ended
    toolchain = find_toolchain()
    project = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32"), project)
    obj_dir = tmp_path / "tflm"
    first, precompiles = planned_tflm_compiles(project / "native", toolchain.make_vars(), obj_dir)
    reading = sorted(source for source, command in first.items() if "-include" in command)
    assert precompiles and len(reading) >= 8 and len(first) - len(reading) >= 10, first
    deps = tmp_path / "deps.d"
    for source, command in first.items():  # the Makefile's list of the sources that never read it is true
        headers = re.sub(r" -Winvalid-pch -include \S+", "", command).replace(" -c ", f" -M -MF {deps} ")
        listed = subprocess.run(headers.split(" -o ")[0], shell=True, cwd=project / "native", capture_output=True,
                                text=True)
        assert listed.returncode == 0, listed.stderr
        assert ("schema_generated.h" in deps.read_text()) == (source in reading), source
    for command in first.values():  # every object there but one: too few to precompile for
        obj = Path(re.search(r" -o (\S+)\.tmp", command)[1])
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.touch()
    Path(re.search(r" -o (\S+)\.tmp", first[reading[0]])[1]).unlink()
    later, precompiles = planned_tflm_compiles(project / "native", toolchain.make_vars(), obj_dir)
    assert not precompiles and list(later) == [reading[0]] and "-include" not in later[reading[0]]



def test_emulators_started_at_once_for_one_model_wait_for_each_others_project_build_stubbed(native_toolchain,
                                                                                              tiny_bundle,
                                                                                              monkeypatch, tmp_path):
    """Two `emulate --native` (or two test workers) preparing the same model rendered into the same
    cached project at once, and one took the other's half-written files for the user's
    (ProjectDirError, exit 11: the first file's temporary name, in a folder with no project yet).
    Three threads prepare one model: the first to write the project is held, mid-write, until the
    other two have reached the generation lock, and they may get it only once the first has let go.
    build_native is stubbed (it returns the project folder at once) only to keep the test fast: the
    build is not what this checks, and the real project generation and lock are."""
    import fcntl
    import threading

    from tinyface.codegen import project
    from tinyface.device import native

    monkeypatch.setenv("TINYFACE_NATIVE_CACHE", str(tmp_path / "cache"))
    real_replace, real_flock = os.replace, fcntl.flock
    state = threading.Lock()
    events: list[tuple[str, int]] = []  # ("wait" | "got" | "held" | "resumed", thread id), in order
    others_waiting = threading.Event()  # set when the two other threads are at the lock
    held: list[int] = []

    def note(what: str) -> None:
        with state:
            events.append((what, threading.get_ident()))
            if sum(kind == "wait" for kind, _ in events) == 3:
                others_waiting.set()

    def watched_flock(handle, operation):
        ours = operation == fcntl.LOCK_EX and Path(getattr(handle, "name", "")).name.endswith(".lock")
        if ours:
            note("wait")
        result = real_flock(handle, operation)
        if ours:
            note("got")
        return result

    def held_replace(src, dst, *args, **kwargs):
        first = Path(dst).name == "CMakeLists.txt" and Path(dst).parent.parent.name == "projects" and not held
        if first:  # the first writer, half-way through the project: wait for the others to reach the lock
            held.append(threading.get_ident())
            note("held")
            held.append(others_waiting.wait(timeout=60))
            note("resumed")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(fcntl, "flock", watched_flock)
    monkeypatch.setattr(os, "replace", held_replace)
    monkeypatch.setattr(native, "build_native", lambda project_dir, *args, **kwargs: Path(project_dir))
    built, failed = [], []

    def prepare():
        try:
            built.append(native.prepare_native(tiny_bundle, load_board("esp32")))
        except Exception as exc:  # noqa: BLE001 (what failed is the assertion's message)
            failed.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=prepare) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failed == [] and len(built) == 3 and len(set(built)) == 1
    assert project.edited_files(built[0]) == []
    # the first writer was held until both others were waiting at the lock ...
    assert len(held) == 2 and held[1] is True, events
    first = held[0]
    resumed = events.index(("resumed", first))
    others = {tid for _, tid in events} - {first}
    assert len(others) == 2, events
    for tid in others:
        # ... and each other thread got the lock only after the first had finished writing
        assert events.index(("wait", tid)) < resumed < events.index(("got", tid)), events


def test_a_build_cache_that_cannot_be_written_is_one_output_error(native_toolchain, tiny_bundle, monkeypatch,
                                                                  tmp_path):
    from tinyface.device.native import prepare_native
    from tinyface.errors import OutputError

    with mounted_tmpfs(tmp_path / "ro", "ro") as read_only:
        monkeypatch.setenv("TINYFACE_NATIVE_CACHE", str(read_only / "cache"))
        with pytest.raises(OutputError) as exc:
            prepare_native(tiny_bundle, load_board("esp32"))
    assert "read-only file system" in exc.value.one_line().lower() and "TINYFACE_NATIVE_CACHE" in exc.value.one_line()


def test_the_build_lock_outlives_a_killed_tinyface_while_make_runs(tmp_path):
    """make runs in its own session (Ctrl-C stops it and its compilers together), so a tinyface
    killed outright (SIGKILL) leaves it running: the cache's build lock stays held until make and
    what it runs have exited, and no second build compiles into the same folder beside them.
    Before, the lock was the dead process's alone and was free at once."""
    if not shutil.which("make"):
        skip_or_fail("no make")
    project, root, pid_file = tmp_path / "project", tmp_path / "cache", tmp_path / "make.pid"
    (project / "native").mkdir(parents=True)
    (project / "src").mkdir()
    # a real make whose recipe (a compiler, as it were) says make's pid and runs on
    (project / "native" / "Makefile").write_text(
        f"all:\n\t@echo $$PPID > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && sleep 600\n")
    tinyface = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
         "from tinyface.device.native import make_program\n"
         "make_program(Path(sys.argv[1]), 'native', 'make', [], 'key', Path(sys.argv[2]), 'prog', 'test', jobs=1)",
         str(project), str(root)])
    make_pid = None
    try:
        deadline = time.monotonic() + 30
        while not pid_file.is_file() and time.monotonic() < deadline and tinyface.poll() is None:
            time.sleep(0.05)
        assert pid_file.is_file(), "make's recipe did not start"
        make_pid = int(pid_file.read_text())
        tinyface.kill()
        tinyface.wait(timeout=10)
        assert _running(make_pid)  # make runs on, orphaned
        assert not _lock_is_free(root)
        os.killpg(make_pid, signal.SIGKILL)  # make leads its own session's process group
        deadline = time.monotonic() + 10
        while not _lock_is_free(root):  # and with make and its recipe gone, the lock is free
            assert time.monotonic() < deadline, "the build lock is still held after make has exited"
            time.sleep(0.05)
    finally:
        if tinyface.poll() is None:
            tinyface.kill()
            tinyface.wait()
        if make_pid is not None and _running(make_pid):
            os.killpg(make_pid, signal.SIGKILL)


def test_what_an_interrupted_build_left_half_written_is_removed_before_the_next(tmp_path):
    """A make killed while precompiling the schema left ``tflm_pch.h.gch.tmp`` (250 MB) in the object
    cache, and killed mid-compile a ``*.o.tmp``, until a later first build happened to overwrite
    them. The next build removes them under the build lock, before make runs (a real make, whose
    recipe checks), and so does an interrupted one once make has stopped."""
    if not shutil.which("make"):
        skip_or_fail("no make")
    from tinyface.device.native import make_program

    project, root = tmp_path / "project", tmp_path / "cache"
    (project / "native").mkdir(parents=True)
    (project / "src").mkdir()
    (project / "native" / "Makefile").write_text(
        "all:\n\t@! find $(TFLM_OBJ_DIR) -name '*.tmp' | grep -q . && echo built > $(PROGRAM)\n")
    tflm = root / "tflm-key"
    (tflm / "kernels").mkdir(parents=True)
    kept = [tflm / "kernels" / "conv.o", tflm / "tflm_pch.h"]
    left = [tflm / "tflm_pch.h.gch.tmp", tflm / "kernels" / "add.o.tmp"]
    for path in kept + left:
        path.write_bytes(b"x")
    program = make_program(project, "native", "make", [], "key", root, "prog", "test", jobs=1)
    assert program.is_file()
    assert all(path.is_file() for path in kept) and not any(path.exists() for path in left)

    (project / "native" / "Makefile").write_text("all:\n\t@touch $(TFLM_OBJ_DIR)/late.o.tmp && kill -INT $$PPID\n")
    (project / "src" / "changed").write_text("")  # another program: built anew
    from tinyface.errors import ToolchainError

    with pytest.raises(ToolchainError):  # make interrupted: a failed build, and nothing half-written stays
        make_program(project, "native", "make", [], "key", root, "prog", "test", jobs=1)
    assert not (tflm / "late.o.tmp").exists()


def test_a_storage_folder_that_cannot_be_made_is_one_output_error(tmp_path):
    # was: "internal error: FileExistsError" / "PermissionError" (exit 70) once the firmware was built
    from tinyface.device.native import spawn_native
    from tinyface.errors import OutputError

    program = tmp_path / "program"
    program.write_text("#!/bin/sh\necho \"$@\"\n")
    program.chmod(0o755)
    (tmp_path / "file").write_text("")
    for storage in (tmp_path / "file", "/proc/tinyface-nvs"):  # /proc: root may "write" it, mkdir fails
        with pytest.raises(OutputError, match=f"cannot create the gallery folder {storage}: ") as exc:
            spawn_native(program, own_pty=True, storage_dir=storage)
        assert "TINYFACE_NVS_DIR" in exc.value.one_line()


@pytest.mark.parametrize("problem", ["not executable", "gone"])
def test_a_program_that_cannot_be_run_is_one_toolchain_error(tmp_path, monkeypatch, problem):
    # was: "internal error: PermissionError: [Errno 13] Permission denied: '.../tinyface_native'" (exit 70),
    # with the native cache on a disk mounted noexec (a file without its x bits is refused the same way)
    from tinyface.device.native import spawn_native
    from tinyface.errors import ToolchainError

    monkeypatch.delenv("TINYFACE_NVS_DIR", raising=False)  # no gallery folder to make
    program = tmp_path / "program"
    if problem == "not executable":
        program.write_text("#!/bin/sh\necho \"$@\"\n")
        program.chmod(0o644)
    with pytest.raises(ToolchainError, match=f"cannot run the native firmware {program}: ") as exc:
        spawn_native(program, own_pty=True)
    assert ("noexec" in exc.value.one_line()) == (problem == "not executable")


@pytest.fixture
def noexec_folder(tmp_path):
    """A folder on a real disk mounted noexec."""
    with mounted_tmpfs(tmp_path / "noexec", "noexec") as folder:
        yield folder


@pytest.mark.parametrize("kind", ["native", "isa"])
def test_a_build_cache_on_a_disk_mounted_noexec_is_refused_before_the_build(noexec_folder, monkeypatch, tmp_path,
                                                                            tiny_bundle, kind):
    # was: minutes of compiling, then exit 70 (native: PermissionError running the program) or exit 7
    # (isa: QEMU "Could not load plugin ...: failed to map segment from shared object")
    from tinyface.device import isa, native
    from tinyface.errors import ToolchainError

    variable = {"native": "TINYFACE_NATIVE_CACHE", "isa": "TINYFACE_ISA_CACHE"}[kind]
    board = load_board("esp32" if kind == "native" else "esp32c3")
    cache = noexec_folder / "cache"  # not made yet: the disk it would be made on is what counts
    monkeypatch.setenv(variable, str(cache))
    first = (lambda: native.build_native(tmp_path / "not-even-a-project")) if kind == "native" else isa.build_plugin
    prepare = native.prepare_native if kind == "native" else isa.prepare_isa
    # and what emulate --native/--isa call: refused before the project is written there
    for build in (first, lambda: prepare(tiny_bundle, board)):
        with pytest.raises(ToolchainError, match=f"the build cache {cache} is on a disk mounted noexec") as exc:
            build()
        assert variable in exc.value.one_line()
        assert list(noexec_folder.iterdir()) == []  # nothing compiled or generated there
