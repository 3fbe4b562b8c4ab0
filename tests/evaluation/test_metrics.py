"""tinyface.evaluation.metrics: the metrics every stage reports, on hand-checked inputs."""

import hashlib
import json
import random

import numpy as np
import pytest

from tinyface.evaluation import metrics


def test_best_threshold_separates_perfectly_separable_scores():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    thr = metrics.best_threshold(scores, same)
    assert 0.3 < thr < 0.7
    assert np.all((scores >= thr) == same)


def test_roc_auc_and_tar_at_far():
    scores = np.array([0.9, 0.8, 0.6, 0.5, 0.4, 0.1])
    same = np.array([1, 0, 1, 1, 0, 0], bool)
    fpr, tpr = metrics.roc_curve(scores, same)
    # ranks: positives at 1, 3, 4 of 6; AUC = P(pos > neg) = (3 + 2 + 2) / 9
    assert metrics.auc(fpr, tpr) == pytest.approx(7 / 9)
    assert metrics.tar_at_far(fpr, tpr, 0.0) == pytest.approx(1 / 3)
    assert metrics.tar_at_far(fpr, tpr, 1 / 3) == pytest.approx(1.0)


def test_tied_scores_are_one_roc_point_whatever_their_order():
    """A threshold accepts equal scores together: the AUC counts a genuine-impostor tie as half
    and TAR at FAR gives only what a threshold can reach, in either order of the pairs."""
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.5])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    for order in (np.arange(8), np.arange(8)[::-1]):
        fpr, tpr = metrics.roc_curve(scores[order], same[order])
        # Mann-Whitney: (4 + 3 * 3.5) / 16, the 0.5-0.5 ties half
        assert metrics.auc(fpr, tpr) == pytest.approx(29 / 32)
        assert metrics.tar_at_far(fpr, tpr, 0.0) == pytest.approx(0.25)  # only 0.9 is above every impostor
    collapsed = metrics.roc_curve(np.ones(10), np.arange(10) % 2 == 0)  # a student that says one thing
    assert metrics.auc(*collapsed) == pytest.approx(0.5) and metrics.tar_at_far(*collapsed, 1e-3) == 0.0


def test_best_threshold_splits_adjacent_floats():
    low = 0.5
    high = float(np.nextafter(low, 1.0))  # their midpoint rounds onto `low`
    scores, same = np.array([low, high]), np.array([False, True])
    thr = metrics.best_threshold(scores, same)
    assert np.all((scores >= thr) == same) and metrics.best_accuracy(scores, same) == 1.0


def test_identification_curve_averages_over_galleries_that_have_probes():
    """A drawn gallery whose people have no probes says nothing about accuracy (it still meets
    every stranger)."""
    emb = np.eye(6)
    enroll = {"a": [0], "b": [1], "c": [2], "d": [3]}
    probes = [(4, "a"), (5, "b")]
    emb[4], emb[5] = emb[0], emb[1]  # each probe is its person's enrollment photo again
    curve = metrics.identification_curve(emb, enroll, probes, [], thresholds=[0.5], gallery=2, seed=0, draws=30)
    assert curve["accuracy"] == [1.0]


def test_verification_reports_accuracy_at_the_given_threshold():
    scores = np.array([0.9, 0.6, 0.4, 0.2])
    same = np.array([1, 1, 0, 0], bool)
    assert metrics.verification(scores, same, 0.5).accuracy == 1.0
    assert metrics.verification(scores, same, 0.7).accuracy == 0.75


def test_accuracy_at_counts_genuine_pairs_accepted_and_impostors_rejected():
    scores = np.array([0.9, 0.6, 0.5, 0.4, 0.2])
    same = np.array([1, 0, 1, 0, 0], bool)
    # at 0.5: 0.9 and 0.5 (a tie counts as accepted) accepted rightly, 0.6 wrongly; 0.4, 0.2 rejected rightly
    assert metrics.accuracy_at(scores, same, 0.5) == pytest.approx(4 / 5)
    assert metrics.accuracy_at(scores, same, 0.95) == pytest.approx(3 / 5)  # everything rejected
    assert metrics.accuracy_at(scores, same, 0.0) == pytest.approx(2 / 5)  # everything accepted
    assert isinstance(metrics.accuracy_at(scores, same, 0.5), float)
    # the labels as 0/1 (lists, ints) mean the same
    assert metrics.accuracy_at(list(scores), [1, 0, 1, 0, 0], 0.5) == pytest.approx(4 / 5)


