"""`tinyface flash`: dry runs for every board, and the error paths with the real `pio`
executable, which must end in seconds with one line (PlatformIO alone would retry its
registry for about a minute)."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tinyface.boards import board_names, load_board

BOARDS = ["esp32", "esp32s3", "esp32c3", "esp32cam"]


def _flash(*args, env=None, cwd=None, timeout=120, setup=""):
    """`tinyface flash ARGS` in a child Python (``setup``, Python code, runs there first)."""
    start = time.monotonic()
    command = [sys.executable, "-c", f"{setup}\nfrom tinyface.cli.main import main\nmain()"] if setup else \
        [sys.executable, "-m", "tinyface.cli.main"]
    result = subprocess.run([*command, "flash", *args], capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd)
    return result, time.monotonic() - start


@pytest.fixture
def pio_home(tmp_path):
    """An empty PlatformIO home: the espressif32 platform is not installed."""
    home = tmp_path / "pio-home"
    home.mkdir()
    return home


@pytest.fixture
def pio_home_with_platform(tmp_path):
    """A PlatformIO home whose platforms/ lists espressif32 6.9.0 (a real package manifest;
    the boundary faked is the toolchain download, which cannot happen offline)."""
    home = tmp_path / "pio-home-installed"
    (home / "platforms" / "espressif32").mkdir(parents=True)
    (home / "platforms" / "espressif32" / "platform.json").write_text(json.dumps({"name": "espressif32",
                                                                                  "version": "6.9.0"}))
    return home


@pytest.mark.parametrize("board", BOARDS)
def test_dry_run_renders_a_project_for_each_board(board, tiny_bundle, tmp_path):
    result, _ = _flash("--board", board, "--model", str(tiny_bundle.model_path.parent), "--dry-run",
                       "--project-dir", str(tmp_path / board), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["board"] == board and out["uploaded"] is False and out["port"] is None
    assert out["dry_run"] is True  # was: no field; a script could not tell a dry run from an upload that failed
    project = out["project"]
    assert project["model_sha256"] == tiny_bundle.model_hash
    assert sorted(project["ops"]) == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN"]
    assert project["budget"]["mac_budget"] == load_board(board).mac_budget
    assert f"board = {load_board(board).pio_board}" in (tmp_path / board / "platformio.ini").read_text()


def test_dry_run_default_project_dir_and_summary(tiny_bundle, tmp_path):
    result, _ = _flash("--board", "esp32", "--model", str(tiny_bundle.model_path.parent), "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "build/firmware/esp32/platformio.ini").is_file()
    assert "dry run: nothing built or flashed" in result.stderr and "arena:" in result.stderr


def test_an_identification_threshold_of_ones_own_is_compiled_in(tiny_bundle, tmp_path):
    from tinyface.codegen.carray import c_float

    model = str(tiny_bundle.model_path.parent)
    own, _ = _flash("--board", "esp32", "--model", model, "--dry-run", "--project-dir", str(tmp_path / "own"),
                    "--json", "--set", "firmware.identify_threshold=0.8125")
    assert own.returncode == 0, own.stderr
    out = json.loads(own.stdout)
    assert out["identify_threshold"] == 0.8125 and out["identify_threshold_source"] == "firmware.identify_threshold"
    header = (tmp_path / "own" / "src" / "model_settings.h").read_text()
    assert f"#define TF_MODEL_THRESHOLD {c_float(0.8125)}" in header
    shipped, _ = _flash("--board", "esp32", "--model", model, "--dry-run", "--project-dir", str(tmp_path / "shipped"))
    assert shipped.returncode == 0, shipped.stderr
    assert f"identification threshold: {tiny_bundle.meta.identify_at:.4f} (the model's)" in shipped.stderr
    assert f"#define TF_MODEL_THRESHOLD {c_float(tiny_bundle.meta.identify_at)}" in \
        (tmp_path / "shipped" / "src" / "model_settings.h").read_text()
    bad, _ = _flash("--board", "esp32", "--model", model, "--dry-run", "--set", "firmware.identify_threshold=1.5",
                    cwd=tmp_path)
    assert bad.returncode == 3 and "firmware.identify_threshold must be in [0, 1)" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_no_platform_fails_with_one_line_before_pio_run_when_registry_unreachable(tiny_bundle, pio_home, tmp_path):
    """The registry is the internet, a boundary a test can rely on neither way: the child's
    ``platformio.REGISTRY_HOST``/``REGISTRY_PORT`` point at a local port bound but never listening
    (refused at once, here and on an online CI alike). A fake `pio` first on PATH records any run:
    the refusal must come before `pio run`, which would retry the registry for about a minute."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ran = tmp_path / "pio-ran.txt"
    fake_pio = bin_dir / "pio"
    fake_pio.write_text(f'#!/bin/sh\necho "$@" >> "{ran}"\nexit 1\n')
    fake_pio.chmod(0o755)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: a connection to it is refused
        port = closed.getsockname()[1]
        result, _ = _flash("--board", "esp32", "--model", str(tiny_bundle.model_path.parent),
                           "--project-dir", str(tmp_path / "p"),
                           env={"PLATFORMIO_CORE_DIR": str(pio_home),
                                "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
                           setup="import tinyface.device.platformio as pio\n"
                                 f"pio.REGISTRY_HOST, pio.REGISTRY_PORT = '127.0.0.1', {port}")
    assert result.returncode == 9, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "platform 'espressif32' is not installed" in lines[0] and "pio pkg install" in lines[0]
    assert "its registry (127.0.0.1) cannot be reached" in lines[0]
    assert not ran.exists(), f"`pio` ran before the refusal: pio {ran.read_text()}"
    assert (tmp_path / "p/platformio.ini").is_file()  # the project is still rendered, and the line says where
    assert f"the rendered project is kept in {tmp_path / 'p'}" in lines[0]


def test_no_board_connected_lists_the_ports_seen(tiny_bundle, pio_home_with_platform, tmp_path):
    from tinyface.device.ports import list_serial_ports

    board = load_board("esp32")
    if any((p.vid, p.pid) in board.usb_ids for p in list_serial_ports()):
        pytest.skip("a board with ESP32 USB ids is connected")
    result, _ = _flash("--board", "esp32", "--model", str(tiny_bundle.model_path.parent),
                       "--project-dir", str(tmp_path / "p"), env={"PLATFORMIO_CORE_DIR": str(pio_home_with_platform)})
    assert result.returncode == 7, result.stderr  # the port is looked for before any build (a build here fails: exit 9)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no esp32 board connected" in lines[0] and "ports seen:" in lines[0]
    assert "10C4:EA60" in lines[0]


def test_platform_check_reads_platformio_manifests(pio_home_with_platform, monkeypatch):
    from tinyface.device.platformio import platform_installed

    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_home_with_platform))
    assert platform_installed("espressif32@6.9.0") and platform_installed("espressif32@^6.0.0")
    assert not platform_installed("espressif32@6.8.0") and not platform_installed("atmelavr")


