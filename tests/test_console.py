"""Terminal output: no library noise on stderr (TensorFlow, its converter, PIL); and signals: Ctrl-C,
SIGTERM and SIGHUP end the work in one way, and none cuts a command short after it has ended."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CONVERT_AND_RUN = """
from tinyface.train.quantize import convert_int8  # a library user: no CLI set-up ran
from tinyface.model.runtime import TfliteRunner
import sys
import numpy as np
import tf_keras as keras  # the user's own import of TensorFlow (its noise is not tinyface's)

inp = keras.Input((16, 16, 1))
x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inp)
out = keras.layers.Dense(8)(keras.layers.GlobalAveragePooling2D()(x))
calib = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
sys.stderr.write("MARK\\n"); sys.stderr.flush()
flat = convert_int8(keras.Model(inp, out), calib)
print(TfliteRunner(flat).run(np.zeros((1, 16, 16, 1), np.int8)).shape)
"""


def test_converting_and_running_a_model_writes_nothing_to_stderr(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "TF_ENABLE"))}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", CONVERT_AND_RUN], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "(1, 8)"
    assert proc.stderr.split("MARK\n", 1)[1] == "", proc.stderr[-3000:]  # converting and running: silent


NOISE = ("I0000", "W0000", "E0000", "warn", "deprecat", "absl", "oneDNN", "cuda")


def test_evaluate_prints_no_library_noise(small_dataset, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "TF_ENABLE"))}
    env.update(PYTHONPATH=str(REPO), TINYFACE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "tinyface.cli.main", "evaluate", "--model",
                           str(REPO / "models" / "esp32"), "--data", str(small_dataset)], capture_output=True,
                          text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    noisy = [line for line in proc.stderr.splitlines() if any(n.lower() in line.lower() for n in NOISE)]
    assert not noisy, proc.stderr[-3000:]


def test_the_cuda_probe_is_quiet_when_errors_are_shown(tmp_path):
    """TensorFlow probes CUDA at its first device query, after the muted import: on a machine
    without a GPU that wrote "E0000 ... failed call to cuInit" into every build log where
    TF_CPP_MIN_LOG_LEVEL=2 (as .ci/run and many users set it)."""
    script = ("import sys\n"
              "from tinyface import console\n"
              "console.quiet_tensorflow(import_now=True)\n"  # as the CLI does before its work
              "import tensorflow as tf\n"
              "sys.stderr.write('MARK\\n'); sys.stderr.flush()\n"
              "print(int(tf.reduce_sum(tf.constant([1, 2]))))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "3", proc.stderr[-3000:]
    assert "cuInit" not in proc.stderr and "E0000" not in proc.stderr, proc.stderr[-3000:]


_FORK_SCRIPT = """
import os, signal
from tinyface import console

def sigterm_mid_fork():  # runs in the child before tinyface's own hook: a pool's terminate() that
    os.kill(os.getpid(), signal.SIGTERM)  # reaches a worker still in its fork
os.register_at_fork(after_in_child=sigterm_mid_fork)
console.catch_interrupts()
pid = os.fork()
if pid == 0:
    os._exit(7)  # still alive: the SIGTERM was swallowed
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_sigterm_that_reaches_a_child_during_its_fork_still_ends_it():
    """catch_interrupts' SIGTERM handler raised KeyboardInterrupt inside the fork hook, where
    Python drops it: the worker lived on and a multiprocessing pool waited for it forever."""
    import signal

    proc = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(-signal.SIGTERM), (proc.stdout, proc.stderr[-2000:])


