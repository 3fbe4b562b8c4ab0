"""Run an int8 model on the host: in the TFLite interpreter, or in the real TensorFlow Lite
Micro kernels (PyPI ``tflite-micro``), which is what the firmware runs.

Only TfliteRunner imports TensorFlow; TflmRunner does not, so the emulator starts fast.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
import threading

import numpy as np

from tinyface.errors import ModelError

DEFAULT_ARENA_BYTES = 512 * 1024
# The smallest arena TflmRunner hands to TFLM: below about 480 bytes its allocator cannot hold its own
# bookkeeping and the process dies (a segmentation fault, measured with tflite-micro's wheel on
# models/esp32), where a larger one too small for the model fails cleanly. Every model needs more.
MIN_ARENA_BYTES = 1024
TFLITE_KERNELS = ("reference", "optimized")  # TfliteRunner's kernel sets
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_fd_lock = threading.Lock()


class TflmRunner:
    """The TFLM interpreter over one model; ``run`` takes and returns int8 batches.

    Raises:
        ModelError: ``arena_bytes`` is not an integer of at least MIN_ARENA_BYTES, or TFLM cannot
            load the model (not a model, an op it lacks, an arena too small for it).
    """

    def __init__(self, model_bytes: bytes, arena_bytes: int = DEFAULT_ARENA_BYTES, source: str = ""):
        from tflite_micro.python.tflite_micro import runtime

        if isinstance(arena_bytes, bool) or not isinstance(arena_bytes, (int, np.integer)) \
                or arena_bytes < MIN_ARENA_BYTES:
            raise ModelError(f"a TFLM arena of {arena_bytes!r} bytes: it must be an integer of at least "
                             f"{MIN_ARENA_BYTES:,}", hint=f"the default is {DEFAULT_ARENA_BYTES:,}")
        arena_bytes = int(arena_bytes)
        loaded = []
        # TFLM reports why it fails in C (MicroPrintf on fd 2: "Failed to resize buffer. Requested:
        # ..."), apart from the exception: caught here, so that the reason is in the one error line
        # and a probe of a larger arena (tinyface.codegen.arena) prints nothing of its own
        try:
            _capture_fd(2, lambda: loaded.append(
                runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_bytes)))
        except (RuntimeError, ValueError, struct.error) as exc:  # struct.error: not a flatbuffer at all
            reason = _first_line(getattr(exc, "tinyface_said", ""))
            raise ModelError(f"TFLM cannot load {source or 'the model'}: {exc}"
                             f"{f' ({reason})' if reason else ''}") from None
        self._interp = loaded[0]
        self.input_details = self._interp.get_input_details(0)
        self.output_details = self._interp.get_output_details(0)
        self.input_shape = tuple(int(v) for v in self.input_details["shape"])

    def run_one(self, x_int8: np.ndarray) -> np.ndarray:
        """One int8 input (H, W, C) or (1, H, W, C) -> int8 output (D,)."""
        x = np.asarray(x_int8, dtype=np.int8).reshape(self.input_shape)
        self._interp.set_input(x, 0)
        self._interp.invoke()
        return np.array(self._interp.get_output(0)).reshape(-1)

    def run(self, x_int8: np.ndarray) -> np.ndarray:
        return np.stack([self.run_one(x) for x in x_int8]) if len(x_int8) else np.zeros((0,), np.int8)

    def arena_used_bytes(self) -> int:
        """The arena TFLM actually allocated, as recorded by its RecordingMicroAllocator."""
        text = _capture_fd(2, self._interp.print_allocations)
        match = _ARENA_TOTAL.search(text)
        if not match:
            raise ModelError("TFLM did not report its arena use")
        return int(match.group(1))


class TfliteRunner:
    """The TFLite interpreter (float or int8 model); ``run`` maps a batch to outputs.

    ``kernels="reference"`` (the default) uses TFLite's builtin reference kernels, the ones
    TFLM's kernels are ported from: the host int8 model every parity check compares
    against. ``kernels="optimized"`` uses the default resolver with the XNNPACK delegate,
    which is faster but requantizes with different rounding (measured: up to 3 LSB from
    TFLM on a dsnet student, against 1 LSB for the reference kernels); use it for timing.
    """

    def __init__(self, model_bytes: bytes, kernels: str = "reference", source: str = ""):
        if kernels not in TFLITE_KERNELS:
            raise ModelError(f"unknown TFLite kernels {kernels!r}", hint=f"one of {', '.join(TFLITE_KERNELS)}")
        from tinyface.console import quiet_tensorflow

        quiet_tensorflow(import_now=True)  # no C++ start-up lines, no interpreter deprecation notice
        import tensorflow as tf

        resolver = {"reference": tf.lite.experimental.OpResolverType.BUILTIN_REF,
                    "optimized": tf.lite.experimental.OpResolverType.AUTO}[kernels]
        from tinyface.console import muted_stderr

        try:
            # its wrapper library's start-up lines, and XNNPACK's "Created TensorFlow Lite XNNPACK
            # delegate for CPU.", written when the tensors are allocated
            with muted_stderr():
                self._interp = tf.lite.Interpreter(model_content=bytes(model_bytes), num_threads=1,
                                                   experimental_op_resolver_type=resolver)
                self.input_details = self._interp.get_input_details()[0]
                self.output_details = self._interp.get_output_details()[0]
                self._interp.resize_tensor_input(self.input_details["index"], [1, *self.input_details["shape"][1:]])
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # RuntimeError: a kernel's Prepare refused the model
            raise ModelError(f"TFLite cannot load {source or 'the model'}: {exc}") from None

    def run(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for item in x:
            self._interp.set_tensor(self.input_details["index"], item[None].astype(self.input_details["dtype"]))
            self._interp.invoke()
            outs.append(self._interp.get_tensor(self.output_details["index"])[0].copy())
        return np.stack(outs) if outs else np.zeros((0,))


def _libc_fflush() -> None:
    """Flush C stdio buffers: TFLM's printf output sits there until then."""
    import ctypes

    ctypes.CDLL(None).fflush(None)


def _capture_fd(fd: int, fn) -> str:
    """Run ``fn`` with the process's file descriptor ``fd`` redirected (TFLM prints from C++), and
    return what was written there. If ``fn`` raises, the exception goes on with that text as its
    ``tinyface_said`` attribute."""
    with _fd_lock:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(fd)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), fd)
            failure = None
            try:
                fn()
            except Exception as exc:
                failure = exc
            finally:
                _libc_fflush()
                os.dup2(saved, fd)
                os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
        if failure is not None:
            failure.tinyface_said = text
            raise failure
        return text


def _first_line(text: str) -> str:
    """The first non-blank line of ``text`` (a native library's message), stripped."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")
