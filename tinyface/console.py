"""Terminal output: one rich console on stderr for progress and messages, plain stdout for
results (so ``--json`` output can be piped)."""

from __future__ import annotations

import collections
import contextlib
import json
import sys
from typing import Iterator

_verbosity = 0


def set_verbosity(level: int) -> None:
    global _verbosity
    _verbosity = level


def verbosity() -> int:
    return _verbosity


_interrupted = False
_terminated = False  # the interrupt was SIGTERM (kill, timeout, a service manager), not Ctrl-C


def catch_interrupts():
    """Make Ctrl-C stick: SIGINT still raises KeyboardInterrupt, and also sets a flag that
    ``raise_if_interrupted`` turns back into one. Python drops an exception raised inside a
    finalizer (``__del__``), and TensorFlow's converter frees graphs all the time (one ``__del__``
    even has a bare ``except: pass``), so a Ctrl-C during a conversion could be lost and the build
    go on. For the same reason a KeyboardInterrupt that Python reports as "Exception ignored in
    ..." (a finalizer, a weakref callback) is not printed: the flag carries it.

    SIGTERM takes the same way out (``terminated()`` tells the two apart): by default it ended the
    process on the spot, with no line, no --json error, and temporary files left behind. So does
    SIGHUP (the terminal closed, an ssh session dropped), as a SIGTERM: by default it killed the
    process as silently, in the middle of an enrollment too.

    Returns what ``release_interrupts`` restores (no signal handler off the main thread, where
    none can be set)."""
    import signal
    import threading

    global _interrupted, _terminated
    _interrupted = _terminated = False
    previous_hook = sys.unraisablehook

    def unraisable(info):
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)

    sys.unraisablehook = unraisable
    if threading.current_thread() is not threading.main_thread():
        return None, previous_hook, None, None  # off the main thread no handler can be set

    def on_sigint(signum, frame):
        note_interrupt(signum)
        signal.default_int_handler(signum, frame)

    def on_sigterm(signum, frame):
        note_interrupt(signum)
        raise KeyboardInterrupt  # as Ctrl-C: every cleanup runs, nothing half-written is left

    on_sigint.tinyface = on_sigterm.tinyface = True  # what a forked child gives up (_drop_handlers_in_child)
    _register_fork_hook()

    # an ignored signal stays ignored (SIGINT in a shell's background job; either, set so by a parent)
    sigint = None if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else signal.signal(signal.SIGINT, on_sigint)
    sigterm = None if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN else signal.signal(signal.SIGTERM, on_sigterm)
    # (`nohup tinyface ...` ignores SIGHUP: it stays ignored)
    sighup = None if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else signal.signal(signal.SIGHUP, on_sigterm)
    return sigint, previous_hook, sigterm, sighup


_fork_hook_registered = False
_mask_before_fork = None  # the forking thread's signal mask while our signals are blocked across a fork


def _register_fork_hook() -> None:
    """Once per process: a forked child (a multiprocessing pool's worker) does not keep tinyface's
    handlers. Its SIGTERM goes back to the default, so that the pool's terminate() (at every
    pool's end, too) ends it quietly instead of a KeyboardInterrupt traceback from each worker; its
    SIGINT is ignored, as the pool's initializer would ignore it (the parent owns Ctrl-C and ends
    its workers), so that a Ctrl-C that reaches a worker before its initializer prints no traceback.

    Both signals are blocked across the fork and unblocked in the child only once the handlers are
    gone: a pool that ends at once terminates workers that may still be in their fork, and the
    handler then raised KeyboardInterrupt inside the fork hook, where Python drops it; the worker
    lived on and the pool waited for it forever (about one run in ten of a pool of quick jobs)."""
    import os

    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(before=_block_signals_for_fork, after_in_parent=_restore_mask_after_fork,
                            after_in_child=_drop_handlers_in_child)
        _fork_hook_registered = True


def _ours(handler) -> bool:
    return getattr(handler, "tinyface", False)


def _our_signals() -> set:
    import signal

    return {sig for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if _ours(signal.getsignal(sig))}


def _block_signals_for_fork() -> None:
    import signal

    global _mask_before_fork
    ours = _our_signals()
    if ours:
        _mask_before_fork = signal.pthread_sigmask(signal.SIG_BLOCK, ours)


def _restore_mask_after_fork() -> None:
    import signal

    global _mask_before_fork
    if _mask_before_fork is not None:
        mask, _mask_before_fork = _mask_before_fork, None
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a signal that came meanwhile arrives now


