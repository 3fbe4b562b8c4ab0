"""CLI leftovers of 2026-12-06: each test failed before its fix, except the cases that show what
already worked beside it (a plain C locale, where Python turns UTF-8 mode on by itself, PEP 540;
a full build's contamination reference).

1. `enroll --name Zoë` (and `gallery delete --name`) whatever the locale: the name is the text its
   bytes spell in UTF-8. Under a C locale with UTF-8 mode off (PYTHONUTF8=0) it was refused as
   "'Zo\\udcc3\\udcab' is not valid UTF-8 text" (exit 2); under a Latin-1 locale in a UTF-8
   terminal it was enrolled as 'ZoÃ«' (6 bytes of mojibake on the board). Bytes that are no text
   at all are one line and exit 2, before the port is opened.
2. A `--quick` build reads no test image but those it evaluates: the contamination filters'
   reference was every image of the test people (3,708 of LFW's, for a smoke test that scores
   a few hundred).
3. `build --hide-test --json`: the summary's `parity` was TFLM against TFLite on the evaluation's
   (test) images; it is the validation images' and pairs' now, also in validation.md/.json.

The board is `tinyface emulate` (the released models/esp32) on a real pseudo-terminal, driven by
`tinyface` processes under real locales; the photos are LFW's.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinyface import errors
from tinyface.cli import main as cli_main

from test_bad_inputs import REPO, _own_folder, people_folder, tinyface  # noqa: F401  (_own_folder: autouse fixture)

RELEASED = REPO / "models" / "esp32"
ZOE = "Zoë"
ZOE_UTF8 = ZOE.encode("utf-8")  # b"Zo\xc3\xab": 4 bytes on the wire
# Python's reading of those bytes under a C locale with UTF-8 mode off (surrogate escapes)
ZOE_IN_C_LOCALE = ZOE_UTF8.decode("ascii", "surrogateescape")


# --- 1. a gallery name whatever the locale --------------------------------------------------------

def test_os_text_reads_the_bytes_as_utf8():
    from tinyface.fsutil import os_text  # was tinyface.cli.common.argv_text (flash --enroll's folders use it too)

    assert ZOE_IN_C_LOCALE == "Zo\udcc3\udcab"
    assert os_text(ZOE_IN_C_LOCALE) == ZOE  # was: taken as it came, and refused as "not valid UTF-8"
    assert os_text(ZOE) == ZOE and os_text("Bob") == "Bob"
    with pytest.raises(ValueError) as info:
        os_text("Zo\udceb")  # the Latin-1 byte of ë, in a UTF-8 (or C) locale
    assert "b'Zo\\xeb'" in str(info.value) and "not valid UTF-8" in str(info.value)


def test_a_name_in_surrogate_escapes_is_taken_and_bytes_of_no_text_are_one_line(capsys, tmp_path):
    """In this process: the name check passes the C locale's reading of Zoë (the command goes on to
    the port, which does not exist: exit 7), and refuses bytes that are not UTF-8 (exit 2) first."""
    photo = tmp_path / "zoe.jpg"
    photo.write_bytes(b"")
    port = str(tmp_path / "no-board")
    code, line = tinyface(capsys, "enroll", "--port", port, "--name", ZOE_IN_C_LOCALE, photo)
    assert code == errors.DeviceError.exit_code == 7, line  # was: 2, "'Zo\udcc3\udcab' is not valid UTF-8 text"
    for command in (["enroll", "--port", port, "--name", "Zo\udceb", str(photo)],
                    ["gallery", "delete", "--port", port, "--name", "Zo\udceb"]):
        code, line = tinyface(capsys, *command)
        assert code == errors.EXIT_USAGE == 2
        assert "Invalid value for '--name': its bytes b'Zo\\xeb' are not valid UTF-8 text" in line


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """`tinyface emulate` of the released model on a pseudo-terminal: its port."""
    if not (RELEASED / "model.tflite").is_file():
        pytest.skip("no released model in models/esp32")
    err = tmp_path_factory.mktemp("board") / "stderr"
    with open(err, "wb") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", "emulate", "--model", str(RELEASED)],
                                stdout=subprocess.PIPE, stderr=err_file, start_new_session=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        port = proc.stdout.readline().decode().strip() if ready else ""
        assert port.startswith("/dev/"), err.read_text(errors="replace")[-2000:]
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()


def latin1_locale(folder: Path) -> dict | None:
    """The environment of an ISO-8859-1 locale compiled into ``folder`` (LOCPATH), or None where
    localedef or its sources are missing."""
    try:
        made = subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
                              capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not (folder / "en_US.ISO-8859-1").exists():
        return None
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                           capture_output=True, text=True, env=_env(LOCPATH=str(folder), LC_ALL="en_US.ISO-8859-1"))
    return ({"LOCPATH": str(folder), "LC_ALL": "en_US.ISO-8859-1"}
            if made.returncode in (0, 1) and probe.stdout.strip() == "iso8859-1" else None)


def _env(**locale) -> dict:
    """This process's environment without any locale or Python text setting, plus ``locale``."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("LC_") or k in ("LANG", "LANGUAGE", "PYTHONIOENCODING", "PYTHONUTF8"))}
    return {**env, **locale}


