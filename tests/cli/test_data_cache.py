"""`tinyface data cache`: what tinyface keeps between runs, by part and kind, and clearing it
(only what tinyface wrote; never without --yes when nobody can be asked)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyface.data.cache import FaceCache


def run(env, *args):
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "data", "cache", *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **env), stdin=subprocess.DEVNULL)


@pytest.fixture
def caches(tmp_path):
    faces, native, isa = tmp_path / "faces", tmp_path / "native", tmp_path / "isa"
    with FaceCache(faces) as cache:
        cache.put_many({FaceCache.key("lmk", "d", f"h{i}"): np.zeros(11, np.float32) for i in range(3)})
        cache.put_many({FaceCache.key("teacher", "d", f"h{i}"): np.ones(128, np.float32) for i in range(3)})
        cache.put_many({FaceCache.key("mteacher", "d", "h0-h1-0.500"): np.ones(128, np.float32)})
    (faces / "assistant").mkdir()
    np.savez(faces / "assistant" / "k.npz", a=np.zeros((10, 128), np.float32))
    for root in (native, isa):
        for rel in ("bin/abc/program", "tflm-0123/obj.o", "projects/esp32-1/src/main.cc"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"x" * 100)
        (root / "mine.txt").write_text("not tinyface's")  # a shared folder: never deleted
    env = {"TINYFACE_CACHE": str(faces), "TINYFACE_NATIVE_CACHE": str(native), "TINYFACE_ISA_CACHE": str(isa)}
    return env, faces, native, isa


def parts(proc):
    assert proc.returncode == 0, proc.stderr
    return {row["part"]: row for row in json.loads(proc.stdout)["parts"]}


def test_shows_every_part_and_the_face_cache_by_kind(caches):
    env, faces, native, _ = caches
    shown = parts(run(env, "--json"))
    assert list(shown) == ["faces", "assistant", "native", "isa"]
    assert {k: e["entries"] for k, e in shown["faces"]["entries"].items()} == {"lmk": 3, "teacher": 3, "mteacher": 1}
    assert shown["assistant"]["files"] == 1 and shown["assistant"]["bytes"] > 10 * 128 * 4
    assert shown["native"]["files"] == 3 and shown["native"]["bytes"] == 300  # mine.txt is not counted
    text = run(env)
    assert text.returncode == 0 and "teacher" in text.stdout and str(native) in text.stdout


def test_looking_creates_nothing(tmp_path):
    env = {"TINYFACE_CACHE": str(tmp_path / "none"), "TINYFACE_NATIVE_CACHE": str(tmp_path / "n2"),
           "TINYFACE_ISA_CACHE": str(tmp_path / "n3")}
    shown = parts(run(env, "--json"))
    assert all(row["bytes"] == 0 for row in shown.values()) and not list(tmp_path.iterdir())


def test_clearing_asks_for_yes_without_a_terminal_and_deletes_nothing(caches):
    env, faces, native, isa = caches
    proc = run(env, "--clear", "all")
    assert proc.returncode == 2 and "--yes" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (faces / "faces.sqlite").is_file() and (native / "bin").is_dir()
    assert (faces / "assistant" / "k.npz").is_file()


def test_clearing_one_part_deletes_only_what_tinyface_wrote(caches):
    env, faces, native, isa = caches
    proc = run(env, "--clear", "native", "--clear", "assistant", "--yes", "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["freed_bytes"]["native"] == 300
    assert sorted(p.name for p in native.iterdir()) == ["mine.txt"]
    assert not list((faces / "assistant").glob("*.npz"))
    assert (isa / "bin").is_dir() and (faces / "faces.sqlite").is_file()  # the other parts are kept
    proc = run(env, "--clear", "faces", "--yes")
    assert proc.returncode == 0 and "cleared faces" in proc.stderr
    assert not (faces / "faces.sqlite").exists()
    with FaceCache(faces) as cache:  # the next run starts a new one
        assert cache.count() == 0


def test_a_damaged_face_cache_is_shown_and_can_be_cleared(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "faces.sqlite").write_bytes(b"not a database" * 100)
    env = {"TINYFACE_CACHE": str(faces), "TINYFACE_NATIVE_CACHE": str(tmp_path / "n"),
           "TINYFACE_ISA_CACHE": str(tmp_path / "i")}
    shown = run(env)
    assert shown.returncode == 0 and "cannot read the face cache" in shown.stdout and "--clear faces" in shown.stdout
    cleared = run(env, "--clear", "faces", "--yes")
    assert cleared.returncode == 0 and not (faces / "faces.sqlite").exists()


def test_set_names_the_face_cache_as_tinyface_toml_would(caches, tmp_path):
    env, faces, _, _ = caches
    other = tmp_path / "other"
    listed = parts(run(env, "--json", "--set", f"data.cache_dir={json.dumps(str(other))}"))
    assert listed["faces"]["folder"] == str(other) and listed["faces"]["bytes"] == 0  # not $TINYFACE_CACHE's
    bad = run(env, "--set", "data.nope=1")
    assert bad.returncode == 3 and "unknown key 'data.nope'" in bad.stderr
