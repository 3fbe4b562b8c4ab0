"""A bundle's identification threshold chosen for the device's gallery size, on validation people.

    python benchmarks/identify_threshold.py --model models/esp32 --preset esp32 [--at T ...] [--write]

Loads the *validation* people exactly as `tinyface build --preset P` does
(tinyface.train.build_data.load_build_data with the preset's settings, but no teacher views or
mixes and no extra faces, which only training reads; the split settings data.seed,
data.val_fraction and data.test_filter are the bundle's own, model.json ``extra.split``, where it
records them), embeds them with the bundle's int8 model
in TFLM (the firmware's kernels), and chooses the identification threshold by the build's rule
(tinyface.evaluation.metrics.open_set_threshold: data.identify_stranger_rate of strangers
accepted on average by random galleries of data.identify_gallery people). No test (DevTest)
image is used. Prints the bundle's threshold and the new one, each re-derived by its rule
(the old rule: the gallery of every enrollable validation person), and for galleries of 4, 8,
16 and all of them the validation strangers accepted and the probes accepted and right at each
(mean over seeded random galleries); --at T adds the same figures at a threshold of one's own
(say the one `tinyface evaluate --model M --data OTHER_PEOPLE --target-far 0.05` chose on another face set),
to see what holding it there would cost the validation people.

--write replaces model.json's ``identify_threshold`` (atomically; every other key kept; the
sha256 is of the .tflite, unchanged) and the threshold sentence of MODEL_CARD.md (written by
tinyface.evaluation.report.identify_sentence; the script stops before writing anything if the
card has no such sentence).
"""

import argparse
import json
import re
import sys
from pathlib import Path

from tinyface import config
from tinyface.errors import DataError, ModelError
from tinyface.evaluation import metrics
from tinyface.evaluation.report import IDENTIFY_SENTENCE_RE, identify_sentence
from tinyface.fsutil import write_json, write_text
from tinyface.model.bundle import META_FILE, load_bundle
from tinyface.model.embedder import Embedder
from tinyface.train.build_data import load_build_data

GALLERIES = (4, 8, 16, None)  # None: every enrollable validation person


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="bundle folder (model.tflite + model.json), e.g. models/esp32")
    ap.add_argument("--preset", required=True, help="the preset the bundle was built with, e.g. esp32")
    ap.add_argument("--at", type=threshold_arg, action="append", default=[], metavar="T",
                    help="also show the validation figures at threshold T (repeatable), e.g. one that "
                         "`tinyface evaluate --target-far` chose on other people's faces")
    ap.add_argument("--write", action="store_true",
                    help="update the bundle's model.json identify_threshold and MODEL_CARD.md sentence")
    args = ap.parse_args()

    folder = Path(args.model)
    bundle = load_bundle(folder)  # model.json validated, sha256 checked
    meta = bundle.meta
    settings = validation_settings(args.preset, {folder: bundle})
    d = settings.data
    card_path = folder / "MODEL_CARD.md"
    if args.write:
        check_card(card_path)  # before minutes of work, not after

    val = load_build_data(settings).val
    emb = Embedder(bundle.model_bytes, "tflm").embed(val.crops)

    old = metrics.open_set_threshold(emb, val.labels, d.enroll_images, d.identify_stranger_rate, d.seed)
    new = metrics.open_set_threshold(emb, val.labels, d.enroll_images, d.identify_stranger_rate, d.seed,
                                     gallery=metrics.gallery_for(d.identify_gallery))
    if new is None:
        raise DataError("too few validation people to choose an identification threshold on")
    split = metrics.enrollment_split(val.labels, d.enroll_images, d.seed)  # the split open_set_threshold enrolls by
    print(f"{folder} (TFLM int8) on the validation people of preset {args.preset}: {len(val.labels)} images of "
          f"{len(set(val.labels))} people; {new['enrolled']} enrollable ({d.enroll_images} images enrolled each, "
          f"{new['probes']} probes), {new['strangers']} strangers (one image each)")
    print(f"target: {d.identify_stranger_rate:.0%} of strangers accepted")
    print(f"model.json identify_threshold: {meta.identify_threshold:.4f}")
    print(f"old rule (a gallery of all {old['enrolled']}): {old['threshold']:.4f}")
    print(f"new rule (galleries of {new['gallery']}, {new['draws']} draws, data.identify_gallery="
          f"{d.identify_gallery}{', the device capacity' if not d.identify_gallery else ''}): {new['threshold']:.4f}")
    columns = [("model.json", meta.identify_at), ("old rule", old["threshold"]), ("new rule", new["threshold"]),
               *(("--at", t) for t in args.at)]
    print()
    print("validation (TFLM int8), by each threshold: strangers accepted / probes accepted and right "
          "(mean over the draws)")
    print("gallery  draws  " + "  ".join(f"{name} {t:.4f}".rjust(22) for name, t in columns))
    for row in gallery_table(emb, split, [t for _, t in columns], d.seed):
        print(f"{row['gallery']:7d}  {row['draws']:5d}  " + "  ".join(
            f"{100 * r:6.2f}% / {100 * a:6.2f}%".rjust(22) for r, a in row["at"]))

    if args.write:
        sentence = write_threshold(folder, new["threshold"], d.identify_stranger_rate, new["gallery"])
        print(f"\nwrote {folder / META_FILE} identify_threshold {new['threshold']:.4f} and {card_path}: {sentence}")


