"""Per-layer MACs, parameters and estimated latency of a model on a board.

The estimate is the board's cost model (boards/*.toml, calibrated on a published TFLM
timing) applied op by op to the MAC counts from :mod:`tinyface.model.graph`; it is an estimate and
is labelled as one wherever it is shown. The emulated board reports the same total.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tinyface.boards.costmodel import CostModel, cost_key
from tinyface.errors import ModelError
from tinyface.model.bundle import DEFAULT_PRESET
from tinyface.model.graph import analyze


def cycles_at(ms: float, cpu_mhz: float) -> int:
    """``ms`` milliseconds in cycles at ``cpu_mhz`` (a profile's ``total_est_cycles``)."""
    return int(round(ms * cpu_mhz * 1e3))


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
    kernels: str = "esp-nn"  # firmware.kernels: the kernel set the cost model prices

    @property
    def total_est_cycles(self) -> int:
        return cycles_at(self.total_est_ms, self.cpu_mhz)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_est_cycles"] = self.total_est_cycles
        d["estimated"] = True
        return d


def profile_model(model_bytes: bytes, cost_model: CostModel, board: str = "", model: str = "",
                  kernels: str = "esp-nn") -> ModelProfile:
    """Estimate every layer of ``model_bytes`` with ``cost_model`` (the board's for ``kernels``,
    ``Board.cost_model_for``; ``kernels`` only labels the result).

    Raises:
        ModelError: the model cannot be parsed.
    """
    graph = analyze(model_bytes, source=model)
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
                        cost_source=cost_model.source, kernels=kernels)


def _count(shape) -> int:
    n = 1
    for v in shape:
        n *= int(v)
    return n


def default_model_dir(board: str = DEFAULT_PRESET) -> Path:
    """The model for ``board`` when none is named: :func:`tinyface.model.bundle.resolve_model`.

    Raises:
        ModelError: none found (the user must pass --model).
    """
    from tinyface.model.bundle import resolve_model

    return resolve_model(None, board)
