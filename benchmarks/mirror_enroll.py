"""Would identification gain from enrolling every photo twice, as it is and mirrored?

    python benchmarks/mirror_enroll.py --model models/esp32 --preset esp32 [--people DIR]

Enrollment happens once per person and off the clock; recognition happens at the door, once a
face, on the device's time. `tinyface enroll` could send each photo's mirror image as one more
sample of the person (the board's gallery keeps the normalised mean of a person's samples), so
every centroid would average each photo with its mirror while a probe still costs one
inference. (benchmarks/flip_average.py measures mirroring both sides: two inferences a face.)

On the validation people of `tinyface build --preset P` (no test image), and with --people on a
folder-per-person set (the CelebA selection set of docs/model.md), each bundle's int8 model in
TFLM embeds every crop and its mirror. People are split as the build splits validation people
(tinyface.evaluation.metrics.enrollment_split: data.enroll_images photos enrolled, the rest
probes; one photo of everyone else a stranger); in the --people set, where almost everyone has
many photos, a quarter of the people are held out as strangers with all their photos. For plain
enrollment and for enrollment with mirrors, prints the threshold chosen on those same people for
data.identify_stranger_rate of strangers by random galleries of the device's size
(metrics.threshold_at_gallery, the build's rule) with the probes accepted and right at it, and
both at the bundle's shipped threshold.
"""

import numpy as np

from tinyface.evaluation import metrics
from tinyface.evaluation.metrics import l2n
from tinyface.model.embedder import Embedder

from _lib import (  # benchmarks/, beside this script
    check_people,
    load_bundles,
    people_faces,
    validation_parser,
    validation_settings,
)


def with_mirrors(enroll: dict[str, list[int]], n: int) -> dict[str, list[int]]:
    """Each person's enrollment rows plus their mirrors' (row + n in the stacked embeddings)."""
    return {person: [*rows, *(r + n for r in rows)] for person, rows in enroll.items()}


def figures(embedder, crops, labels, d, shipped: float, **split_args) -> dict:
    """{way: (threshold chosen, probes right at it, strangers at it, probes right at shipped,
    strangers at shipped)} for "plain" and "with mirrors"; ``split_args`` go to
    metrics.enrollment_split."""
    plain = l2n(embedder.embed(crops))
    mirrored = l2n(embedder.embed(np.ascontiguousarray(crops[:, :, ::-1, :])))
    stacked = np.concatenate([plain, mirrored])
    split = metrics.enrollment_split(labels, d.enroll_images, d.seed, **split_args)
    gallery = metrics.gallery_for(d.identify_gallery)
    out = {}
    for way, enroll in (("plain", split.enroll), ("with mirrors", with_mirrors(split.enroll, len(crops)))):
        t, at = metrics.threshold_at_gallery(stacked, enroll, split.probes, split.strangers, d.identify_stranger_rate,
                                             gallery, d.seed)
        fixed = metrics.identification_at_gallery(stacked, enroll, split.probes, split.strangers, shipped, gallery,
                                                  d.seed)
        out[way] = (t, at["accuracy"], at["stranger_false_accept_rate"], fixed["accuracy"],
                    fixed["stranger_false_accept_rate"])
    return {"ways": out, "enrolled": len(split.enroll), "probes": len(split.probes),
            "strangers": len(split.strangers), "gallery": gallery}


def main() -> None:
    from tinyface.train.build_data import load_build_data

    ap = validation_parser(__doc__)
    ap.add_argument("--people", help="also a folder-per-person set, e.g. the CelebA selection set's images/ "
                                     "(refused if a --model distilled from it, or if it holds LFW test people)")
    args = ap.parse_args()
    bundles = load_bundles(args.model)
    settings = validation_settings(args.preset, bundles)
    check_people(ap, args.people, bundles, settings)  # before minutes of loading the validation people
    data = load_build_data(settings)
    d = settings.data
    sets = [("validation people", data.val.crops, list(data.val.labels), {})]
    if args.people:  # most of its people have many photos: a quarter of them held out as strangers, every photo
        crops, _, labels, skipped = people_faces(args.people, settings)
        sets.append((f"{args.people} ({skipped} photos without a detected face left out; a quarter of the people "
                     "held out as strangers, all their photos)", crops, labels,
                     {"held_out_share": 0.25, "stranger_images": "all"}))
    for folder, bundle in bundles.items():
        embedder = Embedder(bundle.model_bytes, "tflm")
        shipped = bundle.meta.identify_at
        for name, crops, labels, split_args in sets:
            f = figures(embedder, crops, labels, d, shipped, **split_args)
            print(f"{folder} (TFLM int8), {name}: {f['enrolled']} people enrolled ({d.enroll_images} photos each), "
                  f"{f['probes']} probes, {f['strangers']} strangers, galleries of {f['gallery']}")
            for way, (t, right, strangers, right_s, strangers_s) in f["ways"].items():
                print(f"  {way:13s} threshold {t:.4f} for {d.identify_stranger_rate:.0%} strangers: probes right "
                      f"{right:.1%} ({strangers:.1%} strangers)   at the shipped {shipped:.4f}: {right_s:.1%} "
                      f"({strangers_s:.1%} strangers)")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
