"""`tinyface profile`: per-layer MACs, parameters and estimated latency on a board."""

from __future__ import annotations

import click

from tinyface.cli.common import (
    board_option,
    input_path,
    isa_board,
    json_option,
    load_settings,
    not_empty,
    plot_option,
    set_option,
)
from tinyface.config import FIRMWARE_KERNELS


@click.command()
@board_option("Board whose cost model prices the layers (boards/*.toml) [default: firmware.board]. "
              "Example: --board esp32s3")
@click.option("--model", "model_path", type=input_path(), default=None, callback=not_empty,
              help="Model bundle folder or .tflite (default: as `tinyface flash`: build/<board>/ if built, "
                   "else the released models/<board>/, then build/esp32/, models/esp32/). "
                   "Example: tinyface profile --board esp32s3 --model models/esp32s3")
@click.option("--kernels", type=click.Choice(FIRMWARE_KERNELS), default=None,
              help="The firmware's int8 kernels to price (and, with --measured, to count): TFLM's with ESP-NN, or "
                   "those generated for this model; each has its own cost model in the board file "
                   "[default: the model's own, model.json kernels, else firmware.kernels]. "
                   "Example: tinyface profile --board esp32c3 --kernels generated")
@click.option("--measured", is_flag=True,
              help="Also MEASURE: count each op's instructions on the ESP32-C3 instruction-set emulator "
                   "(the firmware built for rv32imc under qemu-riscv32; esp32c3 only, the default board then; "
                   "needs TFLM_DIR and the packages of `tinyface emulate --isa`). Example: tinyface profile --measured")
@plot_option("Also draw where the time goes, as a PNG: one bar per layer (index, op, output shape) as long as "
             "its ESTIMATED ms, and with --measured the MEASURED ms beside it; the total in the title. The "
             "table and --json are unchanged. The name must end in .png (else a usage error); its folder is "
             "created. Example: tinyface profile --board esp32 --plot profile.png")
@json_option("tinyface profile --board esp32s3 --json")
@set_option("firmware.kernels=generated")
@click.pass_context
def profile(ctx, board, model_path, kernels, measured, plot_path, as_json, set_items):
    """Per-layer op, output shape, MACs, parameters and ESTIMATED milliseconds on a board.

    Estimates come from the board's cost model for the kernel set (--kernels): cycles per MAC
    calibrated on a published TFLM timing plus a fixed cost per op, or, where the board file
    has one, instructions counted on its instruction set; the source is printed.
    Measure the real figure with `tinyface bench --port PORT` on a flashed board, or, for
    the ESP32-C3, with --measured: instructions per op counted on its instruction set (a
    lower bound on cycles), shown beside the estimate.

    \b
    Examples:
      tinyface profile --board esp32
      tinyface profile --board esp32s3 --model build/run1 --json
      tinyface profile --board esp32c3 --measured
      tinyface profile --board esp32c3 --kernels generated --measured
      tinyface profile --board esp32c3 --measured --plot c3.png
    """

    from tinyface.boards import load_board
    from tinyface.boards.profile import profile_model
    from tinyface.cli.common import settings_for_model
    from tinyface.errors import ModelError
    from tinyface.model.bundle import META_FILE, MODEL_FILE

    if measured:
        board = isa_board("--measured", board, set_items)  # the one board it counts on (as `emulate --isa`)
    overrides = {"firmware": {"board": board, "kernels": kernels}}
    settings = load_settings(ctx, overrides, set_items)
    b = load_board(settings.firmware.board)
    if plot_path:
        from tinyface.boards.plots import check_plot_path

        check_plot_path(plot_path)  # before the model is looked for and the (minutes-long) --measured build
    settings, path = settings_for_model(ctx, settings, model_path, b.name, overrides, set_items)
    kernels = settings.firmware.kernels
    if path.is_dir():
        path = path / MODEL_FILE
    elif path.name == META_FILE:  # its bundle's model, as flash and emulate take it
        path = path.with_name(MODEL_FILE)
    if not path.is_file():
        raise ModelError(f"no model at {path}", hint="pass --model PATH, a bundle folder or a .tflite")
    from tinyface.model.bundle import load_bundle, read_model_file

    # a .tflite with a model.json beside it is a bundle: checked as every command checks one (sha256,
    # the graph against model.json); a lone .tflite is profiled as it is (its graph is still parsed and
    # checked by analyze), --measured needs the bundle's model.json
    bundle = load_bundle(path) if measured or path.with_name(META_FILE).is_file() else None
    if measured:
        from tinyface.console import status
        from tinyface.device.isa_profile import profile_measured

        with status("building the ESP32-C3 (rv32imc) firmware (first time: a minute or two) and counting "
                    "instructions"):
            result = profile_measured(bundle, b, kernels=kernels, arena_margin=settings.firmware.arena_margin)
        _plot(result, plot_path)
        if as_json:
            from tinyface.console import print_json

            print_json(result.to_dict())
            return
        _print_measured(result)
        return
    model_bytes = bundle.model_bytes if bundle else read_model_file(path)
    result = profile_model(model_bytes, b.cost_model_for(kernels), board=b.name, model=str(path),
                           kernels=kernels)
    _plot(result, plot_path)
    if as_json:
        from tinyface.console import print_json

        print_json(result.to_dict())
        return
    _print(result)


