"""tinyface.data.stats: identities, images and the images-per-person histogram of a dataset (all
of LFW, listed without decoding), and a person whose every image is bad is not counted.
(`tinyface data stats`: tests/cli/test_data.py.)"""

from tinyface.data.dataset import load_dataset
from tinyface.data.stats import dataset_stats


def test_all_of_lfw_is_listed(lfw_dir):
    ds = load_dataset(lfw_dir)
    assert ds.is_lfw()
    stats = dataset_stats(ds, check=False)
    assert (stats.identities, stats.images) == (5749, 13233)
    assert sum(stats.images_per_person.values()) == 5749
    assert stats.images_per_person["1"] == 4069
    assert stats.people_with_at_least == {2: 1680, 5: 423, 10: 158}
    assert not stats.skipped and not stats.checked


def test_a_person_with_only_bad_images_is_not_counted(small_dataset):
    person = sorted((small_dataset / "images").iterdir())[0]
    for p in person.glob("*.jpg"):
        p.write_bytes(b"garbage")
    stats = dataset_stats(load_dataset(small_dataset), check=True)
    assert stats.identities == 3 and stats.images == 9 and len(stats.skipped) == 3