def _tinyface(env: dict, *args) -> subprocess.CompletedProcess:
    """`tinyface ARGS` in a process with ``env``; arguments as bytes, as a terminal passes them."""
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return subprocess.run([sys.executable.encode(), b"-m", b"tinyface.cli.main", *argv], capture_output=True,
                          env=env, timeout=300)


def _people(board) -> list[tuple[bytes, int]]:
    """Who the board holds: (name as UTF-8 bytes, samples), read in a UTF-8 locale."""
    proc = _tinyface(_env(LANG="C.UTF-8"), "gallery", "list", "--port", board, "--json")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return [(p["name"].encode("utf-8"), p["samples"]) for p in json.loads(proc.stdout)["people"]]


@pytest.mark.parametrize("where", ["C, PYTHONUTF8=0", "C", "Latin-1"])
def test_enroll_list_and_delete_zoe_under_a_locale(board, lfw_dir, tmp_path, where):
    if where == "Latin-1":
        locale = latin1_locale(tmp_path)
        if locale is None:
            pytest.skip("no ISO-8859-1 locale can be made here (localedef)")
    else:
        locale = {"LC_ALL": "C", "LANG": "C", **({"PYTHONUTF8": "0"} if "PYTHONUTF8" in where else {})}
    env = _env(**locale)
    photos = sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[:2]
    assert _people(board) == []
    try:
        proc = _tinyface(env, "enroll", "--port", board, "--name", ZOE_UTF8, *photos)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")  # C, PYTHONUTF8=0: was 2
        assert b"Traceback" not in proc.stderr
        # the board holds the 4 bytes typed (Latin-1: was b"Zo\xc3\x83\xc2\xab", the mojibake 'ZoÃ«')
        assert _people(board) == [(ZOE_UTF8, 2)]
        # printed back in the locale's encoding (an ASCII stdout gets UTF-8), never a crash
        shown = ZOE.encode("latin-1") if where == "Latin-1" else ZOE_UTF8
        assert b" of " + shown + b" on " in proc.stdout
        listed = _tinyface(env, "gallery", "list", "--port", board)
        assert listed.returncode == 0 and b"Traceback" not in listed.stderr
        assert b"  " + shown + b" " in listed.stdout, listed.stdout
        as_json = json.loads(_tinyface(env, "gallery", "list", "--port", board, "--json").stdout)
        assert [p["name"] for p in as_json["people"]] == [ZOE]
        # the name typed the same way finds the person again
        proc = _tinyface(env, "gallery", "delete", "--port", board, "--name", ZOE_UTF8)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        assert _people(board) == []
    finally:
        _tinyface(_env(LANG="C.UTF-8"), "gallery", "delete", "--port", board, "--all")


