"""Shared fixtures. Models here are real int8 TFLite flatbuffers built with TensorFlow."""

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinyface.console import use_legacy_keras

use_legacy_keras()  # before any test imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
# The tests' face cache is their own (a build running beside them, or a user's cache of real
# crops and teacher embeddings, never sees what tests write); kept between runs, ignored by git.
os.environ["TINYFACE_CACHE"] = str(REPO / ".pytest_cache" / "tinyface" / "cache")
LFW_DIR = Path(os.environ.get("TINYFACE_DATA", REPO.parent / "shared" / "datasets" / "lfw"))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own (a conftest's runs first among them)
def pytest_cmdline_main(config):
    """``pytest -s`` runs in this process: pyproject's ``-n auto`` would run the tests in workers,
    whose output pytest-xdist never shows, so -s showed nothing. pytest-xdist does the same for
    --pdb; ``-n 2 -s`` (a number) still gets its workers."""
    if config.getoption("capture") == "no" and config.option.numprocesses in ("auto", "logical"):
        config.option.numprocesses = 0


def lfw_available() -> bool:
    return (LFW_DIR / "images").is_dir() and (LFW_DIR / "pairs.txt").is_file()


needs_lfw = pytest.mark.skipif(not lfw_available(), reason=f"LFW not found at {LFW_DIR} (set TINYFACE_DATA)")


def skip_or_fail(reason: str) -> None:
    """Skip a test on a machine without the tool or sources it needs (a compiler, cmake, make,
    TFLM or esp-nn, an ISO-8859-1 locale, a tmpfs mount, setpriv); in CI (CI=true), fail: .ci/run
    provides every one of them (and runs as root)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    if not lfw_available():
        pytest.skip(f"LFW not found at {LFW_DIR} (set TINYFACE_DATA)")
    return LFW_DIR


def build_tiny_int8_bundle(directory: Path, size: int = 48, channels: int = 1, embedding_dim: int = 32, seed: int = 0):
    """A small real student-shaped int8 model (CONV_2D, DEPTHWISE_CONV_2D, MEAN, FULLY_CONNECTED),
    quantized with random calibration data, saved as a bundle. Returns the Bundle."""
    import numpy as np
    import tf_keras as keras

    from tinyface.model.bundle import save_bundle
    from tinyface.train.quantize import bundle_meta, convert_int8

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, channels))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(embedding_dim)(x)
    model = keras.Model(inp, out)
    calib = np.random.default_rng(seed).integers(0, 256, (16, size, size, channels), dtype=np.uint8)
    flat = convert_int8(model, calib)
    meta = bundle_meta(flat, embedding_dim=embedding_dim, threshold=0.5, name="tiny-test-model")
    return save_bundle(directory, flat, meta)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A real int8 bundle (48x48x1 -> 32) in a session temp folder."""
    return build_tiny_int8_bundle(tmp_path_factory.mktemp("tiny_model"))


# --- small real datasets for the data and CLI tests (copies of a few LFW images) -----------

LFW_PROTOCOL_FILES = ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt", "people.txt",
                      "peopleDevTrain.txt", "peopleDevTest.txt", "lfw-names.txt", "README.txt")
# People with several images each; every image has a face the detector finds.
SMALL_PEOPLE = {"Aaron_Peirsol": 3, "Abdullah_Gul": 3, "Adrien_Brody": 3, "Alejandro_Toledo": 3}


def copy_people(lfw: Path, dest: Path, people: dict[str, int], protocol: bool = False, flat: bool = False) -> Path:
    """Copy the first ``n`` images of each person (``images/<name>/...``, or with ``flat``
    ``<name>/...``: a user's own folder) into ``dest``; with ``protocol``, the LFW protocol files
    too. Returns ``dest``."""
    import shutil

    for name, n in people.items():
        folder = dest / name if flat else dest / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        for src in sorted((lfw / "images" / name).glob("*.jpg"))[:n]:
            shutil.copy2(src, folder / src.name)
    if protocol:
        for f in LFW_PROTOCOL_FILES:
            shutil.copy2(lfw / f, dest / f)
    return dest


