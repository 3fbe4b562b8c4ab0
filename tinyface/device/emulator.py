"""The emulated board: the firmware's protocol behaviour on a pseudo-terminal, running the
int8 model in the real TFLM kernels (PyPI ``tflite-micro``).

:class:`EmulatedBoard` is the device logic (transport-free: frame in, reply frame out);
:func:`serve` runs it on a pty master with a UART model: a receive thread that delivers
bytes no faster than ``baud / spec.UART_BITS_PER_BYTE`` (10) per second (the hardware receives while the CPU
computes, as a real UART does) and paced transmission.

Latency in replies is *estimated* from the board's cost model (INFO sets
``Flag.EMULATED``); ``host_wall_us`` carries what the TFLM kernels really took on this host.

Fault injection (tests only): ``Faults.drop_replies`` / ``corrupt_replies`` name replies,
counted from 1 over the emulator's lifetime, that are not sent / sent with a flipped byte.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from tinyface import __version__
from tinyface.boards.costmodel import CostModel
from tinyface.model.bundle import Bundle
from tinyface.protocol import spec
from tinyface.protocol.codec import Fault, Frame, StreamDecoder, encode_frame
from tinyface.vectors import l2_normalize

FIRMWARE_VERSION = f"emu-{__version__}"
_HANGUP = object()


@dataclass
class Faults:
    """Test-only fault injection (replies counted from 1 over the emulator's lifetime)."""

    drop_replies: frozenset[int] = frozenset()
    corrupt_replies: frozenset[int] = frozenset()


class Gallery:
    """Enrolled people: per person the sum of its samples' L2-normalised embeddings."""

    def __init__(self, capacity: int, dim: int):
        self.capacity = capacity
        self.names: list[str | None] = [None] * capacity
        self.samples = np.zeros(capacity, np.int64)
        self.sums = np.zeros((capacity, dim), np.float32)

    @property
    def count(self) -> int:
        return sum(n is not None for n in self.names)

    def enroll(self, name: str, embedding: np.ndarray) -> int | None:
        """Add one sample; returns the slot, or None when a new name finds the gallery full."""
        if name in self.names:
            slot = self.names.index(name)
        else:
            free = [i for i, n in enumerate(self.names) if n is None]
            if not free:
                return None
            slot = free[0]
            self.names[slot] = name
            self.samples[slot] = 0
            self.sums[slot] = 0
        self.sums[slot] += l2_normalize(embedding)
        self.samples[slot] = min(self.samples[slot] + 1, 0xFFFF)  # a u16 on the wire: saturates, as the firmware's
        return slot

    def delete(self, name: str | None) -> int:
        slots = [i for i, n in enumerate(self.names) if n is not None and (name is None or n == name)]
        for i in slots:
            self.names[i] = None
            self.samples[i] = 0
            self.sums[i] = 0
        return len(slots)

    def identify(self, embedding: np.ndarray) -> tuple[int, float]:
        """(best slot, cosine similarity), or (-1, -1.0) when empty; lowest slot wins ties."""
        best, best_sim = -1, -1.0
        e = l2_normalize(embedding)
        for i, n in enumerate(self.names):
            if n is None:
                continue
            sim = float(np.dot(e, l2_normalize(self.sums[i])))
            if best < 0 or sim > best_sim:
                best, best_sim = i, sim
        return best, best_sim


@dataclass
class BoardStats:
    requests: int = 0
    replies: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    corrupted: int = 0
    retries_answered: int = 0
    invokes: int = 0
    host_wall_us_total: int = 0


class EmulatedBoard:
    """The device side of the protocol for one model (what the firmware must do)."""

    def __init__(self, bundle: Bundle, board_name: str, cost_model: CostModel, faults: Faults | None = None,
                 firmware_version: str = FIRMWARE_VERSION, arena_bytes: int = 0, flags: int = spec.Flag.EMULATED):
        from tinyface.boards.profile import profile_model
        from tinyface.model.embedder import Embedder
        from tinyface.model.runtime import DEFAULT_ARENA_BYTES

        self.bundle = bundle
        self.meta = bundle.meta
        model_bytes = bundle.model_bytes
        self.model_sha256 = bytes.fromhex(bundle.model_hash)
        # the firmware's kernels, and model.json's quantization as the firmware has it compiled in
        self.embedder = Embedder.for_bundle(bundle, "tflm",
                                            arena_bytes or max(DEFAULT_ARENA_BYTES, 2 * self.meta.arena_bytes))
        self.arena_used_bytes = self.embedder.runner.arena_used_bytes()
        self.input_shape = self.embedder.input_shape
        self.input_bytes = int(np.prod(self.input_shape))
        self.output_size = self.embedder.output_size
        self.profile = profile_model(model_bytes, cost_model, board=board_name)
        self.cpu_hz = int(round(cost_model.cpu_mhz * 1e6))
        self.est_cycles = self.profile.total_est_cycles
        self.est_us = int(round(self.profile.total_est_ms * 1e3))
        self.board_name = board_name
        self.firmware_version = firmware_version
        self.flags = int(flags)
        self._started = time.monotonic()  # INFO's uptime_ms
        self.faults = faults or Faults()
        self.gallery = Gallery(spec.GALLERY_CAPACITY, self.output_size)
        self.stats = BoardStats()
        self._last: tuple[int, int, bytes] | None = None  # (seq, type, frame bytes) of the last request
        self._last_reply: bytes | None = None
        self._reply_count = 0

    # --- replies --------------------------------------------------------------------------

    def reset_session(self) -> None:
        """The host closed the port: forget the retry state (the gallery stays)."""
        self._last = None
        self._last_reply = None

    def handle(self, event: Frame | Fault) -> bytes | None:
        """The reply frame for one decoded event (None: nothing is sent)."""
        if isinstance(event, Fault):
            detail = spec.MAX_PAYLOAD if event.kind == spec.ErrorCode.FRAME_TOO_LARGE else 0
            return self._emit(self._error(event.seq, event.kind, event.type, detail))
        self.stats.requests += 1
        if event.version != spec.PROTOCOL_VERSION:
            return self._emit(self._error(event.seq, spec.ErrorCode.BAD_VERSION, event.type, spec.PROTOCOL_VERSION))
        key = (event.seq, event.type, event.payload)
        if self._last == key and self._last_reply is not None:
            # A retry of the request we just answered: resend, do not execute twice.
            self.stats.retries_answered += 1
            return self._emit(self._last_reply)
        reply = self._execute(event)
        self._last, self._last_reply = key, reply
        return self._emit(reply)

    def _emit(self, reply: bytes) -> bytes | None:
        self._reply_count += 1
        self.stats.replies += 1
        if self._reply_count in self.faults.drop_replies:
            self.stats.dropped += 1
            return None
        if self._reply_count in self.faults.corrupt_replies:
            self.stats.corrupted += 1
            damaged = bytearray(reply)
            damaged[-1] ^= 0xFF  # the CRC no longer matches
            return bytes(damaged)
        return reply

    def _error(self, seq: int, code: spec.ErrorCode, request_type: int, detail: int = 0) -> bytes:
        self.stats.errors[code.name] = self.stats.errors.get(code.name, 0) + 1
        payload = spec.ERROR_REPLY.pack(code=int(code), request_type=request_type & 0xFF, reserved=0, detail=detail)
        return encode_frame(spec.MsgType.ERROR, seq, payload)

    def _ok(self, frame: Frame, payload: bytes) -> bytes:
        return encode_frame(frame.type | spec.REPLY_FLAG, frame.seq, payload)

    def _execute(self, frame: Frame) -> bytes:
        t = frame.type
        p = frame.payload
        if t == spec.MsgType.PING:
            return self._ok(frame, p)
        if t == spec.MsgType.INFO:
            if len(p) not in (0, spec.MODEL_HASH_BYTES):
                return self._error(frame.seq, spec.ErrorCode.BAD_PAYLOAD, t, spec.MODEL_HASH_BYTES)
            if p and p != self.model_sha256:
                return self._error(frame.seq, spec.ErrorCode.MODEL_MISMATCH, t)
            return self._ok(frame, self.info_payload())
        if t == spec.MsgType.INFER:
            if len(p) != self.input_bytes:
                return self._error(frame.seq, spec.ErrorCode.WRONG_INPUT_SHAPE, t, self.input_bytes)
            out, wall_us = self._invoke(p)
            head = spec.INFER_REPLY.pack(cycles=self.est_cycles, latency_us=self.est_us, host_wall_us=wall_us)
            return self._ok(frame, head + out.tobytes())
        if t == spec.MsgType.ENROLL:
            # as the firmware (tinyface_app.cc): sizes first, then the name; a wrong size says the
            # expected bytes, a bad name 0
            head = spec.ENROLL_REQUEST.size
            if len(p) < head:
                return self._error(frame.seq, spec.ErrorCode.BAD_PAYLOAD, t, head + self.input_bytes)
            if len(p) - head != self.input_bytes:
                return self._error(frame.seq, spec.ErrorCode.WRONG_INPUT_SHAPE, t, self.input_bytes)
            if not spec.valid_name_field(p[:head]):
                return self._error(frame.seq, spec.ErrorCode.BAD_PAYLOAD, t, 0)
            name = spec.decode_name(p[:head])
            if name not in self.gallery.names and self.gallery.count >= self.gallery.capacity:
                return self._error(frame.seq, spec.ErrorCode.GALLERY_FULL, t, self.gallery.capacity)
            out, _ = self._invoke(p[head:])
            slot = self.gallery.enroll(name, self._embedding(out))
            return self._ok(frame, spec.ENROLL_REPLY.pack(index=slot, samples=int(self.gallery.samples[slot]),
                                                          count=self.gallery.count, reserved=0))
        if t == spec.MsgType.LIST:
            if p:
                return self._error(frame.seq, spec.ErrorCode.BAD_PAYLOAD, t, 0)
            entries = [spec.LIST_ENTRY.pack(name=n.encode("utf-8"), index=i, samples=int(self.gallery.samples[i]))
                       for i, n in enumerate(self.gallery.names) if n is not None]
            head = spec.LIST_REPLY.pack(count=len(entries), capacity=self.gallery.capacity)
            return self._ok(frame, head + b"".join(entries))
        if t == spec.MsgType.DELETE:
            if len(p) != spec.DELETE_REQUEST.size:
                return self._error(frame.seq, spec.ErrorCode.BAD_PAYLOAD, t, spec.DELETE_REQUEST.size)
            if not (p == bytes(len(p)) or spec.valid_name_field(p)):
                return self._error(frame.seq, spec.ErrorCode.BAD_PAYLOAD, t, 0)
            removed = self.gallery.delete(spec.decode_name(p) or None)
            return self._ok(frame, spec.DELETE_REPLY.pack(removed=removed, count=self.gallery.count))
        if t == spec.MsgType.IDENTIFY:
            if len(p) != self.input_bytes:
                return self._error(frame.seq, spec.ErrorCode.WRONG_INPUT_SHAPE, t, self.input_bytes)
            out, wall_us = self._invoke(p)
            slot, sim = self.gallery.identify(self._embedding(out))
            name = self.gallery.names[slot] if slot >= 0 else ""
            return self._ok(frame, spec.IDENTIFY_REPLY.pack(
                similarity=sim, cycles=self.est_cycles, latency_us=self.est_us, host_wall_us=wall_us, index=slot,
                accepted=int(slot >= 0 and sim >= self.meta.identify_at), reserved=0, name=name.encode("utf-8")))
        return self._error(frame.seq, spec.ErrorCode.UNKNOWN_MESSAGE, t, t)

    def _invoke(self, payload: bytes) -> tuple[np.ndarray, int]:
        x = np.frombuffer(payload, dtype=np.int8).reshape(self.input_shape)
        start = time.perf_counter_ns()
        out = self.embedder.run(x)[0].astype(np.int8)
        wall_us = (time.perf_counter_ns() - start) // 1000
        self.stats.invokes += 1
        self.stats.host_wall_us_total += wall_us
        return out, int(wall_us)

    def _embedding(self, out_int8: np.ndarray) -> np.ndarray:
        return self.embedder.dequantize(out_int8)

    def info_payload(self) -> bytes:
        _, h, w, c = self.input_shape
        return spec.INFO_REPLY.pack(
            board=self.board_name.encode("ascii", "replace")[:spec.BOARD_NAME_BYTES],
            firmware_version=self.firmware_version.encode("ascii", "replace")[:spec.FIRMWARE_VERSION_BYTES],
            model_sha256=self.model_sha256, input_scale=self.meta.input_scale,
            input_zero_point=self.meta.input_zero_point, output_scale=self.meta.output_scale,
            output_zero_point=self.meta.output_zero_point, identify_threshold=self.meta.identify_at,
            arena_used_bytes=self.arena_used_bytes, free_sram_bytes=0, free_psram_bytes=0, cpu_hz=self.cpu_hz,
            flags=self.flags,
            reset_reason=spec.ResetReason.UNKNOWN,  # not a chip
            uptime_ms=int((time.monotonic() - self._started) * 1000) & 0xFFFFFFFF,
            input_h=h, input_w=w, input_c=c, output_size=self.output_size, max_payload=spec.MAX_PAYLOAD,
            gallery_capacity=self.gallery.capacity, gallery_count=self.gallery.count,
            max_name_bytes=spec.MAX_NAME_BYTES,
        )


# --- the link ---------------------------------------------------------------------------------

@dataclass
class LinkCounters:
    bytes_received: int = 0
    bytes_sent: int = 0
    sessions: int = 0
    garbage_bytes: int = 0


def _reader(fd: int, out: queue.Queue, stop: threading.Event, counters: LinkCounters) -> None:
    """Drain the pty as bytes arrive and timestamp them (always waiting in select, so the
    timestamp is the true arrival time to within scheduling jitter)."""
    connected = False
    while not stop.is_set():
        try:
            ready, _, _ = select.select([fd], [], [], 0.1)
        except (OSError, ValueError):
            break
        if not ready:
            continue
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno != errno.EIO:
                break
            data = b""
        now = time.monotonic()
        if not data:  # no slave open: nobody connected, or the host just closed the port
            if connected:
                connected = False
                out.put((now, _HANGUP))
            time.sleep(0.02)
            continue
        if not connected:
            connected = True
            counters.sessions += 1
        counters.bytes_received += len(data)
        out.put((now, data))
    out.put((time.monotonic(), None))


def _uart_rx(arrivals: queue.Queue, out: queue.Queue, stop: threading.Event, baud: int) -> None:
    """The UART receiver: hands bytes on no earlier than the wire could have carried them.

    A byte that arrived at ``t`` starts on the wire at max(t, end of the previous byte) and
    takes spec.UART_BITS_PER_BYTE (10) bits; pieces of about 2 ms are delivered when their last byte is through. The
    schedule is kept in absolute time, so a sleep that overshoots costs nothing later, and
    an idle wire earns no credit (arrival times are real).
    """
    wire_t = 0.0  # when the last byte handed over finished arriving on the emulated wire
    byte_s = spec.wire_seconds(1, baud)
    slice_bytes = max(16, int(0.002 / byte_s))
    while True:
        try:
            t_arrival, data = arrivals.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                break
            continue
        if data is None or data is _HANGUP:
            out.put(data)
            if data is None:
                break
            continue
        wire_t = max(wire_t, t_arrival)
        for i in range(0, len(data), slice_bytes):
            piece = data[i:i + slice_bytes]
            wire_t += len(piece) * byte_s
            delay = wire_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            out.put(piece)


class _Untimed:
    """Unthrottled link: pass the reader's items straight through without their timestamps."""

    def __init__(self, out: queue.Queue):
        self._out = out

    def put(self, item) -> None:
        self._out.put(item[1])


class _Writer:
    """The UART transmitter: writes replies, at most ``baud / spec.UART_BITS_PER_BYTE`` bytes per second."""

    def __init__(self, fd: int, baud: int, counters: LinkCounters):
        self.fd, self.baud, self.counters = fd, baud, counters
        self._wire_t = 0.0

    def send(self, data: bytes) -> None:
        if self.baud:
            now = time.monotonic()
            self._wire_t = max(self._wire_t, now) + spec.wire_seconds(len(data), self.baud)
            if self._wire_t > now:
                time.sleep(self._wire_t - now)
        view = memoryview(data)
        deadline = time.monotonic() + 5.0
        while view:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
                self.counters.bytes_sent += n
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # the host stopped reading; a real UART would drop too
                select.select([], [self.fd], [], 0.05)
            except OSError:
                return  # no host on the other end: the bytes go nowhere, as on a real wire


def serve(master_fd: int, board: EmulatedBoard, baud: int = 0, once: bool = False,
          stop: threading.Event | None = None) -> LinkCounters:
    """Serve the protocol on ``master_fd`` until ``stop`` is set, or (``once``) the first host
    session ends. ``baud`` > 0 limits each direction to ``baud / spec.UART_BITS_PER_BYTE`` bytes per second.

    Returns the link counters.
    """
    stop = stop or threading.Event()
    counters = LinkCounters()
    inbox: queue.Queue = queue.Queue()
    threads = []
    if baud:
        arrivals: queue.Queue = queue.Queue()
        threads.append(threading.Thread(target=_reader, args=(master_fd, arrivals, stop, counters), daemon=True,
                                        name="pty-rx"))
        threads.append(threading.Thread(target=_uart_rx, args=(arrivals, inbox, stop, baud), daemon=True,
                                        name="uart-rx"))
    else:
        unpaced: queue.Queue = inbox
        threads.append(threading.Thread(target=_reader, args=(master_fd, _Untimed(unpaced), stop, counters),
                                        daemon=True, name="pty-rx"))
    for t in threads:
        t.start()
    writer = _Writer(master_fd, baud, counters)
    decoder = StreamDecoder()
    try:
        while not stop.is_set():
            try:
                item = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                break
            if item is _HANGUP:
                board.reset_session()
                decoder = StreamDecoder()  # a half frame from the old session is not resumed
                if once:
                    break
                continue
            before = decoder.garbage_bytes
            for event in decoder.feed(item):
                reply = board.handle(event)
                if reply is not None:
                    writer.send(reply)
            counters.garbage_bytes += decoder.garbage_bytes - before
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=1.0)
    return counters


