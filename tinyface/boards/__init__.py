"""Boards as data: one ``boards/<name>.toml`` per board, validated when it is loaded.

A board file says how to build for the board (PlatformIO platform, board id, framework),
what it is and has (its chip, against whose rules in CHIPS the rest is checked; CPU clock,
flash and its SPI mode, SRAM for the arena, PSRAM, a USB-Serial/JTAG port, which ESP-NN
kernels it runs), how to talk to it (baud, upload baud, whether the serial adapter's RTS/DTR
lines must stay released, USB VID:PIDs for auto-detection), what
the model pipeline may spend on it (``mac_budget``, and ``mac_budget_generated`` where the
kernels generated for the model were measured on the chip) and the published measurement its
latency cost model is calibrated on (optionally, ``[measured]`` and ``[measured_generated]``:
cost models counted on the chip's instruction set, one per kernel set). Every key is required
but those marked optional, and an unknown key is an error, so a typo never silently becomes a
default. docs/boards.md documents the fields.
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from tinyface.boards.costmodel import CostModel
from tinyface.config import FIRMWARE_KERNELS
from tinyface.errors import ConfigError
from tinyface.resources import boards_dirs

# section -> key -> accepted Python types. Every key is required.
_INT = (int,)
_NUM = (int, float)
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "": {"name": (str,), "title": (str,)},
    "platformio": {"platform": (str,), "board": (str,), "framework": (str,)},
    "chip": {"target": (str,), "cpu_mhz": _NUM, "flash_bytes": _INT, "sram_arena_bytes": _INT, "sram_heap_bytes": _INT,
             "psram_bytes": _INT, "esp_nn": (bool,), "esp_nn_kernels": (str,), "flash_mode": (str,),
             "usb_serial_jtag": (bool,)},
    "serial": {"baud": _INT, "upload_baud": _INT, "release_rts_dtr": (bool,), "usb_ids": (list,)},
    "budget": {"mac_budget": _INT, "firmware_flash_bytes": _INT},
    "cost_model": {
        "calibration_macs": _INT, "calibration_ops": _INT, "calibration_ms_esp_nn": _NUM,
        "calibration_ms_reference": _NUM, "overhead_us_per_op": _NUM, "source": (str,),
    },
}

# Optional keys of required sections. [budget] mac_budget_generated: the MAC budget with the
# kernels generated for the model (firmware.kernels = "generated"); absent: mac_budget.
OPTIONAL_KEYS: dict[str, dict[str, tuple[type, ...]]] = {
    "budget": {"mac_budget_generated": _INT},
}
_MEASURED_KEYS = {"stall_factor": _NUM, "instructions_per_mac": (dict,), "instructions_per_output": (dict,),
                  "source": (str,)}
# Optional sections: absent, or present with every key. [measured] is a cost model of ESP-NN's
# kernels measured on the chip's instruction set (tinyface profile --measured; docs/boards.md),
# [measured_generated] the same for the kernels generated for the model.
OPTIONAL_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "measured": _MEASURED_KEYS,
    "measured_generated": _MEASURED_KEYS,
}
# firmware.kernels -> the [measured]-like section of its instruction-set cost model.
MEASURED_SECTION = {"esp-nn": "measured", "generated": "measured_generated"}

# The generated partition table (firmware/partitions.csv.j2) keeps the first 128 KiB for
# the bootloader, the partition table, NVS (84 KiB: the gallery blob is rewritten
# copy-before-erase, so NVS needs room for two copies plus a spare page) and PHY data; the
# factory app gets the rest of the flash.
APP_OFFSET_BYTES = 0x20000

# ESP-NN's kernel sets (esp-nn/CMakeLists.txt): its assembly for the ESP32-S3 (PIE SIMD) and
# the ESP32-P4; every other chip (the ESP32 and the ESP32-C3 included) compiles its generic
# C code (the *_ansi.c and *_opt.c files).
ESP_NN_KERNELS = {"generic": "generic C", "esp32s3": "S3 assembly (SIMD)",
                  "esp32p4": "P4 assembly"}


@dataclass(frozen=True)
class Chip:
    """What ESP-IDF lets one chip be: a board file's ``chip.target`` names one (CHIPS), and
    load_board_file refuses a board that says what its chip cannot be."""

    title: str
    cpu_mhz: tuple[int, ...]  # its default-clock choices (Kconfig CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_<n>)
    max_flash_mb: int | None  # the most SPI flash it addresses (None: any ESP-IDF flash size)
    psram: bool  # it has a PSRAM interface (CONFIG_SPIRAM)
    psram_heap_mb: int | None  # the most PSRAM ESP-IDF adds to the heap (None: all a board has)
    usb_serial_jtag: bool  # it has the USB-Serial/JTAG peripheral
    esp_nn_kernels: str  # the ESP-NN kernel set esp-nn/CMakeLists.txt compiles for it (ESP_NN_KERNELS)


# The ESP-IDF targets (IDF_TARGET, CONFIG_IDF_TARGET) a board may name; the clocks are ESP-IDF 5's
# Kconfig choices, the flash limits and peripherals the chips' datasheets'. The ESP32 and the C3 map
# 16 MB of flash at most; the C3 and C6 have no PSRAM interface; the ESP32 and S2 no USB-Serial/JTAG.
# The ESP32 maps only the first 4 MiB of PSRAM into its address space, so only they join the heap
# (ESP-IDF's himem API reaches the rest through bank switching, which an arena cannot use); an
# 8 MB WROVER-E board gives the arena 4 MiB.
CHIPS: dict[str, Chip] = {
    "esp32": Chip("ESP32 (Xtensa LX6)", (80, 160, 240), 16, True, 4, False, "generic"),
    "esp32s2": Chip("ESP32-S2 (Xtensa LX7)", (80, 160, 240), None, True, None, False, "generic"),
    "esp32s3": Chip("ESP32-S3 (Xtensa LX7)", (80, 160, 240), None, True, None, True, "esp32s3"),
    "esp32c3": Chip("ESP32-C3 (RISC-V rv32imc)", (80, 160), 16, False, None, True, "generic"),
    "esp32c6": Chip("ESP32-C6 (RISC-V rv32imac)", (80, 120, 160), None, False, None, True, "generic"),
    "esp32p4": Chip("ESP32-P4 (RISC-V rv32imafc)", (360, 400), None, True, None, True, "esp32p4"),
}
# The one PlatformIO framework the generated firmware project is written for (firmware/*.j2).
PIO_FRAMEWORK = "espidf"
# SPI flash modes esptool and ESP-IDF (CONFIG_ESPTOOLPY_FLASHMODE_*) accept.
FLASH_MODES = ("qio", "qout", "dio", "dout")


@dataclass(frozen=True)
class Board:
    """One supported board (see docs/boards.md for the meaning of each field)."""

    name: str
    title: str
    pio_platform: str
    pio_board: str
    pio_framework: str
    target: str  # the ESP-IDF target: a key of CHIPS
    cpu_mhz: float
    flash_bytes: int
    sram_arena_bytes: int
    sram_heap_bytes: int
    psram_bytes: int
    esp_nn: bool
    esp_nn_kernels: str
    flash_mode: str
    usb_serial_jtag: bool
    baud: int
    upload_baud: int
    release_rts_dtr: bool
    usb_ids: tuple[tuple[int, int], ...]
    mac_budget: int
    firmware_flash_bytes: int
    calibration_macs: int
    calibration_ops: int
    calibration_ms_esp_nn: float
    calibration_ms_reference: float
    overhead_us_per_op: float
    cost_source: str
    path: Path
    measured: dict | None = None  # the [measured] section (ESP-NN's kernels), if any
    mac_budget_generated: int | None = None  # [budget] mac_budget_generated, if any
    measured_generated: dict | None = None  # the [measured_generated] section, if any

    def mac_budget_for(self, kernels: str = "esp-nn") -> int:
        """The MAC budget of a model running ``kernels`` (firmware.kernels): ``mac_budget_generated``
        for "generated" where the board has one, else ``mac_budget``.

        Raises:
            ConfigError: an unknown kernel set.
        """
        return self.mac_budget_generated if self.mac_budget_kernels(kernels) == "generated" else self.mac_budget

    def mac_budget_kernels(self, kernels: str = "esp-nn") -> str:
        """The kernel set whose budget ``mac_budget_for(kernels)`` is: "generated" where the board has
        a budget for them, else "esp-nn" (ESP-NN's budget stands in).

        Raises:
            ConfigError: an unknown kernel set.
        """
        _check_kernels(kernels)
        return "generated" if kernels == "generated" and self.mac_budget_generated else "esp-nn"

    def cost_model_for(self, kernels: str = "esp-nn") -> CostModel:
        """The latency estimate of a model running ``kernels`` (firmware.kernels).

        "esp-nn" is ``cost_model``. "generated" is ``[measured_generated]`` where the board has
        it; elsewhere no figure of the generated kernels exists, and the estimate is
        ``cost_model``'s, its source saying so.

        Raises:
            ConfigError: an unknown kernel set.
        """
        _check_kernels(kernels)
        if kernels == "esp-nn":
            return self.cost_model
        if self.measured_generated:
            return self.measured_cost_model_for(kernels)
        cm = self.cost_model
        return replace(cm, source=f"{self.name} with generated kernels: not measured on this chip, so ESP-NN's "
                                  f"estimate: {cm.source}")

    @property
    def cost_model(self) -> CostModel:
        """Latency estimate for this board as built by tinyface (ESP-NN kernels if it has them):
        the instruction-set measurement where the board has one, else the published figure."""
        if self.measured and self.esp_nn:
            return self.measured_cost_model
        return self.esp_nn_cost_model if self.esp_nn else self.reference_cost_model

    @property
    def measured_cost_model(self) -> CostModel:
        """Instructions counted on the instruction-set emulator x the stall factor ([measured])."""
        return self.measured_cost_model_for("esp-nn")

    def measured_cost_model_for(self, kernels: str) -> CostModel:
        """The ``[measured]`` (ESP-NN) or ``[measured_generated]`` cost model: instructions counted
        on the instruction-set emulator x the stall factor.

        Raises:
            KeyError: the board has no such section.
        """
        m = self.measured if kernels == "esp-nn" else self.measured_generated
        if not m:
            raise KeyError(f"{self.name} has no [{MEASURED_SECTION[kernels]}] section")
        what = "ESP-NN" if kernels == "esp-nn" else "generated kernels"
        return CostModel.from_instructions(
            self.cpu_mhz, {k: float(v) for k, v in m["instructions_per_mac"].items()},
            {k: float(v) for k, v in m["instructions_per_output"].items()}, float(m["stall_factor"]),
            source=f"{self.name} with {what}, MEASURED instructions x stall factor {float(m['stall_factor']):g}: "
                   f"{m['source']}")

    @property
    def esp_nn_cost_model(self) -> CostModel:
        return CostModel.calibrated(self.cpu_mhz, self.calibration_macs, self.calibration_ops,
                                    self.calibration_ms_esp_nn, self.overhead_us_per_op,
                                    source=f"{self.name} with ESP-NN: {self.cost_source}")

    @property
    def reference_cost_model(self) -> CostModel:
        """The same chip with TFLM's portable reference kernels only."""
        return CostModel.calibrated(self.cpu_mhz, self.calibration_macs, self.calibration_ops,
                                    self.calibration_ms_reference, self.overhead_us_per_op,
                                    source=f"{self.name} reference kernels: {self.cost_source}")

    @property
    def psram_heap_bytes(self) -> int:
        """The PSRAM an arena can be allocated in: the chip's mapped share of ``psram_bytes`` (Chip.psram_heap_mb)."""
        cap = CHIPS[self.target].psram_heap_mb
        return self.psram_bytes if cap is None else min(self.psram_bytes, cap << 20)

    @property
    def app_flash_bytes(self) -> int:
        """Flash the factory app partition (firmware + model + compiled-in gallery) can use."""
        return self.flash_bytes - APP_OFFSET_BYTES

    @property
    def usb_ids_hex(self) -> list[str]:
        return [f"{vid:04X}:{pid:04X}" for vid, pid in self.usb_ids]

    def to_dict(self) -> dict:
        """A JSON-friendly summary (what `tinyface boards --json` prints)."""
        cm = self.cost_model
        return {
            "name": self.name, "title": self.title,
            "platformio": {"platform": self.pio_platform, "board": self.pio_board, "framework": self.pio_framework},
            "target": self.target, "cpu_mhz": self.cpu_mhz, "flash_bytes": self.flash_bytes,
            "app_flash_bytes": self.app_flash_bytes,
            "sram_arena_bytes": self.sram_arena_bytes, "sram_heap_bytes": self.sram_heap_bytes,
            "psram_bytes": self.psram_bytes, "psram_heap_bytes": self.psram_heap_bytes,
            "esp_nn": self.esp_nn, "esp_nn_kernels": self.esp_nn_kernels,
            "flash_mode": self.flash_mode, "usb_serial_jtag": self.usb_serial_jtag,
            "baud": self.baud, "upload_baud": self.upload_baud, "release_rts_dtr": self.release_rts_dtr,
            "usb_ids": self.usb_ids_hex, "mac_budget": self.mac_budget,
            # with the kernels generated for the model: None where the board file has no figure
            # of them (mac_budget_for("generated") is then mac_budget)
            "mac_budget_generated": self.mac_budget_generated,
            "generated_kernels_measured": self.measured_generated is not None,
            "firmware_flash_bytes": self.firmware_flash_bytes,
            "cycles_per_mac": cm.cycles_per_mac.get("default", 0.0), "overhead_us_per_op": cm.overhead_us_per_op,
            "cost_source": cm.source,
        }


def _board_files(directory: str | Path | None = None) -> dict[str, Path]:
    """name -> file: of ``directory``, else of the user's boards folder (if any) over the shipped ones."""
    folders = [Path(directory)] if directory else boards_dirs()
    files: dict[str, Path] = {}
    for folder in reversed(folders):  # the first folder wins
        files.update({p.stem: p for p in folder.glob("*.toml")})
    return dict(sorted(files.items()))


def list_boards(directory: str | Path | None = None) -> list[Board]:
    """Every board in ``directory`` (default: --boards-dir's folder, then the shipped boards/), sorted by name.

    Raises:
        ConfigError: a board file is invalid (the message names the file and the key).
    """
    return [load_board_file(p) for p in _board_files(directory).values()]


def board_names(directory: str | Path | None = None) -> list[str]:
    return list(_board_files(directory))


def load_board(name: str, directory: str | Path | None = None) -> Board:
    """The board called ``name`` (``<name>.toml`` in --boards-dir's folder or the shipped boards/), or a
    board file given by path.

    Raises:
        ConfigError: no such board (the message lists the known ones), or its file is invalid.
    """
    path = find_board_file(name, directory)
    if path is None:
        raise unknown_board(name, directory)
    return load_board_file(path)


def find_board_file(name: str, directory: str | Path | None = None) -> Path | None:
    """The file of the board ``name`` (load_board's rule: a path ending in .toml that is a file, else
    ``<name>.toml`` of --boards-dir's folder or the shipped boards/); None where there is none."""
    candidate = Path(name)
    if candidate.suffix == ".toml" and candidate.is_file():
        return candidate
    return _board_files(directory).get(name)


def unknown_board(name: str, directory: str | Path | None = None) -> ConfigError:
    """The error for a board ``name`` that find_board_file finds no file of: the known boards named, or
    for a path ending in .toml, that it is no file."""
    if Path(name).suffix == ".toml":
        return ConfigError(f"no board file {name}", hint="a path ending in .toml is read as a board file")
    known = ", ".join(_board_files(directory)) or "none"
    return ConfigError(f"unknown board '{name}'", hint=f"known boards: {known}; `tinyface boards` lists them")


def load_board_file(path: str | Path) -> Board:
    """Parse and validate one board file.

    Raises:
        ConfigError: not TOML, a missing or unknown key, a value of the wrong type or out of
            range, or a ``name`` that differs from the file name.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except IsADirectoryError:
        raise ConfigError(f"board file {path} is a folder, not a board file",
                          hint="a board is one <name>.toml file: move the folder away") from None
    except FileNotFoundError:  # a link to nothing
        raise ConfigError(f"board file {path} cannot be read: it is a link to a file that does not exist",
                          hint="remove the link, or point it at a board file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read board file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"board file {path} is not valid TOML: {exc}") from None

    values: dict[str, object] = {}
    for section, keys in SCHEMA.items():
        table = raw if section == "" else raw.get(section)
        if table is None:
            raise ConfigError(f"board file {path} has no [{section}] section")
        extra = (set(SCHEMA) - {""}) | set(OPTIONAL_SCHEMA) if section == "" else set()
        values.update(_checked_table(table, section, keys, path, extra, OPTIONAL_KEYS.get(section)))

    measured = _optional_section(raw, "measured", path)
    measured_generated = _optional_section(raw, "measured_generated", path)
    name = values["name"]
    if name != path.stem:
        raise ConfigError(f"board file {path} says name = '{name}'; it must match the file name '{path.stem}'")
    for key in ("chip.cpu_mhz", "chip.flash_bytes", "chip.sram_arena_bytes", "chip.sram_heap_bytes", "serial.baud",
                "serial.upload_baud", "budget.mac_budget", "budget.mac_budget_generated",
                "cost_model.calibration_macs", "cost_model.calibration_ops", "cost_model.calibration_ms_esp_nn",
                "cost_model.calibration_ms_reference"):
        if key in values and values[key] <= 0:
            raise ConfigError(f"board file {path}: '{key}' must be > 0, got {values[key]!r}")
    for key in ("chip.psram_bytes", "budget.firmware_flash_bytes", "cost_model.overhead_us_per_op"):
        if values[key] < 0:
            raise ConfigError(f"board file {path}: '{key}' must be >= 0, got {values[key]!r}")
    if values["chip.sram_arena_bytes"] > values["chip.sram_heap_bytes"]:
        raise ConfigError(f"board file {path}: 'chip.sram_arena_bytes' cannot exceed 'chip.sram_heap_bytes'")
    if values["chip.esp_nn_kernels"] not in ESP_NN_KERNELS:
        raise ConfigError(f"board file {path}: 'chip.esp_nn_kernels' must be one of {', '.join(ESP_NN_KERNELS)}, "
                          f"got {values['chip.esp_nn_kernels']!r}")
    if values["chip.flash_mode"] not in FLASH_MODES:
        raise ConfigError(f"board file {path}: 'chip.flash_mode' must be one of {', '.join(FLASH_MODES)}, "
                          f"got {values['chip.flash_mode']!r}")
    for key in ("platformio.platform", "platformio.board"):
        if not values[key].strip():
            raise ConfigError(f"board file {path}: '{key}' must not be empty", hint="docs/boards.md lists the keys")
    if values["platformio.framework"] != PIO_FRAMEWORK:
        raise ConfigError(f"board file {path}: 'platformio.framework' must be {PIO_FRAMEWORK!r} (the firmware is an "
                          f"ESP-IDF project: TFLM and ESP-NN are ESP-IDF components), "
                          f"got {values['platformio.framework']!r}")
    if values["chip.flash_bytes"] <= APP_OFFSET_BYTES:
        raise ConfigError(f"board file {path}: 'chip.flash_bytes' must exceed {APP_OFFSET_BYTES}")
    _check_chip(values, path)

    board = Board(
        name=name, title=values["title"],
        pio_platform=values["platformio.platform"], pio_board=values["platformio.board"],
        pio_framework=values["platformio.framework"], target=values["chip.target"],
        cpu_mhz=float(values["chip.cpu_mhz"]), flash_bytes=values["chip.flash_bytes"],
        sram_arena_bytes=values["chip.sram_arena_bytes"], sram_heap_bytes=values["chip.sram_heap_bytes"],
        psram_bytes=values["chip.psram_bytes"],
        esp_nn=values["chip.esp_nn"], esp_nn_kernels=values["chip.esp_nn_kernels"],
        flash_mode=values["chip.flash_mode"], usb_serial_jtag=values["chip.usb_serial_jtag"],
        baud=values["serial.baud"], upload_baud=values["serial.upload_baud"],
        release_rts_dtr=values["serial.release_rts_dtr"],
        usb_ids=tuple(_parse_usb_id(item, path) for item in values["serial.usb_ids"]),
        mac_budget=values["budget.mac_budget"], firmware_flash_bytes=values["budget.firmware_flash_bytes"],
        calibration_macs=values["cost_model.calibration_macs"], calibration_ops=values["cost_model.calibration_ops"],
        calibration_ms_esp_nn=float(values["cost_model.calibration_ms_esp_nn"]),
        calibration_ms_reference=float(values["cost_model.calibration_ms_reference"]),
        overhead_us_per_op=float(values["cost_model.overhead_us_per_op"]),
        cost_source=values["cost_model.source"], path=path, measured=measured,
        mac_budget_generated=values.get("budget.mac_budget_generated"), measured_generated=measured_generated,
    )
    if not board.usb_ids:
        raise ConfigError(f"board file {path}: 'serial.usb_ids' must list at least one VID:PID")
    try:
        board.esp_nn_cost_model, board.reference_cost_model  # noqa: B018 - validates the calibration
    except ValueError as exc:
        raise ConfigError(f"board file {path}: bad [cost_model] calibration: {exc}") from None
    for kernels, section in MEASURED_SECTION.items():
        if raw.get(section) is not None:
            try:
                board.measured_cost_model_for(kernels)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"board file {path}: bad [{section}] cost model: {exc}") from None
    return board


# What to do about a missing key that a board file of an earlier tinyface lacks.
_MISSING_HINTS = {"chip.target": f"add the chip, the ESP-IDF target of 'platformio.board', one of {', '.join(CHIPS)}; "
                                 'target = "esp32" for esp32dev, docs/boards.md'}


# PlatformIO's board ids and the chip each is (platform-espressif32's boards/<id>.json, build.mcu),
# and those it builds with Arduino only: platformio_boards.json says which release.
PLATFORMIO_BOARDS_FILE = Path(__file__).resolve().parent / "platformio_boards.json"


@functools.cache
def platformio_boards() -> tuple[dict[str, str], frozenset[str]]:
    """(board id -> its ESP-IDF target, the ids PlatformIO has no ESP-IDF build for)."""
    import json

    table = json.loads(PLATFORMIO_BOARDS_FILE.read_text())
    return table["mcu"], frozenset(table["no_espidf"])


def _check_platformio_board(values: dict, where: str) -> None:
    """Raises ConfigError: ``platformio.board`` is PlatformIO's board of another chip than
    ``chip.target`` (it would bring that chip's defaults, and its flash or clock), or one PlatformIO
    builds with Arduino only. A board id PlatformIO's table lacks (a newer release's, a custom board
    JSON) is left to PlatformIO."""
    pio_board, target = values["platformio.board"], values["chip.target"]
    mcus, no_espidf = platformio_boards()
    mcu = mcus.get(pio_board)
    if mcu is not None and mcu != target:
        what = CHIPS[mcu].title if mcu in CHIPS else mcu
        raise ConfigError(f"{where}: 'platformio.board' = {pio_board!r} is PlatformIO's board of an {what}, "
                          f"but 'chip.target' = {target!r}",
                          hint=f"target = \"{mcu}\", or the board id of a board with the {CHIPS[target].title}")
    if pio_board in no_espidf:
        raise ConfigError(f"{where}: 'platformio.board' = {pio_board!r} is a board PlatformIO builds with Arduino "
                          "only, and the firmware project is ESP-IDF",
                          hint=f"the board id of another board with its chip ({target})")


def _check_chip(values: dict, path: Path) -> None:
    """Raises ConfigError: ``chip.target`` names no chip of CHIPS, or the board says what its chip
    cannot be (a clock it does not offer, more flash than it maps, PSRAM or a USB-Serial/JTAG port it
    lacks, another chip's ESP-NN kernels). Unchecked, ESP-IDF would ignore the clock and run the chip
    at its default, or stop the build only after PlatformIO downloaded the toolchain."""
    where, target = f"board file {path}", values["chip.target"]
    chip = CHIPS.get(target)
    if chip is None:
        raise ConfigError(f"{where}: 'chip.target' = {target!r} is no chip tinyface knows",
                          hint=f"the ESP-IDF target of 'platformio.board': {', '.join(CHIPS)}")
    mhz = values["chip.cpu_mhz"]
    if mhz not in chip.cpu_mhz:
        raise ConfigError(f"{where}: 'chip.cpu_mhz' = {mhz:g} is not a clock the {chip.title} runs at",
                          hint=f"{_either(chip.cpu_mhz)} MHz")
    if chip.max_flash_mb and values["chip.flash_bytes"] > chip.max_flash_mb << 20:
        raise ConfigError(f"{where}: 'chip.flash_bytes' = {values['chip.flash_bytes']:,} is more flash than the "
                          f"{chip.title} maps", hint=f"at most {chip.max_flash_mb} MiB ({chip.max_flash_mb << 20:_})")
    if values["chip.psram_bytes"] and not chip.psram:
        raise ConfigError(f"{where}: 'chip.psram_bytes' = {values['chip.psram_bytes']:,}, but the {chip.title} has "
                          "no PSRAM interface", hint="psram_bytes = 0")
    if values["chip.usb_serial_jtag"] and not chip.usb_serial_jtag:
        raise ConfigError(f"{where}: 'chip.usb_serial_jtag' = true, but the {chip.title} has no USB-Serial/JTAG "
                          "port", hint="usb_serial_jtag = false")
    if values["chip.esp_nn_kernels"] != chip.esp_nn_kernels:
        raise ConfigError(f"{where}: 'chip.esp_nn_kernels' = {values['chip.esp_nn_kernels']!r}, but ESP-NN "
                          f"compiles {chip.esp_nn_kernels!r} for the {chip.title}",
                          hint=f"esp_nn_kernels = \"{chip.esp_nn_kernels}\"")
    _check_platformio_board(values, where)


def _either(options: tuple[int, ...]) -> str:
    """(80, 160, 240) -> "80, 160 or 240"."""
    return ", ".join(str(o) for o in options[:-1]) + (" or " if len(options) > 1 else "") + str(options[-1])


def _checked_table(table, section: str, keys: dict, path: Path, extra: set = frozenset(),
                   optional: dict | None = None) -> dict:
    """The values of one section of a board file, by dotted key, once every key of ``keys`` is
    there with a type it allows and nothing else is (but the ``extra`` names); the ``optional``
    keys (name -> types) present are type-checked as well.

    Raises:
        ConfigError: not a table, a missing, unknown or wrongly typed key.
    """
    where = f"[{section}]" if section else "the top level"
    if not isinstance(table, dict):
        raise ConfigError(f"board file {path}: [{section}] must be a table")
    values = {}
    present_optional = {k: t for k, t in (optional or {}).items() if k in table}
    for key, types in {**keys, **present_optional}.items():
        if key not in table:
            raise ConfigError(f"board file {path} is missing '{key}' in {where}",
                              hint=_MISSING_HINTS.get(_dotted(section, key), "docs/boards.md lists the keys"))
        value = table[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            kind = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"board file {path}: '{_dotted(section, key)}' must be {kind}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):  # TOML's nan and inf: no clock, size or time
            raise ConfigError(f"board file {path}: '{_dotted(section, key)}' must be a finite number, got {value!r}")
        values[_dotted(section, key)] = value
    unknown = sorted(set(table) - set(keys) - set(extra) - set(optional or {}))
    if unknown:
        raise ConfigError(f"board file {path} has unknown key '{_dotted(section, unknown[0])}'",
                          hint=f"known keys of {where}: {', '.join([*keys, *(optional or {})])}")
    return values


def _optional_section(raw: dict, section: str, path: Path) -> dict | None:
    """An OPTIONAL_SCHEMA section: None when absent; all keys, of the right types, when present."""
    table = raw.get(section)
    if table is None:
        return None
    _checked_table(table, section, OPTIONAL_SCHEMA[section], path)
    for key in ("instructions_per_mac", "instructions_per_output"):
        for op, value in table[key].items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"board file {path}: '{section}.{key}.{op}' must be a number >= 0, got {value!r}")
    if table["stall_factor"] < 1:
        raise ConfigError(f"board file {path}: '{section}.stall_factor' must be >= 1 (an instruction takes at least "
                          f"one cycle), got {table['stall_factor']!r}")
    return dict(table)


def _check_kernels(kernels: str) -> None:
    if kernels not in FIRMWARE_KERNELS:
        raise ConfigError(f"unknown kernel set {kernels!r}",
                          hint=f"firmware.kernels is one of {', '.join(FIRMWARE_KERNELS)}")


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _parse_usb_id(item: object, path: Path) -> tuple[int, int]:
    text = str(item)
    vid, sep, pid = text.partition(":")
    try:
        if not sep or len(vid) != 4 or len(pid) != 4:
            raise ValueError
        return int(vid, 16), int(pid, 16)
    except ValueError:
        raise ConfigError(f"board file {path}: USB id {text!r} must look like '10C4:EA60' (hex VID:PID)") from None