def test_real_pio_failure_is_one_line(tiny_bundle, tmp_path):
    """The real `pio` fails on the generated project (asked for an environment it does not
    have): its output is streamed and the failure becomes one line with its error."""
    from tinyface.codegen import generate_project
    from tinyface.device.platformio import build_and_upload
    from tinyface.errors import ToolchainError

    generate_project(tiny_bundle, load_board("esp32"), tmp_path)
    lines = []
    with pytest.raises(ToolchainError) as info:
        build_and_upload(tmp_path, "esp32s3", port=None, upload=False, on_line=lines.append)
    assert any("Unknown environment names 'esp32s3'" in line for line in lines)
    line = info.value.one_line()
    assert line.startswith("PlatformIO build failed (exit 1):") and "Unknown environment names" in line


def test_default_model_prefers_a_build(tiny_bundle, tmp_path, monkeypatch):
    import shutil

    from tinyface.device.flash import resolve_model

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_bundle.model_path.parent, tmp_path / "build" / "esp32")
    assert resolve_model(None, load_board("esp32")) == tmp_path.joinpath("build", "esp32").relative_to(tmp_path)
    # no esp32cam model: the esp32 preset fits it
    assert resolve_model(None, load_board("esp32cam")).as_posix() == "build/esp32"
    assert resolve_model("x/y", load_board("esp32")).as_posix() == "x/y"


