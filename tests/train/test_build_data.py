"""tinyface.train.build_data: a `--quick` build reads no test image but those it evaluates. The
contamination filters' reference was every image of the test people (3,708 of LFW's, for a smoke
test that scores a few hundred); a full build's reference is still every one of them. And
data.test_filter (filter_test_copies): LFW files some test photos again under a training person's
name (the same photo under two names, a group photo's other face, one person under two
spellings); real LFW photos, the real teacher."""

from pathlib import Path

import pytest

from tinyface import config
from tinyface.data.cache import FaceCache
from tinyface.data.faces import FaceSpec, prepare_faces
from tinyface.train.build_data import Faces, filter_test_copies

# LFW's protocol roles: training people (peopleDevTrain) and test people (peopleDevTest); with
# data.identify_min_images=4, Alvaro_Uribe's 3 photos make him a stranger (one photo evaluated).
TRAINING = {"Aaron_Peirsol": 3, "Abdullah": 3, "Alejandro_Toledo": 3, "Ari_Fleischer": 3}
TEST = {"Abdullah_Gul": 4, "Adrien_Brody": 4, "Alvaro_Uribe": 3}


@pytest.mark.usefixtures("own_folder")
@pytest.mark.parametrize("quick", [True, False])
def test_a_quick_build_reads_no_test_image_but_those_it_evaluates(make_dataset, monkeypatch, quick):
    from tinyface import config
    from tinyface.train import build_data

    root = make_dataset({**TRAINING, **TEST}, protocol=True)
    read: list[Path] = []

    def prepare_faces(paths, *args, **kwargs):
        read.extend(Path(p) for p in paths)
        return real(paths, *args, **kwargs)

    real = build_data.prepare_faces
    monkeypatch.setattr(build_data, "prepare_faces", prepare_faces)
    settings = config.load(overrides={"data": {"dir": str(root), "identify_min_images": 4, "enroll_images": 2,
                                               "val_fraction": 0.25, "workers": 1}})
    assert settings.data.test_filter > 0  # the default: the filter runs
    data = build_data.load_build_data(settings, quick=quick)
    test_images = {p for p in (root / "images").rglob("*.jpg") if p.parent.name in TEST}
    evaluated = set(data.eval.paths) & test_images
    assert evaluated and evaluated != test_images  # some test photos are not scored (Alvaro's other two)
    read_of_test = {p for p in read if p in test_images}
    if quick:
        assert read_of_test == evaluated  # was: every test image (the filter's reference)
    else:
        assert read_of_test == test_images  # a real build's reference: every image of the test people
    # what the filter dropped is reported either way
    assert set(data.stats["test_filter"]) == {"distance", "train_near_test_image", "train_named_as_test_person",
                                              "val_near_test_image", "val_named_as_test_person"}


# --- data.test_filter ---------------------------------------------------------------------------------
# copies of test photos and renamed test people are dropped from the training faces
# (filter_test_copies).

# (training person's photo, the test person's photo it is): found by the filter on LFW
SAME_PHOTO = [("Raul_Ibanez_0001", "Carlos_Beltran_0001"), ("Emmy_Rossum_0001", "Eva_Amurri_0001")]
TEST_ONLY = ["Aaron_Eckhart_0001"]  # more test images, nobody's copy
OTHER_TRAINING = ["Aaron_Peirsol_0001", "Abdullah_Gul_0001"]  # training photos of nobody in the test
# Choi_Sung-hong (peopleDevTrain) is Sung_Hong_Choi (peopleDevTest); this photo of him lies
# further than 0.25 from the test one: only his name gives him away
RENAMED = "Choi_Sung-hong_0001"


def _path(lfw_dir, name):
    return lfw_dir / "images" / name.rsplit("_", 1)[0] / f"{name}.jpg"


def _faces(lfw_dir, names, cache, spec):
    res = prepare_faces([_path(lfw_dir, n) for n in names], spec, cache, workers=1)
    assert res.ok.all()
    return Faces(res.crops, res.teacher, [n.rsplit("_", 1)[0] for n in names], [_path(lfw_dir, n) for n in names])


@pytest.fixture(scope="module")
def faces(lfw_dir, tmp_path_factory):
    s = config.load(overrides={"data": {"cache_dir": str(tmp_path_factory.mktemp("cache")), "workers": 1}})
    spec = FaceSpec.from_settings(s, teacher=True)
    training = [a for a, _ in SAME_PHOTO] + OTHER_TRAINING + [RENAMED]
    test = [b for _, b in SAME_PHOTO] + TEST_ONLY + ["Sung_Hong_Choi_0001"]
    with FaceCache(s.data.cache_path()) as cache:
        return _faces(lfw_dir, training, cache, spec), _faces(lfw_dir, test, cache, spec)


def test_copies_of_test_photos_and_renamed_test_people_are_dropped(faces):
    train, test = faces
    test_people = sorted(set(test.labels))
    kept, counts = filter_test_copies(train, test.teacher, test_people, 0.25)
    assert kept.labels == ["Aaron_Peirsol", "Abdullah_Gul"]
    assert counts == {"near_test_image": 2, "named_as_test_person": 1}
    assert len(kept.crops) == len(kept.teacher) == len(kept.paths) == 2
    assert [p.name for p in kept.paths] == ["Aaron_Peirsol_0001.jpg", "Abdullah_Gul_0001.jpg"]


def test_the_distance_is_the_setting(faces):
    """The same photo re-cut lies well inside 0.25; other people lie outside it, and the name
    rule holds at any distance."""
    train, test = faces
    test_people = sorted(set(test.labels))
    _, tight = filter_test_copies(train, test.teacher, test_people, 0.01)
    assert tight == {"near_test_image": 0, "named_as_test_person": 1}
    _, loose = filter_test_copies(train, test.teacher, test_people, 2.1)  # every unit vector is within 2
    assert loose["near_test_image"] == len(train.labels)


def test_a_quick_build_keeps_probes_of_every_person_it_enrolls():
    # was: the first 80 probes in order, which can leave the last of the 8 people enrolled without a
    # probe (a person with many photos before it takes its share)
    from tinyface.train.build_data import first_probes_of_each

    people = [f"p{k}" for k in range(8)]
    probes = [(10 * k + j, person) for k, person in enumerate(people) for j in range(12)] + [(99, "other")]
    kept = first_probes_of_each(probes, people, 80 // len(people))
    assert [n for _, n in kept] == [p for p in people for _ in range(10)]
    assert kept[:10] == probes[:10] and (99, "other") not in kept
    assert first_probes_of_each([(1, "a"), (2, "b"), (3, "a")], ["a", "b"], 1) == [(1, "a"), (2, "b")]
