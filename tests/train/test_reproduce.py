"""The model card's `reproduce:` command rebuilds the same settings: the preset plus a --set for
every setting that differs from it."""

import shlex

from tinyface import config
from tinyface.evaluation.report import reproduce_command
from tinyface.config import load_preset as get_preset


def _settings(preset, *sets):
    return config.load(None, config.parse_set_option(sets), base=preset.settings())


def test_a_plain_preset_build_is_reproduced_by_the_preset_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./tinyface.toml
    preset = get_preset("esp32")
    assert reproduce_command(_settings(preset, "data.dir=/somewhere", "data.workers=2"), preset) == \
        "tinyface build --preset esp32"


def test_overrides_appear_and_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preset = get_preset("esp32s3")
    settings = _settings(preset, "prune.epochs=1", "quantize.qat=false", "distill.learning_rate=0.001")
    command = reproduce_command(settings, preset)
    assert command.startswith("tinyface build --preset esp32s3 ")
    words = shlex.split(command)
    sets = tuple(words[i + 1] for i, w in enumerate(words) if w == "--set")
    assert sorted(sets) == ["distill.learning_rate=0.001", "prune.epochs=1", "quantize.qat=false"]
    assert _settings(preset, *sets).to_dict() == settings.to_dict()
