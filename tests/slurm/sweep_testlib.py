"""Helpers of the sweep and SLURM tests: the real m_dqn recipe with a budget of seconds, and ways
to compare two runs."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "m_dqn.py"
CLUSTER_SCRIPT = REPO / "slurm" / "local_cluster.sh"

# CartPole preset at 64 envs x 10 steps per batch: seconds of training, a checkpoint every batch;
# no torch.compile, whose compile time would dwarf such runs.
TINY = [
    "compile=false",
    "collector.num_envs=64",
    "collector.frames_per_batch=640",
    "optim.learning_starts=640",
    "eval.interval=3200",
    "eval.episodes=2",
    "checkpoint.interval=640",
    "logger.interval=640",
    "num_threads=1",
]

# Comparing two runs: everything in metrics.json except where and how fast they ran.
UNTIMED = ("wall_time_s", "steps_per_s", "run_dir")


def copy_sweep_with(source: Path, target: Path, edit) -> Path:
    """A copy of the sweep directory ``source`` at ``target`` whose sweep.json ``edit`` (a function of the parsed
    dict) has changed in place."""
    import shutil

    shutil.copytree(source, target)
    stored = json.loads((target / "sweep.json").read_text())
    edit(stored)
    (target / "sweep.json").write_text(json.dumps(stored))
    return target


def comparable_metrics(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in UNTIMED}


def csv_logs(run_dir: Path) -> dict[str, list[str]]:
    root = run_dir / "csv" / "scalars"
    return {str(p.relative_to(root)): p.read_text().splitlines() for p in sorted(root.rglob("*.csv"))}


def assert_logged_once(run_dir: Path) -> None:
    """Every CSV scalar has strictly increasing steps: nothing was logged twice."""
    for name, lines in csv_logs(run_dir).items():
        steps = [int(line.split(",")[0]) for line in lines]
        assert steps == sorted(set(steps)), f"{run_dir.name}/{name} logs a step twice: {steps}"


def task_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def wait_for(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds (a hung run, not a slow one)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "X"


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:  # it ended meanwhile
        pass


def is_stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped by a signal (or gone)."""
    return _state(pid) in "TtXZ"


def signal_pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` waits to be delivered to ``pid`` (a stopped process receives it when continued)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask >> (sig - 1) & 1 for mask in masks)


#: How long ``_try_freeze`` waits for every process to show as stopped before it continues them and tries later.
STOP_SETTLE_S = 10.0


def _try_freeze(pids, ready) -> list[int] | None:
    """SIGSTOP the processes ``pids()``; return them still stopped if ``ready()`` holds then, else continue
    them and return None (also when there is nothing to stop yet, or when they do not all stop in
    ``STOP_SETTLE_S``: a process that is between ``vfork`` and ``exec`` still carries its parent's command
    line, so both match ``pids()`` (the likely cause of one such failure seen); the stopped child then keeps the parent waiting for the ``exec``, in
    state D, never T. Continuing both lets the child exec, and the next try matches the parent alone)."""
    procs = pids()
    if not procs:
        return None
    for pid in procs:
        _send(pid, signal.SIGSTOP)
    deadline = time.monotonic() + STOP_SETTLE_S
    while not all(is_stopped(pid) for pid in procs):
        if time.monotonic() > deadline:
            for pid in procs:
                _send(pid, signal.SIGCONT)
            return None
        time.sleep(0.05)
    if ready():
        return procs
    for pid in procs:
        _send(pid, signal.SIGCONT)
    return None


def freeze_when(pids, ready, timeout: float, what: str) -> list[int]:
    """SIGSTOP the processes ``pids()`` at a moment when ``ready()`` holds, and return them still stopped.

    ``ready`` is checked while they are stopped, so what it saw is exactly where they will continue
    from: a test that then signals or kills them does not race a run that goes on meanwhile (on a
    busy machine the test process can be descheduled for seconds). The caller sends SIGCONT.
    """
    return freeze_each_when({what: (pids, ready)}, timeout)[what]


def freeze_each_when(tasks: dict, timeout: float, until: str | None = None,
                     frozen: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """``freeze_when`` for several runs at once: ``tasks`` maps a name to ``(pids, ready)``. Returns once
    the run ``until`` (default: every run) is frozen; any other run seen ready meanwhile is frozen too
    and kept stopped (returned with the rest, pass it back as ``frozen``), so that a run the test
    handles later cannot finish and leave its window while an earlier one is handled. Whether the runs
    go side by side or one after the other (a node with one slot) does not matter."""
    deadline = time.monotonic() + timeout
    frozen = dict(frozen or {})
    wanted = [until] if until is not None else list(tasks)
    while True:
        for name, (pids, ready) in tasks.items():
            if name not in frozen and (procs := _try_freeze(pids, ready)) is not None:
                frozen[name] = procs
        if all(name in frozen for name in wanted):
            return frozen
        if time.monotonic() > deadline:
            missing = ", ".join(name for name in wanted if name not in frozen)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {missing}")
        time.sleep(0.05)


def last_logged_step(csv_path: Path) -> int:
    """The step of the last complete row of a CSV log (-1 if none)."""
    complete_rows = [line for line in csv_path.read_text().split("\n")[:-1] if line] if csv_path.exists() else []
    return int(complete_rows[-1].split(",")[0]) if complete_rows else -1


def checkpoint_frames(path: Path) -> int:
    """Frames of a complete checkpoint (-1 if there is none yet)."""
    from torchrl_reg.run import load_checkpoint

    return int(load_checkpoint(path)["frames"]) if path.exists() else -1
