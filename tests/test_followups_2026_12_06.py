"""Follow-ups of the 2026-12-06 fixes (benchmarks leftovers, CLI leftovers), each with the test
that fails without its fix:

1. `flash --enroll DIR` reads its person folders' names as `--name` is read: the text their bytes
   spell in UTF-8 whatever the locale (tinyface.fsutil.os_text, moved there from
   tinyface.cli.common.argv_text so that tinyface.codegen may use it). Under a C locale with
   UTF-8 mode off a `Zoë` folder was refused as "must be 1..15 bytes of UTF-8" (exit 4); under a
   Latin-1 locale it was compiled in as the mojibake `ZoÃ«`.
2. benchmarks/hard_faces_landmarks.py said it scored "hard_faces.py's balanced pairs"; it lists
   the people in name order, so only its same-person pairs are hard_faces.py's (the docstring
   says so now).
3. No benchmark uses a private name of tinyface: codegen.project.template_environment,
   align.dlib_models, align.luminance and Aligner.find are public; second_teacher.py takes dlib's
   raw descriptors from teacher.embed_chips (normalised=False).
4. A selection set holding an LFW test person is a DataError (exit 4), link.py's emulator that
   does not start a DeviceError (exit 7) saying why, chip_fill.py's missing landmarks a DataError:
   one line each, never a plain exit 1.
5. docs/data.md names every benchmark that refuses a --people set its model distilled from.
6. dlib's raw descriptor length is quoted as measured on LFW's training people (1.42, not 1.39)
   everywhere, with the figures derived from it; it converts figures for printing only.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyface import errors

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RELEASED = REPO / "models" / "esp32"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))
ZOE = "Zoë"
ZOE_UTF8 = ZOE.encode("utf-8")  # b"Zo\xc3\xab"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"followups_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docstring(name: str) -> str:
    """A benchmark's docstring, read without running it (second_teacher.py imports tinyface.train)."""
    return ast.get_docstring(ast.parse((BENCHMARKS / f"{name}.py").read_text(encoding="utf-8")))


def _env(**locale) -> dict:
    """This process's environment without any locale or Python text setting, plus ``locale``."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("LC_") or k in ("LANG", "LANGUAGE", "PYTHONIOENCODING", "PYTHONUTF8"))}
    return {**env, **locale}


def _latin1_locale(folder: Path) -> dict | None:
    """The environment of an ISO-8859-1 locale compiled into ``folder`` (LOCPATH), or None where
    localedef or its sources are missing."""
    try:
        subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
                       capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    locale = {"LOCPATH": str(folder), "LC_ALL": "en_US.ISO-8859-1"}
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                           capture_output=True, text=True, env=_env(**locale))
    return locale if probe.stdout.strip() == "iso8859-1" else None


def _locale(where: str, tmp_path: Path) -> dict:
    if where == "Latin-1":
        locale = _latin1_locale(tmp_path)
        if locale is None:
            pytest.skip("no ISO-8859-1 locale can be made here (localedef)")
        return _env(**locale)
    return _env(LC_ALL="C", LANG="C", PYTHONUTF8="0")


def _person(root: Path, name: bytes, photos) -> None:
    """A person folder named by the bytes ``name`` (as a terminal's mkdir makes it) holding ``photos``."""
    folder = os.path.join(os.fsencode(root), name)
    os.makedirs(folder)
    for photo in photos:
        shutil.copy(photo, os.path.join(folder, os.fsencode(Path(photo).name)))


# --- 1. flash --enroll: folder names whatever the locale -------------------------------------

@pytest.mark.parametrize("where", ["C, PYTHONUTF8=0", "Latin-1"])
def test_flash_enroll_compiles_a_zoe_folder_as_its_utf8_bytes_under_a_locale(lfw_dir, tmp_path, where):
    """A real `tinyface flash --dry-run --enroll` of the released model, one LFW photo in a folder
    whose name is the 4 bytes of Zoë. C, PYTHONUTF8=0: was exit 4, "person folder name
    'Zo\\udcc3\\udcab' must be 1..15 bytes of UTF-8"; Latin-1: was compiled in as
    "Zo\\303\\203\\302\\253" (the 6 bytes of ZoÃ«)."""
    if not (RELEASED / "model.tflite").is_file():
        pytest.skip("no released model in models/esp32")
    env = {**_locale(where, tmp_path), "TINYFACE_CACHE": str(tmp_path / "cache"), "TINYFACE_DATA": str(lfw_dir)}
    people = tmp_path / "people"
    _person(people, ZOE_UTF8, sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[:1])
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--model",
                           str(RELEASED), "--dry-run", "--enroll", str(people), "--project-dir", str(tmp_path / "p")],
                          capture_output=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    header = (tmp_path / "p" / "src" / "gallery_data.h").read_text(encoding="utf-8")
    assert '{"Zo\\303\\253", 1, {' in header  # the 4 bytes typed, as C octal escapes