def test_unknown_board_and_help():
    result, _ = _flash("--board", "esp8266", "--dry-run")
    assert result.returncode == 2 and "unknown board 'esp8266'" in result.stderr
    assert set(board_names()) >= set(BOARDS)
    help_result, _ = _flash("--help")
    assert help_result.returncode == 0 and "--dry-run" in help_result.stdout and "--enroll" in help_result.stdout


def test_enroll_folder_compiles_a_gallery(tiny_bundle, lfw_dir, tmp_path):
    """--enroll: real LFW photos, aligned and embedded by the int8 model, end up in gallery_data.h."""
    import shutil

    people = tmp_path / "people"
    for name in ("Alvaro_Uribe", "Amelie_Mauresmo"):
        (people / name[:15]).mkdir(parents=True)
        for photo in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:2]:
            shutil.copy(photo, people / name[:15] / photo.name)
    result, _ = _flash("--board", "esp32", "--model", str(tiny_bundle.model_path.parent), "--dry-run", "--json",
                       "--enroll", str(people), "--project-dir", str(tmp_path / "p"),
                       env={"TINYFACE_DATA": str(lfw_dir)}, timeout=600)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "p/src/gallery_data.h").read_text()
    assert "#define TF_GALLERY_BUILTIN_COUNT 2" in text
    assert '{"Alvaro_Uribe", 2, {' in text and '{"Amelie_Mauresmo", 2, {' in text
    assert json.loads(result.stdout)["project"]["budget"]["gallery_flash_bytes"] > 0


def test_a_folder_with_the_users_own_platformio_ini_is_refused_unless_forced(tiny_bundle, tmp_path):
    project = tmp_path / "mine"
    project.mkdir()
    mine = "[env:mine]\nplatform = espressif32\nboard = esp32dev\n"
    (project / "platformio.ini").write_text(mine)
    args = ("--board", "esp32", "--model", str(tiny_bundle.model_path.parent), "--dry-run", "--project-dir",
            str(project))
    result, _ = _flash(*args)
    assert result.returncode == 11, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: ") and "Traceback" not in result.stderr
    assert "platformio.ini is not generated by tinyface" in lines[0] and "--force" in lines[0]
    assert (project / "platformio.ini").read_text() == mine and sorted(p.name for p in project.iterdir()) == [
        "platformio.ini"]
    forced, _ = _flash(*args, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert "platformio.ini" in json.loads(forced.stdout)["project"]["files"]
    assert "generated by tinyface" in (project / "platformio.ini").read_text().splitlines()[0]
    again, _ = _flash(*args)  # now a tinyface project: regenerating it needs no --force
    assert again.returncode == 0, again.stderr


def test_force_is_documented_with_an_example():
    result, _ = _flash("--help")
    assert result.returncode == 0
    assert "--force" in result.stdout and "--project-dir fw/ --force" in " ".join(result.stdout.split())


REPO_MODEL = os.path.join(os.path.dirname(__file__), "..", "..", "models", "esp32")


def test_a_dry_run_does_not_check_the_port(tmp_path):
    """A dry run uses no port, so one that is not there (a script's --port on a machine without
    the board) is no error."""
    from tinyface.device.flash import flash

    result = flash(load_board("esp32"), model=REPO_MODEL, project_dir=tmp_path / "fw", port="/dev/ttyNONE",
                   dry_run=True)
    assert result.uploaded is False and (tmp_path / "fw" / "platformio.ini").is_file()


@pytest.mark.parametrize("port", ["/dev/ttyUSB*", "COM3", "rfc2217://localhost:4000"])
def test_a_port_platformio_resolves_reaches_platformio_as_given_upload_mocked(tmp_path, monkeypatch, port,
                                                                              pio_home_with_platform):
    """The real PlatformIO and platform checks (espressif32 6.9.0 installed in PlatformIO's home);
    the build and upload are replaced (no board or toolchain here): they receive the port unchanged."""
    from tinyface.device import platformio
    from tinyface.device.flash import flash

    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_home_with_platform))
    uploads = []
    monkeypatch.setattr(platformio, "build_and_upload",
                        lambda project_dir, env, port, on_line=None: uploads.append(port))
    result = flash(load_board("esp32"), model=REPO_MODEL, project_dir=tmp_path / "fw", port=port)
    assert uploads == [port] and result.port == port and result.uploaded


