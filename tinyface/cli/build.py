"""`tinyface build`: distill -> prune -> int8 -> evaluate every stage -> report."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from pathlib import Path

import click

from tinyface.cli.common import input_path, json_option, load_settings, not_empty, set_option, setting_type
from tinyface.config import DEFAULT_PRESET, preset_names
from tinyface.errors import TinyfaceError

# --quick's layer of settings: no extra faces (a smoke test must run without FairFace; --set
# extra.dirs=... brings them back, as the tests do with a small folder)
QUICK = {"distill": {"epochs": 8, "batch_size": 32, "teacher_views": 0, "teacher_mixes": 0}, "prune": {"epochs": 1},
         "quantize": {"calibration_images": 64}, "extra": {"dirs": []}}


@click.command()
@click.option("--preset", type=click.Choice(preset_names()), default=DEFAULT_PRESET, show_default=True,
              help="Board preset (presets/*.toml): input size, student, training recipe and the board and kernel "
                   "set it is sized for (MAC budgets: `tinyface boards`). Example: --preset esp32c3")
@click.option("--data", "data_dir", type=input_path(), default=None, callback=not_empty,
              help="Dataset folder (default: $TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw). "
                   "Example: --data ~/photos/family")
@click.option("--out", "out_dir", type=click.Path(), default=None, callback=not_empty,
              help="Run folder for artifacts and the report: new, empty, or an earlier build's (its finished "
                   "stages are reused, and a distillation, pruning or QAT that was stopped goes on from its last "
                   "state saved, after every epoch and every minute within one; a folder of other files is "
                   "refused) (default: build/<preset>, "
                   "build/<preset>-quick). Example: --out runs/s1")
@click.option("--epochs", type=setting_type("distill.epochs"), default=None,
              help="Distillation epochs (default: distill.epochs). Example: --epochs 60")
@click.option("--quick", is_flag=True, help="A small subset (1,000 training images, 200 test pairs), 8 epochs and no "
                   "extra faces: a smoke test in a few minutes. "
                   "Its values win over the preset and tinyface.toml; --set and --epochs still win: "
                   "--quick --set distill.epochs=3 trains 3. "
                   "Example: tinyface build --quick --out /tmp/smoke")
@click.option("--force", is_flag=True,
              help="Redo every stage, even those whose inputs did not change, and train from the first "
                   "epoch (not after the epochs a stopped run saved). Example: tinyface build --force")
@click.option("--print-config", is_flag=True,
              help="Print the effective settings as TOML (or JSON with --json) and exit. "
                   "Example: tinyface build --preset esp32s3 --print-config")
@click.option("--hide-test", is_flag=True,
              help="For experiment builds judged by a rule written beforehand: end with the figures on validation "
                   "pairs, not the held-out test's (--json likewise), and point to validation.md, which every build "
                   "writes without any test figure. The test is still evaluated and written to report.md, "
                   "report.json, the model card and model.json, to be read once the choice is made. (Progress "
                   "lines show validation figures with or without it.) "
                   "Example: tinyface build --set distill.seed=1 --hide-test --out runs/s1")
@set_option("distill.epochs=5")
@json_option("tinyface build --print-config --json")
@click.pass_context
def build(ctx, preset, data_dir, out_dir, epochs, quick, force, print_config, hide_test, set_items, as_json):
    """Train, distill, prune and int8-quantize a face model; evaluate every stage; write a report.

    \b
    Stages (each skipped on a re-run when its inputs did not change):
      data      align faces (and extra.dirs faces), embed them with the teacher (cached per image)
      distill   train the student to reproduce the teacher's embeddings
      prune     magnitude pruning to prune.target_sparsity, fine-tuned
                (both saved every epoch and every minute: stopped, the next run goes on from there)
      quantize  full int8: PTQ, and QAT where quantize.qat (every preset's; saved as distill is)
      evaluate  LFW verification + identification for every stage, TFLite and TFLM
      report    report.md, report.json, plots, validation.md (no test figure); model bundle

    \b
    Examples:
      tinyface build                         # esp32 preset on the default data
      tinyface build --preset esp32c3             # 3.2 M MACs for the ESP32-C3's generated kernels
      tinyface build --preset esp32s3 --epochs 60
      tinyface build --quick --out /tmp/smoke
      tinyface build --set prune.enabled=false --set quantize.qat=true
      tinyface build --set distill.seed=1 --hide-test --out runs/s1   # an experiment: validation figures only
    """
    from tinyface.config import load_preset

    p = load_preset(preset)
    overrides = {"data": {"dir": data_dir}, "distill": {"epochs": epochs}}
    # --quick is a layer of settings: above the preset and tinyface.toml, below --set and --epochs
    settings = load_settings(ctx, overrides, set_items, base=p.settings(), quick=QUICK if quick else None)
    from tinyface.boards import load_board

    # an unknown board now, not in the evaluate stage after the training; and --print-config
    # shows only settings a build would accept
    load_board(settings.firmware.board)
    if print_config:
        if as_json:
            from tinyface.console import print_json

            print_json(settings.to_dict())
        else:
            click.echo(settings.to_toml(), nl=False)
        return
    from tinyface.data.dataset import require_dataset
    from tinyface.train.pipeline import check_dataset_size  # no TensorFlow: refused in a second

    require_dataset(settings.data.data_path(), named=bool(settings.data.dir))
    from tinyface.data.cache import check_cache_dir

    # the data stage opens the face cache: one that names no folder (exit 3) or cannot be written
    # (exit 14) is refused now, in the words every command that uses it has, not after the run folder
    # is made and TensorFlow has loaded
    check_cache_dir(settings.data.cache_path(), write=True)
    from tinyface.train import assistant

    # a missing or unfit distill.assistant: its line before the run folder is made and TensorFlow
    # loads, as the other settings that name files (no TensorFlow: a model.json and a .tflite read)
    assistant.check(settings)
    out = Path(out_dir) if out_dir else Path("build") / (preset + ("-quick" if quick else ""))
    from tinyface.fsutil import ensure_dir
    from tinyface.train.pipeline import check_run_folder

    check_run_folder(out)  # a folder of one's own files is refused, not written into
    made = not out.exists()
    ensure_dir(out, "--out")  # before the training, not after it
    try:
        check_dataset_size(settings.data)  # too few people for the splits: the counts, before TensorFlow loads
        if settings.extra.dirs:
            from tinyface.data.extra import require_extra

            require_extra(settings.extra)  # before any training: one line naming the command that gets them
    except TinyfaceError:
        if made:  # a build refused before any work leaves no empty folder behind
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    from tinyface.console import quiet_tensorflow

    quiet_tensorflow(import_now=True)
    from tinyface.evaluation.report import test_name
    from tinyface.train.pipeline import run_build

    started = time.perf_counter()
    with BuildProgress(settings) as ui:  # progress on stderr, also with --json (its results go to stdout)
        result = run_build(settings, p, out, quick=quick, report_progress=ui.notify, force=force)
    wall_s = time.perf_counter() - started
    metrics = result.metrics
    tflm = metrics.tflm
    summary = {
        "out_dir": str(out), "report": str(out / "report.md"), "validation_report": str(out / "validation.md"),
        "model": str(out / "model.tflite"),
        "wall_s": round(wall_s, 1),
        "stages": [s.to_dict() for s in result.stages],
        "smoke_test": bool(metrics.smoke_test), "test_hidden": hide_test,
        "test_data": test_name(metrics),
        "test_accuracy": {name: st.verification["accuracy"] for name, st in metrics.stages.items()},
        "lfw_accuracy": None,
        # (None: an evaluation from before validation figures were kept)
        "validation_accuracy": {name: (st.validation or {}).get("accuracy") for name, st in metrics.stages.items()},
        "macs": tflm.macs, "mac_budget": metrics.mac_budget, "arena_bytes": tflm.arena_bytes,
        "model_bytes": tflm.model_bytes, "threshold": tflm.verification["threshold"],
        "parity": asdict(metrics.parity),
    }
    if metrics.dataset_or_lfw.get("kind", "lfw-view1") == "lfw-view1":
        summary["lfw_accuracy"] = summary["test_accuracy"]
    if hide_test:  # the held-out figures stay in the report files, out of this run's last lines
        summary.update(test_data=None, test_accuracy=None, lfw_accuracy=None)
        # TFLM against TFLite on the validation images and pairs, not on the test's (None: an
        # evaluation from before it was kept)
        summary["parity"] = metrics.parity.validation
    if as_json:
        from tinyface.console import print_json

        print_json(summary)
        return
    if summary["smoke_test"]:
        click.echo("SMOKE TEST (--quick): a pipeline check, not a model to deploy; its accuracy means nothing")
    smoke = " (smoke test)" if summary["smoke_test"] else ""
    acc, where = ((summary["validation_accuracy"], "validation pairs") if hide_test
                  else (summary["test_accuracy"], test_name(metrics)))
    hidden = "; the test's figures are in report.md, not shown (--hide-test)" if hide_test else ""
    click.echo(f"TFLM int8 on {where}{smoke}: {100 * acc['tflm_int8']:.2f}%  (teacher {100 * acc['teacher']:.2f}%, "
               f"float student {100 * acc['float']:.2f}%){hidden}")
    click.echo(f"{tflm.macs:,} MACs (budget {metrics.mac_budget:,}), {tflm.model_bytes / 1024:.1f} KiB model, "
               f"{tflm.arena_bytes / 1024:.1f} KiB arena, threshold {tflm.verification['threshold']:.3f}")
    first = f"validation figures: {out / 'validation.md'}" if hide_test else f"report: {out / 'report.md'}"
    click.echo(f"{first}   model: {out / 'model.tflite'}   ({wall_s:.0f} s)")


class BuildProgress:
    """Draws the build: one line per finished stage, a bar for epochs and image batches."""

    def __init__(self, settings, enabled: bool = True):
        self.settings = settings
        self.enabled = enabled
        self._progress = None
        self._task = None
        self._stage_started = 0.0
        self._stage_name = ""
        self._plain_mode = False
        self._plain = None
        self._done, self._pace = 0, None
        self.clock = None  # the ETA's clock (None: time.monotonic; tests pass a fake one)

    def __enter__(self):
        from tinyface.console import err_console, live_display

        console = err_console() if self.enabled else None
        if console is not None and not live_display(console):  # a CI log, TERM=dumb: plain lines, no bar
            self._plain_mode = True
        elif console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from tinyface.console import eta_column

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), eta_column(), TextColumn("{task.fields[info]}"),
                                      console=console)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._plain:
            self._plain.finish()
        if self._progress:
            self._progress.__exit__(*exc)

    def _new_task(self, description: str, total):
        from tinyface.console import Pace

        if self._progress:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._done, self._pace = 0, Pace(self.clock)
            self._task = self._progress.add_task(description, total=total, info="", pace=self._pace)

    def _set(self, completed, **fields) -> None:
        """The bar's count (and its ETA's pace) and other fields of its task."""
        self._done = completed
        self._pace.update(completed)
        self._progress.update(self._task, completed=completed, **fields)

    def notify(self, event: str, info: dict) -> None:
        if self._plain_mode:
            self._notify_plain(event, info)
            return
        if not self._progress:
            return
        if event == "stage":
            self._stage_started = time.perf_counter()
            self._stage_name = info["name"]
            self._new_task(f"[bold]{info['name']}[/bold]", info.get("epochs"))
        elif event == "step" and self._task is not None:  # a pass of a stage, e.g. the data's teacher views
            self._new_task(f"[bold]{self._stage_name}[/bold]: {info['name']}", info.get("total"))
        elif event == "epoch" and self._task is not None:
            logs = info.get("logs") or {}
            self._set(info["epoch"], info=" ".join(f"{k}={v:.4f}" for k, v in logs.items() if "loss" in k))
        elif event == "epoch_progress" and self._task is not None:
            self._set(info["epoch"])
        elif event == "advance" and self._task is not None:
            self._set(self._done + info.get("n", 1))
        elif event == "metric" and self._task is not None:
            self._progress.update(self._task, info=f"{info['stage']}: {100 * info['accuracy']:.2f}%")
        elif event == "note":
            self._progress.console.print(f"  {self._stage_name}: {info['text']}", markup=False, highlight=False)
        elif event == "done":
            self._progress.console.print(f"  ✓ {info['name']}: {self._took(info)}")
            if self._task is not None:  # its ✓ line replaces the bar (no 0/? bar left behind at the end)
                self._progress.remove_task(self._task)
                self._task = None

    def _notify_plain(self, event: str, info: dict) -> None:
        from tinyface.console import PlainProgress, info as say

        if event == "stage":
            if self._plain:
                self._plain.finish()
            self._stage_started = time.perf_counter()
            say(f"{info['name']}: started")
            unit = " epochs" if info.get("epochs") else ""
            self._stage_name = info["name"]
            self._plain = PlainProgress(f"  {info['name']}{unit}", info.get("epochs")).start_heartbeat()
        elif self._plain is None:
            return
        elif event == "step":  # a pass of a stage: said when it starts, then its own count out of a total, and an ETA
            self._plain.finish()
            say(f"  {self._stage_name}: {info['name']}")
            self._plain = PlainProgress(f"  {self._stage_name}: {info['name']}", info.get("total")).start_heartbeat()
        elif event == "epoch":
            logs = info.get("logs") or {}
            self._plain.update(info["epoch"], " ".join(f"{k}={v:.4f}" for k, v in logs.items() if "loss" in k))
        elif event == "epoch_progress":
            self._plain.update(info["epoch"])
        elif event == "advance":
            self._plain.advance(info.get("n", 1))
        elif event == "metric":
            self._plain.note = f"{info['stage']}: {100 * info['accuracy']:.2f}%"
        elif event == "note":  # a line of its own: something the stage says once
            say(f"  {self._stage_name}: {info['text']}")
        elif event == "done":
            self._plain.finish()
            self._plain = None
            say(f"  ✓ {info['name']}: {self._took(info)}")

    def _took(self, done: dict) -> str:
        """A finished stage's time, as its ✓ line gives it: this run's, and that of the earlier runs
        whose training it took up (as the report's stage tables give them)."""
        if done.get("skipped"):
            return "skipped (unchanged)"
        if done.get("off"):  # a stage its settings turn off
            return f"off ({done['off']})"
        earlier = done.get("earlier_seconds")
        took = f"{time.perf_counter() - self._stage_started:.1f} s"
        return took + (f" (+ {earlier:.1f} s in earlier runs, taken up)" if earlier else "")
