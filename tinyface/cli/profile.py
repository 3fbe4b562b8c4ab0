"""`tinyface profile`: per-layer MACs, parameters and estimated latency on a board."""

from __future__ import annotations

import click

from tinyface.cli.common import json_option


@click.command()
@click.option("--board", default="esp32", show_default=True, help="Board whose cost model prices the layers (boards/*.toml).")
@click.option("--model", "model_path", type=click.Path(), default=None,
              help="Model bundle folder or .tflite (default: as `tinyface flash`: build/<board>/ if built, else the released models/<board>/, then build/esp32/, models/esp32/).")
@json_option
def profile(board, model_path, as_json):
    """Per-layer op, output shape, MACs, parameters and ESTIMATED milliseconds on a board.

    Estimates come from the board's cost model (cycles per MAC calibrated on a published
    TFLM timing, plus a fixed cost per op); the source of the coefficients is printed.
    Measure the real figure with `tinyface bench --port PORT` on a flashed board.

    \b
    Examples:
      tinyface profile --board esp32
      tinyface profile --board esp32s3 --model build/run1 --json
    """
    from pathlib import Path

    from tinyface.boards import load_board
    from tinyface.errors import ModelError
    from tinyface.bundle import resolve_model
    from tinyface.profile import profile_model

    b = load_board(board)
    path = resolve_model(model_path, b.name)
    if path.is_dir():
        path = path / "model.tflite"
    if not path.is_file():
        raise ModelError(f"no model at {path}", hint="pass --model PATH (a bundle folder or a .tflite)")
    result = profile_model(path.read_bytes(), b.cost_model, board=b.name, model=str(path))
    if as_json:
        from tinyface.console import print_json

        print_json(result.to_dict())
        return
    _print(result)


def _print(result) -> None:
    import sys

    from tinyface.console import out_console
    from rich.table import Table

    table = Table(title=f"{result.model} on {result.board} (latency ESTIMATED from the board's cost model)",
                  title_justify="left")
    for header in ("#", "op", "output shape", "MACs", "params", "est. ms"):
        table.add_column(header, justify="left" if header in ("op", "output shape") else "right")
    for layer in result.layers:
        table.add_row(str(layer.index), layer.op, "x".join(map(str, layer.output_shape)), f"{layer.macs:,}",
                      f"{layer.params:,}", f"{layer.est_ms:.3f}")
    table.add_section()
    table.add_row("", "total", "", f"{result.total_macs:,}", f"{result.total_params:,}", f"{result.total_est_ms:.2f}")
    console = out_console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print(f"estimated {result.total_est_ms:.2f} ms = {result.total_est_cycles:,} cycles at "
                  f"{result.cpu_mhz:.0f} MHz; parameters {result.total_param_bytes:,} bytes", soft_wrap=True)
    console.print(f"cost model: {result.cost_source}", style="dim", soft_wrap=True)
