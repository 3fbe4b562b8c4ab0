"""Would the device gain from embedding every face twice, as it is and mirrored, and averaging?

    python benchmarks/flip_average.py --model models/esp32 --preset esp32 [--model OTHER ...]

On the validation people of `tinyface build --preset P` (loaded as the build does, without
views, mixes or extra faces; no test image), each bundle's int8 model in TFLM embeds every crop
and its mirror image. Prints, for the plain embedding and for the L2-normalised mean of the two,
what the build reports on validation: pair accuracy at the best threshold (the build's 2,000
seeded pairs), ROC AUC, TAR at FAR 1e-3 over every pair, and identification by galleries of the
device's size at a threshold chosen for the preset's stranger rate. The device would pay two
inferences per face.
"""

import numpy as np

from identify_threshold import models_on_validation  # benchmarks/, beside this script
from tinyface.evaluation import metrics
from tinyface.evaluation.metrics import l2n
from tinyface.model.embedder import Embedder


def validation_figures(emb: np.ndarray, labels: list[str], pairs, data_settings) -> dict:
    """The build's validation figures (tinyface.train.stages_eval) for embeddings ``emb``."""
    a, b, same = pairs
    scores = metrics.pair_scores(emb, a, b)
    threshold = metrics.best_threshold(scores, same)
    chosen = metrics.open_set_threshold(emb, labels, data_settings.enroll_images, data_settings.identify_stranger_rate,
                                        data_settings.seed, gallery=metrics.gallery_for(data_settings.identify_gallery))
    return {"pairs": float(np.mean((scores >= threshold) == same)),
            "auc": metrics.auc(*metrics.roc_curve(scores, same)),
            "tar_at_far_1e-3": metrics.all_pairs_tar_at_far(emb, labels, 1e-3)["tar"],
            "identification": chosen["probe_accuracy"] if chosen else float("nan"),
            "strangers": chosen["stranger_rate"] if chosen else float("nan")}


def main() -> None:
    bundles, preset, settings, val = models_on_validation(__doc__)
    pairs = metrics.sample_pairs(val.labels, 1000, seed=1)  # the build's validation pairs
    for folder, bundle in bundles.items():
        embedder = Embedder(bundle.model_bytes, "tflm")
        plain = l2n(embedder.embed(val.crops))
        mirrored = l2n(embedder.embed(np.ascontiguousarray(val.crops[:, :, ::-1, :])))
        print(f"{folder} (TFLM int8), validation people of preset {preset}:")
        for name, emb in (("plain", plain), ("mean with mirror", l2n(plain + mirrored))):
            f = validation_figures(emb, val.labels, pairs, settings.data)
            print(f"  {name:16s} pairs {f['pairs']:.2%}  AUC {f['auc']:.4f}  TAR@FAR 1e-3 {f['tar_at_far_1e-3']:.1%}  "
                  f"identification (galleries of {metrics.gallery_for(settings.data.identify_gallery)}) "
                  f"{f['identification']:.1%} at {f['strangers']:.1%} strangers")


if __name__ == "__main__":
    main()
