"""Teacher mixes: blends of two people, planned deterministically, embedded by the teacher
on the blended chip, and cached."""

import numpy as np

from tinyface.data.cache import FaceCache
from tinyface.data.faces import FaceSpec, blend, plan_mixes, prepare_faces, prepare_mixes


def test_a_plan_is_seeded_and_always_pairs_two_different_people():
    labels = ["a", "a", "a", "b", "c", "c"]
    plan = plan_mixes(labels, 3, seed=7)
    assert len(plan) == 18 and plan == plan_mixes(labels, 3, seed=7) and plan != plan_mixes(labels, 3, seed=8)
    assert all(labels[m.a] != labels[m.b] and 0.2 <= m.lam <= 0.8 for m in plan)
    assert [m.a for m in plan[:6]] == list(range(6))  # every image gets each of its mixes


def test_more_mixes_extend_the_plan_so_the_cached_ones_are_reused():
    labels = ["a", "b", "b", "c", "d"] * 3
    assert plan_mixes(labels, 5, seed=1)[:2 * len(labels)] == plan_mixes(labels, 2, seed=1)


def test_blend_is_the_rounded_weighted_sum():
    a, b = np.full((2, 2, 1), 200, np.uint8), np.full((2, 2, 1), 11, np.uint8)
    assert blend(a, b, 0.25).flat[0] == round(0.25 * 200 + 0.75 * 11)
    assert np.array_equal(blend(a, b, 1.0), a)


def test_the_teacher_embeds_the_blend_once_and_later_runs_read_the_cache(lfw_dir, tmp_path):
    paths = [sorted((lfw_dir / "images" / name).glob("*.jpg"))[0] for name in ("Abdullah_Gul", "Aaron_Eckhart")]
    spec = FaceSpec(crop_size=32, channels=1, padding=0.1, teacher=True)
    plan = plan_mixes(["Abdullah_Gul", "Aaron_Eckhart"], 1, seed=0)
    with FaceCache(tmp_path / "cache") as cache:
        faces = prepare_faces(paths, spec, cache, workers=1)
        ok, teacher = prepare_mixes(paths, plan, spec, cache, workers=1)
        assert ok.all() and teacher.shape == (2, 128)
        for m, emb in zip(plan, teacher, strict=True):
            # the blend's embedding lies between the two people's, nearer the heavier one
            near, far = (m.a, m.b) if m.lam > 0.5 else (m.b, m.a)
            assert emb @ faces.teacher[near] > emb @ faces.teacher[far]
            assert emb @ faces.teacher[near] < 0.9999

        import tinyface.data.faces as faces_module

        original = faces_module._process_chip
        faces_module._process_chip = lambda job: (_ for _ in ()).throw(AssertionError("must come from the cache"))
        try:
            ok2, teacher2 = prepare_mixes(paths, plan, spec, cache, workers=1)
        finally:
            faces_module._process_chip = original
        assert ok2.all() and np.array_equal(teacher, teacher2)


def test_mixes_over_more_images_than_fit_in_memory_come_in_chunks_with_the_same_result(lfw_dir, tmp_path, monkeypatch):
    import tinyface.data.faces as faces_module

    names = ("Abdullah_Gul", "Aaron_Eckhart", "Adrien_Brody")
    paths = [sorted((lfw_dir / "images" / name).glob("*.jpg"))[0] for name in names]
    spec = FaceSpec(crop_size=32, channels=1, padding=0.1, teacher=True)
    plan = plan_mixes(list(names), 2, seed=3)
    with FaceCache(tmp_path / "all") as cache:
        prepare_faces(paths, spec, cache, workers=1)
        ok, teacher = prepare_mixes(paths, plan, spec, cache, workers=1)
    # two images at a time: each chunk is the mixes of one pair, all of them in order
    chunks = list(faces_module._chunks_by_images(list(range(len(plan))), plan, 2))
    assert len(chunks) > 1 and sum(chunks, []) == list(range(len(plan)))
    assert all(len({i for k in c for i in (plan[k].a, plan[k].b)}) == 2 for c in chunks)
    monkeypatch.setattr(faces_module, "MIX_CHIPS_IN_MEMORY", 2)
    with FaceCache(tmp_path / "chunked") as cache:
        prepare_faces(paths, spec, cache, workers=1)
        done = []
        ok2, teacher2 = prepare_mixes(paths, plan, spec, cache, workers=1, progress=done.append)
        assert sum(done) == len(plan)
        done = []
        prepare_mixes(paths, plan, spec, cache, workers=1, progress=done.append)
        assert sum(done) == len(plan)  # all cached: the pass still reaches its total
    assert ok.all() and ok2.all() and np.allclose(teacher, teacher2, atol=1e-6)
