"""The tensor arena the firmware reserves: what TFLM itself records for the model, plus a
margin, plus the largest scratch buffer ESP-NN's chip-specific kernels ask for.

The recording comes from TFLM's reference kernels on the host (64-bit pointers, so its
bookkeeping is if anything larger than on the 32-bit chips). ESP-NN's kernels ask TFLM's
arena for scratch buffers the reference kernels do not: its generic C convolutions (the
ESP32, the C3) for none, its ESP32-S3 and P4 ones for a lot, every chip's softmax for a little
(tinyface.codegen.esp_nn_scratch has their size functions). A scratch buffer lives only while
its op runs, so the firmware reserves the recording, plus ``firmware.arena_margin`` (default
0.15 = 15%) of it, plus the largest scratch one op asks for. That is an estimate, not a bound:
TFLM's greedy planner places buffers by size, and one more buffer can move others, so a
pathological model could need more. benchmarks/s3_arena.py measures the need on a 32-bit TFLM;
the firmware reports what it really allocated in INFO (``arena_used_bytes``), so it can be
checked on a board.
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
    bytes: int  # what the firmware allocates: used * (1 + margin) + esp_nn_scratch_bytes, rounded up to 16
    in_psram: bool = False  # set by the budget check when only PSRAM can hold it
    esp_nn_scratch_bytes: int = 0  # the largest scratch an op's ESP-NN kernel asks for on the board's chip

    @property
    def margin_percent(self) -> int:
        return round(self.margin * 100)

    def parts(self) -> str:
        """What the arena is made of, for messages: "TFLM 125,728 B + 15% margin + 104,000 B of
        ESP-NN scratch" (the scratch only where the chip's ESP-NN kernels ask for one)."""
        scratch = f" + {self.esp_nn_scratch_bytes:,} B of ESP-NN scratch" if self.esp_nn_scratch_bytes else ""
        return f"TFLM {self.used_bytes:,} B + {self.margin_percent}% margin{scratch}"


def measure_arena_bytes(model_bytes: bytes, source: str = "") -> int:
    """The arena TFLM allocates for ``model_bytes`` (tries larger probe arenas if needed);
    ``source``: where the model was read, named in the error.

    Raises:
        ModelError: TFLM cannot load the model even with a 16 MiB arena.
    """
    from tinyface.model.runtime import TflmRunner

    last: Exception | None = None
    for probe in _PROBE_ARENAS:
        try:
            return TflmRunner(model_bytes, arena_bytes=probe, source=source).arena_used_bytes()
        except ModelError as exc:
            last = exc
    raise ModelError(f"TFLM cannot allocate the model's tensors: {last}")  # which names ``source``


def plan_arena(model_bytes: bytes, margin: float, used_bytes: int | None = None,
               esp_nn_scratch_bytes: int = 0, source: str = "") -> ArenaPlan:
    """The arena for ``model_bytes`` with ``margin`` (a fraction, e.g. 0.15) on top, and room for
    the largest ESP-NN scratch buffer (tinyface.codegen.esp_nn_scratch.largest_scratch_bytes);
    ``source``: where the model was read (named in an error)."""
    used = used_bytes if used_bytes is not None else measure_arena_bytes(model_bytes, source)
    total = int(used * (1.0 + margin) + 0.999999) + esp_nn_scratch_bytes
    total = (total + ALIGN_BYTES - 1) // ALIGN_BYTES * ALIGN_BYTES
    return ArenaPlan(used_bytes=used, margin=margin, bytes=total, esp_nn_scratch_bytes=esp_nn_scratch_bytes)
