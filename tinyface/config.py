"""Typed, validated settings: defaults < tinyface.toml < command-line overrides.

The sections follow the pipeline (data, extra, teacher, student, distill, prune, quantize,
firmware, bench). An unknown section or key is an error that names it, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from tinyface.errors import ConfigError, OutputError, TinyfaceError

CONFIG_FILENAME = "tinyface.toml"
THRESHOLD_SOURCES = ("validation", "protocol")  # data.threshold_from: see DataSettings
STUDENT_ARCHS = ("dsnet", "dsnet_mlp", "dsnet_fc", "tinycnn")  # student.arch: the builders in tinyface/train/student.py
DSNET_REPEATS = (3, 3, 2)  # student.repeats' default: blocks per dsnet stage
MAX_EPOCHS = 1000  # upper bound of every epoch count: a typo (epochs=3000000) fails now, not after days


def default_data_dir() -> Path:
    """``$TINYFACE_DATA`` if set, else ``~/.cache/tinyface/datasets/lfw``."""
    env = os.environ.get("TINYFACE_DATA")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/tinyface/datasets/lfw").expanduser()


def default_cache_dir() -> Path:
    """``$TINYFACE_CACHE`` if set, else ``~/.cache/tinyface/cache``."""
    env = os.environ.get("TINYFACE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/tinyface/cache").expanduser()


def default_datasets_dir() -> Path:
    """Where `tinyface data fetch NAME` puts a dataset by default: ``$TINYFACE_DATASETS`` if
    set, else ``~/.cache/tinyface/datasets``."""
    env = os.environ.get("TINYFACE_DATASETS")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/tinyface/datasets").expanduser()


@dataclass(frozen=True)
class DatasetSource:
    """A dataset `tinyface data fetch NAME` knows: where it comes from and how it may be used.

    Attributes:
        url: the base URL its manifest's files are downloaded from (tinyface/data/<name>_manifest.json).
        credit: how model cards and docs credit it, licence included ("" for LFW, credited in docs).
        kind: for extra faces, the extra.kind its images need ("chips" or "photos"); "" for LFW.
        people: its images sit in one folder per person (extra.people may be true for it).
    """

    url: str
    credit: str = ""
    kind: str = ""
    people: bool = False


# Every extra set is pinned to one commit of a public repository (GitHub's archive of it); only
# the manifest's folder is unpacked and verified (docs/data.md, "Extra faces").
DATASETS = {
    "lfw": DatasetSource("http://vis-www.cs.umass.edu/lfw/"),  # deep-funneled, with its protocol files
    "fairface": DatasetSource(
        "https://github.com/sumanvithaeadala/EthnicityDetection/archive/",
        'FairFace (Karkkainen and Joo, "FairFace: Face Attribute Dataset for Balanced Race, Gender, and Age", '
        "WACV 2021; CC BY 4.0)", kind="chips"),
    "utkface": DatasetSource(
        "https://github.com/mattans/AgeProgression/archive/",
        'UTKFace (Zhang, Song and Qi, "Age Progression/Regression by Conditional Adversarial Autoencoder", '
        "CVPR 2017; non-commercial research only)", kind="chips"),
    "pins": DatasetSource(
        "https://github.com/fchrgrib/Algeo02-21015/archive/",
        "Pins Face Recognition (17,534 photos of 105 celebrities; no licence stated, research use only)",
        kind="photos", people=True),
    "celeba": DatasetSource(
        "https://github.com/matush97/faceRecognition/archive/",
        'CelebA (Liu, Luo, Wang and Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015; '
        "non-commercial research only), a subset of 6,300 photos", kind="photos", people=True),
}


def dataset_url(name: str) -> str:
    """The base URL of dataset ``name``: ``$TINYFACE_<NAME>_URL`` if set, else its DATASETS entry's."""
    return os.environ.get(f"TINYFACE_{name.upper()}_URL") or DATASETS[name].url


def dataset_dir(name: str) -> Path:
    """Where `tinyface data fetch NAME` puts a dataset: LFW in default_data_dir(), the others
    in default_datasets_dir() / NAME."""
    return default_data_dir() if name == "lfw" else default_datasets_dir() / name


def boards_dir_problem(path: str | Path) -> str | None:
    """What keeps ``path`` (``~`` expanded) from being a folder of board files: "does not exist",
    "is not a folder", "cannot be read", or None. One rule for `--boards-dir` (a bad option
    value, exit 2) and ``$TINYFACE_BOARDS_DIR`` (a bad environment, exit 3), which say it alike."""
    folder = Path(path).expanduser()
    if not folder.exists():
        return "does not exist"
    if not folder.is_dir():
        return "is not a folder"
    if not os.access(folder, os.R_OK | os.X_OK):
        return "cannot be read"
    return None


class FolderProblem(NamedTuple):
    """What keeps a path from being a folder tinyface can make and write files in (writable_folder_problem)."""

    error: type[TinyfaceError]  # ConfigError: the path names no folder; OutputError: one that cannot be written
    where: Path  # the path at fault: the folder itself, or the nearest of its parents that exists
    why: str  # "is a file", "permission denied" or "read-only file system"


def writable_folder_problem(path: str | Path) -> FolderProblem | None:
    """What keeps ``path`` (``~`` expanded) from being a folder tinyface can make, write and read
    files in, or None; nothing is created. One rule for every folder a setting or a variable names for
    tinyface to write into (the face cache, ``$TINYFACE_NVS_DIR``):

    - it, or the nearest of its parents that exists, is a file: the value names no folder at all,
      a bad setting (ConfigError, exit 3);
    - that folder cannot be written (no permission, a read-only disk), or, where it is ``path``
      itself, read: a folder tinyface cannot use, as any output that cannot be written (OutputError,
      exit 14).
    """
    folder = Path(path).expanduser()
    probe = folder
    while not os.path.lexists(probe) and probe.parent != probe:  # False, not an error, under a closed folder
        probe = probe.parent
    if os.path.exists(probe) and not os.path.isdir(probe):
        return FolderProblem(ConfigError, probe, "is a file")
    # the folder itself is read back too (a cache, a gallery); a parent needs only that one can be made in it
    needed = os.W_OK | os.X_OK | (os.R_OK if probe == folder else 0)
    if os.path.isdir(probe) and not os.access(probe, needed):
        from tinyface.fsutil import on_read_only_disk

        return FolderProblem(OutputError, probe, "read-only file system" if on_read_only_disk(probe)
                             else "permission denied")
    return None


def user_boards_dir() -> Path | None:
    """``$TINYFACE_BOARDS_DIR``: a folder of board files of one's own (`tinyface --boards-dir` wins);
    None if unset or empty.

    Raises:
        ConfigError: set to a path that does not exist, is not a folder or cannot be read
            (:func:`boards_dir_problem`, as `--boards-dir` is refused), so that a typo is not
            silently ignored and then read as "unknown board".
    """
    env = os.environ.get("TINYFACE_BOARDS_DIR")
    if not env:
        return None
    if what := boards_dir_problem(env):
        raise ConfigError(f"TINYFACE_BOARDS_DIR must be a folder of board files, got {env!r}, which {what}",
                          hint="fix the path, or unset TINYFACE_BOARDS_DIR")
    return Path(env).expanduser()


