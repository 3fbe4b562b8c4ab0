"""benchmarks/teacher_at_student_input.py: a teacher chip degraded to what a student sees."""

import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "teacher_at_student_input.py"
_spec = importlib.util.spec_from_file_location("teacher_at_student_input", SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_degrade_resamples_greys_and_blacks_out_past_the_students_view():
    rng = np.random.default_rng(0)
    chip = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    assert np.array_equal(bench.degrade(chip, 0, False), chip)  # nothing asked: the chip itself
    grey = bench.degrade(chip, 0, True)
    assert grey.shape == (150, 150, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    coarse = bench.degrade(chip, 80, False)
    assert coarse.shape == chip.shape and coarse.std() < 0.7 * chip.std()  # 80 px hold less detail than 150
    seen = bench.degrade(chip, 0, False, view=120)
    assert not seen[:15].any() and not seen[:, -15:].any()  # black past the central 120 px
    assert np.array_equal(seen[15:135, 15:135], chip[15:135, 15:135])
