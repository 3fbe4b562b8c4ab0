"""The firmware build cache (tinyface.device.native.make_program) is keyed by the values the
environment gives the Makefiles' ``?=`` variables: make takes those from the environment, so an
OPT, EXTRA_CXXFLAGS or TF_EXTRA changed there must build anew. Before, the key held only what
tinyface passes on make's command line, and such a change reused the program built without it.
So is what MAKEFLAGS carries (``MAKEFLAGS='CFLAGS=-O0'`` overrides a variable), but not the job
count and jobserver a parallel make puts there. And the native program's gallery folder,
$TINYFACE_NVS_DIR, read in tinyface.config."""

import re
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import load_benchmark, skip_or_fail
from tinyface import config
from tinyface.device import native
from tinyface.resources import firmware_dir

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = {"native": firmware_dir() / "native" / "Makefile.j2", "rv32": firmware_dir() / "rv32" / "Makefile.j2",
             "lx106": REPO / "benchmarks" / "lx106" / "Makefile.j2"}
KEY = "be4ab72d9aa2a5af"


def _unset(monkeypatch, makefile: Path) -> None:
    for name in (*native.makefile_defaults(makefile), "MAKEFLAGS", "GNUMAKEFLAGS"):  # pytest may run under make
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("build", sorted(TEMPLATES))
def test_every_question_mark_assignment_of_the_templates_is_found(build):
    text = TEMPLATES[build].read_text(encoding="utf-8")
    by_hand = [line.split("?=")[0].strip() for line in text.splitlines()
               if "?=" in line and not line.startswith(("#", "\t"))]
    assert list(native.makefile_defaults(TEMPLATES[build])) == by_hand and by_hand


def rendered_makefile(build: str, directory: Path) -> Path:
    """``build``'s Makefile rendered into ``directory`` for a model of two ops: native and rv32 in
    generate_project's template environment, lx106 by benchmarks/xtensa_kernels.py's write_lx106."""
    from types import SimpleNamespace

    from tinyface.codegen import BANNER
    from tinyface.codegen.project import APP_SOURCES, template_environment

    ops = [("CONV_2D", "AddConv2D"), ("FULLY_CONNECTED", "AddFullyConnected")]
    if build == "lx106":
        load_benchmark("xtensa_kernels").write_lx106(SimpleNamespace(directory=directory, ops=ops))
    else:
        text = template_environment(firmware_dir()).get_template(f"{build}/Makefile.j2").render(
            banner=BANNER, ops=ops, app_sources=APP_SOURCES)
        (directory / build).mkdir()
        (directory / build / "Makefile").write_text(text, encoding="utf-8")
    return directory / build / "Makefile"


@pytest.mark.parametrize("build", sorted(TEMPLATES))
def test_the_rendered_makefile_assigns_the_question_mark_variables_its_template_does(build, tmp_path):
    """make_program keys the cache by the rendered Makefile's ``?=`` variables, the test above reads
    the template's: a ``?=`` moved into the fragments the templates import (firmware/make/) would be
    in the first and not the second, and missing from the other builds' keys if a macro hid it."""
    assert native.makefile_defaults(rendered_makefile(build, tmp_path)) == native.makefile_defaults(TEMPLATES[build])


@pytest.mark.parametrize("build, name", [("native", "OPT"), ("native", "EXTRA_CXXFLAGS"), ("native", "FLATBUFFERS_DIR"),
                                         ("rv32", "TF_EXTRA"), ("lx106", "COMPILER_RT_DIR")])
def test_a_variable_set_in_the_environment_keys_the_cache(monkeypatch, build, name):
    makefile = TEMPLATES[build]
    _unset(monkeypatch, makefile)
    assert native.environment_key(KEY, makefile, []) == KEY  # none set: the caches built before stay valid
    keys = set()
    for value in ("-O0", "-O3", ""):  # an empty value is one too: make takes it over the default
        monkeypatch.setenv(name, value)
        keys.add(native.environment_key(KEY, makefile, []))
    assert len(keys) == 3 and KEY not in keys, keys
    assert all(re.fullmatch(r"[0-9a-f-]+", k) for k in keys), keys  # the key names a folder


def test_what_the_command_line_sets_does_not_key_the_cache(monkeypatch):
    """make's command line wins over the environment: the toolchain's own variables (already in
    its key) and make_program's places are left out, so setting them there rebuilds nothing."""
    makefile = TEMPLATES["native"]
    _unset(monkeypatch, makefile)
    toolchain = native.NativeToolchain(Path("/tflm"), Path("/deps"), "g++", "make")
    for name in ("TFLM_DIR", "TFLM_THIRD_PARTY_DIR", "CXX", *native.MAKE_PLACES):
        monkeypatch.setenv(name, "/somewhere/else")
    assert native.environment_key(KEY, makefile, toolchain.make_vars()) == KEY
    monkeypatch.setenv("OPT", "-O0")
    assert native.environment_key(KEY, makefile, toolchain.make_vars()) != KEY
    assert native.environment_key(KEY, makefile, [*toolchain.make_vars(), "OPT=-O1"]) == KEY


def test_no_extra_make_variables_leave_the_key_as_it_was():
    assert native.key_with(KEY, []) == KEY != native.key_with(KEY, ["TF_EXTRA=-include a.h"])