def test_a_folder_name_that_is_no_text_is_one_data_error_showing_its_bytes(tmp_path):
    """Bytes that are UTF-8 in no reading (a Latin-1 ë in this UTF-8 process): was "person folder
    name 'Zo\\udceb' must be 1..15 bytes of UTF-8", a length rule it does not break."""
    from tinyface.codegen.gallery import gallery_names

    people = tmp_path / "people"
    for name in (b"Bob", b"Zo\xeb"):
        os.makedirs(os.path.join(os.fsencode(people), name))
        with open(os.path.join(os.fsencode(people), name, b"1.jpg"), "wb"):
            pass
    with pytest.raises(errors.DataError) as info:
        gallery_names(people)
    assert info.value.one_line() == (f"a person folder's name in {people}: its bytes b'Zo\\xeb' are not valid UTF-8 "
                                     "text (rename the folder in UTF-8)")


def test_a_folder_name_too_long_says_its_length(tmp_path):
    from tinyface.codegen.gallery import gallery_names

    people = tmp_path / "people"
    (people / "Zoë Zoë Zoë Zoë").mkdir(parents=True)  # 19 bytes
    (people / "Zoë Zoë Zoë Zoë" / "1.jpg").write_bytes(b"")
    # --name's wording since round 3 (one rule, tinyface.protocol.spec.check_name)
    with pytest.raises(errors.DataError,
                       match=r"'Zoë Zoë Zoë Zoë' is 19 bytes in UTF-8; the board stores at most 15"):
        gallery_names(people)
    shutil.rmtree(people / "Zoë Zoë Zoë Zoë")
    (people / ZOE).mkdir()
    (people / ZOE / "1.jpg").write_bytes(b"")
    assert gallery_names(people) == {ZOE: ZOE}