@pytest.fixture
def make_dataset(lfw_dir, tmp_path):
    """``make_dataset({"Name": n_images, ...}, name="ds", protocol=False) -> Path``: a fresh
    folder-per-person dataset of real LFW images under this test's tmp_path. (A fixture rather
    than an import: several tests/*/conftest.py make ``import conftest`` ambiguous.)"""
    def make(people: dict[str, int], name: str = "ds", protocol: bool = False) -> Path:
        return copy_people(lfw_dir, tmp_path / name, people, protocol)

    return make


@pytest.fixture
def small_dataset(lfw_dir, tmp_path) -> Path:
    """A fresh 4-person, 12-image folder-per-person dataset of real LFW images (per test)."""
    return copy_people(lfw_dir, tmp_path / "small", SMALL_PEOPLE)


def write_face_chips(photos, folder: Path, padding: float = 0.25, size: int = 224) -> list[Path]:
    """dlib face chips of ``photos`` saved as JPEGs under ``folder`` (``sub0/0.jpg``, ``sub1/1.jpg``,
    ...: nested, chip ``i`` from ``photos[i]``), as FairFace's are made (get_face_chip, padding 0.25)."""
    from PIL import Image

    from tinyface.data.align import Aligner, cut_chip
    from tinyface.data.dataset import read_image

    aligner = Aligner(1)
    out = []
    for i, path in enumerate(photos):
        rgb = read_image(path)
        target = folder / f"sub{i % 2}" / f"{i}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(cut_chip(rgb, aligner.detect(rgb), size, padding, 3)).save(target, quality=95)
        out.append(target)
    return out


@pytest.fixture
def small_images(small_dataset) -> list[Path]:
    """The 12 image paths of ``small_dataset``, in load_dataset's order."""
    from tinyface.data.dataset import load_dataset

    return [im.path for im in load_dataset(small_dataset).images]


@pytest.fixture
def spoiled(small_dataset, tmp_path):
    """``small_dataset`` plus one of each kind of bad file; returns (root, {name: reason fragment})."""
    import shutil

    from PIL import Image

    people = sorted(p for p in (small_dataset / "images").iterdir())
    real = sorted(people[0].glob("*.jpg"))[0]
    (people[0] / "corrupt[1].jpg").write_bytes(os.urandom(3000))
    (people[0] / "truncated.jpg").write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    (people[1] / "notes.txt").write_text("not a photo")
    (people[1] / "Thumbs.db").write_bytes(b"\0" * 64)
    Image.open(real).resize((20, 20)).save(people[2] / "tiny.jpg")
    (people[2] / "empty.png").write_bytes(b"")
    os.mkfifo(people[3] / "fifo.jpg")
    (people[3] / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (people[3] / "2019").mkdir()
    shutil.copy2(real, people[3] / "2019" / "nested.jpg")
    shutil.copy2(real, small_dataset / "images" / "loose.jpg")
    expected = {
        "corrupt[1].jpg": "not a readable image",  # brackets: not rich markup
        "truncated.jpg": "truncated",
        "notes.txt": "not an image file",
        "Thumbs.db": "not an image file",
        "tiny.jpg": "too small",
        "empty.png": "not a readable image",
        "fifo.jpg": "not a regular file",
        "dangling.jpg": "broken symbolic link",
        "2019": "a folder inside a person folder",
        "loose.jpg": "outside a person folder",
    }
    return small_dataset, expected


# --- faces the detector must find the hard way (tests/data/test_align.py, test_faces.py and
# tests/benchmarks/test_hard_faces.py; benchmarks/hard_faces.py makes the hard versions) --------------

# LFW *training* people (peopleDevTrain.txt; none is in peopleDevTest.txt): one image each.
LFW_TRAIN_IMAGES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0001.jpg",
                    "Adam_Sandler/Adam_Sandler_0001.jpg", "Al_Gore/Al_Gore_0001.jpg",
                    "Alejandro_Toledo/Alejandro_Toledo_0001.jpg", "Alec_Baldwin/Alec_Baldwin_0001.jpg"]


