"""tinyface.data.faces, on a few real LFW images: prepare_faces' crops, its cache (a second run never
calls the aligner; an old "not found" entry is looked at again), the images it skips and names, its
worker processes (the same crops; Ctrl-C and the pool's end without a traceback from each worker);
and cached_alignments: the landmarks prepare_faces cached, read back without an aligner (the
benchmarks' and the prepare_* functions' one way to read them)."""

import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import LFW_TRAIN_IMAGES as TRAIN_IMAGES
from tests.conftest import detector_truth as _truth
from tests.conftest import load_benchmark
from tinyface.data.align import Aligner, ChipAligner
from tinyface.data.cache import FaceCache, content_hash
from tinyface.data.dataset import load_dataset, read_image
from tinyface.data.faces import FaceSpec, cached_alignments, prepare_faces


def _chips(folder, sizes):
    """Face chips (noise; ChipAligner places the landmarks from the size alone) of these sizes."""
    rng = np.random.default_rng(0)
    paths = []
    for k, size in enumerate(sizes):
        path = folder / f"chip{k}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_cached_alignments_are_the_ones_prepare_faces_found_and_none_where_it_found_none(tmp_path):
    (tmp_path / "other").mkdir()
    aligned, not_aligned = _chips(tmp_path, [100, 120]), _chips(tmp_path / "other", [90])[0]
    spec = FaceSpec(crop_size=32, channels=1, source_chip_padding=0.25)  # no detector: ChipAligner
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces(aligned, spec, cache, workers=1)
        assert faces.ok.all()
        got = cached_alignments([*aligned, not_aligned], spec, cache)
        assert got[2] is None
        for path, alignment in zip(aligned, got[:2], strict=True):
            expected = ChipAligner(0.25).detect(read_image(path))
            assert np.array_equal(alignment.landmarks, expected.landmarks)
            assert (alignment.detected, alignment.method) == (expected.detected, expected.method) == (True, "chip")
        # the caller's hashes give the same, and only the landmark settings matter, not the crop's
        hashes = [content_hash(p.read_bytes()) for p in aligned]
        again = cached_alignments(aligned, FaceSpec(crop_size=64, source_chip_padding=0.25), cache, hashes)
        assert all(np.array_equal(a.landmarks, b.landmarks) for a, b in zip(again, got[:2], strict=True))
        # landmarks found another way (the photo aligner) are other entries
        assert cached_alignments(aligned, FaceSpec(), cache) == [None, None]
        assert cached_alignments([], spec, cache) == []


# --- prepare_faces: crops, the cache, the images it skips --------------------------------------------

class MustNotAlign(Aligner):
    """An aligner that fails the test if it is used: proves the cache answered."""

    def detect(self, rgb):
        raise AssertionError("the aligner was called although the cache holds this image")


def test_aligned_crops_shape_dtype_and_content(small_images, tmp_path):
    with FaceCache(tmp_path / "cache") as cache:
        gray = prepare_faces(small_images, FaceSpec(crop_size=48, channels=1), cache, workers=1)
        rgb = prepare_faces(small_images, FaceSpec(crop_size=64, channels=3), cache, workers=1)
    assert gray.crops.shape == (len(small_images), 48, 48, 1) and gray.crops.dtype == np.uint8
    assert rgb.crops.shape == (len(small_images), 64, 64, 3) and rgb.crops.dtype == np.uint8
    assert gray.ok.all() and gray.detected.all() and gray.n_fallback == 0 and not gray.skipped
    assert gray.computed == len(small_images)
    for crop in gray.crops:
        assert crop.std() > 10  # a face, not a blank or saturated chip
    # the gray crop is the luminance of the RGB one at the same geometry
    same = prepare_faces(small_images[:1], FaceSpec(crop_size=64, channels=1), FaceCache(tmp_path / "cache"), workers=1)
    lum = rgb.crops[0].astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(lum - same.crops[0, :, :, 0]).mean() < 2.0


def test_second_run_reads_the_cache_and_never_calls_the_aligner(small_images, tmp_path):
    spec = FaceSpec(crop_size=48, channels=1)
    with FaceCache(tmp_path / "cache") as cache:
        first = prepare_faces(small_images, spec, cache, workers=1)
    with FaceCache(tmp_path / "cache") as cache:  # a new process would reopen it the same way
        second = prepare_faces(small_images, spec, cache, workers=1, aligner_factory=MustNotAlign)
    assert second.computed == 0
    assert np.array_equal(first.crops, second.crops) and np.array_equal(first.detected, second.detected)
    # keyed by content: a renamed copy is a hit too
    moved = tmp_path / "moved.jpg"
    shutil.copy2(small_images[0], moved)
    with FaceCache(tmp_path / "cache") as cache:
        again = prepare_faces([moved], spec, cache, workers=1, aligner_factory=MustNotAlign)
    assert again.computed == 0 and np.array_equal(again.crops[0], first.crops[0])
    # a new crop size re-cuts the crops from the cached landmarks, still without the detector
    with FaceCache(tmp_path / "cache") as cache:
        bigger = prepare_faces(small_images, FaceSpec(crop_size=64, channels=1), cache, workers=1,
                               aligner_factory=MustNotAlign)
    assert bigger.computed == len(small_images) and bigger.crops.shape[1:] == (64, 64, 1) and bigger.ok.all()


