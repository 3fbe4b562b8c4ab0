"""spawn_isa's gallery folder (``storage_dir``, the rv32 firmware's --storage): one that cannot be
made is one OutputError line, as spawn_native's is (tinyface.device.native.make_gallery_folder,
the guard both share), before qemu-riscv32 is started. No firmware is built: a stand-in program
takes the place of qemu and echoes its arguments."""

import os
import sys
from pathlib import Path

import pytest

from tinyface.device.isa import IsaProgram, spawn_isa
from tinyface.errors import OutputError


class EchoProgram(IsaProgram):
    """What qemu would be started with, written by a stand-in for it."""

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "import sys; print(' '.join(sys.argv[1:]))", *args]


def spawned_args(tmp_path: Path, **kwargs) -> str:
    """The arguments spawn_isa hands the firmware, as the stand-in printed them."""
    with open(tmp_path / "port", "w+") as port:  # the firmware's stdin and stdout, as a pty's master would be
        proc = spawn_isa(EchoProgram(Path("firmware"), Path("plugin")), port.fileno(), **kwargs)
        assert proc.wait(timeout=60) == 0
        port.seek(0)
        return port.read().strip()


def test_a_gallery_folder_that_cannot_be_made_is_one_output_error(tmp_path):
    # was: FileExistsError / PermissionError from mkdir, an internal error (exit 70) once the firmware was built
    (tmp_path / "file").write_text("")
    for storage in (tmp_path / "file", tmp_path / "file" / "nvs", "/proc/tinyface-nvs"):  # /proc: mkdir fails as root
        with pytest.raises(OutputError, match=f"cannot create the gallery folder {storage}: ") as exc:
            spawned_args(tmp_path, storage_dir=storage)
        assert "storage_dir" in exc.value.one_line() and "Errno" not in exc.value.one_line()
    assert not os.path.exists("/proc/tinyface-nvs")


def test_a_gallery_folder_is_made_and_handed_on(tmp_path):
    assert "--storage" not in spawned_args(tmp_path)  # none: in memory only
    storage = tmp_path / "a" / "nvs"
    assert spawned_args(tmp_path, storage_dir=storage, baud=115200) == f"--baud 115200 --storage {storage}"
    assert storage.is_dir()
