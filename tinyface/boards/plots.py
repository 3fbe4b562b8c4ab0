"""PNG plots for the commands that time a model: where the time goes layer by layer
(`tinyface profile --plot`); and what every plot shares (`bench --plot`, the build's and
`evaluate`'s reports): the path check (and the ``--plot`` options' name rule), pyplot on the
Agg backend under matplotlib's default style (the same PNG whatever $MPLBACKEND or a user's
matplotlibrc says), the atomic write, the model's name for a title. matplotlib is imported inside
the functions that draw, so that a command run without a plot never loads it.

An estimate is never drawn as a measurement: every bar, title and caption says which it is
(ESTIMATED by the cost model, MEASURED instructions on the instruction-set emulator).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from tinyface.errors import OutputError
from tinyface.fsutil import atomic_path, check_writable

PLOT_SUFFIX = ".png"
_CAPTION_CHARS = 130  # a caption's line length at the plots' width
DISAGREE_PCT = 10  # profile_plot marks a layer whose estimate is this far (%) from its measurement


def plot_name_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with ``path``'s name for a PNG plot (it must end in .png), or None: the one
    rule that :func:`check_plot_path` and the ``--plot`` options (tinyface.cli.common.plot_option) apply."""
    path = Path(path)
    if path.suffix.lower() != PLOT_SUFFIX:
        # the name less a .png already in it ("latency.png.txt", a bare ".png"): the example ends in one .png
        stem = path.stem[:-len(PLOT_SUFFIX)] if path.stem.lower().endswith(PLOT_SUFFIX) else path.stem
        example = f"{stem or 'plot'}{PLOT_SUFFIX}"
        return f"{path}: the plot is a PNG, so its name must end in {PLOT_SUFFIX} (e.g. {example})"
    return None


def check_plot_path(path: str | os.PathLike, what: str = "--plot") -> Path:
    """Fail early, before minutes of work, if the PNG ``path`` could not be written later: it must
    not be a folder, its name must end in .png (the command line has refused that already, by
    tinyface.cli.common.plot_option), and its folder must exist or be creatable (no folder is made
    here, so a command refused for another reason leaves none behind).

    Args:
        what: how the user named it, for the message.

    Raises:
        OutputError: any of those (one line, exit 14, as a bad --out).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {what} {path}: it is a folder", hint=f"give {what} a file name, e.g. plot.png")
    if problem := plot_name_problem(path):
        raise OutputError(f"cannot write {what} {problem}")
    return check_writable(path, what, create=False)


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write the matplotlib figure ``fig`` to ``path`` as an opaque PNG on white, atomically (creating
    its folder), and close it. ``fig`` was made after :func:`pyplot` set matplotlib's default style, so
    a user's matplotlibrc (``savefig.transparent``, ``savefig.facecolor``, ``savefig.bbox``...)
    changes nothing; the colours are given here all the same.

    Raises:
        OutputError: the file or its folder cannot be written.
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", facecolor="white", edgecolor="white",
                        transparent=False)
    finally:
        plt.close(fig)
    return Path(path)


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display needed), with matplotlib's
    default style: every plot is drawn the same whatever the user's matplotlibrc says (a
    ``savefig.transparent``, a dark style, ``text.usetex`` without LaTeX) or ``$MPLBACKEND`` names.
    Sets both for the whole process: call it before any figure is made."""
    import sys

    if "matplotlib" not in sys.modules:
        from tinyface.config import library_variable

        # matplotlib reads $MPLBACKEND as it is imported, and a name it does not know fails the import
        # itself (was: `MPLBACKEND=nonsense tinyface profile --plot` an internal error, exit 70). Agg
        # for the import alone: the environment is put back as it was, for the programs tinyface runs after
        with library_variable("MPLBACKEND", "agg"):
            import matplotlib
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use("default")  # the defaults, less the backend (the style leaves it alone)
    return plt


