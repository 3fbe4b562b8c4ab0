"""tinyface.data.faces, on a few real LFW images: prepare_faces' crops, its cache (a second run never
calls the aligner; an old "not found" entry is looked at again), the images it skips and names, its
worker processes (the same crops; Ctrl-C and the pool's end without a traceback from each worker);
and cached_alignments: the landmarks prepare_faces cached, read back without an aligner (the
benchmarks' and the prepare_* functions' one way to read them). Then FaceSpec (for_model, the cut of
the teacher's chips) and the training views the build adds: the teacher's views (prepare_views),
the hard views (prepare_hard_views) and the teacher's mixes (prepare_mixes)."""

import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import LFW_TRAIN_IMAGES as TRAIN_IMAGES, detector_truth as _truth, gul_photos, load_benchmark, luma
from tinyface import config
from tinyface.data.align import Aligner, ChipAligner
from tinyface.data.cache import FaceCache, content_hash
from tinyface.data.dataset import load_dataset, read_image
from tinyface.data.faces import (
    FaceSpec,
    blend,
    cached_alignments,
    hard_kinds,
    plan_mixes,
    prepare_faces,
    prepare_hard_views,
    prepare_mixes,
    prepare_views,
)
from tinyface.data.hard_photos import darken
from tinyface.errors import DataError
from tinyface.model.bundle import ModelMeta


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


# --- FaceSpec -----------------------------------------------------------------------------------------
# for_model, the one way to cut faces for a model (issue 14, item 2), and cut_teacher_chip, the one
# cut of the teacher's chips.

def _meta(shape, padding=0.3):
    return ModelMeta(input_shape=shape, input_scale=1.0, input_zero_point=-128, output_scale=0.1,
                     output_zero_point=0, embedding_dim=128, threshold=0.5, crop_padding=padding)


def test_for_model_takes_the_crop_from_model_json_and_the_retry_from_the_settings():
    settings = config.load(overrides={"data": {"detector_upsample": 2, "crop_size": 32, "padding": 0.1}})
    spec = FaceSpec.for_model(_meta([1, 64, 64, 3]), settings)
    # the model decides the crop (not data.crop_size / data.padding, which are the build's)
    assert (spec.crop_size, spec.channels, spec.padding) == (64, 3, 0.3)
    assert spec.detector_upsample == 2
    assert not spec.teacher


def test_for_model_without_settings_uses_the_default_retry():
    assert FaceSpec.for_model(_meta([1, 48, 48, 1])).detector_upsample == config.DataSettings().detector_upsample


def test_a_model_with_a_non_square_input_is_refused():
    with pytest.raises(DataError, match="48x40"):
        FaceSpec.for_model(_meta([1, 48, 40, 1]))


def _face_photo(seed: int = 0):
    """A photo (noise: the cut is geometry) and the landmarks of the face it holds."""
    from tinyface.data.align import Alignment, chip_landmarks

    rgb = np.random.default_rng(seed).integers(0, 256, (180, 160, 3), dtype=np.uint8)
    # the template of a 120-pixel chip at padding 0.25, moved into the photo: a face away from its edges
    return rgb, Alignment(chip_landmarks(120, 120, 0.25) + np.float32([20, 30]), True, "detector")


def test_the_teacher_chip_is_dlibs_150_pixel_chip_at_padding_025_from_the_teacher_settings():
    from tinyface.data.align import Perturbation, cut_chip
    from tinyface.teacher.dlib_net import CHIP_SIZE

    rgb, alignment = _face_photo()
    spec = FaceSpec()
    chip = spec.cut_teacher_chip(rgb, alignment)
    assert (spec.teacher_chip_size, spec.teacher_padding) == (150, 0.25) == (
        config.TeacherSettings.chip_size, config.TeacherSettings.chip_padding)
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3) and chip.dtype == np.uint8  # what the network reads
    assert np.array_equal(chip, cut_chip(rgb, alignment, 150, 0.25, 3))
    view = Perturbation(scale=1.05, shift_x=0.02)
    assert np.array_equal(spec.cut_teacher_chip(rgb, alignment, view), cut_chip(rgb, alignment, 150, 0.25, 3, view))
    assert not np.array_equal(spec.cut_teacher_chip(rgb, alignment, view), chip)


def test_the_teacher_chip_follows_the_settings_and_not_the_students_crop():
    from tinyface.data.align import cut_chip

    rgb, alignment = _face_photo(1)
    settings = config.load(overrides={"teacher": {"chip_padding": 0.3}, "data": {"crop_size": 48, "padding": 0.1}})
    chip = FaceSpec.from_settings(settings, teacher=True).cut_teacher_chip(rgb, alignment)
    assert np.array_equal(chip, cut_chip(rgb, alignment, 150, 0.3, 3))
    assert not np.array_equal(chip, FaceSpec().cut_teacher_chip(rgb, alignment))


# --- teacher views ------------------------------------------------------------------------------------
# prepare_views: one perturbation cut at two sizes shows the same face (tests/data/test_align.py), the
# teacher embeds that very view, and views are deterministic and cached.

