"""`tinyface data fetch` against a loopback HTTP server (never the internet), serving a small
tar.gz of real LFW images and a manifest built for them."""

import filecmp
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tinyface import config
from tinyface.data.dataset import load_dataset
from tinyface.data.fetch import Manifest, builtin_manifest, make_manifest, missing_or_changed

PEOPLE = {"Aaron_Peirsol": 2, "Abdullah_Gul": 2, "Adrien_Brody": 2}
PROTOCOL = ["pairsDevTest.txt", "peopleDevTest.txt"]
ARCHIVE = "lfw-deepfunneled.tgz"


class Handler(http.server.BaseHTTPRequestHandler):
    """/ok/NAME serves a file; /drop/NAME sends half of it and hangs up, every time (a Range
    request too: it sends the whole file's first half again); /dropfirst/NAME does so for the
    archive's first request only and answers a Range request with that range (206);
    /norange/NAME drops the first request and answers later ones with the whole file (200, Range
    ignored); /corrupt/NAME flips bytes of the archive; /html/NAME answers with a web page;
    /stall/NAME sends half of the archive, sets ``stalled`` and sends the rest once ``release`` is
    set; /ranged/NAME answers a Range request for the archive with that range (206) and, while
``cut`` is set, sends only the first half of what it would send and hangs up (while ``hold`` is
set too, it sets ``stalled`` and waits for ``release`` first); it names the archive's version by
the ETag ``etag[0]``, and sends the whole file where an If-Range names another; /mirror/NAME
does so with no ETag (another server with the same file); anything else is a 404. ``ranges``:
the Range header of each request (None: none); ``if_ranges``: its If-Range."""

    root: Path
    requests: list
    ranges: list
    stalled: threading.Event
    release: threading.Event
    cut: threading.Event
    hold: threading.Event
    etag: list
    if_ranges: list

    def do_GET(self):
        first = self.path not in self.requests
        self.requests.append(self.path)
        self.ranges.append(self.headers.get("Range"))
        self.if_ranges.append(self.headers.get("If-Range"))
        mode, _, name = self.path.strip("/").partition("/")
        path = self.root / name
        if not path.is_file() or mode not in ("ok", "drop", "dropfirst", "norange", "corrupt", "html", "stall",
                                              "ranged", "mirror"):
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        if mode in ("ranged", "mirror") and name == ARCHIVE:
            self._ranged(data, etag=mode == "ranged")
            return
        if name == ARCHIVE and mode in ("dropfirst", "norange"):
            if first:
                mode = "drop"
            elif mode == "dropfirst" and (asked := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")):
                start = int(asked[1])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])
                return
        if mode == "html" and name == ARCHIVE:
            data = b"<html>moved</html>"
        if mode == "corrupt" and name == ARCHIVE:
            data = data[:100] + bytes(b ^ 0xFF for b in data[100:200]) + data[200:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "drop" and name == ARCHIVE:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "stall" and name == ARCHIVE:  # a fetch that is downloading, for as long as a test needs
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.stalled.set()
            self.release.wait(30)
            data = data[len(data) // 2:]
        try:
            self.wfile.write(data)
        except OSError:  # the fetch was killed
            pass

    def _ranged(self, data: bytes, etag: bool = True) -> None:
        asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if self.headers.get("If-Range") not in (None, self.etag[0] if etag else None):  # changed since: whole
            asked = None
        start = int(asked[1]) if asked else 0
        body = data[start:]
        self.send_response(206 if asked else 200)
        if asked:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        if etag:
            self.send_header("ETag", self.etag[0])
        self.end_headers()
        if not self.cut.is_set():
            self.wfile.write(body)
            return
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        if self.hold.is_set():
            self.stalled.set()
            self.release.wait(30)
        self.close_connection = True

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def served(lfw_dir, make_dataset, tmp_path):
    """A loopback server over a folder with the protocol files and the archive, and a manifest."""
    src = make_dataset(PEOPLE, name="src")
    site = tmp_path / "site"
    site.mkdir()
    for name in PROTOCOL:
        (site / name).write_bytes((lfw_dir / name).read_bytes())
    with tarfile.open(site / ARCHIVE, "w:gz") as tar:
        tar.add(src / "images", arcname="lfw-deepfunneled")
    manifest = make_manifest("lfw", site, PROTOCOL, site / ARCHIVE, "lfw-deepfunneled")
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest.__dict__))

    handler = type("H", (Handler,), {"root": site, "requests": [], "ranges": [], "stalled": threading.Event(),
                                     "release": threading.Event(), "cut": threading.Event(),
                                     "hold": threading.Event(), "etag": ['"v1"'], "if_ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "manifest": manifest_path, "src": src,
               "site": site, "requests": handler.requests, "ranges": handler.ranges, "tmp": tmp_path,
               "stalled": handler.stalled, "release": handler.release, "cut": handler.cut, "hold": handler.hold,
               "etag": handler.etag, "if_ranges": handler.if_ranges}
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def fetch_args(served, mode, dest, *extra, manifest=None):
    return [sys.executable, "-m", "tinyface.cli.main", "data", "fetch", "lfw", "--url", f"{served['url']}/{mode}/",
            "--dest", str(dest), "--manifest", str(manifest or served["manifest"]), "--timeout", "10", *extra]


def fetch_cli(served, mode, dest, *extra, manifest=None):
    return subprocess.run(fetch_args(served, mode, dest, *extra, manifest=manifest),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def assert_nothing_left(dest: Path, created_parent: Path):
    assert not dest.exists()
    assert not created_parent.exists(), "a folder created for the download was left behind"
    leftovers = [p for p in created_parent.parent.rglob("*") if ".fetch-" in p.name]
    assert not leftovers, leftovers


def one_line(proc, code=5):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: ") and "Traceback" not in proc.stderr
    return lines[0]


def test_fetch_downloads_verifies_and_unpacks(served):
    dest = served["tmp"] / "data" / "lfw"
    proc = fetch_cli(served, "ok", dest)
    assert proc.returncode == 0, proc.stderr
    for name in PROTOCOL:
        assert filecmp.cmp(dest / name, served["site"] / name, shallow=False)
    for img in (served["src"] / "images").rglob("*.jpg"):
        assert filecmp.cmp(img, dest / "images" / img.parent.name / img.name, shallow=False)
    ds = load_dataset(dest)
    assert ds.is_lfw() is False  # no pairs.txt in this small manifest; a dataset nonetheless
    assert len(ds.images) == 6 and len(ds.identities) == 3
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no temp folders

    # fetching again verifies what is there and downloads nothing
    before = len(served["requests"])
    again = fetch_cli(served, "ok", dest)
    assert again.returncode == 0, again.stderr
    assert "already" in again.stderr and len(served["requests"]) == before
    # --force downloads again and replaces it
    forced = fetch_cli(served, "ok", dest, "--force")
    assert forced.returncode == 0 and len(served["requests"]) > before
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest)


@pytest.mark.parametrize("archive", ["dataset", ".lock", "old"])
def test_an_archive_named_like_a_part_of_the_work_folder_is_fetched(served, archive):
    # was: exit 14, "cannot write lfw ... Is a directory" (the staged copy's folder, `dataset`); the
    # download written over the work folder's lock file (which another fetch's sweep reads); --force's
    # old copy renamed onto the archive (`old`)
    (served["site"] / archive).write_bytes((served["site"] / ARCHIVE).read_bytes())
    manifest = json.loads(served["manifest"].read_text()) | {"archive": archive}
    path = served["tmp"] / f"{archive}.json"
    path.write_text(json.dumps(manifest))
    dest = served["tmp"] / "data" / "lfw"
    for extra in ((), ("--force",)):  # a first fetch, and one that replaces it
        proc = fetch_cli(served, "ok", dest, *extra, manifest=path)
        assert proc.returncode == 0, proc.stderr
        assert not missing_or_changed(Manifest.load(path), dest)


def test_a_protocol_file_named_images_is_refused_with_the_manifest(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"name": "x", "files": {"images": "0" * 64}, "archive": "a.tgz",
                                "archive_sha256": None, "archive_root": "r", "images_tree_sha256": "0" * 64}))
    with pytest.raises(ValueError, match=r"files\['images'\] would be where the archive's images go"):
        Manifest.load(path)


