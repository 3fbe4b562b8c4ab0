"""Not a benchmark: what several benchmarks share, defined once. A script imports it as it
imports benchmarks/_script.py (benchmarks/, beside the script, is on ``sys.path`` when a
script runs):

- the validation people of a preset's builds, loaded as `tinyface build` loads them
  (validation_settings, models_on_validation and their command line, validation_parser);
- the paired comparison of two models' scores on the same pairs (compare, paired_intervals,
  mcnemar_p, roc_auc), with a bootstrap over people;
- a `tinyface emulate` a script starts, and why it did not start (start_device);
- a folder-per-person selection set (people_faces) and the one check a ``--people DIR``
  passes before minutes of work (check_people): a folder, not one a bundle distilled from, and
  none of LFW's test people in it (refuse_test_people);
- the emulated ESP32-C3 builds' faces, pty session, flash size and per-op table
  (lfw_dir, lfw_face_paths, lfw_faces, serve, flash_bytes, print_op_table): kernels.py,
  xtensa_kernels.py, s3_arena.py and teacher.py measure on the same photos of LFW's
  training-split people.

Heavy imports (the build data, the aligner) happen inside the functions that need them.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinyface import config
from tinyface.errors import DataError, DeviceError, ModelError
from tinyface.evaluation.metrics import auc, best_accuracy, best_threshold, roc_curve

BOOTSTRAP = 2000  # paired bootstrap draws over people (compare)


# --- the validation people of a preset's builds -------------------------------------------

def validation_settings(preset_name: str, bundles: dict, extra_faces: bool = False) -> config.Settings:
    """The preset's settings for loading its validation people only (no teacher views, mixes or
    extra faces, which only training reads; with ``extra_faces`` the preset's extra faces too,
    filtered as the build filters them, without their views or mixes), drawn with the split
    settings the bundles' builds used (recorded_split).

    Raises:
        tinyface.errors.ModelError: a bundle of ``{folder: bundle}`` takes other crops than the
            preset cuts, or two bundles were built with other validation people.
    """
    import dataclasses

    extra = {"views": 0, "mixes": 0} if extra_faces else {"dirs": []}
    settings = config.load(None, {"distill": {"teacher_views": 0, "teacher_mixes": 0}, "extra": extra},
                           base=config.load_preset(preset_name).settings())
    split = recorded_split(preset_name, settings.data, bundles)
    settings = dataclasses.replace(settings, data=dataclasses.replace(settings.data, **split))
    d = settings.data
    shape = [1, d.crop_size, d.crop_size, d.channels]
    for folder, bundle in bundles.items():
        meta = bundle.meta
        if list(meta.input_shape) != shape or meta.crop_padding != d.padding:
            raise ModelError(f"{folder} takes {meta.input_shape} crops at padding {meta.crop_padding}, preset "
                             f"{preset_name} cuts {shape} at {d.padding}: not this bundle's preset")
    return settings


def recorded_split(preset_name: str, preset_data, bundles: dict) -> dict:
    """The split settings (data.seed, data.val_fraction, data.test_filter) that drew the validation
    people of the bundles' builds: each bundle's model.json record (``extra.split``), the preset's
    for a bundle written before builds recorded it. Says on stderr where a recorded value is not
    the preset's.

    Raises:
        tinyface.errors.ModelError: two bundles' builds drew different validation people (no one
            set of people is unseen by both).
    """
    from tinyface.model.bundle import SPLIT_SETTINGS, split_record

    preset_split = split_record(preset_data)
    chosen, chosen_by = None, None
    for folder, bundle in bundles.items():
        split = {**preset_split, **bundle.meta.split}
        if chosen is not None and split != chosen:
            differ = ", ".join(f"data.{k} {chosen[k]} and {split[k]}" for k in SPLIT_SETTINGS if chosen[k] != split[k])
            raise ModelError(f"{chosen_by} and {folder} were built with other validation people ({differ}): "
                             "compare bundles of one split")
        chosen, chosen_by = split, folder
    chosen = chosen or preset_split
    for name in SPLIT_SETTINGS:
        if chosen[name] != preset_split[name]:
            print(f"validation people drawn with model.json's data.{name}={chosen[name]} "
                  f"(preset {preset_name}: {preset_split[name]})", file=sys.stderr)
    return chosen


def validation_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of the benchmarks that compare bundles on a preset's validation people:
    ``--model`` (repeatable) and ``--preset``; a benchmark may add its own options."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="bundle folder, e.g. models/esp32 (repeatable)")
    ap.add_argument("--preset", required=True, help="the preset whose validation people to use, e.g. esp32")
    return ap


def load_bundles(folders) -> dict:
    """``{folder: bundle}`` of the bundle folders given (model.json validated, sha256 checked)."""
    from tinyface.model.bundle import load_bundle

    return {folder: load_bundle(Path(folder)) for folder in folders}


def models_on_validation(doc: str, extra_faces: bool = False, args: argparse.Namespace | None = None,
                         bundles: dict | None = None):
    """``({folder: bundle}, preset name, settings, build data)`` for the command line of
    :func:`validation_parser` (``args``, parsed, or parsed here; ``bundles``: args.model's, where
    the caller loaded them already); the build data's ``val`` are the validation faces, its
    ``extra`` the preset's extra faces when ``extra_faces`` (validation_settings)."""
    from tinyface.train.build_data import load_build_data

    args = args or validation_parser(doc).parse_args()
    bundles = bundles if bundles is not None else load_bundles(args.model)
    settings = validation_settings(args.preset, bundles, extra_faces)
    return bundles, args.preset, settings, load_build_data(settings)


