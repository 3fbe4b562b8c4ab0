"""The package: pinned dependencies, a console script, and a wheel that carries firmware/, boards/ and models/."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import tinyface

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {"firmware": "tinyface/_firmware", "boards": "tinyface/_boards", "presets": "tinyface/_presets",
           "models": "tinyface/_models"}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pio", "*.egg-info", "_firmware", "_boards", "_presets",
                                 "_models")


def _files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and ".pio" not in p.parts and p.suffix != ".pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the checkout (so the build never writes into the repo)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("tinyface", "firmware", "boards", "presets", "models"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=IGNORED)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("tinyface-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_carries_firmware_boards_and_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("tinyface/__init__.py", "tinyface/cli/main.py", "tinyface/data/lfw_manifest.json",
                     "tinyface/data/fairface_manifest.json", "tinyface/_presets/esp32.toml", "tinyface/py.typed",
                     "tinyface/boards/platformio_boards.json",
                     *(f"tinyface/data/{name}_manifest.json" for name in ("utkface", "pins", "celeba"))):
        assert required in names, required
    for top, inside in SHIPPED.items():
        for rel in _files(REPO / top):
            assert f"{inside}/{rel}" in names, f"{top}/{rel} is not in the wheel"
    boards = [n for n in names if n.startswith("tinyface/_boards/") and n.endswith(".toml")]
    assert boards, "no board files in the wheel"
    templates = [n for n in names if n.startswith("tinyface/_firmware/") and n.endswith(".j2")]
    assert "tinyface/_firmware/platformio.ini.j2" in templates, "no firmware templates in the wheel"
    assert "tinyface/_firmware/src/tinyface_app.cc" in names, "no hand-written firmware sources in the wheel"
    for preset in ("esp32", "esp32c3", "esp32s3"):
        for name in ("model.tflite", "model.json", "MODEL_CARD.md"):
            assert f"tinyface/_models/{preset}/{name}" in names, f"models/{preset}/{name} is not in the wheel"
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]


def test_wheel_metadata_pins_and_entry_point(wheel):
    zf = zipfile.ZipFile(wheel)
    dist_info = next(n.split("/")[0] for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = zf.read(f"{dist_info}/METADATA").decode()
    assert f"Version: {tinyface.__version__}" in meta
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert any(r.startswith("tflite-micro==") for r in requires)
    assert "Provides-Extra: test" in meta
    entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert "tinyface = tinyface.cli.entry:main" in entry_points


def test_an_unpacked_wheel_finds_its_templates_and_boards(wheel, tmp_path):
    """Installed from the wheel (no checkout around it), resources point into the package."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from tinyface import resources as r\n"
            "print(r.boards_dir()); print(r.firmware_dir()); print(r.presets_dir())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(site)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    boards_dir, firmware_dir, presets_dir = (Path(line) for line in proc.stdout.split())
    assert presets_dir == site / "tinyface" / "_presets" and (presets_dir / "esp32.toml").is_file()
    assert boards_dir == site / "tinyface" / "_boards" and list(boards_dir.glob("*.toml"))
    assert firmware_dir == site / "tinyface" / "_firmware" and (firmware_dir / "platformio.ini.j2").is_file()
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "--help"], capture_output=True, text=True,
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(site)), timeout=60)
    assert proc.returncode == 0 and "Commands:" in proc.stdout
    # the released models: `tinyface profile` (and emulate, bench) find them without a checkout
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "profile", "--board", "esp32s3", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(site)),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert Path(json.loads(proc.stdout)["model"]) == site / "tinyface" / "_models" / "esp32s3" / "model.tflite"


def test_dependencies_are_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = {d.split("==")[0].split(">")[0].split("<")[0].strip(): d for d in project["dependencies"]}
    for exact in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tflite-micro", "dlib-bin",
                  "face-recognition-models", "pyserial", "platformio"):
        assert "==" in deps[exact], deps.get(exact)
    for bounded in ("jinja2", "click", "numpy", "pillow", "matplotlib", "rich"):
        assert ">=" in deps[bounded] and "<" in deps[bounded], deps[bounded]
    assert project["scripts"]["tinyface"] == "tinyface.cli.entry:main"
    assert {"pytest", "hypothesis", "build"} <= {d.split(">")[0].split("=")[0] for d in
                                                 project["optional-dependencies"]["test"]}


def test_installed_versions_match_the_pins():
    """The pins are the stack the project is tested with (what is installed here)."""
    from importlib.metadata import PackageNotFoundError, version

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        if "==" in dep:
            name, pinned = (part.strip() for part in dep.split("=="))
            try:
                assert version(name) == pinned, f"{name} {version(name)} installed, {pinned} pinned"
            except PackageNotFoundError:
                pytest.fail(f"{name} is pinned but not installed (pip install -e '.[test]')")
