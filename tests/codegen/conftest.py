"""Codegen fixtures: a project generated once per session from the real tiny int8 bundle."""

import pytest


@pytest.fixture(scope="session")
def esp32_project(tiny_bundle, tmp_path_factory):
    from tinyface.boards import load_board
    from tinyface.codegen import generate_project

    directory = tmp_path_factory.mktemp("esp32_project")
    return generate_project(tiny_bundle, load_board("esp32"), directory)


def defines(text: str) -> dict[str, str]:
    """``#define NAME VALUE`` lines of a header."""
    out = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "#define":
            out[parts[1]] = parts[2].strip()
    return out