def test_accuracy_at_is_what_best_threshold_maximises_and_verification_reports():
    rng = np.random.default_rng(1)
    same = rng.random(300) < 0.4
    scores = np.where(same, 0.6, 0.3) + 0.15 * rng.normal(size=300)
    thr = metrics.best_threshold(scores, same)
    assert metrics.accuracy_at(scores, same, thr) == pytest.approx(metrics.best_accuracy(scores, same))
    assert metrics.verification(scores, same, 0.45).accuracy == metrics.accuracy_at(scores, same, 0.45)


def test_verification_says_which_far_its_negative_pairs_can_measure():
    # the test pairs: 500 different-person pairs measure a FAR of 1e-2 (5 pairs), not 1e-3
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 500)
    scores = np.where(same, 0.7, 0.3) + 0.1 * rng.normal(size=1000)
    d = metrics.verification(scores, same, 0.5).to_dict()
    assert d["tar_at_far_measurable"] == {"0.01": True, "0.001": False}
    assert metrics.measurable(1e-3, 1000) and not metrics.measurable(1e-3, 999)


def _clusters(rng, people, per_person, dim=16, noise=0.05):
    centers = metrics.l2n(rng.normal(size=(people, dim)))
    emb, labels = [], []
    for p in range(people):
        for _ in range(per_person):
            emb.append(centers[p] + noise * rng.normal(size=dim))
            labels.append(f"p{p}")
    return np.array(emb), labels


def test_identification_enrolls_centroids_and_rejects_strangers():
    rng = np.random.default_rng(0)
    emb, labels = _clusters(rng, 6, 8)
    enroll = {f"p{p}": [p * 8 + i for i in range(3)] for p in range(4)}
    probes = [(p * 8 + i, f"p{p}") for p in range(4) for i in range(3, 8)]
    strangers = [p * 8 + i for p in (4, 5) for i in range(8)]  # people 4 and 5 are never enrolled
    result = metrics.identification(emb, enroll, probes, strangers, threshold=0.8)
    assert result.accuracy == 1.0 and result.macro_f1 == 1.0
    assert result.stranger_false_accept_rate == 0.0
    assert np.array(result.confusion).shape == (4, 5)
    # with a threshold nobody reaches, every probe is rejected: recall and F1 drop to 0
    none = metrics.identification(emb, enroll, probes, strangers, threshold=1.01)
    assert none.accuracy == 0.0 and none.macro_recall == 0.0 and none.closed_set_accuracy == 1.0
    # with a threshold everybody reaches, strangers are accepted
    lax = metrics.identification(emb, enroll, probes, strangers, threshold=-1.0)
    assert lax.stranger_false_accept_rate == 1.0 and lax.macro_precision < 1.0


def test_sample_pairs_are_balanced_and_labelled_correctly():
    labels = ["a"] * 4 + ["b"] * 3 + ["c"] * 1
    a, b, same = metrics.sample_pairs(labels, 5, seed=0)
    assert same.sum() == 5 and (~same).sum() == 5
    for i, j, s in zip(a, b, same, strict=True):
        assert (labels[i] == labels[j]) == s and i != j


def test_decision_agreement():
    assert metrics.decision_agreement(np.array([0.1, 0.9]), np.array([0.2, 0.8]), 0.5) == 1.0
    assert metrics.decision_agreement(np.array([0.49, 0.9]), np.array([0.51, 0.8]), 0.5) == 0.5


def test_sample_pairs_stops_when_there_are_fewer_pairs_than_asked():
    labels = ["a", "a", "b", "b"]  # 2 same pairs and 4 different pairs exist
    a, b, same = metrics.sample_pairs(labels, 1000, seed=0)
    assert same.sum() == 2 and (~same).sum() == 4



def test_balanced_pairs_take_as_many_different_pairs_as_same_ones_were_found():
    # the build's validation pairs (stages_eval.validation_pairs) of a --quick build's few people were
    # 168 same and 1,000 different: a threshold chosen by accuracy there mostly rejects
    labels = [f"p{k}" for k in range(30) for _ in range(2)] + [f"s{k}" for k in range(40)]  # 30 same pairs
    a, b, same = metrics.sample_pairs(labels, 100, seed=3, balanced=True)
    assert same.sum() == 30 and (~same).sum() == 30
    loose = metrics.sample_pairs(labels, 100, seed=3)
    assert (~loose[2]).sum() == 100
    assert np.array_equal(a[:30], loose[0][:30]) and np.array_equal(b[:30], loose[1][:30])  # the same draws
    many = [f"p{k}" for k in range(60) for _ in range(3)]  # enough same pairs: balanced changes nothing
    for got, want in zip(metrics.sample_pairs(many, 50, seed=1, balanced=True), metrics.sample_pairs(many, 50, seed=1),
                         strict=True):
        assert np.array_equal(got, want)