def test_a_dest_with_dot_dot_after_a_link_is_where_the_system_puts_it(served):
    # was: `--dest link/../lfw` fetched into the lfw beside the link (".." taken by name), while
    # `ls link/../lfw`, and a later `--data link/../lfw`, look beside the folder the link points to
    tmp = served["tmp"]
    (tmp / "disk" / "datasets").mkdir(parents=True)
    (tmp / "link").symlink_to(tmp / "disk" / "datasets")
    proc = fetch_cli(served, "ok", tmp / "link" / ".." / "lfw", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == str(tmp / "disk" / "lfw")
    assert not missing_or_changed(Manifest.load(served["manifest"]), tmp / "link" / ".." / "lfw")
    assert not (tmp / "lfw").exists()


def test_wrong_checksum_keeps_nothing_and_says_why(served):
    manifest = Manifest.load(served["manifest"])
    manifest.files["peopleDevTest.txt"] = "0" * 64
    bad = served["tmp"] / "bad-manifest.json"
    bad.write_text(json.dumps(manifest.__dict__))
    dest = served["tmp"] / "new" / "lfw"
    line = one_line(fetch_cli(served, "ok", dest, manifest=bad))
    assert "checksum mismatch for peopleDevTest.txt" in line and "nothing was kept" in line
    assert_nothing_left(dest, dest.parent)


def test_corrupted_archive_keeps_nothing(served):
    dest = served["tmp"] / "new" / "lfw"
    line = one_line(fetch_cli(served, "corrupt", dest))
    assert f"checksum mismatch for {ARCHIVE}" in line
    assert_nothing_left(dest, dest.parent)


def test_images_that_differ_from_the_manifest_keep_nothing(served):
    """With no archive checksum pinned (as for LFW's own tgz), the unpacked tree is still verified."""
    manifest = Manifest.load(served["manifest"])
    manifest.archive_sha256 = None
    manifest.images_tree_sha256 = "f" * 64
    bad = served["tmp"] / "tree-manifest.json"
    bad.write_text(json.dumps(manifest.__dict__))
    dest = served["tmp"] / "new" / "lfw"
    line = one_line(fetch_cli(served, "ok", dest, manifest=bad))
    assert "do not match the manifest" in line
    assert_nothing_left(dest, dest.parent)
    # a page instead of an archive is not unpacked either
    line = one_line(fetch_cli(served, "html", dest, manifest=bad))
    assert f"cannot unpack {ARCHIVE}" in line
    assert_nothing_left(dest, dest.parent)


def test_a_server_that_hangs_up_keeps_what_arrived_for_the_next_fetch(served):
    from tinyface.data.fetch import RESUMES

    dest = served["tmp"] / "new" / "lfw"
    proc = fetch_cli(served, "drop", dest)
    assert proc.returncode == 5, proc.stderr
    # a line for each resume (and that it starts over: "drop" answers Range with the whole file), what was
    # kept, the error's
    *resumed, kept, line = proc.stderr.strip().splitlines()
    assert line.startswith("tinyface: error: download failed") and ARCHIVE in line
    assert f"(resumed {RESUMES} times)" in line and "Traceback" not in proc.stderr
    half = (served["site"] / ARCHIVE).stat().st_size // 2  # all that "drop" sends, every time
    assert [r.split(":")[1].split("(")[0].strip() for r in resumed] == RESUMES * [
        f"the download broke off after {half:,} bytes", "the server sends the whole file again"]
    [work] = work_folders(dest)
    assert kept == (f"{ARCHIVE}: kept the {half:,} bytes downloaded so far in {work}; fetching it again from this "
                    f"URL or a mirror (--url) into {dest} goes on from there (delete that folder to free the space)")
    assert f"it goes on from the {half:,} bytes kept" in line
    assert not dest.exists()
    # only the start of the archive and what it is the start of (the protocol files went)
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*") if p.name != ".lock") == [
        "archive", f"archive/{ARCHIVE}", "download.json"]
    assert (work / "archive" / ARCHIVE).read_bytes() == (served["site"] / ARCHIVE).read_bytes()[:half]


