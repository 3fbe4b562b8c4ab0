"""tinyface.data.faces.cached_alignments: the landmarks prepare_faces cached, read back without
an aligner (the benchmarks' and the prepare_* functions' one way to read them)."""

import numpy as np
from PIL import Image

from tinyface.data.align import ChipAligner
from tinyface.data.cache import FaceCache, content_hash
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec, cached_alignments, prepare_faces


def _chips(folder, sizes):
    """Face chips (noise; ChipAligner places the landmarks from the size alone) of these sizes."""
    rng = np.random.default_rng(0)
    paths = []
    for k, size in enumerate(sizes):
        path = folder / f"chip{k}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_cached_alignments_are_the_ones_prepare_faces_found_and_none_where_it_found_none(tmp_path):
    (tmp_path / "other").mkdir()
    aligned, not_aligned = _chips(tmp_path, [100, 120]), _chips(tmp_path / "other", [90])[0]
    spec = FaceSpec(crop_size=32, channels=1, source_chip_padding=0.25)  # no detector: ChipAligner
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces(aligned, spec, cache, workers=1)
        assert faces.ok.all()
        got = cached_alignments([*aligned, not_aligned], spec, cache)
        assert got[2] is None
        for path, alignment in zip(aligned, got[:2]):
            expected = ChipAligner(0.25).detect(read_image(path))
            assert np.array_equal(alignment.landmarks, expected.landmarks)
            assert (alignment.detected, alignment.method) == (expected.detected, expected.method) == (True, "chip")
        # the caller's hashes give the same, and only the landmark settings matter, not the crop's
        hashes = [content_hash(p.read_bytes()) for p in aligned]
        again = cached_alignments(aligned, FaceSpec(crop_size=64, source_chip_padding=0.25), cache, hashes)
        assert all(np.array_equal(a.landmarks, b.landmarks) for a, b in zip(again, got))
        # landmarks found another way (the photo aligner) are other entries
        assert cached_alignments(aligned, FaceSpec(), cache) == [None, None]
        assert cached_alignments([], spec, cache) == []