_FORK_SIGINT_SCRIPT = """
import os, signal, time
from tinyface import console

def sigint_mid_fork():  # runs in the child before tinyface's own hook: a Ctrl-C that reaches a
    os.kill(os.getpid(), signal.SIGINT)  # worker still in its fork
os.register_at_fork(after_in_child=sigint_mid_fork)
console.catch_interrupts()
pid = os.fork()
if pid == 0:
    os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C before the pool's initializer ignores it
    time.sleep(0.2)
    os._exit(7)  # alive and quiet: the parent owns Ctrl-C and ends its workers
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_forked_child_ignores_ctrl_c_that_its_parent_handles():
    """A Ctrl-C reaches the whole process group: a pool worker that got it before its initializer
    ignored SIGINT raised KeyboardInterrupt from catch_interrupts' inherited handler and printed a
    traceback. The parent alone handles it (it stops and terminates the pool)."""
    proc = subprocess.run([sys.executable, "-c", _FORK_SIGINT_SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "7", (proc.stdout, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr[-2000:]


def test_an_interrupt_python_cannot_raise_is_not_printed_but_other_errors_are():
    """A KeyboardInterrupt inside a finalizer is "Exception ignored in ..." with a traceback:
    with the CLI's handler it is dropped (the flag carries it); any other error still shows."""
    import subprocess
    import sys

    script = (
        "from tinyface import console\n"
        "class Interrupted:\n"
        "    def __del__(self):\n"
        "        raise KeyboardInterrupt\n"
        "class Broken:\n"
        "    def __del__(self):\n"
        "        raise ValueError('a real bug')\n"
        "console.catch_interrupts()\n"
        "Interrupted()\n"
        "Broken()\n")
    err = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stderr
    assert "KeyboardInterrupt" not in err and "a real bug" in err, err


# --- TensorFlow runs a build's ops one at a time (one_op_at_a_time), so QAT is bit-reproducible; each
# case runs in a fresh interpreter, since TensorFlow takes the setting only before its first op ---

PROBE = """
from tinyface.console import one_op_at_a_time
{before}
import tensorflow as tf
print(one_op_at_a_time(), tf.config.threading.get_inter_op_parallelism_threads())
"""


def _probe(before: str = "") -> str:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_a_fresh_tensorflow_runs_one_op_at_a_time():
    assert _probe() == ["True", "1"]


def test_a_tensorflow_that_already_ran_is_left_as_it_is_and_says_so():
    assert _probe("import tensorflow as tf; tf.constant(1.0) + 1") == ["False", "0"]


_HANGUP_SCRIPT = """
import os, signal, sys, time
from tinyface import console
# as a terminal's session starts it (the default: this test may itself run under nohup, as CI can),
# or as `nohup tinyface ...` does
signal.signal(signal.SIGHUP, signal.SIG_IGN if sys.argv[1] == "nohup" else signal.SIG_DFL)
console.catch_interrupts()
try:
    os.kill(os.getpid(), signal.SIGHUP)  # the terminal closed, the ssh session dropped
    time.sleep(2)
    print("still running")
except KeyboardInterrupt:
    print(console.interruption())
"""


@pytest.mark.parametrize("how, said", [("plain", "terminated"), ("nohup", "still running")])
def test_a_hangup_ends_the_work_as_sigterm_does_unless_it_is_ignored(how, said):
    """SIGHUP killed a command on the spot, in the middle of an enrollment too (exit 129, no line,
    nothing deleted again): it now ends the work as SIGTERM does. Under nohup it stays ignored."""
    proc = subprocess.run([sys.executable, "-c", _HANGUP_SCRIPT, how], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and proc.stdout.strip() == said, (proc.stdout, proc.stderr[-2000:])


_LATE_SIGNAL_SCRIPT = """
import atexit, os, signal, sys, time
sys.argv = ["tinyface", "boards", "esp32", "--json"]

def teardown():  # what TensorFlow's teardown is to a build or an evaluate: half a second after the result
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(2)

atexit.register(teardown)
from tinyface.cli.main import main
main()
"""


def test_a_signal_after_the_result_is_out_keeps_the_commands_exit_code():
    """A SIGTERM while the interpreter shut down, after the command had printed its result and
    ended, made the process die by the signal (143, no line): as if the work had been cut short."""
    proc = subprocess.run([sys.executable, "-c", _LATE_SIGNAL_SCRIPT], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert json.loads(proc.stdout)["name"] == "esp32"