def test_views_are_deterministic_cached_and_embedded_per_view(lfw_dir, tmp_path):
    paths = gul_photos(lfw_dir)
    spec = FaceSpec(crop_size=32, channels=1, padding=0.1, teacher=True)
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces(paths, spec, cache, workers=1)
        done = []
        ok, crops, teacher = prepare_views(paths, spec, cache, 2, workers=1, progress=done.append)
        assert sum(done) == 3  # one per image
        assert ok.all() and crops.shape == (3, 2, 32, 32, 1) and teacher.shape == (3, 2, 128)
        # each view differs from the original crop and from the other view
        assert not np.array_equal(crops[0, 0], faces.crops[0]) and not np.array_equal(crops[0, 0], crops[0, 1])
        # the teacher sees the view: close to, but not the same as, the original's embedding
        cos = np.sum(teacher[:, 0] * faces.teacher, axis=1)
        assert np.all(cos > 0.9) and np.all(cos < 0.99999)

        calls = []

        def forbidden(job):
            calls.append(job)
            raise AssertionError("the second run must come from the cache")

        import tinyface.data.faces as faces_module

        original = faces_module._process_views
        faces_module._process_views = forbidden
        try:
            done = []
            ok2, crops2, teacher2 = prepare_views(paths, spec, cache, 2, workers=1, progress=done.append)
        finally:
            faces_module._process_views = original
        assert not calls and np.array_equal(crops, crops2) and np.array_equal(teacher, teacher2)
        assert sum(done) == 3  # cached images count too: the pass's progress reaches its total


# --- hard views ---------------------------------------------------------------------------------------
# prepare_hard_views (distill.relit_views and tight_views): hard copies of the training photos
# (tinyface.data.hard_photos), cut as a user's photo is cut.

def test_relit_crops_are_brightened_as_the_pipeline_brightens_and_cached(lfw_dir, tmp_path, monkeypatch):
    from tinyface.data import faces

    paths = gul_photos(lfw_dir)
    spec = FaceSpec(crop_size=48, channels=1, padding=0.1)
    cache = FaceCache(tmp_path / "cache")
    plain = prepare_faces(paths, spec, cache, workers=1)
    assert plain.ok.all()
    ok, crops = prepare_hard_views(paths, spec, cache, hard_kinds(2, 0), workers=1)
    assert ok.all() and crops.shape == (3, 2, 48, 48, 1)
    for i, path in enumerate(paths):
        raw_dark = darken(read_image(path), 1)  # a very dark photo: brightest pixels about 25/255
        assert np.percentile(luma(raw_dark), 99.5) < 40
        # the relit crop of the very dark view was brightened back: its light is that of a usable face
        assert np.percentile(crops[i, 0], 99) > 120
        assert not np.array_equal(crops[i, 0], plain.crops[i]) and not np.array_equal(crops[i, 1], plain.crops[i])

    def never(job):
        raise AssertionError("hard crops were cut again instead of read from the cache")

    monkeypatch.setattr(faces, "_process_hard", never)
    ok2, crops2 = prepare_hard_views(paths, spec, cache, hard_kinds(2, 0), workers=1)
    assert ok2.all() and np.array_equal(crops2, crops)


# --- teacher mixes ------------------------------------------------------------------------------------
# plan_mixes, blend, prepare_mixes: blends of two people, planned deterministically, embedded by the
# teacher on the blended chip, and cached.

def test_a_plan_is_seeded_and_always_pairs_two_different_people():
    labels = ["a", "a", "a", "b", "c", "c"]
    plan = plan_mixes(labels, 3, seed=7)
    assert len(plan) == 18 and plan == plan_mixes(labels, 3, seed=7) and plan != plan_mixes(labels, 3, seed=8)
    assert all(labels[m.a] != labels[m.b] and 0.2 <= m.lam <= 0.8 for m in plan)
    assert [m.a for m in plan[:6]] == list(range(6))  # every image gets each of its mixes


def test_more_mixes_extend_the_plan_so_the_cached_ones_are_reused():
    labels = ["a", "b", "b", "c", "d"] * 3
    assert plan_mixes(labels, 5, seed=1)[:2 * len(labels)] == plan_mixes(labels, 2, seed=1)


def test_blend_is_the_rounded_weighted_sum():
    a, b = np.full((2, 2, 1), 200, np.uint8), np.full((2, 2, 1), 11, np.uint8)
    assert blend(a, b, 0.25).flat[0] == round(0.25 * 200 + 0.75 * 11)
    assert np.array_equal(blend(a, b, 1.0), a)


