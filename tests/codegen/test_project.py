"""The generated PlatformIO project: its files, their contents against the model, and
regeneration that touches nothing."""

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.codegen.conftest import defines
from tests.conftest import REPO, skip_or_fail
from tinyface import errors
from tinyface.boards import load_board
from tinyface.codegen import BANNER, generate_project
from tinyface.codegen.project import project_sources
from tinyface.model.graph import analyze
from tinyface.protocol import spec

EXPECTED_FILES = {
    "platformio.ini", "CMakeLists.txt", "sdkconfig.defaults", "partitions.csv",
    "src/CMakeLists.txt", "src/idf_component.yml", "src/tinyface_protocol.h", "src/platform.h",
    "src/platform_esp.cc", "src/tinyface_app.h", "src/tinyface_app.cc", "src/frame_decoder.h",
    "src/frame_decoder.cc", "src/gallery.h", "src/gallery.cc", "src/gallery_data.h", "src/model_data.h",
    "src/model_data.cc", "src/model_settings.h", "src/op_resolver.h",
    "native/Makefile", "native/platform_host.cc",
    # the ESP32-C3 instruction-set build (rv32imc under qemu-riscv32)
    "rv32/Makefile", "rv32/platform_rv32.cc", "rv32/runtime_rv32.c", "rv32/runtime_rv32.h",
    "rv32/include/esp_timer.h", "rv32/include/bits/c++config.h", "rv32/include/bits/c++locale.h",
    "rv32/include/bits/ctype_base.h", "rv32/include/bits/gthr-default.h", "rv32/include/bits/os_defines.h",
}
# The generated kernels (issue 18): rendered always, empty of kernels with firmware.kernels = "esp-nn".
EXPECTED_FILES |= {"src/tf_kernels.h", "src/tf_kernels_impl.h", "src/tf_kernels.cc"}


def _f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _c_float(text: str) -> float:
    assert text.endswith("f"), text
    return _f32(float(text[:-1]))


def test_file_set(esp32_project):
    assert set(esp32_project.files) == EXPECTED_FILES
    on_disk = {str(p.relative_to(esp32_project.directory)) for p in esp32_project.directory.rglob("*") if p.is_file()}
    assert on_disk == EXPECTED_FILES | {"tinyface-project.json"}


