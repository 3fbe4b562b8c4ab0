"""Shared fixtures. Models here are real int8 TFLite flatbuffers built with TensorFlow."""

import os
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


def lfw_available() -> bool:
    return (LFW_DIR / "images").is_dir() and (LFW_DIR / "pairs.txt").is_file()


needs_lfw = pytest.mark.skipif(not lfw_available(), reason=f"LFW not found at {LFW_DIR} (set TINYFACE_DATA)")


def skip_or_fail(reason: str) -> None:
    """Skip a test on a machine without the tool or sources it needs (a compiler, cmake, make,
    TFLM or esp-nn); in CI (CI=true), fail: .ci/run provides every one of them."""
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


def copy_people(lfw: Path, dest: Path, people: dict[str, int], protocol: bool = False) -> Path:
    """Copy the first ``n`` images of each person (``images/<name>/...``) into ``dest``;
    with ``protocol``, the LFW protocol files too. Returns ``dest``."""
    import shutil

    for name, n in people.items():
        (dest / "images" / name).mkdir(parents=True, exist_ok=True)
        for src in sorted((lfw / "images" / name).glob("*.jpg"))[:n]:
            shutil.copy2(src, dest / "images" / name / src.name)
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


def sigint_as_a_terminal_sends_it() -> None:
    """``preexec_fn`` of a child that a test sends Ctrl-C (SIGINT): the default disposition, as under
    a terminal. A shell's background job (`ci/run &`, nohup) inherits SIGINT *ignored*, and tinyface
    keeps an ignored SIGINT ignored on purpose, so without this such a test would test nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
