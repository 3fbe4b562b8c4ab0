"""The LFW protocol files, parsed from the real files."""

from collections import Counter

import pytest

from tinyface.data import lfw
from tinyface.errors import DataError


def test_view1_pairs_counts(lfw_dir):
    train = lfw.read_pairs(lfw_dir / lfw.PAIRS_DEV_TRAIN)
    test = lfw.read_pairs(lfw_dir / lfw.PAIRS_DEV_TEST)
    assert len(train) == 2200 and len(test) == 1000
    assert sum(p.same for p in train) == 1100 and sum(p.same for p in test) == 500
    assert {p.fold for p in train} == {0} and {p.fold for p in test} == {0}
    # same-person lines come first, then different-person lines
    assert all(p.same for p in test[:500]) and not any(p.same for p in test[500:])


def test_view2_ten_folds_of_600(lfw_dir):
    pairs = lfw.read_pairs(lfw_dir / lfw.PAIRS_10FOLD)
    assert len(pairs) == 6000
    per_fold = Counter(p.fold for p in pairs)
    assert per_fold == {fold: 600 for fold in range(10)}
    same = Counter(p.fold for p in pairs if p.same)
    assert same == {fold: 300 for fold in range(10)}


def test_pairs_point_at_real_images(lfw_dir):
    images = lfw_dir / "images"
    for name in (lfw.PAIRS_DEV_TEST, lfw.PAIRS_10FOLD):
        for pair in lfw.read_pairs(lfw_dir / name):
            a, b = pair.paths(images)
            assert a.is_file() and b.is_file(), (a, b)
    first = lfw.read_pairs(lfw_dir / lfw.PAIRS_DEV_TEST)[0]
    assert first.paths(images)[0].name == f"{first.name_a}_{first.index_a:04d}.jpg"


def test_people_files(lfw_dir):
    dev_train = lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TRAIN)
    dev_test = lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TEST)
    assert len(dev_train) == 4038 and len(dev_test) == 1711
    train_names, test_names = {n for n, _ in dev_train}, {n for n, _ in dev_test}
    assert len(train_names) == 4038 and len(test_names) == 1711
    assert not train_names & test_names  # View 1's people are disjoint
    assert len(train_names | test_names) == 5749
    # the counts in the files are the images on disk
    for name, count in dev_test[:50]:
        assert len(list((lfw_dir / "images" / name).glob("*.jpg"))) == count


def test_view1_pairs_respect_the_people_split(lfw_dir):
    test_people = {n for n, _ in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TEST)}
    for pair in lfw.read_pairs(lfw_dir / lfw.PAIRS_DEV_TEST):
        assert pair.name_a in test_people and pair.name_b in test_people
    for pair in lfw.read_pairs(lfw_dir / lfw.PAIRS_DEV_TRAIN):
        assert pair.name_a not in test_people and pair.name_b not in test_people


def test_fold_people(lfw_dir):
    pairs = lfw.read_pairs(lfw_dir / lfw.PAIRS_10FOLD)
    people = [lfw.fold_people(pairs, f) for f in range(10)]
    assert all(people)
    assert not people[0] & people[1]  # View 2 folds are person-disjoint


@pytest.mark.parametrize("text, needle", [
    ("", "is empty"),
    ("x\n", "bad header"),
    ("1\nA 1 2\n", "expected 2 pairs"),
    ("1\nA 1 2\nB 1\n", "not a pair line"),
    ("1\nA 1 2\nA one B 2\n", "not a pair line"),
    ("1\nA 1 B 2\nA 1 2\n", "expected a same-person pair"),
])
def test_malformed_pairs_files_name_the_problem(tmp_path, text, needle):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=needle):
        lfw.read_pairs(path)


def test_missing_and_malformed_people_files(tmp_path):
    with pytest.raises(DataError, match="protocol file not found"):
        lfw.read_people(tmp_path / "peopleDevTest.txt")
    path = tmp_path / "people.txt"
    path.write_text("2\nAlice 3\nBob three\n")
    with pytest.raises(DataError, match=r"people.txt:3: bad image count"):
        lfw.read_people(path)


def test_a_protocol_file_that_cannot_be_read_is_a_data_error(tmp_path):
    # was: IsADirectoryError or PermissionError, an internal error (exit 70) in `bench --data`
    (tmp_path / "pairsDevTest.txt").mkdir()
    with pytest.raises(DataError, match="cannot read LFW protocol file .*pairsDevTest.txt: is a directory"):
        lfw.read_pairs(tmp_path / "pairsDevTest.txt")