@pytest.mark.parametrize("where", ["C, PYTHONUTF8=0", "C.UTF-8"])
def test_bytes_that_are_no_utf8_are_one_line_and_nothing_is_enrolled(board, lfw_dir, where):
    env = _env(LC_ALL="C", PYTHONUTF8="0") if "PYTHONUTF8" in where else _env(LC_ALL="C.UTF-8")
    photo = sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[0]
    proc = _tinyface(env, "enroll", "--port", board, "--name", b"Zo\xeb", photo, "--json")
    err = proc.stderr.decode("ascii")  # one ASCII line, whatever the locale
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "its bytes b'Zo\\xeb' are not valid UTF-8 text" in err
    assert json.loads(proc.stdout)["exit_code"] == 2
    assert _people(board) == []


# --- 2. a quick build reads no test image but those it evaluates -----------------------------------

# LFW's protocol roles: training people (peopleDevTrain) and test people (peopleDevTest); with
# data.identify_min_images=4, Alvaro_Uribe's 3 photos make him a stranger (one photo evaluated).
TRAINING = {"Aaron_Peirsol": 3, "Abdullah": 3, "Alejandro_Toledo": 3, "Ari_Fleischer": 3}
TEST = {"Abdullah_Gul": 4, "Adrien_Brody": 4, "Alvaro_Uribe": 3}


@pytest.mark.parametrize("quick", [True, False])
def test_a_quick_build_reads_no_test_image_but_those_it_evaluates(make_dataset, monkeypatch, quick):
    from tinyface import config
    from tinyface.train import build_data

    root = make_dataset({**TRAINING, **TEST}, protocol=True)
    read: list[Path] = []

    def prepare_faces(paths, *args, **kwargs):
        read.extend(Path(p) for p in paths)
        return real(paths, *args, **kwargs)

    real = build_data.prepare_faces
    monkeypatch.setattr(build_data, "prepare_faces", prepare_faces)
    settings = config.load(overrides={"data": {"dir": str(root), "identify_min_images": 4, "enroll_images": 2,
                                               "val_fraction": 0.25, "workers": 1}})
    assert settings.data.test_filter > 0  # the default: the filter runs
    data = build_data.load_build_data(settings, quick=quick)
    test_images = {p for p in (root / "images").rglob("*.jpg") if p.parent.name in TEST}
    evaluated = set(data.eval.paths) & test_images
    assert evaluated and evaluated != test_images  # some test photos are not scored (Alvaro's other two)
    read_of_test = {p for p in read if p in test_images}
    if quick:
        assert read_of_test == evaluated  # was: every test image (the filter's reference)
    else:
        assert read_of_test == test_images  # a real build's reference: every image of the test people
    # what the filter dropped is reported either way
    assert set(data.stats["test_filter"]) == {"distance", "train_near_test_image", "train_named_as_test_person",
                                              "val_near_test_image", "val_named_as_test_person"}


# --- 3. --hide-test: TFLM-vs-TFLite parity on the validation images and pairs ----------------------

TEST_PARITY = {"max_lsb_diff": 7, "mean_lsb_diff": 0.7777, "outputs_identical_share": 0.1234,
               "identical_decisions_test_pairs": 0.9876, "n_images": 4321}
VALIDATION_PARITY = {"max_lsb_diff": 1, "mean_lsb_diff": 0.0111, "outputs_identical_share": 0.5555,
                     "identical_decisions_validation_pairs": 0.999, "n_images": 222}


