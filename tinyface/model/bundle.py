"""A model bundle: the int8 ``model.tflite`` plus ``model.json`` describing it.

Every consumer (emulator, bench, codegen, flash, evaluate) reads a model through
``load_bundle``, so the input quantization, embedding size and shipped threshold have one
definition. ``tinyface build`` writes one into ``build/<run>/``; released ones live in
``models/<preset>/``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from tinyface.config import DEFAULT_PRESET, TEST_FILTER_RANGE, VAL_FRACTION_RANGE
from tinyface.errors import ModelError
from tinyface.fsutil import write_bytes, write_json

MODEL_FILE = "model.tflite"
META_FILE = "model.json"
# model.json's extra[SPLIT_KEY]: the data settings that drew its build's validation people
# (``{"seed": 0, "val_fraction": 0.1, "test_filter": 0.25}``), so that a script loading them
# again (benchmarks/identify_threshold.py validation_settings) takes the build's, not today's
# preset's. A model.json without it (written before builds recorded it) leaves them to the preset.
# Its "people" (tinyface.data.splits.people_fingerprint) names the people the build split, so that
# `tinyface evaluate` on a folder of the same people knows which of them the model trained on;
# "quick": true, a --quick build, which trained on a sample of them (tinyface.data.splits.quick_sample).
SPLIT_KEY = "split"
SPLIT_SETTINGS = ("seed", "val_fraction", "test_filter")  # tinyface.config.DataSettings's names


@dataclass
class ModelMeta:
    input_shape: list[int]  # [1, H, W, C]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    embedding_dim: int
    threshold: float  # cosine similarity at or above which two faces are the same person
    arena_bytes: int = 0  # TFLM-recorded arena use (0: not measured yet)
    macs: int = 0
    name: str = "tinyface"
    preset: str = ""
    crop_padding: float = 0.25
    # IDENTIFY's threshold (best enrolled match vs everyone): stricter than ``threshold``, chosen
    # for a target stranger-accept rate on validation people; 0 = not chosen, use ``threshold``
    identify_threshold: float = 0.0
    # the firmware kernel set the model was sized for (its build's firmware.kernels); flash,
    # emulate and profile default to it. "" = not recorded (models built before it: ESP-NN)
    kernels: str = ""
    # free-form records of the build: student (arch, width), test_data / test_accuracy,
    # extra_faces, smoke_test, stages (STAGES_KEY), split (SPLIT_KEY)
    extra: dict = field(default_factory=dict)

    @property
    def smoke_test(self) -> bool:
        """Whether its build was `tinyface build --quick` (``extra.smoke_test``): a check that the
        pipeline runs, whose figures say nothing of a real model."""
        return isinstance(self.extra, dict) and bool(self.extra.get("smoke_test"))

    @property
    def identify_at(self) -> float:
        """The similarity at or above which IDENTIFY accepts its best match."""
        return self.identify_threshold or self.threshold

    @property
    def split(self) -> dict:
        """The data settings its build drew the validation people with (``extra.split``: those of
        SPLIT_SETTINGS it records; empty for a model.json written before builds recorded them)."""
        recorded = self.extra.get(SPLIT_KEY)
        return {k: recorded[k] for k in SPLIT_SETTINGS if k in recorded} if isinstance(recorded, dict) else {}


@dataclass
class Bundle:
    model_path: Path
    meta: ModelMeta

    @property
    def model_bytes(self) -> bytes:
        return read_model_file(self.model_path)

    @property
    def model_hash(self) -> str:
        """sha256 of the .tflite bytes (INFO carries all 32 bytes; bench compares them with the local model's)."""
        return hashlib.sha256(self.model_bytes).hexdigest()

    def identifying_at(self, threshold: float) -> "Bundle":
        """This bundle with IDENTIFY's threshold set to ``threshold`` for a board (the setting
        firmware.identify_threshold); 0 keeps model.json's. The files are not touched."""
        if not threshold:
            return self
        return replace(self, meta=replace(self.meta, identify_threshold=float(threshold)))


def read_model_file(path: str | Path) -> bytes:
    """The bytes of the model file ``path`` (a .tflite), for every reader of one.

    Raises:
        ModelError: it cannot be read (no permission, a folder, an I/O error): a model that cannot
            be used, as a missing or a corrupt one (exit 6), not an internal error.
    """
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}",
                         hint="check the file's permissions, or pass --model another model") from None


def model_hash(model_bytes: bytes) -> str:
    return hashlib.sha256(model_bytes).hexdigest()


