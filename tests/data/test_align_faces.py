"""Face alignment and the crop cache, on a few real LFW images."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyface.data.align import (FALLBACK_CENTER_Y, FALLBACK_SIDE, Aligner, Alignment, chip_affine, cut_chip,
                                 map_points)
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import load_dataset, read_image
from tinyface.data.faces import FaceSpec, prepare_faces

# One of the 36 LFW images in which dlib's HOG detector finds no face (even upsampled); the
# equalised retry finds it (see test_hard_faces.py for the rescue steps).
NO_FACE_IMAGE = "Abdoulaye_Wade/Abdoulaye_Wade_0003.jpg"
REPO = Path(__file__).resolve().parents[2]


def upside_down(lfw_dir, tmp_path):
    """A real photo with no upright face in it: an LFW image turned upside down."""
    from PIL import Image

    path = tmp_path / "upside_down.png"
    Image.fromarray(read_image(lfw_dir / "images" / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg")[::-1]).save(path)
    return path


class MustNotAlign(Aligner):
    """An aligner that fails the test if it is used: proves the cache answered."""

    def detect(self, rgb):
        raise AssertionError("the aligner was called although the cache holds this image")


@pytest.fixture
def images(small_dataset):
    return [im.path for im in load_dataset(small_dataset).images]


def test_aligned_crops_shape_dtype_and_content(images, tmp_path):
    with FaceCache(tmp_path / "cache") as cache:
        gray = prepare_faces(images, FaceSpec(crop_size=48, channels=1), cache, workers=1)
        rgb = prepare_faces(images, FaceSpec(crop_size=64, channels=3), cache, workers=1)
    assert gray.crops.shape == (len(images), 48, 48, 1) and gray.crops.dtype == np.uint8
    assert rgb.crops.shape == (len(images), 64, 64, 3) and rgb.crops.dtype == np.uint8
    assert gray.ok.all() and gray.detected.all() and gray.n_fallback == 0 and not gray.skipped
    assert gray.computed == len(images)
    for crop in gray.crops:
        assert crop.std() > 10  # a face, not a blank or saturated chip
    # the gray crop is the luminance of the RGB one at the same geometry
    same = prepare_faces(images[:1], FaceSpec(crop_size=64, channels=1), FaceCache(tmp_path / "cache"), workers=1)
    lum = rgb.crops[0].astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(lum - same.crops[0, :, :, 0]).mean() < 2.0


def test_landmarks_land_inside_the_crop_where_a_face_has_them(images):
    size, padding = 48, 0.25
    aligner = Aligner(upsample=1)
    for path in images:
        rgb = read_image(path)
        alignment = aligner.detect(rgb)
        assert alignment.detected, path
        assert alignment.landmarks.shape == (5, 2)
        matrix = chip_affine(alignment, rgb.shape[:2], size, padding)
        pts = map_points(matrix, alignment.landmarks)
        assert ((pts >= 0) & (pts <= size - 1)).all(), (path, pts)
        # dlib's 5 points: two corners of each eye, then the nose below them, centered
        eyes_y = pts[:4, 1].mean()
        assert pts[4, 1] > eyes_y + 0.1 * size
        assert abs(pts[4, 0] - (size - 1) / 2) < 0.15 * size
        # a similarity transform: the eyes end up level after alignment
        left_eye, right_eye = pts[2:4].mean(axis=0), pts[0:2].mean(axis=0)
        assert abs(left_eye[1] - right_eye[1]) < 0.05 * size
        # the chip really is that transform of the photo
        assert cut_chip(rgb, alignment, size, padding, 3).shape == (size, size, 3)


def test_an_lfw_image_the_detector_misses_is_found_equalised(lfw_dir):
    rgb = read_image(lfw_dir / "images" / NO_FACE_IMAGE)
    assert not Aligner(upsample=1, rescue=False).detect(rgb).detected
    alignment = Aligner(upsample=1).detect(rgb)
    assert alignment.usable and alignment.method == "detector+equalised"


def test_no_face_found_uses_the_documented_centered_crop_and_is_counted(lfw_dir, images, tmp_path):
    src = upside_down(lfw_dir, tmp_path)
    rgb = read_image(src)
    h, w = rgb.shape[:2]
    assert not Aligner(upsample=1).detect(rgb).detected
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces([src, *images[:2]], FaceSpec(crop_size=48), cache, workers=1)
    assert faces.ok.all()
    assert list(faces.detected) == [False, True, True]
    assert faces.n_fallback == 1 and faces.methods == ["fallback", "detector", "detector"]
    # the fallback geometry: a square of FALLBACK_SIDE x the shorter side (at padding 0.25),
    # centered at (w/2, FALLBACK_CENTER_Y h), mapped onto the whole chip
    none = Alignment(np.zeros((5, 2), np.float32), False)
    matrix = chip_affine(none, (h, w), 48, 0.25)
    center = map_points(matrix, [[0.5 * w, FALLBACK_CENTER_Y * h]])[0]
    assert np.allclose(center, [23.5, 23.5])
    side = FALLBACK_SIDE * min(h, w)
    corners = map_points(matrix, [[0.5 * w - side / 2, FALLBACK_CENTER_Y * h - side / 2],
                                  [0.5 * w + side / 2, FALLBACK_CENTER_Y * h + side / 2]])
    assert np.allclose(corners, [[0, 0], [47, 47]], atol=1e-6)
    # and the crop is that region of the photo, not something else
    box = (0.5 * w - side / 2, FALLBACK_CENTER_Y * h - side / 2, 0.5 * w + side / 2, FALLBACK_CENTER_Y * h + side / 2)
    from PIL import Image

    expected = np.asarray(Image.fromarray(rgb).convert("L").crop(tuple(round(v) for v in box)).resize((48, 48)), float)
    got = faces.crops[0, :, :, 0].astype(float)
    assert np.corrcoef(expected.ravel(), got.ravel())[0, 1] > 0.9


def test_second_run_reads_the_cache_and_never_calls_the_aligner(images, tmp_path):
    spec = FaceSpec(crop_size=48, channels=1)
    with FaceCache(tmp_path / "cache") as cache:
        first = prepare_faces(images, spec, cache, workers=1)
    with FaceCache(tmp_path / "cache") as cache:  # a new process would reopen it the same way
        second = prepare_faces(images, spec, cache, workers=1, aligner_factory=MustNotAlign)
    assert second.computed == 0
    assert np.array_equal(first.crops, second.crops) and np.array_equal(first.detected, second.detected)
    # keyed by content: a renamed copy is a hit too
    moved = tmp_path / "moved.jpg"
    shutil.copy2(images[0], moved)
    with FaceCache(tmp_path / "cache") as cache:
        again = prepare_faces([moved], spec, cache, workers=1, aligner_factory=MustNotAlign)
    assert again.computed == 0 and np.array_equal(again.crops[0], first.crops[0])
    # a new crop size re-cuts the crops from the cached landmarks, still without the detector
    with FaceCache(tmp_path / "cache") as cache:
        bigger = prepare_faces(images, FaceSpec(crop_size=64, channels=1), cache, workers=1,
                               aligner_factory=MustNotAlign)
    assert bigger.computed == len(images) and bigger.crops.shape[1:] == (64, 64, 1) and bigger.ok.all()


def test_a_changed_detector_setting_is_a_cache_miss(images, tmp_path):
    with FaceCache(tmp_path / "cache") as cache:
        prepare_faces(images[:1], FaceSpec(detector_upsample=1), cache, workers=1)
        with pytest.raises(AssertionError, match="aligner was called"):
            prepare_faces(images[:1], FaceSpec(detector_upsample=0), cache, workers=1, aligner_factory=MustNotAlign)


def test_unreadable_images_are_skipped_named_and_not_cached(images, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(images[0].read_bytes()[:2000])  # truncated JPEG
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces([images[0], bad, tmp_path / "absent.jpg"], FaceSpec(), cache, workers=1)
        assert list(faces.ok) == [True, False, False]
        reasons = {s.path.name: s.reason for s in faces.skipped}
        assert "truncated" in reasons["bad.jpg"] and "cannot read file" in reasons["absent.jpg"]
        assert not faces.crops[1].any()
        assert cache.count("crop/") == 1


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


def test_an_unusable_cache_is_a_data_error_that_says_what_to_do(tmp_path):
    from tinyface.errors import ConfigError, DataError

    (tmp_path / "file").write_text("x")
    # a cache folder set under a file is a bad setting, as `data cache` says it (ConfigError)
    with pytest.raises(ConfigError, match="is not a folder") as exc:
        FaceCache(tmp_path / "file" / "cache")
    assert "set TINYFACE_CACHE" in exc.value.one_line()  # the hint says what to do
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "faces.sqlite").write_bytes(b"not sqlite" * 100)
    with pytest.raises(DataError, match="not a database"):
        FaceCache(tmp_path / "bad")


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
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "ForkPoolWorker" not in proc.stderr, proc.stderr[-2000:]


# --- the names the benchmarks use: public and documented ----------------------------------------------
# codegen.project.template_environment, align.dlib_models, align.luminance and Aligner.find are
# public (no benchmark uses a private name of tinyface: tests/benchmarks/test_every_script.py).

def test_the_names_benchmarks_use_are_public_and_documented():
    import jinja2

    from tinyface.codegen.project import template_environment
    from tinyface.data.align import Aligner, dlib_models

    env = template_environment(REPO / "firmware")
    assert env.undefined is jinja2.StrictUndefined and env.autoescape is False
    assert template_environment.__doc__ and dlib_models.__doc__ and Aligner.find.__doc__
    detector, predictor = dlib_models()
    assert dlib_models() == (detector, predictor)  # loaded once per process


def test_find_is_detect_before_its_refinement(lfw_dir):
    """On a photo the detector finds, detect keeps find's landmarks (the refinement is for rescued,
    underexposed faces)."""
    from tinyface.data.align import Aligner
    from tinyface.data.dataset import read_image

    rgb = read_image(lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    aligner = Aligner(1)
    found, detected = aligner.find(rgb), aligner.detect(rgb)
    assert found.method == detected.method == "detector"
    assert np.array_equal(found.landmarks, detected.landmarks)
