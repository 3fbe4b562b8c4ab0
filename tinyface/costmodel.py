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

    @classmethod
    def calibrated(cls, cpu_mhz: float, macs: int, ops: int, measured_ms: float,
                   overhead_us_per_op: float = 20.0, source: str = "") -> "CostModel":
        """The cost model that reproduces one published measurement: a model of ``macs``
        multiply-accumulates in ``ops`` ops that ran in ``measured_ms`` at ``cpu_mhz``.

        The fixed per-op overhead is taken off first, the rest is spread evenly over the
        MACs (one average figure cannot separate op kinds, so every op gets it).

        Raises:
            ValueError: non-positive inputs, or a measurement smaller than the overhead alone.
        """
        if cpu_mhz <= 0 or macs <= 0 or ops <= 0 or measured_ms <= 0:
            raise ValueError("cpu_mhz, macs, ops and measured_ms must be > 0")
        compute_ms = measured_ms - ops * overhead_us_per_op / 1e3
        if compute_ms <= 0:
            raise ValueError(f"{measured_ms} ms is less than the per-op overhead of {ops} ops")
        cycles_per_mac = compute_ms * cpu_mhz * 1e3 / macs
        return cls(cpu_mhz=float(cpu_mhz), cycles_per_mac={"default": cycles_per_mac},
                   overhead_us_per_op=overhead_us_per_op, source=source)


DEFAULT = CostModel(
    cpu_mhz=240.0,
    cycles_per_mac={"default": 12.7},
    overhead_us_per_op=20.0,
    source="default: ESP32 + ESP-NN, person-detection MobileNet 7.2 M MACs in 380 ms (esp-tflite-micro README)",
)
