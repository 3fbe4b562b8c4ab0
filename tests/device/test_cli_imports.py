"""The device-side modules never import TensorFlow. (`tinyface emulate|bench|profile --help`, and
`boards`, `profile` and `bench` runs: tests/cli/test_cli_main.py's test_every_command_has_help_without_tensorflow
and test_device_side_commands_run_without_tensorflow.)"""

import subprocess
import sys


def test_device_side_modules_do_not_import_tensorflow():
    code = ("import sys\n"
            "import tinyface.device.emulator, tinyface.protocol.client, tinyface.protocol.cheader\n"
            "import tinyface.device.bench\n"
            "import tinyface.model.graph, tinyface.boards.profile\n"
            "assert 'tensorflow' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