def _drop_handlers_in_child() -> None:
    import signal

    ours = _our_signals()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if sig in ours:
            signal.signal(sig, signal.SIG_DFL)
    if signal.SIGINT in ours:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _restore_mask_after_fork()


def release_interrupts(previous) -> None:
    """Undo ``catch_interrupts`` (its return value) when the work ended normally. After an
    interrupt the handlers and the hook stay: the process is on its way out, and a second Ctrl-C while TensorFlow
    shuts down should not print tracebacks from its finalizers (an in-process caller keeps a
    handler that raises KeyboardInterrupt, as Python's own does)."""
    import signal

    global _interrupted, _terminated
    handler, hook, term_handler, hup_handler = previous
    was_interrupted, _interrupted, _terminated = _interrupted, False, False  # a later run starts clean
    if was_interrupted:
        return
    sys.unraisablehook = hook
    if handler is not None:
        signal.signal(signal.SIGINT, handler)
    if term_handler is not None:
        signal.signal(signal.SIGTERM, term_handler)
    if hup_handler is not None:
        signal.signal(signal.SIGHUP, hup_handler)


def end_on_signals(code: int) -> None:
    """The command has ended and said so, with exit ``code``: a Ctrl-C, SIGTERM or SIGHUP while the
    interpreter shuts down (TensorFlow's teardown takes about half a second) ends the process at once
    with that code, not with 130 or 143 and no line, as if the work had been cut short after its
    result was out. For the process's own exit only (tinyface.cli.main, run as a program)."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def done(signum, frame):
        for stream in (sys.stdout, sys.stderr):  # what is still buffered: the result was flushed already
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, done)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP ignored for the block (on the main thread): cleanup that must not be
    cut short."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def note_interrupt(signum: int) -> None:
    """Record that ``signum`` (SIGINT, SIGTERM or SIGHUP, which ends the work as SIGTERM does) ends
    the work: catch_interrupts' handlers do, and a command with a handler of its own (emulate's)."""
    import signal

    global _interrupted, _terminated
    _interrupted, _terminated = True, signum != signal.SIGINT


def terminated() -> bool:
    """The interrupt ``interrupted()`` reports was SIGTERM."""
    return _terminated


def interruption() -> str:
    """The word for what ended the work: "terminated" (SIGTERM) or "interrupted" (Ctrl-C)."""
    return "terminated" if _terminated else "interrupted"


def interrupted() -> bool:
    """Whether Ctrl-C was pressed since ``catch_interrupts`` (raised or not)."""
    return _interrupted


def raise_if_interrupted() -> None:
    """KeyboardInterrupt if Ctrl-C was pressed since ``catch_interrupts`` (long work calls this
    at every progress event, so an interrupt lost inside a library still ends the run)."""
    if _interrupted:
        raise KeyboardInterrupt


def _console_class():
    from rich.console import Console

    class TinyfaceConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich exits 1 on its own; let the CLI's one handler (cli/main.py) end it quietly with 0
            self.quiet = True
            raise BrokenPipeError()

    return TinyfaceConsole


def err_console():
    """The console for messages and progress on stderr. When stderr is not a terminal (a CI log,
    a file), lines are never hard-wrapped at rich's default 80 columns."""
    return _console_class()(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


def out_console(**kwargs):
    """A rich console on stdout (tables); a closed pipe (`| head`) ends the command quietly."""
    return _console_class()(**kwargs)


def info(message: str) -> None:
    err_console().print(message)


def debug(message: str) -> None:
    if _verbosity > 0:
        err_console().print(f"[dim]{message}[/dim]")


_JSON_OUT = {"printed": False}  # whether a JSON result went to stdout (then a failure adds none)


def print_json(obj, indent: int | None = 2) -> None:
    """``obj`` as JSON on stdout: the result of a command given --json (at most one document:
    the CLI's failure object is left out once this has run)."""
    from tinyface.fsutil import _json_default

    sys.stdout.write(json.dumps(obj, indent=indent, default=_json_default) + "\n")
    _JSON_OUT["printed"] = True


def json_printed() -> bool:
    """Whether :func:`print_json` has put a result on stdout since :func:`reset_json_output`."""
    return _JSON_OUT["printed"]


def reset_json_output() -> None:
    """A command starts: nothing of its own on stdout yet (the CLI's main calls this)."""
    _JSON_OUT["printed"] = False


class _Advance:
    """What progress_bar yields: ``advance(n=1)``, and ``advance.set_total(n)`` once the total is
    known (work that lists its inputs after the bar started)."""

    def __init__(self, advance=lambda n=1: None, set_total=lambda n: None):
        self._advance, self.set_total = advance, set_total

    def __call__(self, n: int = 1) -> None:
        self._advance(n)


def live_display(console) -> bool:
    """Whether ``console`` shows a live display (a bar, a spinner): a terminal, but not a dumb one
    (TERM=dumb: rich draws nothing until the work ends, so it gets the plain lines a file gets)."""
    return console.is_terminal and not console.is_dumb_terminal


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True) -> Iterator[_Advance]:
    """Yield ``advance(n=1)`` (with ``advance.set_total(n)``); draws a rich progress bar on stderr
    when it is a terminal, else a plain line every 10 s."""
    if not enabled or total == 0:
        yield _Advance()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = err_console()
    if not live_display(console):  # a CI log or a file: a plain line every few seconds instead of a bar
        plain = PlainProgress(description, total)
        yield _Advance(plain.advance, lambda n: setattr(plain, "total", n))
        plain.finish()
        return
    from rich.markup import escape

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               eta_column()]
    with Progress(*columns, console=console, transient=False) as prog:
        # escaped: a description holds what users name (a person "Al [/]", a folder), never markup
        pace, done = Pace(), [0]
        task = prog.add_task(escape(description), total=total, pace=pace)

        def advance(n=1):
            prog.advance(task, n)
            done[0] += n
            pace.update(done[0])

        yield _Advance(advance, lambda n: prog.update(task, total=n))


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """Long work with nothing to count (a firmware build, a verification): a spinner on a terminal;
    otherwise (a CI log, a file) the message with the time so far every 10 s while it lasts, so
    the log never goes quiet for minutes."""
    console = err_console()
    if live_display(console):
        from rich.markup import escape

        with console.status(escape(message)):  # a path or a name, never markup (progress_bar's note)
            yield
        return
    plain = PlainProgress(message, None).start_heartbeat()
    try:
        yield
    except BaseException:
        plain.finish()
        raise
    plain.finish(done=True)