def _metrics(validation_parity=VALIDATION_PARITY):
    """Synthetic build metrics: the test's parity and the validation's told apart by their values."""
    from tinyface.evaluation.report import BuildMetrics

    ver = {"accuracy": 0.6161, "auc": 0.95, "tar_at_far": {"0.01": 0.5}, "threshold": 0.5, "n_pairs": 100}
    ident = {"accuracy": 0.8, "macro_f1": 0.7, "stranger_false_accept_rate": 0.1, "threshold": 0.6, "n_people": 4}
    stage = {"verification": ver, "identification": ident, "model_bytes": 1000, "macs": 10, "arena_bytes": 2000,
             "params": 100, "board": "esp32", "estimated_ms_on_board": 5.0, "latency_ms_host": 1.0,
             "validation": {"accuracy": 0.9, "auc": 0.96}}
    parity = {**TEST_PARITY, **({"validation": validation_parity} if validation_parity else {})}
    return BuildMetrics.from_dict({
        "stages": {name: json.loads(json.dumps(stage)) for name in
                   ("teacher", "float", "pruned", "tflite_float", "tflite_int8", "tflm_int8")},
        "parity": parity, "data": {"train_images": 10, "train_people": 5, "val_images": 4, "val_people": 2},
        "threshold_from": "pairs of validation people", "threshold_source": "validation", "preset": "esp32",
        "mac_budget": 2_000_000, "smoke_test": True})


def _test_parity_shown(text: str) -> list[str]:
    """The test parity's figures that ``text`` shows, as a number or a percentage."""
    forms = [str(v) for v in TEST_PARITY.values() if isinstance(v, float)] + ["4321", "4,321"] + \
            [f"{100 * v:.2f}%" for v in TEST_PARITY.values() if isinstance(v, float)]
    return [form for form in forms if form in text]


@pytest.fixture
def fake_build(monkeypatch, tmp_path):
    """`tinyface build` whose pipeline returns ``metrics`` at once (no TensorFlow, no training)."""
    from tinyface import console
    from tinyface.train import pipeline

    def use(metrics):
        stages = [SimpleNamespace(name=n, skipped=False, seconds=1.0) for n in ("data", "distill", "evaluate")]
        monkeypatch.setattr(pipeline, "run_build", lambda *a, **k: SimpleNamespace(metrics=metrics, stages=stages))
        monkeypatch.setattr(console, "quiet_tensorflow", lambda import_now=False: None)
        return people_folder(tmp_path / "people", 24, photos=3)

    return use


def test_hide_test_json_gives_the_parity_on_validation_images_and_pairs(capsys, fake_build, tmp_path):
    data = fake_build(_metrics())
    args = ["build", "--quick", "--data", data, "--out", tmp_path / "out", "--set", "data.identify_min_images=3",
            "--set", "data.enroll_images=2"]
    with pytest.raises(SystemExit) as exc:
        cli_main.main([str(a) for a in [*args, "--hide-test", "--json"]])
    out, err = capsys.readouterr()
    assert exc.value.code in (0, None), err
    summary = json.loads(out)
    # was: {"max_lsb_diff": 7, "mean_lsb_diff": 0.7777, "outputs_identical_share": 0.1234, "n_images": 4321}
    assert summary["parity"] == VALIDATION_PARITY and summary["test_hidden"] is True
    assert _test_parity_shown(out) == []
    with pytest.raises(SystemExit):
        cli_main.main([str(a) for a in [*args, "--hide-test"]])
    text = capsys.readouterr().out
    assert "validation pairs (smoke test)" in text and _test_parity_shown(text) == []
    # without --hide-test the summary keeps the test's parity, the validation's beside it
    with pytest.raises(SystemExit):
        cli_main.main([str(a) for a in [*args, "--json"]])
    assert json.loads(capsys.readouterr().out)["parity"] == {**TEST_PARITY, "validation": VALIDATION_PARITY}


def test_hide_test_json_of_an_evaluation_from_before_has_no_parity(capsys, fake_build, tmp_path):
    data = fake_build(_metrics(validation_parity=None))  # a metrics.json written before the validation parity
    with pytest.raises(SystemExit):
        cli_main.main([str(a) for a in ["build", "--quick", "--data", data, "--out", tmp_path / "out", "--set",
                                        "data.identify_min_images=3", "--set", "data.enroll_images=2", "--hide-test",
                                        "--json"]])
    out = capsys.readouterr().out
    assert json.loads(out)["parity"] is None and _test_parity_shown(out) == []