# --- two models' scores on the same pairs ---------------------------------------------------

def roc_auc(scores: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None) -> float:
    """(Weighted) area under the ROC curve, as the build's reports compute it (tinyface.evaluation.
    metrics): the chance that a genuine pair outscores an impostor pair, ties counting half."""
    return auc(*roc_curve(scores, same, weights))


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p for ``only_a`` pairs that only model A decides right and
    ``only_b`` that only B does (a binomial test of the discordant pairs at one half)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n  # exact ints: no overflow
    return min(1.0, 2.0 * tail)


def paired_intervals(ref: np.ndarray, other: np.ndarray, same: np.ndarray, person_a: np.ndarray,
                     person_b: np.ndarray, draws: int = BOOTSTRAP, seed: int = 0) -> dict:
    """95% intervals of ``other`` minus ``ref`` (pair scores of two models on the same pairs)
    from a bootstrap over people (benchmarks/compare_runs.py's docstring); ``person_a``/``person_b``:
    each pair's two people as indices. Returns ``{"accuracy": (lo, hi), "auc": (lo, hi)}``."""
    rng = np.random.default_rng(seed)
    # the people behind the pairs, numbered 0..P-1 (a person in no pair is not drawn)
    _, numbered = np.unique(np.concatenate([person_a, person_b]), return_inverse=True)
    person_a, person_b = numbered[:len(same)], numbered[len(same):]
    people = int(numbered.max()) + 1
    acc, area = np.empty(draws), np.empty(draws)
    for i in range(draws):
        drawn = np.bincount(rng.integers(0, people, people), minlength=people).astype(float)
        w = np.where(same, drawn[person_a], drawn[person_a] * drawn[person_b])
        if not (w * same).any() or not (w * ~same).any():  # a draw without one kind of pair
            acc[i] = area[i] = np.nan
            continue
        acc[i] = best_accuracy(other, same, w) - best_accuracy(ref, same, w)
        area[i] = roc_auc(other, same, w) - roc_auc(ref, same, w)
    return {"accuracy": tuple(np.nanpercentile(acc, [2.5, 97.5])),
            "auc": tuple(np.nanpercentile(area, [2.5, 97.5]))}


def compare(ref: np.ndarray, other: np.ndarray, same: np.ndarray, person_a: np.ndarray, person_b: np.ndarray,
            draws: int = BOOTSTRAP) -> dict:
    """Every figure benchmarks/compare_runs.py prints for ``other`` against ``ref`` (pair scores,
    same pairs)."""
    right_ref = (ref >= best_threshold(ref, same)) == same
    right_other = (other >= best_threshold(other, same)) == same
    only_ref, only_other = int((right_ref & ~right_other).sum()), int((right_other & ~right_ref).sum())
    area = roc_auc(other, same)
    return {"accuracy": float(right_other.mean()), "difference": float(right_other.mean() - right_ref.mean()),
            "auc": area, "auc_difference": area - roc_auc(ref, same),
            "only_reference_right": only_ref, "only_this_right": only_other,
            "mcnemar_p": mcnemar_p(only_ref, only_other),
            **{f"{k}_interval": v
               for k, v in paired_intervals(ref, other, same, person_a, person_b, draws).items()}}


# --- a device a script starts (tinyface emulate) ---------------------------------------------

