"""The metrics every stage reports: verification (pairs) and identification (enrollment).

Everything here works on L2-normalised embeddings and index arrays, so the same
functions score the teacher, a Keras model, TFLite, TFLM and a real board. The pairs and
the enrollment they are computed on come from here too: one pair sampler family
(:func:`sample_pairs`, :func:`all_pairs`, :func:`pairs_within_images`) and one
enrolled/probe/stranger split (:func:`enrollment_split`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import numpy as np

from tinyface.protocol.spec import GALLERY_CAPACITY
from tinyface.vectors import l2_normalize

FARS = (1e-2, 1e-3)
# where an evaluation's threshold came from (`evaluate`'s threshold_source), as the reports word it:
# the model's own, or the best on the scored pairs themselves (BEST_THRESHOLD_SOURCE, then why)
SHIPPED_THRESHOLD = "the model's shipped threshold (model.json)"
BEST_THRESHOLD_SOURCE = "best threshold on these same pairs"


def l2n(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64, the metrics' precision (tinyface.vectors)."""
    return l2_normalize(x, np.float64)


def pair_scores(emb: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each pair (embeddings need not be normalised)."""
    e = l2n(emb)
    return np.sum(e[idx_a] * e[idx_b], axis=1)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (midpoint between sorted scores) that maximises accuracy; of thresholds
    that tie, the lowest (the most lenient). Between two adjacent floats, whose midpoint rounds
    onto the lower, the higher score itself (accepted at ``>=``) separates them."""
    order = np.sort(np.unique(scores))
    mid = (order[:-1] + order[1:]) / 2
    mid = np.where(mid > order[:-1], mid, order[1:])
    candidates = np.concatenate([[order[0] - 1e-6], mid, [order[-1] + 1e-6]])
    accs = [accuracy_at(scores, same, c) for c in candidates]
    return float(candidates[int(np.argmax(accs))])


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """The share of pairs decided right at ``threshold``: genuine pairs accepted (score >=
    ``threshold``) and impostor pairs rejected. With mostly impostor pairs, read
    ``balanced_accuracy``.

    Args:
        scores: one similarity per pair (``pair_scores``).
        same: bool per pair, True for a genuine (same-person) pair.
        threshold: accept a pair when its score is at least this.

    Returns:
        The accuracy, in [0, 1] (nan for no pairs).
    """
    return float(np.mean((np.asarray(scores) >= threshold) == np.asarray(same, bool)))


def roc_curve(scores: np.ndarray, same: np.ndarray,
              weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(false accept rate, true accept rate) at every threshold, from strict to lax: one point
    per distinct score, so that pairs with equal scores are accepted together, as a threshold
    accepts them (the AUC then counts a tie between a genuine and an impostor pair as half).
    ``weights`` count each pair that many times (a bootstrap's draw, benchmarks/compare_runs.py)."""
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="mergesort")
    ranked, s = scores[order], np.asarray(same)[order].astype(bool)
    last = np.concatenate([np.flatnonzero(ranked[1:] != ranked[:-1]), [len(ranked) - 1]]) if len(ranked) else \
        np.zeros(0, int)
    if weights is None:
        genuine, impostor = s, ~s
    else:
        w = np.asarray(weights, float)[order]
        genuine, impostor = w * s, w * ~s
    tp = np.concatenate([[0], np.cumsum(genuine)[last]])
    fp = np.concatenate([[0], np.cumsum(impostor)[last]])
    return fp / (impostor.sum() or 1), tp / (genuine.sum() or 1)


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr))


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Highest true accept rate with false accept rate <= ``far``."""
    ok = fpr <= far + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def threshold_for_rate(negative_scores: np.ndarray, rate: float) -> float:
    """The lowest threshold at which at most ``rate`` of ``negative_scores`` (impostor pairs,
    or strangers' best matches) reach it (>=): the threshold for a target false-accept rate.
    With N scores a rate below 1/N means "none accepted"."""
    ranked = np.sort(np.asarray(negative_scores, np.float64))[::-1]
    allowed = int(np.floor(rate * len(ranked)))  # scores that may still be accepted
    return float(np.nextafter(ranked[allowed], np.inf)) if allowed < len(ranked) else float(ranked[-1])


def threshold_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """The verification threshold whose false accept rate on these pairs is at most ``far``."""
    return threshold_for_rate(np.asarray(scores)[~np.asarray(same, bool)], far)


def best_accuracy(scores: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Pair accuracy at the best threshold for these very pairs (model choice on validation pairs):
    ``best_threshold``'s accuracy, in O(n log n). ``weights`` count each pair that many times
    (a bootstrap's draw, benchmarks/compare_runs.py)."""
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, float)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    s, y, w = np.asarray(scores)[order], np.asarray(same, bool)[order], w[order]
    # accepting the first k pairs (k = 0..n): genuine ones accepted, impostors below rejected
    accepted = np.concatenate([[0.0], np.cumsum(w * y)])
    rejected = (w * ~y).sum() - np.concatenate([[0.0], np.cumsum(w * ~y)])
    cuts = np.concatenate([[True], s[1:] != s[:-1], [True]])  # ties fall on one side together
    return float((accepted + rejected)[cuts].max() / w.sum())