def test_a_changed_detector_setting_is_a_cache_miss(small_images, tmp_path):
    with FaceCache(tmp_path / "cache") as cache:
        prepare_faces(small_images[:1], FaceSpec(detector_upsample=1), cache, workers=1)
        with pytest.raises(AssertionError, match="aligner was called"):
            prepare_faces(small_images[:1], FaceSpec(detector_upsample=0), cache, workers=1,
                          aligner_factory=MustNotAlign)


def test_unreadable_images_are_skipped_named_and_not_cached(small_images, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(small_images[0].read_bytes()[:2000])  # truncated JPEG
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces([small_images[0], bad, tmp_path / "absent.jpg"], FaceSpec(), cache, workers=1)
        assert list(faces.ok) == [True, False, False]
        reasons = {s.path.name: s.reason for s in faces.skipped}
        assert "truncated" in reasons["bad.jpg"] and "cannot read file" in reasons["absent.jpg"]
        assert not faces.crops[1].any()
        assert cache.count("crop/") == 1


def test_an_old_not_found_cache_entry_is_looked_at_again(lfw_dir, tmp_path):
    from tinyface.data.cache import content_hash

    rgb = read_image(lfw_dir / "images" / TRAIN_IMAGES[0])
    box, _ = _truth(rgb)
    path = tmp_path / "tight.png"
    from PIL import Image

    Image.fromarray(load_benchmark("hard_faces").tight_crop(rgb, box)).save(path)
    spec = FaceSpec()
    h = content_hash(path.read_bytes())
    with FaceCache(tmp_path / "cache") as cache:
        # what the old aligner cached for a face it did not find: zeros and 0.0, a fallback crop
        cache.put_many({FaceCache.key("lmk", spec.landmark_digest(), h): np.zeros(11, np.float32),
                        FaceCache.key("crop", spec.crop_digest(), h): np.zeros((48, 48, 1), np.uint8)})
        faces = prepare_faces([path], spec, cache, workers=1)
        assert faces.computed == 1 and faces.usable.all() and faces.methods[0] != "fallback"
        assert faces.crops[0].std() > 10  # re-cut from the new landmarks, not the cached zeros
        again = prepare_faces([path], spec, cache, workers=1)
        assert again.computed == 0 and again.methods == faces.methods


def test_unusable_images_are_listed_by_name_with_the_reason(lfw_dir, tmp_path):
    from PIL import Image

    flat = tmp_path / "wall.png"
    Image.fromarray(np.full((100, 100, 3), 90, np.uint8)).save(flat)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    good = lfw_dir / "images" / TRAIN_IMAGES[0]
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces([good, flat, bad], FaceSpec(), cache, workers=1)
    assert list(faces.usable) == [True, False, False]
    reasons = dict(faces.unusable())
    assert reasons[flat] == "no face found" and "not a readable image" in reasons[bad]
    assert faces.method_counts() == {"detector": 1, "fallback": 1}


# --- worker processes ---------------------------------------------------------------------------

def test_worker_processes_give_the_same_crops(make_dataset, tmp_path):
    root = make_dataset({"Adrien_Brody": 6, "Alejandro_Toledo": 6})
    paths = [im.path for im in load_dataset(root).images]
    with FaceCache(tmp_path / "c1") as c1, FaceCache(tmp_path / "c2") as c2:
        done = []
        pooled = prepare_faces(paths, FaceSpec(), c1, workers=2, progress=done.append)
        serial = prepare_faces(paths, FaceSpec(), c2, workers=1)
    assert len(paths) > 8  # more than the in-process threshold, so a pool really ran
    assert sum(done) == len(paths)
    assert np.array_equal(pooled.crops, serial.crops) and pooled.ok.all()


# A real pool under the CLI's signal handlers (console.catch_interrupts, inherited by the fork).
# Each job says which process runs it and whether SIGINT is ignored there, then waits at a gate
# (a file the test creates), so the test knows both workers are up and busy without sleeping.
POOL_JOBS = 12  # more than _run_jobs' in-process threshold (8): a real fork pool runs them
POOL_SCRIPT = (
    "import os, signal, sys, time\n"
    "from tinyface import console\n"
    "from tinyface.data.faces import _run_jobs\n"
    "console.catch_interrupts()\n"  # as the CLI does: its handlers are inherited by the fork
    "gate, n = sys.argv[1], int(sys.argv[2])\n"
    "def job(i):\n"
    "    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
    "    os.write(1, f'job {i} pid {os.getpid()} sigint-ignored {ignored}\\n'.encode())\n"  # one write: whole lines
    "    deadline = time.monotonic() + 60\n"
    "    while not os.path.exists(gate) and time.monotonic() < deadline:\n"
    "        time.sleep(0.01)\n"
    "    return i, 'no face'\n"
    "got = []\n"
    "print('started', os.getpid(), flush=True)\n"
    "try:\n"
    "    _run_jobs(list(range(n)), job, lambda i, r: got.append(i), workers=2, chunksize=1)\n"
    "except KeyboardInterrupt:\n"
    "    print('interrupted', flush=True)\n"
    "else:\n"
    "    print('done', ','.join(map(str, sorted(got))), flush=True)\n")


def _start_pool(tmp_path):
    """The pool script in its own process group (as a terminal's foreground job), SIGINT at its
    default as a terminal leaves it; returns (process, gate path)."""
    import subprocess
    import sys

    from tests.conftest import sigint_as_a_terminal_sends_it

    gate = tmp_path / "gate"
    proc = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT, str(gate), str(POOL_JOBS)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_a_terminal_sends_it)
    return proc, gate


