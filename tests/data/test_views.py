"""Teacher views: one perturbation cut at two sizes shows the same face, the teacher
embeds that very view, and views are deterministic and cached."""

import numpy as np

from tinyface.data.align import Aligner, Perturbation, chip_affine, map_points
from tinyface.data.cache import FaceCache
from tinyface.data.dataset import read_image
from tinyface.data.faces import FaceSpec, prepare_faces, prepare_views


def test_a_perturbation_moves_landmarks_the_same_way_at_any_chip_size(lfw_dir):
    rgb = read_image(lfw_dir / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    alignment = Aligner().detect(rgb)
    p = Perturbation(angle_deg=9.0, scale=1.05, shift_x=0.04, shift_y=-0.03, flip=True)
    normalised = []
    for size in (64, 150):
        m = (p.matrix(size) @ np.vstack([chip_affine(alignment, rgb.shape[:2], size, 0.25), [0, 0, 1]]))[:2]
        normalised.append(map_points(m, alignment.landmarks) / (size - 1))
    # equal up to the shift, which is a fraction of the side (size), not of size - 1: < 0.1%
    assert np.allclose(normalised[0], normalised[1], atol=1e-3)
    # the mirror puts the subject's right eye (landmarks 0-1) on the chip's left
    assert normalised[0][0, 0] < 0.5 < normalised[0][2, 0]


def test_views_are_deterministic_cached_and_embedded_per_view(lfw_dir, tmp_path):
    paths = sorted((lfw_dir / "images" / "Abdullah_Gul").glob("*.jpg"))[:3]
    spec = FaceSpec(crop_size=32, channels=1, padding=0.1, teacher=True)
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces(paths, spec, cache, workers=1)
        done = []
        ok, crops, teacher = prepare_views(paths, spec, cache, 2, workers=1, progress=done.append)
        assert sum(done) == 3  # one per image
        assert ok.all() and crops.shape == (3, 2, 32, 32, 1) and teacher.shape == (3, 2, 128)
        # each view differs from the original crop and from the other view
        assert not np.array_equal(crops[0, 0], faces.crops[0]) and not np.array_equal(crops[0, 0], crops[0, 1])
        # the teacher sees the view: close to, but not the same as, the original's embedding
        cos = np.sum(teacher[:, 0] * faces.teacher, axis=1)
        assert np.all(cos > 0.9) and np.all(cos < 0.99999)

        calls = []

        def forbidden(job):
            calls.append(job)
            raise AssertionError("the second run must come from the cache")

        import tinyface.data.faces as faces_module

        original = faces_module._process_views
        faces_module._process_views = forbidden
        try:
            done = []
            ok2, crops2, teacher2 = prepare_views(paths, spec, cache, 2, workers=1, progress=done.append)
        finally:
            faces_module._process_views = original
        assert not calls and np.array_equal(crops, crops2) and np.array_equal(teacher, teacher2)
        assert sum(done) == 3  # cached images count too: the pass's progress reaches its total