@pytest.mark.parametrize("makeflags, kept", [
    ("", ""), ("   ", ""),
    # what GNU make 4.3 writes for `make -j4`, `make -j`, `make -k -s -j4`, `make -j2 -l2 -Otarget`
    (" -j4 --jobserver-auth=3,4", ""), ("s -j", ""), ("ks -j4 --jobserver-auth=3,4", ""),
    ("s -j2 -l2 -Otarget --jobserver-auth=3,4", ""),
    ("w --jobserver-auth=fifo:/tmp/GMfifo77 -j8", ""),  # make 4.4's named pipe, print-directory
    (" --jobserver-fds=3,4 -j", ""),  # make 3.81
    ("-j 4 --jobs=3 --jobs 2 --load-average=2.5 --output-sync=line", ""),  # as a user may write them
    # variable overrides: make's own writing, and a user's
    ("s -j4 --jobserver-auth=3,4 -- CFLAGS=-O0", "CFLAGS=-O0"), ("CFLAGS=-O0", "CFLAGS=-O0"),
    (" -- X=a\\ b CFLAGS=-O0", "X=a\\ b CFLAGS=-O0"),  # an escaped space stays in its value
    ("-- OPT=-j4", "OPT=-j4"),  # after "--" nothing is a flag
    # flags that may change what is built stay
    ("es", "e"), ("Bi -j2", "Bi"), ("-e -I /inc -j8", "-e -I /inc"),
])
def test_makeflags_key_drops_a_parallel_makes_parts_and_keeps_the_rest(makeflags, kept):
    assert native.makeflags_key(makeflags) == kept


@pytest.mark.parametrize("name", ["MAKEFLAGS", "GNUMAKEFLAGS"])  # GNU make reads both
def test_makeflags_key_the_cache_but_not_a_parallel_makes_parts(monkeypatch, name):
    """Before, MAKEFLAGS was not in the key: a CFLAGS override there reused objects compiled without it."""
    makefile = TEMPLATES["native"]
    _unset(monkeypatch, makefile)
    monkeypatch.setenv(name, "ks -j4 --jobserver-auth=3,4")
    assert native.environment_key(KEY, makefile, []) == KEY  # a parallel make around tinyface rebuilds nothing
    keys = set()
    for value in (" -j4 --jobserver-auth=3,4 -- CFLAGS=-O0", "CFLAGS=-O0", "-- CFLAGS=-O3", "e"):
        monkeypatch.setenv(name, value)
        keys.add(native.environment_key(KEY, makefile, []))
    assert len(keys) == 3 and KEY not in keys, keys  # the first two are one override, with and without -j4


def _opt_project(tmp_path):
    """A project whose native Makefile's "program" is the value make gave OPT (default -O2), and
    a function that builds it through make_program's cache."""
    if not shutil.which("make"):
        skip_or_fail("no make")
    project = tmp_path / "project"
    (project / "native").mkdir(parents=True)
    (project / "src").mkdir()
    (project / "native" / "Makefile").write_text("OPT ?= -O2\nall:\n\t@echo '$(OPT)' > $(PROGRAM)\n")

    def build():
        return native.make_program(project, "native", "make", [], KEY, tmp_path / "cache", "prog", "test", jobs=1)

    return project, build


def test_make_program_builds_anew_when_the_environment_changes_a_variable(monkeypatch, tmp_path):
    project, build = _opt_project(tmp_path)
    monkeypatch.delenv("OPT", raising=False)
    plain = build()
    monkeypatch.setenv("OPT", "-O0")
    changed = build()
    assert changed != plain and changed.read_text().strip() == "-O0"
    monkeypatch.delenv("OPT")
    assert build() == plain and plain.read_text().strip() == "-O2"


def test_make_program_builds_anew_for_an_override_in_makeflags_only(monkeypatch, tmp_path):
    project, build = _opt_project(tmp_path)
    _unset(monkeypatch, project / "native" / "Makefile")
    plain = build()
    monkeypatch.setenv("MAKEFLAGS", " -j3")  # a parallel make around it: the same program
    assert build() == plain
    monkeypatch.setenv("MAKEFLAGS", " -j3 -- OPT=-O0")  # make takes OPT from here
    changed = build()
    assert changed != plain and changed.read_text().strip() == "-O0" and plain.read_text().strip() == "-O2"


def test_the_native_program_keeps_its_gallery_in_tinyface_nvs_dir(monkeypatch, tmp_path):
    """spawn_native passes $TINYFACE_NVS_DIR as --storage (and makes the folder); --storage given wins."""
    program = tmp_path / "program"
    program.write_text('#!/bin/sh\necho "$@"\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)

    def args(**kwargs) -> str:
        proc = native.spawn_native(program, own_pty=True, **kwargs)
        out, _ = proc.communicate(timeout=30)
        return out.strip()

    monkeypatch.delenv("TINYFACE_NVS_DIR", raising=False)
    assert config.native_storage_dir() is None and "--storage" not in args()
    monkeypatch.setenv("TINYFACE_NVS_DIR", "")
    assert config.native_storage_dir() is None and "--storage" not in args()
    monkeypatch.setenv("TINYFACE_NVS_DIR", str(tmp_path / "nvs"))
    assert args().endswith(f"--storage {tmp_path / 'nvs'} --pty") and (tmp_path / "nvs").is_dir()
    assert f"--storage {tmp_path / 'mine'} " in args(storage_dir=tmp_path / "mine")
