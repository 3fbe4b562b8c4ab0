"""On-disk cache of per-image results (landmarks, aligned crops, teacher embeddings).

Keys are ``<kind>/<settings digest>/<sha256 of the image bytes>``, so renaming or moving a
file keeps its entries and changing a setting never returns a stale result. Storage is
one SQLite file: every batch is a transaction, so a killed run leaves either whole
entries or none.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable

import numpy as np

from tinyface.config import FolderProblem, writable_folder_problem
from tinyface.errors import ConfigError, DataError, OutputError

CACHE_FILENAME = "faces.sqlite"


def settings_digest(**settings) -> str:
    """A short stable digest of the settings that produced an entry."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encode(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _decode(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def check_cache_dir(directory: str | Path, write: bool = False) -> Path:
    """The face cache folder (``data.cache_dir``, $TINYFACE_CACHE), checked by one rule
    (config.writable_folder_problem) in the same words for every command that uses the cache
    (`data cache`, `evaluate`, `data stats --align`, `build` ...). Nothing is created.

    Args:
        write: the caller will create or write the cache (opening it, clearing it), so a folder
            that cannot be written is refused too; looking at it needs only that it be a folder.

    Returns:
        ``directory``, expanded.

    Raises:
        ConfigError: ``directory``, or the nearest of its parents that exists, is not a folder: the
            setting names no folder (exit 3).
        OutputError: with ``write``, that folder cannot be written (no permission, a read-only
            disk), or the cache file in it cannot be: as any output tinyface cannot write (exit 14).
    """
    directory = Path(directory).expanduser()
    problem = writable_folder_problem(directory)
    if problem and problem.error is ConfigError:
        where = "" if problem.where == directory else f" ({problem.where} is a file)"
        raise ConfigError(f"the cache {directory} is not a folder{where}",
                          hint="set TINYFACE_CACHE or data.cache_dir to a folder")
    if not write:  # looking: it need only be readable
        if os.path.isdir(directory) and not os.access(directory, os.R_OK | os.X_OK):
            raise OutputError(f"cannot read the face cache {directory}: permission denied", hint=_WRITABLE_HINT)
        return directory
    if problem is None and os.path.isfile(directory / CACHE_FILENAME) \
            and not os.access(directory / CACHE_FILENAME, os.R_OK | os.W_OK):
        problem = FolderProblem(OutputError, directory / CACHE_FILENAME, "permission denied")
    if problem:
        at = "" if problem.where == directory else f" ({problem.where})"
        raise OutputError(f"cannot write the face cache {directory}: {problem.why}{at}", hint=_WRITABLE_HINT)
    return directory


_WRITABLE_HINT = "set TINYFACE_CACHE or data.cache_dir to a folder you can write"
# sqlite's codes for a file it cannot create, open or write (the others, "file is not a database"
# above all, mean a damaged cache: a DataError)
_CANNOT_WRITE = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_FULL", "SQLITE_IOERR")


def _cannot_write(exc: sqlite3.Error) -> bool:
    """Whether sqlite says the cache's file cannot be created, opened or written (not that it is damaged)."""
    return getattr(exc, "sqlite_errorname", "").startswith(_CANNOT_WRITE)