def cut_off(served, dest, how: str) -> tuple[subprocess.CompletedProcess | subprocess.Popen, int]:
    """A fetch from /ranged/ stopped while the archive comes: by the network (it hangs up after half
    of what each request asks, every time), by SIGKILL or by SIGTERM (while the server waits with
    half of it sent); the process and the bytes of the archive its work folder kept."""
    served["cut"].set()
    if how == "network":
        proc = fetch_cli(served, "ranged", dest)
    else:
        served["hold"].set()
        proc = subprocess.Popen(fetch_args(served, "ranged", dest), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        assert served["stalled"].wait(30), "the fetch never reached the archive"
        half = (served["site"] / ARCHIVE).stat().st_size // 2
        [work] = work_folders(dest)
        for _ in range(200):  # until the half sent is on disk (it is written as it comes)
            if (work / "archive" / ARCHIVE).is_file() and (work / "archive" / ARCHIVE).stat().st_size == half:
                break
            time.sleep(0.05)
        # SIGTERM, which the CLI ends as it ends Ctrl-C (a background job, as CI may run the tests in,
        # ignores SIGINT, and passes that on to the processes it starts)
        proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        proc.stdout_text, proc.stderr_text = proc.communicate(timeout=30)
    served["cut"].clear()
    served["hold"].clear()
    served["release"].set()  # the server's waiting request ends
    [work] = work_folders(dest)
    return proc, (work / "archive" / ARCHIVE).stat().st_size


@pytest.mark.parametrize("how", ["network", "kill", "terminate"])
def test_a_download_that_stopped_short_is_taken_up_by_the_next_fetch(served, how):
    # was: a fetch cut off by the network, Ctrl-C or kill -9 started over (FairFace's archive is
    # 500 MB); now the next fetch of the same file into the same place asks for the rest only
    dest = served["tmp"] / "data" / "lfw"
    size = (served["site"] / ARCHIVE).stat().st_size
    first, kept = cut_off(served, dest, how)
    assert 0 < kept < size
    if how == "terminate":
        assert first.returncode == 143 and "Traceback" not in first.stderr_text, first.stderr_text
        assert f"{ARCHIVE}: kept the {kept:,} bytes downloaded so far" in first.stderr_text
    del served["ranges"][:], served["requests"][:], served["if_ranges"][:]

    again = fetch_cli(served, "ranged", dest, "--json")
    assert again.returncode == 0, again.stderr
    assert f"{ARCHIVE}: taking up the {kept:,} bytes an earlier fetch had downloaded" in again.stderr
    archive = [(r, i) for p, r, i in zip(served["requests"], served["ranges"], served["if_ranges"], strict=True)
               if p.endswith(ARCHIVE)]
    assert archive == [(f"bytes={kept}-", '"v1"')]  # the rest only, of the version the start is of
    assert json.loads(again.stdout)["bytes_downloaded"] == sum(
        (served["site"] / n).stat().st_size for n in PROTOCOL) + size - kept
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest)  # every checksum
    assert work_folders(dest) == [] and "removed an unfinished" not in again.stderr


