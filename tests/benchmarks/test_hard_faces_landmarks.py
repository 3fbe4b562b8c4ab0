"""benchmarks/hard_faces_landmarks.py says whose pairs it scores."""

from tests.conftest import BENCHMARKS
from tests.conftest import load_benchmark as _load


def test_hard_faces_landmarks_does_not_claim_hard_faces_pairs():
    """It lists the untouched photos by path (people in name order); hard_faces.py's pairs follow
    its draw (drawn_people). The same people in another order give other different-person pairs."""
    from tinyface.evaluation.metrics import sample_pairs

    script = _load("hard_faces_landmarks")
    doc = " ".join(script.__doc__.split())
    assert "over hard_faces.py's balanced pairs" not in doc
    assert "They are not hard_faces.py's pairs: the people are listed in name order" in doc
    source = (BENCHMARKS / "hard_faces_landmarks.py").read_text(encoding="utf-8")
    assert "# hard_faces.py's pairs" not in source
    # what the docstring says of the pairs, on labels of 6 people with 2 photos each
    people = ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay"]
    by_name = [p for p in people for _ in range(2)]
    drawn = [p for p in ["Eve", "Bob", "Fay", "Ann", "Dan", "Cid"] for _ in range(2)]

    def pairs(labels):
        a, b, same = sample_pairs(labels, None, 0)
        return ({frozenset({(labels[i], i % 2), (labels[j], j % 2)}) for i, j in zip(a[same], b[same])},
                {frozenset({(labels[i], i % 2), (labels[j], j % 2)}) for i, j in zip(a[~same], b[~same])})

    assert pairs(by_name)[0] == pairs(drawn)[0] and pairs(by_name)[1] != pairs(drawn)[1]
