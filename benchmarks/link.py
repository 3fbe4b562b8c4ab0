"""Throughput of the serial protocol over the emulated link, against the UART's limit.

    python benchmarks/link.py [--model DIR] [--bauds 115200 921600] [--seconds 6] [--json]

For each baud rate it starts `tinyface emulate --baud B` (a separate process on a real
pseudo-terminal, whose UART model moves at most B/10 bytes per second each way, receiving
while it computes like a hardware UART) and measures with the same client `tinyface bench`
uses:

- INFER streamed with two requests in flight (bench's default) and one at a time;
- PING echoing 4 KiB (both directions loaded).

Efficiency = bytes moved in the busier direction (whole frames: header, payload, CRC) /
(elapsed seconds x baud / 10). "payload efficiency" counts only the input tensor bytes.
The model: --model, else the released models/esp32/ (a rate measured on the model a board
runs, with its INFER frame).

Every figure is measured on the emulator, whose inference runs at this machine's speed: the
rates bound a board's from above (a board's INFER also waits for its own inference, and a USB
serial bridge adds its latency); the device latency printed is the cost model's estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from tinyface.protocol import spec

REPO = Path(__file__).resolve().parents[1]
LABEL = ("measured on the emulator (tinyface emulate: a UART model on a pty, inference at this machine's "
         "speed): an upper bound on a board's rates")


def _bundle_dir(arg: str | None) -> tuple[Path, str]:
    """The bundle folder to serve, and how it was chosen. A folder without a bundle fails in
    load_bundle (bench_baud) as a ModelError: one line, exit 6."""
    if arg:
        return Path(arg), "given"
    return REPO / "models" / "esp32", "released models/esp32"


def _start_emulator(model_dir: Path, baud: int, wait_s: float = 60.0):
    """`tinyface emulate` of ``model_dir`` at ``baud``: (its process, its port).

    Raises:
        tinyface.errors.DeviceError: it printed no port within ``wait_s`` (its own last line
            on stderr, where it said one: a model the emulated board cannot run, a baud it
            refuses; _lib.start_device).
    """
    from _lib import start_device  # benchmarks/, beside this script (here: tests load link.py by its file)

    return start_device([sys.executable, "-m", "tinyface.cli.main", "emulate", "--model", str(model_dir),
                         "--baud", str(baud)], f"the emulator (tinyface emulate --model {model_dir} --baud {baud})",
                        wait_s)


def _measure(client, run, up_bytes_fn, payload_bytes: int, baud: int) -> dict:
    before_up, before_down = client.stats.bytes_sent, client.stats.bytes_received
    start = time.monotonic()
    count = run()
    elapsed = time.monotonic() - start
    up = client.stats.bytes_sent - before_up
    down = client.stats.bytes_received - before_down
    limit = elapsed / spec.wire_seconds(1, baud)  # bytes the wire could carry one way
    return {"requests": count, "elapsed_s": round(elapsed, 3), "bytes_up": up, "bytes_down": down,
            "efficiency": round(max(up, down) / limit, 4),
            "payload_efficiency": round(payload_bytes * count / limit, 4),
            "per_s": round(count / elapsed, 2)}


def bench_baud(model_dir: Path, baud: int, seconds: float) -> dict:
    from tinyface.model.bundle import load_bundle
    from tinyface.protocol.client import Client, open_serial

    bundle = load_bundle(model_dir)
    proc, port = _start_emulator(model_dir, baud)
    transport = open_serial(port, baud)
    try:
        client = Client(transport, timeout_s=2.0, retries=0, baud=baud, port=port)
        info = client.info()
        x = np.random.default_rng(0).integers(-128, 128, size=(info.input_bytes,), dtype=np.int8)
        frame_up = info.input_bytes + spec.FRAME_OVERHEAD
        n_infer = max(8, int(seconds / spec.wire_seconds(frame_up, baud)))
        results = {"baud": baud, "limit_bytes_per_s": baud / spec.UART_BITS_PER_BYTE, "infer_frame_bytes": frame_up,
                   "estimated_device_ms": None}
        list(client.infer_many([x] * 2))  # warm up
        results["infer_pipelined"] = _measure(client, lambda: sum(1 for _ in client.infer_many([x] * n_infer, depth=2)),
                                              None, info.input_bytes, baud)
        results["infer_one_at_a_time"] = _measure(
            client, lambda: sum(1 for _ in client.infer_many([x] * max(4, n_infer // 2), depth=1)), None,
            info.input_bytes, baud)
        ping = os.urandom(4096)
        n_ping = max(4, int(seconds / spec.wire_seconds(len(ping) + spec.FRAME_OVERHEAD, baud)))
        results["ping_4k_pipelined"] = _measure(
            client, lambda: sum(1 for _ in client.pipeline(0x01, [ping] * n_ping, depth=2)), None, len(ping), baud)
        r = client.infer(x)
        results["estimated_device_ms"] = r.latency_us / 1e3
        results["host_wall_ms"] = r.host_wall_us / 1e3
        results["model_sha256"] = bundle.model_hash[:16]
        return results
    finally:
        transport.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="bundle folder (default: the released models/esp32)")
    ap.add_argument("--bauds", type=int, nargs="+", default=[115200, 921600], metavar="BAUD",
                    help="baud rates to measure, one emulator each (default: 115200 921600)")
    ap.add_argument("--seconds", type=float, default=6.0,
                    help="approximate duration of each INFER stream (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    if min(args.bauds) < 1:
        ap.error("--bauds: every baud rate must be at least 1")
    model_dir, which = _bundle_dir(args.model)
    rows = [bench_baud(model_dir, baud, args.seconds) for baud in args.bauds]
    if args.json:
        print(json.dumps({"model": which, "label": LABEL, "results": rows}, indent=2))
        return
    print(f"model: {which} ({model_dir}); {LABEL}")
    print("efficiency = bytes in the busier direction / (elapsed x baud/10)")
    print(f"{'baud':>8} {'mode':<22} {'req':>5} {'req/s':>8} {'up B':>9} {'down B':>8} {'efficiency':>10} "
          f"{'payload eff':>11}")
    for r in rows:
        for mode in ("infer_pipelined", "infer_one_at_a_time", "ping_4k_pipelined"):
            m = r[mode]
            print(f"{r['baud']:>8} {mode:<22} {m['requests']:>5} {m['per_s']:>8.2f} {m['bytes_up']:>9,} "
                  f"{m['bytes_down']:>8,} {m['efficiency'] * 100:>9.1f}% {m['payload_efficiency'] * 100:>10.1f}%")
        print(f"{'':>8} (INFER frame {r['infer_frame_bytes']} B up; device latency ESTIMATED "
              f"{r['estimated_device_ms']:.2f} ms, host TFLM wall {r['host_wall_ms']:.2f} ms)")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
