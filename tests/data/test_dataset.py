"""tinyface.data.dataset: single bad files are skipped, counted and named (the reason, not the path
again); an unusable dataset, or a path that is not a folder, fails with the reason; an image too large
is refused from its header. Every dataset here is built from copies of real LFW images. (What
`tinyface data stats` shows of them: tests/cli/test_data.py.)"""

import pytest

from tinyface import errors
from tinyface.data.dataset import ImageError, check_images, load_dataset, read_image
from tinyface.errors import DataError


def test_each_bad_file_is_skipped_counted_and_named(spoiled):
    root, expected = spoiled
    listed = load_dataset(root)
    checked = check_images(listed)
    assert len(checked.images) == 12 and len(checked.identities) == 4
    reasons = {s.path.name: s.reason for s in checked.skipped}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])
        assert str(root) not in reasons[name]  # the reason, not the path again
    with pytest.raises(DataError, match="too small"):
        read_image(next(s.path for s in checked.skipped if s.path.name == "tiny.jpg"))


def test_an_unusable_dataset_fails_with_the_reason(small_dataset):
    people = sorted((small_dataset / "images").iterdir())
    for person in people[1:]:
        for p in person.glob("*.jpg"):
            p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError, match="fewer than 2 people have a readable image .9 file.s. skipped"):
        check_images(load_dataset(small_dataset))


def test_a_dataset_path_that_is_a_file_says_what_to_pass(tmp_path):
    from tinyface.data.dataset import load_dataset

    (tmp_path / "afile").write_text("x")
    with pytest.raises(errors.DataError) as info:
        load_dataset(tmp_path / "afile")
    line = info.value.one_line()
    assert line.startswith(f"dataset path is not a folder: {tmp_path / 'afile'} (") and "--data DIR" in line
    assert "one sub-folder of photos per person" in line


def test_a_20000px_png_is_refused_from_its_header_in_one_line(bomb):
    with pytest.raises(ImageError) as exc:
        read_image(bomb)
    assert exc.value.reason == "image too large (20000x20000 px = 400 megapixels; the limit is 200)"
