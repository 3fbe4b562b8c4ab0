"""Moved to :mod:`tinyface.model.bundle`. This name is the same module object, kept only while the
training pipeline (tinyface/train) still imports the old path; docs/architecture.md lists it."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("tinyface.model.bundle")