def short_path(path: str | os.PathLike) -> str:
    """``path`` as a caption gives it: relative to the working folder where it lies under it
    (``models/esp32/model.tflite``), else under ``~`` where it lies in the home folder, else as it is."""
    path = Path(path)
    try:
        absolute = path.resolve()
    except (OSError, RuntimeError):  # a loop of links: as it is
        return str(path)
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~")):
        try:
            rel = absolute.relative_to(base.resolve())
        except (ValueError, OSError, RuntimeError):
            continue
        return str(Path(prefix) / rel) if prefix else str(rel)
    return str(path)


def model_title(model: str | os.PathLike, name: str | None = None) -> str:
    """The model as a plot's title names it: ``name`` if given (model.json's), else the name in the
    model.json of ``model``'s bundle (``model`` the bundle folder, its .tflite or its model.json),
    else the bundle folder's name; a lone .tflite (no model.json beside it) by its file name."""
    from tinyface.model.bundle import META_FILE, MODEL_FILE

    if name:
        return name
    path = Path(model)
    folder = path if path.suffix.lower() not in (".tflite", ".json") else path.parent
    meta = folder / META_FILE
    if meta.is_file():
        from tinyface.errors import ModelError
        from tinyface.model.bundle import read_meta

        try:
            return read_meta(meta)[0].name
        except ModelError:  # the command checked its bundle already: a title needs no second error
            pass
        return folder.name or str(path)
    if path.suffix.lower() == ".tflite" and path.name != MODEL_FILE:
        return path.name
    return folder.name or str(path)


def caption(fig, lines: list[str]) -> None:
    """Small grey text under the axes: what the figures are and where they come from, wrapped."""
    wrapped = "\n".join(textwrap.fill(line, _CAPTION_CHARS) for line in lines if line)
    fig.text(0.01, 0.0, wrapped, ha="left", va="top", fontsize=7.5, color="0.3", wrap=False)


def profile_plot(result, path: str | os.PathLike) -> Path:
    """``path``: :func:`profile_figure` of ``result`` as a PNG.

    Raises:
        OutputError: ``path`` cannot be written.
    """
    return save_png(profile_figure(result), path)


