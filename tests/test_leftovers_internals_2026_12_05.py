"""Leftovers of 2026-12-05 (internals): the released model.json files record their builds' split.

models/esp32 (run R1) and models/esp32s3 (run S3R) were written before builds recorded
``extra.split`` (the data settings that drew the validation people), so scripts that load those
people again took the preset's. Their split is established from the runs' own records: each run's
report.json holds its settings, and the stage fingerprints recomputed from them (data, distill,
prune, quantize, evaluate) are the ones in the run's stage.json files; S3R's are the very
``extra.stages`` of models/esp32s3/model.json, and R1's quantize/int8.tflite is models/esp32's
.tflite (the sha256 its model.json records). Both: data.seed 0, data.val_fraction 0.1,
data.test_filter 0.25. models/esp32c3 is run C3R2, whose build wrote its record itself (its
predecessor D1 had none).
"""

import json
from pathlib import Path

import pytest

from tinyface.model.bundle import SPLIT_KEY, SPLIT_SETTINGS, STAGES_KEY, load_bundle

REPO = Path(__file__).resolve().parents[1]
RECORDED = {"esp32": {"seed": 0, "val_fraction": 0.1, "test_filter": 0.25},
            "esp32s3": {"seed": 0, "val_fraction": 0.1, "test_filter": 0.25},
            "esp32c3": {"seed": 0, "val_fraction": 0.1, "test_filter": 0.25}}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_released_model_records_the_split_its_build_drew(name):
    bundle = load_bundle(REPO / "models" / name)  # model.json validated, the .tflite's sha256 checked
    assert bundle.meta.split == RECORDED[name]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_record_sits_where_a_build_writes_it(name):
    """As tinyface.train.pipeline writes model.json (fsutil.write_json): the record last in extra, after
    the stage fingerprints, its settings in SPLIT_SETTINGS' order; the file is write_json's own text."""
    text = (REPO / "models" / name / "model.json").read_text(encoding="utf-8")
    meta = json.loads(text)
    assert text == json.dumps(meta, indent=2) + "\n"
    assert list(meta["extra"])[-1] == SPLIT_KEY and tuple(meta["extra"][SPLIT_KEY]) == SPLIT_SETTINGS
    if STAGES_KEY in meta["extra"]:
        assert list(meta["extra"])[-2] == STAGES_KEY