def test_a_bundle_path_and_a_board_name_generate_the_same_project(tiny_bundle, esp32_project, tmp_path):
    """What load_bundle and load_board take is taken as their objects (it was an AttributeError);
    a name that is no board is their own error."""
    from tinyface.errors import ConfigError

    by_path = generate_project(str(tiny_bundle.model_path.parent), "esp32", tmp_path / "by_path")
    assert {f: (tmp_path / "by_path" / f).read_bytes() for f in by_path.files} == \
        {f: (esp32_project.directory / f).read_bytes() for f in esp32_project.files}
    with pytest.raises(ConfigError, match="unknown board 'esp33'"):
        generate_project(tiny_bundle.model_path, "esp33", tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_every_firmware_file_is_in_the_project_and_every_file_has_the_banner(esp32_project):
    assert set(project_sources()) == EXPECTED_FILES - {"src/tinyface_protocol.h"}
    for rel in esp32_project.files:
        head = (esp32_project.directory / rel).read_text(encoding="utf-8").splitlines()[0]
        assert BANNER in head, rel


def test_hand_written_sources_are_copied_behind_the_banner(esp32_project):
    """Sources with nothing to fill in are plain C/C++ in firmware/, copied byte for byte."""
    from tinyface.resources import firmware_dir

    copied = {out: src for out, src in project_sources().items() if not src.endswith(".j2")}
    assert {"src/tinyface_app.cc", "src/platform.h", "native/platform_host.cc", "rv32/runtime_rv32.c"} <= set(copied)
    for out, src in copied.items():
        assert out == src
        first, rest = (esp32_project.directory / out).read_text(encoding="utf-8").split("\n", 1)
        assert first == f"// {BANNER} (copied from firmware/{src})"
        assert rest == (firmware_dir() / src).read_text(encoding="utf-8")


def test_firmware_readme_says_where_every_project_file_comes_from():
    """firmware/README.md has a row for each project file (by name or by a glob such as
    `rv32/include/bits/*.h`) saying whether it is a template or copied."""
    import fnmatch

    from tinyface.resources import firmware_dir

    table = (firmware_dir() / "README.md").read_text(encoding="utf-8").split("| project file |", 1)[1]
    rows = [(re.findall(r"`([^`]+)`", line.split("|")[1]), line) for line in table.splitlines()
            if line.startswith("| `")]
    for out, src in {**project_sources(), "src/tinyface_protocol.h": "tinyface/protocol/cheader.py"}.items():
        row = next((line for names, line in rows if any(fnmatch.fnmatch(out, name) for name in names)), None)
        assert row is not None, f"firmware/README.md does not say where {out} comes from"
        what = "template" if src.endswith(".j2") else "copied" if src == out else "cheader.py"
        assert what in row, (out, row)


def test_a_stray_file_in_firmware_is_refused(tmp_path):
    from tinyface.resources import firmware_dir

    copy = tmp_path / "firmware"
    shutil.copytree(firmware_dir(), copy)
    (copy / "src" / "notes.txt").write_text("not a source")
    with pytest.raises(ValueError, match="notes.txt"):
        project_sources(copy)


def test_protocol_header_is_the_generated_one(esp32_project):
    from tinyface.protocol.cheader import render_c_header

    assert (esp32_project.directory / "src/tinyface_protocol.h").read_text(encoding="utf-8") == render_c_header()


def test_model_settings_match_the_bundle(esp32_project, tiny_bundle):
    d = defines((esp32_project.directory / "src/model_settings.h").read_text(encoding="utf-8"))
    meta = tiny_bundle.meta
    _, h, w, c = meta.input_shape
    assert (int(d["TF_MODEL_INPUT_H"]), int(d["TF_MODEL_INPUT_W"]), int(d["TF_MODEL_INPUT_C"])) == (h, w, c)
    assert int(d["TF_MODEL_INPUT_BYTES"]) == h * w * c
    assert _c_float(d["TF_MODEL_INPUT_SCALE"]) == _f32(meta.input_scale)
    assert int(d["TF_MODEL_INPUT_ZERO_POINT"]) == meta.input_zero_point
    assert _c_float(d["TF_MODEL_OUTPUT_SCALE"]) == _f32(meta.output_scale)
    assert int(d["TF_MODEL_OUTPUT_ZERO_POINT"]) == meta.output_zero_point
    assert int(d["TF_MODEL_OUTPUT_SIZE"]) == meta.embedding_dim
    assert _c_float(d["TF_MODEL_THRESHOLD"]) == _f32(meta.identify_at)
    assert d["TF_MODEL_SHA256_HEX"] == f'"{tiny_bundle.model_hash}"'
    digest = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", d["TF_MODEL_SHA256_INIT"]))
    assert digest.hex() == tiny_bundle.model_hash
    assert int(d["TF_MODEL_BYTES"]) == len(tiny_bundle.model_bytes)
    assert int(d["TF_MODEL_PROTOCOL_VERSION"]) == spec.PROTOCOL_VERSION == 3
    assert d["TF_BOARD_NAME"] == '"esp32"' and int(d["TF_BOARD_BAUD"]) == load_board("esp32").baud


def test_arena_is_tflm_recorded_usage_plus_the_margin(esp32_project, tiny_bundle):
    from tinyface.model.runtime import TflmRunner

    d = defines((esp32_project.directory / "src/model_settings.h").read_text(encoding="utf-8"))
    used = TflmRunner(tiny_bundle.model_bytes).arena_used_bytes()
    assert int(d["TF_ARENA_USED_BYTES"]) == used
    arena = int(d["TF_ARENA_BYTES"])
    assert arena % 16 == 0 and used * 1.15 <= arena < used * 1.15 + 16
    assert int(d["TF_ARENA_MARGIN_PERCENT"]) == 15 and d["TF_ARENA_IN_PSRAM"] == "0"


def test_arena_margin_comes_from_the_setting(tiny_bundle, tmp_path):
    project = generate_project(tiny_bundle, load_board("esp32"), tmp_path, arena_margin=0.5)
    d = defines((tmp_path / "src/model_settings.h").read_text(encoding="utf-8"))
    assert int(d["TF_ARENA_BYTES"]) >= int(d["TF_ARENA_USED_BYTES"]) * 1.5
    assert project.arena.margin_percent == 50


def test_op_resolver_lists_exactly_the_models_ops(esp32_project, tiny_bundle):
    from tinyface.codegen.ops import RESOLVER_METHODS

    text = (esp32_project.directory / "src/op_resolver.h").read_text(encoding="utf-8")
    methods = re.findall(r"resolver\.(Add\w+)\(\)", text)
    by_method = {m: op for op, m in RESOLVER_METHODS.items()}
    ops = {by_method[m] for m in methods}
    assert len(methods) == len(ops)  # each op registered once
    assert ops == set(analyze(tiny_bundle.model_bytes).op_names) == {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN",
                                                                      "FULLY_CONNECTED"}
    assert defines(text)["TF_OP_COUNT"] == str(len(ops))
    assert "MicroMutableOpResolver<TF_OP_COUNT>" in text
    makefile = (esp32_project.directory / "native/Makefile").read_text(encoding="utf-8")
    assert re.search(r"^TFLM_OPS := (.*)$", makefile, re.M).group(1).split() == sorted(ops)


def test_an_op_tflm_lacks_is_a_model_error():
    from tinyface.codegen.ops import resolver_entries
    from tinyface.errors import ModelError

    with pytest.raises(ModelError, match="FLEX_MAGIC"):
        resolver_entries(["CONV_2D", "FLEX_MAGIC"])


def test_model_array_is_the_tflite_bytes_aligned_16(esp32_project, tiny_bundle):
    source = (esp32_project.directory / "src/model_data.cc").read_text(encoding="utf-8")
    assert "alignas(16) const unsigned char g_model_data[] = {" in source
    body = source.split("= {", 1)[1].split("};", 1)[0]
    data = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))
    assert data == tiny_bundle.model_bytes
    assert f"g_model_data_len = {len(data)};" in source
    header = (esp32_project.directory / "src/model_data.h").read_text(encoding="utf-8")
    assert "extern const unsigned char g_model_data[];" in header
    assert "extern const unsigned int g_model_data_len;" in header


def test_standalone_c_array_pair():
    from tinyface.codegen.carray import render_c_array

    header, source = render_c_array("blob", bytes(range(30)), "banner")
    assert "extern const unsigned char blob[];" in header and "alignas(16) const unsigned char blob[]" in source
    assert source.count("0x") == 30 and "blob_len = 30;" in source


def test_regenerating_is_a_no_op(tiny_bundle, tmp_path):
    board = load_board("esp32")
    first = generate_project(tiny_bundle, board, tmp_path)
    assert set(first.written) == set(first.files) | {"tinyface-project.json"}
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    second = generate_project(tiny_bundle, board, tmp_path)
    assert second.written == [] and second.removed == []
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps


