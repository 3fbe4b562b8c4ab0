"""`tinyface emulate`: an emulated board on a pseudo-terminal."""

from __future__ import annotations

import click

from tinyface.cli.common import board_option, input_path, isa_board, json_option, load_settings, not_empty, set_option
from tinyface.config import FIRMWARE_KERNELS


@click.command()
@board_option("Board to emulate (boards/*.toml): name, clock, cost model "
              "[default: firmware.board; esp32c3 with --isa]. Example: --board esp32s3")
@click.option("--model", "model_path", type=input_path(), default=None, callback=not_empty,
              help="Model bundle folder or .tflite (default: as `tinyface flash`: build/<board>/ if built, "
                   "else the released models/<board>/, then build/esp32/, models/esp32/). "
                   "Example: tinyface emulate --board esp32s3 --model models/esp32s3")
@click.option("--baud", type=click.IntRange(min=0, max=2**32 - 1), default=0, show_default=True,
              help="Throttle the link to this UART speed (baud/10 bytes per second each way); 0 = as fast as the pty. "
                   "Use the board's baud (esp32: 921600) for realistic transfer times. Example: --baud 921600")
@click.option("--once", is_flag=True,
              help="Exit when the first host that connects closes the port. Example: tinyface emulate --once")
@click.option("--native", is_flag=True,
              help="Serve with the natively built firmware (needs TFLM_DIR) instead of the Python emulation. "
                   "Example: tinyface emulate --native --once")
@click.option("--isa", is_flag=True,
              help="Serve with the firmware built for the ESP32-C3's instruction set (rv32imc) and run under "
                   "qemu-riscv32 (needs TFLM_DIR=esp-tflite-micro and the Debian packages gcc-riscv64-unknown-elf "
                   "picolibc-riscv64-unknown-elf qemu-user); cycles are instructions (a lower bound on cycles). "
                   "Example: tinyface emulate --isa --once")
@click.option("--kernels", type=click.Choice(FIRMWARE_KERNELS), default=None,
              help="With --native or --isa: the firmware's int8 kernels, TFLM's or those generated for this model "
                   "(bit-exact with TFLM's reference kernels); without: the kernel set whose latency the estimate "
                   "prices (the board's cost model for it) "
                   "[default: the model's own, model.json kernels, else firmware.kernels]. "
                   "Example: --native --kernels generated")
@click.option("--drop-reply", "drop_replies", type=click.IntRange(min=1), multiple=True, metavar="N",
              help="TEST ONLY (fault injection): do not send the N-th reply (counted from 1). Repeatable. "
                   "Example: --drop-reply 3")
@click.option("--corrupt-reply", "corrupt_replies", type=click.IntRange(min=1), multiple=True, metavar="N",
              help="TEST ONLY (fault injection): send the N-th reply with a broken CRC. Repeatable. "
                   "Example: --corrupt-reply 2")
@json_option("tinyface emulate --json")
@set_option("firmware.arena_margin=0.2")
@click.pass_context
def emulate(ctx, board, model_path, baud, once, native, isa, kernels, drop_replies, corrupt_replies, set_items,
            as_json):
    """Run an emulated board on a pseudo-terminal and print its port path on stdout
    (with --json, one JSON line: port, emulator, board, model, model_sha256, kernels, baud).

    The emulation answers every protocol message (docs/protocol.md) exactly as the firmware
    must, running the int8 model in the real TFLM kernels. Reported latency is ESTIMATED
    from the board's cost model (the same figure as `tinyface profile`); the host wall time
    of each invoke is reported next to it. Runs until Ctrl-C (or, with --once, until the
    first host disconnects). A model that does not fit the board's flash or SRAM is refused
    as `tinyface flash` refuses it (exit 10): an emulated board runs only what the real one can.

    \b
    Examples:
      tinyface emulate                         # prints e.g. /dev/pts/3
      tinyface bench --port /dev/pts/3         # in another terminal
      tinyface emulate --baud 921600 --once &  # realistic link speed, one session
      tinyface emulate --isa                   # the ESP32-C3 firmware on its instruction set (QEMU)
      tinyface emulate --native --kernels generated
      tinyface emulate --json                  # first line: {"port": "/dev/pts/3", "emulator": "emulator", ...}
      exec 3< <(tinyface emulate --once); read -r PORT <&3   # in a bash script: the port in $PORT
    """
    import sys
    import threading

    from tinyface.boards import load_board
    from tinyface.cli.common import settings_for_model
    from tinyface.console import info
    from tinyface.device.flash import check_fits
    from tinyface.model.bundle import load_bundle

    if native and isa:
        raise click.UsageError("--native and --isa are two different builds; choose one")
    if (isa or native) and (drop_replies or corrupt_replies):
        raise click.UsageError("fault injection (--drop-reply, --corrupt-reply) is an option of the Python emulation, "
                               "not of --native or --isa")
    storage_dir = None
    if native:
        from tinyface import config

        storage_dir = config.native_storage_dir()  # a bad $TINYFACE_NVS_DIR: one line now, not after the build
        if storage_dir is not None:
            _hold_gallery_folder(ctx, storage_dir)
    if isa:
        board = isa_board("--isa", board, set_items)  # the one board the instruction-set build runs
    overrides = {"firmware": {"board": board, "kernels": kernels}}
    settings = load_settings(ctx, overrides, set_items)
    b = load_board(board or settings.firmware.board)
    settings, path = settings_for_model(ctx, settings, model_path, b.name, overrides, set_items)
    kernels = settings.firmware.kernels
    bundle = load_bundle(path).identifying_at(settings.firmware.identify_threshold)
    # an emulated board runs only what the real one can: flash's budget check (BudgetError, exit 10)
    check_fits(bundle, b, arena_margin=settings.firmware.arena_margin, kernels=kernels)
    # "emulator", not "kind": a failure's JSON object is the one with "kind" (and "error"; docs/cli.md)
    fields = {"emulator": "isa" if isa else "native" if native else "emulator", "board": b.name,
              "model": str(bundle.model_path), "model_sha256": bundle.model_hash, "kernels": kernels, "baud": baud}

    stop = threading.Event()

    def announce(port: str, what: str) -> None:
        _stop_on_signals(stop)  # serving from here on: Ctrl-C and SIGTERM end it cleanly
        _announce(sys, info, port, what, baud, {"port": port, **fields} if as_json else None)
    if isa:
        from tinyface.device.isa import COUNT_LABEL, run_isa_emulator

        rc = run_isa_emulator(bundle, b, baud=baud, once=once, firmware_kernels=kernels, stop=stop,
                              arena_margin=settings.firmware.arena_margin,
                              on_ready=lambda path, _: announce(path, f"{b.name} firmware on its instruction "
                                                                f"set (qemu-riscv32), cycles = {COUNT_LABEL}"))
        _firmware_ended(rc, f"{b.name} firmware under qemu-riscv32")
        return
    if native:
        from tinyface.device.native import run_native_emulator

        rc = run_native_emulator(bundle, b, baud=baud, once=once, kernels=kernels, stop=stop, storage_dir=storage_dir,
                                 arena_margin=settings.firmware.arena_margin,
                                 on_ready=lambda path, _: announce(path, f"native firmware build, {b.name}"))
        _firmware_ended(rc, f"native {b.name} firmware")
        return
    from tinyface.device.emulator import Faults, run_emulator

    faults = Faults(frozenset(drop_replies), frozenset(corrupt_replies))

    cost = b.cost_model_for(kernels)

    def ready(path, emu):
        what = (f"emulated {b.name}: {bundle.meta.name} {emu.input_shape} -> {emu.output_size}, "
                f"sha256 {bundle.model_hash[:16]}, arena {emu.arena_used_bytes:,} B; latency ESTIMATED "
                f"{emu.profile.total_est_ms:.2f} ms ({cost.source})")
        if faults.drop_replies or faults.corrupt_replies:
            what += f"; FAULT INJECTION drop={sorted(faults.drop_replies)} corrupt={sorted(faults.corrupt_replies)}"
        announce(path, what)

    emu = run_emulator(bundle, b.name, cost, baud=baud, once=once, faults=faults, on_ready=ready, stop=stop)
    s = emu.stats
    wall_ms = s.host_wall_us_total / max(s.invokes, 1) / 1e3
    info(f"served {s.requests} request{'s' * (s.requests != 1)} ({s.invokes} inference{'s' * (s.invokes != 1)}): "
         f"estimated {emu.profile.total_est_ms:.2f} ms per "
         f"inference on {b.name}, host wall time {wall_ms:.2f} ms; errors {s.errors or 'none'}")


