"""Atomic file writes: every artifact is written to a temp file and renamed into place,
so an interrupted run never leaves a half-written file that a later step would trust. Also the
text of a name the operating system hands over as bytes (os_text)."""

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from tinyface.errors import OutputError

# What a write says when its disk has no room: full, over a quota, past a file-size limit (ulimit -f).
NO_ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

TEMP_SUFFIX = ".tmp"
TEMP_MARKER = ".tinyface-tmp-"
# The names atomic_path gives its temp files: ``.<name>.tinyface-tmp-<mkstemp's 8 random characters>``
# and then ".tmp", or ``<name>``'s own suffix (keep_suffix). A process killed outright (SIGKILL, the
# out-of-memory killer) cannot remove its temp file: remove_temp_leftovers finds them by this name,
# and removes them unasked, so the marker is there to keep it from ever matching a file of the user's.
# (Before the marker, temp names were ``.<name>.<8 random characters><suffix>``: a user's
# ``.notes.keras.backup12.keras`` read the same, so leftovers of that form are not recognised.)
_TEMP_NAME = re.compile(r"\.(?P<name>.+)" + re.escape(TEMP_MARKER) + r"[a-z0-9_]{8}(?P<suffix>\.[^.]+)")


def os_text(value: str) -> str:
    """A name the operating system handed over as bytes (a command-line argument, a file or
    folder name) as the text those bytes spell in UTF-8, whatever the locale made of them: a
    gallery name's encoding on the wire.

    Python decodes argv and file names with the locale's encoding: under a C locale with UTF-8
    mode off (``PYTHONUTF8=0``) the bytes of ``Zoë`` arrive as ``'Zo\\udcc3\\udcab'`` (surrogate
    escapes), and under a Latin-1 locale in a UTF-8 terminal as ``'ZoÃ«'``. Bytes that are UTF-8
    are read as UTF-8; other bytes keep the locale's reading (a Latin-1 terminal's ``Zoë``),
    unless the locale could not read them either.

    Raises:
        ValueError: bytes that are neither UTF-8 nor text in the locale's encoding (the message
            shows them: ``its bytes b'Zo\\xeb' are not valid UTF-8 text``).
    """
    import codecs
    import sys

    try:
        raw = os.fsencode(value)
    except UnicodeEncodeError:  # a str no locale decoded (a caller's own): as it is
        return value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if any("\udc80" <= c <= "\udcff" for c in value):  # bytes the locale could not decode either
            locale = codecs.lookup(sys.getfilesystemencoding()).name
            also = "" if locale == "utf-8" else f" (nor {locale}, the locale's encoding)"
            raise ValueError(f"its bytes {raw!r} are not valid UTF-8 text{also}") from None
        return value


def is_temp_name(name: str) -> bool:
    """Whether the file name ``name`` is one that :func:`atomic_path` gives its temp files."""
    match = _TEMP_NAME.fullmatch(name)
    return bool(match) and match["suffix"] in (TEMP_SUFFIX, Path(match["name"]).suffix)


def remove_temp_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove from ``folder`` (not its subfolders) the temp files of :func:`atomic_path` that a killed
    process left; only a caller that holds the folder (:func:`exclusive_folder`) may, since a running
    writer's temp file looks the same. Returns the files removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if is_temp_name(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:  # gone meanwhile, or not ours to remove: it harms nothing where it is
                continue
            removed.append(Path(entry.path))
    return removed


def no_room(exc: BaseException, path: str | os.PathLike | None = None) -> OutputError | None:
    """``exc`` as one line (OutputError, exit 14) where it says a disk has no room for what was
    written (full, a quota, a file-size limit): the machine's state, not a bug of tinyface's.
    None for any other error. ``path``: what was being written, where ``exc`` does not name it."""
    if not (isinstance(exc, OSError) and exc.errno in NO_ROOM_ERRNOS):
        return None
    where = path or exc.filename
    what = f"cannot write {where}" if where else "a file cannot be written"
    return OutputError(f"{what}: {exc.strerror}", hint="free some space there, or write elsewhere")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Args:
        keep_suffix: the temp path ends with ``path``'s suffix instead of ".tmp" (for a writer
            that picks its format by the name: Keras's ``.keras``).

    Raises:
        OutputError: the block's writes found no room (:func:`no_room`), or the rename failed.
    """
    path = Path(path)
    ensure_dir(path.parent)
    tmp_path = _temp_beside(path, path.suffix if keep_suffix else TEMP_SUFFIX)
    try:
        try:
            yield tmp_path
        except OSError as exc:  # a full disk is one line naming the artifact; any other error is the block's own
            error = no_room(exc, path)
            if error is None:
                raise
            raise error from None
        _put_in_place(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _temp_beside(path: Path, suffix: str = TEMP_SUFFIX) -> Path:
    """A new empty temp file beside ``path``, named as :func:`is_temp_name` knows them.

    Raises:
        OutputError: none can be made there.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARKER}", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    return Path(tmp)