def test_a_new_model_rewrites_only_what_depends_on_it(tiny_bundle, tmp_path, tmp_path_factory):
    from tests.conftest import build_tiny_int8_bundle

    board = load_board("esp32")
    generate_project(tiny_bundle, board, tmp_path)
    other = build_tiny_int8_bundle(tmp_path_factory.mktemp("other"), seed=3)
    second = generate_project(other, board, tmp_path)
    assert "src/model_data.cc" in second.written and "src/model_settings.h" in second.written
    for untouched in ("src/platform.h", "src/tinyface_app.cc", "src/frame_decoder.cc", "src/tinyface_protocol.h"):
        assert untouched not in second.written


def test_a_user_file_in_the_project_is_left_alone(tiny_bundle, tmp_path):
    # added to a tinyface project (a folder of other files that is none is refused: tests/cli/test_cli_flash.py)
    generate_project(tiny_bundle, load_board("esp32"), tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    generate_project(tiny_bundle, load_board("esp32"), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_templates_use_strict_undefined(tiny_bundle, tmp_path, monkeypatch):
    import jinja2

    from tinyface.codegen import project as project_module
    from tinyface.resources import firmware_dir

    templates = tmp_path / "firmware"
    shutil.copytree(firmware_dir(), templates)
    (templates / "src" / "extra.h.j2").write_text("// {{ banner }}\n#define X {{ no_such_value }}\n")
    monkeypatch.setattr(project_module, "firmware_dir", lambda: templates)
    with pytest.raises(jinja2.UndefinedError, match="no_such_value"):
        generate_project(tiny_bundle, load_board("esp32"), tmp_path / "out")


@pytest.mark.parametrize("name", ["esp32", "esp32s3", "esp32c3", "esp32cam"])
def test_each_board_gets_a_consistent_platformio_project(name, tiny_bundle, tmp_path):
    """PlatformIO itself (the real `pio`) reads the generated platformio.ini."""
    from tinyface.device.platformio import project_config

    board = load_board(name)
    project = generate_project(tiny_bundle, board, tmp_path)
    config = project_config(tmp_path)
    env = config[f"env:{name}"]
    assert config["platformio"]["default_envs"] == [name]
    assert env["platform"] == board.pio_platform and env["board"] == board.pio_board
    assert env["framework"] == [board.pio_framework]
    assert env["upload_speed"] == board.upload_baud and env["board_build.partitions"] == "partitions.csv"
    assert env["monitor_speed"] == board.baud and env["board_build.flash_mode"] == board.flash_mode
    assert env["board_build.mcu"] == board.target  # the chip PlatformIO builds for: the board file's
    # no keys PlatformIO ignores: every library comes from src/idf_component.yml
    assert not [key for key in env if key.startswith("custom_")]
    # the monitor releases RTS/DTR exactly where the board file says they hold the chip in reset
    assert (env.get("monitor_rts"), env.get("monitor_dtr")) == ((0, 0) if board.release_rts_dtr else (None, None))
    # partition table: the factory app gets exactly what the budget check counted
    rows = [r.split(",") for r in (tmp_path / "partitions.csv").read_text().splitlines() if r and not r.startswith("#")]
    factory = [r for r in rows if r[0].strip() == "factory"][0]
    offset, size = int(factory[3], 16), int(factory[4], 16)
    assert size == board.app_flash_bytes == project.budget.app_flash_bytes and offset + size == board.flash_bytes
    sdk = (tmp_path / "sdkconfig.defaults").read_text()
    assert (f"CONFIG_ESPTOOLPY_FLASHSIZE_{board.flash_bytes >> 20}MB=y") in sdk
    # PSRAM on only where the arena needs it (ESP-IDF's PSRAM support slows an ESP32 before rev. 3)
    assert ("CONFIG_SPIRAM=y" in sdk) == project.budget.arena_in_psram
    assert "CONFIG_ESP_TASK_WDT_PANIC=y" in sdk  # a watchdog that fires restarts the chip
    assert f"CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_{int(board.cpu_mhz)}=y" in sdk
    assert f'CONFIG_IDF_TARGET="{board.target}"' in sdk.splitlines()  # idf.py builds for the right chip
    manifest = (tmp_path / "src/idf_component.yml").read_text()
    assert "espressif/esp-tflite-micro" in manifest and ("espressif/esp-nn" in manifest) == board.esp_nn
    settings = defines((tmp_path / "src/model_settings.h").read_text())
    assert settings["TF_BOARD_NAME"] == f'"{name}"' and int(settings["TF_BOARD_CPU_MHZ"]) == int(board.cpu_mhz)


def test_the_uart_interrupt_runs_from_iram_while_the_gallery_is_written(esp32_project):
    """Writing the gallery to flash stops code in flash; a UART handler outside IRAM would leave
    bytes in the 128-byte FIFO until it overflowed. The option and the flag go together: ESP-IDF
    refuses ESP_INTR_FLAG_IRAM for a handler that is not in IRAM."""
    sdk = (esp32_project.directory / "sdkconfig.defaults").read_text()
    esp = (esp32_project.directory / "src/platform_esp.cc").read_text()
    assert "CONFIG_UART_ISR_IN_IRAM=y" in sdk.splitlines()
    guarded = esp.split("#if CONFIG_UART_ISR_IN_IRAM", 1)[1].split("#endif", 1)[0]
    assert "kUartIntrFlags = ESP_INTR_FLAG_IRAM;" in guarded.split("#else", 1)[0]
    assert "uart_driver_install(kUart, kUartRxBytes, kUartTxBytes, 0, nullptr, kUartIntrFlags)" in esp


def test_budget_counts_the_serial_buffers_the_firmware_installs(esp32_project, tiny_bundle, tmp_path):
    """The buffers the ESP-IDF source allocates are the ones budget.py counts: the UART's on every
    board, the USB-Serial/JTAG port's only where the board file says it has one."""
    from tinyface.codegen import budget

    esp = (esp32_project.directory / "src/platform_esp.cc").read_text()
    assert f"constexpr int kUartRxBytes = {budget.UART_RX_BYTES};" in esp
    assert f"constexpr int kUartTxBytes = {budget.UART_TX_BYTES};" in esp
    assert budget.UART_RX_BYTES > spec.MAX_FRAME
    assert "#define TF_USB_SERIAL_JTAG 0" in esp and "usb_serial_jtag_driver_install" in esp
    s3 = generate_project(tiny_bundle, load_board("esp32s3"), tmp_path / "s3")
    esp_s3 = (s3.directory / "src/platform_esp.cc").read_text()
    assert "#define TF_USB_SERIAL_JTAG 1" in esp_s3
    assert f"jtag.rx_buffer_size = {budget.USB_JTAG_RX_BYTES};" in esp_s3
    assert f"constexpr int kJtagTxBytes = {budget.USB_JTAG_TX_BYTES};" in esp_s3
    assert "jtag.tx_buffer_size = kJtagTxBytes;" in esp_s3
    # ESP-IDF's driver refuses at once a write larger than its TX ring (xRingbufferSend: "will never
    # ever fit"), sending nothing: the firmware writes at most a ring's worth
    write = esp_s3[esp_s3.index('extern "C" int tf_serial_write'):]
    assert "usb_serial_jtag_write_bytes(buf, chunk," in write and "n < (size_t)kJtagTxBytes ? n" in write
    jtag = budget.USB_JTAG_RX_BYTES + budget.USB_JTAG_TX_BYTES
    assert s3.budget.firmware_ram_bytes - esp32_project.budget.firmware_ram_bytes == jtag


def test_sources_without_tflm_compile(esp32_project, tmp_path):
    """The decoder and the gallery need only the generated headers: compile them for real."""
    if shutil.which("g++") is None:
        skip_or_fail("g++ not installed")
    src = esp32_project.directory / "src"
    for name in ("frame_decoder.cc", "gallery.cc"):
        result = subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", str(src / name), "-I", str(src),
                                 "-o", str(tmp_path / (name + ".o"))], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr


def test_compiled_in_gallery(tiny_bundle, tmp_path):
    from tinyface.codegen.gallery import GalleryPerson

    dim = tiny_bundle.meta.embedding_dim
    people = [GalleryPerson("Ana", 3, tuple(np.linspace(-1, 1, dim, dtype=np.float32).tolist())),
              GalleryPerson('Zoë "Z"', 1, tuple([0.5] * dim))]
    project = generate_project(tiny_bundle, load_board("esp32"), tmp_path, gallery=people)
    text = (tmp_path / "src/gallery_data.h").read_text(encoding="utf-8")
    assert defines(text)["TF_GALLERY_BUILTIN_COUNT"] == "2"
    assert '{"Ana", 3, {' in text and r'"Zo\303\253 \042Z\042"' in text
    assert project.budget.gallery_flash_bytes > 0
    if shutil.which("g++") is None:
        skip_or_fail("g++ not installed: the compiled-in gallery's C++ was not compiled")
    result = subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", str(tmp_path / "src/gallery.cc"),
                             "-I", str(tmp_path / "src"), "-o", str(tmp_path / "gallery.o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_compiled_in_gallery_is_identified_by_a_hash_of_its_entries(tiny_bundle, tmp_path):
    """TF_GALLERY_BUILTIN_HASH: the saved gallery records it, and a firmware whose compiled-in
    people differ replaces the saved gallery with its own (gallery.cc, Gallery::Load). Any change
    to a name, a sample count or a sum changes it; no people has one fixed value."""
    import dataclasses

    from tinyface.codegen.gallery import GalleryPerson

    dim = tiny_bundle.meta.embedding_dim
    base = [GalleryPerson("Ana", 3, tuple(np.linspace(-1, 1, dim, dtype=np.float32).tolist())),
            GalleryPerson("Ben", 1, tuple([0.5] * dim))]
    nudged = tuple(np.nextafter(np.float32(v), np.float32(2)).item() if i == 7 else v
                   for i, v in enumerate(base[0].sum))  # one float32 one ULP up

    def rendered(people, name):
        generate_project(tiny_bundle, load_board("esp32"), tmp_path / name, gallery=people)
        found = defines((tmp_path / name / "src/gallery_data.h").read_text(encoding="utf-8"))
        assert re.fullmatch(r"0x[0-9a-f]{8}u", found["TF_GALLERY_BUILTIN_HASH"])
        return found["TF_GALLERY_BUILTIN_HASH"]

    empty = rendered([], "empty")
    assert empty == "0xf485a655u" and rendered((), "empty_again") == empty
    same = rendered(base, "base")
    assert same == rendered(list(base), "base_again") and same != empty
    variants = {"renamed": [dataclasses.replace(base[0], name="Anb"), base[1]],
                "samples": [dataclasses.replace(base[0], samples=4), base[1]],
                "sum": [dataclasses.replace(base[0], sum=nudged), base[1]],
                "order": base[::-1], "fewer": base[:1]}
    hashes = {name: rendered(people, name) for name, people in variants.items()}
    assert len({same, empty, *hashes.values()}) == 2 + len(variants), hashes


def _board_variant(tmp_path, name: str, edit) -> "Board":  # noqa: F821 - a tinyface.boards.Board
    from tinyface.resources import boards_dir

    folder = tmp_path / "boards"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(edit((boards_dir() / f"{name}.toml").read_text()))
    return load_board(name, directory=folder)


def _as_generated(project_dir: Path, rel: str) -> None:
    """Record ``rel``'s bytes in the manifest as the ones tinyface wrote (a complete generation by
    another tinyface wrote it so), not an edit of the user's."""
    import hashlib
    import json

    manifest = project_dir / "tinyface-project.json"
    recorded = json.loads(manifest.read_text())
    recorded["files_sha256"][rel] = hashlib.sha256((project_dir / rel).read_bytes()).hexdigest()
    manifest.write_text(json.dumps(recorded, indent=2) + "\n")


def test_a_changed_sdkconfig_defaults_removes_platformios_stale_sdkconfig(tiny_bundle, tmp_path):
    """PlatformIO copies sdkconfig.defaults into sdkconfig.<env> once and then ignores it."""
    project_dir = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32"), project_dir)
    stale = project_dir / "sdkconfig.esp32"
    stale.write_text("CONFIG_ESPTOOLPY_FLASHMODE_DIO=y\n")  # what the first `pio run` writes
    again = generate_project(tiny_bundle, load_board("esp32"), project_dir)
    assert stale.is_file() and again.removed == []  # unchanged defaults: nothing to rebuild
    qio = _board_variant(tmp_path, "esp32", lambda t: t.replace('flash_mode = "dio"', 'flash_mode = "qio"'))
    changed = generate_project(tiny_bundle, qio, project_dir)
    assert "sdkconfig.defaults" in changed.written and "sdkconfig.esp32" in changed.removed
    assert not stale.exists()
    assert "CONFIG_ESPTOOLPY_FLASHMODE_QIO=y" in (project_dir / "sdkconfig.defaults").read_text()


def test_idf_py_s_sdkconfig_goes_with_platformios(tiny_bundle, tmp_path):
    """idf.py copies sdkconfig.defaults into sdkconfig: stale after a change, as PlatformIO's."""
    project_dir = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32"), project_dir)
    (project_dir / "sdkconfig").write_text("CONFIG_ESPTOOLPY_FLASHMODE_DIO=y\n")
    qio = _board_variant(tmp_path, "esp32", lambda t: t.replace('flash_mode = "dio"', 'flash_mode = "qio"'))
    changed = generate_project(tiny_bundle, qio, project_dir)
    assert changed.removed == ["sdkconfig"] and not (project_dir / "sdkconfig").exists()


def test_a_changed_component_manifest_drops_the_lock_and_reconfigures(tiny_bundle, tmp_path):
    """The component manager's dependencies.lock pins the old components, and PlatformIO reruns
    CMake (and the component manager) only when a CMakeLists.txt is newer than its cache."""
    import os

    project_dir = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32"), project_dir)
    lock, cmake = project_dir / "dependencies.lock", project_dir / "src" / "CMakeLists.txt"
    lock.write_text("dependencies: {}\n")  # what the first build's component manager writes
    os.utime(cmake, (1_000_000, 1_000_000))  # the first build's CMake cache is newer than it
    again = generate_project(tiny_bundle, load_board("esp32"), project_dir)
    assert again.written == [] and lock.is_file() and cmake.stat().st_mtime == 1_000_000  # nothing changed
    manifest = project_dir / "src" / "idf_component.yml"  # as an older tinyface pinned it
    manifest.write_text(manifest.read_text().replace('"==1.3.8"', '"==1.3.7"'))
    _as_generated(project_dir, "src/idf_component.yml")
    changed = generate_project(tiny_bundle, load_board("esp32"), project_dir)
    assert "src/idf_component.yml" in changed.written and '"==1.3.8"' in manifest.read_text()
    assert "dependencies.lock" in changed.removed and not lock.exists()
    assert cmake.stat().st_mtime > 1_000_000


def test_idf_py_finds_the_src_component_and_platformio_s_setting_is_kept(tiny_bundle, tmp_path):
    """idf.py only looks in main/ and components/, so the project names src/; PlatformIO passes
    EXTRA_COMPONENT_DIRS itself (platform-espressif32 6.9.0, builder/frameworks/espidf.py), and
    that stays as it is. Real cmake runs the project's CMakeLists.txt with an ESP-IDF whose
    project.cmake only prints what it was given."""
    if shutil.which("cmake") is None:
        skip_or_fail("cmake not installed (apt-get install cmake)")
    project = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32"), project)
    idf = tmp_path / "idf"
    (idf / "tools" / "cmake").mkdir(parents=True)
    (idf / "tools" / "cmake" / "project.cmake").write_text('message(STATUS "components: ${EXTRA_COMPONENT_DIRS}")\n'
                                                          "macro(project name)\nendmacro()\n")

    def components(*args) -> str:
        proc = subprocess.run(["cmake", *args, "-S", str(project), "-B", str(tmp_path / f"build{len(args)}")],
                              env={**os.environ, "IDF_PATH": str(idf)}, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return re.search(r"components: (.*)", proc.stdout).group(1).strip()

    assert Path(components()) == project / "src"  # idf.py
    assert components("-DEXTRA_COMPONENT_DIRS:PATH=/pio/src") == "/pio/src"  # PlatformIO


@pytest.mark.parametrize("name", ["esp32", "esp32s3", "esp32c3", "esp32cam"])
def test_console_flash_mode_and_watchdog_settings(name, tiny_bundle, tmp_path):
    board = load_board(name)
    generate_project(tiny_bundle, board, tmp_path)
    sdk = (tmp_path / "sdkconfig.defaults").read_text().splitlines()
    assert "CONFIG_ESP_CONSOLE_NONE=y" in sdk
    # S3/C3: the USB-Serial/JTAG secondary console would print a panic into the protocol stream
    assert ("CONFIG_ESP_CONSOLE_SECONDARY_NONE=y" in sdk) == board.usb_serial_jtag == (name in ("esp32s3", "esp32c3"))
    assert f"CONFIG_ESPTOOLPY_FLASHMODE_{board.flash_mode.upper()}=y" in sdk
    assert [line for line in sdk if line.startswith("CONFIG_ESPTOOLPY_FLASHMODE_")] == \
        [f"CONFIG_ESPTOOLPY_FLASHMODE_{board.flash_mode.upper()}=y"]
    assert board.flash_mode == ("qio" if name in ("esp32s3", "esp32c3") else "dio")
    timeout_s = int(next(line for line in sdk if line.startswith("CONFIG_ESP_TASK_WDT_TIMEOUT_S=")).split("=")[1])
    esp = (tmp_path / "src/platform_esp.cc").read_text()
    interval_us = int(re.search(r"constexpr int64_t kYieldIntervalUs = (\d+);", esp).group(1))
    assert 0 < interval_us <= timeout_s * 1_000_000 / 10


def test_the_protocol_loop_blocks_a_tick_even_when_requests_never_stop(esp32_project):
    """Under continuous pipelined INFER the UART always has data: tf_serial_read must still
    block (vTaskDelay, not taskYIELD, which never lets the lower-priority idle task run)."""
    esp = (esp32_project.directory / "src/platform_esp.cc").read_text()
    body = esp.split('extern "C" int tf_serial_read(', 1)[1].split("\n}\n", 1)[0]
    first_branch = body.split("uart_get_buffered_data_len", 1)[0]
    assert "vTaskDelay(1);" in first_branch and "kYieldIntervalUs" in first_branch
    assert "taskYIELD()" not in body.replace("not taskYIELD()", "")


def test_info_reports_internal_sram_and_psram_apart(esp32_project):
    src = esp32_project.directory / "src"
    platform_h = (src / "platform.h").read_text()
    assert "uint32_t tf_free_heap_bytes(void);" in platform_h and "uint32_t tf_free_psram_bytes(void);" in platform_h
    esp = (src / "platform_esp.cc").read_text()
    assert "heap_caps_get_free_size(MALLOC_CAP_INTERNAL)" in esp and "heap_caps_get_free_size(MALLOC_CAP_SPIRAM)" in esp
    assert "esp_get_free_heap_size" not in esp.replace("// esp_get_free_heap_size()", "")
    app = (src / "tinyface_app.cc").read_text()
    assert "info.free_sram_bytes = g_free_sram_bytes;" in app and "info.free_psram_bytes = g_free_psram_bytes;" in app
    assert "tf_free_psram_bytes" in (esp32_project.directory / "native/platform_host.cc").read_text()
    assert [f.name for f in spec.INFO_REPLY.fields if "free" in f.name] == ["free_sram_bytes", "free_psram_bytes"]


def test_a_file_tinyface_did_not_generate_is_not_overwritten(tiny_bundle, tmp_path):
    from tinyface.errors import ProjectDirError

    mine = "[env:mine]\nplatform = espressif32\n"
    (tmp_path / "platformio.ini").write_text(mine)
    with pytest.raises(ProjectDirError) as info:
        generate_project(tiny_bundle, load_board("esp32"), tmp_path)
    assert "platformio.ini is not generated by tinyface" in info.value.one_line() and "--force" in info.value.one_line()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["platformio.ini"]  # nothing written
    assert (tmp_path / "platformio.ini").read_text() == mine
    forced = generate_project(tiny_bundle, load_board("esp32"), tmp_path, force=True)
    assert "platformio.ini" in forced.written and BANNER in (tmp_path / "platformio.ini").read_text()


def test_a_stale_file_is_removed_only_if_tinyface_generated_it(tiny_bundle, tmp_path):
    import json

    board = load_board("esp32")
    generate_project(tiny_bundle, board, tmp_path)
    manifest = json.loads((tmp_path / "tinyface-project.json").read_text())
    manifest["files"] += ["src/old_generated.h", "src/users_own.h"]
    (tmp_path / "tinyface-project.json").write_text(json.dumps(manifest))
    (tmp_path / "src/old_generated.h").write_text(f"// {BANNER} (template: firmware/src/old_generated.h.j2)\n")
    (tmp_path / "src/users_own.h").write_text("// mine now\n")
    project = generate_project(tiny_bundle, board, tmp_path)
    assert project.removed == ["src/old_generated.h"]
    assert (tmp_path / "src/users_own.h").read_text() == "// mine now\n"


@pytest.mark.parametrize("key, value, side", [("input_scale", 0.5, "input"), ("output_zero_point", 7, "output")])
def test_a_model_json_that_disagrees_with_its_tflite_quantization_is_refused(tiny_bundle, tmp_path, key, value,
                                                                             side):
    """The firmware quantizes with model.json's scale and zero point: a model.json beside
    another .tflite would make every embedding wrong on the board, so nothing is rendered."""
    import json

    from tinyface.errors import ModelError
    from tinyface.model.bundle import load_bundle

    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.model_path.parent, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta[key] = value
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=f"model.json says {side} scale"):
        generate_project(load_bundle(folder), load_board("esp32"), tmp_path / "project")
    assert not (tmp_path / "project").exists()


def test_a_regeneration_killed_before_the_cleanup_is_finished_by_the_next(tiny_bundle, tmp_path):
    """Whether sdkconfig.defaults or src/idf_component.yml changed is judged against the manifest
    of the last complete generation, not against what the call wrote: a run killed after writing
    them but before deleting the build tools' stale copies leaves files that the next run finds
    current, and the stale copies must still go."""
    import hashlib
    import json

    project_dir = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32"), project_dir)
    manifest, component = project_dir / "tinyface-project.json", project_dir / "src" / "idf_component.yml"
    # a complete generation by a tinyface that pinned esp-tflite-micro 1.3.7, and its first build
    component.write_text(component.read_text().replace('"==1.3.8"', '"==1.3.7"'))
    _as_generated(project_dir, "src/idf_component.yml")
    recorded = json.loads(manifest.read_text())
    recorded.setdefault("derived_from_sha256", {})["src/idf_component.yml"] = hashlib.sha256(
        component.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(recorded, indent=2) + "\n")
    old_manifest = manifest.read_bytes()
    stale, lock = project_dir / "sdkconfig.esp32", project_dir / "dependencies.lock"
    cmake = project_dir / "src" / "CMakeLists.txt"

    def first_build():
        stale.write_text("CONFIG_ESPTOOLPY_FLASHMODE_DIO=y\n")
        lock.write_text("dependencies: {}\n")
        os.utime(cmake, (1_000_000, 1_000_000))

    first_build()
    # this tinyface, with the board now in QIO, killed after writing the project's files: the new
    # sdkconfig.defaults and idf_component.yml are on disk, the cleanup and the manifest are not
    qio = _board_variant(tmp_path, "esp32", lambda t: t.replace('flash_mode = "dio"', 'flash_mode = "qio"'))
    killed = generate_project(tiny_bundle, qio, project_dir)
    assert {"sdkconfig.defaults", "src/idf_component.yml"} <= set(killed.written)
    # the manifest as the killed run left it: the last complete generation's, and what it was writing
    in_progress = json.loads(old_manifest) | {"pending_sha256": {
        rel: [hashlib.sha256((project_dir / rel).read_bytes()).hexdigest()] for rel in killed.written
        if rel != "tinyface-project.json"}}
    manifest.write_text(json.dumps(in_progress, indent=2) + "\n")
    first_build()
    again = generate_project(tiny_bundle, qio, project_dir)
    assert again.written == ["tinyface-project.json"]  # the project's own files were already current
    assert sorted(again.removed) == ["dependencies.lock", "sdkconfig.esp32"]
    assert not stale.exists() and not lock.exists() and cmake.stat().st_mtime > 1_000_000
    # and a complete generation is recorded: regenerating unchanged deletes and touches nothing
    first_build()
    unchanged = generate_project(tiny_bundle, qio, project_dir)
    assert unchanged.written == [] and unchanged.removed == []
    assert stale.is_file() and lock.is_file() and cmake.stat().st_mtime == 1_000_000


def test_a_manifest_without_the_recorded_hashes_drops_the_stale_build_files(tiny_bundle, tmp_path):
    """A project whose manifest does not say what sdkconfig.defaults and idf_component.yml its
    build tools last saw (an older tinyface's) is cleaned once: nothing says their copies are current."""
    import json

    project_dir = tmp_path / "project"
    generate_project(tiny_bundle, load_board("esp32"), project_dir)
    manifest = project_dir / "tinyface-project.json"
    recorded = json.loads(manifest.read_text())
    recorded.pop("derived_from_sha256", None)
    manifest.write_text(json.dumps(recorded, indent=2) + "\n")
    (project_dir / "sdkconfig.esp32").write_text("CONFIG_ESPTOOLPY_FLASHMODE_DIO=y\n")
    (project_dir / "dependencies.lock").write_text("dependencies: {}\n")
    again = generate_project(tiny_bundle, load_board("esp32"), project_dir)
    assert sorted(again.removed) == ["dependencies.lock", "sdkconfig.esp32"]
    assert again.written == ["tinyface-project.json"]  # now with the hashes


def test_model_data_does_not_compile_against_another_models_settings(esp32_project, tmp_path):
    """A project killed between writing model_data.cc and model_settings.h pairs one model's bytes
    with another's size, hash and arena: model_data.cc's static_assert stops that build."""
    if shutil.which("g++") is None:
        skip_or_fail("g++ not installed: model_data.cc was not compiled")
    src = tmp_path / "src"
    shutil.copytree(esp32_project.directory / "src", src)

    def compile_model_data():
        return subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", str(src / "model_data.cc"), "-I",
                               str(src), "-o", str(tmp_path / "model_data.o")], capture_output=True, text=True,
                              timeout=120)

    result = compile_model_data()
    assert result.returncode == 0, result.stderr
    settings = src / "model_settings.h"
    size = int(defines(settings.read_text())["TF_MODEL_BYTES"])
    settings.write_text(settings.read_text().replace(f"#define TF_MODEL_BYTES {size}\n",
                                                     f"#define TF_MODEL_BYTES {size + 16}\n"))
    result = compile_model_data()
    assert result.returncode != 0 and "for different models" in result.stderr
    # the same size, another model (a rebuild of the same preset): the hash tells them apart
    settings.write_text(settings.read_text().replace(f"#define TF_MODEL_BYTES {size + 16}\n",
                                                     f"#define TF_MODEL_BYTES {size}\n"))
    assert compile_model_data().returncode == 0
    prefix = defines(settings.read_text())["TF_MODEL_SHA256_PREFIX"]
    other = f"0x{int(prefix[2:-1], 16) ^ 1:08x}u"
    settings.write_text(settings.read_text().replace(f"#define TF_MODEL_SHA256_PREFIX {prefix}\n",
                                                     f"#define TF_MODEL_SHA256_PREFIX {other}\n"))
    result = compile_model_data()
    assert result.returncode != 0 and "for different models" in result.stderr


