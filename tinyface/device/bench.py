"""Benchmark a device over the serial protocol: latency, throughput, on-device LFW
verification accuracy and agreement with the host's TFLite int8 model.

Works over any transport the :class:`~tinyface.protocol.client.Client` accepts (a board's
USB serial port, the emulator's or the native build's pseudo-terminal) and always returns
one :class:`BenchResult`. Results are written to ``out`` as they come (atomically, after
the first image, then every half second or less often while the file grows, and at the end),
so a lost link keeps what was measured and says how far it got.

The images are held out: ``pairsDevTest`` pairs, taken alternately from its same-person and
different-person halves (file order) until ``n`` distinct images, so that the verification
accuracy is measured on a balanced set of the pairs whose both images were sent.
"""

from __future__ import annotations

import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tinyface.console import interruption
from tinyface.errors import DataError, DeviceError, Interrupted, OutputError, ProtocolError
from tinyface.evaluation import metrics
from tinyface.model.bundle import Bundle
from tinyface.model.embedder import dequantize_output, quantize_input
from tinyface.protocol import spec
from tinyface.protocol.client import Client, DeviceInfo

WRITE_EVERY_S = 0.5
# What the cycle field means on an instruction-set emulator (spec.Flag.INSTRUCTIONS).
INSTRUCTIONS_LABEL = "instructions (a lower bound on cycles)"


@dataclass
class BenchInputs:
    paths: list[Path]
    x_int8: np.ndarray  # (N, H, W, C)
    pairs: list[tuple[int, int, bool]]  # (index a, index b, same person) into paths
    skipped: int = 0  # images that could not be read


@dataclass
class BenchResult:
    """Everything one bench run measured (also the JSON written to --out)."""

    complete: bool
    port: str
    board: str
    model: str  # the .tflite's path
    model_sha256: str
    model_name: str  # model.json's name
    smoke_test: bool
    device: dict
    images_requested: int
    images_done: int = 0
    error: str | None = None
    elapsed_s: float = 0.0
    records: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    link: dict = field(default_factory=dict)
    pairs: list[list] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    # INFO after the run (protocol 3), and when it was read (seconds after ``device``'s): a board
    # that restarted meanwhile (a panic, a watchdog) has counted its uptime again from 0; None
    # when the run ended early or the board did not answer
    device_after: dict | None = None
    device_after_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def outputs(self) -> np.ndarray:
        """The device's int8 outputs of the images done, (images_done, D)."""
        return np.stack([np.frombuffer(bytes.fromhex(r["output_hex"]), np.int8) for r in self.records]) \
            if self.records else np.zeros((0, 0), np.int8)