@contextlib.contextmanager
def step(description: str, total: int | None) -> Iterator[_Advance]:
    """One step of long work, yielding ``advance(n=1)``: a :func:`progress_bar` for what can be
    counted (``total`` items), a :func:`status` for what cannot (``total`` None). The API functions
    that do work in steps (an evaluation, a bench) take this as their ``steps``, so that every step
    shows progress, one after the other (two live displays cannot be nested)."""
    if total is None:
        with status(description):
            yield _Advance()
    else:
        with progress_bar(description, total) as advance:
            yield advance


@contextlib.contextmanager
def no_step(description: str, total: int | None) -> Iterator[_Advance]:
    """:func:`step` that shows nothing: the ``steps`` of a caller that wants no progress."""
    yield _Advance()


PLAIN_PROGRESS_EVERY_S = 10.0


PLAIN_PROGRESS_WINDOW_S = 60.0


class PlainProgress:
    """Progress for output that is not a terminal: one plain line at most every ``every_s``
    seconds, with the count, the share done, the time so far and the estimated time left (by
    :class:`Pace`, as a terminal's bar estimates it).

    Args:
        description: what is counted ("faces", "distill epochs").
        total: the count at the end (None: unknown, no share or ETA).
        every_s: the shortest interval between two lines.
        write: where a line goes (default: stderr).
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, description: str, total: int | None, every_s: float = PLAIN_PROGRESS_EVERY_S,
                 write=None, clock=None):
        import time

        self.description = description
        self.total = total
        self.every_s = every_s
        self.write = write or (lambda line: (sys.stderr.write(line + "\n"), sys.stderr.flush()))
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self.last_line = self.started
        self.completed = 0
        self.note = ""
        self._printed_at = -1
        self._stop = None
        self.pace = Pace(self.clock, self.started)

    def start_heartbeat(self) -> "PlainProgress":
        """Also print a line every ``every_s`` while nothing advances (an epoch of several minutes)."""
        import threading

        self._stop = threading.Event()

        def beat():
            while not self._stop.wait(self.every_s / 2):
                if self.clock() - self.last_line >= self.every_s:
                    try:
                        self._line()
                    except (OSError, ValueError):  # stderr swapped back under it (muted_stderr's end): a line lost
                        pass

        threading.Thread(target=beat, name="tinyface-progress", daemon=True).start()
        return self

    def advance(self, n: int = 1) -> None:
        self.update(self.completed + n)

    def update(self, completed: int, note: str | None = None) -> None:
        self.completed = completed
        if note is not None:
            self.note = note
        now = self.pace.update(completed)
        if now - self.last_line >= self.every_s:
            self._line()

    def stop(self) -> None:
        """End the heartbeat with no last line (work that failed and said so itself)."""
        if self._stop is not None:
            self._stop.set()

    def finish(self, done: bool = False) -> None:
        """A last line, if anything happened since the previous one (and the work took long enough to show).
        ``done``: work with nothing counted (:func:`status`) that ended well says so, and when (its
        heartbeat lines alone end mid-way, and read as if it still ran)."""
        self.stop()
        long_enough = self.clock() - self.started >= self.every_s
        if done and self.total is None and not self.completed:
            if long_enough:
                self.last_line = self.clock()
                self.write(f"{self.description}: done, {_duration(self.last_line - self.started)} elapsed")
        elif self.completed != self._printed_at and long_enough:
            self._line()

    def line(self) -> str:
        elapsed = self.clock() - self.started
        done = self.completed
        if self.total is None and not done:  # nothing counted: what it is doing, and for how long
            text = self.description
        elif float(done).is_integer():
            text = f"{self.description}: {int(done):,}"
        else:
            text = f"{self.description}: {done:,.2f}"
        if self.total:
            text += f"/{self.total:,} ({100 * self.completed / self.total:.0f}%)"
        text += f", {_duration(elapsed)} elapsed"
        left = self.pace.seconds_left(self.completed, self.total)
        if left is not None:
            text += f", eta {_duration(left)}"
        if self.note:
            text += f"  {self.note}"
        return text

    def _line(self) -> None:
        self.last_line = self.clock()
        self._printed_at = self.completed
        self.write(self.line())


class Pace:
    """How fast long work goes, for the time it has left: the one estimate of every progress
    display (a plain line's ``eta``, a terminal bar's :class:`EtaColumn`). The rate is that of the
    last ``PLAIN_PROGRESS_WINDOW_S`` seconds (the whole run while it is shorter), so work that slows
    down or speeds up (a first step that compiles, images that come slower at the end) is not
    estimated from its start. The time before the first unit was done (a model traced before its
    first batch, a file opened), and a first count that is work an earlier run did (a build that
    takes up its distillation at epoch 12), are not the work's pace: once anything advanced after
    the first count, the rate is measured from there (a QAT epoch whose first batch took 19 s of
    22 was estimated at 10 minutes).

    Args:
        clock: monotonic seconds (tests pass a fake one).
        started: when the work started (default: now).
    """

    def __init__(self, clock=None, started: float | None = None):
        import time

        self.clock = clock or time.monotonic
        self.started = self.clock() if started is None else started
        self._samples = collections.deque([(self.started, 0.0)])  # (time, completed), >= 1 s apart
        self._first = None  # (time, completed) when the first count came

    def update(self, completed: float) -> float:
        """Record the count done now; returns now (the clock's)."""
        now = self.clock()
        if self._first is None and completed > 0:
            self._first = (now, completed)
        if now - self._samples[-1][0] >= 1.0:
            self._samples.append((now, completed))
            while len(self._samples) > 2 and self._samples[1][0] <= now - PLAIN_PROGRESS_WINDOW_S:
                self._samples.popleft()  # keep one sample at or before the window's start
        return now

    def rate(self, completed: float) -> float:
        """Units a second since the oldest sample kept (the window's start, or the run's), from the
        first count where that is later, or since the start when nothing advanced since."""
        then, done_then = self._samples[0]  # one atomic read: a heartbeat thread reads it too
        first = self._first
        if first is not None and then < first[0] and completed > first[1]:
            then, done_then = first
        now = self.clock()
        if now > then and completed > done_then:
            return (completed - done_then) / (now - then)
        return completed / max(now - self.started, 1e-9)

    def seconds_left(self, completed: float, total: float | None) -> float | None:
        """The estimated seconds until ``total``; None when there is nothing to estimate (no total,
        nothing done yet, or done)."""
        if not total or not 0 < completed < total:
            return None
        return (total - completed) / self.rate(completed)


def eta_column():
    """A rich progress column: "eta 3 min 20 s" from the task's ``pace`` field (a :class:`Pace`
    that its updates feed), empty without one or before anything is done."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        max_refresh = 0.5

        def render(self, task) -> Text:
            pace = task.fields.get("pace")
            left = pace.seconds_left(task.completed, task.total) if pace is not None else None
            return Text("" if left is None else f"eta {_duration(left)}", style="progress.remaining")

    return EtaColumn()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# Libraries whose Python warnings are noise to a tinyface user (deprecations of APIs we pin, the
# converter's notes on choices we made on purpose); shown again with -v.
NOISY_MODULES = r"(tensorflow|tf_keras|keras|tensorflow_model_optimization|absl|PIL|tflite_micro)(\..*)?"


def use_legacy_keras() -> None:
    """Make TensorFlow's Keras the Keras 2 of ``tf_keras``: the students are built, saved and
    loaded with it, the teacher is a ``tf.keras`` model, and tensorflow_model_optimization (pruning,
    quantization-aware training) works only with it; TensorFlow 2.16+ would otherwise give Keras 3.
    TensorFlow reads ``TF_USE_LEGACY_KERAS`` once, at its first import, so this runs before anything
    imports it (quiet_tensorflow, tinyface.model.keras_io, tests/conftest.py); a value the user
    set stands."""
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def one_op_at_a_time() -> bool:
    """Make TensorFlow run a graph's ops one at a time (inter-op parallelism 1; each op still uses
    every core), so that training is bit-reproducible: a build's stages run it first.

    With ops side by side (TensorFlow's default), one epoch of quantization-aware training from
    the same pruned student, data and seed gave a different model on every run: its graph has
    many parallel branches (the quantizers' min/max), and the float results of TensorFlow's
    default x86 kernels (oneDNN) then depend on how the ops overlap. Two runs agreed step for step
    with inter-op parallelism 1, and also with oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``), which
    would change every result. Plain training of the chain-shaped students (distillation) gives
    the same bytes either way, and about the same speed (docs/model.md, "QAT is reproducible").

    TensorFlow takes the setting only before it runs its first op. Returns whether it holds:
    False where TensorFlow had already started with another value (a library user's session,
    left as it is).
    """
    use_legacy_keras()
    import tensorflow as tf

    if tf.config.threading.get_inter_op_parallelism_threads() == 1:
        return True
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # "cannot be modified after initialization"
        return False
    return True


def quiet_tensorflow(import_now: bool = False) -> None:
    """Silence TensorFlow, its converter and PIL on stderr unless -v was given: the C++ start-up
    chatter (oneDNN notes, a CUDA probe that 'fails' on every machine without a GPU), the Python
    loggers of TensorFlow and absl below ERROR, and the warnings those libraries raise
    (tf.lite.Interpreter's deprecation, the converter's 'statistics for quantized inputs').

    Every module that imports TensorFlow calls this first (tinyface/model/runtime.py,
    tinyface/train/__init__.py), so the library API is quiet too, not only the CLI. With
    ``import_now`` TensorFlow is imported here with stderr muted, since absl writes some lines
    before any log level applies."""
    import logging
    import os
    import sys
    import warnings

    use_legacy_keras()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if _verbosity > 0 else "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if _verbosity > 0:
        return
    warnings.filterwarnings("ignore", module=NOISY_MODULES)
    for name in ("tensorflow", "absl", "h5py", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not import_now or "tensorflow" in sys.modules:
        return
    with muted_stderr():
        import tensorflow

        # the CUDA probe runs at the first device query, after the import: an "E0000 ... failed call
        # to cuInit" line on every machine without a GPU, whatever TF_CPP_MIN_LOG_LEVEL says
        tensorflow.config.list_physical_devices("GPU")


@contextlib.contextmanager
def muted_stderr() -> Iterator[None]:
    """Send what C/C++ code writes to file descriptor 2 to /dev/null for the block (TensorFlow's
    and the converter's logs bypass every Python setting); nothing is muted with -v. What Python
    writes to ``sys.stderr`` still shows: for the block it is a stream on the real stderr, so
    progress lines and a progress bar go on while the converter runs. Python exceptions are
    unaffected: they carry their own messages."""
    import os

    if _verbosity > 0:
        yield
        return
    real = sys.stderr
    try:
        swap = real.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a StringIO (tests) or a closed stream: leave it be
        swap = False
    real.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        if swap:
            sys.stderr = open(saved, "w", buffering=1, encoding=real.encoding, errors=real.errors, closefd=False)
        yield
    finally:
        if swap:
            swapped, sys.stderr = sys.stderr, real
            swapped.close()  # fd `saved` stays open (closefd=False): a heartbeat still holding this stream
            # gets ValueError from now on, never a write into whatever file reuses the fd number
        real.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
