"""Per-layer MACs, parameters and estimated latency of a model on a board.

The estimate is the board's cost model (boards/*.toml, calibrated on a published TFLM
timing) applied op by op to the MAC counts from :mod:`tinyface.graph`; it is an estimate and
is labelled as one wherever it is shown. The emulated board reports the same total.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tinyface.costmodel import CostModel, cost_key
from tinyface.errors import ModelError
from tinyface.graph import analyze
from tinyface.bundle import DEFAULT_PRESET



@dataclass(frozen=True)
class LayerEstimate:
    index: int
    op: str
    output_shape: tuple[int, ...]
    macs: int
    params: int
    est_ms: float


@dataclass(frozen=True)
class ModelProfile:
    model: str
    board: str
    layers: list[LayerEstimate]
    total_macs: int
    total_params: int
    total_param_bytes: int
    total_est_ms: float
    cpu_mhz: float
    cost_source: str

    @property
    def total_est_cycles(self) -> int:
        return int(round(self.total_est_ms * self.cpu_mhz * 1e3))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_est_cycles"] = self.total_est_cycles
        d["estimated"] = True
        return d


def profile_model(model_bytes: bytes, cost_model: CostModel, board: str = "", model: str = "") -> ModelProfile:
    """Estimate every layer of ``model_bytes`` with ``cost_model``.

    Raises:
        ModelError: the model cannot be parsed.
    """
    graph = analyze(model_bytes)
    if graph.input_type != "INT8":
        raise ModelError(f"this model takes {graph.input_type} input: the cost model prices int8 kernels, and a "
                         f"{graph.input_type.lower()} model would run different (slower) ones on the board",
                         hint="profile the int8 model.tflite from `tinyface build`")
    layers = [LayerEstimate(layer.index, layer.op, layer.output_shape, layer.macs, layer.params,
                            cost_model.estimate_ms(cost_key(layer.op, layer.input_shapes), layer.macs,
                                                   layer.elements, _count(layer.output_shape)))
              for layer in graph.layers]
    return ModelProfile(model=model, board=board, layers=layers, total_macs=graph.total_macs,
                        total_params=graph.total_params, total_param_bytes=graph.total_param_bytes,
                        total_est_ms=sum(layer.est_ms for layer in layers), cpu_mhz=cost_model.cpu_mhz,
                        cost_source=cost_model.source)


def _count(shape) -> int:
    n = 1
    for v in shape:
        n *= int(v)
    return n


def default_model_dir(board: str = DEFAULT_PRESET) -> Path:
    """The model for ``board`` when none is named: :func:`tinyface.bundle.resolve_model`.

    Raises:
        ModelError: none found (the user must pass --model).
    """
    from tinyface.bundle import resolve_model

    return resolve_model(None, board)


@dataclass(frozen=True)
class MeasuredLayer:
    index: int
    op: str
    output_shape: tuple[int, ...]
    macs: int
    instructions: int  # MEASURED on the instruction-set emulator: a lower bound on cycles
    est_ms: float  # ESTIMATED by the board's cost model


@dataclass(frozen=True)
class MeasuredProfile:
    """`tinyface profile --measured`: instructions per op counted on the ESP32-C3 instruction-set
    emulator beside the cost model's estimate."""

    model: str
    board: str
    layers: list[MeasuredLayer]
    total_instructions: int  # all of Invoke()
    total_est_ms: float
    cpu_mhz: float
    stall_factor: float  # the board's documented cycles per instruction (1.0 if it has none)
    cost_source: str

    @property
    def lower_bound_ms(self) -> float:
        """Instructions at one cycle each: the chip cannot be faster."""
        return self.total_instructions / (self.cpu_mhz * 1e3)

    @property
    def measured_ms(self) -> float:
        """Instructions x the stall factor: the figure the estimate is checked against."""
        return self.lower_bound_ms * self.stall_factor

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(lower_bound_ms=self.lower_bound_ms, measured_ms=self.measured_ms,
                 instructions_are="instructions (a lower bound on cycles), MEASURED on the instruction-set emulator",
                 est_ms_is="ESTIMATED by the board's cost model",
                 est_vs_measured=self.total_est_ms / self.measured_ms - 1 if self.measured_ms else None)
        return d


def profile_measured(bundle, board, seed: int = 0, log=None) -> MeasuredProfile:
    """Build the firmware for the ESP32-C3's instruction set, run one inference of a seeded
    random int8 input under QEMU with TFLM's profiler counting instructions, and set each
    op's count beside the board's estimate.

    Raises:
        ToolchainError: the rv32 toolchain or trees are missing (tinyface.device.isa).
        DeviceError: ``board`` is not the ESP32-C3, or the emulated run failed.
        ModelError: not an int8 model.
    """
    import numpy as np

    from tinyface.device.isa import check_board, measure_profile, prepare_isa

    check_board(board.name)
    estimate = profile_model(bundle.model_bytes, board.cost_model, board=board.name, model=str(bundle.model_path))
    prog = prepare_isa(bundle, board, log=log)
    size = _count(bundle.meta.input_shape)
    x = np.random.default_rng(seed).integers(-128, 128, size, dtype=np.int8).tobytes()
    measured = measure_profile(prog, x)
    if len(measured.ops) != len(estimate.layers):
        raise ModelError(f"the emulated chip ran {len(measured.ops)} ops, the model has {len(estimate.layers)}")
    layers = [MeasuredLayer(e.index, e.op, e.output_shape, e.macs, m.instructions, e.est_ms)
              for e, m in zip(estimate.layers, measured.ops)]
    stall = board.cost_model.stall_factor or 1.0
    return MeasuredProfile(model=str(bundle.model_path), board=board.name, layers=layers,
                           total_instructions=measured.total_instructions, total_est_ms=estimate.total_est_ms,
                           cpu_mhz=board.cpu_mhz, stall_factor=stall, cost_source=board.cost_model.source)
