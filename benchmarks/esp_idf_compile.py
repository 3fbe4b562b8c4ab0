"""Not a benchmark: the generated ESP-IDF sources and sdkconfig.defaults checked against a real ESP-IDF tree.

    python benchmarks/esp_idf_compile.py --idf-path ~/esp/esp-idf-v5.3.1

For every board file (with its released model; a board with PSRAM also with models/esp32s3, whose
arena goes to PSRAM) it renders the project into a temporary folder, then:

1. runs ESP-IDF's kconfgen on the rendered sdkconfig.defaults, as tools/cmake/kconfig.cmake does
   (every component's Kconfig), and checks that every CONFIG_ line took effect: not unknown to the
   target, not a renamed (deprecated) name, not overridden by a dependency or a choice;
2. compiles every src/*.cc that includes ESP-IDF headers (platform_esp.cc) against that sdkconfig.h
   and the include directories ESP-IDF gives the project's component (`REQUIRES driver esp_timer
   nvs_flash` and the common components), with ESP-IDF's flags (-std=gnu++2b -Wall -Wextra
   -Werror=all ...; read from a 5.3.1 build's compile_commands.json).

Compilers: Espressif's (riscv32-esp-elf-g++, xtensa-<target>-elf-g++) when on PATH; else Debian's
riscv64-unknown-elf-g++ (-mabi=ilp32, newlib headers of libnewlib-dev) compiles the C3 for real, and
xtensa-lx106-elf-g++ (the ESP8266's) checks the ESP32/S3 with -fsyntax-only: C++ and declarations,
not code generation. It is a compile check against headers: nothing is linked or run on a board.
Prints, per case, kconfig findings, diagnostics from our files, and PASS/FAIL; exits 1 on a finding.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCH = {"esp32": "xtensa", "esp32s2": "xtensa", "esp32s3": "xtensa"}  # any other target: riscv
# The include directories of the project's component in ESP-IDF 5.3.1 (its compile_commands.json), in
# order; {t}: the target, {a}: riscv or xtensa. Those that do not exist for a target are left out.
INCLUDES = """newlib/platform_include freertos/config/include freertos/config/include/freertos
freertos/config/{a}/include freertos/FreeRTOS-Kernel/include freertos/FreeRTOS-Kernel/portable/{a}/include
freertos/FreeRTOS-Kernel/portable/{a}/include/freertos freertos/esp_additions/include esp_hw_support/include
esp_hw_support/include/soc esp_hw_support/include/soc/{t} esp_hw_support/dma/include esp_hw_support/ldo/include
esp_hw_support/port/{t}/. esp_hw_support/port/{t}/include heap/include log/include soc/include soc/{t}
soc/{t}/include hal/platform_port/include hal/{t}/include hal/include esp_rom/include esp_rom/include/{t}
esp_rom/{t} esp_common/include esp_system/include esp_system/port/soc esp_system/port/include/{a}
esp_system/port/include/private {a}/{t}/include {a}/include {a}/deprecated_include driver/deprecated
driver/i2c/include driver/touch_sensor/include driver/twai/include driver/touch_sensor/{t}/include esp_pm/include
esp_ringbuf/include esp_driver_gpio/include esp_driver_pcnt/include esp_driver_gptimer/include
esp_driver_spi/include esp_driver_mcpwm/include esp_driver_ana_cmpr/include esp_driver_i2s/include
esp_driver_sdmmc/include sdmmc/include esp_driver_sdspi/include esp_driver_sdio/include esp_driver_dac/include
esp_driver_rmt/include esp_driver_tsens/include esp_driver_sdm/include esp_driver_i2c/include
esp_driver_uart/include esp_driver_ledc/include esp_driver_parlio/include esp_driver_usb_serial_jtag/include
esp_timer/include nvs_flash/include spi_flash/include esp_partition/include""".split()
FLAGS = ("-DESP_PLATFORM -DSOC_MMU_PAGE_SIZE=CONFIG_MMU_PAGE_SIZE -DSOC_XTAL_FREQ_MHZ=CONFIG_XTAL_FREQ "
         "-D_GLIBCXX_HAVE_POSIX_SEMAPHORE -D_GLIBCXX_USE_POSIX_SEMAPHORE -D_GNU_SOURCE -D_POSIX_READER_WRITER_LOCKS "
         "-fdiagnostics-color=never -ffunction-sections -fdata-sections -Wall -Werror=all -Wno-error=unused-function "
         "-Wno-error=unused-variable -Wno-error=unused-but-set-variable -Wno-error=deprecated-declarations -Wextra "
         "-Wno-unused-parameter -Wno-sign-compare -Wno-enum-conversion -O2 -fstrict-volatile-bitfields "
         "-fno-jump-tables -fno-tree-switch-conversion -std=gnu++2b -fno-exceptions -fno-rtti "
         "-DTF_LITE_STATIC_MEMORY").split()  # the last: src/CMakeLists.txt's
ARCH_FLAGS = {"riscv": ["-march=rv32imc_zicsr_zifencei"],
              "xtensa": "-mlongcalls -fno-builtin-memcpy -fno-builtin-memset -fno-builtin-bzero -fno-builtin-stpcpy "
                        "-fno-builtin-strncpy".split()}
IDF_HEADER = re.compile(r'#include "(driver/|esp_|freertos/|nvs|soc/|hal/)')
DIAGNOSTIC = re.compile(r"^(.+?):\d+:\d+: (error|warning): ")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idf-path", default=os.environ.get("IDF_PATH"),
                        help="the ESP-IDF tree (submodules not needed) (default: $IDF_PATH)")
    parser.add_argument("--boards", nargs="*", help="board names (default: every board file of boards/)")
    parser.add_argument("--kconfgen-python", default=sys.executable,
                        help="a Python with esp-idf-kconfig installed (default: this one)")
    parser.add_argument("--newlib-include", default="/usr/include/newlib",
                        help="newlib headers for a compiler that is not Espressif's (default: /usr/include/newlib)")
    return parser.parse_args(argv)


def cases(names):
    """(board, model folder) pairs: each board with its released model (models/<board>, else
    models/esp32); a board with PSRAM also with models/esp32s3 (an arena in PSRAM: CONFIG_SPIRAM)."""
    from tinyface.boards import list_boards

    for board in list_boards():
        if names and board.name not in names:
            continue
        own = REPO / "models" / board.name
        yield board, own if own.is_dir() else REPO / "models" / "esp32"
        if board.psram_bytes and board.name != "esp32s3":
            yield board, REPO / "models" / "esp32s3"


def idf_version(idf: Path) -> str:
    """The tree's ESP-IDF version, "5.3.1" (tools/cmake/version.cmake)."""
    return ".".join(re.findall(r"IDF_VERSION_\w+ (\d+)", (idf / "tools/cmake/version.cmake").read_text()))