def test_op_resolver_and_kernels_do_not_compile_against_another_models_settings(tiny_bundle, tmp_path):
    """Killed between model_settings.h and op_resolver.h or tf_kernels.cc, a regeneration would pair
    the new model with the old one's ops and generated kernels, and still compile (they were written
    after model_settings.h, so model_data.cc's check passed): their own static_asserts stop that build."""
    from tests.codegen.test_kernels import FLAGS

    if shutil.which("g++") is None:
        skip_or_fail("g++ not installed: op_resolver.h was not compiled")
    src = generate_project(tiny_bundle, load_board("esp32"), tmp_path / "fw", kernels="generated").directory / "src"
    probe = tmp_path / "probe.cc"
    probe.write_text('#include "op_resolver.h"\n')

    def compile_both():
        # the firmware's flags, not the kernel tests' TFK_KERNELS_ONLY (no TFLM registrations)
        flags = [f for f in FLAGS if f != "-DTFK_KERNELS_ONLY"]
        return [subprocess.run(["g++", *flags, "-fsyntax-only", f"-I{src}", str(path)], capture_output=True,
                               text=True, timeout=300) for path in (probe, src / "tf_kernels.cc")]

    # (that both compile as generated, the native firmware's build shows; the messages below name the asserts)
    settings = src / "model_settings.h"
    prefix = defines(settings.read_text())["TF_MODEL_SHA256_PREFIX"]
    other = f"0x{int(prefix[2:-1], 16) ^ 1:08x}u"
    settings.write_text(settings.read_text().replace(f"#define TF_MODEL_SHA256_PREFIX {prefix}\n",
                                                     f"#define TF_MODEL_SHA256_PREFIX {other}\n"))
    for result, name in zip(compile_both(), ("op_resolver.h", "tf_kernels.cc"), strict=True):
        assert result.returncode != 0 and f"{name} and model_settings.h are for different models" in result.stderr


