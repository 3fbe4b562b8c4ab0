"""`tinyface evaluate`: how well a model works on your own people."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from tinyface.cli.common import input_path, json_option, load_settings, not_empty, range_type, set_option, skipped_lines
from tinyface.evaluation.model_eval import STRANGER_SHARE, STRANGER_SHARE_RANGE, TARGET_FAR, TARGET_FAR_RANGE


@click.command()
@click.option("--model", "model_path", type=input_path(), required=True, callback=not_empty,
              help="A model with its model.json (the face crop it was trained on): a bundle folder "
                   "(build/esp32, models/esp32), or a .tflite (float or int8) or .keras inside a `tinyface build` "
                   "run folder (build/esp32/quantize/float.tflite), which takes the thresholds that build chose "
                   "for its stage (evaluate/metrics.json). A lone file without one is refused. "
                   "Example: --model models/esp32")
@click.option("--data", "data_dir", type=input_path(), default=None, callback=not_empty,
              help="Folder with one sub-folder of photos per person (default: the default dataset). "
                   "Example: --data ~/photos/family")
@click.option("--pairs", "pairs_file", type=input_path(), default=None, callback=not_empty,
              help="Verification pairs in LFW format (default: all pairs of the dataset). "
                   "Example: --pairs lfw/pairsDevTest.txt")
@click.option("--enroll", "enroll_images", type=click.IntRange(1), default=None,
              help="Images enrolled per person for identification; the rest are probes "
                   "[default: data.enroll_images = 5]. Example: --enroll 3")
@click.option("--runtime", type=click.Choice(["auto", "tflite", "tflm"]), default="auto", show_default=True,
              help="Interpreter for .tflite models: TFLite, or TFLM (the firmware's int8 kernels). "
                   "Example: --runtime tflm")
@click.option("--out", "out_dir", type=click.Path(), default=None, callback=not_empty,
              help="Where to write report.md / report.json / plots (default: no files): roc.png (with the "
                   "threshold's operating point), scores.png (the similarities of same- and different-person pairs), "
                   "confusion.png and identification.png (what each identification threshold trades: enrolled "
                   "people recognised against strangers accepted; report.md says why a plot was not drawn). "
                   "A new or empty folder, or one of an earlier evaluate --out, whose "
                   "report is replaced only once the new one is written (a folder of other files is refused); "
                   "created (and checked) before the evaluation starts. Example: --out reports/family")
@click.option("--strangers", "stranger_share", type=range_type(STRANGER_SHARE_RANGE), default=STRANGER_SHARE,
              show_default=True,
              help="Share of the people with enough photos held out as strangers (seeded by data.seed), besides "
                   "the people with too few photos; their photos must all be rejected. Example: --strangers 0.5")
@click.option("--target-far", "target_far", type=range_type(TARGET_FAR_RANGE),
              default=TARGET_FAR, show_default=True,
              help="Also report the thresholds that would give this false-accept rate on these people (pairs and "
                   "strangers) and what they cost. Example: --target-far 0.001")
@json_option("tinyface evaluate --model models/esp32 --json")
@set_option("data.identify_gallery=8")
@click.pass_context
def evaluate(ctx, model_path, data_dir, pairs_file, enroll_images, runtime, out_dir, stranger_share, target_far,
             as_json, set_items):
    """Evaluate a model on any folder-per-person dataset: verification and identification.

    Verification is reported as balanced accuracy (the mean of the true-accept and
    true-reject rates at the shipped threshold: a dataset's pairs are mostly different
    people, so plain accuracy rewards rejecting everyone) and as TAR at FAR 1e-2 and 1e-3.
    A stage file of a build run is judged at the thresholds that build chose for its stage
    (evaluate/metrics.json; on validation people unless data.threshold_from says otherwise);
    only where none is recorded is the threshold chosen on the scored pairs themselves, and
    the output says it is optimistic.
    Identification enrolls each person with enough photos (some held out as strangers) and
    reports how many strangers the shipped identification threshold accepts, by all of them
    and by galleries of data.identify_gallery people (default 0: the device's 16).

    \b
    Examples:
      tinyface evaluate --model build/esp32 --data ~/photos/family --enroll 3
      tinyface evaluate --model build/esp32/quantize/float.tflite --pairs lfw/pairsDevTest.txt
      tinyface evaluate --model models/esp32 --runtime tflm --json
      tinyface evaluate --model models/esp32 --data ~/photos/family --strangers 0.5 --target-far 0.001
    """
    from tinyface.console import print_json, quiet_tensorflow, step
    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import require_dataset
    from tinyface.evaluation.model_eval import evaluate_model, load_model

    settings = load_settings(ctx, {"data": {"dir": data_dir}}, set_items)
    if enroll_images is None:
        enroll_images = settings.data.enroll_images
    held = contextlib.ExitStack()
    if out_dir:
        from tinyface.evaluation.report import hold_evaluation_out

        # before minutes of evaluation, not after: every file of the report; held until it is written
        held.enter_context(hold_evaluation_out(out_dir))
    with held:
        require_dataset(settings.data.data_path(), named=bool(settings.data.dir))
        if pairs_file:
            from tinyface.evaluation.model_eval import read_pairs_file

            # missing, unreadable, a folder or not LFW's format: the dataset's error (exit 4), as a bad
            # --data is, in one line now, not after loading the model
            read_pairs_file(pairs_file)
        if not Path(model_path).exists():
            from tinyface.errors import ModelError

            raise ModelError(f"model not found: {model_path}",
                             hint="pass --model a bundle folder (build/esp32, models/esp32) or a model file of a "
                                  "build run")
        from tinyface.data.cache import check_cache_dir

        # a face cache that names no folder (exit 3) or cannot be written (exit 14): now, not once
        # TensorFlow and the model have loaded
        check_cache_dir(settings.data.cache_path(), write=True)
        quiet_tensorflow()  # not imported here: load_model checks the model first (a bad one is one line in a second)
        model = load_model(model_path, runtime)
        # progress for every step, not only the faces: embedding all of LFW in TFLM and scoring it take
        # a minute or more, which used to pass without a line (or a bar standing at 100%)
        with FaceCache(settings.data.cache_path()) as cache:
            result = evaluate_model(model, settings.data.data_path(), cache, pairs_file, enroll_images,
                                    settings.data.seed, settings.data.workers, steps=step,
                                    stranger_share=stranger_share, target_far=target_far, settings=settings)
        # a report that cannot be written (the folder changed since the check above, a full disk) fails
        # the command (exit 14) without losing minutes of evaluation: the text is printed first; the
        # JSON goes out after the report, or inside the failure object as its "result" (one document
        # on stdout, a success or a failure by its keys, docs/cli.md)
        if as_json:
            shown = dict(result)
            shown.pop("identification_curve", None)  # plot data, in --out's report.json
            shown["verification"] = {k: v for k, v in result["verification"].items() if k != "roc"}
            if result["identification"]:
                shown["identification"] = {k: v for k, v in result["identification"].items()
                                           if k not in ("confusion", "people")}
        else:
            _print(result)
        if out_dir:
            from tinyface.errors import OutputError

            try:
                _write_report(Path(out_dir), result, as_json)
            except OutputError as exc:
                if as_json:
                    exc.json_fields["result"] = shown
                raise
        if as_json:
            print_json(shown)
        elif out_dir:
            click.echo(f"report: {Path(out_dir) / 'report.md'}")


SKIPPED_SHOWN = 10  # files the text output names of those it skipped (data stats names 20)


def _print(result: dict) -> None:
    """The results as text on stdout."""
    v, i, t = result["verification"], result["identification"], result["target_far"]
    # the photos with no face are scored all the same, from the crop where a face usually is (docs/data.md)
    centered = " (each scored as a centered crop)" if result["no_face"] else ""
    click.echo(f"{result['model']} ({result['runtime']}) on {result['data']}: {result['images']:,} images, "
               f"{result['n_people']:,} people, {len(result['skipped'])} skipped, "
               f"{result['no_face']} without a detected face{centered}")
    if result.get("smoke_test"):
        from tinyface.model.bundle import smoke_test_warning

        click.echo(f"note: {smoke_test_warning(result['model'])}")
    for line in skipped_lines(result["skipped"], SKIPPED_SHOWN, prefix="skipped "):  # was: only counted
        click.echo(line)
    from tinyface.evaluation.report import training_people_note

    note = training_people_note(result)
    if note:
        click.echo(f"note: {note}")
    negatives = v["n_negative"]
    click.echo(f"verification ({result['pairs']}, {v['n_pairs']:,} pairs, {negatives:,} of them different people): "
               f"balanced accuracy {100 * v['balanced_accuracy']:.2f}% (accepts {100 * v['true_accept_rate']:.1f}% of "
               f"same-person pairs, {100 * v['false_accept_rate']:.2f}% of different-person pairs)  AUC {v['auc']:.4f}")
    click.echo("TAR at fixed FAR: " + "  ".join(
        f"FAR={far} {100 * tar:.1f}%" + ("" if v["tar_at_far_measurable"][far] else f" (not measurable with "
                                                                                    f"{negatives:,} negative pairs)")
        for far, tar in v["tar_at_far"].items()))
    click.echo(f"threshold {result['threshold']:.3f}: {result['threshold_source']}")
    if i:
        click.echo(f"identification at threshold {i['threshold']:.3f} ({i['n_people']:,} people x "
                   f"{result['enroll_images']} enrolled, {i['n_probes']:,} probes; {i['n_strangers']:,} photos of "
                   f"{i['stranger_people']:,} strangers): accuracy {100 * i['accuracy']:.2f}%  "
                   f"macro F1 {i['macro_f1']:.3f}  {_stranger_rate_words(i['stranger_false_accept_rate'])}")
        click.echo(_device_gallery_line(result))
    else:
        click.echo(f"identification: skipped ({result['note']}; a lower --enroll or --strangers lets more "
                   "people enroll)")
    tv = t["verification"]
    line = (f"for FAR {t['far']:g} on these people: verification threshold {tv['threshold']:.3f} (accepts "
            f"{100 * tv['true_accept_rate']:.1f}% of same-person pairs)")
    if "identification" in t:
        ti = t["identification"]
        by = (f"by galleries of {ti['gallery']}, the mean of {ti['draws']} draws" if ti["draws"] > 1
              else f"by the gallery of all {ti['gallery']} enrolled")
        line += (f", identification threshold {ti['threshold']:.3f} ({by}: identifies {100 * ti['accuracy']:.1f}% of "
                 f"probes, accepts {100 * ti['stranger_false_accept_rate']:.1f}% of strangers); to use it on a board: "
                 f"`tinyface flash ... --set firmware.identify_threshold={ti['threshold']:.4f}`")
    click.echo(line)
    unmeasurable = [f"{tv['negative_pairs']:,} different-person pairs"] if not tv["measurable"] else []
    if not t.get("identification", {"measurable": True})["measurable"]:
        unmeasurable.append(f"{t['identification']['strangers']:,} stranger photos")
    if unmeasurable:
        click.echo(f"  (a rate of {t['far']:g} is below one in {' and one in '.join(unmeasurable)}: those thresholds "
                   "accept none of them; add people for a measured rate)")


def _write_report(out_dir: Path, result: dict, as_json: bool) -> None:
    """--out's report, after the results are printed.

    Raises:
        OutputError: it cannot be written; the message says the results are printed all the same.
    """
    from tinyface.errors import OutputError
    from tinyface.evaluation.report import write_evaluation_report

    try:
        write_evaluation_report(out_dir, result)
    except OutputError as exc:
        printed = ("the results are printed on stdout, in the failure object's \"result\"" if as_json
                   else "the results are printed above")
        raise OutputError(str(exc), hint="; ".join(filter(None, (printed, exc.hint)))) from None


def _device_gallery_line(result: dict) -> str:
    """Identification by a gallery of data.identify_gallery people (default the device's
    capacity), in one line."""
    from tinyface.protocol.spec import GALLERY_CAPACITY

    i, size = result["identification"], result["identify_gallery"]
    dg = i["device_gallery"]
    head = f"  by a gallery of {size} people (data.identify_gallery; the device holds up to {GALLERY_CAPACITY})"
    if dg["draws"] == 1:
        return f"{head}: all {dg['gallery']} enrolled people fit, the figures above"
    return (f"{head}, mean of {dg['draws']} random galleries of {dg['gallery']} of the {i['n_people']}: accuracy "
            f"{100 * dg['accuracy']:.2f}%  {_stranger_rate_words(dg['stranger_false_accept_rate'])}")


def _stranger_rate_words(rate: float | None) -> str:
    """The stranger false-accept rate, or that none was measured (None: no strangers)."""
    return "false-accept rate not measured (no strangers)" if rate is None else \
        f"false-accept rate {100 * rate:.1f}% of strangers"

