"""`tinyface boards`: the supported boards and their budgets (read from boards/*.toml)."""

from __future__ import annotations

import click

from tinyface.cli.common import json_option, known_board


@click.command()
@click.argument("name", required=False, callback=known_board)
@json_option("tinyface boards esp32s3 --json")
def boards(name, as_json):
    """List the supported boards: the chip (chip.target), PlatformIO board, CPU clock, flash,
    SRAM for the arena, PSRAM, which ESP-NN kernels the chip runs, the MAC budget of the model
    preset (with ESP-NN's kernels, and with the kernels generated for the model where the board
    has a measured figure for them, firmware.kernels = "generated"), and the calibrated cost model.

    Give NAME to show one board. Boards are data (docs/boards.md): a board of your own is a
    file in a folder you name with the global option --boards-dir (or $TINYFACE_BOARDS_DIR).

    \b
    Examples:
      tinyface boards esp32s3 --json
      tinyface --boards-dir ~/my-boards boards
    """
    from tinyface.boards import list_boards, load_board
    from tinyface.console import print_json

    selected = [load_board(name)] if name else list_boards()
    if as_json:
        # one board named: its object; none: the list of every board
        print_json(selected[0].to_dict() if name else [b.to_dict() for b in selected])
        return
    _print_table(selected)


def _size(n: int) -> str:
    if n == 0:
        return "-"
    return f"{n / 1024:.0f}K" if n < 1 << 20 else f"{n / (1 << 20):.0f}M"


def _psram(board) -> str:
    """The board's PSRAM, and the heap's share where the chip maps less ("8M (4M heap)")."""
    size = _size(board.psram_bytes)
    return size if board.psram_heap_bytes == board.psram_bytes else f"{size} ({_size(board.psram_heap_bytes)} heap)"


def _print_table(selected) -> None:
    import sys

    from rich.table import Table

    from tinyface.boards import ESP_NN_KERNELS
    from tinyface.console import out_console

    table = Table(title="tinyface boards (sizes in bytes: K = KiB, M = MiB)", title_justify="left")
    headers = ("board", "chip", "PlatformIO board", "MHz", "flash", "SRAM arena", "PSRAM", "ESP-NN", "MAC budget",
               "generated", "ms/M MAC")
    for header in headers:
        left = header in ("board", "chip", "PlatformIO board", "ESP-NN")
        table.add_column(header, justify="left" if left else "right")
    for b in selected:
        cm = b.cost_model
        table.add_row(
            b.name, b.target, b.pio_board, f"{b.cpu_mhz:.0f}", _size(b.flash_bytes), _size(b.sram_arena_bytes),
            _psram(b), ESP_NN_KERNELS[b.esp_nn_kernels] if b.esp_nn else "no", f"{b.mac_budget / 1e6:.1f}M",
            f"{b.mac_budget_generated / 1e6:.1f}M" if b.mac_budget_generated else "-",
            f"{cm.estimate_ms('CONV_2D_1x1', 1_000_000) - cm.overhead_us_per_op / 1e3:.1f}",
        )
    # Piped output keeps full rows instead of wrapping at 80 columns.
    console = out_console(width=None if sys.stdout.isatty() else 144)
    console.print(table)
    console.print("MAC budget: with ESP-NN's kernels; generated: with the kernels generated for the model "
                  "(firmware.kernels = \"generated\"), where measured (-: none, the ESP-NN budget applies)",
                  style="dim")
    console.print("ms/M MAC: estimated milliseconds per million MACs (the board's cost model, ESP-NN), "
                  "from:", style="dim")
    for b in selected:  # the source of the estimate the table shows (a measured one where the board has it)
        console.print(f"  {b.name} ({b.title}): {b.cost_model.source}", style="dim", soft_wrap=True)
    for b in selected:
        if b.measured_generated:
            console.print(f"  {b.cost_model_for('generated').source}", style="dim", soft_wrap=True)
