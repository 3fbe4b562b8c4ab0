"""Typed, validated settings: defaults < tinyface.toml < command-line overrides.

The sections follow the pipeline (data, teacher, student, distill, prune, quantize,
firmware, bench). An unknown section or key is an error that names it, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tinyface.errors import ConfigError

CONFIG_FILENAME = "tinyface.toml"


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


@dataclass
class DataSettings:
    dir: str = ""  # empty: default_data_dir()
    cache_dir: str = ""  # empty: default_cache_dir()
    crop_size: int = 48  # student input, pixels per side
    channels: int = 1  # 1 = gray, 3 = RGB
    padding: float = 0.25  # face-chip padding around the 5-point template (dlib's convention)
    detector_upsample: int = 1  # retry with this many upsamplings when the first pass finds no face
    val_fraction: float = 0.1  # share of peopleDevTrain people held out for validation
    identify_min_images: int = 10  # identification: peopleDevTest people with at least this many
    enroll_images: int = 5  # identification: images enrolled per person (centroid)
    seed: int = 0
    workers: int = 0  # 0: one per CPU core

    def validate(self) -> None:
        _check(self.crop_size >= 16, "data.crop_size must be >= 16")
        _check(self.channels in (1, 3), "data.channels must be 1 (gray) or 3 (RGB)")
        _check(0.0 <= self.padding <= 1.0, "data.padding must be in [0, 1]")
        _check(0 <= self.detector_upsample <= 2, "data.detector_upsample must be 0, 1 or 2")
        _check(0.0 < self.val_fraction < 0.5, "data.val_fraction must be in (0, 0.5)")
        _check(self.identify_min_images >= 2, "data.identify_min_images must be >= 2")
        _check(1 <= self.enroll_images < self.identify_min_images,
               "data.enroll_images must be >= 1 and < data.identify_min_images")
        _check(self.workers >= 0, "data.workers must be >= 0")

    def data_path(self) -> Path:
        return Path(self.dir).expanduser() if self.dir else default_data_dir()

    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


@dataclass
class TeacherSettings:
    name: str = "dlib_resnet"
    chip_size: int = 150  # dlib's ResNet is trained on 150x150 chips
    chip_padding: float = 0.25
    flip_average: bool = False  # also embed the mirrored chip and average (2x the teacher time)

    def validate(self) -> None:
        _check(self.name == "dlib_resnet", "teacher.name must be 'dlib_resnet' (the only teacher)")
        _check(self.chip_size == 150, "teacher.chip_size must be 150 (what dlib's ResNet expects)")


@dataclass
class StudentSettings:
    arch: str = "dsnet"
    width: float = 1.0
    embedding_dim: int = 128

    def validate(self) -> None:
        _check(self.width > 0, "student.width must be > 0")
        _check(8 <= self.embedding_dim <= 512, "student.embedding_dim must be in [8, 512]")


@dataclass
class DistillSettings:
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-3
    cosine_weight: float = 1.0
    mse_weight: float = 1.0
    alpha: float = 0.0  # weight of identity-classification distillation (Hinton); 0 = off
    temperature: float = 4.0
    augment: bool = True
    search_trials: int = 0  # Optuna TPE trials over alpha, temperature, learning rate; 0 = off

    def validate(self) -> None:
        _check(self.epochs >= 1, "distill.epochs must be >= 1")
        _check(self.batch_size >= 1, "distill.batch_size must be >= 1")
        _check(self.learning_rate > 0, "distill.learning_rate must be > 0")
        _check(0.0 <= self.alpha <= 1.0, "distill.alpha must be in [0, 1]")
        _check(self.temperature > 0, "distill.temperature must be > 0")
        _check(self.search_trials >= 0, "distill.search_trials must be >= 0")


@dataclass
class PruneSettings:
    enabled: bool = True
    target_sparsity: float = 0.5
    epochs: int = 4

    def validate(self) -> None:
        _check(0.0 <= self.target_sparsity < 1.0, "prune.target_sparsity must be in [0, 1)")
        _check(self.epochs >= 1, "prune.epochs must be >= 1")


@dataclass
class QuantizeSettings:
    calibration_images: int = 500
    qat: bool = False  # also try quantization-aware training; the build keeps the better by validation
    qat_epochs: int = 2

    def validate(self) -> None:
        _check(self.calibration_images >= 1, "quantize.calibration_images must be >= 1")
        _check(self.qat_epochs >= 1, "quantize.qat_epochs must be >= 1")


@dataclass
class FirmwareSettings:
    board: str = "esp32"
    arena_margin: float = 0.15  # extra arena on top of the TFLM-recorded usage (optimized-kernel scratch)

    def validate(self) -> None:
        _check(0.0 <= self.arena_margin <= 2.0, "firmware.arena_margin must be in [0, 2]")


@dataclass
class BenchSettings:
    images: int = 1000
    baud: int = 921600
    timeout_s: float = 5.0
    retries: int = 3

    def validate(self) -> None:
        _check(self.images >= 1, "bench.images must be >= 1")
        _check(self.baud > 0, "bench.baud must be > 0")
        _check(self.timeout_s > 0, "bench.timeout_s must be > 0")
        _check(self.retries >= 0, "bench.retries must be >= 0")


@dataclass
class Settings:
    data: DataSettings = field(default_factory=DataSettings)
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
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


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
    expected = type_name if isinstance(type_name, str) else type_name.__name__
    try:
        if expected == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if expected == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if expected == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if expected == "str":
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"'{name}' in {source} must be {expected}, got {value!r}")


def load(path: str | os.PathLike | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
    """Load settings: defaults, then ``path`` (or ./tinyface.toml if present), then ``overrides``.

    Raises:
        ConfigError: the file is missing (when named explicitly), not valid TOML, has an
            unknown key, a value of the wrong type or out of range.
    """
    settings = Settings()
    if path is None and Path(CONFIG_FILENAME).is_file():
        path = CONFIG_FILENAME
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        apply(settings, values, str(path))
    if overrides:
        apply(settings, {k: v for k, v in overrides.items() if v}, "command-line options")
    return settings.validate()


def parse_set_option(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Turn ``--set section.key=value`` items into an overrides dict (values parsed as TOML)."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or not section or not key:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        overrides.setdefault(section, {})[key] = value
    return overrides