def detector_truth(rgb):
    """The detector's box (left, top, right, bottom) and landmarks on the untouched photo ``rgb``:
    what a face found in a harder version of it is measured against."""
    from tinyface.data.align import _points, dlib_models

    detector, predictor = dlib_models()
    rect = max(detector(rgb, 1), key=lambda r: r.area())
    return (rect.left(), rect.top(), rect.right(), rect.bottom()), _points(predictor(rgb, rect))


def landmark_error(found, truth) -> float:
    """Largest landmark error, in eye distances."""
    import numpy as np

    d = np.linalg.norm(truth[:2].mean(axis=0) - truth[2:4].mean(axis=0))
    return float(np.abs(found - truth).max() / d)


# --- huge images ---------------------------------------------------------------------------------------

def write_png(path: Path, width: int, height: int, rows) -> None:
    """A PNG streamed through zlib band by band (``rows(y0, y1)`` -> uint8 (y1-y0, width, 3)),
    so a mostly-flat 400-megapixel image is a few MB on disk and never whole in memory."""
    import struct
    import zlib

    import numpy as np

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for y0 in range(0, height, 256):
            band = rows(y0, min(height, y0 + 256))
            raw = np.concatenate([np.zeros((band.shape[0], 1), np.uint8), band.reshape(band.shape[0], -1)], axis=1)
            data = comp.compress(raw.tobytes())
            if data:
                f.write(chunk(b"IDAT", data))
        f.write(chunk(b"IDAT", comp.flush()) + chunk(b"IEND", b""))


@pytest.fixture(scope="session")
def bomb(tmp_path_factory) -> Path:
    """A flat 20000x20000 PNG (400 megapixels, twice read_image's limit) of a few MB."""
    import numpy as np

    path = tmp_path_factory.mktemp("huge") / "scan.png"
    write_png(path, 20000, 20000, lambda y0, y1: np.full((y1 - y0, 20000, 3), 200, np.uint8))
    assert path.stat().st_size < 10_000_000
    return path