def test_a_generation_cut_short_before_its_manifest_is_still_a_project(tmp_path):
    from tinyface.codegen.project import BANNER, check_project_dir, project_paths

    first = project_paths()[0]
    (tmp_path / first).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / first).write_text(f"# {BANNER}\n")
    check_project_dir(tmp_path)  # no manifest, but a file tinyface generated: regenerated as before
    (tmp_path / first).unlink()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(errors.ProjectDirError):
        check_project_dir(tmp_path)
    check_project_dir(tmp_path, force=True)


def test_template_environment_is_public_strict_and_documented():
    """A name the benchmarks use (no benchmark uses a private name of tinyface:
    tests/benchmarks/test_every_script.py): a template's unknown name is an error, nothing escaped."""
    import jinja2

    from tinyface.codegen.project import template_environment

    env = template_environment(REPO / "firmware")
    assert env.undefined is jinja2.StrictUndefined and env.autoescape is False
    assert template_environment.__doc__


def _make_words(makefile: str, name: str) -> list[str]:
    """The words of the make variable ``name``'s first assignment (``:=``) in ``makefile``'s text."""
    value = re.search(rf"^{name} := (.*?)(?<!\\)$", makefile, re.M | re.S)[1]
    return value.replace("\\\n", " ").split()


def test_the_makefiles_share_one_definition_of_the_tflm_sources(esp32_project, tmp_path):
    """The kernel lookup, TFLM's core sources, ESP-NN's sources and the precompiled schema were
    written out in each of native/Makefile.j2, rv32/Makefile.j2 and benchmarks/lx106/Makefile.j2;
    they are firmware/make/tflm.mk.j2's now, and each rendered Makefile holds them in full (no
    make include): native's core with TFLM's micro_time.cc, rv32's and lx106's without it
    (platform_rv32.cc's clock counts instructions)."""
    from types import SimpleNamespace

    from tests.conftest import load_benchmark

    shared = ("kernel_source =", "TFLM_KERNEL_SRCS :=", "TFLM_CORE_SRCS :=", "ESP_NN_SRCS :=",
              "TFLM_NO_SCHEMA_SRCS :=", "$(TFLM_PCH).gch:")
    fragment = (REPO / "firmware" / "make" / "tflm.mk.j2").read_text(encoding="utf-8")
    templates = [REPO / "firmware" / "native" / "Makefile.j2", REPO / "firmware" / "rv32" / "Makefile.j2",
                 REPO / "benchmarks" / "lx106" / "Makefile.j2"]
    for line in shared:
        assert f"\n{line}" in fragment, line
        assert not [p for p in templates if f"\n{line}" in p.read_text(encoding="utf-8")], line
    load_benchmark("xtensa_kernels").write_lx106(SimpleNamespace(directory=tmp_path, ops=esp32_project.ops))
    native, rv32, lx106 = (path.read_text(encoding="utf-8") for path in (
        esp32_project.directory / "native" / "Makefile", esp32_project.directory / "rv32" / "Makefile",
        tmp_path / "lx106" / "Makefile"))
    micro_time, core, native_core = ("tensorflow/lite/micro/micro_time.cc", _make_words(rv32, "TFLM_CORE_SRCS"),
                                     _make_words(native, "TFLM_CORE_SRCS"))
    assert micro_time in native_core and [src for src in native_core if src != micro_time] == core and len(core) > 30
    assert _make_words(lx106, "TFLM_CORE_SRCS") == core
    assert _make_words(lx106, "ESP_NN_SRCS") == _make_words(rv32, "ESP_NN_SRCS")
    for makefile in (native, rv32, lx106):
        assert _make_words(makefile, "TFLM_OPS") == [op for op, _ in esp32_project.ops]
        assert "{{" not in makefile and "{%" not in makefile and "{#" not in makefile
    assert "TFLM_NO_SCHEMA_SRCS :=" in native and "TFLM_NO_SCHEMA_SRCS :=" in rv32  # lx106 has no precompiled schema


@pytest.mark.parametrize("psram, words", [(4 << 20, "PSRAM (4 MB)"), (512 << 10, "PSRAM (512 KB)")])
def test_sdkconfig_names_the_psram_size_in_its_unit(tiny_bundle, tmp_path, psram, words):
    import dataclasses

    # under 1 MiB read "0 MB"; an arena that internal SRAM cannot take turns the PSRAM on
    board = dataclasses.replace(load_board("esp32cam"), psram_bytes=psram, sram_arena_bytes=4096)
    generate_project(tiny_bundle, board, tmp_path / "p")
    assert f"# {words}: this model's tensor arena is too large" in (tmp_path / "p" / "sdkconfig.defaults").read_text()
