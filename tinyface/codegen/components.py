"""The firmware's third-party components, pinned once: what the generated
``src/idf_component.yml`` asks the ESP-IDF component manager for, what the native and rv32
builds compile from ``../shared/vendor`` (CI) or a user's clone, and what docs/firmware.md
tells users to fetch. Change a version here and everything else follows (tests check the
docs and the vendored snapshot against this table).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    """One pinned ESP-IDF component.

    Attributes:
        name: its name in Espressif's component registry (``espressif/esp-nn``).
        version: the exact version the firmware is built and tested with.
        repository: the upstream git repository.
        ref: the git tag or branch the version was released from.
        commit: the upstream commit of that version (as recorded in ../shared/vendor/SOURCE.md).
        folder: the folder a checkout goes in (``TFLM_DIR`` points at the TFLM one).
    """

    name: str
    version: str
    repository: str
    ref: str
    commit: str
    folder: str

    @property
    def requirement(self) -> str:
        """The component-manager requirement: this exact version, nothing newer."""
        return f"=={self.version}"

    def fetch_commands(self, dest: str = "vendor") -> list[str]:
        """Shell commands that put this exact source into ``dest/<folder>`` (the clone, then the
        recorded commit: the same bytes as the registry's version and ../shared/vendor)."""
        path = f"{dest}/{self.folder}"
        return [
            f"git clone --branch {self.ref} {self.repository} {path}",
            f"git -C {path} checkout --detach {self.commit}",
        ]


TFLM = Component(
    name="espressif/esp-tflite-micro", version="1.3.8",
    repository="https://github.com/espressif/esp-tflite-micro.git", ref="v1.3.8", commit="d6465fd",
    folder="esp-tflite-micro",
)
ESP_NN = Component(
    name="espressif/esp-nn", version="1.2.3",
    repository="https://github.com/espressif/esp-nn.git", ref="master", commit="d45b843",
    folder="esp-nn",
)
# Every board's project pins both: esp-tflite-micro compiles its ESP-NN kernels (kernels/esp_nn,
# -DESP_NN) on every chip and asks for espressif/esp-nn itself (>=1.1.1), so an unpinned esp-nn
# would be the registry's newest, whose kernels and scratch sizes were never checked here.
COMPONENTS = (TFLM, ESP_NN)

# The ESP-IDF versions the generated project is valid for. The lower bound is what the
# sources were reviewed against (ESP-IDF 5.3.1, the framework of espressif32@6.9.0). The
# upper bound: src/CMakeLists.txt says `REQUIRES driver` for uart.h and usb_serial_jtag.h;
# ESP-IDF 6.0 moved the UART and USB-Serial/JTAG drivers out of `driver` (into
# esp_driver_uart / esp_driver_usb_serial_jtag), and nothing here was checked against 6.0.
IDF_VERSION_RANGE = ">=5.3,<6.0"


def fetch_script(dest: str = "vendor") -> str:
    """The commands that fetch every pinned component into ``dest`` (docs/firmware.md shows them)."""
    return "\n".join(line for c in COMPONENTS for line in c.fetch_commands(dest))
