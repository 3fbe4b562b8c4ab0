"""`tinyface profile --measured`: each op's instructions counted on the ESP32-C3
instruction-set emulator (tinyface.device.isa) beside the board's cost-model estimate
(tinyface.boards.profile). It lives with the devices so that the estimate, which a build uses, never
imports the emulator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyface.boards.profile import _count, cycles_at, profile_model
from tinyface.config import DEFAULT_ARENA_MARGIN
from tinyface.device.isa import check_board, measure_profile, prepare_isa
from tinyface.errors import ModelError


@dataclass(frozen=True)
class MeasuredLayer:
    index: int
    op: str
    output_shape: tuple[int, ...]
    macs: int
    instructions: int  # MEASURED on the instruction-set emulator: a lower bound on cycles
    est_ms: float  # ESTIMATED by the board's cost model
    params: int = 0  # as the estimate's layer (`profile --json` without --measured)


@dataclass(frozen=True)
class MeasuredModelProfile:
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
    kernels: str = "esp-nn"  # firmware.kernels: the kernel set counted and estimated
    # the estimate's totals, so that --json with --measured holds every key it has without
    total_macs: int = 0
    total_params: int = 0
    total_param_bytes: int = 0

    @property
    def total_est_cycles(self) -> int:
        """The estimate in cycles at the board's clock (as ModelProfile's)."""
        return cycles_at(self.total_est_ms, self.cpu_mhz)

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
        d.update(total_est_cycles=self.total_est_cycles, lower_bound_ms=self.lower_bound_ms,
                 measured_ms=self.measured_ms,
                 instructions_are="instructions (a lower bound on cycles), MEASURED on the instruction-set emulator",
                 est_ms_is="ESTIMATED by the board's cost model",
                 est_vs_measured=self.total_est_ms / self.measured_ms - 1 if self.measured_ms else None)
        return d


def profile_measured(bundle, board, seed: int = 0, log=None, kernels: str = "esp-nn",
                     arena_margin: float = DEFAULT_ARENA_MARGIN) -> MeasuredModelProfile:
    """Build the firmware for the ESP32-C3's instruction set, run one inference of a seeded
    random int8 input under QEMU with TFLM's profiler counting instructions, and set each
    op's count beside the board's estimate for the same kernel set.

    Args:
        kernels: firmware.kernels, "esp-nn" or "generated" (the kernels generated for the
            model run in place of TFLM's for the ops they cover; the estimate is then
            ``board.cost_model_for("generated")``).
        arena_margin: firmware.arena_margin, as `flash` and `emulate --isa` build the firmware.

    Raises:
        ToolchainError: the rv32 toolchain or trees are missing (tinyface.device.isa).
        DeviceError: ``board`` is not the ESP32-C3, or the emulated run failed.
        ModelError: not an int8 model.
    """
    import numpy as np

    check_board(board)
    cost = board.cost_model_for(kernels)
    estimate = profile_model(bundle.model_bytes, cost, board=board.name, model=str(bundle.model_path),
                             kernels=kernels)
    prog = prepare_isa(bundle, board, arena_margin=arena_margin, log=log, firmware_kernels=kernels)
    size = _count(bundle.meta.input_shape)
    x = np.random.default_rng(seed).integers(-128, 128, size, dtype=np.int8).tobytes()
    measured = measure_profile(prog, x)
    if len(measured.ops) != len(estimate.layers):
        raise ModelError(f"the emulated chip ran {len(measured.ops)} ops, the model has {len(estimate.layers)}")
    layers = [MeasuredLayer(e.index, e.op, e.output_shape, e.macs, m.instructions, e.est_ms, e.params)
              for e, m in zip(estimate.layers, measured.ops, strict=True)]
    stall = cost.stall_factor or 1.0
    return MeasuredModelProfile(model=str(bundle.model_path), board=board.name, layers=layers,
                                total_instructions=measured.total_instructions, total_est_ms=estimate.total_est_ms,
                                cpu_mhz=board.cpu_mhz, stall_factor=stall, cost_source=cost.source, kernels=kernels,
                                total_macs=estimate.total_macs, total_params=estimate.total_params,
                                total_param_bytes=estimate.total_param_bytes)
