"""The native host build of the firmware: the generated project's own sources (protocol
server, gallery, inference glue) compiled with g++ against a tflite-micro source tree and
its reference kernels, into a program that serves the protocol on a pseudo-terminal.

Where things come from (environment, read by tinyface.config):
    TFLM_DIR              a tflite-micro checkout (required)
    TFLM_THIRD_PARTY_DIR  a folder with flatbuffers/ (the version TFLM pins), gemmlowp/ and
                          ruy/ (default: the tree's third_party/, esp-tflite-micro's layout,
                          else its tools/make/downloads, where tflite-micro's Makefile puts
                          them: find_tflm, which the ESP32-C3 build uses too)
    TINYFACE_NATIVE_CACHE where builds are cached (default ~/.cache/tinyface/native)
    TINYFACE_NATIVE_JOBS  parallel compile jobs (default 2)
    CXX                   the host C++ compiler (default g++)
    TINYFACE_NVS_DIR      where the program keeps its gallery (default: in memory only)

Builds are cached: TFLM's objects once per TFLM tree and flags, the program once per
generated source tree, so only the first build takes minutes. The Makefile's other ``?=``
variables (OPT, EXTRA_CXXFLAGS, ...) come from the environment when set there, and key the
cache too (make_program), as do the variables and flags MAKEFLAGS carries (not its job count
or jobserver: a parallel make around tinyface reuses the cache; :func:`makeflags_key`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from tinyface import config
from tinyface.config import DEFAULT_ARENA_MARGIN
from tinyface.errors import OutputError, ToolchainError

PROGRAM_NAME = "tinyface_native"
# The make variables make_program sets on make's command line itself, beside the caller's.
MAKE_PLACES = ("BUILD_DIR", "TFLM_OBJ_DIR", "PROGRAM")
# make reads flags and variable overrides (``-- CFLAGS=-O0``) from these as from its command line.
MAKEFLAGS_VARIABLES = ("MAKEFLAGS", "GNUMAKEFLAGS")
# The parts of a MAKEFLAGS that change how make schedules and reports its work, never what it
# compiles (makeflags_key): the jobserver, the job count and load limit, the output order...
_RUN_ONLY_FLAG = re.compile(r"--jobserver-(?:auth|fds|style)=\S*|-j\d*|--jobs(?:=\d+)?|-l[\d.]*"
                            r"|--(?:load-average|max-load)(?:=[\d.]+)?|-O\w*|--output-sync(?:=\w+)?")
_TAKES_A_NUMBER = ("-j", "--jobs", "-l", "--load-average", "--max-load")  # "-j 4": the 4 goes too
_RUN_ONLY_LETTERS = "jksw"  # ... and of the single-letter flags: -j, --keep-going, --silent, --print-directory
# Bump when the way the native build compiles TFLM changes (invalidates cached objects).
NATIVE_BUILD_VERSION = 2  # 2: objects compiled to a temporary name and renamed
_THIRD_PARTY = {"flatbuffers": "flatbuffers/include/flatbuffers/flatbuffers.h",
                "gemmlowp": "gemmlowp/fixedpoint/fixedpoint.h",
                "ruy": "ruy/ruy/profiler/instrumentation.h"}
# Where a TFLM tree keeps those headers when TFLM_THIRD_PARTY_DIR is unset, in the order looked
# in: esp-tflite-micro's layout, then tflite-micro's (its Makefile downloads them there).
THIRD_PARTY_IN_TREE = ("third_party", "tensorflow/lite/micro/tools/make/downloads")


@dataclass(frozen=True)
class NativeToolchain:
    tflm_dir: Path
    third_party_dir: Path
    cxx: str
    make: str

    def key(self) -> str:
        """Identifies the TFLM objects: the TFLM tree (and its git commit), deps and compiler."""
        parts = [str(NATIVE_BUILD_VERSION), str(self.tflm_dir), git_head(self.tflm_dir),
                 str(self.third_party_dir), self.cxx, compiler_version(self.cxx)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def make_vars(self) -> list[str]:
        """The variables native/Makefile is run with."""
        return [f"TFLM_DIR={self.tflm_dir}", f"TFLM_THIRD_PARTY_DIR={self.third_party_dir}", f"CXX={self.cxx}"]


def cache_dir() -> Path:
    return config.native_cache_dir()


def find_tflm(needed_by: str) -> tuple[Path, Path]:
    """The TFLM tree (``$TFLM_DIR``) and the folder of its third-party headers: ``$TFLM_THIRD_PARTY_DIR``,
    else the first of THIRD_PARTY_IN_TREE inside the tree that holds them all. One rule for the
    native and the ESP32-C3 builds.

    Args:
        needed_by: what needs the tree, for the error line ("the native build").

    Returns:
        (tflm_dir, third_party_dir), both resolved.

    Raises:
        ToolchainError: one line naming what is missing and the variable that provides it.
    """
    tflm = config.tflm_dir()
    if not tflm:
        raise ToolchainError(f"TFLM_DIR is not set; {needed_by} needs a tflite-micro checkout (esp-tflite-micro)",
                             hint="export TFLM_DIR=/path/to/esp-tflite-micro (docs/firmware.md)")
    tflm_dir = Path(tflm).expanduser().resolve()
    if not (tflm_dir / "tensorflow/lite/micro/micro_interpreter.h").is_file():
        raise ToolchainError(f"TFLM_DIR={tflm} is not a tflite-micro checkout (no tensorflow/lite/micro)")
    third = config.tflm_third_party_dir()
    places = [Path(third).expanduser().resolve()] if third else [tflm_dir / rel for rel in THIRD_PARTY_IN_TREE]
    for third_dir in places:
        missing = [name for name, probe in _THIRD_PARTY.items() if not (third_dir / probe).is_file()]
        if not missing:
            return tflm_dir, third_dir
    if third:
        problem = f"TFLM's third-party headers ({', '.join(missing)}) are not in TFLM_THIRD_PARTY_DIR={third}"
    else:
        problem = (f"TFLM's third-party headers ({', '.join(_THIRD_PARTY)}) are neither in "
                   + " nor in ".join(str(place) for place in places))
    raise ToolchainError(problem,
                         hint="set TFLM_THIRD_PARTY_DIR to a folder with flatbuffers/, gemmlowp/ and ruy/ "
                              "(docs/firmware.md)")


def find_toolchain() -> NativeToolchain:
    """The TFLM tree, third-party headers, g++ and make for the native build.

    Raises:
        ToolchainError: one clear line naming what is missing and how to provide it.
    """
    tflm_dir, third_dir = find_tflm("the native build")
    cxx = config.host_cxx()
    for tool in (cxx, "make"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"{tool} not found on PATH; the native build needs g++ and make")
    return NativeToolchain(tflm_dir, third_dir, cxx, "make")


def unavailable_reason() -> str | None:
    """Why the native build cannot run here (for test skips), or None if it can."""
    try:
        find_toolchain()
    except ToolchainError as exc:
        return exc.one_line()
    return None


def build_native(project_dir: str | Path, toolchain: NativeToolchain | None = None, jobs: int | None = None,
                 log=None) -> Path:
    """Compile the generated project's native build; returns the program's path (cached).

    Args:
        project_dir: a project from tinyface.codegen.generate_project.
        toolchain: from find_toolchain() (default: found from the environment).
        jobs: parallel compile jobs (default $TINYFACE_NATIVE_JOBS or 2).
        log: called with each line of the compiler's output (default: kept for errors only).

    Raises:
        ToolchainError: no toolchain, or the build failed (the message has the first error).
    """
    check_can_run_from(cache_dir(), "TINYFACE_NATIVE_CACHE")  # before minutes of compiling, not after
    toolchain = toolchain or find_toolchain()
    project_dir = Path(project_dir).resolve()
    return make_program(project_dir, "native", toolchain.make, toolchain.make_vars(), toolchain.key(), cache_dir(),
                        PROGRAM_NAME, "native", jobs, log)


def check_can_run_from(root: Path, variable: str) -> None:
    """Refuse a build cache on a disk mounted noexec: the native program built there cannot be run,
    nor the QEMU plugin loaded (``variable`` names the setting that moves it).

    Raises:
        ToolchainError: ``root`` (or the folder it would be made in) is on such a disk.
    """
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        flags = os.statvfs(probe).f_flag
    except OSError:  # unknown: the build says what is wrong, if anything
        return
    if flags & getattr(os, "ST_NOEXEC", 0):
        raise ToolchainError(f"the build cache {root} is on a disk mounted noexec: what is built there cannot run",
                             hint=f"set {variable} to a folder on another disk")


def make_program(project_dir: Path, folder: str, make: str, make_vars: list[str], key: str, root: Path,
                 program_name: str, what: str, jobs: int | None = None, log=None,
                 also_reads: tuple[str, ...] = ()) -> Path:
    """Build ``project_dir/folder`` with its Makefile into the cache ``root`` (the one cached
    build of the native and rv32 programs) and return the program's path.

    The program is cached by the content of ``src/``, ``folder/`` and the project folders in
    ``also_reads`` (other sources the Makefile compiles) and ``key`` (the toolchain) with the
    environment's values of the Makefile's ``?=`` variables (:func:`environment_key`); TFLM's
    objects once per that key. The make runs under the cache's build lock, which make and every
    compiler it starts hold too (its descriptor is passed to them): killed, even by SIGKILL,
    tinyface leaves the lock held until the last of them has exited, so the next build never
    compiles into the same folder beside them. Its program is moved into place atomically.

    Raises:
        ToolchainError: not a generated project, or the build failed (the message has the first
            error; the log is kept).
    """
    makefile = project_dir / folder / "Makefile"
    if not makefile.is_file():
        raise ToolchainError(f"{project_dir} is not a generated firmware project (no {folder}/Makefile)")
    key = environment_key(key, makefile, make_vars)
    out_dir = root / "bin" / _tree_hash(project_dir, ("src", folder, *also_reads), key)
    program = out_dir / program_name
    if program.is_file():
        return program
    jobs = jobs or config.native_jobs()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_program = out_dir / f".{program_name}.{os.getpid()}.tmp"
    places = dict(zip(MAKE_PLACES, (out_dir / "obj", root / f"tflm-{key}", tmp_program), strict=True))
    cmd = [make, "-C", str(project_dir / folder), f"-j{jobs}", *make_vars, *(f"{k}={v}" for k, v in places.items())]
    with _build_lock(root) as lock_fd:
        if program.is_file():  # another process built it while we waited
            return program
        _remove_partial_files(places["BUILD_DIR"], places["TFLM_OBJ_DIR"])
        lines: list[str] = []
        # its own process group, so that an interrupt (Ctrl-C, SIGTERM) stops make and its compilers together;
        # the lock's descriptor goes with them (see _build_lock)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "LC_ALL": "C"}, start_new_session=True, pass_fds=(lock_fd,))
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if log:
                    log(line.rstrip("\n"))
        except BaseException:
            _stop_group(proc)
            tmp_program.unlink(missing_ok=True)
            _remove_partial_files(places["BUILD_DIR"], places["TFLM_OBJ_DIR"])
            raise
        if proc.wait() != 0 or not tmp_program.is_file():
            tmp_program.unlink(missing_ok=True)
            _remove_partial_files(places["BUILD_DIR"], places["TFLM_OBJ_DIR"])
            log_path = out_dir / "build.log"
            log_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            first = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "no output")
            raise ToolchainError(f"{what} build failed: {first.strip()[:300]}", hint=f"full log: {log_path}")
        os.replace(tmp_program, program)
    return program


def makefile_defaults(makefile: str | Path) -> tuple[str, ...]:
    """The variables ``makefile`` (a Makefile or its template) assigns with ``?=``, in order: the
    ones make takes from the environment when set there."""
    text = Path(makefile).read_text(encoding="utf-8")
    # an assignment starts its line (one that starts with a tab is a recipe's)
    return tuple(dict.fromkeys(re.findall(r"^ *(?:export +)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*\?=", text, re.M)))


def environment_key(key: str, makefile: str | Path, make_vars) -> str:
    """``key`` (the toolchain's), with the values the environment gives the ``?=`` variables of
    ``makefile`` that the command line does not set (``make_vars`` and MAKE_PLACES win over the
    environment), and what of MAKEFLAGS and GNUMAKEFLAGS can change the build
    (:func:`makeflags_key`): an OPT, EXTRA_CXXFLAGS, FLATBUFFERS_DIR or TF_EXTRA changed there, or
    ``MAKEFLAGS='CFLAGS=-O0'``, builds anew instead of reusing a program or objects compiled without
    it. ``key`` itself when none is set (or MAKEFLAGS holds only a parallel make's parts), so the
    caches built without any stay valid."""
    given = {var.partition("=")[0] for var in make_vars} | set(MAKE_PLACES)
    names = (*makefile_defaults(makefile), *MAKEFLAGS_VARIABLES)
    values = config.make_environment(name for name in names if name not in given)
    values |= {name: makeflags_key(values[name]) for name in MAKEFLAGS_VARIABLES if name in values}
    return key_with(key, [f"{name}={value}" for name, value in values.items()
                          if value or name not in MAKEFLAGS_VARIABLES])  # an empty ?= variable is a value


def makeflags_key(makeflags: str) -> str:
    """What of a MAKEFLAGS (or GNUMAKEFLAGS) value can change what make builds: its words (a
    backslash-escaped space stays inside one) less those a parallel or quiet make adds and the
    ``--`` before the variables, joined by one space; "" when nothing is left.

    Left out: ``--jobserver-auth=``, ``--jobserver-fds=`` and ``--jobserver-style=`` words; the job
    count ``-j``, ``-jN``, ``-j N``, ``--jobs[=N]``; the load limit ``-l[N]``, ``--load-average[=N]``,
    ``--max-load[=N]``; the output order ``-O[TYPE]``, ``--output-sync[=TYPE]``; and from the word of
    single-letter flags (the first, when it is letters only: make writes ``ks`` for ``-k -s``) the
    letters j, k, s and w (parallel, keep going, silent, print directory). Everything else is kept
    as written: variable overrides (``CFLAGS=-O0``, before or after ``--``) and other flags (``-e``,
    ``-i``, ``-B``, ``-I DIR``...), which may change the objects.

    >>> makeflags_key("ks -j4 --jobserver-auth=3,4 -- CFLAGS=-O0")
    'CFLAGS=-O0'
    >>> makeflags_key(" -j2 --jobserver-auth=fifo:/tmp/GMfifo7")
    ''
    """
    words = re.findall(r"(?:\\.|[^\s\\])+", makeflags)
    flags, variables = words, []
    if "--" in words:  # after it only variables, kept as they are
        at = words.index("--")
        flags, variables = words[:at], words[at + 1:]
    kept: list[str] = []
    for i, word in enumerate(flags):
        if i == 0 and word.isalpha():
            word = "".join(c for c in word if c not in _RUN_ONLY_LETTERS)
        elif _RUN_ONLY_FLAG.fullmatch(word) or (
                i > 0 and flags[i - 1] in _TAKES_A_NUMBER and re.fullmatch(r"[\d.]+", word)):
            continue
        if word:
            kept.append(word)
    return " ".join(kept + variables)


def key_with(key: str, make_vars) -> str:
    """``key``, and a digest of more make variables (``NAME=value``; none: ``key`` itself; a
    variable naming a file should name it by its content). The key names a folder: only hex
    digits and dashes, whatever the values hold."""
    if not make_vars:
        return key
    digest = hashlib.sha256("\n".join(make_vars).encode()).hexdigest()[:12]
    return f"{key}-{digest}"


def _remove_partial_files(*folders: Path) -> None:
    """Delete what an interrupted make left in its object folders: the Makefiles compile each
    object, and the precompiled schema (250 MB), to ``<target>.tmp`` and rename it when complete,
    so a ``*.tmp`` there is never a part of a build. Called under the cache's build lock, which
    every compiler of an earlier make holds until it exits: none is still writing one."""
    for folder in folders:
        for partial in Path(folder).rglob("*.tmp") if Path(folder).is_dir() else ():
            partial.unlink(missing_ok=True)


def _stop_group(proc: subprocess.Popen) -> None:
    """End a build started in its own session: make and every compiler it runs."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait()


def prepare_native(bundle, board, arena_margin: float = DEFAULT_ARENA_MARGIN, project_dir: str | Path | None = None,
                   log=None, kernels: str = "esp-nn") -> Path:
    """Generate the firmware project for ``bundle`` on ``board`` and build it natively.

    The project goes to ``project_dir`` (default: the native cache's project_cache_folder).
    Returns the program's path.
    """
    from tinyface.codegen import generate_project

    check_can_run_from(cache_dir(), "TINYFACE_NATIVE_CACHE")  # before a project is written there (build_native's too)
    toolchain = find_toolchain()
    if project_dir is None:
        project_dir = project_cache_folder(cache_dir(), bundle, board, kernels, arena_margin)
    with generation_lock(project_dir):
        generate_project(bundle, board, project_dir, arena_margin=arena_margin, kernels=kernels)
    return build_native(project_dir, toolchain, log=log)


@contextlib.contextmanager
def generation_lock(project_dir: str | Path):
    """Held while the project in ``project_dir`` is (re)generated for a build (an flock on a file
    beside it): two emulators started at once for one model (two terminals, two test workers)
    took each other's half-written files for the user's (ProjectDirError, exit 11). A second
    waits (generating takes a second) and finds the project as the first left it."""
    import fcntl

    project_dir = Path(project_dir)
    try:
        project_dir.parent.mkdir(parents=True, exist_ok=True)
        handle = open(project_dir.parent / f".{project_dir.name}.lock", "w")
    except OSError as exc:  # a cache that cannot be written: one line, as generating there would say
        raise OutputError(f"cannot write in the build cache {project_dir.parent}: {exc.strerror or exc}",
                          hint="make it writable, or set TINYFACE_NATIVE_CACHE / TINYFACE_ISA_CACHE to "
                               "another folder") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def project_cache_folder(root: Path, bundle, board, kernels: str, arena_margin: float) -> Path:
    """The folder under ``root`` that a bundle's generated project is cached in: named after the
    board, the model hash, a digest of everything else the rendered project depends on (model.json
    as the board gets it, its thresholds included, and the arena margin) and the kernels
    (firmware.kernels), so two boards emulated at once from one ``.tflite`` with other thresholds
    (firmware.identify_threshold) never render into the same folder."""
    rendered = json.dumps({"meta": asdict(bundle.meta), "arena_margin": float(arena_margin)}, sort_keys=True,
                          default=str)
    digest = hashlib.sha256(rendered.encode()).hexdigest()[:8]
    suffix = "" if kernels == "esp-nn" else f"-{kernels}"
    return root / "projects" / f"{board.name}-{bundle.model_hash[:16]}-{digest}{suffix}"


def make_gallery_folder(storage_dir: str | Path, hint: str) -> None:
    """Create ``storage_dir``, where a firmware run on the host (native, or rv32 under QEMU) keeps its
    gallery in files as the board's NVS would (its ``--storage``), unless it exists.

    Args:
        hint: what to do about a folder that cannot be made, in the words of where it came from.

    Raises:
        OutputError: it cannot be created (a file in the way, no permission, a read-only disk).
    """
    try:
        Path(storage_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the gallery folder {storage_dir}: {exc.strerror or exc}",
                          hint=hint) from None


def spawn_native(program: str | Path, master_fd: int | None = None, baud: int = 0, once: bool = False,
                 storage_dir: str | Path | None = None, own_pty: bool = False) -> subprocess.Popen:
    """Start the native firmware serving the protocol.

    Args:
        program: from build_native / prepare_native.
        master_fd: the master side of a pseudo-terminal (tinyface.device.pty.open_pty) the
            program reads and writes; None with ``own_pty``.
        baud: pace each direction like a UART at this speed (0: unthrottled).
        once: exit when the first host session on the pty ends.
        storage_dir: where the gallery is persisted (the board's NVS); None: $TINYFACE_NVS_DIR,
            else memory only.
        own_pty: the program opens its own pty and prints "PORT <path>" first.

    Returns:
        The process (it dies with its parent; terminate() it to stop).

    Raises:
        ConfigError, OutputError: a bad $TINYFACE_NVS_DIR (config.native_storage_dir); OutputError:
            the storage folder cannot be created; ToolchainError: the program cannot be run (its
            cache on a disk mounted noexec, or removed since it was built).
    """
    args = [str(program), "--baud", str(int(baud))]
    if once:
        args.append("--once")
    storage_dir = storage_dir if storage_dir is not None else config.native_storage_dir()
    if storage_dir is not None:
        # what native_storage_dir's check cannot see: a read-only disk, /proc, a race
        make_gallery_folder(storage_dir, hint="set TINYFACE_NVS_DIR to a folder you can write, or unset it")
        args += ["--storage", str(storage_dir)]
    if master_fd is None and not own_pty:
        raise ValueError("spawn_native needs master_fd, or own_pty=True")
    try:
        if own_pty:
            return subprocess.Popen(args + ["--pty"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        return subprocess.Popen(args, stdin=master_fd, stdout=master_fd, close_fds=True)
    except OSError as exc:  # was an internal error (exit 70)
        if exc.errno in (errno.EACCES, errno.EPERM):
            hint = "a disk mounted noexec cannot run programs: set TINYFACE_NATIVE_CACHE to a folder on another disk"
        else:  # gone since it was built (`tinyface data clean native` beside it): the next run builds it
            hint = "run the command again: it builds the firmware again"
        raise ToolchainError(f"cannot run the native firmware {program}: {exc.strerror or exc}", hint=hint) from None


def run_native_emulator(bundle, board, baud: int = 0, once: bool = False, on_ready=None,
                        stop: threading.Event | None = None, storage_dir: str | Path | None = None,
                        kernels: str = "esp-nn", arena_margin: float = DEFAULT_ARENA_MARGIN) -> int:
    """`tinyface emulate --native`: build (cached) and serve the real firmware sources on a pty.

    Args:
        on_ready: called with (port_path, process) once the port accepts connections.
        stop: set it to stop serving (Ctrl-C and SIGTERM do too).
        arena_margin: firmware.arena_margin, as `flash` builds the firmware.

    Returns:
        The program's exit status.

    Raises:
        ToolchainError: no TFLM_DIR or a failed build (one line).
    """
    from tinyface.device.pty import serve_process_on_pty

    program = _build_with_status(bundle, board, kernels, arena_margin)
    return serve_process_on_pty(
        lambda master_fd: spawn_native(program, master_fd, baud=baud, once=once, storage_dir=storage_dir),
        on_ready=on_ready, stop=stop)


def _build_with_status(bundle, board, kernels: str = "esp-nn", arena_margin: float = DEFAULT_ARENA_MARGIN) -> Path:
    """prepare_native with a spinner: a cached build returns in a fraction of a second."""
    from tinyface.console import status

    with status(f"building the native firmware for {board.name} (first time: a minute or two)"):
        return prepare_native(bundle, board, arena_margin=arena_margin, kernels=kernels)


@contextlib.contextmanager
def _build_lock(root: Path):
    """The cache's build lock (an flock); yields its file descriptor.

    The lock belongs to the open file, not to this process: a child given the descriptor
    (Popen's pass_fds) holds it as long as the child or any process it starts keeps it open.
    So it is released by closing, never by LOCK_UN (which would release it for them too):
    it outlives a tinyface killed mid-build until make's last compiler has exited. (A
    parent-death signal would kill make only, not the compilers it runs, and fires when the
    thread that started make ends; and preexec_fn is unsafe beside the spinner's thread.)
    """
    import fcntl

    from tinyface.console import info

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # another build, its make, or a process it left running (a compiler cache's server,
            # given CXX="sccache g++") holds it: say why this build waits instead of hanging quietly
            info(f"waiting for another build of the firmware cache {root} (its lock {root / '.build.lock'} "
                 "is held; a compiler cache's server started by a build would hold it too)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle.fileno()


def _tree_hash(project_dir: Path, folders: tuple[str, ...], salt: str) -> str:
    digest = hashlib.sha256(salt.encode())
    for folder in folders:
        for path in sorted((project_dir / folder).rglob("*")):
            if path.is_file() and "build" not in path.relative_to(project_dir).parts:
                digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def git_head(directory: Path) -> str:
    """The commit a git checkout ``directory`` is at (a part of a build's cache key); for a tree
    that is no checkout, the mtime of TFLM's interpreter source, else "unknown"."""
    head = directory / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_path = directory / ".git" / ref[5:]
            if ref_path.is_file():
                return ref_path.read_text().strip()
            packed = directory / ".git" / "packed-refs"
            for line in packed.read_text().splitlines() if packed.is_file() else []:
                if line.endswith(ref[5:]):
                    return line.split()[0]
        return ref
    except OSError:
        # not a git checkout: the interpreter's mtime stands in for a version
        probe = directory / "tensorflow/lite/micro/micro_interpreter.cc"
        return str(probe.stat().st_mtime_ns) if probe.exists() else "unknown"


def compiler_version(cxx: str) -> str:
    """The first line of ``cxx --version`` (a part of a build's cache key), "unknown" if it does not run."""
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"