EMULATE_LOCK = ".tinyface-emulate.lock"


def _hold_gallery_folder(ctx, storage_dir: str) -> None:
    """Hold the native firmware's gallery folder ($TINYFACE_NVS_DIR) until the command ends: each
    firmware keeps the gallery in memory and saves all of it on every ENROLL or DELETE, so two
    serving one folder would each lose the other's people at the next start (the last save wins).
    A second `emulate` on the folder is refused here, before anything is built or served.

    Raises:
        OutputError: another `tinyface emulate` holds the folder (its pid); it cannot be made or written.
    """
    from tinyface.device.native import make_gallery_folder
    from tinyface.fsutil import exclusive_folder

    make_gallery_folder(storage_dir, hint="set TINYFACE_NVS_DIR to a folder you can write, or unset it")
    ctx.with_resource(exclusive_folder(storage_dir, what="the gallery folder ($TINYFACE_NVS_DIR)",
                                       command="tinyface emulate", lock_name=EMULATE_LOCK))


def _stop_on_signals(stop) -> None:
    """Once serving: Ctrl-C, SIGTERM (kill, timeout, a test's finalizer) and SIGHUP set ``stop``, which ends
    serving cleanly with the summary; a second one while it stops raises KeyboardInterrupt. Before
    that (loading the model, building firmware) Ctrl-C interrupts as in any command. A SIGINT
    ignored from the start (a background job of a script) stays ignored, as does an ignored SIGTERM.
    The second signal ends it as in any command: 130 after Ctrl-C, 143 after SIGTERM."""
    import signal

    from tinyface import console

    def on_signal(signum, frame):
        if stop.is_set():
            console.note_interrupt(signum)
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: its terminal closed, as SIGTERM
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, on_signal)


def _firmware_ended(rc: int, what: str) -> None:
    """One line when the firmware process ended as it should (stopped by Ctrl-C or SIGTERM, or
    by itself with --once); a DeviceError when it ended on its own otherwise (a crash, a failed
    start)."""
    import signal

    from tinyface.console import info
    from tinyface.errors import DeviceError

    if rc in (0, -signal.SIGINT, -signal.SIGTERM):
        info(f"{what} stopped")
        return
    try:
        ended = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"status {rc}"
    except ValueError:  # a real-time signal has no name
        ended = f"signal {-rc}"
    raise DeviceError(f"the {what} ended on its own ({ended})")


def _announce(sys, info, path: str, what: str, baud: int, as_json: dict | None = None) -> None:
    """The port on stdout (a path, or with --json one JSON line), what serves it on stderr."""
    from tinyface.console import print_json

    if as_json is not None:
        print_json(as_json, indent=None)  # one line, for scripts that read the first line
    else:
        sys.stdout.write(path + "\n")
    sys.stdout.flush()
    info(f"{what}; link {'unthrottled' if not baud else f'{baud} baud'}; Ctrl-C to stop")
