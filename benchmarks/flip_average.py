"""Would the device gain from embedding every face twice, as it is and mirrored, and averaging?

    python benchmarks/flip_average.py --model models/esp32 --preset esp32 [--model OTHER ...]

On the validation people of `tinyface build --preset P` (loaded as the build does, without
views, mixes or extra faces; no test image), each bundle's int8 model in TFLM embeds every crop
and its mirror image. Prints, for the plain embedding and for the L2-normalised mean of the two,
what the build reports on validation (``tinyface.train.stages_eval.validation_figures``): pair
accuracy at the best threshold (the build's 2,000 seeded pairs), ROC AUC, TAR at FAR 1e-3 over
every pair, and identification by galleries of the device's size at a threshold chosen for the
preset's stranger rate. The device would pay two
inferences per face.
"""

import numpy as np

from tinyface.evaluation import metrics
from tinyface.evaluation.metrics import l2n
from tinyface.model.embedder import Embedder
from tinyface.train.stages_eval import validation_figures, validation_pairs

from _lib import models_on_validation  # benchmarks/, beside this script


def main() -> None:
    bundles, preset, settings, data = models_on_validation(__doc__)
    val = data.val
    pairs = validation_pairs(val.labels)
    for folder, bundle in bundles.items():
        embedder = Embedder(bundle.model_bytes, "tflm")
        plain = l2n(embedder.embed(val.crops))
        mirrored = l2n(embedder.embed(np.ascontiguousarray(val.crops[:, :, ::-1, :])))
        print(f"{folder} (TFLM int8), validation people of preset {preset}:")
        for name, emb in (("plain", plain), ("mean with mirror", l2n(plain + mirrored))):
            f, _ = validation_figures(emb, val.labels, pairs, settings.data)
            ident = f["identification"] or {"probe_accuracy": float("nan"), "stranger_rate": float("nan")}
            print(f"  {name:16s} pairs {f['accuracy']:.2%}  AUC {f['auc']:.4f}  "
                  f"TAR@FAR 1e-3 {f['tar_at_far_1e-3']:.1%}  "
                  f"identification (galleries of {metrics.gallery_for(settings.data.identify_gallery)}) "
                  f"{ident['probe_accuracy']:.1%} at {ident['stranger_rate']:.1%} strangers")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