def sigint_as_a_terminal_sends_it() -> None:
    """``preexec_fn`` of a child that a test sends Ctrl-C (SIGINT): the default disposition, as under
    a terminal. A shell's background job (`ci/run &`, nohup) inherits SIGINT *ignored*, and tinyface
    keeps an ignored SIGINT ignored on purpose, so without this such a test would test nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def drop_file_permission_bypass():
    """A command prefix under which mode-000 files are really unreadable (and mode-555 folders
    unwritable); the test is skipped where none can be made, and fails in CI (root in a Debian
    container: util-linux's setpriv is always there).

    Tests run as root here, and root reads anything; dropping the two capabilities that let
    it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from a child process makes it an ordinary reader.
    """
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if not setpriv:
        skip_or_fail(_NO_PERMISSIONS)
    prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all")
    with tempfile.NamedTemporaryFile() as locked:
        os.chmod(locked.name, 0)
        probe = subprocess.run([*prefix, sys.executable, "-c", f"open({locked.name!r}).read()"], capture_output=True,
                               text=True)
    if "PermissionError" not in probe.stderr:
        skip_or_fail(_NO_PERMISSIONS)
    return prefix


_NO_PERMISSIONS = ("running as root with no way to drop CAP_DAC_OVERRIDE (setpriv missing or refused): "
                   "cannot make a file unreadable or a folder unwritable")


def wait_for_images_done(bench, out: Path, done: int = 3, timeout: float = 120) -> None:
    """Wait until a running `tinyface bench` (Popen ``bench``) has written ``done`` images to its
    ``--out`` file; fail if it exits first or makes no progress in ``timeout`` seconds."""
    import json
    import time

    deadline = time.monotonic() + timeout
    while not (out.exists() and json.loads(out.read_text())["images_done"] >= done):
        assert bench.poll() is None, bench.communicate()
        assert time.monotonic() < deadline, "bench made no progress"
        time.sleep(0.1)


# A compiler cut short with its build, as by the out-of-memory killer, a CI timeout or `kill -9`:
# it writes the start of an object to its -o argument (the assembler creates its output first
# and fills it last), then SIGKILLs its process group: make and everything make runs.
# (tests/firmware/test_native.py and tests/device/test_isa.py write it as CC or CXX.) Without an
# -o (a Makefile asking for the compiler's settings) it is the real compiler.
KILLED_COMPILER = """#!/bin/sh
out=
prev=
for arg; do [ "$prev" = -o ] && out=$arg; prev=$arg; done
[ -n "$out" ] || exec {real} "$@"
printf '\\177ELF' > "$out"
kill -KILL 0
"""



def planned_tflm_compiles(make_dir: Path, make_vars: list[str], obj_dir: Path) -> tuple[dict[str, str], bool]:
    """What the generated Makefile in ``make_dir`` would run to build its program with TFLM's
    objects in ``obj_dir`` (``make -n``, nothing compiled): {TFLM source: its compile command}, and
    whether it precompiles the flatbuffers schema first."""
    planned = subprocess.run(["make", "-n", "-C", str(make_dir), *make_vars, f"TFLM_OBJ_DIR={obj_dir}",
                              f"BUILD_DIR={obj_dir.parent / 'build'}", f"PROGRAM={obj_dir.parent / 'program'}"],
                             capture_output=True, text=True, timeout=120)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    compiles, precompiles = {}, False
    for line in planned.stdout.splitlines():
        command = line.split(" && ")[0]
        if "-x c++-header" in command:
            precompiles = True
        elif match := re.search(r" -c (\S+/tensorflow/\S+\.cc) -o ", command):
            compiles[match.group(1)] = command
    return compiles, precompiles



@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str):
    """``folder`` (made here) as a real 1 MB tmpfs mounted with ``options`` ("noexec", "ro"): a
    disk as a user's can be, which needs root: the test is skipped elsewhere, and fails in CI (which
    runs as root, where mounting works)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    proc = subprocess.run([mount, "-t", "tmpfs", "-o", f"{options},size=1m", "tmpfs", str(folder)],
                          capture_output=True, text=True) if mount else None
    if proc is None or proc.returncode != 0:
        skip_or_fail(f"cannot mount a {options} tmpfs here: {proc.stderr.strip() if proc else 'no mount'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


# --- `tinyface` run in this process (fast: no interpreter to start, no TensorFlow) -----------------

RELEASED = REPO / "models" / "esp32"


@pytest.fixture
def own_folder(tmp_path, monkeypatch):
    """Run from this test's empty folder: no ./tinyface.toml of the repository (or anyone's)
    changes the settings."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def no_boards_dir(monkeypatch):
    """--boards-dir sets a module global: the test starts (and leaves) without one, and without
    $TINYFACE_BOARDS_DIR."""
    from tinyface import resources

    monkeypatch.setattr(resources, "_user_boards_dir", None)
    monkeypatch.delenv("TINYFACE_BOARDS_DIR", raising=False)


def run_in_process(capsys, *args) -> tuple[int, str, str]:
    """Run `tinyface ARGS` in this process: (exit code, stdout, stderr); never a traceback."""
    from tinyface.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main.main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return exc.value.code or 0, captured.out, captured.err


def error_in_process(capsys, *args) -> tuple[int, str]:
    """(exit code, the one stderr line) of `tinyface ARGS` run in this process, which must fail
    with one line: ``tinyface: error: ...``."""
    code, _, err = run_in_process(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: "), err
    return code, lines[0]


# --- `tinyface` run in a fresh interpreter, as a user runs it ------------------------------------------

def run_cli(*args, cwd=None, env=None, timeout=120, prefix=()):
    """Run the installed entry point in a fresh interpreter, as a user would: its environment this
    process's plus ``env``, behind the command ``prefix`` if one is given (``ulimit``, ``nice``)."""
    import subprocess
    import sys

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([*prefix, sys.executable, "-m", "tinyface.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL)


def tensorflow_tripwire(folder: Path) -> tuple[dict, Path]:
    """A tensorflow package ahead of the real one that leaves a mark when imported and fails to
    import: (run_cli's env with it on PYTHONPATH, the mark's path). For checks that a command refuses
    a bad input before TensorFlow loads (commands import it with stderr muted, so an import profile
    would not show it)."""
    fake = folder / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    mark = folder / "fake" / "tensorflow-imported"
    (fake / "__init__.py").write_text(f"open({str(mark)!r}, 'w').close()\nraise ImportError('not here')\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")]))}, mark