def test_open_set_threshold_accepts_at_most_the_target_share_of_validation_strangers():
    rng = np.random.default_rng(0)
    people = [rng.normal(size=16) for _ in range(6)]
    emb, labels = [], []
    for k, p in enumerate(people):  # 3 people with 8 photos (enrolled), 3 with 1 (strangers)
        for _ in range(8 if k < 3 else 1):
            emb.append(p + 0.3 * rng.normal(size=16))
            labels.append(f"p{k}")
    for k in range(40):  # more strangers, one photo each
        emb.append(rng.normal(size=16))
        labels.append(f"s{k}")
    emb = np.array(emb)
    chosen = metrics.open_set_threshold(emb, labels, enroll_images=5, stranger_rate=0.1)
    assert chosen["enrolled"] == 3 and chosen["strangers"] == 43
    assert chosen["stranger_rate"] <= 0.1
    stricter = metrics.open_set_threshold(emb, labels, enroll_images=5, stranger_rate=0.02)
    assert stricter["threshold"] > chosen["threshold"] and stricter["stranger_rate"] <= 0.02
    # tight: the strangers' best similarities just below it would let in more than the target share
    split = metrics.enrollment_split(labels, 5, seed=0)  # the split open_set_threshold enrolls by
    e = metrics.l2n(emb)
    cents = metrics.l2n(np.stack([e[idx].mean(axis=0) for idx in split.enroll.values()]))
    best = (e[split.strangers] @ cents.T).max(axis=1)
    assert np.mean(best >= chosen["threshold"]) == chosen["stranger_rate"]
    assert np.mean(best >= np.nextafter(chosen["threshold"], -np.inf)) > 0.1
    assert metrics.open_set_threshold(emb, labels, 5, 0.1, seed=0) == chosen  # seeded
    assert metrics.open_set_threshold(emb[:10], labels[:10], 5, 0.1) is None  # too few people to choose on


def _people_and_strangers(n_people=20, n_strangers=200, seed=0):
    """Synthetic validation people: ``n_people`` with 8 photos each (enrollable), ``n_strangers``
    with one photo (strangers), 16-value embeddings."""
    rng = np.random.default_rng(seed)
    emb, labels = [], []
    for k in range(n_people):
        centre = rng.normal(size=16)
        for _ in range(8):
            emb.append(centre + 0.6 * rng.normal(size=16))
            labels.append(f"p{k:02d}")
    for k in range(n_strangers):
        emb.append(rng.normal(size=16))
        labels.append(f"s{k:03d}")
    return np.array(emb), labels


def test_gallery_draws_are_seeded_and_the_whole_gallery_when_it_fits():
    people = [f"p{k}" for k in range(10)]
    draws = metrics.gallery_draws(people, 4, seed=3, draws=50)
    assert len(draws) == 50 and all(len(g) == 4 and len(set(g)) == 4 and set(g) <= set(people) for g in draws)
    assert len({tuple(g) for g in draws}) > 1  # different galleries
    assert draws == metrics.gallery_draws(people, 4, seed=3, draws=50)
    assert draws != metrics.gallery_draws(people, 4, seed=4, draws=50)
    assert metrics.gallery_draws(people, 10) == [people] == metrics.gallery_draws(people[::-1], 16)


