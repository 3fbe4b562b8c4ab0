"""The float student's .keras file: saved atomically, loaded for inference without the
training loss, embedded with the one pixel mapping and L2 normalisation."""

import json
import subprocess
import sys

import numpy as np


def _trained_student():
    """A small real student, compiled and fitted with the distillation loss (with identity
    centroids), as the distill stage does before saving it."""
    from tinyface.train import distill, student

    model, _ = student.build_student("dsnet", (32, 32, 1), 16, 0.25)
    rng = np.random.default_rng(0)
    weights = distill.LossWeights(1.0, 0.5, 0.1, 0.1)
    model.compile(optimizer="adam", loss=distill.make_loss(weights, rng.random((4, 16), np.float32)))
    model.fit(rng.random((8, 32, 32, 1), np.float32), rng.random((8, 16), np.float32), epochs=1, verbose=0)
    return model


def test_a_saved_student_loads_without_its_training_loss_and_embeds_the_same(tmp_path):
    from tinyface.model.keras_io import embed, load_keras, save_keras

    model = _trained_student()
    path = tmp_path / "student.keras"
    save_keras(model, path)
    assert path.is_file() and not list(tmp_path.glob("*.tmp*"))
    loaded = load_keras(path)
    crops = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 1), dtype=np.uint8)
    emb = embed(loaded, crops)
    assert emb.dtype == np.float32 and emb.shape == (5, 16)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # the pixel mapping is the embedder's: (p - 128) / 128
    raw = model.predict((crops.astype(np.float32) - 128) / 128, verbose=0)
    assert np.array_equal(emb, raw / np.linalg.norm(raw, axis=1, keepdims=True))


def test_loading_a_keras_model_for_evaluation_imports_no_training_module(tmp_path):
    from tinyface.model.keras_io import save_keras

    save_keras(_trained_student(), tmp_path / "student.keras")
    script = ("import sys, json; from tinyface.model import keras_io; "
              f"m = keras_io.load_keras({str(tmp_path / 'student.keras')!r}); "
              "print(json.dumps(sorted(n for n in sys.modules if n.startswith('tinyface.'))))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [n for n in loaded if n.startswith("tinyface.train")], loaded


def test_a_save_cut_short_leaves_no_partial_copy(tmp_path):
    """Keras writes to a name of its own (the temp path with .keras); a save interrupted after
    writing part of it left that file beside the artifact, which no re-run removed."""
    import pytest

    from tinyface.model.keras_io import save_keras

    class CutShort:
        def save(self, target):
            target.write_bytes(b"half a model")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_keras(CutShort(), tmp_path / "student.keras")
    assert list(tmp_path.iterdir()) == []


def test_a_save_killed_outright_leaves_a_file_that_the_next_build_knows_to_remove(tmp_path):
    """SIGKILL (the out-of-memory killer) runs no cleanup: the half-saved copy stays beside the
    artifact. Its name is one fsutil knows as a temp file of an atomic write, so the next build
    (run_build, which holds the run folder) removes it, and nothing else."""
    import signal

    from tinyface import fsutil

    script = ("import os, signal, sys; from pathlib import Path; from tinyface.model.keras_io import save_keras\n"
              "class KilledMidSave:\n"
              "    def save(self, target):\n"
              "        Path(target).write_bytes(b'half a model')\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "save_keras(KilledMidSave(), Path(sys.argv[1]) / 'student.keras')\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".student.keras.") and left[0].read_bytes() == b"half a model"
    kept = ["student.keras", ".student.keras", "student.keras.tmp", ".student.keras.backup.keras", "notes.tmp"]
    for name in kept:
        (tmp_path / name).write_bytes(b"the user's")
    assert fsutil.remove_temp_leftovers(tmp_path) == left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
