"""Download a dataset, verify it, and unpack it atomically.

A source is a manifest: the files to download from a base URL, each with its sha256, and
the archive to unpack into ``images/`` with a digest over the unpacked tree. Everything
happens in a temporary folder beside the destination, renamed into place only after every
check passed; a failed fetch leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tinyface.errors import DownloadError

MANIFEST_DIR = Path(__file__).resolve().parent
DEFAULT_LFW_URL = "http://vis-www.cs.umass.edu/lfw/"


@dataclass
class Manifest:
    name: str
    files: dict[str, str]  # file name -> sha256 (protocol files, copied as they are)
    archive: str  # archive name, unpacked into images/
    archive_sha256: str | None  # None: not pinned (the tree digest still is)
    archive_root: str  # the folder inside the archive that holds one folder per person
    images_tree_sha256: str  # tree_digest() of the unpacked images/

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**raw)
        except FileNotFoundError:
            raise DownloadError(f"manifest not found: {path}") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise DownloadError(f"bad manifest {path}: {exc}") from None


def builtin_manifest(name: str) -> Manifest:
    path = MANIFEST_DIR / f"{name}_manifest.json"
    if not path.is_file():
        raise DownloadError(f"unknown dataset {name!r}", hint="known: lfw")
    return Manifest.load(path)


def tree_digest(root: str | os.PathLike) -> str:
    """sha256 over the sorted lines '<relative path> <sha256 of file>' of every file under root."""
    from tinyface.fsutil import sha256_file

    root = Path(root)
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        lines.append(f"{path.relative_to(root).as_posix()} {sha256_file(path)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _download(url: str, dest: Path, expected_sha256: str | None, progress: Callable[[int], None] | None,
              timeout_s: float) -> None:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(dest, "wb") as out:
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                if progress:
                    progress(len(chunk))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download failed: {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"download failed: {url}: {reason}",
                            hint="check the network, or pass --url to a mirror") from None
    got = digest.hexdigest()
    if expected_sha256 and got != expected_sha256:
        raise DownloadError(f"checksum mismatch for {dest.name}: expected sha256 {expected_sha256[:16]}..., "
                            f"got {got[:16]}...", hint="the download is corrupt or not the expected file; nothing was kept")


def fetch(manifest: Manifest, base_url: str, dest: str | os.PathLike, progress: Callable[[int], None] | None = None,
          timeout_s: float = 60.0, force: bool = False) -> Path:
    """Download, verify and unpack ``manifest`` from ``base_url`` into ``dest``.

    Returns:
        ``dest``, which then holds ``images/<person>/...`` and the protocol files.

    Raises:
        DownloadError: network failure, checksum mismatch, a bad archive, or ``dest``
            already exists (without ``force``). Nothing is left behind on failure.
    """
    dest = Path(dest).expanduser()
    if dest.exists() and not force:
        raise DownloadError(f"{dest} already exists", hint="use --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fetch-", dir=dest.parent))
    try:
        staged = work / "dataset"
        staged.mkdir()
        for name, sha in manifest.files.items():
            _download(base_url + name, staged / name, sha, progress, timeout_s)
        archive = work / manifest.archive
        _download(base_url + manifest.archive, archive, manifest.archive_sha256, progress, timeout_s)
        unpacked = work / "unpacked"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DownloadError(f"cannot unpack {manifest.archive}: {exc}") from None
        root = unpacked / manifest.archive_root
        if not root.is_dir():
            raise DownloadError(f"{manifest.archive} has no folder {manifest.archive_root!r}")
        got = tree_digest(root)
        if got != manifest.images_tree_sha256:
            raise DownloadError(f"the unpacked images do not match the manifest (tree sha256 {got[:16]}..., "
                                f"expected {manifest.images_tree_sha256[:16]}...)", hint="nothing was kept")
        root.rename(staged / "images")
        if dest.exists():
            old = work / "old"
            dest.rename(old)
        staged.rename(dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)
