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
from pathlib import Path

from tinyface.errors import DataError, ModelError
from tinyface.evaluation import metrics
from tinyface.evaluation.report import IDENTIFY_SENTENCE_RE, identify_sentence
from tinyface.fsutil import write_json, write_text
from tinyface.model.bundle import META_FILE, load_bundle
from tinyface.model.embedder import Embedder
from tinyface.train.build_data import load_build_data

GALLERIES = (4, 8, 16, None)  # None: every enrollable validation person


def main() -> None:
    from _lib import validation_settings  # benchmarks/, beside this script

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
                     "at": list(zip(curve["stranger_false_accept_rate"], curve["accuracy"], strict=True))})
    return rows


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