def run_emulator(bundle: Bundle, board_name: str, cost_model: CostModel, baud: int = 0, once: bool = False,
                 faults: Faults | None = None, on_ready=None, stop: threading.Event | None = None) -> EmulatedBoard:
    """Open a pseudo-terminal and serve ``bundle`` on it as board ``board_name``.

    Args:
        on_ready: called with (port_path, board) once the port accepts connections.
        stop: set it to end serving (Ctrl-C does too).

    Returns:
        The board (its ``stats`` say what was served).
    """
    from tinyface.device.pty import open_pty

    board = EmulatedBoard(bundle, board_name, cost_model, faults)
    master_fd, path = open_pty()
    try:
        if on_ready:
            on_ready(path, board)
        board.link = serve(master_fd, board, baud=baud, once=once, stop=stop)
    finally:
        os.close(master_fd)
    return board


@contextlib.contextmanager
def emulated_board(bundle: Bundle | str | os.PathLike, board: str = "esp32", kernels: str | None = None,
                   baud: int = 0, ready_timeout_s: float = 60.0) -> Iterator[str]:
    """An emulated board serving ``bundle`` for the ``with`` block, from Python (what ``tinyface
    emulate`` is on the command line); yields its port's path, which :func:`open_serial` and
    :class:`~tinyface.protocol.client.Client` take like a real board's::

        with emulated_board("models/esp32") as port, Client(open_serial(port, 921_600)) as client:
            print(client.info())

    Args:
        bundle: a Bundle, or a model folder or ``model.json`` (``load_bundle``).
        board: the board's name (latency is estimated with its cost model).
        kernels: the kernel set whose latency is estimated (default: the model's own, else ESP-NN's).
        baud: throttle the link like a UART at this speed (0: as fast as the pty).
        ready_timeout_s: how long to wait for the port.

    When the block ends (an exception in it too) the board stops and its thread and port are gone.

    Raises:
        ConfigError: an unknown board. ModelError: no such model.
        BudgetError: the model does not fit the board (``tinyface flash``'s check).
        DeviceError: the board did not start within ``ready_timeout_s``.
    """
    from tinyface.boards import load_board
    from tinyface.device.flash import check_fits
    from tinyface.errors import DeviceError
    from tinyface.model.bundle import load_bundle

    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    spec_board = load_board(board)
    kernels = kernels or bundle.meta.kernels or "esp-nn"
    check_fits(bundle, spec_board, kernels=kernels)  # it runs only what the real board can, as `emulate`
    cost_model = spec_board.cost_model_for(kernels)
    stop, ready, port, failed = threading.Event(), threading.Event(), [], []

    def serve_until_stopped() -> None:
        try:
            run_emulator(bundle, spec_board.name, cost_model, baud=baud, stop=stop,
                         on_ready=lambda path, _board: (port.append(path), ready.set()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failed.append(exc)
            ready.set()

    serving = threading.Thread(target=serve_until_stopped, name="tinyface-emulated-board", daemon=True)
    serving.start()
    try:
        if not ready.wait(ready_timeout_s):
            raise DeviceError(f"the emulated {spec_board.name} did not start within {ready_timeout_s:g} s")
        if failed:
            raise failed[0]
        yield port[0]
    finally:
        stop.set()
        serving.join(30)
