"""student.repeats: the dsnet stages' blocks are a setting, and the default keeps old stages valid."""

import dataclasses

import pytest

from tinyface.config import DSNET_REPEATS, ConfigError, StudentSettings, load
from tinyface.train import student


def _blocks(model) -> int:
    return sum(1 for layer in model.layers if layer.name.endswith("_pw_conv"))


def test_repeats_sets_the_blocks_of_every_stage():
    plain, _ = student.build_student("dsnet_mlp", (32, 32, 1), 16, 0.5)
    deeper, _ = student.build_student("dsnet_mlp", (32, 32, 1), 16, 0.5, repeats=(3, 3, 4))
    assert _blocks(plain) == sum(DSNET_REPEATS)
    assert _blocks(deeper) == 10
    # two more blocks at 1/16 of the side: more MACs and many more parameters than one at 1/4 costs
    assert student.keras_macs(deeper) > student.keras_macs(plain)
    assert deeper.count_params() > plain.count_params()
    # the added blocks sit in the last stage, at its resolution
    assert deeper.get_layer("b9_pw_conv").output.shape[1:3] == (2, 2)


@pytest.mark.parametrize("repeats", [[3, 3], [3, 3, 0], [3, 3, 9], [3, 3, 2.0], [3, 3, True], "332"])
def test_repeats_must_be_three_small_whole_numbers(repeats):
    with pytest.raises(ConfigError, match="student.repeats"):
        StudentSettings(arch="dsnet_mlp", repeats=repeats).validate()


def test_repeats_do_not_apply_to_tinycnn():
    with pytest.raises(ConfigError, match="tinycnn"):
        StudentSettings(arch="tinycnn", repeats=[2, 2, 2]).validate()
    StudentSettings(arch="tinycnn").validate()


def test_the_default_leaves_the_fingerprint_as_before_the_setting():
    default = StudentSettings(arch="dsnet_mlp", width=0.75)
    before = {k: v for k, v in dataclasses.asdict(default).items() if k != "repeats"}
    assert default.key() == before
    assert StudentSettings(arch="dsnet_mlp", width=0.75, repeats=[3, 3, 3]).key() == {**before, "repeats": [3, 3, 3]}


def test_the_model_card_names_repeats_only_when_set():
    from tinyface.evaluation.report import _student_words

    assert "3/3/3 blocks per stage" in _student_words(load(overrides={"student": {"repeats": [3, 3, 3]}}).student)
    assert "blocks" not in _student_words(load().student)