def save_bundle(directory: str | Path, model_bytes: bytes, meta: ModelMeta) -> Bundle:
    """Write ``model.tflite`` and ``model.json`` atomically (the JSON last, so a bundle with
    a JSON is always complete)."""
    directory = Path(directory)
    write_bytes(directory / MODEL_FILE, model_bytes)
    write_json(directory / META_FILE, {**asdict(meta), "sha256": model_hash(model_bytes)})
    return Bundle(directory / MODEL_FILE, meta)


def split_record(data_settings, people: str | None = None, quick: bool = False) -> dict:
    """model.json's ``extra.split`` (SPLIT_KEY) for a build's ``settings.data``
    (tinyface.config.DataSettings): the settings that drew its validation people, ``people``
    (tinyface.data.splits.people_fingerprint of the folder it split) where given, and ``quick``:
    true for a quick build, which used a sample of those people's images
    (tinyface.data.splits.quick_sample)."""
    return {**{name: getattr(data_settings, name) for name in SPLIT_SETTINGS},
            **({"people": people} if people else {}), **({"quick": True} if quick else {})}


def resolve_model(model: str | Path | None, board: str) -> Path:
    """The model for a board: the one rule that flash, bench, emulate and profile share, so
    that `tinyface flash` and the `tinyface bench` it suggests talk about the same model.

    ``model`` if given; else the first complete bundle of build/<board>/ (the latest
    `tinyface build --preset <board>`), the released models/<board>/, build/esp32/, models/esp32/
    (the esp32 preset fits every board).

    Raises:
        ModelError: nothing found (the message says where it looked).
    """
    if model:
        return Path(model)
    from tinyface.resources import models_dir

    looked = []
    for preset in dict.fromkeys((board, DEFAULT_PRESET)):
        for candidate in (Path("build") / preset, models_dir() / preset):
            if (candidate / MODEL_FILE).is_file() and (candidate / META_FILE).is_file():
                return candidate
            looked.append(str(candidate))
    raise ModelError(f"no model for {board}: nothing in {', '.join(looked)}",
                     hint="pass --model PATH (a bundle folder, e.g. from `tinyface build`)")


