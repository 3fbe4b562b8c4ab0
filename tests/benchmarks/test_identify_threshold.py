"""benchmarks/identify_threshold.py --write: model.json's identify_threshold and the model
card's threshold sentence replaced in a copy of the released bundle, everything else kept."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_released_model
from tinyface.errors import ModelError
from tinyface.model.bundle import load_bundle

REPO = Path(__file__).resolve().parents[2]
RELEASED = REPO / "models" / "esp32"
_spec = importlib.util.spec_from_file_location("identify_threshold", REPO / "benchmarks" / "identify_threshold.py")
identify_threshold = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(identify_threshold)


@pytest.fixture
def bundle(tmp_path):
    require_released_model()
    folder = tmp_path / "esp32"
    folder.mkdir()
    for name in ("model.tflite", "model.json", "MODEL_CARD.md"):
        shutil.copy(RELEASED / name, folder / name)
    return folder


def test_write_replaces_the_threshold_and_the_card_sentence_only(bundle):
    before = json.loads((bundle / "model.json").read_text())
    card = (bundle / "MODEL_CARD.md").read_text()
    sentence = identify_threshold.write_threshold(bundle, 0.654321, 0.05, 16)
    after = json.loads((bundle / "model.json").read_text())
    assert after == {**before, "identify_threshold": 0.654321} and list(after) == list(before)
    assert load_bundle(bundle).meta.identify_at == pytest.approx(0.654321)  # sha256 of the .tflite still holds
    new_card = (bundle / "MODEL_CARD.md").read_text()
    assert "accepts at >= **0.6543**" in sentence
    assert "by a gallery of 16 people (fewer when fewer are enrolled)" in sentence
    assert sentence in new_card and f"**{before['identify_threshold']:.4f}**" not in new_card
    old_start = card.index("identification (IDENTIFY")
    old_end = card.index(".", card.index("strangers are accepted", old_start)) + 1
    assert new_card == card[:old_start] + sentence + card[old_end:]
    # the new wording is found again: a second --write replaces it
    identify_threshold.write_threshold(bundle, 0.7, 0.05, 8)
    assert "**0.7000**" in (bundle / "MODEL_CARD.md").read_text() and "gallery of 8 people" in \
        (bundle / "MODEL_CARD.md").read_text()


def test_write_refuses_a_card_without_the_sentence_and_writes_nothing(bundle):
    (bundle / "MODEL_CARD.md").write_text("# Model card\n\nno threshold sentence here\n")
    before = (bundle / "model.json").read_bytes()
    with pytest.raises(ModelError, match="no identification-threshold sentence"):
        identify_threshold.write_threshold(bundle, 0.6, 0.05, 16)
    assert (bundle / "model.json").read_bytes() == before


def test_gallery_table_figures_by_threshold_on_the_same_draws():
    """--at's columns: each threshold's strangers accepted and probes right on the same seeded
    galleries, a stricter threshold accepting no more of either; None = every enrollable person."""
    from tinyface.evaluation import metrics

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 16))
    labels = [f"p{i}" for i in range(40) for _ in range(8 if i < 20 else 1)]
    emb = np.stack([centres[int(name[1:])] + 0.6 * rng.normal(size=16) for name in labels])
    split = metrics.enrollment_split(labels, 3, 0)
    rows = identify_threshold.gallery_table(emb, split, [0.3, 0.6, 0.9], 0, galleries=(4, None))
    assert [row["gallery"] for row in rows] == [4, len(split.enroll)]
    for row in rows:
        strangers, probes = zip(*row["at"], strict=True)
        assert list(strangers) == sorted(strangers, reverse=True) and list(probes) == sorted(probes, reverse=True)
        assert strangers[0] > strangers[2] and probes[0] > probes[2]
    at = metrics.identification_at_gallery(emb, split.enroll, split.probes, split.strangers, 0.6, 4, 0)
    assert rows[0]["at"][1] == (at["stranger_false_accept_rate"], at["accuracy"])


@pytest.mark.parametrize("text", ["0", "1", "1.5", "-0.2", "x"])
def test_at_refuses_a_threshold_outside_0_1(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        identify_threshold.threshold_arg(text)
    assert identify_threshold.threshold_arg("0.75") == 0.75