def test_open_set_threshold_for_a_smaller_gallery_is_lower_and_meets_the_rate_on_average():
    emb, labels = _people_and_strangers()
    whole = metrics.open_set_threshold(emb, labels, enroll_images=5, stranger_rate=0.05)
    small = metrics.open_set_threshold(emb, labels, enroll_images=5, stranger_rate=0.05, gallery=4)
    assert (whole["gallery"], whole["draws"]) == (20, 1)
    assert (small["gallery"], small["draws"]) == (4, metrics.GALLERY_DRAWS) and small["enrolled"] == 20
    # fewer people to be mistaken for: a stranger's best match is lower, and so is the threshold
    assert small["threshold"] < whole["threshold"]
    # pooled over the draws, the share of strangers accepted meets the target, and tightly
    split = metrics.enrollment_split(labels, 5, seed=0)
    pooled = np.concatenate([metrics.stranger_scores(emb, {p: split.enroll[p] for p in g}, split.strangers)
                             for g in metrics.gallery_draws(split.enroll, 4, seed=0)])
    assert np.mean(pooled >= small["threshold"]) == pytest.approx(small["stranger_rate"])
    assert small["stranger_rate"] <= 0.05
    assert np.mean(pooled >= np.nextafter(small["threshold"], -np.inf)) > 0.05
    # the whole gallery at the smaller gallery's threshold accepts more than the target
    assert small["stranger_rate_all"] > 0.05 and whole["stranger_rate_all"] == whole["stranger_rate"]
    # probe accuracy: the mean over the same draws of identification by those people
    at = metrics.identification_at_gallery(emb, split.enroll, split.probes, split.strangers, small["threshold"], 4)
    assert small["probe_accuracy"] == at["accuracy"] and small["stranger_rate"] == at["stranger_false_accept_rate"]


def test_open_set_threshold_with_a_gallery_of_everyone_is_the_whole_gallery_rule():
    emb, labels = _people_and_strangers(n_people=6)
    whole = metrics.open_set_threshold(emb, labels, 5, 0.05)
    for gallery in (6, 16, 1000):
        assert metrics.open_set_threshold(emb, labels, 5, 0.05, gallery=gallery) == whole
    # the rule before gallery sizes: every stranger's best match over all enrolled people
    split = metrics.enrollment_split(labels, 5, seed=0)
    best = metrics.stranger_scores(emb, split.enroll, split.strangers)
    assert whole["threshold"] == metrics.threshold_for_rate(best, 0.05)
    ident = metrics.identification(emb, split.enroll, split.probes, split.strangers, whole["threshold"])
    assert whole["probe_accuracy"] == ident.accuracy
    assert whole["stranger_rate"] == float(np.mean(best >= whole["threshold"]))


def test_identification_at_gallery_is_the_mean_over_draws_of_the_drawn_peoples_identification():
    emb, labels = _people_and_strangers(n_people=10, n_strangers=60, seed=1)
    split = metrics.enrollment_split(labels, 5, seed=0)
    t = 0.6
    at = metrics.identification_at_gallery(emb, split.enroll, split.probes, split.strangers, t, 3, seed=2, draws=20)
    assert (at["gallery"], at["draws"]) == (3, 20)
    acc, far = [], []
    for g in metrics.gallery_draws(split.enroll, 3, seed=2, draws=20):
        sub = {p: split.enroll[p] for p in g}
        r = metrics.identification(emb, sub, [(i, p) for i, p in split.probes if p in sub], split.strangers, t)
        acc.append(r.accuracy)
        far.append(r.stranger_false_accept_rate)
    assert at["accuracy"] == pytest.approx(np.mean(acc))
    assert at["stranger_false_accept_rate"] == pytest.approx(np.mean(far))
    whole = metrics.identification(emb, split.enroll, split.probes, split.strangers, t)
    assert at["stranger_false_accept_rate"] < whole.stranger_false_accept_rate  # fewer people to be mistaken for
    big = metrics.identification_at_gallery(emb, split.enroll, split.probes, split.strangers, t, 16)
    assert big == {"gallery": 10, "draws": 1, "accuracy": whole.accuracy,
                   "stranger_false_accept_rate": whole.stranger_false_accept_rate}


def test_balanced_accuracy_sees_through_mostly_negative_pairs():
    # a model that knows nothing (random embeddings) on 10 people x 10 photos, all pairs: 90% of
    # the pairs are different people, so rejecting (nearly) everything scores ~90% accuracy
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    emb = rng.normal(size=(100, 32))
    a, b = np.triu_indices(100, k=1)
    same = labels[a] == labels[b]
    scores = metrics.pair_scores(emb, a, b)
    v = metrics.verification(scores, same, threshold=0.5)
    assert v.accuracy > 0.88  # the misleading figure
    assert v.balanced_accuracy == pytest.approx(0.5, abs=0.02)  # the honest one: a coin
    assert v.balanced_accuracy == pytest.approx((v.true_accept_rate + 1 - v.false_accept_rate) / 2)
    assert v.tar_at_far["0.01"] < 0.05


