"""The freezing helper of the sweep tests: a process that does not stop in time is continued, not waited on forever."""
import signal
import subprocess
import sys

from tests.slurm import sweep_testlib
from tests.slurm.sweep_testlib import _state, _try_freeze, freeze_when


def test_try_freeze_continues_processes_that_do_not_stop_and_freezes_them_later(monkeypatch):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # as if the process were held in state D (a parent waiting for its vfork child to exec): never "stopped"
        monkeypatch.setattr(sweep_testlib, "STOP_SETTLE_S", 0.2)
        monkeypatch.setattr(sweep_testlib, "is_stopped", lambda pid: False)
        assert _try_freeze(lambda: [proc.pid], lambda: True) is None
        sweep_testlib.wait_for(lambda: _state(proc.pid) not in "Tt", 5, "the process to be continued")
        monkeypatch.undo()
        assert freeze_when(lambda: [proc.pid], lambda: True, 10, "the process") == [proc.pid]
        assert _state(proc.pid) in "Tt"
        proc.send_signal(signal.SIGCONT)
    finally:
        proc.kill()
        proc.wait()