@pytest.mark.parametrize("given", ["pty", "link"])
def test_a_relative_serial_port_reaches_platformio_absolute_upload_mocked(tmp_path, monkeypatch, given,
                                                                           pio_home_with_platform):
    """A serial port named relative to the current folder (a pty, or a link to one) passes the port
    check and reaches PlatformIO as an absolute path: PlatformIO runs in the project folder, where
    the relative name means nothing (was: handed on relative). Build and upload replaced, as above."""
    from tinyface.device import platformio
    from tinyface.device.flash import flash

    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_home_with_platform))
    uploads = []
    monkeypatch.setattr(platformio, "build_and_upload",
                        lambda project_dir, env, port, on_line=None: uploads.append(port))
    master, slave = os.openpty()
    try:
        slave_path = os.ttyname(slave)
        if given == "pty":
            monkeypatch.chdir(os.path.dirname(slave_path))
            port, expected = os.path.basename(slave_path), slave_path
        else:
            (tmp_path / "ttyBoard").symlink_to(slave_path)
            monkeypatch.chdir(tmp_path)
            port, expected = "ttyBoard", str(tmp_path / "ttyBoard")
        result = flash(load_board("esp32"), model=os.path.abspath(REPO_MODEL), project_dir=tmp_path / "fw",
                       port=port)
    finally:
        os.close(master)
        os.close(slave)
    assert uploads == [expected] and result.port == expected and result.uploaded


def test_more_people_than_the_gallery_holds_is_gallery_full(tiny_bundle, tmp_path):
    """--enroll with 17 person folders: the full gallery's exit code (13, as `enroll` into a full
    gallery; it was 4) and what to do, before any face is aligned (the photos here cannot even
    be decoded: aligning them would have been NoFaceError, 15)."""
    from tinyface.protocol.spec import GALLERY_CAPACITY

    people = tmp_path / "people"
    for k in range(GALLERY_CAPACITY + 1):
        (people / f"person{k:02d}").mkdir(parents=True)
        (people / f"person{k:02d}" / "a.jpg").write_bytes(b"not a JPEG")
    result, _ = _flash("--board", "esp32", "--model", str(tiny_bundle.model_path.parent), "--dry-run",
                       "--enroll", str(people), "--project-dir", str(tmp_path / "p"))
    assert result.returncode == 13, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: "), result.stderr
    assert f"{people} has 17 people; the board's gallery holds 16" in lines[0]
    assert f"keep at most 16 person folders in {people}: move 1 out" in lines[0]
    assert not (tmp_path / "p").exists()


RELEASED = os.path.join(os.path.dirname(__file__), "..", "..", "models")


