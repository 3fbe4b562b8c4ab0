"""Ship the top-level firmware/, boards/, presets/ and models/ folders inside the wheel.

Users asked for firmware/, boards/ and the released models/ at the top of the repo; an
installed tinyface finds them as tinyface/_firmware, tinyface/_boards, tinyface/_presets and tinyface/_models
(see tinyface/resources.py).
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {"firmware": "_firmware", "boards": "_boards", "presets": "_presets", "models": "_models"}


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        for src, dst in SHIPPED.items():
            target = Path(self.build_lib) / "tinyface" / dst
            if target.exists():
                shutil.rmtree(target)
            if not (HERE / src).is_dir():  # a trimmed checkout: ship what exists (tests check the wheel)
                continue
            shutil.copytree(HERE / src, target, ignore=shutil.ignore_patterns("__pycache__", ".pio"))


setup(cmdclass={"build_py": BuildPyWithData})