@pytest.mark.parametrize("kept", ["whole", "changed"])
def test_a_start_kept_that_is_the_whole_file_or_not_its_start_is_checked(served, kept):
    """A fetch killed while it unpacked leaves the whole archive: the next one downloads none of it.
    A start whose bytes are not the file's (changed on the server since) fails the sha256 once
    the rest is added: then the file is downloaded whole, once."""
    dest = served["tmp"] / "data" / "lfw"
    cut_off(served, dest, "network")
    [work] = work_folders(dest)
    whole = (served["site"] / ARCHIVE).read_bytes()
    start = whole if kept == "whole" else bytes(b ^ 0xFF for b in whole[:1000])
    (work / "archive" / ARCHIVE).write_bytes(start)
    del served["ranges"][:], served["requests"][:]

    again = fetch_cli(served, "ranged", dest)
    assert again.returncode == 0, again.stderr
    archive = [r for p, r in zip(served["requests"], served["ranges"], strict=True) if p.endswith(ARCHIVE)]
    assert archive == ([] if kept == "whole" else ["bytes=1000-", None])
    assert ("does not match its checksum (the file changed on the server?); downloading it whole"
            in again.stderr) == (kept == "changed")
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest)
    assert work_folders(dest) == []


def test_a_start_kept_of_a_file_changed_on_the_server_since_is_replaced_by_the_whole_file(served):
    dest = served["tmp"] / "data" / "lfw"
    cut_off(served, dest, "network")
    served["etag"][0] = '"v2"'  # the server's file is another version now (same bytes here: the sha256 still holds)
    del served["ranges"][:], served["requests"][:], served["if_ranges"][:]
    again = fetch_cli(served, "ranged", dest)
    assert again.returncode == 0, again.stderr
    assert f"{ARCHIVE}: the server sends the whole file again" in again.stderr
    archive = [i for p, i in zip(served["requests"], served["if_ranges"], strict=True) if p.endswith(ARCHIVE)]
    assert archive == ['"v1"']  # one request: it was answered with the whole file, which was kept
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest) and work_folders(dest) == []


def test_a_start_kept_is_taken_up_from_a_mirror_and_checked_by_its_sha256(served):
    # was: a fetch from another URL removed the start kept; but a server that keeps failing is when
    # a user turns to a mirror. The pinned sha256 checks the whole, as it does a changed file's
    dest = served["tmp"] / "data" / "lfw"
    _, kept = cut_off(served, dest, "network")
    del served["ranges"][:], served["requests"][:], served["if_ranges"][:]
    again = fetch_cli(served, "mirror", dest, "--json")
    assert again.returncode == 0, again.stderr
    earlier = f"{served['url']}/ranged/{ARCHIVE}"
    assert (f"{ARCHIVE}: taking up the {kept:,} bytes an earlier fetch had downloaded from {earlier} (the sha256 "
            "checks the whole)") in again.stderr
    archive = [(r, i) for p, r, i in zip(served["requests"], served["ranges"], served["if_ranges"], strict=True)
               if p.endswith(ARCHIVE)]
    assert archive == [(f"bytes={kept}-", None)]  # the rest only; the first server's ETag is not this one's
    assert json.loads(again.stdout)["bytes_downloaded"] == sum(
        (served["site"] / n).stat().st_size for n in (*PROTOCOL, ARCHIVE)) - kept
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest) and work_folders(dest) == []


def test_a_start_kept_with_no_checksum_pinned_is_taken_up_from_its_own_url_only(served):
    dest = served["tmp"] / "data" / "lfw"
    manifest = json.loads(served["manifest"].read_text())
    manifest["archive_sha256"] = None  # nothing would tell a mirror's other file from the start kept
    unpinned = served["tmp"] / "unpinned.json"
    unpinned.write_text(json.dumps(manifest))
    served["cut"].set()
    first = fetch_cli(served, "ranged", dest, manifest=unpinned)
    served["cut"].clear()
    assert first.returncode != 0 and "; fetching it again from the same URL into " in first.stderr
    assert len(work_folders(dest)) == 1
    del served["ranges"][:], served["requests"][:]
    again = fetch_cli(served, "mirror", dest, manifest=unpinned)
    assert again.returncode == 0, again.stderr
    assert not any(served["ranges"]) and "taking up" not in again.stderr
    assert "removed an unfinished earlier fetch" in again.stderr and work_folders(dest) == []


@pytest.mark.parametrize("mode", ["dropfirst", "norange"])
def test_a_download_that_broke_off_is_resumed_where_it_stopped(served, mode):
    # was: a flaky connection lost the whole download (`data fetch fairface`'s archive is 500 MB);
    # a server that answers Range with the whole file ("norange") is read from the start again
    dest = served["tmp"] / "data" / "lfw"
    proc = fetch_cli(served, mode, dest, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["downloaded"] is True
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest)  # every checksum
    archive = [r for p, r in zip(served["requests"], served["ranges"], strict=True) if p.endswith(ARCHIVE)]
    size = (served["site"] / ARCHIVE).stat().st_size
    assert archive == [None, f"bytes={size // 2}-"]  # the second asks for what the first did not bring
    assert f"{ARCHIVE}: the download broke off after {size // 2:,} bytes" in proc.stderr
    assert (f"{ARCHIVE}: the server sends the whole file again" in proc.stderr) == (mode == "norange")


def test_a_404_keeps_nothing(served):
    dest = served["tmp"] / "new" / "lfw"
    line = one_line(fetch_cli(served, "nothing-here", dest))
    assert "HTTP 404" in line and "pairsDevTest.txt" in line
    assert_nothing_left(dest, dest.parent)


