"""benchmarks/teacher.py times the teacher on photos of LFW's training people only (never
peopleDevTest's)."""

import sys
from pathlib import Path

import numpy as np

from tests.conftest import BENCHMARKS, load_benchmark as _load, run_benchmark as _run
from tinyface.data import lfw


def test_teacher_times_photos_of_training_people_only(lfw_dir, monkeypatch, capsys):
    """The first photos of LFW in name order include AJ_Lamas (peopleDevTest); teacher.py reads
    peopleDevTrain.txt's people in file order instead (benchmarks/_lib.py's lfw_face_paths). The photos are
    aligned for real; the teacher network is not run (what it embeds is not the question)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    teacher = _load("teacher")
    read = []
    real_read = teacher.read_image
    monkeypatch.setattr(teacher, "read_image", lambda path: read.append(Path(path)) or real_read(path))
    monkeypatch.setattr(teacher, "embed_chips", lambda chips, backend="tf": np.ones((len(chips), 128), np.float32))
    monkeypatch.setattr(sys, "argv", ["teacher.py", "--data", str(lfw_dir), "--chips", "4", "--dlib-chips", "1"])
    teacher.main()
    assert "over 4 chips" in capsys.readouterr().out
    test_people = {name for name, _ in lfw.read_people(lfw_dir / lfw.PEOPLE_DEV_TEST)}
    assert not {p.parent.name for p in read} & test_people, read
    # the rule kernels.py, s3_arena.py and xtensa_kernels.py use
    assert read == _load("_lib").lfw_face_paths(lfw_dir, 4)


def test_teacher_says_when_lfw_holds_fewer_training_photos_than_asked(tmp_path):
    data = tmp_path / "lfw"
    (data / "images" / "Ann_Example").mkdir(parents=True)
    (data / lfw.PEOPLE_DEV_TRAIN).write_text("1\nAnn_Example\t1\n")
    proc = _run("teacher.py", "--data", data, "--chips", "2", "--dlib-chips", "1")
    assert proc.returncode == 4 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip() == (f"teacher.py: error: {data} holds 0 photos of peopleDevTrain.txt's people, "
                                   "not --chips 2")