def _plot(result, plot_path) -> None:
    """Draw ``result`` to ``plot_path`` (if given) before anything is printed, so that a plot
    that cannot be written is one error line, not a table (or JSON) and then an error."""
    if not plot_path:
        return
    from rich.markup import escape

    from tinyface.boards.plots import profile_plot
    from tinyface.console import info

    info(f"plot: {escape(str(profile_plot(result, plot_path)))}")  # on stderr: stdout stays the table or the JSON


def _print(result) -> None:
    import sys

    from rich.table import Table

    from tinyface.boards.plots import short_path
    from tinyface.console import out_console

    # the title as a line of its own: a table's title wraps at the table's width (the model's path
    # relative to the working folder where it lies under it: the default bundle's is absolute)
    title = (f"{short_path(result.model)} on {result.board} with {result.kernels} kernels (latency ESTIMATED from "
             f"the board's cost model)")
    table = Table()
    for header in ("#", "op", "output shape", "MACs", "params", "est. ms"):
        table.add_column(header, justify="left" if header in ("op", "output shape") else "right")
    for layer in result.layers:
        table.add_row(str(layer.index), layer.op, "x".join(map(str, layer.output_shape)), f"{layer.macs:,}",
                      f"{layer.params:,}", f"{layer.est_ms:.3f}")
    table.add_section()
    table.add_row("", "total", "", f"{result.total_macs:,}", f"{result.total_params:,}", f"{result.total_est_ms:.2f}")
    console = out_console(width=None if sys.stdout.isatty() else 120)
    console.print(title, soft_wrap=True, markup=False)
    console.print(table)
    console.print(f"estimated {result.total_est_ms:.2f} ms = {result.total_est_cycles:,} cycles at "
                  f"{result.cpu_mhz:.0f} MHz; parameters {result.total_param_bytes:,} bytes", soft_wrap=True)
    console.print(f"cost model: {result.cost_source}", style="dim", soft_wrap=True)


def _print_measured(result) -> None:
    import sys

    from rich.table import Table

    from tinyface.boards.plots import short_path
    from tinyface.console import out_console

    title = (f"{short_path(result.model)} on {result.board} with {result.kernels} kernels: instructions MEASURED on "
             f"the instruction-set emulator, latency ESTIMATED by the cost model")
    table = Table()
    for header in ("#", "op", "output shape", "MACs", "instructions", "instr/MAC", "meas. ms", "est. ms", "est/meas"):
        table.add_column(header, justify="left" if header in ("op", "output shape") else "right")
    mhz = result.cpu_mhz * 1e3
    for layer in result.layers:
        meas_ms = layer.instructions * result.stall_factor / mhz
        table.add_row(str(layer.index), layer.op, "x".join(map(str, layer.output_shape)), f"{layer.macs:,}",
                      f"{layer.instructions:,}", f"{layer.instructions / layer.macs:.2f}" if layer.macs else "-",
                      f"{meas_ms:.3f}", f"{layer.est_ms:.3f}",
                      f"{layer.est_ms / meas_ms - 1:+.0%}" if meas_ms else "-")
    table.add_section()
    table.add_row("", "Invoke()", "", f"{sum(x.macs for x in result.layers):,}", f"{result.total_instructions:,}", "",
                  f"{result.measured_ms:.2f}", f"{result.total_est_ms:.2f}",
                  f"{result.total_est_ms / result.measured_ms - 1:+.1%}")
    # out_console: a closed stdout (`| head -1`) ends the command quietly, with 0 as the table without --measured
    console = out_console(width=None if sys.stdout.isatty() else 140)
    console.print(title, soft_wrap=True, markup=False)
    console.print(table)
    console.print(f"MEASURED: {result.total_instructions:,} instructions (a lower bound on cycles) = at least "
                  f"{result.lower_bound_ms:.2f} ms at {result.cpu_mhz:.0f} MHz; meas. ms = instructions x stall factor "
                  f"{result.stall_factor:g} (cycles per instruction assumed, docs/boards.md) = "
                  f"{result.measured_ms:.2f} ms",
                  soft_wrap=True)
    console.print(f"ESTIMATED: {result.total_est_ms:.2f} ms by the cost model: {result.cost_source}", soft_wrap=True)
