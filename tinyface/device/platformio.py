"""PlatformIO: the real `pio` executable builds and uploads the generated project.

Everything that can fail without a board or a network is checked first, in seconds, with
one clear line: `pio` missing, the espressif32 platform neither installed nor downloadable
(PlatformIO itself would retry its registry for about a minute and then print an empty
``HTTPClientError:``), no board with the board file's USB ids connected (the ports seen are
listed). Only then does `pio run` build and upload, its output streamed as it comes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tinyface.errors import ToolchainError

REGISTRY_HOST = "api.registry.platformio.org"
REGISTRY_PORT = 443
REGISTRY_TIMEOUT_S = 3.0


def pio_command() -> list[str]:
    """How to run PlatformIO: `pio` on PATH, else this Python's platformio module.

    Raises:
        ToolchainError: PlatformIO is not installed.
    """
    exe = shutil.which("pio") or shutil.which("platformio")
    if exe:
        return [exe]
    try:
        import platformio  # noqa: F401
    except ImportError:
        raise ToolchainError("PlatformIO is not installed", hint="pip install platformio") from None
    return [sys.executable, "-m", "platformio"]


def core_dir() -> Path:
    """PlatformIO's home ($PLATFORMIO_CORE_DIR, else ~/.platformio)."""
    from tinyface import config

    return config.platformio_core_dir()


def platform_name(spec: str) -> str:
    """``espressif32@6.9.0`` -> ``espressif32`` (also for owner/name and URLs)."""
    name = spec.split("@", 1)[0].rstrip("/")
    return name.rsplit("/", 1)[-1]


def platform_installed(spec: str) -> bool:
    """Whether PlatformIO has a version of the platform that satisfies ``spec``
    (``espressif32@6.9.0``, ``espressif32@^6``, ``espressif32``) in its platforms folder;
    otherwise `pio run` would try to download one."""
    import json

    root = core_dir() / "platforms"
    name = platform_name(spec)
    requirement = spec.split("@", 1)[1].strip() if "@" in spec else ""
    if not root.is_dir():
        return False
    for manifest in root.glob("*/platform.json"):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("name") == name and _version_matches(str(data.get("version", "")), requirement):
            return True
    return False


def _version_matches(version: str, requirement: str) -> bool:
    if not requirement:
        return True
    try:
        import semantic_version  # a PlatformIO dependency

        return semantic_version.SimpleSpec(requirement).match(semantic_version.Version.coerce(version))
    except (ImportError, ValueError):
        return version == requirement


def registry_reachable(timeout_s: float = REGISTRY_TIMEOUT_S) -> bool:
    """Can PlatformIO's registry be reached (DNS + TCP) within ``timeout_s``?"""
    result: list[bool] = []

    def probe():
        try:
            with socket.create_connection((REGISTRY_HOST, REGISTRY_PORT), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    # getaddrinfo has no timeout of its own; a thread bounds it.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return bool(result and result[0])


def check_platform(board) -> None:
    """Fail fast when the board's platform is missing and PlatformIO could not download it.

    Raises:
        ToolchainError: one line saying what to do.
    """
    if platform_installed(board.pio_platform):
        return
    if registry_reachable():
        return  # `pio run` installs it on first use (a few minutes, once)
    name = platform_name(board.pio_platform)
    raise ToolchainError(
        f"PlatformIO platform '{name}' is not installed ({core_dir() / 'platforms'} has no {name}) "
        f"and its registry ({REGISTRY_HOST}) cannot be reached",
        hint=f"with internet access run `pio pkg install -g -p {board.pio_platform}` once (check with "
             f"`pio pkg list -g`), or try the firmware without a board: `tinyface emulate --native`")


def run_pio(args: list[str], cwd: str | Path | None = None, on_line=None) -> tuple[int, list[str]]:
    """Run PlatformIO, passing each output line to ``on_line`` as it comes.

    Returns:
        (exit status, the output lines).
    """
    cmd = [*pio_command(), *args]
    lines: list[str] = []
    env = {**os.environ, "PLATFORMIO_NO_ANSI": "true", "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=env)
    except OSError as exc:
        raise ToolchainError(f"cannot run PlatformIO ({' '.join(cmd)}): {exc.strerror or exc}") from None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if on_line:
                on_line(line)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    return proc.wait(), lines


def project_config(project_dir: str | Path) -> dict[str, dict]:
    """PlatformIO's own reading of the project's platformio.ini (``pio project config``)."""
    import json

    rc, lines = run_pio(["project", "config", "-d", str(project_dir), "--json-output"])
    if rc != 0:
        raise ToolchainError(f"PlatformIO rejects {project_dir}/platformio.ini: {_last_error(lines)}")
    sections = json.loads("\n".join(lines[-1:]) or "[]")
    return {name: dict(items) for name, items in sections}


def build_and_upload(project_dir: str | Path, env_name: str, port: str | None, upload: bool = True,
                     on_line=None) -> None:
    """`pio run` (and upload to ``port``) for ``env_name``, streaming its output.

    Raises:
        ToolchainError: PlatformIO failed (its last error line in the message).
    """
    args = ["run", "-d", str(project_dir), "-e", env_name]
    if upload:
        args += ["-t", "upload"]
        if port:
            args += ["--upload-port", port]
    rc, lines = run_pio(args, on_line=on_line)
    if rc != 0:
        what = "build and upload" if upload else "build"
        raise ToolchainError(f"PlatformIO {what} failed (exit {rc}): {_last_error(lines)}",
                             hint=f"the project is in {project_dir}; `pio run -d {project_dir} -v` shows more")


def _last_error(lines: list[str]) -> str:
    for line in reversed(lines):
        text = line.strip()
        if text and ("error" in text.lower() or "failed" in text.lower()):
            return text[:300]
    return (lines[-1].strip()[:300] if lines else "no output")
