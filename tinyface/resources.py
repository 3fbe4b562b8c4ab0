"""Where the shipped data lives: firmware templates, board files, released models.

In a source checkout they sit at the top of the repo (firmware/, boards/, models/); in an
installed wheel setup.py copies them into the package as _firmware/, _boards/ and _models/.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0]


def firmware_dir() -> Path:
    """The firmware template tree (mirrors the generated PlatformIO project)."""
    return _first_existing(REPO_DIR / "firmware", PACKAGE_DIR / "_firmware")


def boards_dir() -> Path:
    """The folder of board data files (one ``<name>.toml`` per board)."""
    return _first_existing(REPO_DIR / "boards", PACKAGE_DIR / "_boards")


def models_dir() -> Path:
    """The released models (one bundle folder per preset, with its model card)."""
    return _first_existing(REPO_DIR / "models", PACKAGE_DIR / "_models")