def test_rates_and_balanced_accuracy_on_hand_checked_pairs():
    scores = np.array([0.9, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1, 0.05])
    same = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    assert metrics.rates_at(scores, same, 0.5) == (pytest.approx(2 / 3), pytest.approx(1 / 5))
    v = metrics.verification(scores, same, 0.5)
    assert v.balanced_accuracy == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert v.accuracy == pytest.approx(6 / 8)


def test_threshold_for_a_target_false_accept_rate():
    scores = np.array([0.95, 0.9, 0.6, 0.8, 0.7, 0.5, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2])
    same = np.array([1, 1, 1] + [0] * 9, bool)
    # 9 negatives; at most 1/9 may be accepted at FAR 0.12: the threshold sits just above the
    # second-highest negative (0.7), so 0.8 is accepted and 0.7 is not
    t = metrics.threshold_at_far(scores, same, 0.12)
    assert 0.7 < t <= 0.7 + 1e-12
    assert metrics.rates_at(scores, same, t) == (pytest.approx(2 / 3), pytest.approx(1 / 9))
    # a rate below 1/9: nobody accepted, just above the highest negative
    t0 = metrics.threshold_at_far(scores, same, 0.05)
    assert 0.8 < t0 <= 0.8 + 1e-12 and metrics.rates_at(scores, same, t0)[1] == 0.0
    assert metrics.threshold_at_far(scores, same, 1.0) == pytest.approx(-0.2)  # everyone may pass


def test_stranger_scores_are_the_best_match_identification_compares():
    rng = np.random.default_rng(1)
    emb, labels = _clusters(rng, people=4, per_person=6, noise=0.3)
    enroll = {f"p{p}": [6 * p + k for k in range(3)] for p in range(3)}  # p3 is the stranger
    strangers = list(range(18, 24))
    best = metrics.stranger_scores(emb, enroll, strangers)
    t = metrics.threshold_for_rate(best, 0.34)  # at most 2 of the 6
    ident = metrics.identification(emb, enroll, [], strangers, t)
    assert ident.stranger_false_accept_rate == pytest.approx(np.mean(best >= t)) and np.sum(best >= t) == 2
    assert metrics.identification(emb, enroll, [], strangers, np.nextafter(t, -1)).stranger_false_accept_rate > 0.34