def test_a_refused_connection_says_so(served, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "new" / "lfw"
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "fetch", "lfw", "--url",
                           f"http://127.0.0.1:{port}/", "--dest", str(dest), "--manifest", str(served["manifest"])],
                          capture_output=True, text=True, timeout=60)
    assert "refused" in one_line(proc).lower()
    assert_nothing_left(dest, dest.parent)


def test_an_existing_folder_that_is_not_the_dataset_is_not_replaced(served):
    dest = served["tmp"] / "mine"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep me")
    line = one_line(fetch_cli(served, "ok", dest), code=14)  # in the way: an output problem, nothing downloaded
    assert "already exists but is not the lfw dataset" in line and "--force" in line
    assert (dest / "precious.txt").read_text() == "keep me"
    # an empty folder is a fine place to fetch into
    empty = served["tmp"] / "empty"
    empty.mkdir()
    assert fetch_cli(served, "ok", empty).returncode == 0 and (empty / "images").is_dir()


def test_builtin_lfw_manifest_matches_the_shared_copy(lfw_dir):
    """The built-in manifest describes exactly the LFW that tinyface's results are measured on."""
    manifest = builtin_manifest("lfw")
    assert manifest.archive == "lfw-deepfunneled.tgz" and manifest.archive_root == "lfw-deepfunneled"
    assert set(manifest.files) >= {"pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt", "peopleDevTrain.txt",
                                   "peopleDevTest.txt", "people.txt"}
    assert missing_or_changed(manifest, lfw_dir, verify_images=os.environ.get("TINYFACE_VERIFY_LFW") == "1") == []


def test_a_set_the_presets_use_is_not_said_to_need_a_setting(capsys):
    """`data fetch fairface` said "use it with --set extra.dirs=[...]", as if a plain `tinyface build`
    left FairFace out; every shipped preset distils from it (presets/*.toml)."""
    from tinyface.cli.data import _how_to_use
    from tinyface.config import load_preset, preset_names

    users = [p for p in preset_names() if "fairface" in load_preset(p).values.get("extra", {}).get("dirs", [])]
    assert users == preset_names()
    _how_to_use("fairface")
    said = capsys.readouterr().err
    assert f"the presets {', '.join(users)} distil from it already (extra.dirs)" in said and "CC BY 4.0" in said
    assert "--set" not in said


