"""`tinyface data fetch` where the place it writes to, not the network, is the problem: a disk that cannot
take the download, `--dest .`, a mount point; and `--timeout inf`. Against the loopback server of
tests/data/test_fetch.py."""

import json
import os
import resource
import subprocess
import tarfile

import pytest

from tests.data.test_fetch import ARCHIVE, PROTOCOL, assert_nothing_left, fetch_args, fetch_cli, one_line, served
from tinyface.data.fetch import make_manifest

__all__ = ["served"]  # the fixture, used by name


def fetch_limited(served, dest, max_file_bytes, *extra, manifest=None):
    """The fetch in a process whose files cannot grow past ``max_file_bytes`` (RLIMIT_FSIZE: a write
    past it fails with EFBIG, as one fails with ENOSPC on a full disk)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(fetch_args(served, "ok", dest, *extra, manifest=manifest), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, preexec_fn=limit)


def test_a_download_the_disk_cannot_take_is_the_disks_fault_not_the_networks(served):
    limit = max((served["site"] / name).stat().st_size for name in PROTOCOL) + 1000
    assert (served["site"] / ARCHIVE).stat().st_size > limit
    dest = served["tmp"] / "new" / "lfw"
    line = one_line(fetch_limited(served, dest, limit), code=14)
    assert f"cannot write {ARCHIVE} in {dest.parent}: File too large" in line and "network" not in line
    assert_nothing_left(dest, dest.parent)


def test_an_archive_the_disk_cannot_unpack_is_the_disks_fault_not_the_archives(served):
    src = served["tmp"] / "big"
    (src / "root" / "Some_One").mkdir(parents=True)
    (src / "root" / "Some_One" / "big.jpg").write_bytes(bytes(200_000))  # compresses to a few hundred bytes
    (src / "root" / "Some_One" / "small.jpg").write_bytes(b"x")
    site = served["site"]
    with tarfile.open(site / "big.tgz", "w:gz") as tar:
        tar.add(src / "root", arcname="root")
    manifest = served["tmp"] / "big-manifest.json"
    manifest.write_text(json.dumps(make_manifest("lfw", site, PROTOCOL, site / "big.tgz", "root").__dict__))
    dest = served["tmp"] / "new" / "lfw"
    line = one_line(fetch_limited(served, dest, 100_000, manifest=manifest), code=14)
    assert f"cannot unpack big.tgz in {dest.parent}: File too large" in line
    assert_nothing_left(dest, dest.parent)


def test_a_work_folder_whose_lock_cannot_be_written_is_not_left_behind(served):
    dest = served["tmp"] / "new" / "lfw"
    line = one_line(fetch_limited(served, dest, 1), code=14)
    assert f"cannot write in {dest.parent}" in line
    assert_nothing_left(dest, dest.parent)


def test_the_current_folder_is_refused_as_dest_unless_it_holds_the_dataset(served):
    """A fetch moves its folder into place by renaming: into the current folder it would rename the
    shell's folder aside (`ls` then shows nothing, and a second run was exit 70), and `--dest .`
    failed after the whole download. It is refused before anything is downloaded; a current folder
    that holds the verified dataset is only verified."""
    here = served["tmp"] / "here"
    here.mkdir()
    inode = here.stat().st_ino
    for dest, word in ((".", "is"), ("..", "holds")):  # "..": not empty, so only --force would replace it
        proc = subprocess.run(fetch_args(served, "ok", dest, "--force"), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, cwd=here)
        assert proc.returncode == 14, proc.stderr
        assert f"it {word} the current folder" in proc.stderr and "Traceback" not in proc.stderr
    assert served["requests"] == [] and here.stat().st_ino == inode
    fetched = subprocess.run(fetch_args(served, "ok", "lfw"), capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, cwd=here)
    assert fetched.returncode == 0, fetched.stderr
    again = subprocess.run(fetch_args(served, "ok", "."), capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL, cwd=here / "lfw")
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert not [p for p in served["tmp"].iterdir() if ".fetch-" in p.name]


def test_a_mount_point_is_refused_before_anything_is_downloaded(served):
    shm = "/dev/shm"
    if not (os.path.ismount(shm) and os.access(shm, os.W_OK)):
        pytest.skip(f"{shm} is not a writable mount point here")
    line = one_line(fetch_cli(served, "ok", shm, "--force"), code=14)
    assert f"cannot fetch into {shm}: it is a mount point" in line and f"--dest {shm}/lfw" in line
    assert served["requests"] == []


def test_timeout_inf_waits_as_long_as_it_takes(served):
    dest = served["tmp"] / "new" / "lfw"
    args = [a if a != "10" else "inf" for a in fetch_args(served, "ok", dest)]
    assert "inf" in args
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "images").is_dir()


def test_a_dest_that_is_a_link_is_fetched_into_the_folder_it_links_to_and_stays_a_link(served):
    target = served["tmp"] / "big-disk" / "lfw"
    target.mkdir(parents=True)
    link = served["tmp"] / "lfw"
    link.symlink_to(target)
    proc = fetch_cli(served, "ok", link)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and (target / "images").is_dir()
    assert not [p for p in served["tmp"].rglob("*") if ".fetch-" in p.name]
    again = fetch_cli(served, "ok", link, "--force")
    assert again.returncode == 0, again.stderr
    assert link.is_symlink() and (target / "images").is_dir()


def test_a_dest_that_links_to_nothing_is_refused_before_anything_is_downloaded(served):
    link = served["tmp"] / "lfw"
    link.symlink_to(served["tmp"] / "unmounted" / "lfw")
    line = one_line(fetch_cli(served, "ok", link), code=14)
    assert f"--dest {link} is a link to {served['tmp'] / 'unmounted' / 'lfw'}, which does not exist" in line
    assert served["requests"] == [] and link.is_symlink() and not (served["tmp"] / "unmounted").exists()