def rates_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(true accept rate, false accept rate) of the pairs at ``threshold`` (accept when >=)."""
    same = np.asarray(same, bool)
    accept = np.asarray(scores) >= threshold
    tar = float(accept[same].mean()) if same.any() else 0.0
    far = float(accept[~same].mean()) if (~same).any() else 0.0
    return tar, far


def balanced_accuracy(scores: np.ndarray, same: np.ndarray, threshold: float | None = None) -> float:
    """The mean of the true accept and the true reject rate of the pairs (a coin scores 0.5
    whatever the share of genuine pairs) at ``threshold`` (accept when >=), or with None at the
    best threshold for these very pairs."""
    same = np.asarray(same, bool)
    if threshold is None:
        # a genuine pair weighs as much as there are impostor pairs and the reverse: each kind
        # weighs half, and the accuracy of these weights is the balanced accuracy
        return best_accuracy(scores, same, np.where(same, max(1, (~same).sum()), max(1, same.sum())))
    return _balanced(*rates_at(scores, same, threshold))


def _balanced(tar: float, far: float) -> float:
    """The balanced accuracy of a true and a false accept rate (balanced_accuracy, verification)."""
    return (tar + 1.0 - far) / 2


@dataclass
class Verification:
    accuracy: float  # over all pairs: with mostly negative pairs, read balanced_accuracy
    threshold: float
    auc: float
    tar_at_far: dict[str, float]
    n_pairs: int
    n_negative: int
    # plot data, left out of to_dict() unless asked for: the ROC's points ("far", "tar") and the
    # similarities they are made of, binned (SIMILARITY_HISTOGRAM_KEY: similarity_histogram's)
    roc: dict = field(default_factory=dict)
    balanced_accuracy: float = 0.0  # (true accept rate + true reject rate) / 2 at ``threshold``
    true_accept_rate: float = 0.0  # at ``threshold``
    false_accept_rate: float = 0.0  # at ``threshold``

    def to_dict(self, with_roc: bool = False) -> dict:
        d = asdict(self)
        if not with_roc:
            d.pop("roc")
        # a FAR below one in the negative pairs is measured as "none accepted": say so beside each figure
        d["tar_at_far_measurable"] = {far: measurable(float(far), self.n_negative) for far in self.tar_at_far}
        return d


def measurable(rate: float, negatives: int) -> bool:
    """Whether a false-accept ``rate`` can be measured on ``negatives`` different-person pairs
    or stranger photos: it is at least one of them. Below that, "none accepted" is all that is
    measured (a TAR or a threshold at such a rate is the one at a rate of 0)."""
    return rate * negatives >= 1


SIMILARITY_BINS = 100  # similarity_histogram's bins over [-1, 1]: 0.02 wide
SIMILARITY_HISTOGRAM_KEY = "similarity_histogram"  # its key in Verification.roc


def similarity_histogram(scores: np.ndarray, same: np.ndarray, bins: int = SIMILARITY_BINS) -> dict:
    """The pairs' cosine similarities binned over [-1, 1] (``bins`` equal bins; a score rounded just
    past either end counted in the end bin), the same-person and the different-person pairs apart:
    what the reports' scores.png draws, a few hundred numbers however many pairs there are.

    Returns:
        ``{"edges": [bins + 1 floats], "same": [bins ints], "different": [bins ints]}``.
    """
    edges = np.linspace(-1.0, 1.0, bins + 1)
    clipped = np.clip(np.asarray(scores, np.float64), -1.0, 1.0)
    same = np.asarray(same, bool)
    return {"edges": [round(float(e), 6) for e in edges],
            "same": np.histogram(clipped[same], edges)[0].astype(int).tolist(),
            "different": np.histogram(clipped[~same], edges)[0].astype(int).tolist()}


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``share`` measured on ``n`` trials (95% for the
    default ``z``): unlike share +/- z*sqrt(share*(1-share)/n), it stays within [0, 1] and does
    not shrink to nothing at 0% or 100%. ``(share, share)`` for n = 0 (nothing measured)."""
    if n <= 0:
        return share, share
    z2 = z * z
    centre = (share + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(share * (1 - share) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def verification(test_scores: np.ndarray, test_same: np.ndarray, threshold: float) -> Verification:
    """Accuracy at a threshold chosen elsewhere, ROC AUC and TAR at fixed FARs on the test pairs.

    With N negative pairs a FAR below 1/N is measured as "no false accept at all".
    """
    test_same = np.asarray(test_same, bool)
    fpr, tpr = roc_curve(test_scores, test_same)
    step = max(1, len(fpr) // 400)
    tar, far = rates_at(test_scores, test_same, threshold)  # once: the balanced accuracy is made of them
    return Verification(
        accuracy=accuracy_at(test_scores, test_same, threshold),
        threshold=float(threshold),
        auc=auc(fpr, tpr),
        tar_at_far={f"{far:g}": tar_at_far(fpr, tpr, far) for far in FARS},
        n_pairs=int(len(test_same)),
        n_negative=int((~test_same).sum()),
        roc={"far": fpr[::step].tolist() + [1.0], "tar": tpr[::step].tolist() + [1.0],
             SIMILARITY_HISTOGRAM_KEY: similarity_histogram(test_scores, test_same)},
        balanced_accuracy=_balanced(tar, far), true_accept_rate=tar, false_accept_rate=far,
    )


@dataclass
class Identification:
    accuracy: float  # probe of an enrolled person: right person and accepted
    closed_set_accuracy: float  # right person ranked first, threshold ignored
    macro_precision: float
    macro_recall: float
    macro_f1: float
    stranger_false_accept_rate: float
    threshold: float
    n_people: int
    n_probes: int
    n_strangers: int
    people: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # rows: true person, cols: predicted (+ "unknown")

    def to_dict(self, with_confusion: bool = False) -> dict:
        d = asdict(self)
        if not with_confusion:
            d.pop("confusion")
            d.pop("people")
        return d


def identification(emb: np.ndarray, enroll: dict[str, list[int]], probes: list[tuple[int, str]],
                   strangers: list[int], threshold: float) -> Identification:
    """Enroll each person as the centroid of their enrollment embeddings; each probe goes to
    the most similar centroid and is accepted when the similarity reaches ``threshold``.

    Macro precision/recall/F1 are over the enrolled people, with rejected probes counted
    as misses (recall) and stranger probes accepted as someone counted as false positives.
    """
    people, cents = centroids(emb, enroll)
    k = len(people)
    index = {p: i for i, p in enumerate(people)}
    confusion = np.zeros((k, k + 1), int)
    correct = closed = 0
    # every probe's best match, computed as the strangers' are (and identification_curve's)
    probe_best, probe_sims = _best_matches(emb, cents, [i for i, _ in probes])
    for (_, person), best, sim in zip(probes, probe_best, probe_sims, strict=True):
        closed += best == index[person]
        predicted = int(best) if sim >= threshold else k
        confusion[index[person], predicted] += 1
        correct += predicted == index[person]
    stranger_fp = np.zeros(k, int)
    best_index, best_sims = _best_matches(emb, cents, strangers)  # as stranger_scores computes them
    accepted = int(np.sum(best_sims >= threshold))
    np.add.at(stranger_fp, best_index[best_sims >= threshold], 1)
    tp = np.diag(confusion[:, :k]).astype(float)
    predicted_as = confusion[:, :k].sum(axis=0) + stranger_fp
    precision = np.divide(tp, predicted_as, out=np.zeros(k), where=predicted_as > 0)
    recall = np.divide(tp, confusion.sum(axis=1), out=np.zeros(k), where=confusion.sum(axis=1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    n = max(1, len(probes))
    return Identification(
        accuracy=correct / n, closed_set_accuracy=closed / n,
        macro_precision=float(precision.mean()), macro_recall=float(recall.mean()), macro_f1=float(f1.mean()),
        stranger_false_accept_rate=accepted / max(1, len(strangers)), threshold=float(threshold),
        n_people=k, n_probes=len(probes), n_strangers=len(strangers),
        people=people, confusion=confusion.tolist(),
    )


def centroids(emb: np.ndarray, enroll: dict[str, list[int]]) -> tuple[list[str], np.ndarray]:
    """(people in sorted order, their unit centroids): each person enrolled as the normalised
    mean of their enrollment embeddings, as the device's gallery does."""
    e = np.asarray(emb)  # only the enrolled rows normalised: a gallery draw costs its own rows, not all of them
    people = sorted(enroll)
    return people, l2n(np.stack([l2n(e[enroll[p]]).mean(axis=0) for p in people]))


def stranger_scores(emb: np.ndarray, enroll: dict[str, list[int]], strangers: list[int]) -> np.ndarray:
    """Each stranger's similarity to its best match among the enrolled centroids (what
    IDENTIFY compares with its threshold)."""
    _, cents = centroids(emb, enroll)
    return _best_matches(emb, cents, strangers)[1]


def _best_matches(emb: np.ndarray, cents: np.ndarray, idx) -> tuple[np.ndarray, np.ndarray]:
    """(index of the best centroid, its similarity) for the embeddings ``idx``: one computation,
    so that a threshold chosen on these similarities splits them exactly as identification does."""
    if len(idx) == 0:
        return np.zeros(0, int), np.zeros(0)
    sims = l2n(np.asarray(emb)[list(idx)]) @ cents.T  # the rows asked for (was: all, on every call)
    best = np.argmax(sims, axis=1)
    return best, sims[np.arange(len(best)), best]


GALLERY_DRAWS = 100  # random galleries a gallery-size figure is the mean over


def gallery_for(identify_gallery: int) -> int:
    """The gallery size of the setting ``data.identify_gallery``: itself, or for 0 the device's
    capacity (``GALLERY_CAPACITY``; the settings cannot import the protocol, docs/architecture.md)."""
    return identify_gallery or GALLERY_CAPACITY


def gallery_draws(people, gallery: int, seed: int = 0, draws: int = GALLERY_DRAWS) -> list[list[str]]:
    """The galleries identification at a gallery size is measured on: with more than ``gallery``
    people, ``draws`` seeded random galleries of ``gallery`` of them (sorted); otherwise the one
    gallery of all of them. The same ``seed`` gives the same draws (the threshold is chosen and
    the probes are scored on the same galleries)."""
    people = sorted(people)
    if gallery >= len(people):
        return [people]
    rng = random.Random(f"gallery:{seed}")
    return [sorted(rng.sample(people, gallery)) for _ in range(draws)]


def identification_at_gallery(emb: np.ndarray, enroll: dict[str, list[int]], probes: list[tuple[int, str]],
                              strangers: list[int], threshold: float, gallery: int, seed: int = 0,
                              draws: int = GALLERY_DRAWS) -> dict:
    """Identification by a gallery of ``gallery`` people (the device holds at most
    ``GALLERY_CAPACITY``): the mean over :func:`gallery_draws` of the enrolled people of
    :func:`identification` with only the drawn people enrolled, scored on their probes (probes
    of people not drawn are left out: they are neither the gallery's people nor the protocol's
    strangers) and on every stranger. With ``gallery`` >= the enrolled people, the whole gallery.

    Returns ``{"gallery", "draws", "accuracy", "stranger_false_accept_rate"}`` (``gallery``: the
    size measured, at most the enrolled people).
    """
    curve = identification_curve(emb, enroll, probes, strangers, [threshold], gallery, seed, draws)
    return {"gallery": curve["gallery"], "draws": curve["draws"], "accuracy": curve["accuracy"][0],
            "stranger_false_accept_rate": curve["stranger_false_accept_rate"][0]}


CURVE_THRESHOLDS = [round(0.005 * k, 3) for k in range(200)]  # 0 to 0.995: the thresholds reports plot


def identification_curve(emb: np.ndarray, enroll: dict[str, list[int]], probes: list[tuple[int, str]],
                         strangers: list[int], thresholds, gallery: int, seed: int = 0,
                         draws: int = GALLERY_DRAWS) -> dict:
    """:func:`identification_at_gallery` at every one of ``thresholds`` at once (the same draws;
    each gallery's people enrolled as :func:`identification` enrolls them, each probe and stranger
    matched once): how the probes accepted under the right name and the strangers accepted fall
    together as the threshold rises, what a user trades when choosing one.

    Returns ``{"gallery", "draws", "thresholds", "accuracy", "stranger_false_accept_rate"}``
    (lists, one value per threshold)."""
    t = np.asarray(thresholds, float)
    galleries = gallery_draws(enroll, gallery, seed, draws)
    accuracy, accepted = np.zeros(len(t)), np.zeros(len(t))
    with_probes = 0  # galleries whose people have probes: the accuracy's denominator
    for people in galleries:
        names, cents = centroids(emb, {p: enroll[p] for p in people})
        index = {p: i for i, p in enumerate(names)}
        mine = [(i, p) for i, p in probes if p in index]
        if mine:
            best, sims = _best_matches(emb, cents, [i for i, _ in mine])
            right = best == np.array([index[p] for _, p in mine])
            accuracy += np.mean(right[None, :] & (sims[None, :] >= t[:, None]), axis=1)
            with_probes += 1
        _, stranger_sims = _best_matches(emb, cents, strangers)
        if len(stranger_sims):
            accepted += np.mean(stranger_sims[None, :] >= t[:, None], axis=1)
    return {"gallery": len(galleries[0]), "draws": len(galleries), "thresholds": t.tolist(),
            "accuracy": (accuracy / max(with_probes, 1)).tolist(),
            "stranger_false_accept_rate": (accepted / len(galleries)).tolist()}


def threshold_at_gallery(emb: np.ndarray, enroll: dict[str, list[int]], probes: list[tuple[int, str]],
                         strangers: list[int], stranger_rate: float, gallery: int, seed: int = 0,
                         draws: int = GALLERY_DRAWS) -> tuple[float, dict]:
    """The threshold at which a random gallery of ``gallery`` of the enrolled people accepts
    ``stranger_rate`` of ``strangers`` on average (every stranger's best match pooled over
    :func:`gallery_draws`), and :func:`identification_at_gallery` at it, on the same draws."""
    pooled = np.concatenate([stranger_scores(emb, {p: enroll[p] for p in people}, strangers)
                             for people in gallery_draws(enroll, gallery, seed, draws)])
    threshold = threshold_for_rate(pooled, stranger_rate)
    return threshold, identification_at_gallery(emb, enroll, probes, strangers, threshold, gallery, seed, draws)


def open_set_threshold(emb: np.ndarray, labels: list[str], enroll_images: int, stranger_rate: float,
                       seed: int = 0, gallery: int | None = None, draws: int = GALLERY_DRAWS) -> dict | None:
    """The identification threshold for a target stranger-accept rate by a gallery of
    ``gallery`` people, chosen on held-out (validation) people enrolled the way the device
    enrolls: people with more than ``enroll_images`` images can be enrolled (centroid of
    ``enroll_images`` seeded images); one image of every other person is a stranger.

    With more enrollable people than ``gallery``, ``draws`` seeded random galleries of
    ``gallery`` of them (:func:`gallery_draws`) are enrolled in turn and every stranger's best
    match in each is pooled: the threshold is the lowest at which at most ``stranger_rate`` of
    the pooled scores reach it, so a random gallery of that size accepts that share of strangers
    on average. (A stranger is compared with every enrolled person, so the share accepted grows
    about linearly with the gallery: a threshold chosen for one size holds for that size only.)
    With ``gallery`` None or >= the enrollable people, the one gallery of all of them.

    Returns ``{"threshold", "stranger_rate", "enrolled", "gallery", "draws", "strangers", "probes",
    "probe_accuracy", "stranger_rate_all", "probe_accuracy_all"}`` (``gallery``: the size chosen
    for, at most ``enrolled``; ``stranger_rate`` and ``probe_accuracy``: the mean over the same
    draws of the strangers accepted and of the gallery's people's other images accepted under
    the right name, the device's job measured on validation people; ``..._all``: the same by
    the gallery of all ``enrolled`` people), or None when there are fewer than 2 people to
    enroll or 10 strangers (then ship the verification threshold).
    """
    split = enrollment_split(labels, enroll_images, seed)
    enrolled, strangers, probes = split.enroll, split.strangers, split.probes
    if len(enrolled) < 2 or len(strangers) < 10:
        return None
    size = len(enrolled) if gallery is None else gallery
    threshold, at = threshold_at_gallery(emb, enrolled, probes, strangers, stranger_rate, size, seed, draws)
    whole = identification(emb, enrolled, probes, strangers, threshold)
    return {"threshold": threshold, "stranger_rate": at["stranger_false_accept_rate"],
            "enrolled": len(enrolled), "gallery": at["gallery"], "draws": at["draws"],
            "strangers": len(strangers), "probes": len(probes),
            "probe_accuracy": at["accuracy"] if probes else 0.0,
            "stranger_rate_all": whole.stranger_false_accept_rate,
            "probe_accuracy_all": whole.accuracy if probes else 0.0}


def all_pairs_tar_at_far(emb: np.ndarray, labels: list[str], far: float) -> dict:
    """TAR at ``far`` over *every* pair of the given images (validation people: thousands of
    genuine pairs and hundreds of thousands of impostor pairs, enough to resolve a FAR of 1e-3,
    which 1,000 sampled pairs cannot)."""
    e = l2n(emb)
    a, b, same = all_pairs(labels)
    scores = (e @ e.T)[a, b]
    fpr, tpr = roc_curve(scores, same)
    return {"tar": tar_at_far(fpr, tpr, far), "far": far, "genuine_pairs": int(same.sum()),
            "impostor_pairs": int((~same).sum())}


# --- the pairs and the enrollment the metrics are computed on ---------------------------------

def all_pairs(labels: list[str], max_pairs: int | None = None,
              rng: random.Random | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) of ``labels`` as index arrays and the same-person flag, in row order;
    with more than ``max_pairs`` of them, ``max_pairs`` distinct pairs drawn with ``rng``
    (sorted)."""
    n = len(labels)
    codes = {name: k for k, name in enumerate(sorted(set(labels)))}
    lab = np.array([codes[name] for name in labels], int)
    if max_pairs is None or n * (n - 1) // 2 <= max_pairs:
        a, b = np.triu_indices(n, k=1)
    else:
        rng = rng or random.Random(0)
        drawn: set[tuple[int, int]] = set()
        while len(drawn) < max_pairs:
            i, j = rng.sample(range(n), 2)
            drawn.add((min(i, j), max(i, j)))
        a, b = (np.array(v, int) for v in zip(*sorted(drawn), strict=True))
    a, b = a.astype(int), b.astype(int)
    return a, b, lab[a] == lab[b]


def pairs_within_images(pairs, n_images: int):
    """Protocol pairs (objects with ``name_a, index_a, name_b, index_b, same``, as LFW's) taken
    alternately from the same and different halves (file order) until they use ``n_images``
    distinct images: what `tinyface bench` streams. Returns (image keys ``(name, index)`` in
    first-seen order, [(key a, key b, same)])."""
    same = [p for p in pairs if p.same]
    diff = [p for p in pairs if not p.same]
    # alternate same and different pairs while both last, then the rest of the longer list
    order = [p for duo in zip(same, diff, strict=False) for p in duo] + same[len(diff):] + diff[len(same):]
    keys: dict[tuple[str, int], int] = {}
    used = []
    for p in order:
        a, b = (p.name_a, p.index_a), (p.name_b, p.index_b)
        new = [k for k in dict.fromkeys((a, b)) if k not in keys]
        if len(keys) + len(new) > n_images:
            if len(keys) >= n_images:
                break
            continue  # this pair needs two new images but only one slot is left; try the next
        for k in new:
            keys[k] = len(keys)
        used.append((a, b, p.same))
        if len(keys) >= n_images:
            break
    return list(keys), used


@dataclass
class Enrollment:
    """Who is enrolled with which images, the probes of enrolled people, and the strangers
    (images of people not enrolled, who must be rejected); indices into the labels."""

    enroll: dict[str, list[int]]
    probes: list[tuple[int, str]]
    strangers: list[int]
    held_out: list[str] = field(default_factory=list)  # people who could be enrolled, held out as strangers


def hold_out(people: list[str], share: float, seed: int) -> set[str]:
    """``share`` of ``people`` (rounded, seeded) to hold out as strangers, never leaving fewer
    than 2 to enroll; at least one when share > 0 and 3 or more people could be enrolled."""
    if share <= 0 or len(people) < 3:
        return set()
    n = min(max(1, round(share * len(people))), len(people) - 2)
    return set(random.Random(f"strangers:{seed}").sample(sorted(people), n))


def enrollment_split(labels: list[str], enroll_images: int, seed: int, *, min_images: int | None = None,
                     stranger_images: str = "first", max_strangers: int | None = None,
                     held_out_share: float = 0.0, rng: random.Random | None = None) -> Enrollment:
    """The one enrolled/probe/stranger split, as the device is used: people with at least
    ``min_images`` images (default ``enroll_images + 1``: one probe at least) are enrolled with
    ``enroll_images`` seeded-random images each (their centroid is the template), the rest of
    their images are probes; the others are strangers.

    Args:
        labels: the person of each image (images of a person in a stable order, e.g. by file name).
        stranger_images: "first" = one image (the first) of each stranger, "all" = every image.
        max_strangers: keep at most this many stranger images (a seeded sample).
        held_out_share: also hold this share of the people who could be enrolled out as
            strangers (:func:`hold_out`): strangers who look like the enrolled people's kind.
        rng: the generator of the enrollment draws (default ``random.Random(seed)``).
    """
    if stranger_images not in ("first", "all"):
        raise ValueError(f"stranger_images must be 'first' or 'all', got {stranger_images!r}")
    min_images = enroll_images + 1 if min_images is None else min_images
    rng = rng or random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        groups.setdefault(name, []).append(i)
    eligible = [p for p in sorted(groups) if len(groups[p]) >= min_images]
    held = hold_out(eligible, held_out_share, seed)
    enroll: dict[str, list[int]] = {}
    probes: list[tuple[int, str]] = []
    strangers: list[int] = []
    for person in sorted(groups):
        idx = groups[person]
        if len(idx) >= min_images and person not in held:
            order = idx[:]
            rng.shuffle(order)
            enroll[person] = sorted(order[:enroll_images])
            probes += [(i, person) for i in sorted(order[enroll_images:])]
        else:
            strangers += idx if stranger_images == "all" else idx[:1]
    if max_strangers is not None:
        rng.shuffle(strangers)
        strangers = strangers[:max_strangers]
    return Enrollment(enroll, probes, sorted(strangers), sorted(held))


def sample_pairs(labels: list[str], n_per_class: int | None,
                 seed: int, balanced: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n_per_class`` distinct same and different pairs (index arrays and the same
    flag) among ``labels``, for validation people (model selection without touching the
    test pairs). Fewer when the labels do not have that many distinct pairs. With
    ``n_per_class`` None, every same-person pair and as many seeded different-person pairs
    (the balanced pairs of a small set, benchmarks/hard_faces.py). ``balanced``: no more
    different pairs than same ones, when fewer same ones were found (a few people: 168 same and
    1,000 different pairs made a threshold chosen by accuracy one that rejects); the same draws,
    so where ``n_per_class`` same pairs are found nothing changes."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        groups.setdefault(name, []).append(i)
    multi = [g for g in groups.values() if len(g) >= 2]
    names = list(groups)
    same, diff = set(), set()
    if n_per_class is None:  # every same pair, none drawn: the different ones are the seed's first draws
        same = {(a, b) for g in multi for k, a in enumerate(g) for b in g[k + 1:]}
        n_per_class = len(same)
    tries = 0
    while len(same) < n_per_class and multi and tries < 50 * n_per_class:
        g = rng.choice(multi)
        a, b = rng.sample(g, 2)
        same.add((min(a, b), max(a, b)))
        tries += 1
    n_diff = min(n_per_class, len(same)) if balanced and same else n_per_class
    tries = 0
    while len(diff) < n_diff and len(names) >= 2 and tries < 50 * n_per_class:
        pa, pb = rng.sample(names, 2)
        i, j = rng.choice(groups[pa]), rng.choice(groups[pb])
        diff.add((min(i, j), max(i, j)))
        tries += 1
    pairs = sorted(same) + sorted(diff)
    a = np.array([p[0] for p in pairs], int)
    b = np.array([p[1] for p in pairs], int)
    flags = np.array([True] * len(same) + [False] * len(diff))
    return a, b, flags


def decision_agreement(scores_a: np.ndarray, scores_b: np.ndarray, threshold: float) -> float:
    """Share of pairs on which two models make the same same/different decision."""
    return float(np.mean((scores_a >= threshold) == (scores_b >= threshold)))