def test_an_extra_set_says_how_to_use_it_and_on_what_terms(served):
    dest = served["tmp"] / "datasets" / "pins"
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "fetch", "pins",
                           "--url", f"{served['url']}/ok/", "--dest", str(dest), "--manifest", str(served["manifest"]),
                           "--timeout", "10"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert f"pins is ready in {dest}" in proc.stderr
    assert "--set 'extra.dirs=[\"pins\"]' --set extra.kind=photos" in proc.stderr and "research use only" in proc.stderr
    assert (dest / "images").is_dir()
    # fetched again: nothing to download, and the same two things said (they were said after a download only)
    again = subprocess.run(proc.args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and "nothing to download" in again.stderr, again.stderr
    assert "--set 'extra.dirs=[\"pins\"]' --set extra.kind=photos" in again.stderr
    assert "research use only" in again.stderr


def _flat_archive(site: Path, src: Path, lines: list[str]) -> Path:
    """CelebA's layout: the images in one folder, a file beside it naming each one's person."""
    flat = site / "flat"
    (flat / "repo-abc" / "Celeb").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(sorted((src / "images").rglob("*.jpg"))):
        (flat / "repo-abc" / "Celeb" / f"{i + 1:06d}.jpg").write_bytes(img.read_bytes())
    (flat / "repo-abc" / "identity.txt").write_text("\n".join(lines) + "\n")
    archive = site / "abc.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(flat / "repo-abc", arcname="repo-abc")
    return archive


def test_a_flat_set_is_put_in_one_folder_per_person_as_its_people_file_says(served):
    from tinyface.data.fetch import fetch

    # a header line, six images of two people, and a person whose image is not in this subset
    lines = ["image identity"] + [f"{i:06d}.jpg {100 + (i - 1) // 3}" for i in range(1, 7)] + ["999999.jpg 7"]
    archive = _flat_archive(served["site"], served["src"], lines)
    manifest = make_manifest("celeba", served["site"], [], archive, "repo-abc/Celeb",
                             people_file="repo-abc/identity.txt")
    dest = fetch(manifest, f"{served['url']}/ok/", served["tmp"] / "celeba").path
    groups = {p.name: sorted(q.name for q in p.iterdir()) for p in (dest / "images").iterdir()}
    assert groups == {"100": ["000001.jpg", "000002.jpg", "000003.jpg"],
                      "101": ["000004.jpg", "000005.jpg", "000006.jpg"]}
    assert not missing_or_changed(manifest, dest)  # the digest is of the grouped tree
    assert sorted(load_dataset(dest).identities) == ["100", "101"]  # a dataset of people, as extra.people reads it


def test_an_image_without_a_person_keeps_nothing(served):
    from tinyface.data.fetch import fetch
    from tinyface.errors import DownloadError

    lines = [f"{i:06d}.jpg 100" for i in range(1, 6)]  # the sixth image has no person
    archive = _flat_archive(served["site"], served["src"], lines)
    manifest = make_manifest("celeba", served["site"], [], archive, "repo-abc/Celeb")  # the digest of the flat tree
    manifest.people_file = "repo-abc/identity.txt"
    with pytest.raises(DownloadError, match="1 images have no person in identity.txt"):
        fetch(manifest, f"{served['url']}/ok/", served["tmp"] / "x" / "celeba")
    assert not (served["tmp"] / "x").exists()


def test_fetch_json_says_where_and_whether_it_downloaded(served):
    dest = served["tmp"] / "j" / "lfw"
    first = fetch_cli(served, "ok", dest, "--json")
    assert first.returncode == 0, first.stderr
    d = json.loads(first.stdout)
    assert d["name"] == "lfw" and d["path"] == str(dest) and d["downloaded"] is True and d["bytes_downloaded"] > 0
    assert d["extra_kind"] is None and d["put_back"] is False
    again = json.loads(fetch_cli(served, "ok", dest, "--json").stdout)  # already there: verified, not downloaded
    assert again["downloaded"] is False and again["bytes_downloaded"] == 0 and again["path"] == str(dest)


def work_folders(dest: Path) -> list[Path]:
    return sorted(dest.parent.glob(f".{dest.name}.fetch-*"))


def start_stalled_fetch(served, dest) -> subprocess.Popen:
    """A real `tinyface data fetch` halfway through downloading the archive (until ``release``)."""
    proc = subprocess.Popen(fetch_args(served, "stall", dest), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    assert served["stalled"].wait(30), "the fetch never reached the archive"
    served["stalled"].clear()
    return proc


@pytest.mark.parametrize("archive_written", [False, True])
def test_a_fetch_killed_mid_download_is_removed_by_the_next_one(served, archive_written):
    """Killed before any of the archive was on disk, its work folder is removed; with the archive's
    start on disk, that start is taken up (/ok/ then sends the whole file: it starts over) and the
    rest of the folder removed. Either way nothing is left once the next fetch is done."""
    dest = served["tmp"] / "data" / "lfw"
    half = (served["site"] / ARCHIVE).stat().st_size // 2
    killed = start_stalled_fetch(served, dest)
    [left] = work_folders(dest)
    if archive_written:  # it is written as it comes
        for _ in range(200):
            if (left / "archive" / ARCHIVE).is_file() and (left / "archive" / ARCHIVE).stat().st_size == half:
                break
            time.sleep(0.05)
    else:
        (left / "archive" / ARCHIVE).unlink(missing_ok=True)  # as if killed before its first byte was written
    killed.kill()  # SIGKILL: no cleanup of its own runs
    killed.communicate()
    assert (left / "dataset" / "pairsDevTest.txt").is_file()  # what the defect kept forever, with the archive's start

    again = fetch_cli(served, "ok", dest)
    assert again.returncode == 0, again.stderr
    if archive_written:
        assert f"{ARCHIVE}: taking up the {half:,} bytes an earlier fetch had downloaded from " in again.stderr
        assert f"{ARCHIVE}: the server sends the whole file again" in again.stderr
    else:
        assert re.search(rf"removed an unfinished earlier fetch of {re.escape(str(dest))} \(\d+\.\d MB\)",
                         again.stderr)
    assert not [p for p in served["tmp"].rglob("*") if ".fetch-" in p.name]  # nor one of its own
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest)


def test_only_the_work_folders_no_live_fetch_holds_are_removed(served):
    """A fetch running beside this one keeps its work folder, and finishes; one a tinyface older
    than the lock left (no lock file in it) is removed."""
    dest = served["tmp"] / "data" / "lfw"
    live = start_stalled_fetch(served, dest)
    try:
        [held] = work_folders(dest)
        earlier = dest.parent / ".lfw.fetch-earlier"
        (earlier / "dataset").mkdir(parents=True)
        (earlier / "dataset" / "pairsDevTest.txt").write_text("1\n")
        (earlier / ARCHIVE).write_bytes(b"\0" * 3_000_000)
        half = (held / "archive" / ARCHIVE).stat().st_size if (held / "archive" / ARCHIVE).exists() else 0

        beside = fetch_cli(served, "ok", dest)
        assert beside.returncode == 0, beside.stderr
        assert f"removed an unfinished earlier fetch of {dest} (3.0 MB)" in beside.stderr  # one: not the live one
        assert work_folders(dest) == [held] and (held / "dataset" / "pairsDevTest.txt").is_file()
        assert (held / "archive" / ARCHIVE).stat().st_size >= half and live.poll() is None

        served["release"].set()
        _, stderr = live.communicate(timeout=60)
        assert live.returncode == 0, stderr  # its work folder was there to the end
    finally:
        live.kill()
        live.wait()
    assert work_folders(dest) == []
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest)


KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from tinyface.data.fetch import Manifest, fetch