def _put_in_place(tmp: Path, path: Path) -> None:
    """Rename the finished temp file ``tmp`` onto ``path``, with the mode any new file gets (mkstemp
    makes it 0600; 0644 under umask 022).

    Raises:
        OutputError: the rename failed (e.g. ``path`` is a folder).
    """
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


class FileGroup:
    """New versions of files of one folder, each written to a temp name by :meth:`write`, to be put in
    place together by :func:`replace_together`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.staged: dict[Path, Path] = {}  # each file's path -> its new version's temp file, in the order written
        self.replaced: list[Path] = []  # those renamed into place so far (all of them, once replace_together is done)

    @contextlib.contextmanager
    def write(self, name: str) -> Iterator[Path]:
        """Yield the temp path (a name :func:`is_temp_name` knows) that the block writes the new
        ``name`` to. Errors name ``name``, not the temp file.

        Raises:
            OutputError: no room for the block's writes (:func:`no_room`), or no temp file can be made.
        """
        target = self.folder / name
        earlier = self.staged.pop(target, None)
        if earlier is not None:  # written twice: the first version goes
            earlier.unlink(missing_ok=True)
        tmp_path = self.staged[target] = _temp_beside(target)
        try:
            yield tmp_path
        except OSError as exc:
            error = no_room(exc, target)
            if error is None:
                raise
            raise error from None
        except OutputError as exc:  # a writer's own atomic write (save_png): its temp file stands for ``name``
            raise OutputError(str(exc).replace(str(tmp_path), str(target)), hint=exc.hint) from None


@contextlib.contextmanager
def replace_together(folder: str | os.PathLike) -> Iterator[FileGroup]:
    """Replace several files of ``folder`` as one, so that a failure (a full disk) leaves the earlier
    versions as they were: the block writes each new file to a temp name (``group.write(name)``);
    only once the whole block has succeeded are they renamed onto their names, in the order written
    (``group.replaced``). If the block fails, its temp files are removed and nothing else in
    ``folder`` changes. Renames need no room: past the check for a folder in the way of a name, they
    fail halfway only where another program changes the folder meanwhile. A Ctrl-C, SIGTERM or
    SIGHUP during the renames is held back until they are all done (it then ends the command as
    usual): the folder never mixes two runs' files.

    Raises:
        OutputError: a write found no room, a name is taken by a folder, or a rename failed.
    """
    folder = ensure_dir(folder)
    group = FileGroup(folder)
    try:
        yield group
        for target in group.staged:  # before anything is renamed
            if target.is_dir():
                raise OutputError(f"cannot write {target}: it is a folder")
        with _signals_held():
            for target, tmp in group.staged.items():
                _put_in_place(tmp, target)
                group.replaced.append(target)
    finally:
        for tmp in group.staged.values():  # those not renamed
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP held back for the block (on the main thread, where Python handles
    them) and handled as it ends, by the handlers they had: work of a few renames that must not stop
    halfway. (Not a blocked signal mask: another thread, TensorFlow's, would take the signal.)"""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list = []
    held = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, lambda signum, frame: came.append((signum, frame))) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if came:  # the first that came, as it would have been handled (it ends the command)
            signum, frame = came[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


def ensure_dir(path: str | os.PathLike, what: str = "the folder") -> Path:
    """Create the folder ``path`` (and its parents) unless it exists; check that files can be made in it.

    Args:
        what: how the user named it, for the message ("--out", "--dest").

    Raises:
        OutputError: it cannot be created (a file in the way, no permission, a read-only disk)
            or written to.
    """
    path = check_creatable_dir(path, what)  # a file in the way, no permission: said before anything is made
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # what the check cannot see: a read-only disk, /proc, a race
        raise OutputError(f"cannot create {what} {path}: {exc.strerror or exc}",
                          hint=f"choose a path for {what} where you can write") from None
    return path


LOCK_NAME = ".lock"  # in a run's folder while a command writes it (exclusive_folder)


@contextlib.contextmanager
def exclusive_folder(folder: str | os.PathLike, what: str = "the folder", command: str = "tinyface",
                     lock_name: str = LOCK_NAME, remove: bool = False) -> Iterator[None]:
    """Hold ``folder`` for this process while the block runs, so that a second command writing the
    same folder is refused instead of mixing its stages with this one's (and emptying its
    temporary files). The lock is the kernel's (``flock`` on ``folder/.lock``, or ``lock_name``):
    it ends with the process, however it ends, so a killed run leaves nothing to clean up. Where
    ``fcntl`` does not exist (Windows), nothing is locked, but the file is still written: ``.lock``
    marks the folder as a build's (``build --out`` reuses such a folder and refuses one of the
    user's files), so a command whose folder is no build's names another file.

    With ``remove``, the lock file is removed as the block ends, while still held, so that the
    folder keeps only what the command wrote. A process that opened that file before it went and
    locks it after finds that the name no longer leads to it, and takes the lock of the name again:
    two processes never hold "the" lock at once.

    Raises:
        OutputError: another process holds ``folder`` (its pid, as that process wrote it).
    """
    try:
        import fcntl
    except ImportError:  # not on Linux or macOS
        path = Path(folder) / lock_name
        with contextlib.suppress(OSError):  # a folder that cannot be written fails at its first write
            path.write_text(f"{os.getpid()}\n")
        try:
            yield
        finally:
            if remove:
                path.unlink(missing_ok=True)
        return
    handle = _locked(Path(folder) / lock_name, fcntl, what, folder, command)
    try:
        yield
    finally:
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)  # still held: whoever opened it before now finds it gone (_locked)
        handle.close()  # closing the file releases the lock


