"""How well `tinyface enroll`'s consistency check catches a wrong person, on validation people.

    python benchmarks/enroll_check.py --model models/esp32 --preset esp32 [--model OTHER ...]

The check (tinyface.device.gallery): every photo of an enrollment must reach the model's pair
verification threshold (model.json ``threshold``) against the centroid of the enrollment's other
photos. Here, with the validation people of `tinyface build --preset P` (loaded as the build
does, without views, mixes or extra faces; no test image) embedded by each bundle's int8 model
in TFLM:

- genuine: for every validation person with >= 4 images, each of their first 3 images against
  the centroid of the other two, and the 4th against the centroid of the first two;
- impostor: 20 seeded images of other validation people, each against the centroid of the
  person's first 3 images (a wrong photo slipped into a 3-photo enrollment).

Prints the share of genuine photos refused and of impostor photos let through at the pair
threshold and at the identification threshold, and the threshold that would let through 1%,
2% and 5% of impostor photos with the genuine photos it would refuse.
"""

import numpy as np

from tinyface.device.gallery import centroid_similarity
from tinyface.evaluation import metrics
from tinyface.evaluation.metrics import l2n
from tinyface.model.embedder import Embedder

from _lib import models_on_validation  # benchmarks/, beside this script

ENROLLED = 3
IMPOSTORS_PER_PERSON = 20


def check_scores(emb: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) similarities of a photo to the centroid of an enrollment's other photos."""
    rng = np.random.default_rng(seed)
    genuine, impostor = [], []
    for person in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == person)
        if len(idx) < ENROLLED + 1:
            continue
        idx = idx[:ENROLLED + 1]
        for k, i in enumerate(idx):
            others = [j for j in idx[:ENROLLED] if j != i] if k < ENROLLED else list(idx[:ENROLLED - 1])
            genuine.append(centroid_similarity(emb[i], emb[others]))
        strangers = np.flatnonzero(labels != person)
        for q in rng.choice(strangers, min(IMPOSTORS_PER_PERSON, len(strangers)), replace=False):
            impostor.append(centroid_similarity(emb[q], emb[idx[:ENROLLED]]))
    return np.array(genuine), np.array(impostor)


def main() -> None:
    bundles, preset, settings, data = models_on_validation(__doc__)
    val = data.val
    labels = np.array(val.labels)
    for folder, bundle in bundles.items():
        meta = bundle.meta
        emb = l2n(Embedder(bundle.model_bytes, "tflm").embed(val.crops))
        genuine, impostor = check_scores(emb, labels, settings.data.seed)
        print(f"{folder} (TFLM int8), validation people of preset {preset}: {len(genuine)} genuine and "
              f"{len(impostor)} impostor photos against {ENROLLED}-photo enrollments")
        for name, t in (("pair threshold (the check's)", meta.threshold),
                        ("identification threshold", meta.identify_threshold)):
            print(f"  {name} {t:.3f}: genuine photos refused {np.mean(genuine < t):.1%}, "
                  f"impostor photos let through {np.mean(impostor >= t):.1%}")
        for rate in (0.01, 0.02, 0.05):
            t = metrics.threshold_for_rate(impostor, rate)
            print(f"  for {rate:.0%} of impostor photos let through: threshold {t:.3f}, "
                  f"genuine photos refused {np.mean(genuine < t):.1%}")


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