manifest, url, dest = Manifest.load(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
rename = Path.rename


def rename_then_die(self, target):
    moved = rename(self, target)
    if self == dest:  # the old copy is aside and the new one not yet in: a kill -9 at that instant
        os.kill(os.getpid(), signal.SIGKILL)
    return moved


Path.rename = rename_then_die
fetch(manifest, url, dest, force=True)
"""


def test_a_force_killed_between_its_renames_gets_its_old_copy_back(served):
    dest = served["tmp"] / "data" / "lfw"
    assert fetch_cli(served, "ok", dest).returncode == 0
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(served["manifest"]),
                             f"{served['url']}/ok/", str(dest)], capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not dest.exists() and len(work_folders(dest)) == 1  # the dataset is only in the work folder

    before = len(served["requests"])
    again = fetch_cli(served, "ok", dest, "--json")
    assert again.returncode == 0, again.stderr
    assert f"put back {dest}, which an unfinished earlier fetch --force had moved aside" in again.stderr
    assert f"removed an unfinished earlier fetch of {dest}" in again.stderr
    assert f"lfw is already in {dest} (every checksum verified); nothing to download" in again.stderr
    assert len(served["requests"]) == before  # the verified copy was back: nothing downloaded
    said = json.loads(again.stdout)  # and --json says so: the copy kept, not a download
    assert said["downloaded"] is False and said["put_back"] is True and said["bytes_downloaded"] == 0
    assert said["path"] == str(dest)
    assert work_folders(dest) == []
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest)


# --- a rename that fails (our own failure handling, driven by a failing os.rename) ---------------

def _fail_renames(monkeypatch, *steps: str) -> list[str]:
    """Make os.rename raise for the renames of _move_into_place named in ``steps``: "aside" (the
    old copy to the work folder), "in" (the new copy into place), "back" (the old copy back).
    Returns the steps tried, in order."""
    from tinyface.data.fetch import OLD_COPY

    real, tried = os.rename, []

    def rename(src, dst, *args, **kwargs):
        src, dst = Path(src), Path(dst)
        step = ("aside" if dst.name == OLD_COPY else "back" if src.name == OLD_COPY
                else "in" if src.name == "dataset" else None)
        if step:
            tried.append(step)
        if step in steps:
            raise OSError(13, "Permission denied (injected)")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    return tried


@pytest.mark.parametrize("steps, tried, kept", [
    (("aside",), ["aside"], "cannot replace"),
    (("in",), ["aside", "in", "back"], "holds the old copy, as before"),
])
def test_a_force_whose_rename_fails_keeps_the_old_copy_in_place(served, monkeypatch, steps, tried, kept):
    from tinyface.data.fetch import fetch
    from tinyface.errors import OutputError

    dest = served["tmp"] / "data" / "lfw"
    assert fetch_cli(served, "ok", dest).returncode == 0
    (dest / "mine.txt").write_text("the old copy")  # tells the old copy from a new one
    done = _fail_renames(monkeypatch, *steps)
    with pytest.raises(OutputError, match="Permission denied") as caught:
        fetch(Manifest.load(served["manifest"]), f"{served['url']}/ok/", dest, force=True)
    assert done == tried and kept in caught.value.one_line() and caught.value.exit_code == 14
    assert (dest / "mine.txt").read_text() == "the old copy"  # in place, complete
    assert not missing_or_changed(Manifest.load(served["manifest"]), dest)
    assert work_folders(dest) == []


def test_a_force_whose_new_copy_and_put_back_both_fail_keeps_the_old_copy_for_the_next_fetch(served, monkeypatch):
    from tinyface.data.fetch import OLD_COPY, fetch
    from tinyface.errors import OutputError

    dest = served["tmp"] / "data" / "lfw"
    assert fetch_cli(served, "ok", dest).returncode == 0
    (dest / "mine.txt").write_text("the old copy")
    done = _fail_renames(monkeypatch, "in", "back")
    with pytest.raises(OutputError, match="nor could the old copy be put back") as caught:
        fetch(Manifest.load(served["manifest"]), f"{served['url']}/ok/", dest, force=True)
    assert done == ["aside", "in", "back"]
    [work] = work_folders(dest)  # not removed: it holds the only copy
    assert not dest.exists() and (work / OLD_COPY / "mine.txt").read_text() == "the old copy"
    assert f"the old copy is kept in {work / OLD_COPY}" in caught.value.one_line()

    monkeypatch.undo()  # renames work again: the next fetch puts it back and downloads nothing
    before = len(served["requests"])
    again = fetch_cli(served, "ok", dest, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["put_back"] is True and len(served["requests"]) == before
    assert (dest / "mine.txt").read_text() == "the old copy" and work_folders(dest) == []


def test_a_first_fetch_whose_new_copy_cannot_be_moved_in_keeps_nothing(served, monkeypatch):
    from tinyface.data.fetch import fetch
    from tinyface.errors import OutputError

    dest = served["tmp"] / "new" / "lfw"
    done = _fail_renames(monkeypatch, "in")
    with pytest.raises(OutputError, match="cannot move the new copy into") as caught:
        fetch(Manifest.load(served["manifest"]), f"{served['url']}/ok/", dest)
    assert done == ["in"] and "nothing was kept" in caught.value.one_line()
    assert_nothing_left(dest, dest.parent)


# --- the work folder: another fetch's sweep can take it before it is held ------------------------

@pytest.mark.parametrize("how", ["removed", "held"])
def test_losing_every_race_for_a_work_folder_says_so_and_leaves_nothing(served, monkeypatch, how):
    """A fetch starting beside this one sweeps the work folders nobody holds: one it took in the
    instant between its creation and its lock (removed, or held while it is removed) is lost."""
    import fcntl
    import shutil

    from tinyface.data import fetch as fetch_module
    from tinyface.errors import OutputError
    from tinyface.fsutil import LOCK_NAME

    real_hold, sweeps = fetch_module._hold, []

    def hold_after_a_sweep(work):
        if how == "removed":
            shutil.rmtree(work)
        else:  # the sweep's lock: another open file, so flock refuses this process's too
            handle = open(work / LOCK_NAME, "a+")
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            sweeps.append(handle)
        return real_hold(work)

    monkeypatch.setattr(fetch_module, "_hold", hold_after_a_sweep)
    dest = served["tmp"] / "new" / "lfw"
    try:
        with pytest.raises(OutputError) as caught:
            fetch_module.fetch(Manifest.load(served["manifest"]), f"{served['url']}/ok/", dest)
    finally:
        for handle in sweeps:
            handle.close()
    line = caught.value.one_line()
    assert line == (f"cannot start a fetch into {dest}: another `tinyface data fetch` into the same place removed each "
                    f"of the {fetch_module.WORK_FOLDER_TRIES} work folders this one made in {dest.parent} "
                    "(let the other fetch end, then run this one again)")
    assert "cannot write" not in line and caught.value.exit_code == 14
    assert served["requests"] == [] and not dest.parent.exists()  # nothing downloaded, nothing made


def test_a_work_folder_that_cannot_be_held_for_another_reason_is_not_called_a_race(served, monkeypatch):
    """Only a sweep's doing is reported as one: a lock file that cannot be opened (here a folder in
    its place; a full disk in life) is the destination's folder that cannot be written."""
    from tinyface.data import fetch as fetch_module
    from tinyface.errors import OutputError
    from tinyface.fsutil import LOCK_NAME

    real_hold, tries = fetch_module._hold, []

    def hold_without_a_lock_file(work):
        tries.append(work)
        (work / LOCK_NAME).mkdir()
        return real_hold(work)

    monkeypatch.setattr(fetch_module, "_hold", hold_without_a_lock_file)
    dest = served["tmp"] / "new" / "lfw"
    with pytest.raises(OutputError, match=rf"^cannot write in {re.escape(str(dest.parent))}: Is a directory") as caught:
        fetch_module.fetch(Manifest.load(served["manifest"]), f"{served['url']}/ok/", dest)
    assert "another" not in caught.value.one_line() and len(tries) == 1  # not retried as a race
    assert served["requests"] == [] and not dest.parent.exists()