def _locked(path: Path, fcntl, what: str, folder, command: str):
    """The lock file ``path``, open and locked by this process, with this process's pid in it
    (exclusive_folder). A file that was removed or replaced between its opening and its locking
    (a holder with ``remove`` ended meanwhile) is not the lock any more: the name is opened again.

    Raises:
        OutputError: another process holds it; the folder cannot be written.
    """
    while True:
        try:
            handle = open(path, "a+")
        except OSError as exc:
            raise OutputError(f"cannot write {what} {folder}: {exc.strerror or exc}",
                              hint=f"choose another {what.removeprefix('the ')}, or make it writable") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise OutputError(f"{what} {folder} is in use by another {command} (pid {holder or '?'})",
                              hint=f"wait for it to end, or choose another {what.removeprefix('the ')}") from None
        except BaseException:
            handle.close()
            raise
        if _same_file(handle, path):
            break
        handle.close()  # the holder removed it after our open: lock the name's file instead
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    except BaseException:  # a full disk: the lock ends here, not when the file object is collected
        handle.close()
        raise
    return handle


def _same_file(handle, path: Path) -> bool:
    """Whether the name ``path`` still leads to the open file ``handle``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle.fileno())
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def scratch_tempdir(folder: str | os.PathLike) -> Iterator[Path]:
    """Temporary files (Python's ``tempfile``, which TensorFlow's converter uses for its SavedModel
    copies) go to ``folder/.tmp`` for the block: emptied first, of what a killed run (SIGKILL, the
    out-of-memory killer) could not remove, and removed after. Before, such copies piled up in /tmp."""
    scratch = Path(folder) / ".tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    previous = tempfile.tempdir
    tempfile.tempdir = str(scratch)
    try:
        yield scratch
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(scratch, ignore_errors=True)


def check_creatable_dir(path: str | os.PathLike, what: str = "the folder") -> Path:
    """Fail early if the folder ``path`` could not be created (or written into) later; unlike
    :func:`ensure_dir`, nothing is created, so a command refused for another reason leaves no folder.

    Raises:
        OutputError: a file is in the way (``path`` or a parent), or no permission.
    """
    path = Path(path)
    probe = path
    while not os.path.exists(probe) and probe.parent != probe:  # False, not PermissionError, under a closed folder
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot create {what} {path}: a file of that name (or of a parent's) is in the way",
                          hint=f"move the file, or choose another path for {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        why = "read-only file system" if on_read_only_disk(probe) else "permission denied"
        raise OutputError(f"cannot {'write into' if probe == path else 'create'} {what} {path}: {why}",
                          hint=f"choose a path for {what} where you can write")
    return path


def on_read_only_disk(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is on a disk mounted read-only: no permission lets anyone, root
    included, write there, so "permission denied" would send people to chmod."""
    try:
        return bool(os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 0))
    except OSError:
        return False


def check_writable(path: str | os.PathLike, what: str = "file", create: bool = True) -> Path:
    """Fail early, before hours of work, if the file ``path`` could not be written later.

    A file is made and removed where the first new file will go: permissions cannot show a
    read-only disk, /proc, or what root may not write. ``create``: make ``path``'s folder now;
    without it no folder is made (a command refused for another reason leaves none behind), and
    the probe goes to the nearest folder that exists.

    Raises:
        OutputError: its folder cannot be created or written, or ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {what} {path}: it is a folder", hint=f"give {what} a file name")
    if create:
        ensure_dir(path.parent, f"the folder of {what}")
    else:
        check_creatable_dir(path.parent, f"the folder of {what}")
    folder = path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: no file can be made in {folder}: {exc.strerror or exc}",
                          hint=f"choose a path for {what} where you can write") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _umask() -> int:
    """The process's umask (read by setting and restoring it: there is no getter before Python 3.13's os)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_if_changed(path: str | os.PathLike, data: bytes) -> bool:
    """Write ``data`` atomically unless the file already holds exactly it. Returns True if written."""
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    write_bytes(path, data)
    return True


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(obj):
    # numpy scalars and arrays, Paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