def test_the_teacher_embeds_the_blend_once_and_later_runs_read_the_cache(lfw_dir, tmp_path):
    paths = [sorted((lfw_dir / "images" / name).glob("*.jpg"))[0] for name in ("Abdullah_Gul", "Aaron_Eckhart")]
    spec = FaceSpec(crop_size=32, channels=1, padding=0.1, teacher=True)
    plan = plan_mixes(["Abdullah_Gul", "Aaron_Eckhart"], 1, seed=0)
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces(paths, spec, cache, workers=1)
        ok, teacher = prepare_mixes(paths, plan, spec, cache, workers=1)
        assert ok.all() and teacher.shape == (2, 128)
        for m, emb in zip(plan, teacher, strict=True):
            # the blend's embedding lies between the two people's, nearer the heavier one
            near, far = (m.a, m.b) if m.lam > 0.5 else (m.b, m.a)
            assert emb @ faces.teacher[near] > emb @ faces.teacher[far]
            assert emb @ faces.teacher[near] < 0.9999

        import tinyface.data.faces as faces_module

        original = faces_module._process_chip
        faces_module._process_chip = lambda job: (_ for _ in ()).throw(AssertionError("must come from the cache"))
        try:
            ok2, teacher2 = prepare_mixes(paths, plan, spec, cache, workers=1)
        finally:
            faces_module._process_chip = original
        assert ok2.all() and np.array_equal(teacher, teacher2)


def test_mixes_over_more_images_than_fit_in_memory_come_in_chunks_with_the_same_result(lfw_dir, tmp_path, monkeypatch):
    import tinyface.data.faces as faces_module

    names = ("Abdullah_Gul", "Aaron_Eckhart", "Adrien_Brody")
    paths = [sorted((lfw_dir / "images" / name).glob("*.jpg"))[0] for name in names]
    spec = FaceSpec(crop_size=32, channels=1, padding=0.1, teacher=True)
    plan = plan_mixes(list(names), 2, seed=3)
    with FaceCache(tmp_path / "all") as cache:
        prepare_faces(paths, spec, cache, workers=1)
        ok, teacher = prepare_mixes(paths, plan, spec, cache, workers=1)
    # two images at a time: each chunk is the mixes of one pair, all of them in order
    chunks = list(faces_module._chunks_by_images(list(range(len(plan))), plan, 2))
    assert len(chunks) > 1 and sum(chunks, []) == list(range(len(plan)))
    assert all(len({i for k in c for i in (plan[k].a, plan[k].b)}) == 2 for c in chunks)
    monkeypatch.setattr(faces_module, "MIX_CHIPS_IN_MEMORY", 2)
    with FaceCache(tmp_path / "chunked") as cache:
        prepare_faces(paths, spec, cache, workers=1)
        done = []
        ok2, teacher2 = prepare_mixes(paths, plan, spec, cache, workers=1, progress=done.append)
        assert sum(done) == len(plan)
        done = []
        prepare_mixes(paths, plan, spec, cache, workers=1, progress=done.append)
        assert sum(done) == len(plan)  # all cached: the pass still reaches its total
    assert ok.all() and ok2.all() and np.allclose(teacher, teacher2, atol=1e-6)


THREAD_SIGINT_SCRIPT = (
    "import os, signal, sys, threading, time\n"
    "from tinyface import console\n"
    "from tinyface.data.faces import _run_jobs\n"
    "console.catch_interrupts()\n"
    "marks, n = sys.argv[1], int(sys.argv[2])\n"
    "def job(i):\n"
    "    open(f'{marks}.{i}', 'w').close()\n"
    "    threading.Event().wait()\n"  # set by nobody: no job ever ends, only an interrupt ends the pool
    "    return i, 'no face'\n"
    "def ctrl_c_to_this_thread():\n"  # the kernel gives a process's signal to any thread that takes it
    "    while sum(os.path.exists(f'{marks}.{i}') for i in range(n)) < 2:\n"
    "        time.sleep(0.01)\n"
    "    time.sleep(0.2)\n"  # the main thread waits on the pool's results by now
    "    signal.pthread_kill(threading.get_ident(), signal.SIGINT)\n"
    "threading.Thread(target=ctrl_c_to_this_thread, daemon=True).start()\n"
    "try:\n"
    "    _run_jobs(list(range(n)), job, lambda i, r: None, workers=2, chunksize=1)\n"
    "except KeyboardInterrupt:\n"
    "    print('interrupted', flush=True)\n"
    "else:\n"
    "    print('done', flush=True)\n")


def test_a_ctrl_c_that_reaches_another_thread_still_stops_the_pool_at_once(tmp_path):
    # a CI run waited 60 s for a pool after Ctrl-C (test above): the main thread, blocked on the
    # pool's results with no timeout, never woke for a SIGINT the kernel gave one of the pool's
    # threads; Python ran the handler only once a result came
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import sigint_as_a_terminal_sends_it

    # the jobs never end: a pool that waits for one to end before it sees the interrupt never stops
    proc = subprocess.Popen([sys.executable, "-c", THREAD_SIGINT_SCRIPT, str(tmp_path / "mark"), str(POOL_JOBS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_a_terminal_sends_it)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and its pool's workers
        out, err = proc.communicate()
        pytest.fail(f"the pool never stopped: the interrupt waited for a job to end\n{out}{err[-2000:]}")
    assert proc.returncode == 0 and out.strip() == "interrupted", out + err[-2000:]
