"""The docs' way for a script to read the emulator's port, run as written: the emulator keeps
serving after its first line, so `PORT=$(tinyface emulate | head -1)` would wait forever."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "emulator-and-bench.md"


def test_the_documented_script_reads_the_port_benches_and_ends(lfw_dir, tmp_path):
    block = re.search(r"```\n( *exec 3< <\(tinyface emulate.*?) *```", DOC.read_text(), re.S)
    assert block, "docs/emulator-and-bench.md no longer shows how a script reads the port"
    script = (f'tinyface() {{ "{sys.executable}" -m tinyface.cli.main "$@"; }}\nset -e\n'
              f'{textwrap.dedent(block.group(1))}echo "port: $PORT"\n')
    env = {**os.environ, "TINYFACE_DATA": str(lfw_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=240,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"^port: /dev/pts/\d+$", proc.stdout, re.M), proc.stdout
    # INFO (the model check), INFO as the stream starts, 8 INFER, and INFO again (a restart meanwhile?)
    assert "served 11 requests (8 inferences)" in proc.stderr, proc.stderr[-2000:]
