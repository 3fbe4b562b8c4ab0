"""Download a dataset, verify it, and unpack it atomically.

A source is a manifest: the files to download from a base URL, each with its sha256, and
the archive to unpack into ``images/`` with a digest over the unpacked tree. Everything
happens in a work folder beside the destination (``.NAME.fetch-*``), renamed into place only
after every check passed; a failed fetch leaves nothing behind, and a copy it was to replace
(``--force``) where it was (:func:`_move_into_place`). A fetch holds its work folder
(a kernel lock, released when the process ends however it ends), so the work folder of a fetch
that was killed is one nobody holds: the next fetch into the same place removes it. What a fetch
that was stopped (killed, interrupted, or cut off by the network) had downloaded of its archive is
kept in its work folder instead, and the next fetch of the same file takes it up where it ended
(:class:`_Partial`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tinyface.errors import DownloadError, OutputError
from tinyface.fsutil import NO_ROOM_ERRNOS

MANIFEST_DIR = Path(__file__).resolve().parent


@dataclass
class Manifest:
    name: str
    files: dict[str, str]  # file name -> sha256 (protocol files, copied as they are)
    archive: str  # archive name, unpacked into images/
    archive_sha256: str | None  # None: not pinned (the tree digest still is)
    archive_root: str  # the folder inside the archive that holds one folder per person
    images_tree_sha256: str  # tree_digest() of the unpacked images/ (after grouping by people_file)
    # a file inside the archive naming each image's person ("<image> <person>" per line, CelebA's
    # identity_CelebA.txt): the images, which sit in one folder there, are put in one folder per person
    people_file: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        """Read a manifest file; ``ValueError`` says in one line what is wrong with it.

        Every field is checked here, so a hand-written manifest fails before anything is
        downloaded, not halfway through a fetch.
        """
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path} is not a JSON object of a manifest's fields")
        required = {"name", "files", "archive", "archive_sha256", "archive_root", "images_tree_sha256"}
        known = required | {"people_file"}
        if missing := sorted(required - raw.keys()):
            raise ValueError(f"{path} lacks {', '.join(missing)} (a manifest has {', '.join(sorted(known))})")
        if unknown := sorted(raw.keys() - known):
            raise ValueError(f"{path} has unknown fields {', '.join(unknown)} "
                             f"(a manifest has {', '.join(sorted(known))})")
        for key in ("name", "archive", "archive_root"):
            if not isinstance(raw[key], str) or not raw[key]:
                raise ValueError(f"{path}: {key} must be a non-empty string")
        for key in ("archive_sha256", "people_file"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise ValueError(f"{path}: {key} must be a string or null")
        files = raw["files"]
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ValueError(f"{path}: files must map file names to sha256 strings")
        # where they are written or read inside the work folder: a name that climbs out of it is refused
        for label, name in [("archive", raw["archive"]), *((f"files[{k!r}]", k) for k in files)]:
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                raise ValueError(f"{path}: {label} must be a plain file name, not {name!r}")
        if "images" in files:  # the unpacked archive goes there
            raise ValueError(f"{path}: files['images'] would be where the archive's images go: rename it")
        for label in ("archive_root", "people_file"):
            name = raw.get(label)
            if name is not None and (name.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", name)):
                raise ValueError(f"{path}: {label} must be a path inside the archive, not {name!r}")
        for label, digest in [("images_tree_sha256", raw["images_tree_sha256"]),
                              ("archive_sha256", raw["archive_sha256"]),
                              *((f"files[{k!r}]", v) for k, v in files.items())]:
            if digest is not None and not _is_sha256(digest):
                raise ValueError(f"{path}: {label} is not a sha256 (64 hex digits): {digest!r}")
        return cls(**raw)


def _is_sha256(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def builtin_manifest(name: str) -> Manifest:
    path = MANIFEST_DIR / f"{name}_manifest.json"
    if not path.is_file():
        from tinyface.config import DATASETS

        raise DownloadError(f"unknown dataset {name!r}", hint=f"known: {', '.join(DATASETS)}")
    return Manifest.load(path)


def tree_digest(root: str | os.PathLike) -> str:
    """sha256 over the sorted lines '<relative path> <sha256 of file>' of every file under root."""
    from tinyface.fsutil import sha256_file

    root = Path(root)
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        lines.append(f"{path.relative_to(root).as_posix()} {sha256_file(path)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


URL_SCHEMES = ("http", "https", "ftp", "file")  # what urllib downloads from


def _check_url(base_url: str, name: str) -> None:
    """Refuse a base URL that urllib cannot download from (no scheme, an unknown one, bad syntax).

    Raises:
        DownloadError: naming the URL and the schemes that work.
    """
    import urllib.parse

    hint = f"pass --url http(s)://HOST/PATH/ or file:///FOLDER/, or set TINYFACE_{name.upper()}_URL to one"
    try:
        scheme = urllib.parse.urlsplit(base_url).scheme
    except ValueError as exc:  # e.g. "http://[bad": an unclosed IPv6 address
        raise DownloadError(f"{base_url!r} is not a valid URL: {exc}", hint=hint) from None
    if scheme.lower() not in URL_SCHEMES:
        what = f"its scheme {scheme!r} is not one of {', '.join(URL_SCHEMES)}" if scheme else "it has no scheme"
        raise DownloadError(f"cannot download from {base_url!r}: {what}", hint=hint)


# How many times a download that broke off after some bytes (the server hung up, a read timed out)
# is taken up again where it stopped (an HTTP Range request) before the fetch fails. A server that
# ignores Range sends the whole file again, which is then written from its start.
RESUMES = 3


def _download(url: str, dest: Path, expected_sha256: str | None, progress: Callable[[int], None] | None,
              timeout_s: float, partial: _Partial | None = None,
              expect: Callable[[str, int], None] | None = None) -> None:
    """Download ``url`` to ``dest``, resuming it where it broke off up to RESUMES times.
    ``progress(n)``: n more bytes arrived; ``expect(name, n)``: the server announced that ``dest``'s
    download will have reported n bytes to ``progress`` when it ends (fetch's docstring).

    ``partial``: the download is kept for the next fetch if it stops short (the archive's). Where
    ``dest`` already holds the start of the same file (an earlier fetch's, :class:`_Partial`), it
    is taken up from its end; if the whole then does not match ``expected_sha256`` (the file
    changed on the server between the two), it is downloaded whole once more.

    Raises:
        DownloadError: the network or the server failed (and kept failing), or the checksum does not match.
        OutputError: ``dest`` cannot be written (a full disk, a file size limit): not the network's fault.
    """
    # no limit where the socket takes none: `--timeout inf` was an internal error (OverflowError)
    timeout = timeout_s if timeout_s < threading.TIMEOUT_MAX else None
    taken_up = partial is not None and dest.is_file() and partial.matches()
    try:
        out = open(dest, "r+b" if taken_up else "wb")
    except OSError as exc:
        raise _cannot_write(dest, exc) from None
    got = _Received(out, dest, progress, partial, expect)
    with out:
        if taken_up:
            got.take_up()
        elif partial is not None:
            partial.save()  # from here on, what arrives is kept if the fetch stops short
        while True:
            if not (got.earlier and expected_sha256 and got.digest.hexdigest() == expected_sha256):
                _receive_all(url, got, timeout)
                _write(out, None, dest)  # what is still buffered: a full disk may only say so now
            digest = got.digest.hexdigest()
            if not (got.earlier and expected_sha256 and digest != expected_sha256):
                break
            _say(f"{dest.name}: what an earlier fetch had downloaded and this one added does not match its "
                 "checksum (the file changed on the server?); downloading it whole")
            got.start_over()
    if expected_sha256 and digest != expected_sha256:
        if partial is not None:
            partial.drop()
        raise DownloadError(f"checksum mismatch for {dest.name}: expected sha256 {expected_sha256[:16]}..., "
                            f"got {digest[:16]}...",
                            hint="the download is corrupt or not the expected file; nothing was kept")


def _receive_all(url: str, got: _Received, timeout: float | None) -> None:
    """Receive the rest of ``url`` into ``got``, taking it up where it broke off up to RESUMES times.

    Raises:
        DownloadError: the network or the server failed, and kept failing.
    """
    for attempt in range(RESUMES + 1):
        before = got.arrived
        try:
            why = _receive(url, got, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and got.bytes and not got.restarted:
                # an earlier fetch's part as long as the file, or longer (a file shortened on the server)
                got.start_over()
                continue
            raise DownloadError(f"download failed: {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            # HTTPException: the server closed the connection early (IncompleteRead, a bad status line)
            why = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        if why is None:
            return
        if got.arrived == before or attempt == RESUMES:  # nothing came (a refused connection), or tries used up
            resumed = f" (resumed {'once' if attempt == 1 else f'{attempt} times'})" if attempt else ""
            error = DownloadError(f"download failed: {url}: {why}{resumed}",
                                  hint="check the network, or pass --url to a mirror; nothing was kept")
            error.network = True  # the network's, not the file's: what arrived of the archive is kept (_say_kept)
            raise error
        _say(f"{got.dest.name}: the download broke off after {got.bytes:,} bytes ({why}); resuming "
             f"({attempt + 1} of {RESUMES})")


# In a work folder: which download its archive/ file is the start of (:class:`_Partial`).
PARTIAL_RECORD = "download.json"


class _Partial:
    """The archive's download as the next fetch may take it up: while it runs, its work folder
    holds PARTIAL_RECORD, naming the URL, the archive and its pinned sha256, and once the server
    answered, its validator (the response's strong ETag, else its Last-Modified). A fetch that
    stops short keeps the folder with what had arrived (:func:`_work_folder`). The next fetch of
    the same archive and sha256 into the same place takes it up (:func:`_remove_unfinished`) by a
    Range request, with ``If-Range`` when a validator is known, so that a file changed on the
    server since is sent whole; where none is known, the sha256 at the end tells. So does it for
    a start from another URL (a mirror, after the first server kept failing; ``earlier_url``), whose
    validator means nothing to this server; without a pinned sha256 only the same URL's is taken up."""

    def __init__(self, work: Path, url: str, archive: str, sha256: str | None):
        self.work, self.archive = work, archive
        self.key = {"url": url, "archive": archive, "sha256": sha256}
        self.validator: str | None = None
        self.earlier_url: str | None = None  # where the start kept came from, when not from url

    @classmethod
    def recorded(cls, work: Path) -> _Partial | None:
        """The download ``work``'s record names (None: no record, or not one tinyface wrote)."""
        record = _read_record(work)
        if record is None or not all(isinstance(record.get(k), str) for k in ("url", "archive")):
            return None
        archive = record["archive"]
        if "/" in archive or archive in ("", ".", ".."):
            return None
        sha = record.get("sha256")
        return cls(work, record["url"], archive, sha if isinstance(sha, str) else None)

    @property
    def path(self) -> Path:
        return self.work / "archive" / self.archive

    def matches(self) -> bool:
        """Whether the work folder holds a start of this download (and then its validator is read)."""
        record = _read_record(self.work)
        if record is None or any(record.get(k) != self.key[k] for k in ("archive", "sha256")):
            return False
        same_url = record.get("url") == self.key["url"]
        if not same_url and not self.key["sha256"]:  # nothing would tell another server's file from it
            return False
        validator = record.get("validator")
        self.validator = validator if same_url and isinstance(validator, str) and validator else None
        self.earlier_url = None if same_url else str(record.get("url"))
        return True

    def size(self) -> int:
        """Bytes of this download the work folder holds (0: none, or another download's)."""
        try:
            return self.path.lstat().st_size if self.matches() and self.path.is_file() else 0
        except OSError:
            return 0

    def save(self) -> None:
        from tinyface.fsutil import write_json

        try:
            write_json(self.work / PARTIAL_RECORD, {**self.key, "validator": self.validator})
        except OSError as exc:  # the disk's, not the network's
            raise _cannot_write(self.work / PARTIAL_RECORD, exc) from None

    def drop(self) -> None:
        """Not to be kept: what arrived is not a start of the file (a checksum mismatch, a bad archive)."""
        (self.work / PARTIAL_RECORD).unlink(missing_ok=True)

    def answered(self, resp) -> None:
        """Record the validator of a response that sent the file from its start."""
        etag = resp.headers.get("ETag") or ""
        validator = etag if etag and not etag.startswith("W/") else resp.headers.get("Last-Modified")
        if validator != self.validator:
            self.validator = validator
            self.save()

    def trim(self) -> None:
        """Remove everything in the work folder but the archive's start, its record and the lock."""
        from tinyface.fsutil import LOCK_NAME

        for entry in self.work.iterdir():
            if entry.name in (PARTIAL_RECORD, LOCK_NAME):
                continue
            if entry.name == "archive" and entry.is_dir() and not entry.is_symlink():
                for inner in entry.iterdir():
                    if inner.name != self.archive:
                        _remove_path(inner)
                continue
            _remove_path(entry)


def _read_record(work: Path) -> dict | None:
    """A work folder's PARTIAL_RECORD (None: none, or not a JSON object)."""
    try:
        record = json.loads((work / PARTIAL_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class _Received:
    """What a download has written so far: its bytes, their sha256, the file they went to; and
    ``arrived``, every byte received, those of a start over included. ``earlier``: the bytes an
    earlier fetch had written, taken up (0 after a start over); ``restarted``: started over."""

    def __init__(self, out, dest: Path, progress, partial: _Partial | None = None, expect=None):
        self.out, self.dest, self.progress, self.partial, self.expect = out, dest, progress, partial, expect
        self.arrived, self.bytes, self.earlier, self.reported, self.restarted = 0, 0, 0, 0, False
        self.digest = hashlib.sha256()

    def take_up(self) -> None:
        """Read what an earlier fetch wrote (its sha256 goes on from there), and write after it."""
        try:
            for chunk in iter(lambda: self.out.read(1 << 20), b""):
                self.digest.update(chunk)
                self.bytes += len(chunk)
        except OSError as exc:
            raise _cannot_write(self.dest, exc) from None
        self.earlier = self.bytes
        moved = self.partial is not None and self.partial.earlier_url
        if moved:  # the record names this URL from here on, with no validator (the other server's)
            self.partial.save()
        if self.bytes:
            where = f" from {self.partial.earlier_url} (the sha256 checks the whole)" if moved else ""
            _say(f"{self.dest.name}: taking up the {_size(self.bytes)} an earlier fetch had downloaded{where}")

    def start_over(self) -> None:
        if self.progress and self.reported:  # the bar goes back to its start too
            self.progress(-self.reported)
        try:
            self.out.seek(0)
            self.out.truncate()
        except OSError as exc:  # the disk's, not the network's
            raise _cannot_write(self.dest, exc) from None
        self.digest, self.bytes, self.earlier, self.reported = hashlib.sha256(), 0, 0, 0
        self.restarted = True
        if self.partial is not None:
            self.partial.validator = None
            self.partial.save()

    def add(self, chunk: bytes) -> None:
        _write(self.out, chunk, self.dest)
        if self.partial is not None:  # on disk as it comes: a fetch that is killed keeps it
            _write(self.out, None, self.dest)
        self.digest.update(chunk)
        self.bytes += len(chunk)
        self.arrived += len(chunk)
        self.reported += len(chunk)
        if self.progress:
            self.progress(len(chunk))


def _receive(url: str, got: _Received, timeout: float | None) -> str | None:
    """One request for what ``got`` lacks (all of ``url``, or from its byte ``got.bytes`` on); None
    when it came to its end, else why it stopped short (the server hung up early). A server that
    answers a Range request with the whole file (200, not 206: it ignores Range, or the file changed
    since the validator ``If-Range`` names) is read from the start again.

    Raises:
        DownloadError: the server resumed at another byte than asked.
        urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException: the network's.
    """
    headers = {"Range": f"bytes={got.bytes}-"} if got.bytes else {}
    if got.bytes and got.partial is not None and got.partial.validator:
        headers["If-Range"] = got.partial.validator
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
        if got.bytes and getattr(resp, "status", None) != 206:  # Range ignored: the whole file again
            _say(f"{got.dest.name}: the server sends the whole file again (it does not resume downloads, or the "
                 "file changed since): starting over")
            got.start_over()
        elif got.bytes and not (resp.headers.get("Content-Range") or "").startswith(f"bytes {got.bytes}-"):
            raise DownloadError(f"download failed: {url}: asked to resume at byte {got.bytes:,}, the server "
                                f"sent {resp.headers.get('Content-Range')!r}", hint="try again; nothing was kept")
        if not got.bytes and got.partial is not None:
            got.partial.answered(resp)
        start = got.bytes
        announced = resp.headers.get("Content-Length")
        if got.expect and announced and announced.isdigit():  # what progress will have counted at its end
            got.expect(got.dest.name, got.reported + int(announced))
        while chunk := resp.read1(1 << 16):  # what has come, not a wait for 64 KiB: a stop keeps it
            got.add(chunk)
    # read(n) returns b"" when the server hangs up early instead of raising: count the bytes
    if announced and announced.isdigit() and got.bytes - start < int(announced):
        return f"the server closed the connection after {got.bytes:,} of {start + int(announced):,} bytes"
    return None


def _write(out, chunk: bytes | None, dest: Path) -> None:
    """Write ``chunk`` to ``out`` (None: flush it); a failure is the disk's (OutputError), not the network's."""
    try:
        if chunk is None:
            out.flush()
        else:
            out.write(chunk)
    except OSError as exc:
        raise _cannot_write(dest, exc) from None


# what a disk says when it cannot take what is written: the place's fault, not the archive's or the network's
_DISK_ERRNOS = NO_ROOM_ERRNOS | {errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def _cannot_write(path: Path, exc: OSError, what: str | None = None) -> OutputError:
    """A file of a fetch's work folder (beside --dest) that cannot be written, as one line (exit 14).

    Args:
        what: what could not be done ("unpack NAME"); default: write ``path``'s name.
    """
    work = next((p for p in path.parents if p.name.startswith(".") and ".fetch-" in p.name), path.parent)
    room = "free some space there, or " if exc.errno in NO_ROOM_ERRNOS else ""
    return OutputError(f"cannot {what or 'write ' + path.name} in {work.parent}: {exc.strerror or exc}",
                       hint=f"{room}use --dest to choose another place; nothing was kept")


def missing_or_changed(manifest: Manifest, dest: str | os.PathLike, verify_images: bool = True) -> list[str]:
    """What in ``dest`` does not match ``manifest`` (empty: the dataset is complete and verified).

    Checks every protocol file's sha256 and, with ``verify_images``, the digest of ``images/``
    (about 2 s for all of LFW).
    """
    from tinyface.fsutil import sha256_file

    dest = Path(dest).expanduser()
    problems = []
    for name, sha in manifest.files.items():
        path = dest / name
        if not path.is_file():
            problems.append(f"{name} missing")
        elif sha256_file(path) != sha:
            problems.append(f"{name} differs")
    images = dest / "images"
    if not images.is_dir():
        problems.append("images/ missing")
    elif verify_images and tree_digest(images) != manifest.images_tree_sha256:
        problems.append("images/ differs")
    return problems


def make_manifest(name: str, files_dir: str | os.PathLike, file_names: list[str], archive: str | os.PathLike,
                  archive_root: str, people_file: str | None = None) -> Manifest:
    """Build a manifest for files you host yourself (a mirror, or a test server).

    Args:
        name: dataset name.
        files_dir: folder holding ``file_names`` (the protocol files).
        file_names: the files to list with their sha256.
        archive: the .tar.gz holding ``archive_root/<person>/<image>``.
        archive_root: the folder inside the archive that holds one folder per person.
        people_file: or, with the images in one folder, the file in the archive naming each
            image's person (see group_by_person).
    """
    from tinyface.fsutil import sha256_file

    archive = Path(archive)
    work = Path(tempfile.mkdtemp(prefix="tinyface-manifest-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        if people_file:
            group_by_person(work / archive_root, work / people_file)
        tree = tree_digest(work / archive_root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Manifest(name=name, files={f: sha256_file(Path(files_dir) / f) for f in file_names},
                    archive=archive.name, archive_sha256=sha256_file(archive), archive_root=archive_root,
                    images_tree_sha256=tree, people_file=people_file)


def group_by_person(root: Path, people_file: Path) -> None:
    """Move every image directly under ``root`` into ``root/<person>/`` as ``people_file`` says
    (lines "<image> <person>"; lines that are not, such as a header, are skipped).

    Raises:
        DownloadError: the file is missing, or an image of ``root`` has no person in it.
    """
    if not people_file.is_file():
        raise DownloadError(f"the archive has no {people_file.name}", hint="nothing was kept")
    person = {}
    for line in people_file.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            person[parts[0]] = parts[1]
    images = sorted(p for p in root.iterdir() if p.is_file())
    unnamed = [p.name for p in images if p.name not in person]
    if unnamed:
        raise DownloadError(f"{len(unnamed)} images have no person in {people_file.name} (first: {unnamed[0]})",
                            hint="nothing was kept")
    for image in images:
        (root / person[image.name]).mkdir(exist_ok=True)
        image.rename(root / person[image.name] / image.name)


OLD_COPY = "old"  # in the work folder: the copy --force replaces, between its two renames
WORK_FOLDER_TRIES = 3  # work folders made before giving up on holding one (_work_folder)


@dataclass
class FetchResult:
    """What :func:`fetch` did.

    Attributes:
        path: the folder that holds the verified dataset.
        downloaded: this call downloaded it; False: ``path`` held it already (every checksum
            verified), and nothing was downloaded.
        put_back: first, the copy that an unfinished earlier ``--force`` had moved aside was put
            back at ``path`` (then replaced by the download only if ``downloaded``).
    """

    path: Path
    downloaded: bool
    put_back: bool = False


def _work_prefix(dest: Path) -> str:
    return f".{dest.name}.fetch-"


def _hold(work: Path) -> contextlib.AbstractContextManager[None]:
    """Hold a work folder (OutputError: a live process holds it)."""
    from tinyface.fsutil import exclusive_folder

    return exclusive_folder(work, "the work folder", "tinyface data fetch")


@contextlib.contextmanager
def _work_folder(dest: Path, earlier: Path | None = None) -> Iterator[Path]:
    """A new work folder beside ``dest``, held by this process for the block and removed after it,
    unless it keeps the only copy of an old dataset (:func:`_move_into_place`), or the start of a
    download the next fetch takes up (its PARTIAL_RECORD is there: :class:`_Partial`; the rest of
    the folder is removed). ``earlier``: an earlier fetch's folder with such a start
    (:func:`_remove_unfinished`), taken over if no other fetch took it first.

    Another fetch's sweep (:func:`_remove_unfinished`) may take a folder in the instant between
    its creation and its lock; then a new one is made, up to ``WORK_FOLDER_TRIES`` in all.

    Raises:
        OSError: the folder of ``dest`` cannot be written (nor a lock file in a new folder there).
        OutputError: a sweep took every folder made (another fetch into the same place keeps
            starting).
    """
    if earlier is not None:
        held = contextlib.ExitStack()
        try:
            held.enter_context(_hold(earlier))
        except (OutputError, OSError):  # another fetch holds it, or removed it
            held.close()
        else:
            if earlier.is_dir():
                with held:
                    try:
                        yield earlier
                    finally:
                        _leave(earlier, dest)
                return
            held.close()
    for _ in range(WORK_FOLDER_TRIES):
        work = Path(tempfile.mkdtemp(prefix=_work_prefix(dest), dir=dest.parent))
        held = contextlib.ExitStack()
        try:
            held.enter_context(_hold(work))
        except OutputError:
            problem = _why_not_held(work)
            shutil.rmtree(work, ignore_errors=True)
            if problem:  # not a sweep: its lock file cannot be made (a full disk)
                raise problem from None
            continue
        except OSError:  # its lock file was made but cannot be written (a full disk): the folder goes too
            shutil.rmtree(work, ignore_errors=True)
            raise
        with held:
            try:
                yield work
            finally:  # still held: no sweep removes it under us
                _leave(work, dest)
        return
    raise OutputError(f"cannot start a fetch into {dest}: another `tinyface data fetch` into the same place removed "
                      f"each of the {WORK_FOLDER_TRIES} work folders this one made in {dest.parent}",
                      hint="let the other fetch end, then run this one again")


def _leave(work: Path, dest: Path) -> None:
    """The end of a fetch's work folder (:func:`_work_folder`): kept whole if it has the only copy of
    the old dataset, kept with only the start of its archive if a download is to be taken up, else removed."""
    if (work / OLD_COPY).exists() and not dest.exists():
        return
    partial = _Partial.recorded(work)
    if partial is not None and partial.size():
        partial.trim()
        return
    shutil.rmtree(work, ignore_errors=True)


def _why_not_held(work: Path) -> OSError | None:
    """Why this process could not hold ``work``: None where another fetch's sweep took it (removed
    it, or holds its lock: the lock file opens, so the lock itself was refused), else why its lock
    file cannot be opened."""
    from tinyface.fsutil import LOCK_NAME

    try:
        with open(work / LOCK_NAME, "a+"):
            return None
    except OSError as exc:
        return None if not work.is_dir() else exc


def _move_into_place(staged: Path, dest: Path, work: Path) -> None:
    """Rename the verified ``staged`` copy to ``dest``; what is at ``dest`` (``--force``'s old copy,
    or an empty folder) is first renamed to ``work/old``, and removed with the work folder after.

    A failure at either rename leaves a complete copy at ``dest``: the first failing leaves the
    old copy where it was; the second, the old copy is renamed back. Only when that put-back
    fails too is ``dest`` left empty; the old copy then stays in ``work/old``, and the work
    folder is kept (not removed, :func:`_work_folder`) for the next fetch to put it back, as after
    a fetch killed between the two renames.

    Raises:
        OutputError: a rename failed; the line says which copy ``dest`` holds.
    """
    old = work / OLD_COPY
    replacing = dest.exists()
    if replacing:
        try:
            dest.rename(old)  # killed before the next rename: the next fetch puts it back
        except OSError as exc:
            raise OutputError(f"cannot replace {dest}: it cannot be moved aside: {exc.strerror or exc}",
                              hint=f"{dest} is as it was; the download was not kept") from None
    try:
        staged.rename(dest)
    except OSError as exc:
        failed = f"cannot move the new copy into {dest}: {exc.strerror or exc}"
        if not replacing:
            raise OutputError(failed, hint="nothing was kept") from None
        try:
            old.rename(dest)
        except OSError as back:
            raise OutputError(f"{failed}; nor could the old copy be put back: {back.strerror or back}",
                              hint=f"the old copy is kept in {old}; the next `tinyface data fetch` into {dest} "
                                   "puts it back") from None
        raise OutputError(failed, hint=f"{dest} holds the old copy, as before; the download was not kept") from None


def _remove_unfinished(dest: Path, archive_key: dict | None = None) -> tuple[bool, Path | None]:
    """Remove the work folders beside ``dest`` that no live fetch holds: those of fetches that were
    killed (a download, an unpacking; a few GB each), or that stopped short with the start of their
    archive kept. Where one was a ``--force`` killed between its two renames (the old copy moved
    aside, the new one not yet moved in) and ``dest`` is missing, the old copy is put back first,
    as it was before that command. Each is said in a line.

    ``archive_key``: the archive this fetch is to download (``url``, ``archive``, ``sha256``: a
    :class:`_Partial`'s). Of the folders that hold a start of it, the one with the most is kept,
    trimmed to it, for this fetch to take up (:func:`_work_folder`).

    Returns:
        whether an old copy was put back at ``dest``, and the folder kept (None: none).
    """
    put_back, kept = False, None
    try:
        import fcntl  # noqa: F401 - exclusive_folder locks nothing without it: a live fetch would look stale
    except ImportError:  # pragma: no cover - not on Linux or macOS
        return put_back, kept
    try:
        found = sorted(p for p in dest.parent.glob(_work_prefix(dest) + "*") if p.is_dir() and not p.is_symlink())
    except OSError:  # the folder of dest cannot be read: is_occupied or ensure_dir says so next, in one line
        return put_back, kept

    def start_of_download(work: Path) -> int:
        return _Partial(work, **archive_key).size() if archive_key is not None else 0

    found.sort(key=start_of_download, reverse=True)  # the most first (read again once held)
    removed, removed_bytes = 0, 0
    for work in found:
        try:
            with _hold(work):
                old = work / OLD_COPY
                if old.is_dir() and not old.is_symlink() and not dest.exists() and not dest.is_symlink():
                    old.rename(dest)
                    put_back = True
                    _say(f"put back {dest}, which an unfinished earlier fetch --force had moved aside")
                if kept is None and start_of_download(work):
                    _Partial(work, **archive_key).trim()
                    kept = work
                    continue
                size = _bytes_under(work)
                shutil.rmtree(work, ignore_errors=True)
        except OutputError:  # a live fetch holds it (or it cannot be written): not ours to remove
            continue
        except OSError:  # the old copy could not be put back: keep everything, for the user to see
            continue
        if not work.exists():
            removed, removed_bytes = removed + 1, removed_bytes + size
    _say_removed(dest, removed, removed_bytes)
    return put_back, kept


def _say_removed(dest: Path, removed: int, removed_bytes: int) -> None:
    if removed:
        what = "an unfinished earlier fetch" if removed == 1 else f"{removed} unfinished earlier fetches"
        _say(f"removed {what} of {dest} ({removed_bytes / 1e6:.1f} MB)")


def _discard(work: Path | None, dest: Path) -> None:
    """Remove an earlier fetch's folder kept for a download this fetch turned out not to need."""
    if work is None:
        return
    try:
        with _hold(work):
            size = _bytes_under(work)
            shutil.rmtree(work, ignore_errors=True)
    except (OutputError, OSError):  # another fetch took it over
        return
    _say_removed(dest, 1, size)


def _bytes_under(folder: Path) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def _say(message: str) -> None:
    from tinyface.console import err_console

    err_console().print(message, markup=False)  # a path is not read as rich markup


def fetch(manifest: Manifest, base_url: str, dest: str | os.PathLike, progress: Callable[[int], None] | None = None,
          timeout_s: float = 60.0, force: bool = False, expect: Callable[[str, int], None] | None = None,
          phase: Callable[[str], None] | None = None) -> FetchResult:
    """Download, verify and unpack ``manifest`` from ``base_url`` into ``dest``.

    ``progress(n)`` is called as n more bytes arrive (negative when a download starts over), and
    ``expect(name, n)`` when a server announces a file's size (Content-Length): by the end of that
    file, ``progress`` will have counted n of its bytes (those an earlier fetch had downloaded and this
    one takes up are not counted). The sum over the names is the download's total, as far as known.
    ``phase(what)``: the downloads are over and it is ``"unpacking"``, then ``"verifying"`` (minutes,
    for a large archive, with no byte to count).

    If ``dest`` already holds exactly what the manifest describes (every checksum
    verified), nothing is downloaded: fetching is idempotent.

    Returns:
        where the dataset is (``dest``, which then holds ``images/<person>/...`` and the
        protocol files), whether this call downloaded it, and whether it put back a copy first.

    First, the work folders of earlier fetches into ``dest`` that were killed are removed (and
    the copy a killed ``--force`` had moved aside is put back); a line says so. Where one holds the
    start of the archive (a fetch that was killed, interrupted or cut off by the network while
    downloading it) from the same URL, or from another where the manifest pins its sha256, this
    fetch takes it up from there (:class:`_Partial`).

    Raises:
        DownloadError: network failure, checksum mismatch, a bad archive. Nothing is left
            behind on failure (no partial files, no temporary folders, no new empty folders) but
            the start of the archive where the network failed while downloading it, kept for the
            next fetch (a line names it), as it is where the fetch is interrupted.
        OutputError: ``dest`` is in the way (a file, or a folder that is not that dataset,
            without ``force``), it or a file in it cannot be read (:func:`is_occupied`), or it or
            its folder cannot be written; checked before downloading.
            Or the new copy could not be renamed into place: ``dest`` then holds the old copy
            (:func:`_move_into_place`). Or ``dest`` is a link to nothing (:func:`_absolute`), a mount
            point, or the current folder or one above it, and does not hold the verified dataset.
    """
    dest = _absolute(Path(dest).expanduser())
    base = base_url if base_url.endswith("/") else base_url + "/"
    archive_key = {"url": base + manifest.archive, "archive": manifest.archive, "sha256": manifest.archive_sha256}
    # first: it may put back the copy a killed --force had moved aside
    put_back, earlier = _remove_unfinished(dest, archive_key)
    if not force and is_occupied(dest):
        _discard(earlier, dest)  # verified or refused below: nothing to download
        if not dest.is_dir():
            raise OutputError(f"{dest} exists and is not a folder", hint="use --dest to choose another place")
        try:
            problems = missing_or_changed(manifest, dest)
        except OSError as exc:  # a file in it that cannot be read: whether it is the dataset cannot be known
            raise _cannot_read(dest, exc) from None
        if problems:
            raise OutputError(f"{dest} already exists but is not the {manifest.name} dataset "
                                f"({', '.join(problems[:3])}{', ...' if len(problems) > 3 else ''})",
                                hint="use --force to replace it, or --dest to choose another place")
        return FetchResult(dest, downloaded=False, put_back=put_back)
    _check_url(base_url, manifest.name)  # before any folder is made: a typo is one line, not an internal error
    if os.path.ismount(dest):  # its rename would fail only after the whole download (EBUSY)
        raise OutputError(f"cannot fetch into {dest}: it is a mount point, and a fetch moves its verified folder "
                          "into place by renaming it", hint=f"use --dest {dest / manifest.name}")
    try:
        here, real = Path.cwd(), Path(os.path.realpath(dest))  # getcwd gives the real path
    except OSError:  # deleted: it is under no --dest
        here = real = None
    if here is not None and (here == real or real in here.parents):  # renamed aside: the shell in a deleted folder
        raise OutputError(f"cannot fetch into {dest}: it {'is' if here == real else 'holds'} the current "
                          "folder, and a fetch moves its verified folder into place by renaming it",
                          hint=f"use --dest {dest / manifest.name}, or run it from another folder")
    created = [p for p in reversed(dest.parents) if not p.exists()]
    # an empty folder, or --force's, is replaced: it must be writable (a folder above it: ensure_dir's, next)
    from tinyface.config import writable_folder_problem
    from tinyface.fsutil import ensure_dir

    problem = writable_folder_problem(dest)
    if problem and problem.where == dest and problem.error is OutputError:
        raise OutputError(f"cannot write into --dest {dest}: {problem.why}",
                          hint="use --dest to choose a folder you can write")
    ensure_dir(dest.parent, "the folder of --dest")  # OutputError (one line), not a traceback
    held = contextlib.ExitStack()
    try:
        work = held.enter_context(_work_folder(dest, earlier))
    except OSError as exc:  # a folder one cannot write in (/proc, read-only): one line, nothing made
        _remove_created(created)
        raise OutputError(f"cannot write in {dest.parent}: {exc.strerror or exc}",
                          hint="use --dest to choose a folder you can write") from None
    except OutputError:  # another fetch took every work folder made
        _remove_created(created)
        raise
    ok, whole, failed = False, False, None
    download = _Partial(work, **archive_key)
    try:
        staged = work / "dataset"
        staged.mkdir()
        for name, sha in manifest.files.items():
            _download(base + name, staged / name, sha, progress, timeout_s, expect=expect)
        archive = download.path  # in a folder of its own: any name is no work folder's own
        archive.parent.mkdir(exist_ok=True)  # there already where an earlier fetch's start is taken up
        _download(archive_key["url"], archive, manifest.archive_sha256, progress, timeout_s, download, expect)
        whole = True  # from here on, a DownloadError is the archive's: it is not kept
        if phase:
            phase("unpacking")
        unpacked = work / "unpacked"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
        except OSError as exc:
            if exc.errno in _DISK_ERRNOS:  # a full disk: the place's fault, not the archive's
                raise _cannot_write(unpacked, exc, f"unpack {manifest.archive}") from None
            raise DownloadError(f"cannot unpack {manifest.archive}: {exc}", hint="nothing was kept") from None
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise DownloadError(f"cannot unpack {manifest.archive}: {exc}", hint="nothing was kept") from None
        root = unpacked / manifest.archive_root
        if not root.is_dir():
            raise DownloadError(f"{manifest.archive} has no folder {manifest.archive_root!r}", hint="nothing was kept")
        if manifest.people_file:
            group_by_person(root, unpacked / manifest.people_file)
        if phase:
            phase("verifying")
        got = tree_digest(root)
        if got != manifest.images_tree_sha256:
            raise DownloadError(f"the unpacked images do not match the manifest (tree sha256 {got[:16]}..., "
                                f"expected {manifest.images_tree_sha256[:16]}...)", hint="nothing was kept")
        root.rename(staged / "images")
        _move_into_place(staged, dest, work)
        ok = True
        return FetchResult(dest, downloaded=True, put_back=put_back)
    except DownloadError as exc:  # the network's (the start of the archive kept, below) or the archive's
        if whole:
            download.drop()
        failed = exc
        raise
    except OutputError:  # the disk's: the space is freed, not kept for a next fetch
        download.drop()
        raise
    except OSError as exc:  # the work folder's disk (full: a folder of people): one line, not an internal error
        download.drop()
        raise _cannot_write(work / "dataset", exc, f"write {manifest.name}") from None
    finally:
        if ok:
            download.drop()
        # removes the work folder (unless it keeps the old copy, or the start of the archive), then lets go of it
        held.close()
        if not ok:
            _say_kept(download, dest, failed)
            _remove_created(created)  # folders this call created for nothing


def _say_kept(download: _Partial, dest: Path, failed: DownloadError | None) -> None:
    """Where a fetch that stopped short kept the start of its archive: a line that says where, and
    how to go on (also in the hint of the network's error)."""
    size = download.size()
    if not size:
        return
    source = "from this URL or a mirror (--url)" if download.key["sha256"] else "from the same URL"
    _say(f"{download.archive}: kept the {_size(size)} downloaded so far in {download.work}; fetching it "
         f"again {source} into {dest} goes on from there (delete that folder to free the space)")
    if failed is not None and getattr(failed, "network", False):
        failed.hint = f"check the network, then run the same command: it goes on from the {_size(size)} kept"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{n:,} bytes"


def _absolute(dest: Path) -> Path:
    """``dest`` as an absolute path, "." resolved by name, ".." as the system resolves it (the folder
    above the one a link before it links to, where `ls` and every later `--data` look), and a link as
    the folder it links to: the work folder goes beside it (`--dest .`, whose own "." cannot be
    renamed, failed only after the whole download), and a link was replaced by the new folder, on
    the link's disk. (``link/../x`` was the x beside the link, by name: the dataset went where a
    later ``--data link/../x`` does not look.)

    Raises:
        OutputError: ``dest`` is a link to nothing (a disk not mounted): the rename into it would fail
            only after the whole download.
    """
    try:
        if ".." in dest.parts:  # the real folders up to it (a link's ".." is its target's parent)
            dest = Path(os.path.realpath(dest if dest.name == ".." else dest.parent)) / (
                "" if dest.name == ".." else dest.name)
        dest = Path(os.path.abspath(dest))
    except OSError:  # a relative --dest, and the current folder was deleted
        raise OutputError(f"cannot fetch into {dest}: the current folder no longer exists",
                          hint="cd to a folder that exists, or give --dest as an absolute path") from None
    if not dest.is_symlink():
        return dest
    target = Path(os.path.realpath(dest))
    if not target.exists():
        raise OutputError(f"--dest {dest} is a link to {target}, which does not exist",
                          hint="create or mount it, or use --dest to choose another place")
    return target


def is_occupied(dest: str | os.PathLike) -> bool:
    """Whether something is at ``dest``: a file, or a folder with anything in it (what a fetch verifies,
    or refuses without ``--force``, instead of downloading into; an empty folder is a fine target).

    Raises:
        OutputError: ``dest``, or the folder it is in, cannot be read (no permission): what it holds
            cannot be known, and it is never written blind (exit 14, as a folder that cannot be written).
    """
    dest = Path(dest).expanduser()
    try:
        if not dest.is_dir():
            return dest.exists()
        with os.scandir(dest) as entries:
            return next(entries, None) is not None
    except OSError as exc:
        raise _cannot_read(dest, exc) from None


def _cannot_read(dest: Path, exc: OSError) -> OutputError:
    """--dest, or a file in it, that cannot be read, as one line."""
    where = "" if exc.filename in (None, str(dest)) else f" ({exc.filename})"
    return OutputError(f"cannot read --dest {dest}: {(exc.strerror or str(exc)).lower()}{where}",
                       hint="use --dest to choose a folder you can read and write")


def _remove_created(created: list[Path]) -> None:
    """Remove the folders a failed fetch created (outermost last), as far as they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            break