def _busy_workers(proc, lines: list[str]) -> dict[int, bool]:
    """Read the script's output until two distinct worker processes have each started a job
    (and now wait at the gate); returns {worker pid: SIGINT ignored there}. A watchdog ends the
    script (so that the read ends) if that does not happen within 60 s."""
    import os
    import signal
    import threading

    def kill():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    watchdog = threading.Timer(60, kill)
    watchdog.start()
    workers: dict[int, bool] = {}
    try:
        while len(workers) < 2:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"the pool script ended before two workers started a job: {lines} {proc.stderr.read()}")
            lines.append(line.strip())
            words = line.split()
            if words[0] == "job":
                workers[int(words[3])] = words[5] == "True"
    finally:
        watchdog.cancel()
    assert proc.pid not in workers  # the jobs ran in the pool's workers, not in the parent
    return workers


def _finish(proc, timeout_s: float = 60) -> tuple[str, str]:
    import os
    import signal
    import subprocess

    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the pool did not finish within {timeout_s:g} s (a job lost with its worker?)\n"
                    f"stdout: {out[-2000:]}\nstderr: {err[-3000:]}")


def test_pool_workers_ignore_ctrl_c_and_finish_every_job_when_sent_it(tmp_path):
    """A terminal's Ctrl-C reaches every process of the group: the workers ignore it (the parent
    alone stops and terminates the pool), so the user sees one interrupt, not one per worker.
    Here SIGINT goes to the two busy workers only: they must survive it and every job completes.
    (A worker that took it would die with a KeyboardInterrupt traceback and its job be lost.)"""
    import os
    import signal

    proc, gate = _start_pool(tmp_path)
    lines: list[str] = []
    workers = _busy_workers(proc, lines)
    assert all(workers.values()), f"SIGINT is not ignored in a pool worker: {lines}"
    for pid in workers:
        os.kill(pid, signal.SIGINT)  # each is in a job, sleeping at the gate
    gate.touch()
    out, err = _finish(proc)
    lines += out.splitlines()
    assert lines[-1] == "done " + ",".join(map(str, range(POOL_JOBS))), (lines, err[-3000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    ran_in = {int(line.split()[3]) for line in lines if line.startswith("job ")}
    assert set(workers) <= ran_in and proc.pid not in ran_in


def test_ctrl_c_stops_the_worker_pool_without_a_traceback_from_each_worker(tmp_path):
    """Ctrl-C as a terminal sends it (to the whole process group) while both workers are busy:
    the parent says it was interrupted, once, and no worker prints a traceback. (Whether a worker
    that took the SIGINT prints its traceback before the pool terminates it is a race: the test
    above is the deterministic check of the workers' part.)"""
    import os
    import signal

    proc, gate = _start_pool(tmp_path)
    lines: list[str] = []
    workers = _busy_workers(proc, lines)
    assert all(workers.values()), f"SIGINT is not ignored in a pool worker: {lines}"
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole group; the gate stays shut
    out, err = _finish(proc)
    assert out.strip() == "interrupted", (lines, out, err[-3000:])
    assert "Traceback" not in err and "ForkPoolWorker" not in err, err[-3000:]
    for pid in workers:  # terminated with the pool, not left running
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid


def test_a_pool_that_ends_normally_leaves_no_traceback_from_its_workers():
    """The pool terminates its workers with SIGTERM at its end; with the CLI's SIGTERM handler
    inherited by the fork, each worker printed a KeyboardInterrupt traceback (most runs)."""
    import subprocess
    import sys

    script = (
        "from tinyface import console\n"
        "from tinyface.data.faces import _run_jobs\n"
        "console.catch_interrupts()\n"
        "def quick(job):\n"
        "    return job, 'no face'\n"
        "for _ in range(5):\n"
        "    _run_jobs(list(range(50)), quick, lambda i, r: None, workers=2, chunksize=1)\n"
        "print('done', flush=True)\n")
    # The script takes about a second. It hung in about one run in ten while SIGTERM could reach a
    # worker in its fork (test_console's fork test): a pool that never ends fails here, and its
    # workers are killed with it (its own session), not left blocked behind it.
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out, err = _finish(proc, timeout_s=120)
    assert proc.returncode == 0 and out.strip() == "done", err[-2000:]
    assert "Traceback" not in err and "ForkPoolWorker" not in err, err[-2000:]
