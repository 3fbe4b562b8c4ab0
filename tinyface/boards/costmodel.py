"""Estimated on-device latency from MAC counts: cycles per MAC by op kind, plus a fixed
cost per op. Boards carry their own coefficients (boards/*.toml, ``[cost_model]``), each
calibrated on a published figure; the classic ESP32's with ESP-NN, for example:

Calibration: esp-tflite-micro's person-detection MobileNet (about 7.2 M MACs, 96x96 gray
int8) runs in 380 ms on an ESP32 at 240 MHz with ESP-NN, i.e. 240e6 * 0.380 / 7.2e6 =
12.7 cycles per MAC averaged over its conv and depthwise layers (4084 ms, 136 cycles per
MAC, without ESP-NN). One average figure cannot separate op kinds, so every conv-like op
gets it; this is an estimate, labelled as such wherever it is shown.

A board can instead carry a model measured on its instruction set (boards/esp32c3.toml
[measured]: instructions per MAC and per output value by op kind, counted on the
ESP32-C3 instruction-set emulator, times a documented stall factor): see
CostModel.from_instructions and docs/boards.md.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


def cost_key(op: str, input_shapes: tuple = ()) -> str:
    """The cost model's name for an op: its TFLite builtin name, except a convolution with a
    1x1 kernel, ``CONV_2D_1x1`` (ESP-NN runs it through a different, cheaper loop)."""
    weights = input_shapes[1] if len(input_shapes) > 1 else ()
    if op == "CONV_2D" and len(weights) == 4 and tuple(weights[1:3]) == (1, 1):
        return "CONV_2D_1x1"
    return op


def _lookup(table: dict[str, float], key: str) -> float:
    for candidate in (key, key.removesuffix("_1x1"), "default"):
        if candidate in table:
            return table[candidate]
    return 0.0


@dataclass(frozen=True)
class CostModel:
    cpu_mhz: float
    cycles_per_mac: dict[str, float]  # cost key (cost_key(): CONV_2D, CONV_2D_1x1, ...) or "default"
    overhead_us_per_op: float = 20.0
    source: str = ""
    per_op_overhead: dict[str, float] = field(default_factory=dict)
    # Measured models (boards/*.toml [measured]): cycles per output value on top of the
    # cycles per MAC, for every op. Empty: the published-figure model (ops without MACs are
    # costed at one MAC per element).
    cycles_per_output: dict[str, float] = field(default_factory=dict)
    stall_factor: float = 0.0  # measured models: the cycles per instruction assumed (>= 1)

    @property
    def measured(self) -> bool:
        return bool(self.cycles_per_output)

    def estimate_ms(self, op: str, macs: int, elements: int = 0, outputs: int = 0) -> float:
        """Milliseconds for one op (a cost key, see cost_key) with ``macs`` multiply-accumulates,
        ``elements`` values touched and ``outputs`` output values."""
        cpm = _lookup(self.cycles_per_mac, op)
        if self.measured:
            cycles = macs * cpm + (outputs or elements) * _lookup(self.cycles_per_output, op)
        else:
            cycles = (macs if macs else elements) * cpm
        return cycles / (self.cpu_mhz * 1e3) + self.per_op_overhead.get(op, self.overhead_us_per_op) / 1e3

    @classmethod
    def from_instructions(cls, cpu_mhz: float, instructions_per_mac: dict[str, float],
                          instructions_per_output: dict[str, float], stall_factor: float,
                          source: str = "") -> "CostModel":
        """A cost model from instruction counts measured on the instruction-set emulator:
        cycles = instructions x ``stall_factor`` (the cycles per instruction assumed, >= 1).

        Raises:
            ValueError: a stall factor below 1 or a negative coefficient.
        """
        if stall_factor < 1:
            raise ValueError(f"stall_factor {stall_factor} < 1: an instruction takes at least one cycle")
        if any(v < 0 for v in [*instructions_per_mac.values(), *instructions_per_output.values()]):
            raise ValueError("instruction coefficients must be >= 0")
        return cls(cpu_mhz=float(cpu_mhz),
                   cycles_per_mac={k: v * stall_factor for k, v in instructions_per_mac.items()},
                   overhead_us_per_op=0.0, source=source,
                   cycles_per_output={k: v * stall_factor for k, v in instructions_per_output.items()},
                   stall_factor=float(stall_factor))

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


def fit_instructions(layers) -> tuple[dict[str, float], dict[str, float]]:
    """Instructions per MAC and per output value, by cost key, fitted to measured layers.

    For each cost key, ``instructions = per_mac x MACs + per_output x output values`` is
    fitted by least squares with both coefficients >= 0, each layer weighted by
    1/sqrt(its instructions) (a middle way: plain least squares ignores small layers, relative
    errors ignore the large ones that make up the total). Keys whose layers have no MACs get
    per_output only.

    Args:
        layers: (cost key, MACs, output values, instructions measured) for every layer.

    Returns:
        (instructions_per_mac, instructions_per_output), the tables of a board file's
        ``[measured]`` section (without ``default``).
    """
    import numpy as np

    groups: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for key, macs, outputs, instructions in layers:
        groups[key].append((float(macs), float(outputs), float(instructions)))
    per_mac: dict[str, float] = {}
    per_output: dict[str, float] = {}
    for key, rows in sorted(groups.items()):
        a = np.array([r[:2] for r in rows])
        y = np.array([r[2] for r in rows])
        w = 1.0 / np.sqrt(np.maximum(y, 1.0))
        has_macs = bool(a[:, 0].any())
        columns = a if has_macs else a[:, 1:]
        coef = _nnls(columns * w[:, None], y * w)
        if has_macs:
            per_mac[key] = float(coef[0])
        per_output[key] = float(coef[-1])
    return per_mac, per_output


def _nnls(a, y):
    """Least squares with non-negative coefficients, for one or two columns: the unconstrained
    solution if it is non-negative, else the best solution with one coefficient at zero."""
    import numpy as np

    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    if (coef >= 0).all():
        return coef
    best, best_err = np.zeros(a.shape[1]), float(np.sum(y ** 2))
    for j in range(a.shape[1]):
        col = a[:, j]
        c = max(float(col @ y) / float(col @ col), 0.0) if col.any() else 0.0
        err = float(np.sum((y - c * col) ** 2))
        if err < best_err:
            best, best_err = np.eye(a.shape[1])[j] * c, err
    return best