def kconfig(idf: Path, version: str, target: str, defaults: Path, out: Path, python: str) -> tuple[list[str], Path]:
    """Run kconfgen as tools/cmake/kconfig.cmake does; findings about defaults' lines, sdkconfig.h."""
    comps = sorted(glob.glob(str(idf / "components" / "*") + "/"))
    kconfigs = [c + "Kconfig" for c in comps if os.path.isfile(c + "Kconfig")]
    projbuilds = [c + "Kconfig.projbuild" for c in comps if os.path.isfile(c + "Kconfig.projbuild")]
    renames = [r for c in comps for r in (c + "sdkconfig.rename", f"{c}sdkconfig.rename.{target}") if os.path.isfile(r)]
    for name, files in (("kconfigs.in", kconfigs), ("kconfigs_projbuild.in", projbuilds)):
        (out / name).write_text("\n".join(f'source "{f}"' for f in files))
    env = {"COMPONENT_KCONFIGS": ";".join(kconfigs), "COMPONENT_KCONFIGS_PROJBUILD": ";".join(projbuilds),
           "COMPONENT_SDKCONFIG_RENAMES": ";".join(renames), "IDF_TARGET": target, "IDF_TOOLCHAIN": "gcc",
           "IDF_VERSION": version, "IDF_ENV_FPGA": "", "IDF_PATH": str(idf),
           "COMPONENT_KCONFIGS_SOURCE_FILE": str(out / "kconfigs.in"),
           "COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE": str(out / "kconfigs_projbuild.in")}
    (out / "config.env").write_text(json.dumps(env))
    header, config = out / "sdkconfig.h", out / "sdkconfig"
    proc = subprocess.run([python, "-m", "kconfgen", "--list-separator", "semicolon", "--kconfig", str(idf / "Kconfig"),
                           "--sdkconfig-rename", str(idf / "sdkconfig.rename"), "--config", str(config),
                           "--defaults", str(defaults), "--env-file", str(out / "config.env"),
                           "--output", "header", str(header), "--output", "config", str(config)],
                          capture_output=True, text=True, env={**os.environ, **env, "IDF_INIT_VERSION": version})
    findings = [line.strip() for line in (proc.stdout + proc.stderr).splitlines()
                if re.match(r"\s*(warning|error|info)\b", line, re.I) or "Traceback" in line]
    if proc.returncode:
        from tinyface.errors import ToolchainError

        raise ToolchainError(f"kconfgen failed ({python} -m kconfgen; pip install esp-idf-kconfig): "
                             f"{proc.stderr.strip()[-500:]}")
    old_names = set()
    for rename in [idf / "sdkconfig.rename", *renames]:
        old_names |= {line.split()[0] for line in Path(rename).read_text().splitlines() if line.startswith("CONFIG_")}
    result = {}
    for line in config.read_text().splitlines():
        if m := re.match(r"(CONFIG_\w+)=(.*)", line):
            result[m[1]] = m[2]
        elif m := re.match(r"# (CONFIG_\w+) is not set", line):
            result[m[1]] = "n"
    for line in defaults.read_text().splitlines():
        if not (m := re.match(r"(CONFIG_\w+)=(.*)", line.strip())):
            continue
        name, value = m[1], m[2]
        if name in old_names:
            findings.append(f"{name}: a renamed (deprecated) option (sdkconfig.rename)")
        elif name not in result:
            findings.append(f"{name}: unknown to ESP-IDF {version} for {target}: the line is ignored")
        elif result[name] != value:
            findings.append(f"{name}={value} did not take effect: {name}={result[name]} (dependency or choice)")
    return findings, header