def test_identification_curve_is_identification_at_gallery_at_every_threshold():
    """The curve evaluate plots: at each threshold the same figures identification_at_gallery
    gives on the same draws, both falling as the threshold rises."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(30, 12))
    labels = [f"p{i}" for i in range(30) for _ in range(6 if i < 18 else 1)]
    emb = np.stack([centres[int(name[1:])] + 0.7 * rng.normal(size=12) for name in labels])
    split = metrics.enrollment_split(labels, 3, 0)
    thresholds = [0.2, 0.5, 0.6, 0.7, 0.9]
    curve = metrics.identification_curve(emb, split.enroll, split.probes, split.strangers, thresholds, 8, seed=0)
    assert curve["thresholds"] == thresholds and curve["gallery"] == 8 and curve["draws"] == metrics.GALLERY_DRAWS
    for t, acc, rate in zip(thresholds, curve["accuracy"], curve["stranger_false_accept_rate"], strict=True):
        at = metrics.identification_at_gallery(emb, split.enroll, split.probes, split.strangers, t, 8, seed=0)
        assert acc == pytest.approx(at["accuracy"]) and rate == pytest.approx(at["stranger_false_accept_rate"])
    assert curve["accuracy"] == sorted(curve["accuracy"], reverse=True) and curve["accuracy"][0] > curve["accuracy"][-1]
    assert curve["stranger_false_accept_rate"][0] > curve["stranger_false_accept_rate"][-1]


def _fixed_pairs():
    """600 pairs of seeded random scores (3 decimals, so with ties), 30% genuine ones higher."""
    rng = np.random.default_rng(20261205)
    scores = np.round(rng.uniform(-0.2, 1.0, 600), 3)
    same = rng.random(600) < 0.3
    scores[same] += 0.25
    return scores, same


# verification's output on _fixed_pairs before it computed the rates once (sha256 of
# to_dict(with_roc=True) as sorted JSON), at a threshold between scores, one equal to a score
# (scores[17] = 0.374), one that accepts every pair and one that accepts none
VERIFICATION_BEFORE = {
    0.41: "e450e954e770f37dd55099c064522dbdcb5c954d7c335646dda067ce6422686a",
    0.374: "b60e0fb7fdc7ca87b8ddb3c7599134968f5b9edce9ed65314e83afc84df1b62a",
    -1.0: "eb32ea14020b5e079c849d8d6ad28b14d6439491d5cffa73ebb5da8f460045b3",
    2.0: "ca23cf14c659b1c1d7b51dc2a103d77b82f6988911114b45a8185e641977ff35",
}


@pytest.mark.parametrize("threshold", sorted(VERIFICATION_BEFORE))
def test_verification_is_unchanged_to_the_last_digit(threshold):
    scores, same = _fixed_pairs()
    assert threshold != 0.374 or scores[17] == threshold
    v = metrics.verification(scores, same, threshold)
    if threshold == 0.41:  # the figures themselves, readable
        assert (v.accuracy, v.balanced_accuracy, v.true_accept_rate, v.false_accept_rate) == \
            (0.56, 0.5995441224356887, 0.7027027027027027, 0.5036144578313253)
    shown = v.to_dict(with_roc=True)
    # kept since (scores.png's data), beside the ROC: every figure before it is as it was
    histogram = shown["roc"].pop(metrics.SIMILARITY_HISTOGRAM_KEY)
    assert sum(histogram["same"]) == same.sum() and sum(histogram["different"]) == (~same).sum()
    digest = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
    assert digest == VERIFICATION_BEFORE[threshold]


def test_verification_computes_the_accept_rates_once(monkeypatch):
    """The true and false accept rates at the threshold are computed once: the balanced accuracy is
    made of them, not by computing them again (as verification did through balanced_accuracy)."""
    calls = []
    rates = metrics.rates_at

    def counted(*args):
        calls.append(args)
        return rates(*args)

    monkeypatch.setattr(metrics, "rates_at", counted)
    scores, same = _fixed_pairs()
    v = metrics.verification(scores, same, 0.41)
    assert len(calls) == 1
    assert v.balanced_accuracy == (v.true_accept_rate + 1.0 - v.false_accept_rate) / 2
    # the same figures as rates_at and balanced_accuracy give on their own
    monkeypatch.undo()
    assert metrics.rates_at(scores, same, 0.41) == (v.true_accept_rate, v.false_accept_rate)
    assert metrics.balanced_accuracy(scores, same, 0.41) == v.balanced_accuracy


# --- The metrics the benchmarks used to define for themselves, now tinyface.evaluation.metrics':
# a weighted ROC curve (benchmarks/compare_runs.py's bootstrap AUC), balanced accuracy
# (benchmarks/hard_faces_landmarks.py) and every same-person pair with as many different ones
# (benchmarks/hard_faces.py's balanced pairs).

def _pairs(n=300, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.3
    scores = rng.normal(0, 1, n) + 1.2 * same
    return (np.round(scores, 1) if ties else scores), same


def _mann_whitney(scores, same, weights):
    """The weighted AUC as compare_runs.py defined it: the chance that a genuine pair outscores an
    impostor pair, ties counting half."""
    w, y = np.asarray(weights, float), same.astype(bool)
    levels, inverse = np.unique(scores, return_inverse=True)
    impostors = np.bincount(inverse, weights=w * ~y, minlength=len(levels))
    below = np.concatenate([[0.0], np.cumsum(impostors)[:-1]])
    return float((w * y * (below + impostors / 2.0)[inverse]).sum() / ((w * y).sum() * (w * ~y).sum()))


@pytest.mark.parametrize("ties", [False, True])
def test_weights_count_each_pair_that_many_times_in_the_roc_curve(ties):
    scores, same = _pairs(seed=3, ties=ties)
    w = np.random.default_rng(4).integers(0, 4, len(scores))
    rows = np.repeat(np.arange(len(scores)), w)
    weighted = metrics.roc_curve(scores, same, w)
    repeated = metrics.roc_curve(scores[rows], same[rows])
    kept = np.isin(np.unique(scores)[::-1], np.unique(scores[rows]))  # levels whose pairs all weigh 0 repeat a point
    assert np.allclose(weighted[0][1:][kept], repeated[0][1:]) and np.allclose(weighted[1][1:][kept], repeated[1][1:])
    assert metrics.auc(*weighted) == pytest.approx(metrics.auc(*repeated), abs=1e-12)
    assert metrics.auc(*weighted) == pytest.approx(_mann_whitney(scores, same, w), abs=1e-12)
    unweighted = metrics.roc_curve(scores, same)
    ones = metrics.roc_curve(scores, same, np.ones(len(scores)))
    assert np.array_equal(unweighted[0], ones[0]) and np.array_equal(unweighted[1], ones[1])


def test_balanced_accuracy_at_a_threshold_is_the_verifications():
    scores, same = _pairs(seed=5)
    for threshold in (-1.0, 0.3, 0.9, 5.0):
        v = metrics.verification(scores, same, threshold)
        assert metrics.balanced_accuracy(scores, same, threshold) == v.balanced_accuracy
        assert v.balanced_accuracy == (v.true_accept_rate + 1 - v.false_accept_rate) / 2


@pytest.mark.parametrize("seed, ties", [(6, False), (7, True), (8, True)])
def test_balanced_accuracy_at_the_best_threshold_is_the_best_of_every_threshold(seed, ties):
    scores, same = _pairs(n=200, seed=seed, ties=ties)

    def at(t):
        return 0.5 * (np.mean(scores[same] >= t) + np.mean(scores[~same] < t))

    best = max(at(t) for t in np.unique(scores))
    assert metrics.balanced_accuracy(scores, same) == pytest.approx(best, abs=1e-15)
    assert metrics.balanced_accuracy(scores, same) > 0.5  # better than a coin on separated scores


def _balanced_pairs(labels, seed):
    """benchmarks/hard_faces.py's balanced pairs, as it defined them."""
    groups = {}
    for i, name in enumerate(labels):
        groups.setdefault(name, []).append(i)
    same = [(a, b) for g in groups.values() for k, a in enumerate(g) for b in g[k + 1:]]
    rng = random.Random(seed)
    names = list(groups)
    diff = set()
    while len(diff) < len(same):
        pa, pb = rng.sample(names, 2)
        i, j = rng.choice(groups[pa]), rng.choice(groups[pb])
        diff.add((min(i, j), max(i, j)))
    return same, sorted(diff)


