"""Estimated on-device latency from MAC counts: cycles per MAC by op kind, plus a fixed
cost per op. Boards carry their own coefficients (boards/*.toml); DEFAULT is the classic
ESP32 with ESP-NN, calibrated on the one published figure below.

Calibration: esp-tflite-micro's person-detection MobileNet (about 7.2 M MACs, 96x96 gray
int8) runs in 380 ms on an ESP32 at 240 MHz with ESP-NN, i.e. 240e6 * 0.380 / 7.2e6 =
12.7 cycles per MAC averaged over its conv and depthwise layers (4084 ms, 136 cycles per
MAC, without ESP-NN). One average figure cannot separate op kinds, so every conv-like op
gets it; this is an estimate, labelled as such wherever it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CostModel:
    cpu_mhz: float
    cycles_per_mac: dict[str, float]  # op name (TFLite builtin, e.g. CONV_2D) or "default"
    overhead_us_per_op: float = 20.0
    source: str = ""
    per_op_overhead: dict[str, float] = field(default_factory=dict)

    def estimate_ms(self, op: str, macs: int, elements: int = 0) -> float:
        """Milliseconds for one op with ``macs`` multiply-accumulates (``elements`` output
        values for ops without MACs, costed at one MAC each)."""
        cpm = self.cycles_per_mac.get(op, self.cycles_per_mac.get("default", 0.0))
        work = macs if macs else elements
        return (work * cpm / (self.cpu_mhz * 1e3)) + self.per_op_overhead.get(op, self.overhead_us_per_op) / 1e3


DEFAULT = CostModel(
    cpu_mhz=240.0,
    cycles_per_mac={"default": 12.7},
    overhead_us_per_op=20.0,
    source="default: ESP32 + ESP-NN, person-detection MobileNet 7.2 M MACs in 380 ms (esp-tflite-micro README)",
)