def compiler(arch: str, target: str, newlib: str) -> tuple[list[str], str, bool] | None:
    """(compiler command with its target flags, what it is, exact): Espressif's, else Debian's."""
    esp = "riscv32-esp-elf-g++" if arch == "riscv" else f"xtensa-{target}-elf-g++"
    if shutil.which(esp):
        return [esp, *ARCH_FLAGS[arch], "-c"], esp, True
    if arch == "riscv" and shutil.which("riscv64-unknown-elf-g++"):
        return (["riscv64-unknown-elf-g++", "-mabi=ilp32", *ARCH_FLAGS[arch], "-isystem", newlib, "-c"],
                "riscv64-unknown-elf-g++ -mabi=ilp32 (Debian; newlib headers of libnewlib-dev)", True)
    if arch == "xtensa" and shutil.which("xtensa-lx106-elf-g++"):
        return (["xtensa-lx106-elf-g++", *ARCH_FLAGS[arch], "-isystem", newlib, "-fsyntax-only"],
                "xtensa-lx106-elf-g++ -fsyntax-only (the ESP8266's compiler: declarations, not code)", False)
    return None


def check(board, model: Path, idf: Path, version: str, args, work: Path) -> bool:
    """Render, configure and compile one case; print its findings; True when it has none."""
    from tinyface.codegen import generate_project
    from tinyface.config import FirmwareSettings
    from tinyface.model.bundle import META_FILE, read_meta

    project = work / f"{board.name}-{model.name}"
    kernels = read_meta(model / META_FILE)[0].kernels or FirmwareSettings.kernels  # as tinyface flash
    plan = generate_project(model, board, project, kernels=kernels)
    print(f"== {board.name} ({board.target}), model {model.relative_to(REPO)} ({kernels} kernels), arena in "
          f"{'PSRAM' if plan.arena.in_psram else 'SRAM'}")
    config_dir = project / "build" / "config"
    config_dir.mkdir(parents=True)
    findings, _ = kconfig(idf, version, board.target, project / "sdkconfig.defaults", config_dir,
                          args.kconfgen_python)
    for line in findings:
        print(f"  kconfig: {line}")
    arch = ARCH.get(board.target, "riscv")
    found = compiler(arch, board.target, args.newlib_include)
    if found is None:
        print(f"  compile: SKIPPED (no {arch} compiler on PATH)")
        return not findings
    cmd, what, exact = found
    dirs = [str(config_dir), str(project / "src")]
    candidates = (str(idf / "components" / p.format(t=board.target, a=arch)) for p in INCLUDES)
    dirs += [d for d in candidates if os.path.isdir(d)]
    extra = ["-Wno-frame-address"] if board.target == "esp32" else []
    ok = not findings
    for source in sorted((project / "src").glob("*.cc")):
        if not IDF_HEADER.search(source.read_text(encoding="utf-8")):
            continue
        out = ["-o", str(work / "out.o")] if "-c" in cmd else []
        proc = subprocess.run([*cmd, *FLAGS, *extra, f'-DIDF_VER="v{version}"', *(f"-I{d}" for d in dirs),
                               str(source), *out], capture_output=True, text=True)
        ours = [line for line in proc.stderr.splitlines()
                if (m := DIAGNOSTIC.match(line)) and Path(m[1]).resolve().is_relative_to(project)]
        theirs = [line for line in proc.stderr.splitlines() if DIAGNOSTIC.match(line) and line not in ours]
        for line in ours + theirs:
            print(f"  {'ours' if line in ours else 'ESP-IDF header'}: {line.replace(str(idf), '$IDF_PATH')}")
        if proc.returncode and not (ours or theirs):
            print("  " + proc.stderr.strip().replace("\n", "\n  "))
        status = "compiled" if exact else "syntax-checked"
        print(f"  {source.name}: {status if proc.returncode == 0 else 'FAILED'} with {what}: "
              f"{len(ours)} diagnostics from our files, {len(theirs)} from ESP-IDF's headers")
        ok = ok and proc.returncode == 0 and not ours and not theirs
    print(f"  {'PASS' if ok else 'FAIL'}")
    return ok


def main(argv=None) -> None:
    from tinyface.errors import ConfigError

    args = parse_args(argv)
    if not args.idf_path or not (Path(args.idf_path) / "tools" / "cmake" / "version.cmake").is_file():
        raise ConfigError(f"no ESP-IDF tree at --idf-path / $IDF_PATH ({args.idf_path})")
    idf = Path(args.idf_path).resolve()
    print("A compile check against ESP-IDF's headers: nothing is linked, flashed or run on a board.")
    with tempfile.TemporaryDirectory(prefix="tinyface-idf-") as tmp:
        version = idf_version(idf)
        results = [check(board, model, idf, version, args, Path(tmp)) for board, model in cases(args.boards)]
    if not results:
        raise ConfigError(f"no board among {args.boards}")
    print(f"{sum(results)} of {len(results)} cases PASS")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    from _script import run_script  # benchmarks/, beside this script

    run_script(main)