def test_two_folders_that_spell_one_name_are_refused_under_a_latin1_locale(tmp_path):
    """Under a Latin-1 locale a UTF-8 Zoë folder and a Latin-1 one both read as Zoë: two gallery
    entries of one name would be compiled in. Refused, naming both folders' bytes."""
    env = _locale("Latin-1", tmp_path)
    people = tmp_path / "people"
    for name in (ZOE_UTF8, b"Zo\xeb"):
        os.makedirs(os.path.join(os.fsencode(people), name))
        with open(os.path.join(os.fsencode(people), name, b"1.jpg"), "wb"):
            pass
    code = ("import sys\nfrom tinyface.codegen.gallery import gallery_names\nfrom tinyface.errors import DataError\n"
            "try:\n    gallery_names(sys.argv[1])\nexcept DataError as exc:\n"
            "    print(ascii(exc.one_line()))\n    sys.exit(exc.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(people)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == errors.DataError.exit_code, proc.stderr[-2000:]
    assert "are both named 'Zo\\xeb'" in proc.stdout and "b'Zo\\\\xc3\\\\xab'" in proc.stdout, proc.stdout


def test_the_name_rule_lives_in_a_foundation_module_codegen_may_import():
    import tinyface.cli.common as common
    from tinyface import fsutil

    assert not hasattr(common, "argv_text")
    assert fsutil.os_text("Zo\udcc3\udcab") == ZOE
    source = (REPO / "tinyface" / "codegen" / "gallery.py").read_text(encoding="utf-8")
    assert "from tinyface.fsutil import os_text" in source


# --- 2. hard_faces_landmarks.py says whose pairs it scores -------------------------------------

def test_hard_faces_landmarks_does_not_claim_hard_faces_pairs():
    """It lists the untouched photos by path (people in name order); hard_faces.py's pairs follow
    its draw (drawn_people). The same people in another order give other different-person pairs."""
    from tinyface.evaluation.metrics import sample_pairs

    script = _load("hard_faces_landmarks")
    doc = " ".join(script.__doc__.split())
    assert "over hard_faces.py's balanced pairs" not in doc
    assert "They are not hard_faces.py's pairs: the people are listed in name order" in doc
    source = (BENCHMARKS / "hard_faces_landmarks.py").read_text(encoding="utf-8")
    assert "# hard_faces.py's pairs" not in source
    # what the docstring says of the pairs, on labels of 6 people with 2 photos each
    people = ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay"]
    by_name = [p for p in people for _ in range(2)]
    drawn = [p for p in ["Eve", "Bob", "Fay", "Ann", "Dan", "Cid"] for _ in range(2)]

    def pairs(labels):
        a, b, same = sample_pairs(labels, None, 0)
        return ({frozenset({(labels[i], i % 2), (labels[j], j % 2)}) for i, j in zip(a[same], b[same])},
                {frozenset({(labels[i], i % 2), (labels[j], j % 2)}) for i, j in zip(a[~same], b[~same])})

    assert pairs(by_name)[0] == pairs(drawn)[0] and pairs(by_name)[1] != pairs(drawn)[1]


# --- 3. no benchmark uses a private name of tinyface ------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_no_benchmark_uses_a_private_name_of_tinyface(script):
    """Neither ``from tinyface.x import _y`` nor ``something._y`` (Aligner._find, teacher._load):
    xtensa_kernels.py, hard_faces.py, dark_chips.py and second_teacher.py did."""
    tree = ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))
    wrong = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinyface"):
            wrong += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            wrong.append(ast.unparse(node))
    assert not wrong, f"{script} uses {wrong}"


def test_the_names_benchmarks_use_are_public_and_documented():
    import jinja2

    from tinyface.codegen.project import template_environment
    from tinyface.data.align import Aligner, dlib_models

    env = template_environment(REPO / "firmware")
    assert env.undefined is jinja2.StrictUndefined and env.autoescape is False
    assert template_environment.__doc__ and dlib_models.__doc__ and Aligner.find.__doc__
    detector, predictor = dlib_models()
    assert dlib_models() == (detector, predictor)  # loaded once per process


