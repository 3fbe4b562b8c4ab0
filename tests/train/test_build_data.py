"""tinyface.train.build_data: a `--quick` build reads no test image but those it evaluates. The
contamination filters' reference was every image of the test people (3,708 of LFW's, for a smoke
test that scores a few hundred); a full build's reference is still every one of them."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("own_folder")


# LFW's protocol roles: training people (peopleDevTrain) and test people (peopleDevTest); with
# data.identify_min_images=4, Alvaro_Uribe's 3 photos make him a stranger (one photo evaluated).
TRAINING = {"Aaron_Peirsol": 3, "Abdullah": 3, "Alejandro_Toledo": 3, "Ari_Fleischer": 3}
TEST = {"Abdullah_Gul": 4, "Adrien_Brody": 4, "Alvaro_Uribe": 3}


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