def threshold_arg(text: str) -> float:
    """--at's value: a cosine similarity in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return value


def gallery_table(emb, split, thresholds, seed: int, galleries=GALLERIES) -> list[dict]:
    """For each gallery size of ``galleries`` (None: every enrollable person of ``split``), the
    draws and, for each of ``thresholds``, (strangers accepted, probes accepted and right): the
    mean over the same seeded random galleries (metrics.identification_curve)."""
    rows = []
    for gallery in galleries:
        size = len(split.enroll) if gallery is None else gallery
        curve = metrics.identification_curve(emb, split.enroll, split.probes, split.strangers, thresholds, size, seed)
        rows.append({"gallery": curve["gallery"], "draws": curve["draws"],
                     "at": list(zip(curve["stranger_false_accept_rate"], curve["accuracy"]))})
    return rows


def validation_settings(preset_name: str, bundles: dict, extra_faces: bool = False) -> config.Settings:
    """The preset's settings for loading its validation people only (no teacher views, mixes or
    extra faces, which only training reads; with ``extra_faces`` the preset's extra faces too,
    filtered as the build filters them, without their views or mixes), drawn with the split
    settings the bundles' builds used (recorded_split); exits with one line if a bundle of
    ``{folder: bundle}`` takes other crops than the preset cuts."""
    import dataclasses

    extra = {"views": 0, "mixes": 0} if extra_faces else {"dirs": []}
    settings = config.load(None, {"distill": {"teacher_views": 0, "teacher_mixes": 0}, "extra": extra},
                           base=config.load_preset(preset_name).settings())
    split = recorded_split(preset_name, settings.data, bundles)
    settings = dataclasses.replace(settings, data=dataclasses.replace(settings.data, **split))
    d = settings.data
    shape = [1, d.crop_size, d.crop_size, d.channels]
    for folder, bundle in bundles.items():
        meta = bundle.meta
        if list(meta.input_shape) != shape or meta.crop_padding != d.padding:
            raise ModelError(f"{folder} takes {meta.input_shape} crops at padding {meta.crop_padding}, preset "
                             f"{preset_name} cuts {shape} at {d.padding}: not this bundle's preset")
    return settings


def recorded_split(preset_name: str, preset_data, bundles: dict) -> dict:
    """The split settings (data.seed, data.val_fraction, data.test_filter) that drew the validation
    people of the bundles' builds: each bundle's model.json record (``extra.split``), the preset's
    for a bundle written before builds recorded it. Says on stderr where a recorded value is not
    the preset's; exits with one line if two bundles' builds drew different validation people (no
    one set of people is unseen by both)."""
    from tinyface.model.bundle import SPLIT_SETTINGS, split_record

    preset_split = split_record(preset_data)
    chosen, chosen_by = None, None
    for folder, bundle in bundles.items():
        split = {**preset_split, **bundle.meta.split}
        if chosen is not None and split != chosen:
            differ = ", ".join(f"data.{k} {chosen[k]} and {split[k]}" for k in SPLIT_SETTINGS if chosen[k] != split[k])
            raise ModelError(f"{chosen_by} and {folder} were built with other validation people ({differ}): "
                             "compare bundles of one split")
        chosen, chosen_by = split, folder
    chosen = chosen or preset_split
    for name in SPLIT_SETTINGS:
        if chosen[name] != preset_split[name]:
            print(f"validation people drawn with model.json's data.{name}={chosen[name]} "
                  f"(preset {preset_name}: {preset_split[name]})", file=sys.stderr)
    return chosen


def validation_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of the benchmarks that compare bundles on a preset's validation people:
    ``--model`` (repeatable) and ``--preset``; a benchmark may add its own options."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="bundle folder, e.g. models/esp32 (repeatable)")
    ap.add_argument("--preset", required=True, help="the preset whose validation people to use, e.g. esp32")
    return ap


def models_on_validation(doc: str, extra_faces: bool = False, args: argparse.Namespace | None = None):
    """``({folder: bundle}, preset name, settings, build data)`` for the command line of
    :func:`validation_parser` (``args``, parsed, or parsed here); the build data's ``val`` are
    the validation faces, its ``extra`` the preset's extra faces when ``extra_faces``
    (validation_settings)."""
    args = args or validation_parser(doc).parse_args()
    bundles = {folder: load_bundle(Path(folder)) for folder in args.model}
    settings = validation_settings(args.preset, bundles, extra_faces)
    return bundles, args.preset, settings, load_build_data(settings)


def check_card(card_path: Path) -> str:
    """MODEL_CARD.md's text; exits with one line if it has no (or more than one) identification-threshold
    sentence to replace."""
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
    if len(re.findall(IDENTIFY_SENTENCE_RE, card)) != 1:
        raise ModelError(f"{card_path} has no identification-threshold sentence to replace (or more than one); "
                         "nothing written")
    return card


def write_threshold(folder: Path, threshold: float, stranger_rate: float, gallery: int) -> str:
    """Set the bundle's model.json ``identify_threshold`` (every other key kept, atomically) and its
    MODEL_CARD.md threshold sentence; returns the sentence. Nothing is written if the card has no
    such sentence."""
    card_path = folder / "MODEL_CARD.md"
    card = check_card(card_path)
    meta_path = folder / META_FILE
    raw = json.loads(meta_path.read_text(encoding="utf-8"))
    raw["identify_threshold"] = threshold
    sentence = identify_sentence(threshold, stranger_rate, gallery)
    write_json(meta_path, raw)
    write_text(card_path, re.sub(IDENTIFY_SENTENCE_RE, lambda _: sentence, card))
    load_bundle(folder)  # still a valid bundle
    return sentence


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
