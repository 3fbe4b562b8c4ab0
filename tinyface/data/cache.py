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
import sqlite3
from pathlib import Path
from typing import Iterable

import numpy as np

from tinyface.errors import DataError

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


class FaceCache:
    """A key -> numpy array store in ``<dir>/faces.sqlite``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()
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
