"""Why validation pairs score higher than the test pairs: the contamination filter's asymmetry.

    python benchmarks/val_neighbours.py --model models/esp32 --preset esp32 [--model OTHER ...]

The build drops every extra face (FairFace) whose teacher embedding lies within
``extra.max_test_distance`` of an image of a *test* person (tinyface/data/extra.py), so no test
image has a training face that close. Validation people get no such filter. This script loads
the preset's validation people and its extra faces after the filter, exactly as
`tinyface build --preset P` does (test images serve only the filter, as in the build), finds
for every validation image its nearest extra face the student trains on, and splits the build's
2,000 seeded validation pairs into *near* (an image of the pair has an extra face within the
filter's distance) and *far* (neither: what every test pair is by construction). Prints pair
accuracy at the build's validation threshold (chosen on all 2,000 pairs) overall, near and far,
for the teacher and for each bundle's int8 model in TFLM.
"""

import numpy as np

from tinyface.data.extra import nearest_distances
from tinyface.errors import ConfigError
from tinyface.evaluation import metrics
from tinyface.evaluation.metrics import l2n
from tinyface.model.embedder import Embedder
from tinyface.train.stages_eval import validation_pairs

from _lib import models_on_validation  # benchmarks/, beside this script


def split_accuracy(emb: np.ndarray, pairs, near: np.ndarray) -> tuple[float, float, float]:
    """Pair accuracy at the best threshold over all ``pairs``: (all, near pairs, far pairs)."""
    a, b, same = pairs
    scores = metrics.pair_scores(emb, a, b)
    right = (scores >= metrics.best_threshold(scores, same)) == same
    return float(right.mean()), float(right[near].mean()), float(right[~near].mean())


def main() -> None:
    bundles, preset, settings, data = models_on_validation(__doc__, extra_faces=True)
    val, extra = data.val, data.extra
    if extra is None:
        raise ConfigError(f"preset {preset} trains on no extra faces (extra.dirs): nothing to compare")
    limit = settings.extra.max_test_distance
    nearest = nearest_distances(val.teacher, extra.teacher)
    pairs = validation_pairs(val.labels)
    near = (nearest[pairs[0]] < limit) | (nearest[pairs[1]] < limit)
    print(f"preset {preset}: {len(val.labels)} validation images, {len(extra.teacher):,} extra faces used; "
          f"{np.mean(nearest < limit):.1%} of the images have one within {limit:g} (no test image does), "
          f"{np.mean(nearest < limit + 0.07):.1%} within {limit + 0.07:g}")
    print(f"validation pairs: {int(near.sum())} near ({int(pairs[2][near].sum())} same), "
          f"{int((~near).sum())} far ({int(pairs[2][~near].sum())} same)")
    rows = [("teacher", val.teacher)] + [
        (f"{folder} (TFLM int8)", Embedder(bundle.model_bytes, "tflm").embed(val.crops))
        for folder, bundle in bundles.items()]
    for name, emb in rows:
        every, near_acc, far_acc = split_accuracy(l2n(emb), pairs, near)
        print(f"  {name:28s} all {every:.2%}  near {near_acc:.2%}  far {far_acc:.2%}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
