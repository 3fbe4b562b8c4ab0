"""benchmarks/pareto.py: its --configs argument."""

import pytest

from tests.conftest import load_benchmark as _load


def test_pareto_configs_are_size_width_pairs():
    import argparse

    pareto = _load("pareto")
    assert pareto.configs_arg("48:1.0,64:0.75") == [(48, 1.0), (64, 0.75)]
    for bad in ("48", "48:", "x:1.0", "48:1.0,", "0:1.0", "48:0"):
        with pytest.raises(argparse.ArgumentTypeError):
            pareto.configs_arg(bad)
