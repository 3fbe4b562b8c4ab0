"""`tinyface evaluate`: how well a model works on your own people."""

from __future__ import annotations

from pathlib import Path

import click

from tinyface.cli.common import json_option, load_settings


@click.command()
@click.option("--model", "model_path", type=click.Path(), required=True,
              help="A model with its model.json (the face crop it was trained on): a bundle folder "
                   "(build/esp32, models/esp32), or a .tflite (float or int8) or .keras inside a `tinyface build` "
                   "run folder (build/esp32/quantize/float.tflite). A lone file without one is refused.")
@click.option("--data", "data_dir", type=click.Path(), default=None,
              help="Folder with one sub-folder of photos per person (default: the default dataset).")
@click.option("--pairs", "pairs_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Verification pairs in LFW format (default: all pairs of the dataset).")
@click.option("--enroll", "enroll_images", type=click.IntRange(1), default=5, show_default=True,
              help="Images enrolled per person for identification; the rest are probes.")
@click.option("--runtime", type=click.Choice(["auto", "tflite", "tflm"]), default="auto", show_default=True,
              help="Interpreter for .tflite models: TFLite, or TFLM (the firmware's int8 kernels).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write report.md / report.json / plots (default: no files).")
@json_option
@click.pass_context
def evaluate(ctx, model_path, data_dir, pairs_file, enroll_images, runtime, out_dir, as_json):
    """Evaluate a model on any folder-per-person dataset: verification and identification.

    \b
    Examples:
      tinyface evaluate --model build/esp32 --data ~/photos/family --enroll 3
      tinyface evaluate --model build/esp32/quantize/float.tflite --pairs lfw/pairsDevTest.txt
      tinyface evaluate --model models/esp32 --runtime tflm --json
    """
    from tinyface.console import print_json, progress_bar, quiet_tensorflow
    from tinyface.data.cache import FaceCache
    from tinyface.data.dataset import require_dataset
    from tinyface.model_eval import evaluate_model, load_model

    settings = load_settings(ctx, {"data": {"dir": data_dir}})
    require_dataset(settings.data.data_path())
    if not Path(model_path).exists():
        from tinyface.errors import ModelError

        raise ModelError(f"model not found: {model_path}")
    quiet_tensorflow(import_now=runtime != "tflm")
    model = load_model(model_path, runtime)
    with FaceCache(settings.data.cache_path()) as cache, progress_bar("faces", None) as advance:
        result = evaluate_model(model, settings.data.data_path(), cache, pairs_file, enroll_images,
                                settings.data.seed, settings.data.workers, progress=advance)
    if out_dir:
        from tinyface.report import write_evaluation_report

        write_evaluation_report(Path(out_dir), result)
    if as_json:
        result = dict(result)
        result["verification"] = {k: v for k, v in result["verification"].items() if k != "roc"}
        if result["identification"]:
            result["identification"] = {k: v for k, v in result["identification"].items()
                                        if k not in ("confusion", "people")}
        print_json(result)
        return
    v, i = result["verification"], result["identification"]
    click.echo(f"{result['model']} ({result['runtime']}) on {result['data']}: {result['images']:,} images, "
               f"{result['people']:,} people, {len(result['skipped'])} skipped, {result['no_face']} without a detected face")
    click.echo(f"verification ({result['pairs']}, {v['n_pairs']:,} pairs): accuracy {100 * v['accuracy']:.2f}%  "
               f"AUC {v['auc']:.4f}  TAR@FAR=1e-2 {100 * v['tar_at_far']['0.01']:.1f}%")
    click.echo(f"threshold {result['threshold']:.3f}: {result['threshold_source']}")
    if i:
        click.echo(f"identification at threshold {i['threshold']:.3f} ({i['n_people']} people x "
                   f"{result['enroll_images']} enrolled, {i['n_probes']} probes, "
                   f"{i['n_strangers']} strangers): accuracy {100 * i['accuracy']:.2f}%  macro F1 {i['macro_f1']:.3f}  "
                   f"strangers accepted {100 * i['stranger_false_accept_rate']:.1f}%")
    else:
        click.echo(f"identification: skipped ({result['note']})")
    if out_dir:
        click.echo(f"report: {Path(out_dir) / 'report.md'}")