def test_validation_report_gives_the_validation_parity_and_no_test_parity(tmp_path):
    from tinyface.config import load_preset
    from tinyface.evaluation.report import write_validation_report

    md = write_validation_report(tmp_path, _metrics(), load_preset("esp32")).read_text()
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert saved["parity"] == VALIDATION_PARITY  # was: no parity at all
    assert "on the 222 validation images: largest output difference 1 LSB" in md and "99.90%" in md
    assert _test_parity_shown(md) == [] and _test_parity_shown(json.dumps(saved)) == []


def test_evaluate_all_measures_the_parity_on_the_validation_images_and_pairs(tmp_path, monkeypatch):
    """The real evaluation, on a tiny float and int8 model and random faces: the validation parity
    is TFLM against TFLite on the validation rows, decided on the validation pairs."""
    import tf_keras as keras

    from tinyface import config
    from tinyface.config import load_preset
    from tinyface.train import stages_eval
    from tinyface.train.build_data import Faces, PairSet
    from tinyface.train.quantize import convert_float, convert_int8

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(16)(x))
    quant = tmp_path / "quantize"
    quant.mkdir()
    (quant / "float.tflite").write_bytes(convert_float(model))
    (quant / "int8.tflite").write_bytes(convert_int8(model, rng.integers(0, 256, (16, 48, 48, 1), dtype=np.uint8)))

    def faces(people: int, each: int, prefix: str) -> Faces:
        labels = [f"{prefix}{p}" for p in range(people) for _ in range(each)]
        teacher = rng.normal(size=(len(labels), 128)).astype(np.float32)
        return Faces(rng.integers(0, 256, (len(labels), 48, 48, 1), dtype=np.uint8),
                     teacher / np.linalg.norm(teacher, axis=1, keepdims=True), labels,
                     [Path(f"{label}_{i}.jpg") for i, label in enumerate(labels)])

    test = faces(6, 4, "test")  # 24 evaluation images
    pairs = PairSet(np.arange(0, 24, 2), np.arange(1, 24, 2), np.array([i % 2 == 0 for i in range(12)]))
    data = SimpleNamespace(eval=test, val=faces(8, 5, "val"), threshold_pairs=pairs, test_pairs=pairs,
                           enroll={"test0": [0, 1], "test1": [4, 5], "test2": [8, 9]},
                           probes=[(2, "test0"), (6, "test1"), (10, "test2")], strangers=[12, 16, 20],
                           stats={"threshold_from": "pairs of validation people"})
    monkeypatch.setattr(stages_eval, "_teacher_latency_ms", lambda data: 1.0)  # reads the photos
    settings = config.load(overrides={"data": {"enroll_images": 2}})
    result = stages_eval.evaluate_all(data, model, None, quant, settings, load_preset("esp32"))
    parity = result.parity
    assert parity.n_images == 24 and parity.validation["n_images"] == 40
    assert set(parity.validation) == {"max_lsb_diff", "mean_lsb_diff", "outputs_identical_share",
                                      "identical_decisions_validation_pairs", "n_images"}
    assert 0 <= parity.validation["max_lsb_diff"] <= 2 and 0.0 <= parity.validation["outputs_identical_share"] <= 1
    # decided on the validation pairs at the shipped threshold of the TFLite int8 stage
    from tinyface.evaluation import metrics
    from tinyface.model.embedder import Embedder

    a, b, _ = stages_eval.validation_pairs(data.val.labels)
    flat = (quant / "int8.tflite").read_bytes()
    tflm, tflite = (Embedder(flat, runtime).embed(data.val.crops) for runtime in ("tflm", "tflite"))
    thr = result.stages["tflite_int8"].verification["threshold"]
    assert parity.validation["identical_decisions_validation_pairs"] == pytest.approx(metrics.decision_agreement(
        metrics.pair_scores(tflm, a, b), metrics.pair_scores(tflite, a, b), thr))
    assert result.to_dict()["parity"]["validation"] == parity.validation  # metrics.json and report.json keep it
