"""tinyface.train.student: student.repeats sets the blocks of the dsnet stages, and a student
trained with branches (student.branches) folds into the plain network exactly."""

import numpy as np
import pytest

from tests.conftest import trained_branched_student
from tinyface.config import DSNET_REPEATS
from tinyface.train import student

# --- repeats ------------------------------------------------------------------------------------------
# student.repeats: the dsnet stages' blocks are a setting.

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


# --- branches -----------------------------------------------------------------------------------------
# a student trained with branches (student.branches) folds into the plain network exactly.

@pytest.mark.parametrize("arch,branches", [("dsnet_mlp", 1), ("dsnet", 2), ("dsnet_fc", 1)])
def test_the_folded_student_computes_what_the_branched_one_did(arch, branches):
    branched, x = trained_branched_student(arch, branches)
    plain, _ = student.build_student(arch, (32, 32, 1), 16, 0.5)
    sample = (x.astype(np.float32) - 128.0) / 128.0
    assert student.fuse(branched, plain, sample) < 1e-4
    other = np.random.default_rng(7).uniform(-1, 1, (16, 32, 32, 1)).astype(np.float32)  # not the sample
    assert np.abs(branched.predict(other, verbose=0) - plain.predict(other, verbose=0)).max() < 1e-4
    assert student.keras_macs(plain) == student.keras_macs(student.build_student(arch, (32, 32, 1), 16, 0.5)[0])
    assert branched.count_params() > plain.count_params()


def test_branches_add_a_scale_and_an_identity_branch_where_shapes_allow():
    model, _ = student.build_student("dsnet", (32, 32, 1), 16, 0.5, branches=2)
    names = {layer.name for layer in model.layers}
    assert {"stem_conv_b0", "stem_conv_b1"} <= names and "stem_conv_scale" not in names  # strided: no 1x1
    assert {"b1_dw_scale", "b1_dw_id_bn", "b1_pw_conv_id_bn"} <= names  # stride 1, same channels
    assert "b0_pw_conv_id_bn" not in names  # channels change


def test_folding_into_another_architecture_fails():
    branched, x = trained_branched_student("dsnet", 1)
    wider, _ = student.build_student("dsnet", (32, 32, 1), 16, 1.0)
    with pytest.raises(ValueError):
        student.fuse(branched, wider, (x.astype(np.float32) - 128.0) / 128.0)
