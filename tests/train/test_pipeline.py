"""tinyface.train.pipeline: how many people each role of a build's split gets (a dataset too small
for the splits is refused with the numbers needed: tests/cli/test_build.py), and the dataset a
build names as the one it used."""

from pathlib import Path

from tests.conftest import copy_people
from tinyface.train.pipeline import _role_counts, describe_dataset


def test_the_role_counts_follow_the_split_and_21_people_is_the_least():
    from tinyface.data.dataset import Dataset, FaceImage
    from tinyface.data.splits import train_val_test

    for n in (5, 20, 21, 40):
        images = [FaceImage(Path(f"/x/p{i}/{k}.jpg"), f"p{i}") for i in range(n) for k in range(2)]
        split = train_val_test(Dataset(Path("/x"), Path("/x"), images),
                               0.1, seed=0)
        counts = (len({im.identity for im in split.train}), len({im.identity for im in split.val}),
                  len(split.test_people))
        assert counts == _role_counts(n, 0.1)
    assert min(_role_counts(20, 0.1)) < 2 <= min(_role_counts(21, 0.1))


def test_the_dataset_is_named_as_it_is(lfw_dir, tmp_path):
    assert describe_dataset(lfw_dir)["test"] == "LFW pairsDevTest"
    own = copy_people(lfw_dir, tmp_path / "office", {"George_W_Bush": 2, "Colin_Powell": 2}, flat=True)
    info = describe_dataset(own)
    assert info["kind"] == "folders" and info["name"] == "office" and "LFW" not in info["test"]
