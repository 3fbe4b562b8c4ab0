"""Where the shipped data lives: firmware templates, board files, presets, released models.

In a source checkout they sit at the top of the repo (firmware/, boards/, presets/, models/); in
an installed wheel setup.py copies them into the package as _firmware/, _boards/, _presets/ and
_models/.
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


_user_boards_dir: Path | None = None


def boards_dir() -> Path:
    """The folder of the shipped board data files (one ``<name>.toml`` per board)."""
    return _first_existing(REPO_DIR / "boards", PACKAGE_DIR / "_boards")


def use_boards_dir(path: str | Path | None) -> None:
    """Also read board files from ``path`` (`tinyface --boards-dir`, $TINYFACE_BOARDS_DIR), before
    the shipped ones: a board of one's own, or a changed copy of a shipped one, without editing
    site-packages."""
    global _user_boards_dir
    _user_boards_dir = Path(path).expanduser() if path else None


def boards_dirs() -> list[Path]:
    """Where board files are looked up, first match wins: the user's folder, then the shipped one."""
    return ([_user_boards_dir] if _user_boards_dir else []) + [boards_dir()]


def presets_dir() -> Path:
    """The shipped presets: one settings file per preset, in the tinyface.toml schema."""
    return _first_existing(REPO_DIR / "presets", PACKAGE_DIR / "_presets")


def models_dir() -> Path:
    """The released models (one bundle folder per preset, with its model card)."""
    return _first_existing(REPO_DIR / "models", PACKAGE_DIR / "_models")
