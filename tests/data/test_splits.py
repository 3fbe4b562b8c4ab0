"""Who is used for what: training people only from peopleDevTrain; the DevTest people are
held out; identification is a seeded enrollment split of the 47 DevTest people with >= 10 images."""

import pytest

from tinyface.data import lfw, splits
from tinyface.data.dataset import load_dataset
from tinyface.errors import DataError


@pytest.fixture(scope="module")
def lfw_dataset(lfw_dir):
    return load_dataset(lfw_dir)


def test_train_and_validation_come_only_from_dev_train(lfw_dataset, lfw_dir):
    split = splits.train_val_test(lfw_dataset, val_fraction=0.1, seed=0)
    dev_train = {n for n, _ in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TRAIN)}
    dev_test = {n for n, _ in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TEST)}
    train_people = {im.identity for im in split.train}
    val_people = {im.identity for im in split.val}
    assert split.source == "lfw-view1"
    assert train_people | val_people == dev_train
    assert not train_people & val_people
    assert not (train_people | val_people) & dev_test  # the held-out rule
    assert set(split.test_people) == dev_test
    assert len(val_people) == round(0.1 * len(dev_train))
    # every image of the DevTrain people is used exactly once
    assert len(split.train) + len(split.val) == sum(c for _, c in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TRAIN))


def test_train_val_split_is_seeded(lfw_dataset):
    a = splits.train_val_test(lfw_dataset, 0.1, seed=0)
    b = splits.train_val_test(lfw_dataset, 0.1, seed=0)
    c = splits.train_val_test(lfw_dataset, 0.1, seed=1)
    assert [im.path for im in a.val] == [im.path for im in b.val]
    assert {im.identity for im in a.val} != {im.identity for im in c.val}


def _dev_test_split(lfw_dataset, dev_test, seed=0):
    """The build's identification split of the test people (train/build_data.py's call)."""
    from tinyface.evaluation import metrics

    groups = lfw_dataset.by_identity()
    images = [im for person in sorted(dev_test) for im in sorted(groups.get(person, []), key=lambda im: im.path.name)]
    split = metrics.enrollment_split([im.identity for im in images], 5, seed, min_images=10, max_strangers=500)
    return images, split


def test_identification_split_of_dev_test(lfw_dataset, lfw_dir):
    dev_test = [n for n, _ in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TEST)]
    images, ident = _dev_test_split(lfw_dataset, dev_test)
    assert len(ident.enroll) == 47
    assert all(len(idx) == 5 for idx in ident.enroll.values())
    groups = lfw_dataset.by_identity()
    for person, enrolled in ident.enroll.items():
        probes = [i for i, p in ident.probes if p == person]
        assert len(probes) == len(groups[person]) - 5
        assert not set(enrolled) & set(probes)
    assert set(ident.enroll) <= set(dev_test)
    assert {images[i].identity for i in ident.strangers}.isdisjoint(ident.enroll)
    assert len(ident.strangers) == 500
    # seeded: the same seed gives the same enrollment, another seed another one
    assert _dev_test_split(lfw_dataset, dev_test)[1].enroll == ident.enroll
    assert _dev_test_split(lfw_dataset, dev_test, seed=1)[1].enroll != ident.enroll


def test_a_build_needs_two_people_to_identify(small_dataset, tmp_path):
    from tinyface import config
    from tinyface.train.build_data import load_build_data

    s = config.load(overrides={"data": {"dir": str(small_dataset), "identify_min_images": 10, "enroll_images": 5,
                                        "cache_dir": str(tmp_path / "cache")}})
    with pytest.raises(DataError, match="at least 2 people with >= 10 images"):
        load_build_data(s)


def test_a_plain_folder_dataset_is_split_by_people(make_dataset):
    people = {name: 2 for name in ["Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Alejandro_Toledo",
                                   "Ari_Fleischer", "Alvaro_Uribe", "Amelie_Mauresmo", "Andre_Agassi",
                                   "Andy_Roddick", "Angelina_Jolie"]}
    root = make_dataset(people)
    ds = load_dataset(root)
    assert not ds.is_lfw()
    split = splits.train_val_test(ds, val_fraction=0.2, seed=3)
    train, val = {im.identity for im in split.train}, {im.identity for im in split.val}
    test = set(split.test_people)
    assert split.source == "folders"
    assert len(test) == 3 and not (train | val) & test and not train & val
    assert train | val | test == set(people)


def test_lfws_images_folder_given_as_a_folder_of_people_is_refused(lfw_dir):
    """`--data lfw/images` would split LFW's people by a seeded shuffle and train on its test
    people; the split refuses it, naming the folder to give instead."""
    with pytest.raises(DataError, match="images/ folder of an LFW dataset") as info:
        splits.train_val_test(load_dataset(lfw_dir / "images"), val_fraction=0.1, seed=0)
    assert f"--data {lfw_dir}" in info.value.one_line()


def test_built_on_names_a_folder_builds_people_only_for_the_folder_it_split(lfw_dataset, small_dataset):
    """model.json's extra.split.people (people_fingerprint) ties a model to the people its build
    split: built_on gives them back for the same people, and nothing for LFW (its people lists say
    it), for another folder or for a record without the settings."""
    own = load_dataset(small_dataset)
    record = {"seed": 0, "val_fraction": 0.1, "people": splits.people_fingerprint(own)}
    split = splits.train_val_test(own, 0.1, 0, min_train=0)
    assert splits.built_on(own, record) == {im.identity for im in (*split.train, *split.val)}
    assert splits.built_on(own, {"seed": 0, "val_fraction": 0.1}) is None
    assert splits.built_on(own, {"people": record["people"]}) is None
    lfw_record = {**record, "people": splits.people_fingerprint(lfw_dataset)}
    assert splits.built_on(lfw_dataset, lfw_record) is None


def test_built_on_a_quick_build_names_only_the_people_of_its_sample(lfw_dataset, make_dataset, monkeypatch):
    # was: `evaluate` on the folder a --quick model was built from counted every training person,
    # though a quick build trains on a sample of their images (splits.quick_sample)
    names = sorted(p for p, images in lfw_dataset.by_identity().items() if len(images) >= 2)[:20]
    own = load_dataset(make_dataset({name: 2 for name in names}))
    record = {"seed": 3, "val_fraction": 0.2, "people": splits.people_fingerprint(own)}
    split = splits.train_val_test(own, 0.2, 3, min_train=0)
    monkeypatch.setattr(splits, "QUICK_TRAIN_IMAGES", 4)
    monkeypatch.setattr(splits, "QUICK_VAL_IMAGES", 1)
    import random

    train, val = splits.quick_sample(split, random.Random(3))
    assert len(train) == 4 and len(val) == 1
    everyone = {im.identity for im in (*split.train, *split.val)}
    sampled = {im.identity for im in (*train, *val)}
    assert splits.built_on(own, {**record, "quick": True}) == sampled < everyone
    assert splits.built_on(own, record) == everyone
