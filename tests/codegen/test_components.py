"""The pinned firmware components: one table (tinyface/codegen/components.py) that the generated
idf_component.yml, the vendored snapshot in ../shared/vendor and docs/firmware.md all agree with."""

from pathlib import Path

import pytest
import semantic_version  # what the ESP-IDF component manager parses version ranges with
import yaml

from tinyface.boards import load_board
from tinyface.codegen import generate_project
from tinyface.codegen.components import COMPONENTS, ESP_NN, IDF_VERSION_RANGE, TFLM, fetch_script

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO.parent / "shared" / "vendor"


def test_the_pins_are_the_vendored_versions():
    assert (TFLM.name, TFLM.version, TFLM.ref) == ("espressif/esp-tflite-micro", "1.3.8", "v1.3.8")
    assert (ESP_NN.name, ESP_NN.version) == ("espressif/esp-nn", "1.2.3")
    assert [c.requirement for c in COMPONENTS] == ["==1.3.8", "==1.2.3"]


def test_idf_range_is_where_requires_driver_is_valid(esp32_project):
    spec = semantic_version.SimpleSpec(IDF_VERSION_RANGE)
    assert spec.match(semantic_version.Version("5.3.1"))  # espressif32@6.9.0's framework
    # ESP-IDF 6.0 moved uart.h and usb_serial_jtag.h out of `driver`, which src/CMakeLists.txt requires
    assert not spec.match(semantic_version.Version("6.0.0"))
    cmake = (esp32_project.directory / "src/CMakeLists.txt").read_text(encoding="utf-8")
    assert "REQUIRES driver " in cmake
    source = (esp32_project.directory / "src/platform_esp.cc").read_text(encoding="utf-8")
    assert '#include "driver/uart.h"' in source and '#include "driver/usb_serial_jtag.h"' in source


@pytest.mark.parametrize("name", ["esp32", "esp32s3", "esp32c3", "esp32cam"])
def test_idf_component_yml_pins_exact_versions(name, tiny_bundle, tmp_path):
    board = load_board(name)
    generate_project(tiny_bundle, board, tmp_path)
    manifest = yaml.safe_load((tmp_path / "src/idf_component.yml").read_text(encoding="utf-8"))
    # esp-nn on every board: esp-tflite-micro links ESP-NN's kernels on every chip and asks for esp-nn itself
    expected = {"idf": IDF_VERSION_RANGE} | {"espressif/esp-tflite-micro": "==1.3.8", "espressif/esp-nn": "==1.2.3"}
    assert manifest["dependencies"] == expected
    for requirement in manifest["dependencies"].values():
        assert "^" not in requirement and "~" not in requirement


@pytest.mark.skipif(not VENDOR.is_dir(), reason="../shared/vendor (the vendored snapshot CI builds against) is absent")
def test_the_vendored_snapshot_is_the_pinned_one():
    for component in COMPONENTS:
        manifest = yaml.safe_load((VENDOR / component.folder / "idf_component.yml").read_text(encoding="utf-8"))
        assert str(manifest["version"]) == component.version, component.folder
    source = (VENDOR / "SOURCE.md").read_text(encoding="utf-8")
    for component in COMPONENTS:
        row = next(line for line in source.splitlines() if line.startswith(f"| `{component.folder}/`"))
        assert f"{component.name}` {component.version}" in row and f"| {component.commit} |" in row


def test_docs_give_the_fetch_commands_of_the_table():
    text = (REPO / "docs" / "firmware.md").read_text(encoding="utf-8")
    assert fetch_script() in text, "docs/firmware.md: paste tinyface.codegen.components.fetch_script()"
    for component in COMPONENTS:
        assert f"`{component.name}` {component.version}" in text
    assert f"`{IDF_VERSION_RANGE}`" in text