# --- the environment: every variable tinyface reads is read here, nowhere else --------------
# (docs/cli.md's "Environment" table lists them; tests/test_config.py checks both)

ENVIRONMENT = ("TINYFACE_DATA", "TINYFACE_CACHE", "TINYFACE_DATASETS", "TINYFACE_<NAME>_URL", "TINYFACE_BOARDS_DIR",
               "TFLM_DIR", "TFLM_THIRD_PARTY_DIR", "ESP_NN_DIR", "CC", "CXX", "TINYFACE_NATIVE_JOBS",
               "TINYFACE_NATIVE_CACHE", "TINYFACE_ISA_CACHE", "TINYFACE_NVS_DIR", "PLATFORMIO_CORE_DIR")


def _env_path(name: str, default: str) -> Path:
    env = os.environ.get(name)
    return Path(env).expanduser() if env else Path(default).expanduser()


def tflm_dir() -> str | None:
    """``$TFLM_DIR``: the tflite-micro (esp-tflite-micro) tree the native and rv32 builds
    compile, as given (the builds check it and say what is wrong); None if unset."""
    return os.environ.get("TFLM_DIR") or None


def tflm_third_party_dir() -> str | None:
    """``$TFLM_THIRD_PARTY_DIR``: TFLM's flatbuffers/, gemmlowp/ and ruy/; None if unset (each
    build then looks in its tree's usual place)."""
    return os.environ.get("TFLM_THIRD_PARTY_DIR") or None


def esp_nn_dir() -> str | None:
    """``$ESP_NN_DIR``: the ESP-NN tree of the rv32 build; None if unset (next to TFLM_DIR)."""
    return os.environ.get("ESP_NN_DIR") or None


def host_cc() -> str:
    """``$CC``, else ``gcc``: the host C compiler (the QEMU instruction-counting plugin)."""
    return os.environ.get("CC") or "gcc"


def host_cxx() -> str:
    """``$CXX``, else ``g++``: the host C++ compiler of the native firmware build."""
    return os.environ.get("CXX") or "g++"


def native_jobs() -> int:
    """``$TINYFACE_NATIVE_JOBS``, else 2: parallel compile jobs of the native and rv32 builds.

    Raises:
        ConfigError: not a whole number >= 1.
    """
    raw = os.environ.get("TINYFACE_NATIVE_JOBS") or "2"
    try:
        jobs = int(raw)
    except ValueError:
        jobs = 0
    _check(jobs >= 1, "TINYFACE_NATIVE_JOBS must be a whole number >= 1", raw)
    return jobs


def native_cache_dir() -> Path:
    """``$TINYFACE_NATIVE_CACHE`` if set, else ``~/.cache/tinyface/native``: the native build's cache."""
    return _env_path("TINYFACE_NATIVE_CACHE", "~/.cache/tinyface/native")


def isa_cache_dir() -> Path:
    """``$TINYFACE_ISA_CACHE`` if set, else ``~/.cache/tinyface/isa``: the rv32 build's cache."""
    return _env_path("TINYFACE_ISA_CACHE", "~/.cache/tinyface/isa")


def native_storage_dir() -> str | None:
    """``$TINYFACE_NVS_DIR`` (``~`` expanded): the folder the native firmware keeps its gallery in,
    in files as the board's NVS would (`tinyface emulate --native`); None if unset or empty: in
    memory only. The program reads it itself too when run by hand (firmware/native/platform_host.cc).
    Nothing is created.

    Raises:
        ConfigError: set to a file, or to a path under one (:func:`writable_folder_problem`).
        OutputError: set to a folder that cannot be created or written (no permission, a
            read-only disk).
    """
    env = os.environ.get("TINYFACE_NVS_DIR")
    if not env:
        return None
    folder = Path(env).expanduser()
    if problem := writable_folder_problem(folder):
        if problem.error is ConfigError:
            which = "is a file" if problem.where == folder else f"is under the file {problem.where}"
            raise ConfigError(f"TINYFACE_NVS_DIR must be a folder, got {env!r}, which {which}",
                              hint="fix the path, or unset TINYFACE_NVS_DIR to keep the gallery in memory")
        at = "" if problem.where == folder else f" ({problem.where})"
        raise OutputError(f"TINYFACE_NVS_DIR {env!r} cannot be written: {problem.why}{at}",
                          hint="set it to a folder you can write, or unset it to keep the gallery in memory")
    return str(folder)


def make_environment(names) -> dict[str, str]:
    """The values the environment gives the make variables ``names`` (those set, an empty value
    included): the firmware Makefiles' ``?=`` variables, which make takes from the environment,
    key their build cache (tinyface.device.native.make_program). Not settings of tinyface's own:
    the Makefiles (docs/firmware.md) say what each does."""
    return {name: os.environ[name] for name in names if name in os.environ}