def test_emulate_refuses_a_model_the_board_cannot_hold_as_flash_does(tmp_path):
    """models/esp32s3 (its arena needs the S3's SRAM) on an esp32: `flash` refused it (exit 10) while
    `emulate` served it; both now refuse it with the same line, naming the board it was built for."""
    import signal

    model = os.path.join(RELEASED, "esp32s3")
    flashed, _ = _flash("--board", "esp32", "--model", model, "--dry-run", "--project-dir", str(tmp_path / "p"))
    emu = subprocess.Popen([sys.executable, "-m", "tinyface.cli.main", "emulate", "--board", "esp32", "--model",
                            model, "--once"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = emu.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it serves, and waits for a host
        os.killpg(emu.pid, signal.SIGTERM)
        out, err = emu.communicate(timeout=30)
        pytest.fail(f"emulate served a model the board cannot hold on {out.strip()}: {err}")
    assert flashed.returncode == emu.returncode == 10, (flashed.stderr, err)
    assert out == "", out  # no port: nothing served
    line = flashed.stderr.strip()
    assert err.strip() == line and len(line.splitlines()) == 1
    assert "esp32: tensor arena" in line and "does not fit" in line
    assert "was built for esp32s3: use --board esp32s3" in line


# (flash used, SRAM used, arena allocated) of the released models' firmware, as generate_project
# computed them before `flash` and `emulate` checked the budget alone (commit 4afec66), or the
# start of the refusal; the S3's SRAM and arena since they hold ESP-NN's S3 scratch (104,000 B
# for layer 22 of models/esp32s3: tests/codegen/test_esp_nn_scratch.py); the S3's and the C3's SRAM
# since it counts their USB-Serial/JTAG port's receive ring too (16,896 B); every SRAM figure since the
# gallery blob records the compiled-in gallery it started from (4 B)
RENDERED_BEFORE = {("esp32s3", "esp32s3", "esp-nn"): (1395136, 309450, 248592),
                   ("esp32c3", "esp32c3", "generated"): (1060888, 137146, 76288),
                   ("esp32", "esp32", "esp-nn"): (757824, 99946, 55984),
                   ("esp32s3", "esp32", "esp-nn"): "esp32: tensor arena 144,592 B (TFLM 125,728 B + 15% margin)"}


@pytest.mark.parametrize("model, board, kernels", sorted(RENDERED_BEFORE))
def test_the_budget_check_alone_is_the_one_the_project_is_rendered_with(model, board, kernels, tmp_path):
    """check_fits (what `emulate` checks) and generate_project (what `flash` renders) give the
    figures the rendering gave before the check was split out, or the same refusal."""
    from tinyface.codegen import generate_project
    from tinyface.device.flash import check_fits
    from tinyface.errors import BudgetError
    from tinyface.model.bundle import load_bundle

    bundle, b = load_bundle(os.path.join(RELEASED, model)), load_board(board)
    expected = RENDERED_BEFORE[(model, board, kernels)]

    def rendered():
        project = generate_project(bundle, b, tmp_path, kernels=kernels)
        return project.budget, project.arena

    for check in (lambda: check_fits(bundle, b, kernels=kernels), rendered):
        try:
            budget, arena = check()
        except BudgetError as exc:
            assert isinstance(expected, str) and str(exc).startswith(expected), str(exc)
        else:
            assert (budget.flash_used_bytes, budget.ram_used_bytes, arena.bytes) == expected


def test_the_hint_names_the_board_the_model_was_built_for_only_if_it_fits_there():
    """models/esp32s3 refused by an esp32: the hint says `use --board esp32s3` when the S3 holds it
    with the same settings; with an arena margin no board holds, it names no board."""
    from tinyface.boards import load_board
    from tinyface.device.flash import check_fits
    from tinyface.errors import BudgetError
    from tinyface.model.bundle import load_bundle

    bundle, esp32 = load_bundle(os.path.join(RELEASED, "esp32s3")), load_board("esp32")
    with pytest.raises(BudgetError) as fits_s3:
        check_fits(bundle, esp32)
    assert "use --board esp32s3" in fits_s3.value.hint
    with pytest.raises(BudgetError, match="tensor arena") as fits_none:
        check_fits(bundle, esp32, arena_margin=1000.0)
    assert "use --board" not in (fits_none.value.hint or "") and "was built for" not in (fits_none.value.hint or "")
    with pytest.raises(BudgetError):  # indeed: the S3 refuses it too
        check_fits(bundle, load_board("esp32s3"), arena_margin=1000.0)
