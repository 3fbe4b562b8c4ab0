"""The LFW protocol files: pairs (View 1 and the 10 folds of View 2) and people lists.

File formats (from LFW's README):
- ``pairs.txt``: a header ``<folds> <n>``, then per fold ``n`` same-person lines
  ``name i j`` followed by ``n`` different-person lines ``name1 i name2 j``.
- ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: a header ``<n>``, then ``n`` same and ``n``
  different lines.
- ``people.txt``: a header ``<folds>``, then per fold a count and ``name count`` lines;
  ``peopleDevTrain.txt`` / ``peopleDevTest.txt``: a count, then ``name count`` lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyface.errors import DataError

PAIRS_DEV_TRAIN = "pairsDevTrain.txt"
PAIRS_DEV_TEST = "pairsDevTest.txt"  # held-out test: never for training, calibration or selection
PAIRS_10FOLD = "pairs.txt"
PEOPLE_DEV_TRAIN = "peopleDevTrain.txt"
PEOPLE_DEV_TEST = "peopleDevTest.txt"  # held-out test people


@dataclass(frozen=True)
class Pair:
    name_a: str
    index_a: int
    name_b: str
    index_b: int
    fold: int = 0

    @property
    def same(self) -> bool:
        return self.name_a == self.name_b

    def paths(self, images_dir: Path) -> tuple[Path, Path]:
        return image_path(images_dir, self.name_a, self.index_a), image_path(images_dir, self.name_b, self.index_b)


def image_path(images_dir: Path, name: str, index: int) -> Path:
    """``images/<name>/<name>_<index:04d>.jpg``"""
    return Path(images_dir) / name / f"{name}_{index:04d}.jpg"


def _lines(path: Path) -> list[list[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"LFW protocol file not found: {path}") from None
    except OSError as exc:  # no permission, a folder of that name
        raise DataError(f"cannot read LFW protocol file {path}: {(exc.strerror or str(exc)).lower()}") from None
    return [line.split() for line in text.splitlines() if line.strip()]


def _parse_pair(tokens: list[str], fold: int, path: Path, line_no: int) -> Pair:
    try:
        if len(tokens) == 3:
            return Pair(tokens[0], int(tokens[1]), tokens[0], int(tokens[2]), fold)
        if len(tokens) == 4:
            return Pair(tokens[0], int(tokens[1]), tokens[2], int(tokens[3]), fold)
    except ValueError:
        pass
    raise DataError(f"{path}:{line_no}: not a pair line: {' '.join(tokens)!r}")


def read_pairs(path: str | Path) -> list[Pair]:
    """Read a pairs file, View 1 (one header number) or View 2 (``folds n``).

    Returns pairs in file order with ``fold`` set (0 for View 1).

    Raises:
        DataError: missing file or a malformed line / count.
    """
    path = Path(path)
    rows = _lines(path)
    if not rows:
        raise DataError(f"{path} is empty")
    header = rows[0]
    try:
        folds, per_class = (1, int(header[0])) if len(header) == 1 else (int(header[0]), int(header[1]))
    except (ValueError, IndexError):
        raise DataError(f"{path}:1: bad header {' '.join(header)!r}") from None
    expected = folds * per_class * 2
    body = rows[1:]
    if len(body) != expected:
        raise DataError(f"{path}: expected {expected} pairs ({folds} folds x 2 x {per_class}), found {len(body)}")
    pairs = []
    for i, tokens in enumerate(body):
        fold = i // (2 * per_class)
        pair = _parse_pair(tokens, fold, path, i + 2)
        want_same = (i % (2 * per_class)) < per_class
        if pair.same != want_same:
            raise DataError(f"{path}:{i + 2}: expected a {'same' if want_same else 'different'}-person pair")
        pairs.append(pair)
    return pairs


def read_people(path: str | Path) -> list[tuple[str, int]]:
    """Read a people file (View 1 list, or all folds of ``people.txt`` concatenated).

    Returns ``(name, image_count)`` in file order.
    """
    path = Path(path)
    rows = _lines(path)
    people = []
    for line_no, tokens in enumerate(rows, start=1):
        if len(tokens) == 1:  # a count header (of the file or of a fold)
            continue
        if len(tokens) != 2:
            raise DataError(f"{path}:{line_no}: not a people line: {' '.join(tokens)!r}")
        try:
            people.append((tokens[0], int(tokens[1])))
        except ValueError:
            raise DataError(f"{path}:{line_no}: bad image count {tokens[1]!r}") from None
    return people


def fold_people(pairs: list[Pair], fold: int) -> set[str]:
    """Every person appearing in ``fold`` (to exclude from training in the 10-fold protocol)."""
    names = set()
    for p in pairs:
        if p.fold == fold:
            names.update((p.name_a, p.name_b))
    return names
