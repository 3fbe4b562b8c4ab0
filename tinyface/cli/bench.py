"""`tinyface bench`: benchmark a board (or the emulator) over serial."""

from __future__ import annotations

import click

from tinyface.cli.common import (
    first_answer,
    input_path,
    json_option,
    load_settings,
    not_empty,
    plot_option,
    port_options,
    set_option,
    setting_type,
)
from tinyface.errors import TinyfaceError


@click.command()
@port_options
@click.option("--images", type=setting_type("bench.images"), default=None,
              help="Held-out pairsDevTest images to stream: at least 2 (one pair), at most the 1,549 its pairs hold "
                   "(a larger number streams those 1,549, and a note says so) [default: bench.images = 1000]. "
                   "Example: --images 200")
@click.option("--model", "model_path", type=input_path(), default=None, callback=not_empty,
              help="The model the board runs (bundle folder or .tflite) [default: as `tinyface flash`: "
                   "build/<board>/ if built, else models/<board>/, then build/esp32/, models/esp32/]. "
                   "Example: --model build/esp32")
@click.option("--data", "data_dir", type=input_path(), default=None, callback=not_empty,
              help="LFW folder with images/ and pairsDevTest.txt [default: data.dir or $TINYFACE_DATA]. "
                   "Example: --data /data/lfw")
@click.option("--out", "out_path", type=click.Path(), default=None, callback=not_empty,
              help="Write results (JSON) here as they come; a lost link keeps what was measured. "
                   "Example: --out results.json")
@plot_option("Also draw the latencies as a PNG: each inference's in the order run (warm-up, throttling, a stall "
             "show there) beside their histogram, binned from p1 to p99 (how many fall outside is said), p50 and "
             "p95 marked; the board's cycle counter, ESTIMATED on the emulator, whose one figure is said in words "
             "and whose host wall time is drawn too. A lost link still draws what was measured. The name must end "
             "in .png (else a usage error); its folder is created. Example: --plot latency.png")
@click.option("--pipeline/--no-pipeline", default=True, show_default=True,
              help="Keep two requests in flight so the next image streams in while the board computes. "
                   "Example: tinyface bench --port auto --no-pipeline")
@click.option("--host-check/--no-host-check", default=True, show_default=True,
              help="Compare with the host TFLite int8 model (LSB difference, identical decisions). "
                   "Example: tinyface bench --port auto --no-host-check")
@json_option("tinyface bench --port auto --json")
@set_option("bench.images=200")
@click.pass_context
def bench(ctx, port, board, images, model_path, data_dir, out_path, plot_path, baud, timeout_s, retries, pipeline,
          host_check, as_json, set_items):
    """Benchmark a board over the serial protocol (docs/protocol.md).

    Checks that the board speaks this protocol version and runs the same model (sha256)
    as the local bundle, streams held-out LFW pairsDevTest faces and prints latency
    (mean/p50/p95/max from the board's cycle counter; ESTIMATED on the emulator),
    throughput, on-device verification accuracy and agreement with the host TFLite int8
    model (largest LSB difference, share of identical same/different decisions).

    \b
    Examples:
      tinyface bench --port /dev/ttyUSB0 --images 1000 --out results.json --plot latency.png
      tinyface bench --port auto --board esp32s3 --json
      exec 3< <(tinyface emulate --once); read -r PORT <&3   # an emulated board: its port in $PORT
      tinyface bench --port "$PORT" --images 200
    """
    from tinyface.console import quiet_tensorflow

    quiet_tensorflow()  # the host check imports TensorFlow later
    from tinyface.boards import load_board
    from tinyface.console import info, print_json, progress_bar, step
    from tinyface.device import bench as api
    from tinyface.device.ports import resolve_port
    from tinyface.model.bundle import load_bundle, resolve_model
    from tinyface.protocol.client import Client, check_serial_url, open_serial

    check_serial_url(port)  # a socket:// URL without its port: one line before anything is loaded
    settings = load_settings(ctx, {"bench": {"images": images, "timeout_s": timeout_s, "retries": retries},
                                   "data": {"dir": data_dir}, "firmware": {"board": board}}, set_items)
    b = load_board(settings.firmware.board)
    bundle = load_bundle(resolve_model(model_path, b.name))
    if out_path:
        from tinyface.fsutil import check_writable

        check_writable(out_path, "--out")  # before the port is opened and the board is busy
    if plot_path:
        from tinyface.boards.plots import check_plot_path

        check_plot_path(plot_path)  # as --out: before anything is streamed
    pairs = api.bench_pairs_file(settings)  # a --data folder that is not LFW: one line before the port is opened
    available = api.images_available(pairs)
    port = resolve_port(port, b, check=False)  # auto: the one board connected; a path: open_serial's
    baud = baud or b.baud
    transport = open_serial(port, baud, release_rts_dtr=b.release_rts_dtr)
    try:
        client = Client(transport, timeout_s=settings.bench.timeout_s, retries=settings.bench.retries, baud=baud,
                        port=port)
        with first_answer(port):
            device = api.handshake(client, bundle)
        kind = ("emulated " if device.emulated else "native build " if device.native
                else "instruction-set emulator, " if device.instructions else "")
        info(f"{port}: {kind}{device.board} firmware {device.firmware_version}, model {device.model_sha256[:16]} "
             f"matches {bundle.model_path}")
        if bundle.meta.smoke_test:  # was: said by flash alone, not where its accuracy is printed
            from tinyface.model.bundle import smoke_test_warning

            info(f"note: {smoke_test_warning(bundle.model_path.parent)}")
        if settings.bench.images > available:  # was capped without a word: --images 5000 ran 1,549
            # after the port and the handshake: a port that fails is still its one line
            info(f"note: pairsDevTest.txt holds {available:,} distinct images, fewer than the "
                 f"{settings.bench.images:,} asked for: benchmarking those {available:,}")
        # the total is what will be aligned: --images, or fewer where pairsDevTest holds fewer
        with progress_bar("aligning faces", None) as advance:
            inputs = api.prepare_inputs(bundle, settings.bench.images, settings, progress=advance, pairs=pairs,
                                        on_total=advance.set_total)
        # the board the figures are of: the one the device says it is (INFO), whatever --board chose
        # the model and the baud by (a bench of `emulate --isa` without --board is the esp32c3's)
        result = api.run_bench(client, bundle, inputs, port=port, board=device.board or b.name, out=out_path,
                               steps=step, pipeline=pipeline, host_check=host_check, plot=plot_path)
    except TinyfaceError as exc:  # a run cut short: with --json, what it measured is in the error object
        if getattr(exc, "bench_result", None) is not None:
            exc.json_fields["result"] = _json_result(exc.bench_result)
        raise
    finally:
        transport.close()
    if as_json:
        print_json(_json_result(result))
    else:
        _print(result, out_path, plot_path)