@pytest.mark.parametrize("seed", range(5))
def test_every_same_pair_and_as_many_different_ones(seed):
    rng = random.Random(100 + seed)
    labels = [f"p{rng.randrange(12)}" for _ in range(60)]
    a, b, flags = metrics.sample_pairs(labels, None, seed)
    pairs = list(zip(a.tolist(), b.tolist(), strict=True))
    same = [(i, j) for i in range(60) for j in range(i + 1, 60) if labels[i] == labels[j]]
    assert sorted(p for p, f in zip(pairs, flags, strict=True) if f) == same  # every one, once
    assert flags.sum() == (~flags).sum() and len(set(pairs)) == len(pairs)
    assert all(labels[i] != labels[j] for (i, j), f in zip(pairs, flags, strict=True) if not f)
    old_same, old_diff = _balanced_pairs(labels, seed)  # the very pairs hard_faces.py drew
    assert sorted(old_same) == same and [p for p, f in zip(pairs, flags, strict=True) if not f] == old_diff
    again = metrics.sample_pairs(labels, None, seed)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, flags), again, strict=True))


def test_centroids_and_best_matches_give_the_same_figures_bit_for_bit():
    # they normalised the whole embedding matrix on every call (a gallery draw, a stranger set):
    # 22 s of a 99 s evaluation of all of LFW; each row's normalisation is its own, so the figures
    # must be bit for bit those of normalising everything first
    from tinyface.vectors import l2_normalize

    rng = np.random.default_rng(3)
    emb = rng.normal(size=(600, 32)).astype(np.float32)
    emb[7] = 0  # an all-zero row stays zero either way
    enroll = {f"p{i}": [int(j) for j in rng.choice(600, 1 + i % 4, replace=False)] for i in range(40)}
    e = l2_normalize(emb, np.float64)
    people, cents = metrics.centroids(emb, enroll)
    assert people == sorted(enroll)
    assert np.array_equal(cents, l2_normalize(np.stack([e[enroll[p]].mean(axis=0) for p in people]), np.float64))
    idx = [7, *range(0, 600, 7)]
    best, sims = metrics._best_matches(emb, cents, idx)
    full = e[idx] @ cents.T
    assert np.array_equal(best, np.argmax(full, axis=1))
    assert np.array_equal(sims, full[np.arange(len(idx)), best])
