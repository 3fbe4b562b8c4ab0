"""Settings: defaults < tinyface.toml < --set < explicit options; every bad value is a
ConfigError that names the setting."""

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from tests.conftest import error_in_process as error_line
from tinyface import config, errors
from tinyface.config import StudentSettings
from tinyface.errors import ConfigError

SECTIONS = ["data", "extra", "teacher", "student", "distill", "prune", "quantize", "firmware", "bench"]


def cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env=dict(os.environ, **(env or {})))


def test_sections_follow_the_pipeline_and_defaults_validate():
    settings = config.Settings()
    assert [f.name for f in fields(settings)] == SECTIONS
    assert settings.validate() is settings
    assert settings.data.crop_size == 48 and settings.data.identify_min_images == 10
    assert settings.data.enroll_images == 5


def test_file_values_are_applied(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[data]\ncrop_size = 64\nchannels = 3\n[distill]\nlearning_rate = 1\naugment = false\n")
    s = config.load(path)
    assert (s.data.crop_size, s.data.channels) == (64, 3)
    assert s.distill.learning_rate == 1.0 and isinstance(s.distill.learning_rate, float)
    assert s.distill.augment is False
    assert s.student.embedding_dim == config.StudentSettings().embedding_dim  # untouched sections keep defaults


@pytest.mark.parametrize("text, needles", [
    ("[dataa]\ncrop_size = 48\n", ["unknown section [dataa]", "known sections: data"]),
    ("[data]\ncrop_sise = 48\n", ["unknown key 'data.crop_sise'", "crop_size"]),
    ("[distill]\nepochs = 3\nfoo = 1\n", ["unknown key 'distill.foo'"]),
    ("[data.extra]\nx = 1\n", ["unknown key 'data.extra'"]),
    ("data = 5\n", ["[data]", "must be a table"]),
])
def test_unknown_names_are_errors_that_name_them(tmp_path, text, needles):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        config.load(path)
    for needle in needles:
        assert needle in exc.value.one_line()
    assert str(path) in exc.value.one_line()


@pytest.mark.parametrize("line, needle", [
    ("[data]\ncrop_size = \"48\"", "'data.crop_size' in"),
    ("[data]\ncrop_size = 48.5", "'data.crop_size'"),
    ("[data]\ncrop_size = true", "'data.crop_size'"),
    ("[data]\npadding = \"wide\"", "'data.padding'"),
    ("[prune]\nenabled = \"yes\"", "'prune.enabled'"),
    ("[firmware]\nboard = false", "'firmware.board'"),
    ("[bench]\nimages = [1, 2]", "'bench.images'"),
])
def test_wrong_types_are_errors(tmp_path, line, needle):
    path = tmp_path / "t.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match="must be") as exc:
        config.load(path)
    assert needle in str(exc.value)


@pytest.mark.parametrize("section, key, value", [
    ("data", "crop_size", 8), ("data", "channels", 2), ("data", "padding", 1.5), ("data", "val_fraction", 0.0),
    ("data", "enroll_images", 10), ("data", "workers", -1), ("data", "identify_gallery", -1),
    ("distill", "epochs", 0), ("distill", "alpha", 1.5),
    ("prune", "target_sparsity", 1.0), ("quantize", "calibration_images", 0), ("firmware", "arena_margin", -0.1),
    ("bench", "timeout_s", 0), ("teacher", "chip_size", 112), ("student", "embedding_dim", 4),
])
def test_out_of_range_values_are_errors_naming_the_key_and_value(section, key, value):
    with pytest.raises(ConfigError) as exc:
        config.load(None, {section: {key: value}})
    assert f"{section}.{key}" in str(exc.value) and repr(value) in str(exc.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\ncrop_size = 48\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)


def test_set_option_parsing():
    """A value is TOML where it reads as TOML (a number, a bool, a list, a quoted string), else the
    string typed (a path, a word, a Windows path whose backslash is no TOML escape)."""
    assert config.parse_set_option(("distill.epochs=5", "data.dir=/x/y z", "prune.enabled=false",
                                    "distill.learning_rate=1e-3", 'firmware.board="esp32s3"', "extra.dirs=[]",
                                    "extra.kind=photos", "data.dir2=C:\\photos")) == {
        "distill": {"epochs": 5, "learning_rate": 1e-3}, "data": {"dir": "/x/y z", "dir2": "C:\\photos"},
        "prune": {"enabled": False}, "firmware": {"board": "esp32s3"}, "extra": {"dirs": [], "kind": "photos"}}
    for bad in ("epochs=5", "distill.epochs", ".epochs=5", "distill.=5"):
        with pytest.raises(ConfigError, match="--set expects section.key=value"):
            config.parse_set_option((bad,))


def test_precedence_defaults_file_set_option(tmp_path):
    (tmp_path / "tinyface.toml").write_text("[data]\ncrop_size = 64\ndir = \"/from/file\"\n[distill]\nepochs = 7\n")
    proc = cli("build", "--print-config", "--json", "--set", "distill.epochs=9", "--set", "data.dir=/from/set",
               "--data", "/from/option", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    eff = json.loads(proc.stdout)
    assert eff["data"]["crop_size"] == 64  # file over default
    assert eff["distill"]["epochs"] == 9  # --set over file
    assert eff["data"]["dir"] == "/from/option"  # an explicit option over --set


def test_print_config_round_trips(tmp_path):
    (tmp_path / "tinyface.toml").write_text("[student]\nwidth = 0.75\n[quantize]\nqat = true\n"
                                            "[data]\ndir = 'C:\\x \"y\"'\n")
    proc = cli("build", "--print-config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout
    parsed = tomllib.loads(printed)
    assert parsed["student"]["width"] == 0.75 and parsed["quantize"]["qat"] is True
    assert parsed["data"]["dir"] == 'C:\\x "y"'
    # the printed TOML is itself a valid config that means the same settings
    again = tmp_path / "again"
    again.mkdir()
    (again / "tinyface.toml").write_text(printed)
    proc2 = cli("build", "--print-config", cwd=again)
    assert proc2.returncode == 0 and proc2.stdout == printed
    assert config.load(again / "tinyface.toml").to_dict() == parsed


def test_a_found_tinyface_toml_that_is_a_folder_is_refused_not_skipped(tmp_path, monkeypatch):
    # was: skipped without a word (is_file() was the test of whether there is one): its settings lost
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinyface.toml").mkdir()
    with pytest.raises(ConfigError, match="config file tinyface.toml is a folder") as info:
        config.load()
    assert "every command reads ./tinyface.toml" in info.value.hint
    (tmp_path / "tinyface.toml").rmdir()
    (tmp_path / "tinyface.toml").symlink_to(tmp_path / "gone.toml")
    with pytest.raises(ConfigError, match="config file not found: tinyface.toml"):
        config.load()


def test_a_settings_file_with_a_byte_order_mark_is_read(tmp_path):
    # was: "is not valid TOML: Invalid statement (at line 1, column 1)" for a file Windows Notepad saved
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeff[data]\ncrop_size = 96\n".encode("utf-8"))
    assert config.load(path).data.crop_size == 96


def test_tinyface_toml_is_discovered_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.load().data.crop_size == 48
    (tmp_path / "tinyface.toml").write_text("[data]\ncrop_size = 96\n")
    assert config.load().data.crop_size == 96
    other = tmp_path / "other.toml"
    other.write_text("[data]\ncrop_size = 32\n")
    assert config.load(other).data.crop_size == 32  # --config wins over the discovered file
    proc = cli("--config", str(other), "build", "--print-config", "--json", cwd=tmp_path)
    assert json.loads(proc.stdout)["data"]["crop_size"] == 32


@pytest.mark.parametrize("args, code, needle", [
    (["--set", "nosection.key=1"], 3, "unknown section [nosection]"),
    (["--set", "data.nokey=1"], 3, "unknown key 'data.nokey' in command-line options"),
    (["--set", "data.crop_size=abc"], 3, "'data.crop_size'"),
    (["--set", "data.crop_size=8"], 3, "data.crop_size must be >= 16, got 8"),
    (["--set", "data.identify_gallery=-1"], 3, "data.identify_gallery must be >= 0"),
    (["--set", "data.crop_size"], 3, "--set expects"),
])
def test_cli_config_errors_are_one_line_exit_3(tmp_path, args, code, needle):
    proc = cli("build", "--print-config", *args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tinyface: error: ") and needle in proc.stderr


def test_default_dirs_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYFACE_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("TINYFACE_CACHE", str(tmp_path / "c"))
    s = config.load(None)
    assert s.data.data_path() == tmp_path / "d" and s.data.cache_path() == tmp_path / "c"
    monkeypatch.delenv("TINYFACE_DATA")
    monkeypatch.delenv("TINYFACE_CACHE")
    assert config.default_data_dir() == config.Path("~/.cache/tinyface/datasets/lfw").expanduser()
    assert config.default_cache_dir() == config.Path("~/.cache/tinyface/cache").expanduser()


def test_a_preset_can_set_its_pruning_epochs_and_set_options_still_win(tmp_path, monkeypatch):
    preset = config.load_preset("esp32s3")
    assert preset.settings()["prune"] == {"epochs": 2}
    eff = config.load(None, {"prune": {"epochs": 5}}, base=preset.settings())
    assert eff.prune.epochs == 5 and eff.distill.teacher_mixes == preset.values["distill"]["teacher_mixes"]
    assert config.load(None, None, base=preset.settings()).prune.epochs == 2
    # a preset without a [prune] section prunes as the defaults say
    from tinyface import resources

    (tmp_path / "noprune.toml").write_text("[distill]\nepochs = 3\n")
    monkeypatch.setattr(resources, "presets_dir", lambda: tmp_path)
    bare = config.load_preset("noprune")
    assert "prune" not in bare.settings()
    assert config.load(None, None, base=bare.settings()).prune == config.PruneSettings()


def test_presets_are_settings_files_checked_like_tinyface_toml(tmp_path, monkeypatch):
    assert config.preset_names() == ["esp32", "esp32c3", "esp32s3"]
    assert config.load_preset("esp32").board == "esp32" and config.load_preset("esp32s3").board == "esp32s3"
    with pytest.raises(config.ConfigError, match="unknown preset 'esp64'") as err:
        config.load_preset("esp64")
    assert err.value.hint == "known: esp32, esp32c3, esp32s3"
    from tinyface import resources

    (tmp_path / "typo.toml").write_text("[distill]\nepoch = 3\n")
    monkeypatch.setattr(resources, "presets_dir", lambda: tmp_path)
    with pytest.raises(config.ConfigError, match="unknown key 'distill.epoch' in .*typo.toml"):
        config.load_preset("typo")


@pytest.mark.parametrize("section, key, value", [
    ("student", "arch", "resnet9000"), ("distill", "epochs", 3_000_000), ("prune", "epochs", 100_000),
    ("quantize", "qat_epochs", 5000), ("distill", "batch_size", 10**9), ("bench", "retries", 10**6),
])
def test_unknown_arch_and_huge_counts_fail_at_load(section, key, value):
    with pytest.raises(ConfigError) as exc:
        config.load(None, {section: {key: value}})
    assert f"{section}.{key}" in str(exc.value) and repr(value) in str(exc.value)


def test_an_unknown_arch_fails_print_config_with_exit_3(tmp_path):
    proc = cli("build", "--print-config", "--set", "student.arch=resnet9000", cwd=tmp_path)
    assert proc.returncode == 3 and "student.arch must be one of dsnet, dsnet_mlp, dsnet_fc, tinycnn" in proc.stderr


def test_student_archs_are_the_builders():
    import inspect

    from tinyface.train import student

    source = inspect.getsource(student.build_student)
    assert all(f'"{arch}": _{arch}' in source for arch in config.STUDENT_ARCHS)


def test_quick_is_a_layer_below_set_and_explicit_options(tmp_path):
    (tmp_path / "tinyface.toml").write_text("[distill]\nepochs = 30\nbatch_size = 64\n")

    def effective(*args):
        proc = cli("build", "--print-config", "--json", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    eff = effective("--quick", "--set", "distill.epochs=3")
    assert eff["distill"]["epochs"] == 3  # --set over --quick
    assert eff["distill"]["batch_size"] == 32 and eff["prune"]["epochs"] == 1  # --quick over the file
    assert effective("--quick", "--epochs", "4", "--set", "distill.epochs=3")["distill"]["epochs"] == 4
    assert effective("--quick")["distill"]["epochs"] == 8


# --- the environment -------------------------------------------------------------------

def test_environment_is_read_in_config_only():
    # platformio's habit: each option declared once, with its environment variable; a module
    # that reads os.environ itself hides a setting from docs/cli.md's table.
    package = Path(config.__file__).parent
    readers = re.compile(r"os\.environ\.(get|items|keys|values)\b|os\.environ\[|getenv\(|"
                         r"environ\.copy\(\)\[|\bin os\.environ\b|from os import .*\benviron\b")
    offenders = [f"{path.relative_to(package.parent)}:{n}" for path in sorted(package.rglob("*.py"))
                 if path.name != "config.py" or path.parent != package
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if readers.search(line)]
    assert not offenders, f"environment read outside tinyface/config.py: {offenders}"


def test_every_environment_variable_is_in_the_docs_table():
    table = (Path(__file__).resolve().parents[1] / "docs/cli.md").read_text(encoding="utf-8")
    table = table.split("## Environment", 1)[1].split("\n## ", 1)[0]
    source = Path(config.__file__).read_text(encoding="utf-8")
    for name in config.ENVIRONMENT:
        assert f"`{name}`" in table, name
    named = set(re.findall(r'(?:environ\.get|_env_path)\(f?"([^"]+)"', source))
    named = {"TINYFACE_<NAME>_URL" if "{" in n else n for n in named}
    assert named == set(config.ENVIRONMENT), named ^ set(config.ENVIRONMENT)


def test_environment_values(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYFACE_NATIVE_JOBS", "3")
    monkeypatch.setenv("TINYFACE_ISA_CACHE", str(tmp_path / "isa"))
    monkeypatch.delenv("CXX", raising=False)
    assert config.native_jobs() == 3
    assert config.isa_cache_dir() == tmp_path / "isa"
    assert config.host_cxx() == "g++"
    monkeypatch.setenv("TINYFACE_NATIVE_JOBS", "many")
    with pytest.raises(ConfigError, match="TINYFACE_NATIVE_JOBS must be a whole number >= 1, got 'many'"):
        config.native_jobs()


# --- --set: a value that starts as TOML must be TOML ----------------------------------------------------

@pytest.mark.parametrize("item, example", [("extra.dirs=[1,2", "--set 'extra.dirs=[\"a\", \"b\"]'"),
                                           ("extra.dirs=[a, b]", "--set 'extra.dirs=[\"a\", \"b\"]'"),
                                           ('data.dir="C:\\photos"', "--set 'data.dir=\"text\"'"),
                                           ("distill.x={a=1", "--set 'distill.x={ key = \"value\" }'")])
def test_a_set_value_that_starts_as_toml_but_is_not_is_refused(item, example):
    # was: silently the string "[1,2"
    from tinyface import config

    with pytest.raises(errors.ConfigError) as info:
        config.parse_set_option((item,))
    line = info.value.one_line()
    name, _, raw = item.partition("=")
    assert line.startswith(f"--set {name}: {raw} is not a valid TOML value: ") and example in line
    assert "(at " not in line  # tomllib's position is in "v = ...", not in what was typed


@pytest.mark.usefixtures("own_folder")
def test_a_set_value_that_is_broken_toml_is_exit_3_from_the_cli(capsys):
    # (values that are not TOML at all stay strings: test_set_option_parsing)
    code, line = error_line(capsys, "data", "cache", "--set", "extra.dirs=[1,2")
    assert code == errors.ConfigError.exit_code == 3 and "extra.dirs" in line and "Unclosed array" in line


# --- the training settings' ranges (distill, student, data) ---

def test_light_augment_is_a_share():
    assert config.load(overrides={"distill": {"light_augment": 0.2}}).distill.light_augment == 0.2
    with pytest.raises(config.ConfigError, match="distill.light_augment must be in"):
        config.load(overrides={"distill": {"light_augment": 1.5}})


def test_weight_averaging_is_checked():
    from tinyface.config import ConfigError, DistillSettings

    for bad in (-0.1, 1.0):
        try:
            DistillSettings(ema=bad).validate()
        except ConfigError as e:
            assert "distill.ema" in str(e)
        else:
            raise AssertionError(f"ema={bad} accepted")


@pytest.mark.parametrize("repeats", [[3, 3], [3, 3, 0], [3, 3, 9], [3, 3, 2.0], [3, 3, True], "332"])
def test_repeats_must_be_three_small_whole_numbers(repeats):
    with pytest.raises(ConfigError, match="student.repeats"):
        StudentSettings(arch="dsnet_mlp", repeats=repeats).validate()


def test_repeats_do_not_apply_to_tinycnn():
    with pytest.raises(ConfigError, match="tinycnn"):
        StudentSettings(arch="tinycnn", repeats=[2, 2, 2]).validate()
    StudentSettings(arch="tinycnn").validate()


def test_branches_are_bounded():
    for branches in (-1, 5):
        with pytest.raises(ConfigError, match=r"student\.branches must be in \[0, 4\]"):
            StudentSettings(branches=branches).validate()
    for branches in (0, 4):
        StudentSettings(branches=branches).validate()


def test_the_filter_is_on_by_default_and_validated():
    assert config.load().data.test_filter == 0.25
    with pytest.raises(ConfigError, match=r"data\.test_filter must be in"):
        config.load(overrides={"data": {"test_filter": 1.5}})


# --- extra faces' settings (extra.dirs, extra.kind, extra.people) ---

def test_settings_accept_one_folder_or_a_list(tmp_path):
    assert config.load(overrides=config.parse_set_option(("extra.dirs=fairface",))).extra.dirs == ["fairface"]
    assert config.load(overrides=config.parse_set_option(('extra.dirs=["a", "b"]',))).extra.dirs == ["a", "b"]
    with pytest.raises(config.ConfigError, match="extra.kind"):
        config.load(overrides={"extra": {"kind": "videos"}})
    with pytest.raises(config.ConfigError, match="extra.dirs"):
        config.load(overrides={"extra": {"dirs": [1, 2]}})
    assert 'dirs = ["a"]' in config.load(overrides={"extra": {"dirs": ["a"]}}).to_toml()
    # one kind for every folder, or one per folder
    two = config.load(overrides={"extra": {"dirs": ["a", "b"], "kind": "photos"}}).extra
    assert two.kinds() == ["photos", "photos"]
    two = config.load(overrides=config.parse_set_option(('extra.dirs=["a", "b"]', 'extra.kind=["chips", "photos"]')))
    assert two.extra.kinds() == ["chips", "photos"]
    with pytest.raises(config.ConfigError, match="one per folder"):
        config.load(overrides={"extra": {"dirs": ["a", "b", "c"], "kind": ["chips", "photos"]}})
    with pytest.raises(config.ConfigError, match="extra.views and extra.mixes need the same extra.kind"):
        config.load(overrides={"extra": {"dirs": ["a", "b"], "kind": ["chips", "photos"], "mixes": 1}})


def test_a_known_set_must_be_read_as_what_it_holds():
    """Pins' photos taken as chips (the default kind) would train on unaligned faces, silently."""
    with pytest.raises(config.ConfigError,
                       match=r"""extra.kind for pins must be 'photos'.*extra.kind=\["chips", "photos"\]"""):
        config.load(overrides={"extra": {"dirs": ["fairface", "pins"]}})
    with pytest.raises(config.ConfigError, match="extra.kind for utkface must be 'chips'"):
        config.load(overrides={"extra": {"dirs": ["utkface"], "kind": "photos"}})
    with pytest.raises(config.ConfigError, match="extra.people cannot be true for utkface"):
        config.load(overrides={"extra": {"dirs": ["utkface"], "kind": "chips", "people": [True]}})
    ok = config.load(overrides={"extra": {"dirs": ["fairface", "utkface", "pins", "celeba", "mine"],
                                          "kind": ["chips", "chips", "photos", "photos", "chips"],
                                          "people": [False, False, True, True, True]}}).extra
    assert ok.kinds()[2] == "photos" and ok.people_folders()[2]
    # one value for every folder, as the settings' docs say (it was refused: "must be a list")
    pins = config.load(overrides=config.parse_set_option(("extra.dirs=pins", "extra.kind=photos", "extra.people=true")))
    assert pins.extra.people_folders() == [True]


# --- a settings file that cannot be used: one code (3) whether missing, a folder or unreadable ----------

def test_a_config_file_that_is_a_folder_or_unreadable_is_refused_as_a_missing_one(capsys, tmp_path):
    # was: "Invalid value for '--config': File 'x' is a directory." / "... is not readable.", exit 2 (click's
    # checks), where a missing file is exit 3
    from tests.conftest import assert_one_error_line, drop_file_permission_bypass, run_cli

    (tmp_path / "adir.toml").mkdir()
    code, line = error_line(capsys, "--config", tmp_path / "adir.toml", "boards")
    assert code == errors.ConfigError.exit_code and f"config file {tmp_path / 'adir.toml'} is a folder" in line
    assert "--config" in line
    locked = tmp_path / "locked.toml"
    locked.write_text("[data]\ncrop_size = 32\n")
    locked.chmod(0)
    prefix = drop_file_permission_bypass()
    try:
        for command in (["boards"], ["build", "--print-config"]):
            assert_one_error_line(run_cli("--config", locked, *command, cwd=tmp_path, prefix=prefix), 3,
                                  f"cannot read config file {locked}: permission denied", "--config")
        # ./tinyface.toml, found rather than named, says the same
        (tmp_path / "tinyface.toml").write_text("[data]\n")
        (tmp_path / "tinyface.toml").chmod(0)
        assert_one_error_line(run_cli("build", "--print-config", cwd=tmp_path, prefix=prefix), 3,
                              "cannot read config file tinyface.toml: permission denied")
    finally:
        locked.chmod(0o644)


# --- $TINYFACE_NVS_DIR: checked before anything is built or served ----------------------------------------

def test_a_bad_nvs_dir_is_one_line_naming_the_variable_before_any_build(capsys, monkeypatch, tmp_path):
    # was: "internal error: FileExistsError: [Errno 17] File exists: '/etc/passwd'" (exit 70), after the build
    from tests.conftest import assert_one_error_line, drop_file_permission_bypass, run_cli

    (tmp_path / "file").write_text("")
    monkeypatch.delenv("TFLM_DIR", raising=False)  # a build would fail first (exit 9): the variable is checked before
    for value, needle in ((tmp_path / "file", f"got '{tmp_path / 'file'}', which is a file"),
                          (tmp_path / "file" / "nvs", f"which is under the file {tmp_path / 'file'}")):
        monkeypatch.setenv("TINYFACE_NVS_DIR", str(value))
        code, line = error_line(capsys, "emulate", "--native", "--once", "--json")
        assert code == errors.ConfigError.exit_code and "TINYFACE_NVS_DIR must be a folder" in line and needle in line
        assert "Errno" not in line
    monkeypatch.setenv("TINYFACE_NVS_DIR", "~/nvs")
    assert config.native_storage_dir() == str(Path("~/nvs").expanduser())  # ~ expanded, as the other variables
    # a folder that cannot be written: as any output that cannot be (exit 14), naming the variable
    prefix = drop_file_permission_bypass()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o555)
    try:
        env = {"TINYFACE_NVS_DIR": str(closed / "nvs"), "TFLM_DIR": ""}
        assert_one_error_line(run_cli("emulate", "--native", "--once", env=env, prefix=prefix),
                              errors.OutputError.exit_code,
                              f"TINYFACE_NVS_DIR '{closed / 'nvs'}' cannot be written: permission denied ({closed})")
    finally:
        closed.chmod(0o755)
    assert not (closed / "nvs").exists()


# --- integer settings: a whole float is its integer while a float holds it exactly --------------------------

def test_a_whole_float_is_an_integer_setting_only_while_exact(capsys, tmp_path):
    # as a whole int is a fine float setting (0 for 0.0), a whole float is a fine int one (5.0 for 5)
    assert config.load(None, {"distill": {"epochs": 5.0}}).distill.epochs == 5
    assert type(config.load(None, {"data": {"seed": 2.0**53}}).data.seed) is int
    path = tmp_path / "t.toml"
    path.write_text("[distill]\nepochs = 5.0\n")
    assert config.load(path).distill.epochs == 5
    # past 2**53 a float is not the number written: refused as not an integer, printed as written,
    # where it was "distill.epochs must be in [1, 1000], got 9999999999999999673361688041166912738495331858..."
    for value, shown in (("5.5", "5.5"), ("1e99", "1e+99"), ("1e16", "1e+16"), ("inf", "inf")):
        code, line = error_line(capsys, "build", "--print-config", "--set", f"distill.epochs={value}")
        assert code == errors.ConfigError.exit_code
        assert f"'distill.epochs' in command-line options must be an integer, got {shown} (" in line
        assert len(line) < 200 and "99999" not in line
    # an integer written as one is shown as written, however long
    code, line = error_line(capsys, "build", "--print-config", "--set", "distill.epochs=12345678901234567890")
    assert code == 3 and "distill.epochs must be in [1, 1000], got 12345678901234567890 (" in line


# --- a float setting is a finite number -----------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+inf"])
def test_a_float_setting_is_refused_when_not_finite(capsys, tmp_path, value):
    # TOML's inf is a float, and passed every "> 0" or ">= 0" check (learning rate, temperature,
    # loss weights): a build would have trained for an hour on NaN losses
    for key in ("distill.learning_rate", "distill.temperature", "distill.cosine_weight"):
        code, line = error_line(capsys, "build", "--print-config", "--set", f"{key}={value}")
        assert code == errors.ConfigError.exit_code
        assert f"'{key}' in command-line options must be a finite number, got {value.lstrip('+')} (" in line
    path = tmp_path / "t.toml"
    path.write_text(f"[distill]\nlearning_rate = {value}\n")
    with pytest.raises(errors.ConfigError, match=f"'distill.learning_rate' in {path} must be a finite number"):
        config.load(path)
    assert config.load(None, {"distill": {"learning_rate": 1}}).distill.learning_rate == 1.0


def test_print_config_is_a_valid_settings_file_whatever_characters_a_folder_name_has(capsys, tmp_path):
    # docs/config.md: "the printed text is itself a valid tinyface.toml"; a newline (or another
    # control character) in a string setting was written raw, and the file was not TOML
    from tinyface.cli.main import main

    odd = 'we"ird\\ name\nline2\ttab\x07bell\x7f'
    with pytest.raises(SystemExit) as exc:
        main(["build", "--print-config", "--set", f"data.dir={odd}"])
    assert exc.value.code == 0
    path = tmp_path / "tinyface.toml"
    path.write_text(capsys.readouterr().out)
    assert config.load(path).data.dir == odd
