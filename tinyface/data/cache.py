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

from tinyface.errors import ConfigError, DataError

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


def check_cache_dir(directory: str | Path) -> Path:
    """The face cache folder (``data.cache_dir``, $TINYFACE_CACHE), refused where it is a file or
    under one: every command that uses the cache (`data cache`, `evaluate`, `data stats --align`,
    `build` ...) says so in the same words. Nothing is created.

    Returns:
        ``directory``, expanded.

    Raises:
        ConfigError: ``directory``, or the nearest of its parents that exists, is not a folder.
    """
    directory = Path(directory).expanduser()
    probe = directory
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    if os.path.exists(probe) and not os.path.isdir(probe):
        where = "" if probe == directory else f" ({probe} is a file)"
        raise ConfigError(f"the cache {directory} is not a folder{where}",
                          hint="set TINYFACE_CACHE or data.cache_dir to a folder")
    return directory


class FaceCache:
    """A key -> numpy array store in ``<dir>/faces.sqlite``."""

    def __init__(self, directory: str | Path):
        """Raises: ConfigError (:func:`check_cache_dir`); DataError: the cache cannot be opened."""
        self.directory = check_cache_dir(directory)
        self.path = self.directory / CACHE_FILENAME
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise DataError(f"cannot open the face cache {self.path}: {exc}",
                            hint="set TINYFACE_CACHE or data.cache_dir to a writable folder") from None

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
        with self._db:  # one transaction
            self._db.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)",
                                 [(k, _encode(v)) for k, v in items.items()])

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
    """The folder of ``part`` and the files or folders in it that belong to tinyface."""
    from tinyface import config

    if part == "faces":
        return face_cache_dir, [face_cache_dir / (CACHE_FILENAME + s) for s in ("", "-wal", "-shm")]
    if part == "assistant":
        folder = face_cache_dir / "assistant"
        return folder, sorted(folder.glob("*.npz")) if folder.is_dir() else []
    folder = config.native_cache_dir() if part == "native" else config.isa_cache_dir()
    if not folder.is_dir():
        return folder, []
    return folder, sorted(p for p in folder.iterdir() if p.name in _BUILD_NAMES or p.name.startswith("tflm-"))


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
    """What each part of the cache holds: folder, bytes, files (and the face cache's entries by kind)."""
    face_cache_dir = Path(face_cache_dir).expanduser()
    out = []
    for part in CACHE_PARTS:
        folder, items = _part_paths(part, face_cache_dir)
        sizes = [_size(p) for p in items]
        row = {"part": part, "folder": str(folder), "bytes": sum(b for b, _ in sizes),
               "files": sum(f for _, f in sizes)}
        if part == "faces":
            try:
                row["entries"] = face_entries(face_cache_dir)
            except DataError as exc:  # shown, and still clearable: a damaged cache is what --clear is for
                row["entries"], row["damaged"] = {}, str(exc)
        out.append(row)
    return out


def clear_cache(part: str, face_cache_dir: str | Path) -> None:
    """Delete ``part`` of the cache (one of CACHE_PARTS; cache_usage says how big it is). Only
    what tinyface wrote goes; the folders themselves stay."""
    import shutil

    _, items = _part_paths(part, Path(face_cache_dir).expanduser())
    for path in items:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