def start_device(command: list[str], what: str, wait_s: float) -> tuple[subprocess.Popen, str]:
    """Start ``command``, a `tinyface emulate` that prints its port's path as its first line on
    stdout, in a session of its own (``os.killpg(proc.pid, ...)`` ends it with what it started,
    --native's firmware).

    Args:
        what: the device as the error names it (``the emulator (tinyface emulate --baud 0)``).
        wait_s: how long it may take to print its port (a --native build compiles first).

    Returns:
        ``(its process, its port)``; its stdout is the process's pipe, its stderr a temp file.

    Raises:
        tinyface.errors.DeviceError: it printed no port within ``wait_s``: ``WHAT did not start:``
            its own last line on stderr, where it said one (a model the emulated board cannot
            run, a bad setting), else that no port came; it has been killed.
    """
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: the device never blocks on it
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        ready, _, _ = select.select([proc.stdout], [], [], wait_s)
        port = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if port.startswith("/dev/"):
            return proc, port
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        err.seek(0)
        said = err.read().decode(errors="replace").strip().splitlines()
    why = f": {said[-1]}" if said else f" (no port within {wait_s:g} s)"
    raise DeviceError(f"{what} did not start{why}")


# --- a folder-per-person selection set (--people DIR) ---------------------------------------

def people_faces(folder, settings, workers: int = 0):
    """The faces of a folder-per-person set, cut as ``settings`` cut the validation faces:
    ``(crops, teacher embeddings, labels, skipped)``, only photos with a detected face. Progress
    on stderr (a bar, or a line every few seconds into a file): a first pass aligns and embeds
    every photo (minutes for CelebA's 6,300), later ones read the cache.

    Raises:
        tinyface.errors.DataError: the folder holds LFW test people (refuse_test_people; a
            script has refused them already, in check_people). Before any face is cut.
    """
    from tinyface.console import progress_bar
    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import load_dataset
    from tinyface.data.faces import FaceSpec, prepare_faces

    dataset = load_dataset(Path(folder))
    paths = [image.path for image in dataset.images]
    refuse_test_people(folder, settings, paths)  # for a caller that skipped check_people
    with FaceCache(settings.data.cache_path()) as cache, progress_bar("photos", len(paths)) as advance:
        res = prepare_faces(paths, FaceSpec.from_settings(settings, teacher=True), cache, workers=workers,
                            progress=advance)
    keep = res.ok & res.detected
    labels = [image.identity for image, good in zip(dataset.images, keep, strict=True) if good]
    return res.crops[keep], res.teacher[keep], labels, int(len(paths) - keep.sum())


def refuse_test_people(folder, settings, paths=None) -> None:
    """Refuse a folder-per-person set that holds LFW test people (named after one, as the build's
    name filter matches them): choices made on it would be made on the held-out test. Nothing
    where the settings' LFW folder has no peopleDevTest.txt.

    Args:
        paths: the set's photos, where the caller listed them (else listed here).

    Raises:
        tinyface.errors.DataError: the set holds a test person (one line: how many, the first).
    """
    test_people = _lfw_test_people(settings)
    if not test_people:
        return
    from tinyface.data.dataset import load_dataset
    from tinyface.data.extra import named_after

    if paths is None:
        paths = [image.path for image in load_dataset(Path(folder)).images]
    held = named_after(paths, test_people)
    if held.any():
        names = sorted({path.parent.name for path, h in zip(paths, held, strict=True) if h})
        raise DataError(f"{folder}: {len(names)} of its people are LFW test people (peopleDevTest.txt), e.g. "
                        f"{names[0]}: a selection set must not hold the held-out test's people")


def _lfw_test_people(settings) -> list[str]:
    """The people of peopleDevTest.txt in the settings' LFW folder ([] when it has none)."""
    from tinyface.data import lfw

    people_file = settings.data.data_path() / lfw.PEOPLE_DEV_TEST
    return [name for name, _ in lfw.read_people(people_file)] if people_file.is_file() else []


def distilled_from(bundle, folder) -> list[str]:
    """The names in ``bundle``'s model.json (``extra.extra_faces``, as its build's ``extra.dirs``
    wrote them) of the extra-face folders that hold ``folder`` or lie inside it: a set the model
    distilled from, which cannot judge it. Bundles built before that field was written record
    nothing (their extra faces are in their build's report)."""
    from tinyface.config import ExtraSettings

    names = [str(d) for d in bundle.meta.extra.get("extra_faces", [])]
    here = Path(folder).resolve()
    paths = [path.resolve() for path in ExtraSettings(dirs=names).paths()]
    return [name for name, path in zip(names, paths, strict=True)
            if here.is_relative_to(path) or path.is_relative_to(here)]