@contextlib.contextmanager
def library_variable(name: str, value: str):
    """``$name`` set to ``value`` for the block, then put back as it was (unset where it was): for a
    library that reads a variable of its own as it is imported, such as matplotlib's $MPLBACKEND,
    whose unknown value fails the import (tinyface.boards.plots.pyplot). Not a setting of tinyface's."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def platformio_core_dir() -> Path:
    """PlatformIO's home: ``$PLATFORMIO_CORE_DIR`` if set (PlatformIO's own variable), else ``~/.platformio``."""
    return _env_path("PLATFORMIO_CORE_DIR", "~/.platformio")


@dataclass(frozen=True)
class Interval:
    """The numbers a setting may take: between ``low`` and ``high``, each end included or not.
    ``value in interval`` tests one; ``str(interval)`` writes it as "(0, 0.5)" or "[0, 1)"."""

    low: float
    high: float
    low_included: bool = False
    high_included: bool = False

    def __contains__(self, value) -> bool:
        above = value >= self.low if self.low_included else value > self.low
        below = value <= self.high if self.high_included else value < self.high
        return bool(above and below)

    def __str__(self) -> str:
        low, high = (str(x) if isinstance(x, int) else f"{x:g}" for x in (self.low, self.high))  # 1000000, not 1e+06
        return f"{'[' if self.low_included else '('}{low}, {high}{']' if self.high_included else ')'}"


# The split settings' valid values: DataSettings.validate checks them, and so does
# tinyface.model.bundle a model.json's record of them (extra.split), so neither admits what the other refuses.
VAL_FRACTION_RANGE = Interval(0.0, 0.5)  # data.val_fraction
TEST_FILTER_RANGE = Interval(0.0, 1.0, low_included=True)  # data.test_filter (0: off)

# The valid values of the settings that a command-line option also sets (`bench --images`, `--timeout`,
# `--retries`, `build --epochs`): the settings' validate checks them, and tinyface.cli.common.setting_type
# makes each such option's type of them, so the option refuses (exit 2, naming the option) just what the
# setting would refuse, and its --help shows the range.
OPTION_SETTING_RANGES = {
    "distill.epochs": Interval(1, MAX_EPOCHS, low_included=True, high_included=True),
    "bench.images": Interval(2, 1_000_000, low_included=True, high_included=True),  # 2: one pair, the fewest
    "bench.timeout_s": Interval(0, 3600, high_included=True),
    "bench.retries": Interval(0, 100, low_included=True, high_included=True),
}


@dataclass
class DataSettings:
    """Where the images are, how faces are cut, and who is used for what.

    Attributes:
        dir: dataset folder; empty means $TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw.
        cache_dir: cache of aligned crops and teacher embeddings; empty means $TINYFACE_CACHE,
            else ~/.cache/tinyface/cache.
        crop_size: side of the aligned face crop the student sees, in pixels.
        channels: 1 = gray, 3 = RGB.
        padding: margin around dlib's 5-point face template, as a share of the face (dlib's
            convention; 0.25 is what its ResNet was trained on).
        detector_upsample: when the first detector pass finds no face, retry on an image
            upsampled this many times (0 = no retry). The same for the build and for the
            faces cut for a model (`bench`, `flash --enroll`, `enroll`, `identify`, `evaluate`).
        val_fraction: share of the training people (peopleDevTrain) held out for validation.
        test_filter: LFW's own errata: a training or validation image whose teacher embedding
            lies closer than this to an image of a test person is dropped, and so is a training
            or validation person whose name has the same words as a test person's
            (``Choi_Sung-hong`` is ``Sung_Hong_Choi``). LFW files some photos twice: the same
            photo under two names, a group photo whose other face is a test person, one person
            under two spellings. In LFW, 15 training and 2 validation images lie within 0.25 of a
            test image: by eye, 15 are the same photo or the same person, 2 are athletes who
            may only look alike; above 0.25 look-alikes dominate, and a few errata stay
            (docs/data.md). Distance as extra.max_test_distance. 0 = off (neither filter). A
            `--quick` build compares with the test images it evaluates only.
        identify_min_images: identification: peopleDevTest people with at least this many
            images are enrolled (47 people at 10).
        enroll_images: identification: images enrolled per person (their centroid is the
            template); the rest are probes.
        identify_stranger_rate: the share of strangers (people not enrolled) that IDENTIFY may
            accept as someone, by a gallery of identify_gallery people. The shipped
            identification threshold is chosen for it on validation people: those with at least
            enroll_images + 1 images are enrolled (enroll_images each, the rest probes), the
            others are strangers. (Test people are enrolled from identify_min_images photos;
            on LFW 13 validation people have 10 or more, too few for galleries of 16, and 28
            have 6 or more.) Stricter
            than the pair verification threshold, because a stranger is compared with every
            enrolled person.
        identify_gallery: identification: the gallery size (people enrolled) the identification
            threshold is chosen for and identification is reported at; 0 (the default) = the
            device's capacity, tinyface.protocol.spec.GALLERY_CAPACITY (16). A stranger is compared with every
            enrolled person, so the share of strangers accepted grows about linearly with the
            gallery: with more validation people than this, the threshold is chosen on random
            galleries of this many (accepting identify_stranger_rate of strangers on average).
            Read only by the evaluation (changing it retrains nothing).
        threshold_from: where the pair-verification threshold (shipped in model.json) is
            chosen: "validation" = pairs of validation people, whom the student never trained
            on, as the device never saw the people it meets; "protocol" = LFW's
            pairsDevTrain.txt, whose images are mostly training images, so its threshold fits
            people the student learned (docs/model.md measures the cost). Both are reported.
        seed: seed of every split and shuffle.
        workers: processes for alignment and teacher embeddings; 0 = one per CPU core.
    """

    dir: str = ""
    cache_dir: str = ""
    crop_size: int = 48
    channels: int = 1
    padding: float = 0.25
    detector_upsample: int = 1
    val_fraction: float = 0.1
    test_filter: float = 0.25
    identify_min_images: int = 10
    enroll_images: int = 5
    identify_stranger_rate: float = 0.05
    identify_gallery: int = 0
    threshold_from: str = "validation"
    seed: int = 0
    workers: int = 0

    def validate(self) -> None:
        _check(self.crop_size >= 16, "data.crop_size must be >= 16", self.crop_size)
        _check(self.crop_size <= 256, "data.crop_size must be <= 256", self.crop_size)
        _check(self.channels in (1, 3), "data.channels must be 1 (gray) or 3 (RGB)", self.channels)
        _check(0.0 <= self.padding <= 1.0, "data.padding must be in [0, 1]", self.padding)
        _check(0 <= self.detector_upsample <= 2, "data.detector_upsample must be 0, 1 or 2", self.detector_upsample)
        _check(self.val_fraction in VAL_FRACTION_RANGE, f"data.val_fraction must be in {VAL_FRACTION_RANGE}",
               self.val_fraction)
        _check(self.test_filter in TEST_FILTER_RANGE, f"data.test_filter must be in {TEST_FILTER_RANGE} (0: off)",
               self.test_filter)
        _check(self.identify_min_images >= 2, "data.identify_min_images must be >= 2", self.identify_min_images)
        _check(1 <= self.enroll_images < self.identify_min_images,
               "data.enroll_images must be >= 1 and < data.identify_min_images", self.enroll_images)
        _check(0.0 < self.identify_stranger_rate < 1.0, "data.identify_stranger_rate must be in (0, 1)",
               self.identify_stranger_rate)
        _check(self.identify_gallery >= 0,
               "data.identify_gallery must be >= 0 (people in the gallery; 0 = the device's capacity)",
               self.identify_gallery)
        _check(self.threshold_from in THRESHOLD_SOURCES,
               f"data.threshold_from must be one of {', '.join(THRESHOLD_SOURCES)}", self.threshold_from)
        _check(0 <= self.workers <= 256, "data.workers must be in [0, 256]", self.workers)

    def data_path(self) -> Path:
        return Path(self.dir).expanduser() if self.dir else default_data_dir()

    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


EXTRA_KINDS = ("chips", "photos")  # extra.kind: see ExtraSettings
# names in extra.dirs meaning dataset_dir(name)
FETCHABLE_EXTRA = tuple(n for n, source in DATASETS.items() if source.kind)


@dataclass
class ExtraSettings:
    """Extra faces without identities, used only for distillation: the teacher labels them and
    the student imitates it (docs/model.md, "Extra faces"). Never used for validation, the
    threshold or the test.

    Attributes:
        dirs: folders of face images (searched recursively for .jpg/.jpeg/.png/.pgm/.bmp, as
            datasets are). A bare name that `tinyface data fetch` knows ("fairface") means that
            dataset in its default place ($TINYFACE_DATASETS, else ~/.cache/tinyface/datasets).
            Empty: no extra faces.
        kind: "chips" = already dlib face chips (the 5-point template at ``chip_padding``, as
            FairFace's are: no detector runs), "photos" = find and align the face like LFW's.
            One kind for every folder, or a list with one per folder of ``dirs``
            (``["chips", "photos"]``: FairFace's chips and a folder of photos).
            Whatever the kind, a face in a folder named after a validation or test person of
            LFW (``pins_Tom Cruise`` is Tom_Cruise) is dropped (see tinyface.data.extra).
        people: whether a folder's images sit in one folder per person (Pins: ``pins_Tom
            Cruise/``): its faces then have identities (their folder), which
            distill.identity_weight uses. One for every folder, or a list with one per folder.
        chip_padding: the padding the chips were cut with (dlib's convention; FairFace: 0.25).
        limit: use at most this many extra faces (a seeded sample); 0 = all.
        views: perturbed teacher views of every extra face (as distill.teacher_views).
        mixes: teacher mixes of every extra face with another extra face (as distill.teacher_mixes).
        max_test_distance: contamination filter: an extra face whose teacher embedding lies
            closer than this to any image of a test person is dropped. Euclidean distance
            between L2-normalised teacher embeddings (dlib's raw ones have norm ~1.42 on LFW's
            training people, so 0.33 is about dlib's 0.47; its same-person threshold 0.6 is about
            0.42 here). The one use of test images before the final evaluation; it steers nothing
            else (a `--quick` build: the test images it evaluates only). docs/data.md says how
            0.33 was chosen (on training people, not test ones).
        filter_validation: the same filter against every image of the validation people too, so
            that validation pairs, like test pairs, have no extra face that close: validation
            then reads as the test does (docs/model.md, "Why validation scores above the test").
    """

    dirs: list = field(default_factory=list)
    kind: list = field(default_factory=lambda: ["chips"])
    people: list = field(default_factory=lambda: [False])
    chip_padding: float = 0.25
    limit: int = 0
    views: int = 0
    mixes: int = 0
    max_test_distance: float = 0.33
    filter_validation: bool = False

    def validate(self) -> None:
        _check(all(isinstance(d, str) and d for d in self.dirs), "extra.dirs must be a list of folder names",
               self.dirs)
        if isinstance(self.kind, str):  # one kind for every folder, set in code
            self.kind = [self.kind]
        _check(bool(self.kind) and all(k in EXTRA_KINDS for k in self.kind),
               f"extra.kind must be one of {', '.join(EXTRA_KINDS)} (or a list of them, one per folder)", self.kind)
        _check(len(self.kind) == 1 or len(self.kind) == len(self.dirs),
               "extra.kind must be one kind, or one per folder of extra.dirs", self.kind)
        if isinstance(self.people, bool):
            self.people = [self.people]
        _check(bool(self.people) and all(isinstance(v, bool) for v in self.people),
               "extra.people must be true or false (or a list of them, one per folder)", self.people)
        _check(len(self.people) == 1 or len(self.people) == len(self.dirs),
               "extra.people must be one value, or one per folder of extra.dirs", self.people)
        kinds, people = self.kinds(), self.people_folders()
        # a known set read the wrong way is garbage
        for name, kind, has_people in zip(self.dirs, kinds, people, strict=True):
            source = DATASETS[name] if name in FETCHABLE_EXTRA else None
            if source is None:
                continue
            if kind != source.kind:
                want = [DATASETS[d].kind if d in FETCHABLE_EXTRA else k for d, k in zip(self.dirs, kinds, strict=True)]
                _check(False, f"extra.kind for {name} must be {source.kind!r} (its images are "
                              f"{'face chips' if source.kind == 'chips' else 'photos'}): "
                              f"--set 'extra.kind={_toml_value(want)}'", self.kind)
            if has_people and not source.people:
                _check(False, f"extra.people cannot be true for {name}: its images are not in one folder per person",
                       self.people)
        _check(len(set(self.kind)) == 1 or not (self.views or self.mixes),
               "extra.views and extra.mixes need the same extra.kind for every folder", self.kind)
        _check(0.0 <= self.chip_padding <= 1.0, "extra.chip_padding must be in [0, 1]", self.chip_padding)
        _check(self.limit >= 0, "extra.limit must be >= 0", self.limit)
        _check(0 <= self.views <= 16, "extra.views must be in [0, 16]", self.views)
        _check(0 <= self.mixes <= 64, "extra.mixes must be in [0, 64]", self.mixes)
        _check(0.0 <= self.max_test_distance <= 2.0, "extra.max_test_distance must be in [0, 2]",
               self.max_test_distance)
        _check(isinstance(self.filter_validation, bool), "extra.filter_validation must be true or false",
               self.filter_validation)

    def kinds(self) -> list[str]:
        """The kind of every folder of ``dirs``."""
        return self._per_folder(self.kind)

    def people_folders(self) -> list[bool]:
        """Whether each folder of ``dirs`` holds one folder per person."""
        return self._per_folder(self.people)

    def _per_folder(self, value) -> list:
        """A setting given once for every folder, or as a list with one per folder, as a list per folder."""
        values = [value] if isinstance(value, (str, bool)) else list(value)
        return values * len(self.dirs) if len(values) == 1 else values

    def paths(self) -> list[Path]:
        """The folders of ``dirs``, with fetchable names resolved to their default place."""
        return [dataset_dir(d) if d in FETCHABLE_EXTRA else Path(d).expanduser() for d in self.dirs]


@dataclass
class TeacherSettings:
    """The teacher whose embeddings the student learns to reproduce.

    Attributes:
        name: the teacher model; only dlib_resnet (dlib's 128-D ResNet) exists.
        chip_size: side of the teacher's face chip, in pixels (dlib's ResNet expects 150).
        chip_padding: margin around the face template for the teacher's chip (dlib's 0.25).
        flip_average: also embed the mirrored chip and average the two (2x the teacher time).
    """

    name: str = "dlib_resnet"
    chip_size: int = 150
    chip_padding: float = 0.25
    flip_average: bool = False

    def validate(self) -> None:
        _check(self.name == "dlib_resnet", "teacher.name must be 'dlib_resnet' (the only teacher)", self.name)
        _check(self.chip_size == 150, "teacher.chip_size must be 150 (what dlib's ResNet expects)", self.chip_size)
        _check(0.0 <= self.chip_padding <= 1.0, "teacher.chip_padding must be in [0, 1]", self.chip_padding)


@dataclass
class StudentSettings:
    """The small CNN that runs on the board.

    Attributes:
        arch: architecture name: dsnet (depthwise-separable blocks), dsnet_mlp (the same with a
            hidden fully-connected layer before the embedding), dsnet_fc (the same blocks, then a
            fully-connected layer over the whole last feature map instead of the 1x1 head and the
            global depthwise convolution) or tinycnn (plain convolutions).
        width: channel-width multiplier of the architecture.
        embedding_dim: length of the face embedding the student outputs; the student imitates
            the teacher's embedding directly, so it is the teacher's 128.
        branches: 0 trains the network as it runs. N > 0 trains every convolution of the trunk
            and head over-parameterised (MobileOne): N parallel convolutions with batch norm,
            plus a 1x1 branch next to a 3x3 one and a batch-norm-only identity branch where
            shapes allow, folded into the single convolution after distillation. The board runs
            the same network at the same cost; distillation takes longer (N = 1: about 1.4x
            per step, N = 2: about 2x).
        repeats: depthwise-separable blocks in each of the three stages of the dsnet
            architectures (at 1/4, 1/8 and 1/16 of the input's side). A block costs about the
            same MACs in every stage, but one at 1/16 holds 16 times the parameters of one at 1/4.
    """

    arch: str = "dsnet"
    width: float = 1.0
    embedding_dim: int = 128
    branches: int = 0
    repeats: list = field(default_factory=lambda: list(DSNET_REPEATS))

    def validate(self) -> None:
        _check(self.arch in STUDENT_ARCHS, f"student.arch must be one of {', '.join(STUDENT_ARCHS)}", self.arch)
        _check(0 < self.width <= 8, "student.width must be in (0, 8]", self.width)
        _check(self.embedding_dim == 128, "student.embedding_dim must be 128, the teacher's embedding size",
               self.embedding_dim)
        _check(0 <= self.branches <= 4, "student.branches must be in [0, 4]", self.branches)
        _check(isinstance(self.repeats, list) and len(self.repeats) == len(DSNET_REPEATS)
               and all(isinstance(r, int) and not isinstance(r, bool) and 1 <= r <= 8 for r in self.repeats),
               f"student.repeats must be {len(DSNET_REPEATS)} whole numbers in [1, 8], one per stage", self.repeats)
        _check(self.arch != "tinycnn" or self.repeats == list(DSNET_REPEATS),
               "student.repeats applies to the dsnet architectures, not tinycnn", self.repeats)

    def key(self) -> dict:
        """The settings a stage's fingerprint holds: all of them, ``repeats`` only when it is not
        the default (so every stage built before the setting existed stays valid)."""
        key = dataclasses.asdict(self)
        if key["repeats"] == list(DSNET_REPEATS):
            del key["repeats"]
        return key


@dataclass
class DistillSettings:
    """Training the student on the teacher's embeddings.

    Attributes:
        epochs: training epochs.
        batch_size: images per training step.
        learning_rate: initial learning rate.
        cosine_weight: weight of the cosine loss between student and teacher embeddings.
        relation_weight: weight of the relation loss: the squared difference between the
            student's and the teacher's pairwise similarities within a batch.
        target_smoothing: pull each teacher target toward its identity's centroid by this
            share (training people with several images); 0 = the image's own embedding.
        alpha: weight of identity-classification distillation (Hinton); 0 = off.
        temperature: softmax temperature of that classification distillation.
        augment: flip, small shifts and rotations, brightness and contrast during training.
        light_augment: the share of training samples (with augment) the student sees badly lit,
            half of them very dark and then brightened as the pipeline brightens underexposed
            faces (crushed, posterised, noisy), half lit from one side; the target stays the
            teacher's embedding of the well-lit face. For users' dark photos (docs/model.md,
            "Badly lit faces"). 0 = off.
        teacher_views: perturbed views of every training image (mirror, rotation, scale,
            shift), each with the teacher's embedding *of that view*, so the student and the
            teacher always see the same image (consistent teaching). One-time cost: about
            10 ms per view on 2 cores, cached. 0 = off.
        teacher_mixes: blends of every training image with an image of another person
            (``lam * a + (1 - lam) * b``, lam in [0.2, 0.8]), each with the teacher's embedding
            of the blend: faces of no one in the data, where the student imitates the teacher
            too. One-time cost: about 5 ms per mix on 2 cores, cached. 0 = off.
        relit_views: badly lit copies of every training photo (LFW's, not the extra faces'):
            view v very dark or dim when v is even, lit from one side when odd
            (tinyface.data.hard_photos), each cut as the pipeline cuts a user's photo, so an
            underexposed face is brightened as it would be on the device's host. The target
            stays the teacher's embedding of the untouched photo. One-time cost: a few ms per
            view on 2 cores, cached. 0 = off.
        tight_views: tightly cropped copies of every training photo (LFW's): a square of
            0.6-0.95 of the face box, so forehead and chin may be cut, as cameras and face
            datasets deliver faces; cut as a user's photo is (past the photo's edge filled from
            the edge). The target stays the teacher's embedding of the untouched photo. 0 = off.
        search_trials: Optuna TPE trials over alpha, temperature and learning rate, on
            validation data only; 0 = off. Each trial trains as the final distillation does (its
            loss, branches, neighbours, ``ema``), for a third of ``epochs``, and is scored by
            validation AUC; the final training takes the best trial's three values. Every trial
            scored is saved (``distill/search.json``): a build stopped in the search goes on
            after its last trial scored, to the search of a build never stopped.
        center: the mean teacher embedding subtracted from every target: "training" = of the
            training people's images; "all" = of those and the extra faces (extra.dirs) together.
            dlib separates some groups of faces less well once LFW's mean is subtracted
            (docs/second_teacher.md); "all" centers on the faces the student actually sees.
        neighbours: 0 = random batches. K > 0: half of every batch are random training faces
            and the other half one of each one's K nearest original faces by the teacher
            (other photos of the person, look-alikes: the pairs a threshold must separate), and
            the relation loss also runs over those pairs (docs/model.md, "Loss"). Costs about a
            minute a build to find the neighbours.
        identity_weight: weight of an identity term next to distillation (0 = off): every
            training face of a person with >= 2 photos (LFW's training people, and extra faces
            in people folders, ``extra.people``) is classified among those people, against the
            teacher's centroid of each (fixed, not learned), with a cosine margin
            (CosFace: ``30 * (cos - identity_margin)`` for the right person). The student is
            asked to put one person's photos closer together than the teacher merely does.
        identity_margin: that cosine margin.
        assistant: a teaching assistant: a trained, larger student (a model bundle folder, or a
            released model's name such as "esp32s3") whose embeddings join the teacher's as
            targets. It embeds its own crops of every training row (its size and padding, from
            its model.json); one-time cost: about a millisecond a face on 2 cores, cached.
            On `esp32` it speeds up learning but does not raise the final accuracy (docs/model.md,
            "Teaching assistant" and run T1). Refused when its model.json records another
            data.seed or val_fraction, or a lower data.test_filter, than this build's: it may have
            trained on faces this build keeps apart. "" = none.
        assistant_weight: the assistant's share of each target:
            ``l2n((1 - w) * teacher + w * assistant)``; 1 = the assistant alone.
        seed: the training's own seed (the student's initial weights, the shuffles and the
            augmentation of distillation, pruning and QAT), so that one recipe can be trained
            several times on the same split, teacher labels and validation people (docs/model.md,
            "Telling runs apart"). -1 = data.seed, as before it existed.
        ema: keep an exponential moving average of the student's weights during distillation
            (momentum ``ema`` a step: about ``1 / (1 - ema)`` steps remembered) and end with it
            instead of the last step's weights (Polyak averaging); every batch norm's statistics
            are then measured again for the averaged weights on 2,048 training crops. Measured on
            `esp32` (docs/model.md, runs EM1 and EM1b): no gain, no preset uses it. 0 = off.
    """

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-3
    cosine_weight: float = 1.0
    relation_weight: float = 1.0
    target_smoothing: float = 0.0
    alpha: float = 0.0
    temperature: float = 4.0
    augment: bool = True
    light_augment: float = 0.0
    search_trials: int = 0
    teacher_views: int = 0
    teacher_mixes: int = 0
    relit_views: int = 0
    tight_views: int = 0
    center: str = "training"
    neighbours: int = 0
    identity_weight: float = 0.0
    identity_margin: float = 0.2
    assistant: str = ""
    assistant_weight: float = 0.5
    seed: int = -1
    ema: float = 0.0

    def training_seed(self, data_seed: int) -> int:
        """The seed training draws from: ``seed``, or data.seed when it is -1."""
        return data_seed if self.seed == -1 else self.seed

    def validate(self) -> None:
        _check(self.seed >= -1, "distill.seed must be >= 0, or -1 for data.seed", self.seed)
        _check(0.0 <= self.ema < 1.0, "distill.ema must be in [0, 1): 0 = off, 0.999 = about 1,000 steps",
               self.ema)
        _check(0.0 <= self.assistant_weight <= 1.0, "distill.assistant_weight must be in [0, 1]",
               self.assistant_weight)
        _check(self.identity_weight >= 0, "distill.identity_weight must be >= 0", self.identity_weight)
        _check(0.0 <= self.identity_margin <= 1.0, "distill.identity_margin must be in [0, 1]", self.identity_margin)
        _check(self.center in ("training", "all"), 'distill.center must be "training" or "all"', self.center)
        _check(0 <= self.neighbours <= 100, "distill.neighbours must be in [0, 100]", self.neighbours)
        _check_range("distill.epochs", self.epochs)
        _check(0 <= self.teacher_views <= 16, "distill.teacher_views must be in [0, 16]", self.teacher_views)
        _check(0 <= self.teacher_mixes <= 64, "distill.teacher_mixes must be in [0, 64]", self.teacher_mixes)
        _check(0 <= self.relit_views <= 8, "distill.relit_views must be in [0, 8]", self.relit_views)
        _check(0 <= self.tight_views <= 8, "distill.tight_views must be in [0, 8]", self.tight_views)
        _check(1 <= self.batch_size <= 8192, "distill.batch_size must be in [1, 8192]", self.batch_size)
        _check(self.learning_rate > 0, "distill.learning_rate must be > 0", self.learning_rate)
        _check(self.cosine_weight >= 0, "distill.cosine_weight must be >= 0", self.cosine_weight)
        _check(self.relation_weight >= 0, "distill.relation_weight must be >= 0", self.relation_weight)
        _check(0.0 <= self.target_smoothing <= 1.0, "distill.target_smoothing must be in [0, 1]", self.target_smoothing)
        _check(0.0 <= self.alpha <= 1.0, "distill.alpha must be in [0, 1]", self.alpha)
        _check(self.temperature > 0, "distill.temperature must be > 0", self.temperature)
        _check(0.0 <= self.light_augment <= 1.0, "distill.light_augment must be in [0, 1]", self.light_augment)
        _check(0 <= self.search_trials <= 1000, "distill.search_trials must be in [0, 1000]", self.search_trials)


@dataclass
class PruneSettings:
    """Magnitude pruning (tfmot) with a polynomial-decay schedule, then fine-tuning.

    Attributes:
        enabled: prune at all.
        target_sparsity: share of weights set to zero at the end of the schedule.
        epochs: fine-tuning epochs while pruning.
    """

    enabled: bool = True
    target_sparsity: float = 0.5
    epochs: int = 4

    def validate(self) -> None:
        _check(0.0 <= self.target_sparsity < 1.0, "prune.target_sparsity must be in [0, 1)", self.target_sparsity)
        _check(1 <= self.epochs <= MAX_EPOCHS, f"prune.epochs must be in [1, {MAX_EPOCHS}]", self.epochs)


@dataclass
class QuantizeSettings:
    """Full-integer int8 quantization.

    Attributes:
        calibration_images: training images used as representative data (never test images).
        qat: also try quantization-aware training (prune-preserving after pruning; every
            preset turns it on); the build keeps the better int8 model by validation accuracy.
        qat_epochs: epochs of quantization-aware training.
    """

    calibration_images: int = 500
    qat: bool = False
    qat_epochs: int = 2

    def validate(self) -> None:
        _check(1 <= self.calibration_images <= 100_000, "quantize.calibration_images must be in [1, 100000]",
               self.calibration_images)
        _check(1 <= self.qat_epochs <= MAX_EPOCHS, f"quantize.qat_epochs must be in [1, {MAX_EPOCHS}]", self.qat_epochs)


# The firmware's int8 kernel sets (firmware.kernels): TFLM's with ESP-NN, or those generated for
# the model (tinyface.codegen.kernels). Board files carry a MAC budget and a cost model per set.
FIRMWARE_KERNELS = ("esp-nn", "generated")


@dataclass
class FirmwareSettings:
    """The generated firmware project.

    Attributes:
        board: board name, one of the files in boards/ (`tinyface boards` lists them).
        arena_margin: extra tensor arena on top of the usage TFLM recorded, as a share of it
            (the scratch ESP-NN's S3 and P4 kernels ask for is added on its own: docs/firmware.md).
        kernels: "esp-nn" (TFLM's kernels, ESP-NN's where esp-tflite-micro has them) or
            "generated" (int8 kernels specialised for the model's shapes, bit-exact with TFLM's
            reference kernels; docs/firmware.md).
        identify_threshold: the cosine similarity at or above which the board's IDENTIFY accepts
            its best match; 0 = the model's own (model.json, chosen on validation people for 5%
            of strangers). `tinyface evaluate --model M --data YOUR_PEOPLE --target-far F` prints the one
            that gives false-accept rate F on your own people (thresholds carry over between
            face sets worse than models do). Used by `flash` and `emulate`.
    """

    board: str = "esp32"
    arena_margin: float = 0.15  # DEFAULT_ARENA_MARGIN, below
    kernels: str = "esp-nn"
    identify_threshold: float = 0.0

    def validate(self) -> None:
        _check(0.0 <= self.arena_margin <= 2.0, "firmware.arena_margin must be in [0, 2]", self.arena_margin)
        _check(0.0 <= self.identify_threshold < 1.0,
               "firmware.identify_threshold must be in [0, 1) (0: the model's own)", self.identify_threshold)
        _check(self.kernels in FIRMWARE_KERNELS, f"firmware.kernels must be one of {', '.join(FIRMWARE_KERNELS)}",
               self.kernels)


# The one default for functions that take the margin without the settings (codegen, device).
DEFAULT_ARENA_MARGIN = FirmwareSettings.arena_margin


@dataclass
class BenchSettings:
    """Benchmarking a board (or the emulator) over serial.

    Attributes:
        images: held-out aligned faces streamed to the board (at least 2, one pair; at most the 1,549
            LFW's pairsDevTest holds).
        timeout_s: seconds to wait for each reply.
        retries: times a request is re-sent after a timeout or a corrupted reply.
    """

    images: int = 1000
    timeout_s: float = 5.0
    retries: int = 3

    def validate(self) -> None:
        for name in ("images", "timeout_s", "retries"):
            _check_range(f"bench.{name}", getattr(self, name))


@dataclass
class Settings:
    data: DataSettings = field(default_factory=DataSettings)
    extra: ExtraSettings = field(default_factory=ExtraSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    student: StudentSettings = field(default_factory=StudentSettings)
    distill: DistillSettings = field(default_factory=DistillSettings)
    prune: PruneSettings = field(default_factory=PruneSettings)
    quantize: QuantizeSettings = field(default_factory=QuantizeSettings)
    firmware: FirmwareSettings = field(default_factory=FirmwareSettings)
    bench: BenchSettings = field(default_factory=BenchSettings)

    def validate(self) -> "Settings":
        for f in fields(self):
            getattr(self, f.name).validate()
        return self

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + "".join(_TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " or c == "\x7f" else c)
                         for c in str(value)) + '"'


# A TOML basic string holds no control character but tab: each is escaped (a folder name with a
# newline, from --set, made --print-config's output a file that is not TOML).
_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _check(ok: bool, message: str, value: Any = None) -> None:
    if not ok:
        raise ConfigError(message if value is None else f"{message}, got {value!r}")


def _check_range(key: str, value) -> None:
    """``value`` of the setting ``key`` is in its OPTION_SETTING_RANGES interval, else a ConfigError."""
    interval = OPTION_SETTING_RANGES[key]
    _check(value in interval, f"{key} must be in {interval}", value)


def apply(settings: Settings, values: dict[str, Any], source: str) -> Settings:
    """Apply ``{section: {key: value}}`` onto ``settings``; unknown names are errors naming ``source``."""
    known_sections = {f.name: f for f in fields(settings)}
    for section, entries in values.items():
        if section not in known_sections:
            raise ConfigError(f"unknown section [{section}] in {source}",
                              hint=f"known sections: {', '.join(known_sections)}")
        if not isinstance(entries, dict):
            raise ConfigError(f"[{section}] in {source} must be a table")
        target = getattr(settings, section)
        known_keys = {f.name: f for f in fields(target)}
        for key, value in entries.items():
            if key not in known_keys:
                raise ConfigError(f"unknown key '{section}.{key}' in {source}",
                                  hint=f"known keys of [{section}]: {', '.join(known_keys)}")
            setattr(target, key, _coerce(value, known_keys[key].type, f"{section}.{key}", source))
    return settings


def _coerce(value: Any, type_name: Any, name: str, source: str) -> Any:
    """Check ``value`` against the field's type; no silent conversions from strings
    (``crop_size = "48"`` is an error), but an int is a fine float and vice versa when whole."""
    expected = type_name if isinstance(type_name, str) else type_name.__name__
    if expected == "bool" and isinstance(value, bool):
        return value
    if expected == "int" and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        # 5.0 is 5, as 5 is a fine float; but not past 2**53, where a float is no longer the
        # number written (1e99 would become a 100-digit integer, and a range error would print it)
        if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_INT:
            return int(value)
    if expected == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):  # TOML's inf and nan are floats, and inf passed every "> 0" check
            return float(value)
        raise ConfigError(f"'{name}' in {source} must be a finite number, got {value!r}",
                          hint="docs/config.md lists every setting; "
                               "`tinyface build --print-config` shows the values in use")
    if expected == "list" and isinstance(value, list):
        return list(value)  # the section's validate() checks the items
    if expected == "list" and isinstance(value, str):  # --set extra.dirs=fairface: one folder
        return [value] if value else []
    if expected == "list" and isinstance(value, bool):  # --set extra.people=true: one value for every folder
        return [value]
    if expected == "str" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)  # --set data.dir=2024 arrives as an int
    raise ConfigError(f"'{name}' in {source} must be {_TYPE_WORDS.get(expected, expected)}, got {value!r}",
                      hint="docs/config.md lists every setting; "
                           "`tinyface build --print-config` shows the values in use")


_EXACT_FLOAT_INT = 2**53  # every whole float up to this is the integer it reads as
_TYPE_WORDS = {"list": "a list", "int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def require_config_file(path: str | os.PathLike, found: bool = False) -> Path:
    """``path`` as a Path if it is a file this process can read; a ConfigError naming it otherwise
    (missing, a folder, or unreadable: one exit code, 3, for a settings file that cannot be used).
    ``found``: ``path`` is the ./tinyface.toml every command reads, not one named by --config."""
    path = Path(path)
    hint = ("every command reads ./tinyface.toml: make it a settings file, or move it away" if found
            else "check the path given to --config, or leave it out to use ./tinyface.toml")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder, not a settings file", hint=hint)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", hint=hint)
    if not os.access(path, os.R_OK):
        raise ConfigError(f"cannot read config file {path}: permission denied", hint=hint)
    return path


@dataclass(frozen=True)
class SettingsFile:
    """A settings file as read once: its path and its parsed TOML (``path`` None: there was none,
    no --config and no ./tinyface.toml). The root command reads it; each command's :func:`load`
    applies it, so a command never reads the file twice (nor sees it change in between)."""

    path: Path | None
    values: dict


def read_settings_file(path: str | os.PathLike | None = None) -> SettingsFile:
    """``path`` (or ./tinyface.toml if present) read and parsed as TOML, not yet checked against
    the settings (:func:`load` does that).

    Raises:
        ConfigError: the file is missing (when named explicitly), a folder, unreadable, or not valid TOML.
    """
    # a ./tinyface.toml that is a folder, unreadable or a broken link is refused as a named one is,
    # not silently skipped (its settings would be lost without a word)
    found = path is None and os.path.lexists(CONFIG_FILENAME)
    if found:
        path = CONFIG_FILENAME
    if path is None:
        return SettingsFile(None, {})
    path = require_config_file(path, found=found)
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad writes one) is not TOML's first character
        values = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:  # what require_config_file cannot foresee: an I/O error, a race
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    return SettingsFile(path, values)


def load(path: str | os.PathLike | SettingsFile | None = None, overrides: dict[str, dict[str, Any]] | None = None,
         base: dict[str, dict[str, Any]] | None = None, quick: dict[str, dict[str, Any]] | None = None) -> Settings:
    """Load settings: defaults, then ``base`` (a preset), then ``path`` (or ./tinyface.toml
    if present; or a :class:`SettingsFile` already read), then ``quick`` (`build --quick`'s
    smoke-test values), then ``overrides`` (--set, then explicit options).

    Raises:
        ConfigError: the file is missing (when named explicitly), not valid TOML, has an
            unknown key, a value of the wrong type or out of range.
    """
    settings = Settings()
    if base:
        apply(settings, base, "the preset")
    file = path if isinstance(path, SettingsFile) else read_settings_file(path)
    if file.path is not None:
        apply(settings, file.values, str(file.path))
    if quick:
        apply(settings, quick, "--quick")
    if overrides:
        apply(settings, {k: v for k, v in overrides.items() if v}, "command-line options")
    try:
        return settings.validate()
    except ConfigError as exc:
        if exc.hint:
            raise
        raise ConfigError(str(exc), hint="docs/config.md lists every setting; "
                                         "`tinyface build --print-config` shows the values in use") from None


@dataclass(frozen=True)
class Preset:
    """A board preset: a settings file in presets/ (the tinyface.toml schema), applied as a
    layer under tinyface.toml, --quick and --set. docs/model.md says how each was chosen."""

    name: str
    values: dict  # {section: {key: value}}, as in the file
    path: Path

    def settings(self) -> dict[str, dict[str, Any]]:
        """The settings this preset fixes (a copy: callers may change it)."""
        return {section: dict(entries) for section, entries in self.values.items()}

    @property
    def board(self) -> str:
        return self.values.get("firmware", {}).get("board", FirmwareSettings.board)

    @property
    def kernels(self) -> str:
        """The preset's firmware.kernels: its board's MAC budget is the one of this kernel set."""
        return self.values.get("firmware", {}).get("kernels", FirmwareSettings.kernels)


# `tinyface build`'s preset, and the model a board without its own falls back to: the one that fits
# every board (boards/*.toml mac_budget).
DEFAULT_PRESET = "esp32"


def preset_names() -> list[str]:
    """The shipped presets, by file name (presets/<name>.toml)."""
    from tinyface.resources import presets_dir

    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def load_preset(name: str) -> Preset:
    """The preset ``name``, checked against the settings schema (an unknown key or a bad value
    in a preset file fails as it would in tinyface.toml).

    Raises:
        ConfigError: no such preset, or the file is not valid.
    """
    from tinyface.resources import presets_dir

    path = presets_dir() / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}", hint=f"known: {', '.join(preset_names())}")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    apply(Settings(), values, str(path)).validate()
    return Preset(name, values, path)


# How to write a value that starts as a TOML array, table or string, by its first character.
_SET_EXAMPLES = {"[": '["a", "b"]', "{": '{ key = "value" }', '"': '"text"'}


def parse_set_option(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Turn ``--set section.key=value`` items into an overrides dict (values parsed as TOML; a
    value that is not TOML is taken as a string, ``data.dir=/x/y z``).

    Raises:
        ConfigError: an item is not ``section.key=value``, or its value starts as a TOML array,
            table or string (``[``, ``{``, ``"``) and is not valid TOML (``extra.dirs=[1,2``):
            taken as a string, it would be a setting nobody meant.
    """
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or not section or not key:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        raw = raw.strip()
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError as exc:
            if raw[:1] in _SET_EXAMPLES:
                why = str(exc).split(" (at ")[0]  # its position is in "v = ...", not in what was typed
                raise ConfigError(
                    f"--set {name.strip()}: {raw} is not a valid TOML value: {why}",
                    hint=f"write it as TOML inside shell quotes, e.g. --set '{name.strip()}={_SET_EXAMPLES[raw[0]]}'"
                         + (", with \\\\ for each backslash" if raw[0] == '"' else "")) from None
            value = raw
        overrides.setdefault(section, {})[key] = value
    return overrides


# --- reference documentation (docs/config.md is generated from the docstrings above) -------

DOCS_BEGIN = "<!-- BEGIN settings reference: generated by `python -m tinyface.config docs/config.md`; do not edit -->"
DOCS_END = "<!-- END settings reference -->"


def field_docs(section_cls: type) -> tuple[str, dict[str, str]]:
    """The summary line and the ``Attributes:`` entries of a settings class's docstring."""
    import inspect

    doc = inspect.cleandoc(section_cls.__doc__ or "")
    summary = doc.split("\n\n", 1)[0].replace("\n", " ")
    entries: dict[str, str] = {}
    current = None
    in_attrs = False
    for line in doc.splitlines():
        if line.strip() == "Attributes:":
            in_attrs = True
            continue
        if not in_attrs or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        name, sep, text = line.strip().partition(":")
        if indent <= 4 and sep and name.isidentifier():
            current = name
            entries[name] = text.strip()
        elif current:
            entries[current] += " " + line.strip()
    return summary, entries


def reference_markdown() -> str:
    """One table per section: key, type, default and meaning of every setting."""
    out = []
    for section in fields(Settings):
        cls = section.default_factory
        summary, docs = field_docs(cls)
        out.append(f"### [{section.name}]\n\n{summary}\n")
        out.append("| key | type | default | meaning |")
        out.append("| --- | --- | --- | --- |")
        for f in fields(cls):
            type_name = f.type if isinstance(f.type, str) else f.type.__name__
            default = _toml_value(getattr(cls(), f.name))
            meaning = docs.get(f.name, "").replace("|", r"\|")
            out.append(f"| `{f.name}` | {type_name} | `{default}` | {meaning} |")
        out.append("")
    return "\n".join(out)


def write_reference(path: str | os.PathLike) -> bool:
    """Replace the generated block of ``path`` (docs/config.md) with :func:`reference_markdown`."""
    from tinyface.fsutil import write_if_changed

    text = Path(path).read_text(encoding="utf-8")
    head, _, rest = text.partition(DOCS_BEGIN)
    _, _, tail = rest.partition(DOCS_END)
    new = f"{head}{DOCS_BEGIN}\n\n{reference_markdown()}\n{DOCS_END}{tail}"
    return write_if_changed(path, new.encode("utf-8"))


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 1:
        print("updated" if write_reference(sys.argv[1]) else "up to date", sys.argv[1])
    else:
        print(reference_markdown())