def load_result(path: str | Path) -> BenchResult:
    """Read a results file written by :func:`run_bench` (complete or partial).

    Raises:
        DataError: ``path`` cannot be read, is not JSON, or is not a bench results file.
    """
    import json

    from tinyface.errors import DataError

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return BenchResult(**raw)
    except OSError as exc:
        raise DataError(f"cannot read bench results {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:  # not JSON (JSONDecodeError, UnicodeDecodeError), or other keys
        raise DataError(f"{path} is not a tinyface bench results file: {exc}",
                        hint="bench --out writes one") from None


# --- inputs ---------------------------------------------------------------------------------

def bench_pairs_file(settings) -> list:
    """The held-out pairs of ``settings.data``'s pairsDevTest.txt: cheap, so `bench` reads them
    before it opens the port (a wrong ``--data`` is one line, not a handshake and then an error).

    Raises:
        DataError: the folder has no pairsDevTest.txt, or it is not in LFW's format.
    """
    from tinyface.data.lfw import PAIRS_DEV_TEST, read_pairs

    data_dir = settings.data.data_path()
    try:
        found = (data_dir / PAIRS_DEV_TEST).is_file()
    except PermissionError:  # Path.is_file raises on 3.11 where the folder cannot be searched
        raise DataError(f"cannot read dataset folder (permission denied): {data_dir}",
                        hint="pass --data to an LFW folder you can read") from None
    if not found:  # a user's own folder has none: say what bench needs
        raise DataError(f"no {PAIRS_DEV_TEST} in {data_dir}: bench streams the held-out faces of LFW's pairsDevTest",
                        hint="pass --data to an LFW folder; `tinyface data fetch lfw` gets one")
    return read_pairs(data_dir / PAIRS_DEV_TEST)


def images_available(pairs: list) -> int:
    """How many distinct images ``pairs`` (bench_pairs_file) name: the most `bench` can stream (a
    larger ``--images`` streams these, and `bench` says so). LFW's pairsDevTest: 1,549 in 1,000 pairs."""
    return len(metrics.pairs_within_images(pairs, 2 * len(pairs))[0])  # every pair fits: all its images


def prepare_inputs(bundle: Bundle, n_images: int, settings,
                   progress: Callable[[int], None] | None = None, pairs: list | None = None,
                   on_total: Callable[[int], None] | None = None) -> BenchInputs:
    """The first ``n_images`` held-out pairsDevTest images of ``settings.data`` (its folder, crop
    cache, workers and detector retry), aligned as the model's model.json says and
    int8-quantized for ``bundle``. ``pairs``: those pairs if already read (bench_pairs_file).
    ``on_total(images)`` is called before the first ``progress(n)``, with the number of images
    that will be aligned: ``n_images``, or fewer where the pairs hold fewer.

    Raises:
        DataError: the dataset or its pairsDevTest.txt is missing, ``n_images`` holds no pair (it is
            under 2; bench.images refuses that), or no image was usable.
    """
    from tinyface.data.cache import FaceCache
    from tinyface.data.faces import FaceSpec, prepare_faces
    from tinyface.data.lfw import image_path

    data_dir = settings.data.data_path()
    keys, used = metrics.pairs_within_images(pairs if pairs is not None else bench_pairs_file(settings), n_images)
    if not keys:  # was "none of the 0 images under ... could be read" for 1 image: a pair needs 2
        raise DataError(f"bench needs at least 2 images (one pair of pairsDevTest.txt), not {n_images}"
                        if n_images < 2 else f"pairsDevTest.txt under {data_dir} has no pair")
    paths = [image_path(data_dir / "images", name, index) for name, index in keys]
    if on_total:
        on_total(len(paths))
    prepared = prepare_faces(paths, FaceSpec.for_model(bundle.meta, settings), FaceCache(settings.data.cache_path()),
                             workers=settings.data.workers, progress=progress)
    keep = np.flatnonzero(prepared.ok)
    if keep.size == 0:
        raise DataError(f"none of the {len(paths)} images under {data_dir} could be read")
    remap = {int(old): new for new, old in enumerate(keep)}
    index_of = {k: i for i, k in enumerate(keys)}
    bench_pairs = [(remap[index_of[a]], remap[index_of[b]], same) for a, b, same in used
                   if index_of[a] in remap and index_of[b] in remap]
    return BenchInputs([paths[i] for i in keep], quantize_input(prepared.crops[keep], bundle.meta), bench_pairs,
                       skipped=len(paths) - keep.size)


# --- the run --------------------------------------------------------------------------------

def handshake(client: Client, bundle: Bundle) -> DeviceInfo:
    """INFO, then check protocol version, model hash and input/output shapes.

    Raises:
        ProtocolError: any mismatch (one line naming both sides).
    """
    info = client.info()
    if info.model_sha256 != bundle.model_hash:
        from tinyface.device.gallery import find_bundle

        # a released model (`emulate --isa` runs models/esp32c3, a board flashed with --board esp32s3
        # models/esp32s3): name it, rather than ask for the model "the board was flashed with"
        released = find_bundle(info.model_sha256)
        hint = (f"pass --model {released.model_path.parent}, the released model the device runs"
                if released is not None else
                "pass the --model the board was flashed with, or flash this one with `tinyface flash`")
        raise ProtocolError(
            f"model mismatch: the device runs sha256 {info.model_sha256[:16]}…, the local model "
            f"{bundle.model_path} is {bundle.model_hash[:16]}…", hint=hint)
    if list(info.input_shape) != list(bundle.meta.input_shape):
        raise ProtocolError(f"the device's input shape {list(info.input_shape)} differs from the model's "
                            f"{bundle.meta.input_shape}")
    return info


def run_bench(client: Client, bundle: Bundle, inputs: BenchInputs, *, port: str, board: str,
              out: str | Path | None = None, steps=None,
              pipeline: bool = True, host_check: bool = True,
              plot: str | Path | None = None) -> BenchResult:
    """Stream ``inputs`` through INFER and measure.

    Args:
        steps: ``steps(description, total)``, a context manager around each step yielding
            ``advance(n)`` (tinyface.console.step; default: none shown): "benchmarking" (``total``
            the images), then the host's check of the outputs (``total`` None), which takes
            seconds after the last image.
        plot: also draw the latencies (:func:`latency_plot`) to this PNG at the end, or, if the
            run ends early, from the inferences done.

    Returns:
        The complete result (also written to ``out``).

    Raises:
        DeviceError: the link was lost or the device stopped answering; the partial result
            is written to ``out`` (and ``plot``) first and the message says how far the run got.
        Interrupted: Ctrl-C or SIGTERM after an image was done (or with ``out``), in the stream
            or in the host's check after it; the partial result is kept as for a DeviceError.
        OutputError: ``out`` cannot be written (during the run, which then stops, or at its end), or
            ``plot`` cannot (the complete result is in ``out`` where only the plot failed).
        Interrupted: Ctrl-C or SIGTERM while the plot of a complete run is drawn: the complete
            result is in ``out``, and the plot is not drawn.

    A plot an earlier run left at ``plot`` is removed when this run's results first replace its
    (``out``'s first write) or this run's plot is drawn: a plot that failed, or was interrupted,
    leaves none rather than one of other results beside these.

    An error raised after an image was done carries the result so far as its ``bench_result``
    (``complete`` false where the run ended early): `bench --json` prints it as "result".
    """
    import json

    from tinyface.fsutil import write_text

    # INFO now, not the caller's from before the faces were aligned (minutes): the uptime the
    # restart check compares the run's end with
    info = handshake(client, bundle)
    result = BenchResult(
        complete=False, port=port, board=board,
        model=str(bundle.model_path), model_sha256=bundle.model_hash, model_name=bundle.meta.name,
        smoke_test=bundle.meta.smoke_test,
        device=asdict(info), images_requested=len(inputs.paths),
        pairs=[list(p) for p in inputs.pairs], paths=[str(p) for p in inputs.paths],
    )
    next_write = 0.0
    old_plot = bool(plot)  # a plot at ``plot`` may be an earlier run's, until drop_old_plot

    def drop_old_plot() -> None:
        """Remove what ``plot`` holds, once, before this run's results or plot replace an earlier
        run's: was (Ctrl-C while the final plot was drawn) the earlier run's plot beside new results."""
        nonlocal old_plot
        if old_plot:
            old_plot = False
            try:
                Path(plot).unlink(missing_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot replace --plot {plot}: {exc.strerror or exc}") from None

    def draw_plot() -> None:
        drop_old_plot()
        latency_plot(result, plot)

    def save(force: bool = False) -> None:
        nonlocal next_write
        result.link = asdict(client.stats)  # with or without --out: the printed result reports the link too
        if out and (force or time.monotonic() >= next_write):
            drop_old_plot()
            began = time.monotonic()
            # Compact JSON: json's C encoder only runs without indent, and the indented
            # (pure-Python) one held the stream up for a tenth of a second per write.
            write_text(out, json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
            # The file grows with every image; rewriting it must not stall the stream, so
            # writes are spaced to keep them under ~2% of the time (and at least WRITE_EVERY_S).
            took = time.monotonic() - began
            next_write = time.monotonic() + max(WRITE_EVERY_S, 50 * took)

    from tinyface.console import no_step

    def end_early(exc: DeviceError | KeyboardInterrupt):
        """Raise what ends the run cut short by ``exc``, once what it measured is kept: in ``out``,
        ``plot``, and as the error's ``bench_result`` (`bench --json`'s "result") where an image
        was done. ``exc`` itself where it is a Ctrl-C before any image, with no ``out``."""
        result.error = exc.one_line() if isinstance(exc, DeviceError) else interruption()
        result.summary = summarize(result, inputs, info, bundle, host_outputs=None)
        save(force=True)
        where = f"; partial results in {out}" if out else ""
        if plot and result.images_done:
            try:
                draw_plot()
                where += f"; latency plot of those in {plot}"
            except (OutputError, KeyboardInterrupt):  # the run's own error is the one to report
                pass
        done = f"after {result.images_done}/{result.images_requested} images{where}"
        if isinstance(exc, KeyboardInterrupt):
            if not (result.images_done or out):
                raise exc
            error = Interrupted(f"{interruption()} {done}")
        else:
            cls = ProtocolError if isinstance(exc, ProtocolError) else DeviceError
            error = cls(f"{exc}; {done}", hint=exc.hint)
        if result.images_done:
            error.bench_result = result
        raise error from None

    step = steps or no_step
    start = time.monotonic()
    try:
        with step("benchmarking", len(inputs.paths)) as progress:
            for i, r in enumerate(client.infer_many(inputs.x_int8, depth=spec.PIPELINE_DEPTH if pipeline else 1)):
                if r.output.size != info.output_size:
                    raise ProtocolError(f"INFER returned {r.output.size} values, INFO said {info.output_size}")
                result.records.append({"index": i, "t_s": round(time.monotonic() - start, 6), "cycles": r.cycles,
                                       "latency_us": r.latency_us,
                                       "host_wall_us": r.host_wall_us, "output_hex": r.output.tobytes().hex()})
                result.images_done = i + 1
                result.elapsed_s = time.monotonic() - start
                progress(1)
                save(force=i == 0)
    except (DeviceError, KeyboardInterrupt) as exc:
        result.elapsed_s = time.monotonic() - start
        end_early(exc)
    except OutputError as exc:  # --out cannot be written (a disk that filled): the run stops, and
        result.elapsed_s = time.monotonic() - start  # what it measured is in `bench --json`'s "result"
        result.error = exc.one_line()
        result.summary = summarize(result, inputs, info, bundle, host_outputs=None)
        exc.bench_result = result
        raise
    result.elapsed_s = time.monotonic() - start
    host = host_tflm = None
    try:
        try:
            result.device_after = asdict(client.info())
            result.device_after_s = time.monotonic() - start
        except DeviceError:  # the figures stand; only the restart check is lost
            result.device_after = None
        if host_check:  # seconds for 1,000 images, after the bar has reached its end: a step of its own
            with step("checking the outputs against the host's TFLite and TFLM", None):
                host = host_outputs(bundle, inputs.x_int8)
                host_tflm = host_tflm_outputs(bundle, inputs.x_int8)
    except KeyboardInterrupt as exc:  # every image was done: kept (was: lost), without the host's check
        end_early(exc)
    result.summary = summarize(result, inputs, info, bundle, host, host_tflm)
    result.complete = True
    try:
        save(force=True)
        if plot:
            try:
                draw_plot()
            except KeyboardInterrupt:  # was: a bare `interrupted`, --json without the result
                kept = f"complete results in {out}" if out else "all of them measured"
                raise Interrupted(f"{interruption()} after {result.images_done}/{result.images_requested} "
                                  f"images; {kept}; the latency plot {plot} was not drawn") from None
    except (OutputError, Interrupted) as exc:  # --out or --plot cannot be written (a full disk), or Ctrl-C
        exc.bench_result = result  # while the plot is drawn: the results stand in `bench --json`'s "result"
        raise  # (and in ``out``, where it was the plot)
    return result


def restarts(before: dict, after: dict | None, seconds: float = 0.0) -> dict:
    """What INFO says about the board's restarts (``before``/``after``: BenchResult.device and
    .device_after, read ``seconds`` apart): ``started_after``, the reason the board last started
    when it was a crash, a watchdog or a power failure (spec.CRASH_RESETS); ``restarted_during_run``,
    the reason it started again while the run went on (the client's resends hide such a gap).

    A board's uptime runs with the host's clock: if it advanced by much less (or, across a wrap
    at 2^32 ms, much more) than the seconds between the two INFOs, the board started again in
    between. An emulator's or host build's uptime may run slower than the host's clock (the
    instruction-set emulator counts instructions), so there only an uptime that went down counts.
    """
    out = {}
    if before.get("reset_reason") in spec.CRASH_RESETS:
        out["started_after"] = spec.reset_reason_name(before["reset_reason"])
    if after is None:
        return out
    first, last = int(before.get("uptime_ms", 0)), int(after.get("uptime_ms", 0))
    flags = int(before.get("flags", 0))
    if flags & (spec.Flag.EMULATED | spec.Flag.NATIVE | spec.Flag.INSTRUCTIONS):
        restarted = last < first
    else:
        advanced = (last - first) % 2**32
        slack = 1000 + 0.01 * seconds * 1000  # the two clocks' drift and the INFOs' own time
        restarted = abs(advanced - seconds * 1000) > slack
    if restarted:
        out["restarted_during_run"] = spec.reset_reason_name(after.get("reset_reason", 0))
    return out


def latencies_ms(records: list[dict], cpu_hz: int) -> np.ndarray:
    """Each inference's latency in ms, as the device reported it: its cycle field at ``cpu_hz``
    (the device's clock, INFO), or its ``latency_us`` where the device gave no clock."""
    if cpu_hz:
        return np.array([r["cycles"] for r in records], np.float64) / cpu_hz * 1e3
    return np.array([r["latency_us"] for r in records], np.float64) / 1e3


def timing_source(device: dict) -> str:
    """What a device's latencies are, from its INFO ``flags`` (``device``: BenchResult.device)."""
    flags = int(device.get("flags", 0))
    if flags & spec.Flag.INSTRUCTIONS:
        return ("instructions counted on the instruction-set emulator at the board's clock, one cycle each: "
                "a LOWER BOUND, not a measurement of the chip")
    if flags & spec.Flag.EMULATED:
        return "ESTIMATED by the emulator's cost model, not measured"
    if flags & spec.Flag.NATIVE:
        return "MEASURED on this host by the native build (the host's time, not the board's)"
    return "MEASURED by the board's cycle counter"


# A bench histogram's bins run from its p1 to its p99 figure: one cold first inference, or a stall,
# would squeeze the rest into a few bins. Each is the figure measured nearest it on the inside, so that
# the smallest and the largest of a short run (20 images) are left out too, where interpolation would
# have stretched the bins most of the way to them.
HIST_PERCENTILES = (1, 99)


@dataclass(frozen=True)
class LatencySeries:
    """One per-inference figure of a bench run, as :func:`latency_figure` draws it (a row of two panels)."""

    key: str  # "latency", "host_wall": the gid of what is drawn of it
    title: str  # what it is, for the panels' titles: "ESTIMATED latency"
    unit: str  # the axis label of its milliseconds
    constant: str  # "every inference " + this, with {ms}: how a figure that never varies is said
    ms: np.ndarray


def latency_series(result: BenchResult) -> list[LatencySeries]:
    """What :func:`latency_figure` draws of ``result``: the latency the device reported (its cycle
    field at its clock), labelled by where it comes from (:func:`timing_source`), and where the
    device sent one that is not that latency (the emulator's), the host wall time of each inference."""
    flags = int(result.device.get("flags", 0))
    lat = latencies_ms(result.records, int(result.device.get("cpu_hz", 0)))
    if flags & spec.Flag.INSTRUCTIONS:
        series = [LatencySeries("latency", "instructions at the board's clock (a LOWER BOUND on latency)",
                                "ms of instructions at the board's clock",
                                "at least {ms:.2f} ms (instructions at the board's clock: a LOWER BOUND)", lat)]
    elif flags & spec.Flag.EMULATED:
        series = [LatencySeries("latency", "ESTIMATED latency (the emulator's cost model)", "ESTIMATED ms",
                                "ESTIMATED at {ms:.2f} ms by the emulator's cost model", lat)]
    elif flags & spec.Flag.NATIVE:
        series = [LatencySeries("latency", "latency MEASURED on this host (the native build: the host's time)",
                                "MEASURED ms (the host's)", "MEASURED at {ms:.2f} ms on this host", lat)]
    else:
        series = [LatencySeries("latency", "MEASURED latency (the board's cycle counter)", "MEASURED ms",
                                "MEASURED at {ms:.2f} ms", lat)]
    wall = np.array([r.get("host_wall_us", 0) for r in result.records], np.float64) / 1e3
    if wall.any() and not flags & spec.Flag.NATIVE:  # a native build's host wall time is its latency
        series.append(LatencySeries("host_wall", "host wall time of the TFLM kernels (MEASURED on this host, "
                                    "not the board's)", "host wall ms",
                                    "MEASURED at {ms:.2f} ms of host wall time", wall))
    return series


def latency_plot(result: BenchResult, path: str | Path) -> Path:
    """``path``: :func:`latency_figure` of ``result`` as a PNG.

    Raises:
        OutputError: ``path`` cannot be written.
    """
    from tinyface.boards.plots import save_png

    return save_png(latency_figure(result), path)


def latency_figure(result: BenchResult):
    """``result``'s per-inference figures (:func:`latency_series`), a row of two panels each: on the
    left each inference's in the order run (warm-up, throttling, a stall or a restart show there);
    on the right their histogram, binned between the p1 and the p99 figure (HIST_PERCENTILES), with
    p50 and p95 marked and how many fell outside the bins said in its title. A figure that never
    varies (the emulator's estimate) is said in words ("every inference ESTIMATED at 95.85 ms"), not
    drawn as a histogram of one bar. The title names the model, the board, where the timings come
    from (:func:`timing_source`) and how many inferences, and says if the run ended early; the
    caption the model's path, the firmware, the port and the clock.

    Returns:
        The matplotlib Figure (tinyface.boards.plots.save_png writes and closes it).
    """
    from tinyface.boards.plots import caption, model_title, pyplot, short_path

    plt = pyplot()  # the Agg backend, chosen before any other part of matplotlib is imported

    series = latency_series(result)
    n = len(result.records)
    fig, axes = plt.subplots(len(series), 2, figsize=(11, 0.9 + 2.9 * len(series)), squeeze=False,
                             gridspec_kw={"width_ratios": (3, 2)})
    for (timeline, histogram), s, color in zip(axes, series, ("C0", "C1"), strict=False):
        _draw_timeline(timeline, s, [r["index"] for r in result.records], color)
        _draw_histogram(histogram, s, color)
    device = result.device
    flags = int(device.get("flags", 0))
    kind = ("emulated " if flags & spec.Flag.EMULATED else "native build of " if flags & spec.Flag.NATIVE
            else "instruction-set emulator of " if flags & spec.Flag.INSTRUCTIONS else "")
    name = model_title(result.model, result.model_name)
    early = ("" if result.complete else
             f"; the run ended early: {result.images_done}/{result.images_requested} images")
    source = textwrap.fill(f"latency: {timing_source(device)}", 120)
    fig.suptitle(f"{name} on {kind}{device.get('board') or result.board}: {n} inferences{early}\n{source}",
                 fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    counted = result.summary.get("instructions_per_inference")
    restarted = result.summary.get("restarted_during_run")
    caption(fig, [f"model {short_path(result.model)} (sha256 {result.model_sha256[:16]}), "
                  f"firmware {device.get('firmware_version', '?')}, port {result.port}, "
                  + clock_words(device)
                  + (f"; {counted['mean']:,.0f} instructions per inference (min {counted['min']:,}, "
                     f"max {counted['max']:,})" if counted else "")
                  + (f"; the board restarted during the run ({restarted})" if restarted else "")
                  + (f"; {result.error}" if result.error else "")])
    return fig


def histogram_range(ms: np.ndarray) -> tuple[float, float]:
    """The range a bench histogram bins (HIST_PERCENTILES): the figures measured nearest the p1 and
    the p99 on their inside; the whole range of two."""
    lo = float(np.percentile(ms, HIST_PERCENTILES[0], method="higher"))
    hi = float(np.percentile(ms, HIST_PERCENTILES[1], method="lower"))
    return (float(ms.min()), float(ms.max())) if lo > hi else (lo, hi)


def _flat(lo: float, hi: float) -> bool:
    return hi - lo <= 1e-6 * max(abs(hi), 1e-9)


def _draw_timeline(ax, s: LatencySeries, index: list[int], color: str) -> None:
    """``s`` against the inference's index, one point each (gid ``<key>-per-inference``), over a band
    where the histogram's bins run."""
    from matplotlib.ticker import MaxNLocator

    ax.plot(index, s.ms, color=color, linewidth=0.7, marker=".", markersize=4 if len(index) <= 200 else 2,
            gid=f"{s.key}-per-inference")
    title = f"{s.title}, per inference"
    if s.ms.size:
        lo, hi = histogram_range(s.ms)
        if _flat(float(s.ms.min()), float(s.ms.max())):  # from 0: a flat line, not a magnified nothing
            ax.set_ylim(0, hi * 1.15 or 1.0)
        elif not _flat(lo, hi):
            ax.axhspan(lo, hi, color=color, alpha=0.1, linewidth=0)
            title += "\nshaded: p1 to p99, the histogram's range"
    ax.set_title(title, fontsize=9, loc="left")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # inference 3, not 2.5
    ax.set_xlabel("inference, in the order run")
    ax.set_ylabel(s.unit)
    ax.grid(True, alpha=0.3)
    ax.set_axisbelow(True)


def _draw_histogram(ax, s: LatencySeries, color: str) -> None:
    """``s``'s histogram between its p1 and p99 (:func:`histogram_range`), or its one figure in words."""
    from matplotlib.ticker import MaxNLocator

    n = s.ms.size
    if not n:
        ax.axis("off")
        ax.text(0.5, 0.5, "no inference was done", ha="center", va="center", transform=ax.transAxes)
        return
    lo, hi = histogram_range(s.ms)
    inside = s.ms[(s.ms >= lo) & (s.ms <= hi)]
    below, above = int((s.ms < lo).sum()), int((s.ms > hi).sum())
    outside = ", ".join(x for x in (f"{below} below p1 (min {s.ms.min():.2f})" if below else "",
                                    f"{above} above p99 (max {s.ms.max():.2f} ms)" if above else "") if x)
    if _flat(lo, hi):  # nothing to bin: one figure, said as such
        words = (f"every inference {s.constant.format(ms=hi)}" if not outside else
                 f"{inside.size} of {n} inferences {s.constant.format(ms=hi)}; outside: {outside} (left)")
        ax.axis("off")
        ax.text(0.5, 0.5, textwrap.fill(words, 42), ha="center", va="center", fontsize=10, fontweight="bold",
                transform=ax.transAxes, gid=f"{s.key}-constant")
        return
    bins = np.histogram_bin_edges(inside, bins=min(40, max(8, int(np.sqrt(inside.size)) * 2)), range=(lo, hi))
    ax.hist(inside, bins=bins, color=color, alpha=0.85, gid=f"{s.key}-histogram")
    p50, p95 = (float(x) for x in np.percentile(s.ms, [50, 95]))  # the summary's figures, of every inference
    ax.axvline(p50, color="C2", linestyle="-", linewidth=1.6)
    ax.axvline(p95, color="C3", linestyle="--", linewidth=1.6)
    # named at the lines themselves, in headroom above the tallest bar: p50 on its left, p95 on its right
    # (room for its name kept there: the p95 of a short run lies past the bins, beside the largest figure)
    top = ax.get_ylim()[1] * 1.15
    ax.set_ylim(0, top)
    left, right = min(lo, p50), max(hi, p95)
    ax.set_xlim(left - 0.03 * (right - left), right + 0.1 * (right - left))
    ax.text(p50, top * 0.985, "p50 ", color="C2", ha="right", va="top", fontsize=8, fontweight="bold")
    ax.text(p95, top * 0.985, " p95", color="C3", ha="left", va="top", fontsize=8, fontweight="bold")
    binned = f"outside the bins: {outside}" if outside else f"all {n} inferences in the bins"
    ax.set_title(textwrap.fill(f"histogram, p1 to p99: mean {s.ms.mean():.2f}, p50 {p50:.2f}, p95 {p95:.2f} ms", 70)
                 + "\n" + textwrap.fill(binned, 70), fontsize=9, loc="left")
    ax.set_xlabel(s.unit)
    ax.set_ylabel("inferences")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no half inferences
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def clock_words(device: dict) -> str:
    """The device's clock as INFO gives it, for a caption; a native build's "clock" is the host's
    nanosecond timer (1000 MHz), not a chip's."""
    if int(device.get("flags", 0)) & spec.Flag.NATIVE:
        return "timed by the host's nanosecond clock"
    return f"clock {int(device.get('cpu_hz', 0)) / 1e6:g} MHz"


def host_outputs(bundle: Bundle, x_int8: np.ndarray) -> np.ndarray:
    """The host TFLite interpreter's int8 outputs for the same inputs (imports TensorFlow)."""
    import warnings

    from tinyface.console import quiet_tensorflow

    quiet_tensorflow(import_now=True)  # the host check imports TensorFlow later
    from tinyface.model.embedder import Embedder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        embedder = Embedder.for_bundle(bundle, "tflite")
    return embedder.run(x_int8).astype(np.int8)


def host_tflm_outputs(bundle: Bundle, x_int8: np.ndarray) -> np.ndarray:
    """The host TFLM interpreter's (pip tflite-micro) int8 outputs: the firmware runs TFLM,
    so a correct device matches these bit for bit (TFLite may differ by 1 LSB)."""
    from tinyface.model.embedder import Embedder

    return Embedder.for_bundle(bundle, "tflm").run(x_int8).astype(np.int8)


def pair_decisions(outputs_int8: np.ndarray, pairs: list, meta) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, same-person decisions) of ``pairs`` ((index a, index b, same) rows) from
    int8 outputs, by model.json's threshold: the build's metric (metrics.pair_scores)."""
    if not len(pairs):
        return np.zeros(0), np.zeros(0, bool)
    emb = dequantize_output(outputs_int8, meta)
    sims = metrics.pair_scores(emb, np.array([p[0] for p in pairs], int), np.array([p[1] for p in pairs], int))
    return sims, sims >= meta.threshold


def summarize(result: BenchResult, inputs: BenchInputs, info: DeviceInfo, bundle: Bundle,
              host_outputs: np.ndarray | None, host_tflm: np.ndarray | None = None) -> dict:
    """Latency, throughput, verification accuracy and host agreement over the images done."""
    n = result.images_done
    summary: dict = {"images": n, "estimated_timings": info.emulated, "threshold": bundle.meta.threshold,
                     **restarts(result.device, result.device_after, result.device_after_s)}
    if info.flags & spec.Flag.INSTRUCTIONS:
        summary["cycles_are"] = INSTRUCTIONS_LABEL
    if n == 0:
        return summary
    cycles = np.array([r["cycles"] for r in result.records], np.float64)
    if info.flags & spec.Flag.INSTRUCTIONS:
        # An instruction-set emulator: each INFER's cycle field is the exact instruction count.
        summary["instructions_per_inference"] = {
            "mean": float(cycles.mean()), "min": int(cycles.min()), "max": int(cycles.max()),
            "spread": float((cycles.max() - cycles.min()) / cycles.mean()) if cycles.mean() else 0.0}
    latency_ms = latencies_ms(result.records, info.cpu_hz)
    summary["latency_ms"] = {"mean": float(latency_ms.mean()), "p50": float(np.percentile(latency_ms, 50)),
                             "p95": float(np.percentile(latency_ms, 95)), "max": float(latency_ms.max())}
    wall = np.array([r["host_wall_us"] for r in result.records], np.float64)
    if wall.any():
        summary["host_wall_ms_mean"] = float(wall.mean() / 1e3)
    summary["throughput_images_per_s"] = n / result.elapsed_s if result.elapsed_s > 0 else 0.0
    summary["elapsed_s"] = result.elapsed_s
    outputs = result.outputs()
    done_pairs = [p for p in inputs.pairs if p[0] < n and p[1] < n]
    summary["pairs"] = len(done_pairs)
    threshold = bundle.meta.threshold
    if done_pairs:
        same = np.array([p[2] for p in done_pairs], bool)
        device_scores, _ = pair_decisions(outputs, done_pairs, bundle.meta)
        summary["device_accuracy"] = metrics.verification(device_scores, same, threshold).accuracy
    if host_outputs is not None:
        host = host_outputs[:n]
        diff = np.abs(host.astype(np.int16) - outputs.astype(np.int16))
        summary["max_lsb_diff"] = int(diff.max()) if diff.size else 0
        summary["identical_outputs"] = float(np.mean(np.all(diff == 0, axis=1)))
        if done_pairs:
            host_scores, _ = pair_decisions(host, done_pairs, bundle.meta)
            summary["host_accuracy"] = metrics.verification(host_scores, same, threshold).accuracy
            summary["identical_decisions"] = metrics.decision_agreement(host_scores, device_scores, threshold)
    if host_tflm is not None:
        diff = np.abs(host_tflm[:n].astype(np.int16) - outputs.astype(np.int16))
        summary["max_lsb_diff_tflm"] = int(diff.max()) if diff.size else 0
        summary["identical_outputs_tflm"] = float(np.mean(np.all(diff == 0, axis=1)))
    return summary