class FaceCache:
    """A key -> numpy array store in ``<dir>/faces.sqlite``."""

    def __init__(self, directory: str | Path):
        """Raises: ConfigError, OutputError (:func:`check_cache_dir`: not a folder, or one that cannot be
        written); DataError: the cache file is damaged."""
        self.directory = check_cache_dir(directory, write=True)
        self.path = self.directory / CACHE_FILENAME
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # what the check cannot see: /proc, a race
            raise OutputError(f"cannot create the face cache {self.directory}: {exc.strerror or exc}",
                              hint=_WRITABLE_HINT) from None
        try:
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._db.commit()
        except sqlite3.Error as exc:
            if _cannot_write(exc):
                raise OutputError(f"cannot write the face cache {self.path}: {exc}", hint=_WRITABLE_HINT) from None
            raise DataError(f"cannot open the face cache {self.path}: {exc}",
                            hint="it may be damaged: `tinyface data cache --clear faces` removes it") from None

    @staticmethod
    def key(kind: str, digest: str, image_hash: str) -> str:
        return f"{kind}/{digest}/{image_hash}"

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(keys)
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk):
                found[key] = _decode(blob)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store ``items`` in one transaction.

        Raises:
            OutputError: the cache cannot take them (a full disk, a file-size limit, no permission):
                nothing of them is stored, what was stored before stays.
        """
        try:
            with self._db:  # one transaction
                self._db.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)",
                                     [(k, _encode(v)) for k, v in items.items()])
        except sqlite3.Error as exc:
            if _cannot_write(exc):
                raise OutputError(f"cannot write the face cache {self.path}: {exc}",
                                  hint=f"free some space there, or {_WRITABLE_HINT}") from None
            raise

    def count(self, prefix: str = "") -> int:
        return self._db.execute("SELECT COUNT(*) FROM entries WHERE key LIKE ?", (prefix + "%",)).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# What `tinyface data cache` shows and clears: everything tinyface keeps between runs. Only
# names tinyface itself writes are ever deleted, so a cache folder pointed at a shared place
# ($TINYFACE_NATIVE_CACHE=~/build, say) loses nothing of anyone else's.
CACHE_PARTS = ("faces", "assistant", "native", "isa")
_BUILD_NAMES = ("bin", "projects", "plugin", ".build.lock")  # and tflm-<key>/ (native.py, isa.py)


def _part_paths(part: str, face_cache_dir: Path) -> tuple[Path, list[Path]]:
    """The folder of ``part`` and the files or folders in it that belong to tinyface.

    Raises:
        OutputError: the folder cannot be read (so neither shown nor cleared).
    """
    from tinyface import config

    if part == "faces":  # check_cache_dir has found the folder readable
        return face_cache_dir, [face_cache_dir / (CACHE_FILENAME + s) for s in ("", "-wal", "-shm")]
    if part == "assistant":
        folder, variable = face_cache_dir / "assistant", "TINYFACE_CACHE"
    elif part == "native":
        folder, variable = config.native_cache_dir(), "TINYFACE_NATIVE_CACHE"
    else:
        folder, variable = config.isa_cache_dir(), "TINYFACE_ISA_CACHE"
    if not os.path.isdir(folder):
        return folder, []
    try:
        if not os.access(folder, os.R_OK | os.X_OK):  # glob would find nothing in it, and say nothing
            raise PermissionError(13, "permission denied")
        names = os.listdir(folder)
    except OSError as exc:
        raise OutputError(f"cannot read the {part} cache {folder}: {exc.strerror or exc}",
                          hint=f"make it readable, or set {variable} to a folder you can write") from None
    if part == "assistant":
        return folder, sorted(folder / n for n in names if n.endswith(".npz"))
    return folder, sorted(folder / n for n in names if n in _BUILD_NAMES or n.startswith("tflm-"))


def _size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path`` (a file or a folder; links are not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size, 1
    if not path.is_dir():
        return 0, 0
    total, files = 0, 0
    for p in path.rglob("*"):
        if p.is_file() or p.is_symlink():
            total += p.lstat().st_size
            files += 1
    return total, files


def face_entries(face_cache_dir: Path) -> dict[str, dict[str, int]]:
    """The face cache's entries by kind (lmk, crop, teacher, vcrop, vteacher, mteacher, rcrop):
    count and bytes; read-only, so looking never creates a cache."""
    path = Path(face_cache_dir) / CACHE_FILENAME
    if not path.is_file():
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            rows = db.execute("SELECT substr(key, 1, instr(key, '/') - 1), COUNT(*), SUM(length(value)) "
                              "FROM entries GROUP BY 1 ORDER BY 1").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise DataError(f"cannot read the face cache {path}: {exc}",
                        hint="it may be damaged: `tinyface data cache --clear faces` removes it") from None
    return {kind: {"entries": n, "bytes": int(size or 0)} for kind, n, size in rows}


def cache_usage(face_cache_dir: str | Path) -> list[dict]:
    """What each part of the cache holds: its folder (``path``), bytes, files, and the face cache's
    ``entries`` by kind (None for the other parts, and where the face cache cannot be read: then
    ``damaged`` says why; None otherwise)."""
    face_cache_dir = Path(face_cache_dir).expanduser()
    out = []
    for part in CACHE_PARTS:
        folder, items = _part_paths(part, face_cache_dir)
        sizes = [_size(p) for p in items]
        row = {"part": part, "path": str(folder), "bytes": sum(b for b, _ in sizes),
               "files": sum(f for _, f in sizes), "entries": None, "damaged": None}
        if part == "faces":  # one database: SQLite's -wal and -shm beside it are its bytes, not more files
            row["files"] = int(any(files for _, files in sizes))
            try:
                row["entries"] = face_entries(face_cache_dir)
            except DataError as exc:  # shown, and still clearable: a damaged cache is what --clear is for
                row["damaged"] = str(exc)
        out.append(row)
    return out


def clear_cache(parts: str | Iterable[str], face_cache_dir: str | Path) -> None:
    """Delete ``parts`` of the cache (names in CACHE_PARTS; cache_usage says how big each is). Only
    what tinyface wrote goes; the folders themselves stay. Everything to delete is checked first,
    so a file that cannot be deleted leaves every part as it was.

    Raises:
        OutputError: something to delete sits in a folder that cannot be written (no permission, a
            read-only disk): nothing was deleted; or a deletion failed all the same (a race, an
            I/O error): the line says which parts were cleared before it.
    """
    import shutil

    face_cache_dir = Path(face_cache_dir).expanduser()
    parts = [parts] if isinstance(parts, str) else list(parts)
    items = {part: _part_paths(part, face_cache_dir)[1] for part in parts}
    for part, paths in items.items():
        for path in paths:
            if problem := _removal_problem(path):
                raise OutputError(f"cannot clear {part}: {path} cannot be deleted ({problem.where}: {problem.why}); "
                                  "nothing was deleted", hint="make that folder writable, or point the cache's "
                                                              "variable or setting at a folder you can write")
    cleared: list[str] = []
    for part, paths in items.items():
        for path in paths:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            except OSError as exc:  # what the check cannot see: a race, an I/O error
                before = f"{', '.join(cleared)} cleared before it" if cleared else "no other part was cleared"
                raise OutputError(f"cannot clear {part}: cannot delete {path}: {exc.strerror or exc} ({before})",
                                  hint="make it writable, then clear it again") from None
        cleared.append(part)


def _removal_problem(path: Path) -> FolderProblem | None:
    """What keeps ``path`` from being deleted: its folder cannot be written, or, for a folder, one
    inside it cannot be listed or written (rmtree empties every one)."""
    if not os.path.lexists(path):
        return None
    if problem := writable_folder_problem(path.parent):
        return problem
    if path.is_symlink() or not path.is_dir():
        return None
    unlisted: list[OSError] = []
    for folder, _, _ in os.walk(path, onerror=unlisted.append):
        if not os.access(folder, os.W_OK | os.X_OK):
            return writable_folder_problem(folder)
    if unlisted:
        return FolderProblem(OutputError, Path(unlisted[0].filename), "permission denied")
    return None