def check_people(ap: argparse.ArgumentParser, people: str | None, bundles: dict, settings) -> None:
    """``--people DIR``'s check, before minutes of loading faces: ends the command line ``ap``
    (argparse's usage error, exit 2) if DIR is no folder, or if a bundle of ``{folder: bundle}``
    distilled from it (distilled_from); refuses a set holding LFW test people of the
    ``settings``' LFW folder (refuse_test_people, as people_faces would after the validation
    people). Nothing when ``people`` is None.

    Raises:
        tinyface.errors.DataError: the set holds an LFW test person (exit 4).
    """
    if not people:
        return
    if not Path(people).is_dir():
        ap.error(f"--people {people}: no such folder")
    for folder, bundle in bundles.items():
        if seen := distilled_from(bundle, people):
            ap.error(f"--people {people}: {folder} distilled from it (extra faces {', '.join(seen)}): "
                     "judge it on a set it has not seen")
    refuse_test_people(people, settings)


# --- the emulated ESP32-C3 builds: faces, pty, sizes -----------------------------------------------

def lfw_dir(given: str | None) -> Path:
    """``--data``, else the default dataset folder of tinyface's commands (one definition)."""
    from tinyface.config import default_data_dir

    return Path(given).expanduser() if given else default_data_dir()


def lfw_face_paths(lfw_dir: Path, n: int) -> list[Path]:
    """The first ``n`` photos of LFW's training-split people: ``peopleDevTrain.txt`` in file
    order, each person's images by number. Never the held-out peopleDevTest people.

    Raises:
        tinyface.errors.DataError: no peopleDevTrain.txt in ``lfw_dir``.
    """
    from tinyface.data import lfw

    paths = []
    for name, count in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TRAIN):
        paths += [p for i in range(1, count + 1) if (p := lfw.image_path(lfw_dir / "images", name, i)).is_file()]
        if len(paths) >= n:
            break
    return paths[:n]


def lfw_faces(lfw_dir: Path, meta, n: int) -> np.ndarray:
    """``n`` photos of LFW training-split people (lfw_face_paths), centre-cropped to the face,
    resized to the model input and quantized as the firmware's input."""
    from PIL import Image

    from tinyface.model.embedder import quantize_input

    _, h, w, c = meta.input_shape
    paths = lfw_face_paths(lfw_dir, n)
    crops = [np.asarray(Image.open(p).convert("L" if c == 1 else "RGB").crop((70, 70, 180, 180)).resize((w, h)),
                        dtype=np.uint8).reshape(h, w, c) for p in paths]
    return quantize_input(np.stack(crops), meta)


def print_op_table(a: dict, b: dict, width: int = 11) -> None:
    """Instructions per op and per inference of two kernel sets (``ops``, ``instructions``), side by side."""
    print(f"{'op':>3} {'kind':<18} {'ESP-NN':>{width}} {'generated':>{width}} {'speed-up':>8}")
    for x, y in zip(a["ops"], b["ops"], strict=True):
        print(f"{x['index']:>3} {x['op']:<18} {x['instructions']:>{width},} {y['instructions']:>{width},} "
              f"{x['instructions'] / max(y['instructions'], 1):>7.2f}x")
    print(f"{'':>3} {'inference':<18} {a['instructions']:>{width},} {b['instructions']:>{width},} "
          f"{a['instructions'] / max(b['instructions'], 1):>7.2f}x")


def serve(bundle, program, faces: np.ndarray, timeout_s: float = 60.0) -> tuple[int, np.ndarray]:
    """INFO's arena and the outputs for ``faces``, from the emulated chip over a real pty
    (``program``: anything with tinyface.device.isa.IsaProgram's ``command``)."""
    from tinyface.device.isa import spawn_isa
    from tinyface.device.pty import open_pty
    from tinyface.protocol.client import Client, open_serial

    master, path = open_pty()
    proc = spawn_isa(program, master)
    port = open_serial(path, 921600)
    try:
        client = Client(port, timeout_s=timeout_s, retries=1, port=path)
        arena = client.info(bundle.model_hash).arena_used_bytes
        outputs = np.stack([r.output for r in client.infer_many(faces)]) if len(faces) else np.zeros((0,))
    finally:
        port.close()
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)
    return arena, outputs


def flash_bytes(program_path: Path, size_tool: str = "riscv64-unknown-elf-size") -> int:
    """text + data of the program (what a flash image holds)."""
    out = subprocess.run([size_tool, str(program_path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1].split()
    return int(out[0]) + int(out[1])
