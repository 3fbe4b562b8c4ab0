"""The tensor arena the firmware reserves: what TFLM itself records for the model, plus a
margin.

Why a margin: the recording comes from TFLM's reference kernels on the host (64-bit
pointers, so its bookkeeping is if anything larger than on the 32-bit ESP32), but ESP-NN's
optimized conv/depthwise kernels request scratch buffers the reference kernels do not.
``firmware.arena_margin`` (default 0.15 = 15%) covers them; the firmware reports what it
really allocated in INFO (``arena_used_bytes``), so the margin can be checked on a board.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyface.errors import ModelError

ALIGN_BYTES = 16
_PROBE_ARENAS = (512 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024)


@dataclass(frozen=True)
class ArenaPlan:
    used_bytes: int  # recorded by TFLM (RecordingMicroAllocator)
    margin: float  # fraction added on top
    bytes: int  # what the firmware allocates: used * (1 + margin), rounded up to 16
    in_psram: bool = False  # set by the budget check when only PSRAM can hold it

    @property
    def margin_percent(self) -> int:
        return round(self.margin * 100)


def measure_arena_bytes(model_bytes: bytes) -> int:
    """The arena TFLM allocates for ``model_bytes`` (tries larger probe arenas if needed).

    Raises:
        ModelError: TFLM cannot load the model even with a 16 MiB arena.
    """
    from tinyface.model.runtime import TflmRunner

    last: Exception | None = None
    for probe in _PROBE_ARENAS:
        try:
            return TflmRunner(model_bytes, arena_bytes=probe).arena_used_bytes()
        except ModelError as exc:
            last = exc
    raise ModelError(f"TFLM cannot allocate the model's tensors: {last}")


def plan_arena(model_bytes: bytes, margin: float, used_bytes: int | None = None) -> ArenaPlan:
    """The arena for ``model_bytes`` with ``margin`` (a fraction, e.g. 0.15) on top."""
    used = used_bytes if used_bytes is not None else measure_arena_bytes(model_bytes)
    total = int(used * (1.0 + margin) + 0.999999)
    total = (total + ALIGN_BYTES - 1) // ALIGN_BYTES * ALIGN_BYTES
    return ArenaPlan(used_bytes=used, margin=margin, bytes=total)
