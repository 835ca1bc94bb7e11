"""A real sweep on the local SLURM cluster: one sbatch array of 4 m_dqn tasks, two of them
interrupted while training (``scontrol requeue`` -> SIGTERM, and the SIGUSR2 that SLURM sends
before a time limit), all four finishing with the same results as their uninterrupted twins."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.slurm.sweep_testlib import (
    CLUSTER_SCRIPT,
    RECIPE,
    TINY,
    assert_logged_once,
    comparable_metrics,
    csv_logs,
    freeze_each_when,
    is_stopped,
    last_logged_step,
    signal_pending,
    task_env,
    wait_for,
)

from torchrl_reg.sweep.task import read_sweep_file

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

FRAMES = 9600


def _sweep(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchrl_reg.sweep", *args], capture_output=True, text=True, env=task_env(), cwd=cwd, timeout=300
    )


def _queue(array_job_id: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-j", array_job_id, "-o", "%i %A %T"], capture_output=True, text=True)
    return {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}


def _step_pids(job_id: str) -> list[int]:
    """Processes of the job's steps (what ``#SBATCH --signal`` signals), without the batch shell; none
    while the job is not running (pending, or completing: ``scontrol listpids`` then fails)."""
    listed = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True)
    if listed.returncode != 0:
        return []
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    return [int(r[0]) for r in rows if len(r) >= 3 and r[2] != "batch"]



def _continue(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def test_cluster_status_reports_a_usable_node(slurm_cluster):
    status = subprocess.run([str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "slurmctld: running" in status.stdout and "slurmd: running" in status.stdout


def test_a_second_start_while_the_cluster_is_up_returns_at_once(slurm_cluster):
    """`start` holds a lock while it writes the config and starts the daemons; a daemon that inherited the lock's fd
    made every later `start` wait until the cluster stopped (the test fixture calls `start` whenever `status` fails,
    e.g. with the daemons up and the node down)."""
    again = subprocess.run([str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    holders = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() in ("munged", "slurmctld", "slurmd"):
                holders += [proc.name for fd in (proc / "fd").iterdir()
                            if os.readlink(fd).endswith("torchrl_reg_local_cluster.lock")]
        except OSError:  # a process that ended meanwhile
            continue
    assert not holders, f"daemons holding start's lock: {holders}"


def test_sweep_array_survives_requeue_and_time_limit_signal(slurm_cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    # Tasks 0 and 1 start first (2 CPU slots); 2 and 3 are their twins (logger.progress_bar only
    # changes what is printed), so they give the uninterrupted result to compare with.
    args = [str(RECIPE), "logger.progress_bar=true,false", "seed=0,1", f"collector.total_frames={FRAMES}", *TINY]
    submitted = _sweep([*args, "--executor", "slurm", "--dir", str(sweep_dir), "--slurm.cpus_per_task=1",
                        "--slurm.time_min=10", "--slurm.signal_delay_s=60"], tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    sweep = read_sweep_file(sweep_dir)
    array = sweep["submissions"][0]["array_job_id"]
    assert f"submitted 4 tasks as SLURM array {array}" in submitted.stdout
    script = next((sweep_dir / "slurm").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%4" in script and "#SBATCH --signal=USR2@60" in script
    run_dirs = [Path(t["run_dir"]) for t in sweep["tasks"]]

    def running_steps(i: int):
        job = _queue(array).get(f"{array}_{i}")
        return _step_pids(job) if job else []

    def stoppable(i: int) -> bool:
        """Task i has a checkpoint and at least one batch boundary (a row every 640 frames) to go."""
        log = run_dirs[i] / "csv" / "scalars" / "train" / "epsilon.csv"
        return (run_dirs[i] / "checkpoint.pt").exists() and last_logged_step(log) < FRAMES - 640

    try:
        # Each task is stopped (SIGSTOP) at a moment its files show it can still be interrupted, and kept
        # stopped until it is signalled, then continued: however slowly this test runs, the signal cannot
        # come too late (task 1, if it runs beside task 0, is frozen too while task 0 is handled, so it
        # cannot finish meanwhile).
        tasks = {f"task {i} to checkpoint": (lambda i=i: running_steps(i), lambda i=i: stoppable(i)) for i in (0, 1)}
        frozen = freeze_each_when(tasks, 240, until="task 0 to checkpoint")
        pids = frozen["task 0 to checkpoint"]
        # What an admin or a preempting scheduler does: SLURM sends SIGTERM and requeues the task.
        subprocess.run(["scontrol", "requeue", f"{array}_0"], check=True, timeout=60)
        # SLURM's SIGTERM waits in the stopped task, or SLURM continued the task itself to deliver it.
        wait_for(lambda: any(signal_pending(pid, signal.SIGTERM) or not is_stopped(pid) for pid in pids),
                 60, "SLURM's SIGTERM to task 0")
        for pid in pids:
            _continue(pid)
        # What SLURM sends signal_delay_s before the time limit (to every process of the job's
        # steps, not the batch shell); the task requeues itself. Sent with kill: slurm 22.05's
        # `scancel --signal` on an array task reports "Job can not be altered now" even when it
        # delivered the signal, and its retries then hit the requeued task while it starts.
        frozen = freeze_each_when(tasks, 240, until="task 1 to checkpoint", frozen=frozen)
        for pid in frozen["task 1 to checkpoint"]:
            os.kill(pid, signal.SIGUSR2)
            _continue(pid)
        # Generous: on a node with one slot (or a loaded machine) the four tasks and two restarts run one
        # after the other; the limit is there to name a hung task, not to time a slow one.
        wait_for(lambda: not _queue(array), 900, "every task to leave the queue")
    finally:
        subprocess.run(["scancel", array], timeout=60)

    status = _sweep(["--status", str(sweep_dir)], tmp_path)
    assert status.returncode == 0 and "4 completed" in status.stdout, status.stdout
    for run_dir in run_dirs:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["frames"] == FRAMES
        assert_logged_once(run_dir)
    for interrupted, twin in ((0, 2), (1, 3)):
        assert comparable_metrics(run_dirs[interrupted]) == comparable_metrics(run_dirs[twin])
        assert csv_logs(run_dirs[interrupted]) == csv_logs(run_dirs[twin])

    logs = {i: Path(info["stdout"]).read_text() for i, info in sweep["submissions"][0]["tasks"].items()}
    assert "stopped by SIGTERM: checkpoint written, exiting without requeueing" in logs["0"]
    assert "stopped by SIGUSR2: checkpoint written, requeueing" in logs["1"]
    for i in ("0", "1"):
        assert logs[i].count("resuming from its checkpoint") == 1 and "returned status='completed'" in logs[i]
        shown = subprocess.run(["scontrol", "show", "job", f"{array}_{i}"], capture_output=True, text=True).stdout
        assert "Restarts=1" in shown
    for i in ("2", "3"):
        assert "resuming" not in logs[i]


def test_sbatch_refusal_submits_nothing(slurm_cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    def job_ids() -> set[str]:
        return set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())

    # Compared as sets of job ids: a job of an earlier test that is still leaving the queue may vanish meanwhile.
    before = job_ids()
    refused = _sweep([str(RECIPE), "seed=0,1", *TINY, "--executor", "slurm", "--dir", str(sweep_dir),
                      "--slurm.partition=no_such_partition"], tmp_path)
    assert refused.returncode == 2
    assert "sbatch refused the sweep, nothing was submitted" in refused.stderr and "partition" in refused.stderr.lower()
    assert not sweep_dir.exists()
    assert job_ids() <= before