def profile_figure(result):
    """A horizontal bar chart of where ``result``'s time goes, one bar per layer (labelled index, op,
    output shape) as long as its ESTIMATED ms; for a measured profile
    (:class:`tinyface.device.isa_profile.MeasuredModelProfile`) the MEASURED ms (instructions x the
    board's stall factor / clock) beside each estimate, so that where they disagree is seen. The title
    names the model (:func:`model_title`), the caption its path.

    Args:
        result: a :class:`tinyface.boards.profile.ModelProfile`, or a measured profile (layers
            with ``instructions``; ``stall_factor``, ``total_instructions``, ``measured_ms``).

    Returns:
        The matplotlib Figure (:func:`save_png` writes and closes it).
    """
    plt = pyplot()

    measured = hasattr(result, "total_instructions")
    layers = list(result.layers)
    shapes = ["x".join(map(str, layer.output_shape)) for layer in layers]
    # padded to common widths: in a monospace font the tick labels then read as three columns
    w_index, w_op, w_shape = (max((len(str(v)) for v in col), default=0)
                              for col in ([x.index for x in layers], [x.op for x in layers], shapes))
    labels = [f"{layer.index:>{w_index}}  {layer.op:<{w_op}}  {shape:<{w_shape}}"
              for layer, shape in zip(layers, shapes, strict=True)]
    est = [layer.est_ms for layer in layers]
    per_ms = result.cpu_mhz * 1e3  # cycles per ms
    meas = [layer.instructions * result.stall_factor / per_ms for layer in layers] if measured else []
    rows = max(len(layers), 1)
    bar_in = 0.42 if measured else 0.3  # inches per layer: two bars need more room than one
    fig, ax = plt.subplots(figsize=(10, 1.6 + bar_in * rows))
    ys = list(range(len(layers)))
    widest = max(est + meas + [1e-9])
    if measured:
        height = 0.4
        ax.barh([y - height / 2 for y in ys], est, height, color="C0", label="ESTIMATED ms (the board's cost model)")
        ax.barh([y + height / 2 for y in ys], meas, height, color="C1",
                label=f"MEASURED ms (emulator's instructions x {result.stall_factor:g} / {result.cpu_mhz:.0f} MHz)")
        for y, e, m in zip(ys, est, meas, strict=True):
            ax.text(e + widest * 0.01, y - height / 2, f"{e:.2f}", va="center", fontsize=6.5, color="C0")
            # the estimate against the measurement, as the table's est/meas
            off = round(100 * (e / m - 1)) if m else None
            ax.text(m + widest * 0.01, y + height / 2, f"{m:.2f}" + ("" if off is None else f"  est. {off:+d}%"),
                    va="center", fontsize=6.5, color="C1" if off is None or abs(off) < DISAGREE_PCT else "C3",
                    fontweight="normal" if off is None or abs(off) < DISAGREE_PCT else "bold")
        # above the axes: inside, it would cover the bars or the figures at their ends
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, fontsize=8, frameon=False,
                  borderaxespad=0.2)
    else:
        ax.barh(ys, est, 0.7, color="C0", label="ESTIMATED ms (the board's cost model)")
        total = result.total_est_ms or 1.0
        for y, e in zip(ys, est, strict=True):
            ax.text(e + widest * 0.01, y, f"{e:.2f} ms ({e / total:.1%})", va="center", fontsize=6.5, color="0.2")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7.5, family="monospace")
    ax.set_ylim(len(layers) - 0.5, -0.5)  # layer 0 at the top, in the order the model runs them
    ax.set_xlim(0, widest * 1.22)  # room for the figures at the bars' ends
    ax.set_xlabel(f"milliseconds per inference on {result.board} at {result.cpu_mhz:.0f} MHz")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    # the model by its name: its path (absolute where `profile` found the released one) goes in the caption
    head = f"{model_title(result.model)} on {result.board} with {result.kernels} kernels"
    if measured:
        ax.set_title(f"{head}\nMEASURED: {result.total_instructions:,} instructions in Invoke() on the instruction-set "
                     f"emulator x stall factor {result.stall_factor:g} = {result.measured_ms:.2f} ms\n"
                     f"ESTIMATED: {result.total_est_ms:.2f} ms by the board's cost model"
                     f"{'' if not result.measured_ms else f' ({result.total_est_ms / result.measured_ms - 1:+.1%})'}"
                     f"; red: layers where they differ by {DISAGREE_PCT}% or more",
                     fontsize=9.5, loc="left", pad=22)
        notes = [f"MEASURED: {result.total_instructions:,} instructions in Invoke(), counted on the emulator: a lower "
                 f"bound on cycles, at least {result.lower_bound_ms:.2f} ms at {result.cpu_mhz:.0f} MHz. Measured ms = "
                 f"instructions x stall factor {result.stall_factor:g} "
                 f"(cycles per instruction assumed, docs/boards.md); "
                 f"the layers' sum leaves out Invoke()'s own instructions.",
                 f"ESTIMATED: {result.total_est_ms:.2f} ms by the cost model: {result.cost_source}",
                 f"model {short_path(result.model)}"]
    else:
        ax.set_title(f"{head}\nlatency ESTIMATED by the board's cost model (not measured): total "
                     f"{result.total_est_ms:.2f} ms", fontsize=9.5, loc="left")
        notes = [f"ESTIMATED: {result.total_est_ms:.2f} ms = {result.total_est_cycles:,} cycles at "
                 f"{result.cpu_mhz:.0f} MHz; {result.total_macs:,} MACs. Cost model: {result.cost_source}.",
                 "Measure it with `tinyface bench --port PORT` on a flashed board.",
                 f"model {short_path(result.model)}"]
    fig.tight_layout()
    caption(fig, notes)
    return fig
