"""TF_USE_LEGACY_KERAS has one definition, tinyface.console.use_legacy_keras, and it runs before
TensorFlow is first imported: by the CLI (quiet_tensorflow), the training package, the Keras
loader of `tinyface evaluate` and the tests."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tinyface import console

REPO = Path(__file__).resolve().parents[1]


def test_the_variable_is_named_in_one_place():
    sources = [p for folder in ("tinyface", "benchmarks", "tests") for p in (REPO / folder).rglob("*.py")]
    naming = sorted(str(p.relative_to(REPO)) for p in sources
                    if p.name != Path(__file__).name and re.search(r"[\"']TF_USE_LEGACY_KERAS[\"']", p.read_text()))
    assert naming == ["tinyface/console.py"], naming


def test_a_users_own_value_stands(monkeypatch):
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "0")
    console.use_legacy_keras()
    assert os.environ["TF_USE_LEGACY_KERAS"] == "0"
    monkeypatch.delenv("TF_USE_LEGACY_KERAS")
    console.use_legacy_keras()
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"


def test_load_keras_sets_it_before_tf_keras_is_imported(tmp_path):
    """The real tf_keras, in a process started without the variable: an import hook notes its
    value when tf_keras (which imports TensorFlow, which reads it) is first imported."""
    import zipfile

    path = tmp_path / "student.keras"  # a .keras archive as far as load_keras's own check reads one
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    script = (
        "import os, sys\n"
        "seen = {}\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('tf_keras', 'tensorflow'):\n"
        "            seen.setdefault(name, os.environ.get('TF_USE_LEGACY_KERAS'))\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        "from tinyface.errors import ModelError\n"
        "from tinyface.model import keras_io\n"
        "assert 'tf_keras' not in sys.modules and 'tensorflow' not in sys.modules\n"
        "try:\n"
        "    keras_io.load_keras(sys.argv[1])\n"
        "except ModelError:\n"
        "    pass  # '{}' is no model: what matters is what tf_keras saw when it loaded\n"
        "print(seen.get('tf_keras'), seen.get('tensorflow'), 'tf_keras' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-3:] == ["1", "1", "True"], proc.stdout


def test_importing_the_training_package_sets_it_without_importing_tensorflow():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    script = ("import os, sys; import tinyface.train.pipeline; "
              "print(os.environ.get('TF_USE_LEGACY_KERAS'), 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1", "False"]