def _json_result(result) -> dict:
    """``result`` as --json prints it: a success's document, and a failure's "result" (the same keys).
    Without the per-image records, pairs and paths (--out's file has them), nor ``error``: a
    success's JSON never has that key, a failure's object always has it (docs/cli.md)."""
    d = result.to_dict()
    for key in ("records", "pairs", "paths", "error"):
        d.pop(key)
    return d


def _print(result, out_path, plot_path=None) -> None:
    import click as _click

    from tinyface.protocol import spec

    s = result.summary
    est = " (ESTIMATED by the emulator's cost model)" if s.get("estimated_timings") else ""
    if int(result.device.get("flags", 0)) & spec.Flag.NATIVE:
        est = " (MEASURED on this host by the native build: the host's time, not the board's)"
    if "cycles_are" in s:
        est = " (a LOWER BOUND: instructions at the board's clock, one cycle each)"
    lat = s["latency_ms"]
    lines = [
        f"images        {s['images']} ({s['pairs']} pairs with both images sent), board {result.board}",
        f"latency ms    mean {lat['mean']:.2f}  p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  max {lat['max']:.2f}{est}",
    ]
    if "instructions_per_inference" in s:
        ins = s["instructions_per_inference"]
        lines.append(f"instructions  {ins['mean']:,.0f} per inference (min {ins['min']:,}, max {ins['max']:,}): "
                     f"{s['cycles_are']}, counted on the instruction-set emulator")
    if "host_wall_ms_mean" in s:
        lines.append(f"host wall ms  mean {s['host_wall_ms_mean']:.2f} (TFLM kernels on this host)")
    link = result.link
    lines.append(f"throughput    {s['throughput_images_per_s']:.1f} images/s over the link "
                 f"({link.get('bytes_sent', 0):,} B sent, {link.get('bytes_received', 0):,} B received, "
                 f"{link.get('retries', 0)} retries)")
    if "device_accuracy" in s:
        lines.append(f"verification  device accuracy {s['device_accuracy']:.4f} at threshold {s['threshold']:.4f}"
                     + (f", host TFLite int8 {s['host_accuracy']:.4f}" if "host_accuracy" in s else ""))
    if "identical_decisions" in s:
        lines.append(f"agreement     {s['identical_decisions'] * 100:.2f}% identical decisions, largest difference "
                     f"{s['max_lsb_diff']} LSB, {s['identical_outputs'] * 100:.1f}% identical outputs")
    if "identical_outputs_tflm" in s:
        lines.append(f"host TFLM     {s['identical_outputs_tflm'] * 100:.1f}% identical outputs to the host's "
                     f"TFLM int8 (largest difference {s['max_lsb_diff_tflm']} LSB)")
    if "started_after" in s:
        lines.append(f"warning       the board had last started after {s['started_after']} (a crash, a watchdog or "
                     "a power failure, before this run)")
    if "restarted_during_run" in s:
        lines.append(f"warning       the board restarted during the run ({s['restarted_during_run']}): its uptime "
                     "did not follow the run's time; the requests lost meanwhile were resent")
    if out_path:
        lines.append(f"results       {out_path}")
    if plot_path:
        lines.append(f"plot          {plot_path}")
    _click.echo("\n".join(lines))
