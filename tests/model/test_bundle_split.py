"""model.json's ``extra.split``: the data settings that drew a build's validation people, recorded so
that what loads those people again (benchmarks/identify_threshold.py) need not assume the preset's."""

import dataclasses
import json
import re
import shutil

import pytest

from tinyface import config
from tinyface.errors import ConfigError, ModelError
from tinyface.model.bundle import SPLIT_KEY, SPLIT_SETTINGS, load_bundle, save_bundle, split_record


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.model_path.parent, folder)
    return folder


def _set_split(folder, split):
    meta = json.loads((folder / "model.json").read_text())
    meta["extra"] = {**meta["extra"], SPLIT_KEY: split}
    (folder / "model.json").write_text(json.dumps(meta))


def test_the_split_record_round_trips_through_a_bundle(tiny_bundle, tmp_path):
    data = config.load(None, {"data": {"seed": 7, "val_fraction": 0.2, "test_filter": 0.0}}).data
    record = split_record(data)
    assert record == {"seed": 7, "val_fraction": 0.2, "test_filter": 0.0} and tuple(record) == SPLIT_SETTINGS
    meta = dataclasses.replace(tiny_bundle.meta, extra={**tiny_bundle.meta.extra, SPLIT_KEY: record})
    save_bundle(tmp_path / "b", tiny_bundle.model_bytes, meta)
    assert load_bundle(tmp_path / "b").meta.split == record


def test_a_bundle_without_the_record_has_none_and_still_loads(bundle_copy):
    assert load_bundle(bundle_copy).meta.split == {}


def test_a_partial_or_larger_record_gives_only_the_known_settings(bundle_copy):
    _set_split(bundle_copy, {"seed": 3, "people_file": "later.txt"})
    assert load_bundle(bundle_copy).meta.split == {"seed": 3}


@pytest.mark.parametrize("split, needle", [([0, 0.1], "must be a JSON object"), ({"seed": 1.5}, "'seed' must be"),
                                           ({"val_fraction": 0}, "'val_fraction' must be"),
                                           ({"test_filter": "x"}, "'test_filter' must be")])
def test_a_bad_record_is_a_model_error_naming_it(bundle_copy, split, needle):
    _set_split(bundle_copy, split)
    with pytest.raises(ModelError) as exc:
        load_bundle(bundle_copy)
    assert "extra.split" in exc.value.one_line() and needle in exc.value.one_line()


@pytest.mark.parametrize("name, values", [("val_fraction", [-0.1, 0.0, 1e-9, 0.1, 0.49, 0.5, 0.6, 0.99, 1.0]),
                                          ("test_filter", [-0.1, 0.0, 0.25, 0.99, 1.0, 1.5])])
def test_a_record_is_refused_exactly_where_the_settings_refuse_the_value(bundle_copy, name, values):
    """One range per split setting (tinyface.config): a model.json recording a data.val_fraction of
    0.6 was accepted (the record checked (0, 1)) though no build can run with it (the settings
    take (0, 0.5)). Both name the range alike."""
    def interval(message: str) -> str:
        return re.search(r"in ([\[(][^\])]*[\])])", message).group(1)

    for value in values:
        try:
            config.load(None, {"data": {name: value}})
            settings_refusal = None
        except ConfigError as exc:
            settings_refusal = interval(exc.one_line())
        _set_split(bundle_copy, {name: value})
        try:
            load_bundle(bundle_copy)
            record_refusal = None
        except ModelError as exc:
            record_refusal = interval(exc.one_line())
        assert record_refusal == settings_refusal, (name, value)