def read_meta(meta_path: str | Path) -> tuple[ModelMeta, str | None]:
    """Read and check a ``model.json``: the one reader every consumer goes through.

    Returns:
        (the metadata, the sha256 of the .tflite it describes, or None if it names none).

    Raises:
        ModelError: unreadable, empty, not JSON, not an object, an unknown or missing key, or
            a value of the wrong type or out of range (the message names the key).
    """
    meta_path = Path(meta_path)
    try:
        text = meta_path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except OSError as exc:
        raise ModelError(f"cannot read {meta_path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ModelError(f"bad {meta_path}: not UTF-8 text", hint=_REBUILD) from None
    except json.JSONDecodeError as exc:
        what = "empty" if not text.strip() else f"not valid JSON ({exc.msg} at line {exc.lineno})"
        raise ModelError(f"bad {meta_path}: {what}", hint=_REBUILD) from None
    if not isinstance(raw, dict):
        raise ModelError(f"bad {meta_path}: expected a JSON object, got {type(raw).__name__}", hint=_REBUILD)
    expected = raw.pop("sha256", None)
    if expected is not None and not (isinstance(expected, str) and len(expected) == 64):
        raise ModelError(f"bad {meta_path}: 'sha256' must be 64 hex digits, got {expected!r}", hint=_REBUILD)
    known = {f.name: f for f in fields(ModelMeta)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ModelError(f"bad {meta_path}: unknown key {unknown[0]!r}", hint=f"known keys: {', '.join(known)}")
    missing = [name for name, f in known.items()
               if name not in raw and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ModelError(f"bad {meta_path}: missing key {missing[0]!r}", hint=_REBUILD)
    for name, value in raw.items():
        problem = _META_CHECKS[name](value)
        if problem:
            raise ModelError(f"bad {meta_path}: {name!r} must be {problem}, got {value!r}", hint=_REBUILD)
    problem = _split_problem(raw.get("extra", {}).get(SPLIT_KEY))
    if problem:
        raise ModelError(f"bad {meta_path}: 'extra.{SPLIT_KEY}' {problem}", hint=_REBUILD)
    raw = {k: (float(v) if _META_CHECKS[k] in (_number, _similarity, _positive, _padding) else v)
           for k, v in raw.items()}
    return ModelMeta(**raw), expected


_REBUILD = "rebuild the model with `tinyface build`, or restore the model.json it came with"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _number(value):
    return None if _is_number(value) else "a number"


def _positive(value):
    return None if _is_number(value) and value > 0 else "a number > 0"


def _similarity(value):
    return None if _is_number(value) and -1.0 <= value <= 1.0 else "a cosine similarity in [-1, 1]"


def _padding(value):
    return None if _is_number(value) and 0.0 <= value <= 1.0 else "a number in [0, 1]"


def _zero_point(value):
    return None if _is_int(value) and -128 <= value <= 127 else "an int8 zero point in [-128, 127]"


def _count(value):
    return None if _is_int(value) and value >= 0 else "an integer >= 0"


def _dim(value):
    return None if _is_int(value) and value > 0 else "an integer > 0"


def _text(value):
    return None if isinstance(value, str) else "a string"


def _shape(value):
    ok = isinstance(value, list) and len(value) == 4 and all(_is_int(v) and v > 0 for v in value) \
        and value[0] == 1 and value[3] in (1, 3)
    return None if ok else "[1, height, width, channels] with channels 1 or 3"


def _kernels(value):
    from tinyface.config import FIRMWARE_KERNELS

    return None if value == "" or value in FIRMWARE_KERNELS else f"one of {', '.join(FIRMWARE_KERNELS)}"


def _object(value):
    return None if isinstance(value, dict) else "a JSON object"


def _split_problem(split) -> str | None:
    """What is wrong with an ``extra.split`` record (None: nothing, or no record): a value the
    settings refuse (tinyface.config's ranges of data.val_fraction and data.test_filter). Keys other
    than SPLIT_SETTINGS are left alone (a later tinyface may record more)."""
    if split is None:
        return None
    if not isinstance(split, dict):
        return f"must be a JSON object, got {split!r}"
    ranges = {"val_fraction": VAL_FRACTION_RANGE, "test_filter": TEST_FILTER_RANGE}  # and seed: an integer
    for name in (n for n in SPLIT_SETTINGS if n in split):
        value, valid = split[name], ranges.get(name)
        if valid is None and not _is_int(value):
            return f"'{name}' must be an integer, got {value!r}"
        if valid is not None and not (_is_number(value) and value in valid):
            return f"'{name}' must be a number in {valid}, got {value!r}"
    return None


_META_CHECKS = {
    "input_shape": _shape, "input_scale": _positive, "input_zero_point": _zero_point, "output_scale": _positive,
    "output_zero_point": _zero_point, "embedding_dim": _dim, "threshold": _similarity, "arena_bytes": _count,
    "macs": _count, "name": _text, "preset": _text, "crop_padding": _padding, "identify_threshold": _similarity,
    "kernels": _kernels, "extra": _object,
}


_BUNDLE_HINT = f"pass --model a bundle folder ({MODEL_FILE} + {META_FILE}, from `tinyface build`) or its {MODEL_FILE}"


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle from its folder, its ``model.tflite`` (or a TFLite file of another name) or
    its ``model.json``; the model's graph is parsed and checked against the JSON
    (:func:`check_matches_meta`), so every command refuses a corrupt or mismatched model alike.

    Raises:
        ModelError: missing files, a path that is no bundle (the message says what it is), a bad
            JSON (see :func:`read_meta`), a .tflite whose hash differs from the JSON's, a corrupt
            .tflite (:func:`tinyface.model.graph.analyze`), or one whose input or output size is
            not the JSON's.
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    model_path, meta_path = directory / MODEL_FILE, directory / META_FILE
    if path.is_file() and path.name != META_FILE:
        _refuse_not_a_model_file(path)
        model_path = path
    if not path.exists():
        raise ModelError(f"no model at {path}", hint="run `tinyface build` or pass --model DIR")
    if not model_path.is_file():
        what = "a folder" if path.is_dir() else f"a {META_FILE}"
        problem = "a folder, not a model file" if model_path.is_dir() else "missing"
        raise ModelError(f"{path} is {what} without a model: its {MODEL_FILE} is {problem}", hint=_BUNDLE_HINT)
    if not meta_path.is_file():
        raise ModelError(f"{model_path} has no {META_FILE} beside it", hint="models come from `tinyface build`")
    meta, expected = read_meta(meta_path)
    bundle = Bundle(model_path, meta)
    model_bytes = bundle.model_bytes
    if expected and model_hash(model_bytes) != expected:
        raise ModelError(f"{model_path} does not match {meta_path} (sha256 differs)",
                         hint="the model was changed after it was built; rebuild it")
    _check_tflite(model_bytes, model_path, meta_path, meta)
    return bundle


def _check_tflite(model_bytes: bytes, model_path: Path, meta_path: Path, meta: ModelMeta) -> None:
    """Parse a .tflite's graph (:func:`tinyface.model.graph.analyze`: a corrupt one is refused) and
    check it against the ``model.json`` that describes it (:func:`check_matches_meta`)."""
    from tinyface.model.graph import analyze

    graph = analyze(model_bytes, source=str(model_path))
    check_matches_meta(model_path, meta_path, meta, graph.input_shape, graph.output_shape)


def _refuse_not_a_model_file(path: Path) -> None:
    """Refuse a file given as a bundle that is neither its model.json nor a TFLite file (by its
    suffix, or the TFL3 identifier of its first bytes), saying what it is.

    Raises:
        ModelError: what the file is (a Keras model, text, something else) and why it is no model here.
    """
    if path.suffix == ".tflite":
        return  # whatever it holds, analyze says what is wrong with it
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}", hint=_BUNDLE_HINT) from None
    if head[4:8] == b"TFL3":
        return
    if path.suffix == ".keras":
        what = "a Keras model, not the int8 TFLite model a board runs"
    elif not head:
        what = "an empty file, not a model"
    elif b"\0" not in head and _is_text(head):
        what = "a text file, not a model (no TFL3 identifier)"
    else:
        what = "not a TFLite model (no TFL3 identifier)"
    raise ModelError(f"{path} is {what}", hint=_BUNDLE_HINT)


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut at the end of the sample
    return True


def check_matches_meta(model_path: str | Path, meta_path: str | Path, meta: ModelMeta, input_shape,
                       output_shape=None) -> None:
    """Refuse a model file that its ``model.json`` describes wrongly: another input (the crops
    would be cut for another model) or, where ``output_shape`` is given, another embedding size.
    The one check of every reader: :func:`load_bundle` (flash, emulate, bench, profile, the gallery
    commands, evaluate), and :func:`model_file_meta` for a build run's stage files and a .keras.

    Args:
        input_shape: the model's input shape, batch first (a Keras model's batch may be None).
        output_shape: its output shape, batch first (None: not known, not checked).

    Raises:
        ModelError: naming both files and both values.
    """
    kind = Path(model_path).suffix or "model"
    found = [1, *(int(v) if v is not None else None for v in tuple(input_shape)[1:])]
    if found != list(meta.input_shape):
        raise ModelError(f"{model_path} does not match {meta_path}: model.json says input {meta.input_shape}, "
                         f"the {kind} has {found}", hint=_KEEP_TOGETHER)
    if output_shape is None:
        return
    size = math.prod(int(v) for v in tuple(output_shape)[1:] if v is not None)
    if size != meta.embedding_dim:
        raise ModelError(f"{model_path} does not match {meta_path}: model.json says embedding_dim "
                         f"{meta.embedding_dim}, the {kind} outputs {size} values", hint=_KEEP_TOGETHER)


_KEEP_TOGETHER = f"keep {META_FILE} with the model it was written for (`tinyface build` writes both)"


@dataclass
class ModelFileMeta:
    """What a model file (bundle folder, .tflite or .keras) was made with, and where that was read."""

    model_path: Path
    meta: ModelMeta
    meta_path: Path
    # the thresholds describe this very file (the bundle's own .tflite, sha256 checked); a stage
    # model of a build run (float.tflite, student.keras) shares only the run's preprocessing
    thresholds_apply: bool


STAGE_RECORD = "stage.json"  # each stage folder of a `tinyface build` run has one (train/pipeline.py)
# model.json's extra[STAGES_KEY]: {stage folder: the fingerprint its stage.json held} of the build
# that wrote it; a model.json without one (written before builds recorded it) is trusted as before
STAGES_KEY = "stages"


def model_file_meta(path: str | Path) -> ModelFileMeta:
    """The metadata of any model file, so that it is never run with another crop than it was trained on.

    A bundle folder or its ``model.tflite``: its ``model.json`` (sha256 checked). A file inside a
    `tinyface build` run (``build/esp32/quantize/float.tflite``, ``build/esp32/distill/student.keras``):
    the run's ``model.json`` (crop padding, input; not the thresholds, which belong to the int8
    bundle), only if that model.json was written by the build that made the stage (see
    :func:`_check_same_build`). A ``.keras`` beside a ``model.json``: that one, likewise. Anything
    else is refused.

    Raises:
        ModelError: missing, a bad model.json, a hash mismatch, a stage file of another build than
            the run's model.json, or a lone file with no metadata.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if path.is_dir() or path.suffix == ".tflite" and (path.parent / META_FILE).is_file():
        bundle = load_bundle(path)
        return ModelFileMeta(bundle.model_path, bundle.meta, bundle.model_path.parent / META_FILE, True)
    if path.suffix not in (".tflite", ".keras"):
        _refuse_not_a_model_file(path)  # a text file, say: what it is, not that it has no model.json
    for candidate in (path.parent / META_FILE, path.parent.parent / META_FILE):
        in_run = candidate.parent == path.parent or (path.parent / STAGE_RECORD).is_file()
        if in_run and candidate.is_file():
            meta = read_meta(candidate)[0]
            if candidate.parent != path.parent:
                _check_same_build(path.parent, meta, candidate)
            _check_stage_file(path, meta, candidate)
            return ModelFileMeta(path, meta, candidate, False)
    raise ModelError(
        f"{path} has no {META_FILE}: the face crop it was trained on (padding, size) is unknown, "
        f"and a wrong one costs accuracy silently",
        hint=f"pass the model's bundle folder (e.g. build/esp32 or models/esp32), a file inside a `tinyface build` "
             f"run folder, or put the run's {META_FILE} beside it")


def _check_stage_file(path: Path, meta: ModelMeta, meta_path: Path) -> None:
    """A model file that ``meta_path`` describes but that is not its bundle's (a stage file of a
    build run, a .keras): parsed without TensorFlow and checked against it (:func:`check_matches_meta`).
    Other kinds of file are left to the loader, which refuses them.

    Raises:
        ModelError: a corrupt .tflite or .keras, or one whose input (a .tflite's output size too)
            is not the one model.json says.
    """
    if path.suffix == ".tflite":
        _check_tflite(read_model_file(path), path, meta_path, meta)
    elif path.suffix == ".keras":
        from tinyface.model.keras_io import keras_input_shape

        shape = keras_input_shape(path)
        if shape is not None:
            check_matches_meta(path, meta_path, meta, shape)


def _check_same_build(stage_dir: Path, meta: ModelMeta, meta_path: Path) -> None:
    """Refuse to describe a stage folder's models by a run's ``model.json`` that another build wrote.

    model.json is written by a build's last step, its stages' folders as the build goes: a build
    stopped after a stage (Ctrl-C, a failure, a kill) leaves that stage's new models beside the
    previous build's model.json, whose crop padding or input may no longer be theirs. So a build
    records in model.json (``extra.stages``) the fingerprint of each stage it made or kept, and a
    stage folder is described by it only while the folder's stage.json holds the same one. A
    model.json without that record (written before builds kept one) is trusted as before.

    Raises:
        ModelError: the stage's fingerprint (or the stage) is not the one model.json recorded,
            or the record is not an object.
    """
    recorded = meta.extra.get(STAGES_KEY)
    if recorded is None:
        return
    if not isinstance(recorded, dict):
        raise ModelError(f"bad {meta_path}: 'extra.{STAGES_KEY}' must be a JSON object, got {recorded!r}",
                         hint=_REBUILD)
    found = stage_fingerprint(stage_dir)
    if found is None or recorded.get(stage_dir.name) != found:
        raise ModelError(
            f"{stage_dir} was made by another build than {meta_path} (its {STAGE_RECORD} fingerprint is not the "
            f"one recorded there): that {META_FILE}'s crop may not be the one its models were trained on",
            hint="finish the build (the same `tinyface build` command resumes it), or pass the run's bundle folder")


def stage_fingerprint(stage_dir: str | Path) -> str | None:
    """The fingerprint a build's stage folder records in its stage.json (None: no stage.json, or
    none readable: a stage stopped half-way has none)."""
    try:
        record = json.loads((Path(stage_dir) / STAGE_RECORD).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    found = record.get("fingerprint") if isinstance(record, dict) else None
    return found if isinstance(found, str) else None


def smoke_test_warning(where) -> str:
    """The one sentence every command that runs a smoke-test model (ModelMeta.smoke_test) says of it."""
    return (f"{where} is a smoke-test model (`tinyface build --quick`): it checks that the pipeline runs and will "
            "not recognise faces well; build without --quick for a real model")
