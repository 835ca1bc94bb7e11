"""Sweeps without SLURM, and preemption safety of real m_dqn runs: stop signals, SIGKILL, resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tests.slurm.sweep_testlib import (
    RECIPE,
    TINY,
    assert_logged_once,
    checkpoint_frames,
    comparable_metrics,
    csv_logs,
    freeze_when,
    last_logged_step,
    signal_pending,
    task_env,
    wait_for,
)

from torchrl_reg.report.summary import main as report_main
from torchrl_reg.run import load_checkpoint
from torchrl_reg.run.stop import EXIT_INTERRUPTED
from torchrl_reg.sweep.__main__ import main
from torchrl_reg.sweep.launch import create_sweep
from torchrl_reg.sweep.task import read_sweep_file



def _start_task(sweep_dir: Path, index: int, log_dir: Path) -> subprocess.Popen:
    out = open(log_dir / f"task{index}.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "torchrl_reg.sweep.task", str(sweep_dir), str(index)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=task_env(),
    )


def _task_pids(sweep_dir: Path, index: int) -> list[int]:
    """The process running task ``index`` of the sweep (started by the sweep driver), if it runs."""
    wanted = ["-m", "torchrl_reg.sweep.task", str(sweep_dir), str(index)]
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().decode().split("\0")[:-1]
        except (OSError, ValueError):
            continue
        # the driver may append the recipe it trusts after the task index
        if any(args[i : i + len(wanted)] == wanted for i in range(len(args))):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_local_sweep_ctrl_c_resume_and_report(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    args = [str(RECIPE), "loss=m_dqn,dqn", "collector.total_frames=3200", *TINY]
    front = subprocess.Popen(
        [sys.executable, "-m", "torchrl_reg.sweep", *args, "--executor", "local", "--parallel", "2", "--dir", str(sweep_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=task_env(),
    )
    run0 = sweep_dir / "000_loss=m_dqn"
    # Task 0 stopped at a moment when it has a checkpoint and at least one batch boundary to go (3200
    # frames, a row per 640-frame batch), so the stop cannot come after its end however slow this test is.
    (task0,) = freeze_when(
        lambda: _task_pids(sweep_dir, 0),
        lambda: (run0 / "checkpoint.pt").exists() and last_logged_step(run0 / "csv/scalars/train/epsilon.csv") < 2560,
        240, "task 0 to checkpoint",
    )
    front.send_signal(signal.SIGINT)  # Ctrl-C: every running task checkpoints and stops
    wait_for(lambda: signal_pending(task0, signal.SIGTERM), 300, "the driver to pass the stop on to task 0")
    os.kill(task0, signal.SIGCONT)
    out, _ = front.communicate(timeout=600)
    assert front.returncode == EXIT_INTERRUPTED, out  # stopped by a signal: 75, as its tasks
    assert "task 000_loss=m_dqn: interrupted" in out and f"continue with: python -m torchrl_reg.sweep --resume {sweep_dir}" in out
    assert json.loads((sweep_dir / "000_loss=m_dqn" / "metrics.json").read_text())["status"] == "interrupted"

    assert main(["--resume", str(sweep_dir), "--executor", "local", "--parallel", "2"]) == 0
    assert "2 completed" in capsys.readouterr().out
    finals = {}
    for task in read_sweep_file(sweep_dir)["tasks"]:
        run_dir = Path(task["run_dir"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["frames"] == 3200
        assert metrics["loss"] == task["config"]["loss"]["name"]
        assert (run_dir / "config.yaml").is_file() and (run_dir / "learning_curve.png").is_file()
        assert_logged_once(run_dir)
        finals[f"loss.name={metrics['loss']}"] = metrics["train_return_mean"]
    assert main(["--status", str(sweep_dir)]) == 0
    assert main(["--resume", str(sweep_dir), "--executor", "local"]) == 0
    assert "nothing to resume: every task is completed" in capsys.readouterr().out

    assert report_main([str(sweep_dir), "--reps", "100"]) == 0
    results = json.loads((sweep_dir / "report" / "results.json").read_text())
    assert results["runs_completed"] == 2 and results["missing_or_failed"] == []
    assert {r["method"]: r["mean"] for r in results["per_env"]} == pytest.approx(finals)
    assert (sweep_dir / "report" / "curves_CartPole-v1.png").is_file()


@pytest.mark.slow
def test_stopped_or_killed_runs_resume_to_the_uninterrupted_result(tmp_path):
    """Three runs of one config (logger.project is unused by the CSV logger): one uninterrupted, one
    stopped by SIGUSR1 (checkpoint at the batch boundary, exit), one SIGKILLed between checkpoints.
    After --resume, both must equal the uninterrupted run exactly, CSV logs included."""
    sweep_dir = tmp_path / "sweep"
    # Checkpoints every 1280 frames, CSV rows every batch (640 frames): a kill between checkpoints
    # leaves rows that the resumed run must drop and log again.
    tiny = [o for o in TINY if not o.startswith(("checkpoint.interval=", "logger.interval="))]
    overrides = ["logger.project=a,b,c", "collector.total_frames=5120", *tiny, "checkpoint.interval=1280", "logger.interval=320"]
    create_sweep(RECIPE, overrides, sweep_dir, "test")
    run_dirs = [Path(t["run_dir"]) for t in read_sweep_file(sweep_dir)["tasks"]]
    checkpoints = [d / "checkpoint.pt" for d in run_dirs]

    # Each task is stopped (SIGSTOP) at a moment chosen by what its files show, then killed or signalled:
    # what the test saw is where the task is, however slowly the test itself runs.
    killed = _start_task(sweep_dir, 2, tmp_path)
    epsilon_log = run_dirs[2] / "csv" / "scalars" / "train" / "epsilon.csv"
    freeze_when(
        lambda: [killed.pid],
        lambda: 0 < checkpoint_frames(checkpoints[2]) < last_logged_step(epsilon_log) < 5120,
        240, "a CSV row after a checkpoint of task 2",
    )
    saved, logged = checkpoint_frames(checkpoints[2]), last_logged_step(epsilon_log)
    killed.kill()
    assert killed.wait(60) == -signal.SIGKILL
    assert checkpoint_frames(checkpoints[2]) == saved < logged  # rows the resumed run must drop and log again
    # metrics.json says "running" from the start (rewritten at each checkpoint): a killed run never looks completed.
    assert json.loads((run_dirs[2] / "metrics.json").read_text())["status"] == "running"

    stopped = _start_task(sweep_dir, 1, tmp_path)
    stopped_log = run_dirs[1] / "csv" / "scalars" / "train" / "epsilon.csv"
    freeze_when(
        lambda: [stopped.pid],
        lambda: checkpoints[1].exists() and last_logged_step(stopped_log) < 5120 - 640,
        240, "the first checkpoint of task 1",
    )
    stopped.send_signal(signal.SIGUSR1)
    os.kill(stopped.pid, signal.SIGCONT)
    assert stopped.wait(120) == EXIT_INTERRUPTED, (tmp_path / "task1.log").read_text()
    metrics = json.loads((run_dirs[1] / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and 1280 <= metrics["frames"] < 5120

    # Task 0 never started: --resume runs it uninterrupted, next to the two resumed ones.
    assert main(["--resume", str(sweep_dir), "--executor", "local", "--parallel", "3"]) == 0
    reference = comparable_metrics(run_dirs[0])
    assert reference["status"] == "completed" and reference["frames"] == 5120
    for run_dir in run_dirs[1:]:
        assert comparable_metrics(run_dir) == reference
        assert csv_logs(run_dir) == csv_logs(run_dirs[0])
        assert_logged_once(run_dir)
    logs = {i: Path(info["stdout"]).read_text() for i, info in read_sweep_file(sweep_dir)["submissions"][-1]["tasks"].items()}
    assert "starting" in logs["0"] and "resuming from its checkpoint" not in logs["0"]
    assert "resuming from its checkpoint" in logs["1"] and "resuming from its checkpoint" in logs["2"]


WRITER = textwrap.dedent(
    """
    import sys, torch
    from torchrl_reg.run.checkpoint import save_checkpoint
    path, i = sys.argv[1], 0
    while True:
        i += 1
        save_checkpoint(path, {"step": i, "weights": torch.full((12_500_000,), float(i))})
    """
)


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "checkpoint.pt"
    tmp = tmp_path / "checkpoint.pt.tmp"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=task_env())
    try:
        # stopped while the temporary file is shorter than a complete checkpoint: mid-write
        freeze_when(lambda: [proc.pid], lambda: path.exists() and tmp.exists() and tmp.stat().st_size < path.stat().st_size,
                    240, "a checkpoint write in progress")
        complete, partial = path.stat().st_size, tmp.stat().st_size
    finally:
        proc.kill()
        proc.wait()
    assert tmp.stat().st_size == partial < complete
    state = load_checkpoint(path)
    assert state["step"] >= 1
    assert torch.equal(state["weights"], torch.full((12_500_000,), float(state["step"])))


@pytest.mark.skipif(not Path("/proc/self/autogroup").is_file(),
                    reason="no /proc/<pid>/autogroup here: the kernel schedules without autogroups, so nice works as is")
def test_a_niced_launcher_lowers_its_tasks_sessions_not_its_own():
    """run_local starts each task in a session of its own; under autogroup scheduling that session's group would
    take its full share whatever `nice` the sweep was started with. The launcher (here a process 5 above the
    test's own nice value) passes its nice value to the task's group, and its own group keeps the value it had (also where it is the kernel's default
    group, whose /proc/<pid>/autogroup reads empty: CI's runner)."""
    code = textwrap.dedent("""
        import json, os, subprocess, sys
        from pathlib import Path
        from torchrl_reg.sweep.launch import carry_nice_into_session
        own = Path("/proc/self/autogroup").read_text().split()
        niceness = os.nice(5)  # 5 above whatever the test itself was started with
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
        try:
            carried = carry_nice_into_session(child.pid)
            print(json.dumps([carried, Path(f"/proc/{child.pid}/autogroup").read_text().split(),
                              own, Path("/proc/self/autogroup").read_text().split(), niceness]))
        finally:
            child.kill()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    carried, child_group, own_before, own_after, niceness = json.loads(out)
    assert carried is True
    assert child_group[-2:] == ["nice", str(niceness)]
    # A process in the kernel's default group (a CI runner's, a container's init session) reads its file as empty.
    assert child_group[0] != (own_after[0] if own_after else None)
    assert own_after == own_before  # the launcher's (the user's terminal's) group is untouched
