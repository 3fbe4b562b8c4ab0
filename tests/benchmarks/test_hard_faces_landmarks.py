"""benchmarks/hard_faces_landmarks.py says whose pairs it scores, and prints a hard_faces.py set cut
three ways."""

import os
import re
import shutil
import subprocess
import sys

from tests.conftest import BENCHMARKS, load_benchmark as _load


def test_hard_faces_landmarks_does_not_claim_hard_faces_pairs():
    """It lists the untouched photos by path (people in name order); hard_faces.py's pairs follow
    its draw (drawn_people). The same people in another order give other different-person pairs."""
    from tinyface.evaluation.metrics import sample_pairs

    script = _load("hard_faces_landmarks")
    doc = " ".join(script.__doc__.split())
    assert "over hard_faces.py's balanced pairs" not in doc
    assert "They are not hard_faces.py's pairs: the people are listed in name order" in doc
    source = (BENCHMARKS / "hard_faces_landmarks.py").read_text(encoding="utf-8")
    assert "# hard_faces.py's pairs" not in source
    # what the docstring says of the pairs, on labels of 6 people with 2 photos each
    people = ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay"]
    by_name = [p for p in people for _ in range(2)]
    drawn = [p for p in ["Eve", "Bob", "Fay", "Ann", "Dan", "Cid"] for _ in range(2)]

    def pairs(labels):
        a, b, same = sample_pairs(labels, None, 0)
        return ({frozenset({(labels[i], i % 2), (labels[j], j % 2)}) for i, j in zip(a[same], b[same], strict=True)},
                {frozenset({(labels[i], i % 2), (labels[j], j % 2)}) for i, j in zip(a[~same], b[~same], strict=True)})

    assert pairs(by_name)[0] == pairs(drawn)[0] and pairs(by_name)[1] != pairs(drawn)[1]


def test_hard_faces_landmarks_prints_a_set_cut_three_ways(lfw_dir, tiny_bundle, tmp_path):
    """benchmarks/hard_faces_landmarks.py on sets hard_faces.py made of 4 training people: the
    untouched crops, the dark photos with their own landmarks and with the untouched ones."""
    out = tmp_path / "hard"
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"), TINYFACE_DATA=str(lfw_dir))
    made = subprocess.run([sys.executable, str(BENCHMARKS / "hard_faces.py"), "--out", str(out), "--people",
                           "4", "--images", "2", "--workers", "1"], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr[-2000:]
    script = BENCHMARKS / "hard_faces_landmarks.py"
    run = subprocess.run([sys.executable, str(script), "--out", str(out), "--model", str(tiny_bundle.model_path.parent),
                          "--set", "dark"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split() for line in run.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == ["untouched", "dark,", "dark,"]
    assert "own" in run.stdout and "untouched landmarks" in run.stdout
    for r in rows:
        assert int(r[-3]) >= 4 and all(0.0 <= float(v.rstrip("%")) <= 100.0 for v in r[-2:])
    counts = re.search(r"(\d+) images, (\d+) aligned here", run.stdout)
    assert counts and int(counts[1]) >= 8 and counts[2] == "0", run.stdout
    # without the cache every image is aligned here, as the pipeline aligned it: the same figures
    shutil.rmtree(out / "cache")
    (out / "cache").mkdir()
    again = subprocess.run(run.args, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{counts[1]} images, {counts[1]} aligned here" in again.stdout
    assert again.stdout.splitlines()[1:] == run.stdout.splitlines()[1:]
    missing = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "none"), "--model",
                              str(tiny_bundle.model_path.parent)], capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "run benchmarks/hard_faces.py --out" in missing.stderr