def test_find_is_detect_before_its_refinement(lfw_dir):
    """On a photo the detector finds, detect keeps find's landmarks (the refinement is for rescued,
    underexposed faces)."""
    from tinyface.data.align import Aligner
    from tinyface.data.dataset import read_image

    rgb = read_image(lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    aligner = Aligner(1)
    found, detected = aligner.find(rgb), aligner.detect(rgb)
    assert found.method == detected.method == "detector"
    assert np.array_equal(found.landmarks, detected.landmarks)


def test_dark_chips_luminance_is_aligns():
    """dark_chips.py's brightening as it was (a 3x3 median, then the gain) with PIL's luminance
    (tinyface.data.align.luminance)."""
    from PIL import Image, ImageFilter

    from tinyface.data.align import BRIGHTEN_TO

    dark_chips = _load("dark_chips")
    rgb = np.random.default_rng(0).integers(0, 30, (40, 40, 3), dtype=np.uint8)  # very dark: the median first
    out = dark_chips.brighten_with_median(rgb)
    smoothed = np.asarray(Image.fromarray(rgb).filter(ImageFilter.MedianFilter(3)))
    hi = float(np.percentile(np.asarray(Image.fromarray(smoothed).convert("L")), 99.5))
    assert np.array_equal(out, np.clip(np.rint(smoothed.astype(np.float32) * BRIGHTEN_TO / max(hi, 1.0)), 0, 255)
                          .astype(np.uint8))


# --- 4. one line and a tinyface exit code -------------------------------------------------------

def test_a_selection_set_holding_a_test_person_is_a_data_error(lfw_dir, tmp_path):
    """benchmarks/_lib.people_faces (compare_runs.py, whiten.py, mirror_enroll.py): was
    SystemExit, a plain exit 1. Refused before any face is cut (the photos are empty files)."""
    from tinyface import config

    lib = _load("_lib")
    people = tmp_path / "people"
    for name in ("Aaron_Peirsol", "AJ_Lamas"):  # a training person, a peopleDevTest person
        (people / name).mkdir(parents=True)
        (people / name / "1.jpg").write_bytes(b"")
    settings = config.load(overrides={"data": {"dir": str(lfw_dir), "cache_dir": str(tmp_path / "cache")}})
    with pytest.raises(errors.DataError) as info:
        lib.people_faces(people, settings)
    assert str(info.value) == (f"{people}: 1 of its people are LFW test people (peopleDevTest.txt), e.g. AJ_Lamas: "
                               "a selection set must not hold the held-out test's people")
    assert not (tmp_path / "cache").exists()


def test_link_says_why_the_emulator_did_not_start(tmp_path):
    """A bad environment for `tinyface emulate` (TINYFACE_BOARDS_DIR a file): was "the emulator did
    not start", a plain exit 1 and no reason. A baud rate of 0 is the command line's mistake."""
    if not (RELEASED / "model.tflite").is_file():
        pytest.skip("no released model in models/esp32")
    not_a_folder = tmp_path / "boards"
    not_a_folder.write_text("")
    env = dict(os.environ, TINYFACE_BOARDS_DIR=str(not_a_folder))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "link.py"), "--bauds", "115200"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == errors.DeviceError.exit_code, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"link.py: error: the emulator (tinyface emulate --model {RELEASED} --baud 115200) did not start: "
        "tinyface: error: TINYFACE_BOARDS_DIR must be a folder"), lines
    zero = subprocess.run([sys.executable, str(BENCHMARKS / "link.py"), "--bauds", "0"], capture_output=True,
                          text=True, timeout=120)
    assert zero.returncode == errors.EXIT_USAGE and "Traceback" not in zero.stderr
    assert zero.stderr.strip().splitlines()[-1] == "link.py: error: --bauds: every baud rate must be at least 1"


def test_chip_fill_without_cached_landmarks_is_a_data_error(lfw_dir, tmp_path):
    """Sets whose face cache holds no landmarks (hard_faces.py not run to the end): was a plain
    exit 1. One line, DataError's code, before the teacher is loaded."""
    hard_faces = _load("hard_faces")
    out = tmp_path / "sets"
    name, _ = hard_faces.drawn_people(lfw_dir, 0)[0]
    photo = sorted((lfw_dir / "images" / name).glob("*.jpg"))[0]
    (out / "untouched" / name).mkdir(parents=True)
    shutil.copy(photo, out / "untouched" / name / photo.name)
    (out / hard_faces.DRAW_FILE).write_text(json.dumps({"seed": 0, "validation": False}))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "chip_fill.py"), "--out", str(out), "--data",
                           str(lfw_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == errors.DataError.exit_code, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"chip_fill.py: error: 1 images of {out / 'untouched'} have no cached landmarks "
        f"(run benchmarks/hard_faces.py --out {out} first)"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_benchmark_ends_with_a_plain_exit_1_on_a_message(script):
    """``raise SystemExit("...")`` exits 1 whatever the mistake; a tinyface error has its own code
    (run_script). _lib.py, link.py and chip_fill.py did, and native_vs_emulator.py (the device did
    not start, bench failed: DeviceError) and val_neighbours.py (a preset without extra faces:
    ConfigError)."""
    tree = ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))
    messages = [ast.unparse(node.exc) for node in ast.walk(tree)
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                and getattr(node.exc.func, "id", "") == "SystemExit" and node.exc.args
                and (isinstance(node.exc.args[0], ast.JoinedStr)
                     or (isinstance(node.exc.args[0], ast.Constant) and isinstance(node.exc.args[0].value, str)))]
    assert not messages, f"{script}: {messages}"