def test_every_extra_set_is_one_pinned_folder_of_the_repository_its_url_names():
    extra = [name for name, source in config.DATASETS.items() if source.kind]
    assert set(extra) == set(config.FETCHABLE_EXTRA) and {"fairface", "utkface", "pins", "celeba"} <= set(extra)
    for name in extra:
        source, manifest = config.DATASETS[name], builtin_manifest(name)
        repo = source.url.rstrip("/").split("/")[-2]  # https://github.com/<owner>/<repo>/archive/
        commit = manifest.archive.removesuffix(".tar.gz")
        assert source.url.endswith("/archive/") and len(commit) == 40 and int(commit, 16) >= 0, name
        assert manifest.archive_root.startswith(f"{repo}-{commit}/"), (name, manifest.archive_root)
        assert manifest.name == name and len(manifest.images_tree_sha256) == 64 and source.credit


@pytest.mark.parametrize("mode", ["ok", "dropfirst"])
def test_a_fetch_says_how_many_bytes_its_progress_will_count(served, mode):
    """expect(name, n): each file's size as its server announced it (Content-Length), so that the
    progress line has a share done and a time left (it had neither); a download that broke off and
    resumed announces the same total again, and progress counts exactly that much."""
    from tinyface.data.fetch import fetch

    counted, expected, announced = [0], {}, []

    def expect(name, n):
        expected[name] = n
        announced.append(name)

    fetch(Manifest.load(served["manifest"]), f"{served['url']}/{mode}/", served["tmp"] / "lfw",
          progress=lambda n: counted.__setitem__(0, counted[0] + n), expect=expect)
    sizes = {name: (served["site"] / name).stat().st_size for name in [*PROTOCOL, ARCHIVE]}
    assert expected == sizes and counted[0] == sum(sizes.values())
    assert announced.count(ARCHIVE) == (2 if mode == "dropfirst" else 1)


def test_a_fetch_that_takes_up_an_earlier_download_expects_only_what_is_left(served):
    from tinyface.data.fetch import fetch

    dest = served["tmp"] / "lfw"
    served["cut"].set()  # the first fetch gets half of the archive (each time it asks) and keeps it
    assert fetch_cli(served, "ranged", dest).returncode == 5
    served["cut"].clear()
    counted, expected = [0], {}
    fetch(Manifest.load(served["manifest"]), f"{served['url']}/ranged/", dest,
          progress=lambda n: counted.__setitem__(0, counted[0] + n), expect=expected.__setitem__)
    size = (served["site"] / ARCHIVE).stat().st_size
    assert 0 < expected[ARCHIVE] < size and counted[0] == sum(expected.values())


def test_a_fetch_says_when_it_unpacks_and_verifies(served):
    """The phases after the last byte (minutes for FairFace's archive), which the progress line names:
    it went on saying 'downloading' with nothing left to download."""
    from tinyface.data.fetch import fetch

    events = []
    fetch(Manifest.load(served["manifest"]), f"{served['url']}/ok/", served["tmp"] / "lfw",
          progress=lambda n: events.append("bytes"), phase=events.append)
    assert events[-2:] == ["unpacking", "verifying"] and events.count("bytes") == len(events) - 2
