"""`tinyface bench` against a device process over a real pty: end to end, the device killed
mid-run (partial results kept), model mismatch, bad ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields

import pytest

from tinyface.data.lfw import Pair
from tinyface.device.bench import BenchResult, load_result
from tinyface.evaluation.metrics import pairs_within_images
from tinyface.protocol import spec


def cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinyface.cli.main", *args]


def _bench(port, model_dir, *args, data=None):
    cmd = cli_cmd("bench", "--port", port, "--model", str(model_dir), *args)
    if data is not None:
        cmd += ["--data", str(data)]
    return cmd


# the keys of `bench --json`'s result, and of a failure's "result": the --out file's less the per-image
# records, the pairs and paths, and "error" (a success's JSON never has that key)
JSON_KEYS = {f.name for f in fields(BenchResult)} - {"records", "pairs", "paths", "error"}


def test_bench_end_to_end(start_device, tiny_bundle, lfw_dir, tmp_path):
    dev = start_device(tiny_bundle.model_path.parent, "--once")
    out = tmp_path / "results.json"
    proc = subprocess.run(_bench(dev.port, tiny_bundle.model_path.parent, "--images", "24", "--out", str(out),
                                 "--json", data=lfw_dir), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)
    s = printed["summary"]
    assert printed["complete"] and printed["images_done"] == 24 and s["images"] == 24
    # a success's JSON never has the key "error" (was "error": null): a failure's object always has it
    assert "error" not in printed and set(printed) == JSON_KEYS
    assert s["estimated_timings"] == bool(printed["device"]["flags"] & 1)  # the emulator says it estimates
    assert 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p95"] <= s["latency_ms"]["max"]
    assert s["throughput_images_per_s"] > 0
    assert s["pairs"] >= 10 and 0.0 <= s["device_accuracy"] <= 1.0
    assert s["max_lsb_diff"] <= 1  # TFLM on the device vs TFLite on the host: same int8 model
    assert s["identical_decisions"] >= 0.9
    assert s["identical_outputs_tflm"] == 1.0  # every device runs TFLM's int8 kernels: bit-exact with the host's
    if printed["device"]["flags"] & 4:  # the instruction-set emulator: cycles are exact instruction counts
        assert s["cycles_are"] == "instructions (a lower bound on cycles)"
        counts = s["instructions_per_inference"]
        assert counts["min"] > 10_000 and counts["spread"] < 0.01
    saved = load_result(out)  # the file has everything, including the raw outputs
    assert saved.complete and saved.summary == s and saved.outputs().shape == (24, 32)
    # INFO before and after: no chip, no crash, and the same firmware kept running
    assert printed["device_after"]["uptime_ms"] > printed["device"]["uptime_ms"]
    assert "started_after" not in s and "restarted_during_run" not in s
    assert dev.proc.wait(timeout=20) == 0  # --once: the emulator exits when bench closes the port


def test_bench_reports_the_board_and_the_timings_the_device_says(start_device, tiny_bundle, lfw_dir, device_kind,
                                                                   tmp_path):
    """The figures are of the board the device says it is (INFO), not of --board (which only picks
    the model and the baud): was `board esp32` in the text, the JSON and --out for `emulate --isa`
    (an esp32c3) benched without --board. And where the latencies come from is said for every
    kind: the native build's are the host's time (was: no label at all, as if the board's)."""
    dev = start_device(tiny_bundle.model_path.parent)
    device_board = "esp32c3" if device_kind == "isa" else "esp32"
    cmd = _bench(dev.port, tiny_bundle.model_path.parent, "--images", "4", "--no-host-check", "--board", "esp32s3",
                 data=lfw_dir)
    out = tmp_path / "results.json"
    as_json = subprocess.run(cmd + ["--json", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    printed = json.loads(as_json.stdout)
    assert printed["device"]["board"] == device_board and printed["board"] == device_board
    assert json.loads(out.read_text())["board"] == device_board
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert text.returncode == 0, text.stderr[-3000:]
    assert f"board {device_board}" in text.stdout and "esp32s3" not in text.stdout, text.stdout
    latency = next(line for line in text.stdout.splitlines() if line.startswith("latency ms"))
    label = {"emulator": "(ESTIMATED by the emulator's cost model)", "isa": "(a LOWER BOUND",
             "native": "(MEASURED on this host by the native build"}[device_kind]
    assert label in latency, latency


def test_a_board_that_crashed_or_restarted_is_reported_mock_board():
    """A physical board's resets (a panic, a watchdog) cannot happen here: INFO's fields as a
    board would send them, through the bench's summary and its printed lines."""
    from tinyface.cli.bench import _print
    from tinyface.device.bench import BenchResult, restarts

    before = {"reset_reason": 4, "uptime_ms": 90_000}  # started after a panic, 90 s ago
    assert restarts(before, {"reset_reason": 6, "uptime_ms": 1_200}, 60.0) == {
        "started_after": "PANIC", "restarted_during_run": "TASK_WDT"}
    booted = {"reset_reason": 1, "uptime_ms": 2_000}  # just flashed: 2 s of uptime at the start
    assert restarts(booted, {"reset_reason": 1, "uptime_ms": 62_300}, 60.0) == {}  # kept counting
    # a watchdog 50 s into a 60 s run: the uptime went up, but by 10 s, not 60
    assert restarts(booted, {"reset_reason": 6, "uptime_ms": 10_000}, 60.0) == {"restarted_during_run": "TASK_WDT"}
    # across the 49-day wrap of the u32 milliseconds: no restart
    assert restarts({"reset_reason": 1, "uptime_ms": 2**32 - 5_000}, {"reset_reason": 1, "uptime_ms": 55_000},
                    60.0) == {}
    assert restarts(booted, None) == {}  # no INFO after a run that ended early
    assert restarts(booted, {"reset_reason": 99, "uptime_ms": 1}, 60.0) == {
        "restarted_during_run": "reason 99"}  # a newer ESP-IDF's reason, passed through
    # an emulator's or a host build's uptime may lag the host's clock: only one that went down counts
    isa = {"reset_reason": 0, "uptime_ms": 2_000, "flags": int(spec.Flag.INSTRUCTIONS)}
    assert restarts(isa, {"reset_reason": 0, "uptime_ms": 3_000}, 60.0) == {}
    assert restarts(isa, {"reset_reason": 0, "uptime_ms": 500}, 60.0) == {"restarted_during_run": "UNKNOWN"}
    result = BenchResult(complete=True, port="/dev/ttyUSB0", board="esp32", model="models/esp32/model.tflite",
                         model_sha256="9a" * 32, model_name="tinyface-esp32", smoke_test=False, device=before,
                         images_requested=1, images_done=1, elapsed_s=1.0,
                         summary={"images": 1, "pairs": 0, "throughput_images_per_s": 1.0,
                                  "latency_ms": {"mean": 1.0, "p50": 1.0, "p95": 1.0, "max": 1.0},
                                  **restarts(before, {"reset_reason": 6, "uptime_ms": 1_200}, 60.0)})
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _print(result, None)
    text = printed.getvalue()
    assert "the board had last started after PANIC" in text
    assert "the board restarted during the run (TASK_WDT)" in text


def test_bench_without_out_reports_the_real_link_statistics(start_device, device_kind, tiny_bundle, lfw_dir):
    emulator = device_kind == "emulator"  # fault injection exists in the emulator only
    dev = start_device(tiny_bundle.model_path.parent, *(["--drop-reply", "3"] if emulator else []))
    cmd = _bench(dev.port, tiny_bundle.model_path.parent, "--images", "8", "--no-host-check", "--timeout", "0.5",
                 data=lfw_dir)
    as_json = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    link = json.loads(as_json.stdout)["link"]
    assert link["bytes_sent"] > 8 * 48 * 48 and link["bytes_received"] > 0  # 8 images went over the link
    if emulator:
        assert link["retries"] >= 1 and link["timeouts"] >= 1  # the dropped reply is not hidden
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # the same device, a second session
    assert text.returncode == 0, text.stderr[-3000:]
    assert " 0 B sent" not in text.stdout and " B sent" in text.stdout


def _bench_stopped_midway(dev, bundle, lfw_dir, out, stop) -> tuple[int, str]:
    """`bench --images 80 --out OUT` against ``dev``; once 3 images are done, ``stop(bench)``.
    Returns bench's exit code and stderr. Its own process group (as a terminal's foreground job),
    with the default SIGINT."""
    from tests.conftest import sigint_as_a_terminal_sends_it, wait_for_images_done

    bench = subprocess.Popen(_bench(dev.port, bundle.model_path.parent, "--images", "80", "--out", str(out),
                                    "--no-host-check", data=lfw_dir),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=sigint_as_a_terminal_sends_it)
    try:
        wait_for_images_done(bench, out)
        stop(bench)
        _, stderr = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    return bench.returncode, stderr


def test_bench_keeps_partial_results_when_the_device_is_killed(start_device, tiny_bundle, lfw_dir,
                                                               tmp_path):
    # 115200 baud: about 0.2 s per image, so the kill lands mid-run
    dev = start_device(tiny_bundle.model_path.parent, "--baud", "115200")
    out = tmp_path / "partial.json"
    returncode, stderr = _bench_stopped_midway(dev, tiny_bundle, lfw_dir, out, lambda _: dev.kill())
    assert returncode == 7, stderr  # DeviceError
    lines = [line for line in stderr.splitlines() if line.startswith("tinyface:")]
    assert len(lines) == 1 and "Traceback" not in stderr
    assert "lost the connection" in lines[0] and "/80 images" in lines[0] and str(out) in lines[0]
    assert "; after " in lines[0] and ") (" not in lines[0]  # one parenthesis: the hint's
    partial = load_result(out)
    assert not partial.complete and partial.error
    assert 3 <= partial.images_done < 80
    assert len(partial.records) == partial.images_done == partial.summary["images"]
    assert partial.outputs().shape == (partial.images_done, 32)
    assert f"{partial.images_done}/80" in lines[0]


def test_bench_refuses_a_different_model(start_device, tiny_bundle, other_tiny_bundle):
    dev = start_device(tiny_bundle.model_path.parent)
    proc = subprocess.run(_bench(dev.port, other_tiny_bundle.model_path.parent), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 8, proc.stderr  # ProtocolError
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[-1].startswith("tinyface: error: model mismatch"), proc.stderr
    assert tiny_bundle.model_hash[:16] in lines[-1] and other_tiny_bundle.model_hash[:16] in lines[-1]


def test_a_mismatch_names_the_released_model_the_device_runs(start_device, emulator_only, lfw_dir):
    """`emulate --isa` (models/esp32c3) benched without --model: bench's esp32 model does not match.
    The line named the right one nowhere (was: "pass the --model the board was flashed with, or
    flash this one"): it names the released model the device runs. The hint is the host's, the
    same whatever the device is, so the emulator alone checks it."""
    from tinyface.resources import models_dir

    dev = start_device(models_dir() / "esp32c3", "--board", "esp32c3")
    proc = subprocess.run(_bench(dev.port, models_dir() / "esp32", data=lfw_dir), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 8, proc.stderr  # ProtocolError
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: model mismatch"), proc.stderr
    assert f"pass --model {models_dir() / 'esp32c3'}, the released model the device runs" in lines[0]


@pytest.mark.parametrize("port,needle", [("/dev/does-not-exist", "cannot open"), ("auto", "no esp32 board connected")])
def test_bench_bad_port_is_one_line(tiny_bundle, port, needle):
    proc = subprocess.run(_bench(port, tiny_bundle.model_path.parent), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7
    assert proc.stderr.strip().count("\n") == 0 and needle in proc.stderr, proc.stderr


def test_pairs_within_images_alternates_same_and_different_until_n_images():
    pairs = [Pair("a", 1, "a", 2), Pair("b", 1, "b", 2), Pair("c", 1, "d", 1), Pair("a", 1, "e", 1)]
    keys, used = pairs_within_images(pairs, 5)
    # b1-b2 needs two new images with one slot left: skipped; a1-e1 needs one and fits
    assert used == [(("a", 1), ("a", 2), True), (("c", 1), ("d", 1), False), (("a", 1), ("e", 1), False)]
    assert keys == [("a", 1), ("a", 2), ("c", 1), ("d", 1), ("e", 1)]
    keys, used = pairs_within_images(pairs, 6)
    assert len(keys) == 6 and len(used) == 3


@pytest.mark.parametrize("how, code, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_ctrl_c_during_bench_keeps_partial_results_and_says_where(start_device, tiny_bundle, lfw_dir, tmp_path,
                                                                  how, code, word):
    """A terminal's Ctrl-C mid-run: exit 130, one line that says how far it got and where the
    partial results are, and those results are a valid, incomplete BenchResult. SIGTERM (kill,
    timeout) the same, with its own exit code and word (it ended bench on the spot)."""
    import os
    import signal

    dev = start_device(tiny_bundle.model_path.parent, "--baud", "115200")
    out = tmp_path / "partial.json"
    returncode, stderr = _bench_stopped_midway(dev, tiny_bundle, lfw_dir, out,
                                               lambda bench: os.killpg(bench.pid, getattr(signal, how)))
    assert returncode == code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"tinyface: error: {word} after ") and "Traceback" not in stderr, stderr
    partial = load_result(out)
    assert not partial.complete and partial.error == word
    assert f"{partial.images_done}/80 images; partial results in {out}" in lines[-1]


# --- --json: a run cut short still gives what it measured ----------------------------------------------------
# Was: `bench --json` without --out, interrupted (or losing its board) after 39 images, printed only
# {"error": "interrupted after 39/100 images", "kind": "Interrupted", "exit_code": 130}: the 39 were lost.

# `tinyface` with a plain progress line at every image (one every 10 s where stderr is a pipe), so
# that a test sees how far a bench without --out has got
CLI_WITH_A_PROGRESS_LINE_PER_STEP = """
from tinyface import console

class Every(console.PlainProgress):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "every_s": 0})

    def start_heartbeat(self):
        return self

console.PlainProgress = Every
from tinyface.cli.main import main
main()
"""


@pytest.mark.parametrize("how, code, kind", [("SIGINT", 130, "Interrupted"), ("kill the device", 7, "DeviceError")])
def test_bench_json_cut_short_without_out_gives_what_it_measured(start_device, emulator_only, tiny_bundle, lfw_dir,
                                                                   how, code, kind):
    """`bench --json` without --out, cut short by a terminal's Ctrl-C or by a board that stops
    answering: the failure object (`error`, `kind`, `exit_code`, as the stderr line and the exit code
    say) carries the images done as `result`, with the keys of a success's JSON."""
    import signal
    import threading

    from tests.conftest import sigint_as_a_terminal_sends_it

    dev = start_device(tiny_bundle.model_path.parent, "--baud", "115200")  # about 0.2 s per image: stopped mid-run
    bench = subprocess.Popen([sys.executable, "-c", CLI_WITH_A_PROGRESS_LINE_PER_STEP, "bench", "--port", dev.port,
                              "--model", str(tiny_bundle.model_path.parent), "--data", str(lfw_dir), "--images", "80",
                              "--no-host-check", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=sigint_as_a_terminal_sends_it)
    watchdog = threading.Timer(120, bench.kill)  # a bench that stalls fails the test, not the session
    watchdog.start()
    try:
        err = []
        for line in bench.stderr:  # `benchmarking: 3/80 (3%), ...`
            err.append(line)
            if line.startswith("benchmarking: ") and int(line.split()[1].split("/")[0]) >= 3:
                break
        assert err and err[-1].startswith("benchmarking: "), "".join(err)
        if how == "SIGINT":
            os.killpg(bench.pid, signal.SIGINT)
        else:
            dev.kill()
        stdout, rest = bench.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    stderr = "".join(err) + rest
    assert bench.returncode == code, stderr
    line = [line for line in stderr.splitlines() if line.startswith("tinyface: ")][-1]
    reply = json.loads(stdout)
    assert reply["error"] == line.removeprefix("tinyface: error: ") and reply["kind"] == kind, stderr
    assert reply["exit_code"] == code and set(reply) == {"error", "kind", "exit_code", "result"}
    partial = reply["result"]
    assert set(partial) == JSON_KEYS and not partial["complete"]
    assert 3 <= partial["images_done"] == partial["summary"]["images"] < 80
    assert f"after {partial['images_done']}/80 images" in reply["error"]
    assert partial["summary"]["latency_ms"]["p50"] > 0 and partial["link"]["bytes_received"] > 0


# --- progress counts the images that will be aligned, not the --images asked for --------------------------
# Was: `bench --images 1000000` showed `aligning faces: 789/1,000,000 (0%) ... eta 3 h 31 min` while
# pairsDevTest holds 1,549 images, and the run ended 20 s later.

def _tiny_lfw(lfw_dir, root):
    """An LFW-shaped folder whose pairsDevTest.txt has 2 + 2 pairs over 6 images."""
    from tests.conftest import copy_people

    data = copy_people(lfw_dir, root, {"Aaron_Peirsol": 3, "Abdullah_Gul": 3})
    (data / "pairsDevTest.txt").write_text("2\nAaron_Peirsol\t1\t2\nAbdullah_Gul\t1\t2\n"
                                           "Aaron_Peirsol\t1\tAbdullah_Gul\t3\nAaron_Peirsol\t3\tAbdullah_Gul\t1\n")
    return data


def test_prepare_inputs_announces_the_images_it_will_align(tiny_bundle, lfw_dir, tmp_path):
    from tinyface import config
    from tinyface.device.bench import bench_pairs_file, prepare_inputs

    data = _tiny_lfw(lfw_dir, tmp_path / "lfw")
    settings = config.load(None, {"data": {"dir": str(data), "workers": 1}})
    events = []
    inputs = prepare_inputs(tiny_bundle, 1_000_000, settings, progress=lambda n=1: events.append(("done", n)),
                            pairs=bench_pairs_file(settings), on_total=lambda n: events.append(("total", n)))
    assert events[0] == ("total", 6)  # before any progress, and what exists, not the million asked for
    assert sum(n for what, n in events[1:] if what == "done") == 6 == len(inputs.paths) + inputs.skipped


def test_bench_progress_total_is_what_exists(start_device, emulator_only, tiny_bundle, lfw_dir, tmp_path, capsys,
                                            monkeypatch):
    from tests.conftest import plain_progress_every, run_in_process

    # a plain progress line at every step (the CLI prints one every 10 s where stderr is no terminal)
    plain_progress_every(monkeypatch, 0)
    data = _tiny_lfw(lfw_dir, tmp_path / "lfw")
    dev = start_device(tiny_bundle.model_path.parent, "--once")
    code, out, err = run_in_process(capsys, "bench", "--port", dev.port, "--model", tiny_bundle.model_path.parent,
                                    "--data", data, "--images", "1000000", "--no-host-check")
    assert code == 0, err
    aligning = [line for line in err.splitlines() if line.startswith("aligning faces:")]
    assert aligning and all("/6 (" in line for line in aligning), err
    # only the note on the cap names the number asked for
    assert [line for line in err.splitlines() if "1,000,000" in line] == [
        "note: pairsDevTest.txt holds 6 distinct images, fewer than the 1,000,000 asked for: benchmarking those 6"], err
    assert "images        6 " in out


def test_more_images_than_pairsdevtest_holds_is_said_once_and_the_json_counts_those_used(
        start_device, emulator_only, tiny_bundle, lfw_dir, tmp_path, capsys):
    """`bench --images 5000` where pairsDevTest holds fewer images: one note on stderr, and the figures
    and --out record the images actually streamed. Was: capped without a word (LFW: 1,549 of 5,000)."""
    from tests.conftest import run_in_process

    data = _tiny_lfw(lfw_dir, tmp_path / "lfw")
    dev = start_device(tiny_bundle.model_path.parent)
    out = tmp_path / "results.json"
    code, stdout, err = run_in_process(capsys, "bench", "--port", dev.port, "--model", tiny_bundle.model_path.parent,
                                       "--data", data, "--images", "5000", "--no-host-check", "--json", "--out", out)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert notes == ["note: pairsDevTest.txt holds 6 distinct images, fewer than the 5,000 asked for: "
                     "benchmarking those 6"], err
    result = json.loads(stdout)
    assert result["summary"]["images"] == result["images_requested"] == result["images_done"] == 6
    assert load_result(out).images_requested == 6
    # as many as it holds: no note
    code, _, err = run_in_process(capsys, "bench", "--port", dev.port, "--model", tiny_bundle.model_path.parent,
                                  "--data", data, "--images", "6", "--no-host-check", "--json")
    assert code == 0 and "note:" not in err, err


def test_the_help_of_images_gives_the_cap_lfw_holds(lfw_dir):
    from tinyface.data.lfw import read_pairs
    from tinyface.device.bench import images_available

    cap = images_available(read_pairs(lfw_dir / "pairsDevTest.txt"))
    assert cap == 1549
    proc = subprocess.run(cli_cmd("bench", "--help"), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr
    assert f"at most the {cap:,} its pairs hold" in " ".join(proc.stdout.split())


def test_the_host_check_after_the_stream_is_a_step_of_its_own(start_device, emulator_only, tiny_bundle, lfw_dir,
                                                                 tmp_path, capsys, monkeypatch):
    # was: seconds (15 s for 1,000 images) of TFLite and TFLM on the host after the last image, under
    # a bar standing at its end, or with no line at all where stderr is a file
    from tests.conftest import plain_progress_every, run_in_process

    plain_progress_every(monkeypatch, 0)
    data = _tiny_lfw(lfw_dir, tmp_path / "lfw")
    dev = start_device(tiny_bundle.model_path.parent, "--once")
    code, out, err = run_in_process(capsys, "bench", "--port", dev.port, "--model", tiny_bundle.model_path.parent,
                                    "--data", data, "--images", "6")
    assert code == 0, err
    lines = err.splitlines()
    streamed = [i for i, line in enumerate(lines) if line.startswith("benchmarking: ")]
    checked = [i for i, line in enumerate(lines)
               if line.startswith("checking the outputs against the host's TFLite and TFLM: done, ")]
    assert streamed and lines[streamed[-1]].startswith("benchmarking: 6/6 (100%)"), err
    assert len(checked) == 1 and checked[0] > streamed[-1], err


def test_ctrl_c_in_the_host_check_keeps_every_image(start_device, emulator_only, tiny_bundle, lfw_dir, tmp_path,
                                                    capsys, monkeypatch):
    """Ctrl-C while the outputs are checked against the host's (seconds, after the last image): every
    image is kept, in --out's file and as --json's `result`, without the host's figures. Was a bare
    `interrupted` (exit 130): --json lost them all, and --out's file held those of its last periodic
    write, `"complete": false` with no error, and the line did not name it."""
    from tests.conftest import run_in_process
    from tinyface.device import bench as api

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "host_outputs", interrupted)
    data = _tiny_lfw(lfw_dir, tmp_path / "lfw")
    dev = start_device(tiny_bundle.model_path.parent, "--once")
    out = tmp_path / "results.json"
    code, stdout, err = run_in_process(capsys, "bench", "--port", dev.port, "--model", tiny_bundle.model_path.parent,
                                       "--data", data, "--images", "6", "--json", "--out", out)
    assert code == 130, err
    reply = json.loads(stdout)
    assert reply["error"] == f"interrupted after 6/6 images; partial results in {out}"
    assert reply["kind"] == "Interrupted" and reply["exit_code"] == 130
    partial = reply["result"]
    assert set(partial) == JSON_KEYS and not partial["complete"]
    assert partial["images_done"] == partial["summary"]["images"] == 6 and "max_lsb_diff" not in partial["summary"]
    saved = load_result(out)
    assert not saved.complete and saved.error == "interrupted" and len(saved.records) == saved.images_done == 6


@pytest.mark.parametrize("failure, code", [("Ctrl-C", 130), ("a full disk", 14)])
def test_a_final_plot_cut_short_leaves_no_earlier_plot_beside_the_results(start_device, emulator_only, tiny_bundle,
                                                                          lfw_dir, tmp_path, capsys, monkeypatch,
                                                                          failure, code):
    """Ctrl-C (or a failed write) while the latency plot of a complete run is drawn: the complete
    results stand in --out's file and as --json's `result` (`"complete": true`, as a failed --plot
    write), the line says the plot was not drawn, and the plot an earlier run left at --plot is gone.
    Was: a bare `interrupted` (exit 130, no `result`), and the earlier run's plot beside the new results."""
    from tests.conftest import run_in_process
    from tinyface.device import bench as api
    from tinyface.errors import OutputError

    def cut_short(result, path):
        if failure == "Ctrl-C":
            raise KeyboardInterrupt
        raise OutputError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(api, "latency_plot", cut_short)
    data = _tiny_lfw(lfw_dir, tmp_path / "lfw")
    dev = start_device(tiny_bundle.model_path.parent, "--once")
    out, plot = tmp_path / "results.json", tmp_path / "lat.png"
    plot.write_bytes(b"an earlier run's plot")
    code_, stdout, err = run_in_process(capsys, "bench", "--port", dev.port, "--model", tiny_bundle.model_path.parent,
                                        "--data", data, "--images", "6", "--no-host-check", "--json", "--out", out,
                                        "--plot", plot)
    assert code_ == code, err
    reply = json.loads(stdout)
    if failure == "Ctrl-C":
        assert reply["error"] == (f"interrupted after 6/6 images; complete results in {out}; "
                                  f"the latency plot {plot} was not drawn")
        assert reply["kind"] == "Interrupted"
    assert reply["exit_code"] == code and reply["error"] in err
    assert set(reply["result"]) == JSON_KEYS and reply["result"]["complete"]
    assert reply["result"]["images_done"] == reply["result"]["summary"]["images"] == 6
    saved = load_result(out)
    assert saved.complete and saved.error is None and len(saved.records) == 6
    assert not plot.exists()  # not the earlier run's plot, of other results


@pytest.mark.parametrize("content, words", [
    (None, "cannot read bench results"),
    (b"\xff\xfe not text", "is not a tinyface bench results file"),
    (b"{", "is not a tinyface bench results file"),
    (b'{"unknown_key": 1}', "is not a tinyface bench results file"),
])
def test_load_result_of_what_is_no_results_file_is_a_data_error(tmp_path, content, words):
    # was: a bare FileNotFoundError, UnicodeDecodeError, JSONDecodeError or TypeError from deep inside
    from tinyface.errors import DataError

    path = tmp_path / "results.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as exc:
        load_result(path)
    assert words in str(exc.value) and str(path) in str(exc.value)


def test_a_native_builds_clock_is_not_called_a_chips():
    """The bench plot's caption said "clock 1000 MHz" for `emulate --native`: the host's nanosecond
    timer that INFO reports, not a chip's clock."""
    from tinyface.device.bench import clock_words
    from tinyface.protocol import spec

    native = {"flags": int(spec.Flag.NATIVE), "cpu_hz": 1_000_000_000}
    assert clock_words(native) == "timed by the host's nanosecond clock"
    assert clock_words({"flags": 0, "cpu_hz": 240_000_000}) == "clock 240 MHz"


@pytest.mark.parametrize("when", ["last", "during"])
def test_a_write_of_out_that_fails_keeps_the_results_in_the_json(start_device, emulator_only, tiny_bundle, lfw_dir,
                                                                  tmp_path, capsys, monkeypatch, when):
    """--out's last write, or one during the run, fails (a disk that filled): exit 14, and --json's
    failure object carries the images measured (was: the bare error, every image lost)."""
    from tests.conftest import run_in_process
    from tinyface import fsutil
    from tinyface.device import bench as api
    from tinyface.errors import OutputError

    real_write = fsutil.write_text

    def full(path, text):  # the first write (the first image's) goes through; the last, or the next, fails
        written = json.loads(text)
        if written["complete"] if when == "last" else not written["complete"] and written["images_done"] > 1:
            raise OutputError(f"cannot write {path}: No space left on device")
        return real_write(path, text)

    monkeypatch.setattr(fsutil, "write_text", full)  # run_bench imports it when it runs
    monkeypatch.setattr(api, "WRITE_EVERY_S", 0.0)  # a periodic write after every image
    data = _tiny_lfw(lfw_dir, tmp_path / "lfw")
    # images about 0.2 s apart: a periodic write comes between two of them
    dev = start_device(tiny_bundle.model_path.parent, "--once", *(["--baud", "115200"] if when == "during" else []))
    out = tmp_path / "results.json"
    code, stdout, err = run_in_process(capsys, "bench", "--port", dev.port, "--model", tiny_bundle.model_path.parent,
                                       "--data", data, "--images", "6", "--no-host-check", "--json", "--out", out,
                                       *(["--baud", "115200"] if when == "during" else []))
    assert code == 14, err
    reply = json.loads(stdout)
    assert reply["kind"] == "OutputError" and "No space left on device" in reply["error"]
    result = reply["result"]
    assert set(result) == JSON_KEYS and result["complete"] is (when == "last")
    done = result["images_done"]  # during: the first write that came after the first image's
    assert done == result["summary"]["images"] and (done == 6 if when == "last" else 2 <= done < 6)


# --- the latency plot: each inference in order beside a histogram of p1 to p99 ---------------------------------
# Was: one histogram binned linearly from min to max (a cold first inference squeezed the rest into 3 bins), the
# emulator's one ESTIMATED figure drawn as a single bar with p50 and p95 on top of each other, and the host wall
# time that does vary not drawn at all.

def _result(latencies_ms, flags=0, host_wall_ms=None, model="models/esp32/model.tflite", complete=True):
    """A BenchResult whose records report ``latencies_ms`` at 240 MHz, as a device of ``flags`` would."""
    cpu_hz = 240_000_000
    wall = host_wall_ms if host_wall_ms is not None else [0.0] * len(latencies_ms)
    records = [{"index": i, "t_s": 0.01 * (i + 1), "cycles": round(ms * cpu_hz / 1e3), "latency_us": round(ms * 1e3),
                "host_wall_us": round(w * 1e3), "output_hex": ""}
               for i, (ms, w) in enumerate(zip(latencies_ms, wall, strict=True))]
    return BenchResult(complete=complete, port="/dev/pts/3", board="esp32", model=model, model_sha256="9a" * 32,
                       model_name="tinyface-esp32", smoke_test=False,
                       device={"board": "esp32", "cpu_hz": cpu_hz, "flags": int(flags), "firmware_version": "0.1.0"},
                       images_requested=len(records), images_done=len(records), records=records)


def _artist(fig, gid):
    """The one artist (or the artists of a histogram) of ``fig`` with ``gid``."""
    found = [a for ax in fig.axes for a in [*ax.lines, *ax.patches, *ax.texts] if a.get_gid() == gid]
    assert found, gid
    return found


def _texts(ax) -> str:
    return " ".join([ax.get_title(loc="left"), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts)])


def test_the_latency_plot_draws_each_inference_in_order_beside_a_histogram_of_p1_to_p99():
    import numpy as np

    from tinyface.device.bench import latency_figure

    # a board: a cold first inference at twice the rest, then throttled half way (200 inferences)
    rng = np.random.default_rng(0)
    ms = 95 + rng.normal(0, 0.3, 200)
    ms[0], ms[100:] = 190.0, ms[100:] + 4
    fig = latency_figure(_result(ms))
    line = _artist(fig, "latency-per-inference")[0]  # the second panel: one point per record, in order
    assert list(line.get_xdata()) == list(range(200))
    assert np.allclose(line.get_ydata(), ms, atol=1e-5)
    # the histogram bins what lies between p1 and p99: 2 below and 2 above them out of 200, the cold one among them
    ranked = np.sort(ms)
    bars = _artist(fig, "latency-histogram")
    assert sum(int(b.get_height()) for b in bars) == 196
    assert min(b.get_x() for b in bars) >= ranked[2] - 1e-9
    assert max(b.get_x() + b.get_width() for b in bars) <= ranked[197] + 1e-9
    histogram = bars[0].axes
    assert histogram.get_xlim()[1] < 110  # the bins are not squeezed towards 190 ms
    title = histogram.get_title(loc="left")
    assert (f"outside the bins: 2 below p1 (min {ranked[0]:.2f}), 2 above p99 (max 190.00 ms)"
            in " ".join(title.split())), title
    assert f"p95 {np.percentile(ms, 95):.2f}" in title  # the summary's figure, of every inference
    assert len(fig.axes) == 2  # no host wall time on a board: one row
    assert "MEASURED" in _texts(line.axes) and "ESTIMATED" not in " ".join(_texts(ax) for ax in fig.axes)


def test_the_emulators_one_estimate_is_said_in_words_and_its_host_wall_time_drawn():
    import numpy as np

    from tinyface.device.bench import latency_figure

    wall = [2.6, 2.5, 2.9, 2.4, 2.5, 2.7, 2.45, 2.55]
    fig = latency_figure(_result([95.85] * 8, flags=spec.Flag.EMULATED, host_wall_ms=wall))
    said = _artist(fig, "latency-constant")[0]
    assert "every inference ESTIMATED at 95.85 ms" in " ".join(said.get_text().split())
    assert not [p for ax in fig.axes for p in ax.patches if p.get_gid() == "latency-histogram"]  # no one-bar histogram
    latency_row = _artist(fig, "latency-per-inference")[0].axes
    assert "ESTIMATED" in _texts(latency_row) and "MEASURED" not in _texts(latency_row)  # never as a measurement
    walls = _artist(fig, "host_wall-per-inference")[0]  # what varies is drawn: one point per record
    assert np.allclose(walls.get_ydata(), wall) and len(walls.get_xdata()) == 8
    assert "host wall" in _texts(walls.axes) and "MEASURED on this host" in _texts(walls.axes)
    assert sum(int(b.get_height()) for b in _artist(fig, "host_wall-histogram")) == 6  # less the smallest, largest
    assert "ESTIMATED by the emulator's cost model" in fig.get_suptitle()


def test_a_native_builds_host_wall_time_is_its_latency_drawn_once():
    from tinyface.device.bench import latency_figure

    ms = [7.7, 7.6, 8.1, 7.5, 12.5, 7.9]
    fig = latency_figure(_result(ms, flags=spec.Flag.NATIVE, host_wall_ms=ms))
    assert len(fig.axes) == 2 and "the host's time" in fig.axes[0].get_title(loc="left")
    assert not [a for ax in fig.axes for a in ax.lines if a.get_gid() == "host_wall-per-inference"]


def test_the_latency_plot_names_the_model_and_gives_its_short_path(monkeypatch, tmp_path):
    """The caption gave the .tflite's absolute path (/work/main/models/esp32/model.tflite) where `bench`
    found the model itself: the title names the model, the caption the path from the working folder."""
    from tinyface.device.bench import latency_figure, latency_plot

    (tmp_path / "models" / "esp32").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    absolute = str(tmp_path / "models" / "esp32" / "model.tflite")
    result = _result([95.0, 96.0, 95.5, 97.0], model=absolute, complete=False)
    fig = latency_figure(result)
    words = " ".join([fig.get_suptitle(), *(t.get_text() for t in fig.texts)])
    assert fig.get_suptitle().startswith("tinyface-esp32 on esp32: 4 inferences; the run ended early")
    assert "model models/esp32/model.tflite (sha256 9a9a" in words and absolute not in words
    # the same result draws the same bytes
    first, second = latency_plot(result, tmp_path / "a.png").read_bytes(), latency_plot(result, tmp_path / "b.png")
    assert first == second.read_bytes()


# --- --images: at least 2, one pair -----------------------------------------------------------------------------
# Was: `bench --images 1` ran, and failed with exit 4 and "none of the 0 images under ...lfw could be read".

def test_bench_images_below_one_pair_is_refused_by_the_option_and_the_setting(tmp_path):
    from tests.conftest import assert_one_error_line, run_cli

    port = str(tmp_path / "no-such-port")  # were the value taken, this would be exit 7
    assert_one_error_line(run_cli("bench", "--port", port, "--images", "1"), 2, "'--images'", "2<=x<=1000000")
    assert_one_error_line(run_cli("bench", "--port", port, "--set", "bench.images=1"), 3,
                          "bench.images must be in [2, 1000000], got 1")
    assert_one_error_line(run_cli("bench", "--port", port, "--images", "2", "--model", str(tmp_path / "none")), 6)


def test_prepare_inputs_of_fewer_images_than_a_pair_says_so(tiny_bundle, lfw_dir, tmp_path):
    from tinyface import config
    from tinyface.device.bench import prepare_inputs
    from tinyface.errors import DataError

    settings = config.load(None, {"data": {"dir": str(_tiny_lfw(lfw_dir, tmp_path / "lfw")), "workers": 1}})
    with pytest.raises(DataError) as exc:
        prepare_inputs(tiny_bundle, 1, settings)
    assert "bench needs at least 2 images (one pair of pairsDevTest.txt), not 1" in str(exc.value)
    assert len(prepare_inputs(tiny_bundle, 2, settings).pairs) == 1