# --- 5. docs/data.md: every benchmark that refuses a --people set the model distilled from ------

def test_data_md_names_every_benchmark_that_checks_a_people_set():
    callers = [name for name in SCRIPTS if name != "_lib.py"
               and "check_people(" in (BENCHMARKS / name).read_text(encoding="utf-8")]
    assert callers == ["compare_runs.py", "mirror_enroll.py", "whiten.py"]
    text = " ".join((REPO / "docs" / "data.md").read_text(encoding="utf-8").split())
    start = text.index("A run that distilled from it cannot be judged on it")
    paragraph = text[start:text.index("## Bad data", start)]
    assert all(f"`{name}`" in paragraph for name in callers), paragraph
    assert "`compare_runs.py` refuses" not in paragraph  # was: compare_runs.py alone


# --- 6. dlib's raw descriptor length, one figure -------------------------------------------------

def _dlib_norm_in_second_teacher_md() -> float:
    text = " ".join((REPO / "docs" / "second_teacher.md").read_text(encoding="utf-8").split())
    return float(re.search(r"raw descriptors are ([\d.]+) long on average over the [\d,]+ photos of LFW's "
                           r"training people", text).group(1))


def test_dlib_norm_is_the_figure_measured_on_training_people_everywhere():
    norm = _dlib_norm_in_second_teacher_md()
    assert norm == 1.42
    assert _load("contamination").DLIB_NORM == norm  # was 1.39, of no stated photos
    from tinyface.config import ExtraSettings

    for where, text in {
        "tinyface/config.py ExtraSettings": ExtraSettings.__doc__,
        "docs/config.md": (REPO / "docs" / "config.md").read_text(encoding="utf-8"),
        "docs/data.md": (REPO / "docs" / "data.md").read_text(encoding="utf-8"),
        "benchmarks/second_teacher.py": _docstring("second_teacher"),
        "docs/model.md": (REPO / "docs" / "model.md").read_text(encoding="utf-8"),
    }.items():
        text = " ".join(text.split())
        assert "1.39" not in text, where
        assert "about dlib's 0.46" not in text and "is about 0.43 here" not in text, where
        if where != "docs/model.md":
            assert f"{norm:.2f}" in text, where
    config_doc = " ".join(ExtraSettings.__doc__.split())
    assert f"0.33 is about dlib's {0.33 * norm:.2f}" in config_doc
    assert f"0.6 is about {0.6 / norm:.2f} here" in config_doc
    assert f"0.33 (about dlib's {0.33 * norm:.2f})" in (REPO / "docs" / "model.md").read_text(encoding="utf-8")
    assert f"its usual 0.6 is about {0.6 / norm:.2f} here" in " ".join(_docstring("second_teacher").split())


def test_data_md_table_is_what_contamination_py_prints_in_its_dlib_column():
    """The "(dlib scale)" column is threshold x DLIB_NORM, as the script prints it (0.33 -> 0.47,
    was 0.46 at 1.39): printing only, no threshold of a build depends on it."""
    contamination = _load("contamination")
    text = (REPO / "docs" / "data.md").read_text(encoding="utf-8")
    rows = re.findall(r"\|\s*\**(0\.\d\d) \((0\.\d\d)[^|]*\|", text[text.index("| threshold (dlib scale) |"):])
    assert len(rows) == 6
    for threshold, dlib_scale in rows:
        assert f"{float(threshold) * contamination.DLIB_NORM:.2f}" == dlib_scale
        assert float(threshold) in contamination.THRESHOLDS
    assert "DLIB_NORM" not in (REPO / "tinyface" / "config.py").read_text(encoding="utf-8")