def plain_progress_every(monkeypatch, every_s: float, heartbeat: bool = False) -> None:
    """Plain progress (stderr is no terminal under capsys and in subprocess pipes) at most every
    ``every_s`` seconds instead of 10; with ``heartbeat``, a status's thread prints on while nothing
    advances, else a status prints only its end (its "done" line, at ``every_s`` 0 whatever it took)."""
    from tinyface import console

    class Every(console.PlainProgress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "every_s": every_s})

        if not heartbeat:
            def start_heartbeat(self):
                return self
    monkeypatch.setattr(console, "PlainProgress", Every)


def imported_modules(*args, cwd=None, env=None):
    """(result, set of top-level modules imported) for one CLI run, from ``python -X importtime``."""
    import subprocess
    import sys

    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tinyface.cli.main", *args],
                          capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120, stdin=subprocess.DEVNULL)
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                modules.add(name.split(".")[0])
    return proc, modules


def assert_one_error_line(proc, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tinyface: error: "), lines[0]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- what the CLI tests give `tinyface`: the released model, datasets, boards, build metrics, a locale ---

def require_released_model() -> Path:
    """models/esp32 (model.tflite is tracked in git): a checkout without it is broken, so a test
    that needs it fails, never skips. Returns the folder."""
    if not (RELEASED / "model.tflite").is_file():
        pytest.fail(f"no released model at {RELEASED / 'model.tflite'}: it is tracked in git, so this "
                    "checkout is incomplete (git checkout -- models/esp32)")
    return RELEASED


@pytest.fixture
def released_model() -> Path:
    """models/esp32, for a test that serves or reads the released model (require_released_model)."""
    return require_released_model()


def one_photo_site(folder: Path) -> tuple[Path, Path]:
    """A site for `tinyface data fetch lfw` (--url file://...): one photo (its bytes no JPEG: only
    their sha256 counts), a pairsDevTest.txt and the archive, under ``folder``/site; and a manifest
    of it. Returns (site, manifest path)."""
    import json
    import tarfile

    from tinyface.data.fetch import make_manifest

    site = folder / "site"
    (site / "faces" / "Ann").mkdir(parents=True)
    (site / "faces" / "Ann" / "Ann_0001.jpg").write_bytes(b"not decoded: only its sha256 counts")
    (site / "pairsDevTest.txt").write_text("1\n")
    with tarfile.open(site / "faces.tgz", "w:gz") as tar:
        tar.add(site / "faces", arcname="faces")
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(make_manifest("lfw", site, ["pairsDevTest.txt"], site / "faces.tgz",
                                                 "faces").__dict__))
    return site, manifest


def named_people(root: Path, *names: str) -> Path:
    """A folder-per-person dataset under ``root``: a folder per name, each holding one empty
    ``1.jpg`` (for what only lists the folders: nothing decodes it). Returns ``root``."""
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "1.jpg").write_bytes(b"")
    return root


def people_folder(root: Path, people: int, photos: int = 3) -> Path:
    """A folder-per-person dataset of empty .jpg files (listing only: nothing decodes them)."""
    for p in range(people):
        (root / f"person{p}").mkdir(parents=True)
        for i in range(photos):
            (root / f"person{p}" / f"{i}.jpg").write_bytes(b"")
    return root


def own_board(folder: Path, name: str = "myboard", cpu_mhz: int | None = None) -> Path:
    """A folder holding one more board file: the shipped esp32's, renamed ``name`` (and clocked at
    ``cpu_mhz`` when given)."""
    import re

    from tinyface import resources

    folder.mkdir(parents=True, exist_ok=True)
    text = (resources.boards_dir() / "esp32.toml").read_text()
    text = re.sub(r'(?m)^name = "esp32"', f'name = "{name}"', text, count=1)
    if cpu_mhz is not None:
        text, n = re.subn(r"(?m)^cpu_mhz = \d+", f"cpu_mhz = {cpu_mhz}", text, count=1)
        assert n == 1, "esp32.toml has no cpu_mhz line"
    (folder / f"{name}.toml").write_text(text)
    return folder


# A build's TFLM-against-TFLite parity on the test's images and on the validation's, told apart by
# their values (tests/evaluation/test_report.py: validation.md/.json; tests/cli/test_build.py:
# `build --hide-test`).
TEST_PARITY = {"max_lsb_diff": 7, "mean_lsb_diff": 0.7777, "outputs_identical_share": 0.1234,
               "identical_decisions_test_pairs": 0.9876, "n_images": 4321}
VALIDATION_PARITY = {"max_lsb_diff": 1, "mean_lsb_diff": 0.0111, "outputs_identical_share": 0.5555,
                     "identical_decisions_validation_pairs": 0.999, "n_images": 222}


def parity_metrics(validation_parity=VALIDATION_PARITY):
    """Synthetic build metrics: the test's parity and the validation's told apart by their values."""
    import json

    from tinyface.evaluation.report import BuildMetrics

    ver = {"accuracy": 0.6161, "auc": 0.95, "tar_at_far": {"0.01": 0.5}, "threshold": 0.5, "n_pairs": 100}
    ident = {"accuracy": 0.8, "macro_f1": 0.7, "stranger_false_accept_rate": 0.1, "threshold": 0.6, "n_people": 4}
    stage = {"verification": ver, "identification": ident, "model_bytes": 1000, "macs": 10, "arena_bytes": 2000,
             "params": 100, "board": "esp32", "estimated_ms_on_board": 5.0, "latency_ms_host": 1.0,
             "validation": {"accuracy": 0.9, "auc": 0.96}}
    parity = {**TEST_PARITY, **({"validation": validation_parity} if validation_parity else {})}
    return BuildMetrics.from_dict({
        "stages": {name: json.loads(json.dumps(stage)) for name in
                   ("teacher", "float", "pruned", "tflite_float", "tflite_int8", "tflm_int8")},
        "parity": parity, "data": {"train_images": 10, "train_people": 5, "val_images": 4, "val_people": 2},
        "threshold_from": "pairs of validation people", "threshold_source": "validation", "preset": "esp32",
        "mac_budget": 2_000_000, "smoke_test": True})


def shown_test_parity(text: str) -> list[str]:
    """The test parity's figures that ``text`` shows, as a number or a percentage."""
    forms = [str(v) for v in TEST_PARITY.values() if isinstance(v, float)] + ["4321", "4,321"] + \
            [f"{100 * v:.2f}%" for v in TEST_PARITY.values() if isinstance(v, float)]
    return [form for form in forms if form in text]


def env_without_locale(**locale) -> dict:
    """This process's environment without any locale or Python text setting, plus ``locale``."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("LC_") or k in ("LANG", "LANGUAGE", "PYTHONIOENCODING", "PYTHONUTF8"))}
    return {**env, **locale}


def latin1_locale(folder: Path) -> dict:
    """The settings (LOCPATH, LC_ALL) of an ISO-8859-1 locale compiled into ``folder``, for
    env_without_locale; the test is skipped where none can be made (localedef or its sources
    missing: Python there does not read file names in ISO-8859-1), and fails in CI (.ci/run installs
    Debian's locales, which has them)."""
    import subprocess
    import sys

    try:
        subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
                       capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        skip_or_fail("no ISO-8859-1 locale can be made here (localedef)")
    locale = {"LOCPATH": str(folder), "LC_ALL": "en_US.ISO-8859-1"}
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                           capture_output=True, text=True, env=env_without_locale(**locale), timeout=120)
    if probe.stdout.strip() != "iso8859-1":
        skip_or_fail("no ISO-8859-1 locale can be made here (localedef)")
    return locale


# --- a board on a TCP socket (pyserial's `socket://HOST:PORT`) --------------------------------------

class TcpBoard:
    """A TCP server on 127.0.0.1: with ``emulate``, each connection is served by one emulated
    board of the released models/esp32 (tinyface.device.emulator, in this process; its gallery
    kept between connections, as a board's); without, it accepts and never answers (a board that
    does not speak). ``url`` is the `socket://127.0.0.1:PORT` that reaches it."""

    def __init__(self, emulate: bool = True):
        import socket
        import threading

        self.board = None
        self.session: threading.Event | None = None
        if emulate:
            from tinyface.boards import load_board
            from tinyface.device.emulator import EmulatedBoard
            from tinyface.model.bundle import load_bundle

            self.board = EmulatedBoard(load_bundle(RELEASED), "esp32", load_board("esp32").cost_model_for("esp-nn"))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import threading

        from tinyface.device.emulator import serve

        self.server.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                if self.board is None:
                    conn.settimeout(0.1)
                    while not self.stop.is_set():
                        try:
                            if not conn.recv(4096):
                                break
                        except TimeoutError:
                            continue
                else:
                    # serve() sets its ``stop`` when the session ends: one per connection
                    self.session = threading.Event()
                    serve(conn.fileno(), self.board, once=True, stop=self.session)

    def close(self) -> None:
        self.stop.set()
        if self.session is not None:
            self.session.set()
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def tcp_board():
    """Factory: ``tcp_board(emulate=True) -> TcpBoard``; every one closed at teardown."""
    servers = []

    def make(emulate: bool = True) -> TcpBoard:
        servers.append(TcpBoard(emulate))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


# --- the scripts of benchmarks/ ---------------------------------------------------------------------

BENCHMARKS = REPO / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/NAME.py loaded by its file (benchmarks/ is no package), without running its main."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass of the script looks its module up there (xtensa_kernels.py)
    spec.loader.exec_module(module)
    return module


def run_benchmark(script: str, *args, env: dict | None = None):
    """``python benchmarks/SCRIPT ARGS`` in a fresh interpreter: its CompletedProcess (text)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(BENCHMARKS / script), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


# --- small helpers several test files share ---------------------------------------------------------

def luma(rgb):
    """The brightness the pipeline reads from an RGB image (ITU-R BT.601 weights)."""
    import numpy as np

    return rgb.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])


def gul_photos(lfw_dir, n=3):
    """The first ``n`` LFW photos of Abdullah_Gul (a training person with many photos)."""
    return sorted((lfw_dir / "images" / "Abdullah_Gul").glob("*.jpg"))[:n]


def unit_targets(n=40, seed=0):
    """``n`` random unit-length 128-d teacher targets."""
    import numpy as np

    from tinyface.vectors import l2_normalize

    return l2_normalize(np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32))


def trained_branched_student(arch: str, branches: int, size: int = 32, width: float = 0.5):
    """A branched student after a few steps, so its batch norms hold statistics of their own."""
    import numpy as np

    from tinyface.train import distill, student

    model, _ = student.build_student(arch, (size, size, 1), 16, width, branches=branches)
    rng = np.random.default_rng(branches)
    x = rng.integers(0, 256, (64, size, size, 1), dtype=np.uint8)
    t = distill.center_targets(rng.normal(size=(64, 16)).astype(np.float32), np.zeros(16, np.float32))
    distill.fit(model, x, t, None, None, 2, 16, 3e-3, distill.make_loss(distill.LossWeights()), augment=False)
    return model, x
