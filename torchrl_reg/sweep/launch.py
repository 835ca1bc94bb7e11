"""Create a sweep directory, submit its tasks as one SLURM array (submitit) or run them locally.

A sweep directory holds ``sweep.json`` (recipe, command, every task's overrides, run directory
and resolved config, every submission with its job ids and log paths), one run directory per
task (named after its index and swept values) and the scheduler logs (``slurm/`` or ``local/``).
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchrl_reg.cli import clean_pythonpath, printable, shown
from torchrl_reg.run.checkpoint import has_checkpoint
from torchrl_reg.run.files import FileRefused, load_yaml_config, lstat_file, open_file, read_json, refuse_symlinks
from torchrl_reg.run.rundir import run_dir_holder
from torchrl_reg.run.stop import EXIT_INTERRUPTED
from torchrl_reg.sweep.resources import PACKAGE_ROOT, SlurmResources
from torchrl_reg.sweep.spec import Recipe, SweepError, plan_tasks
from torchrl_reg.sweep.task import (
    SWEEP_DIR_ID,
    SWEEP_FILE,
    SweepTask,
    folder_id,
    held_sweep_dir,
    read_sweep_file,
    sweep_dir_replaced,
    sweep_file_lock,
    write_sweep_file,
)

__all__ = [
    "SlurmResources",
    "create_sweep",
    "submit_slurm",
    "run_local",
    "LocalCodes",
    "task_status",
    "config_mismatch",
    "MISMATCH",
    "sweep_status",
    "unfinished_tasks",
    "slurm_queue",
    "recorded_resources",
]



def recorded_resources(sweep_dir: str | Path) -> list[tuple[str, str]]:
    """The resources of the sweep's latest SLURM submission as ``(key, value)`` pairs (none if it never
    went to SLURM), so that ``--resume`` asks for what the sweep was submitted with (its GPUs above all)."""
    slurm = [s for s in read_sweep_file(sweep_dir)["submissions"] if s["executor"] == "slurm" and "resources" in s]
    if not slurm:
        return []
    items: list[tuple[str, str]] = []
    for key, value in slurm[-1]["resources"].items():
        if key == "setup":
            items += [("setup", line) for line in value]
        elif key == "additional":
            items += [(f"additional.{k}", str(v)) for k, v in value.items()]
        elif value is not None:
            items.append((key, str(value)))
    return items


def create_sweep(
    recipe_path: str | Path, overrides: Sequence[str], sweep_dir: str | Path, command: str, method: str | None = None
) -> dict[str, Any]:
    """Validate every task and write ``<sweep_dir>/sweep.json``; raises :class:`SweepError` first if any is invalid.

    ``method`` (a sweep spec's method name) labels the sweep's runs in reports.
    """
    recipe = Recipe.from_path(recipe_path)
    sweep_dir = Path(sweep_dir).resolve()
    if (sweep_dir / SWEEP_FILE).exists():
        raise SweepError(f"{sweep_dir} already holds a sweep: continue it with --resume {sweep_dir}, or choose another --dir")
    tasks, swept = plan_tasks(recipe, overrides, sweep_dir)
    sweep = {
        "recipe": str(recipe.path),
        **({"method": method} if method else {}),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "overrides": list(overrides),
        "swept_keys": swept,
        "tasks": [t.to_json() for t in tasks],
        "submissions": [],
    }
    sweep_dir.mkdir(parents=True, exist_ok=True)
    # Checked again under the sweep's lock: of two identical creations at once, the second is refused here
    # instead of replacing the first's sweep.json (and the submission recorded in it).
    with sweep_file_lock(sweep_dir):
        if lstat_file(sweep_dir / SWEEP_FILE) is not None:
            raise SweepError(f"{sweep_dir} already holds a sweep (made meanwhile by another command): continue it "
                             f"with --resume {sweep_dir}, or choose another --dir")
        write_sweep_file(sweep_dir, sweep)
    return sweep


def _record_submission(sweep_dir: Path, submission: dict[str, Any]) -> None:
    with sweep_file_lock(sweep_dir):  # another --resume may be recording its own submission now
        sweep = read_sweep_file(sweep_dir)
        sweep["submissions"].append(submission)
        write_sweep_file(sweep_dir, sweep)


def submit_slurm(
    sweep_dir: str | Path, indices: Sequence[int], resources: SlurmResources, parallel: int, recipe: str | Path | None = None
) -> dict[str, Any]:
    """Submit the tasks ``indices`` as one SLURM array through submitit; returns the recorded submission.

    ``recipe``: the script the user named (see :func:`~torchrl_reg.sweep.task.sweep_recipe`)."""
    import submitit

    sweep_dir = Path(sweep_dir).resolve()
    sweep = read_sweep_file(sweep_dir)
    refuse_symlinks(sweep_dir / "slurm")  # submitit writes its job files and logs there
    # -P: the job's working directory (where sbatch ran, maybe a downloaded sweep directory) is not put on sys.path
    executor = submitit.SlurmExecutor(folder=sweep_dir / "slurm" / "%j", max_num_timeout=resources.max_timeouts,
                                      python=f"{shlex.quote(sys.executable)} -P")
    executor.update_parameters(**resources.executor_parameters(Path(sweep["recipe"]).stem, parallel))
    try:
        with executor.batch():
            jobs = [executor.submit(SweepTask(str(sweep_dir), i, None if recipe is None else str(recipe))) for i in indices]
    except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError, OSError) as err:
        raise SweepError(f"sbatch refused the sweep, nothing was submitted:\n{err}") from None
    submission = {
        "executor": "slurm",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "array_job_id": jobs[0].job_id.split("_")[0],
        "resources": dataclasses.asdict(resources),
        "tasks": {
            str(i): {"job_id": job.job_id, "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)}
            for i, job in zip(indices, jobs)
        },
    }
    _record_submission(sweep_dir, submission)
    return submission


def carry_nice_into_session(pid: int) -> bool:
    """Give the session of process ``pid`` (a task started in a session of its own) this process's nice value.

    Linux's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) makes each session a group that
    shares the CPU equally with the other groups whatever its processes' nice values. A task in its own session
    would then take half a core from the user's terminal, editor or tests although the sweep was started with
    ``nice -n 10``; measured here, a MinAtar M-DQN update took 10.1 ms beside such a neighbour against 4.3 ms alone
    on its core. Writing the nice value to ``/proc/<pid>/autogroup`` lowers the task's group as ``nice`` meant.
    Returns whether it did: nothing to carry at nice <= 0, no autogroup file (another kernel or OS), or a write
    refused (the task then keeps the nice value it inherited, which still ranks it within its own session).
    Call it only after the task has started its session (``subprocess.Popen`` returns after the exec, so after
    ``start_new_session``'s ``setsid``): before that, the file would be the launcher's own group's.
    """
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    path = Path(f"/proc/{pid}/autogroup")
    if nice <= 0 or not path.is_file():
        return False
    try:
        path.write_text(f"{nice}\n")
    except OSError:
        return False
    return True


class LocalCodes(dict):
    """The exit codes of the tasks :func:`run_local` ran, by index; ``stopped_by``: the signal (SIGINT, SIGTERM,
    SIGHUP) that stopped the sweep, None when none did."""

    stopped_by: int | None = None
    #: Why no further task was started although some were left (the sweep directory was replaced), else None.
    refused: str | None = None
    #: The tasks another process (a second ``--resume``) ran or runs: their run directory was locked when their
    #: turn came, or its run completed meanwhile; not failures.
    elsewhere: set[int]

    def __init__(self) -> None:
        super().__init__()
        self.elsewhere = set()


def run_local(
    sweep_dir: str | Path, indices: Sequence[int], parallel: int = 1, quiet: bool = False, recipe: str | Path | None = None
) -> LocalCodes:
    """Run the tasks here, ``parallel`` at a time, each in its own process; returns their exit codes.

    ``recipe``: the script the user named (see :func:`~torchrl_reg.sweep.task.sweep_recipe`).
    Ctrl-C (or SIGTERM, or SIGHUP: the terminal closed) asks every running task to checkpoint and stop, and starts no new one;
    ``--resume`` continues the sweep later; the returned codes' ``stopped_by`` names the signal (the sweep command
    then exits 75, as a stopped task does). Exit code 0: completed, 75 (``EXIT_INTERRUPTED``): interrupted.
    Each task runs in a session of its own, which gets the launcher's nice value (:func:`carry_nice_into_session`):
    ``nice -n 10 python -m torchrl_reg.sweep ... --executor local`` yields the CPU to the user's other work.
    """
    sweep_dir = Path(sweep_dir).resolve()
    # Held by descriptor for the whole run: a sweep directory replaced meanwhile (a link put in its place) gets no
    # byte, and no task is started in it (each task checks that it runs in this very folder: SWEEP_DIR_ID).
    with held_sweep_dir(sweep_dir) as fd:
        return _run_local(sweep_dir, fd, indices, parallel, quiet, recipe)


def _run_local(
    sweep_dir: Path, fd: int, indices: Sequence[int], parallel: int, quiet: bool, recipe: str | Path | None
) -> LocalCodes:
    sweep = read_sweep_file(sweep_dir)  # refuses a symlinked local/ (check_sweep_links)
    codes = LocalCodes()
    if sweep_dir_replaced(sweep_dir, fd):  # before anything is recorded in it
        codes.refused = _replaced(sweep_dir, len(indices))
        return codes
    log_dir = sweep_dir / "local"
    env = dict(os.environ)
    # No empty entry: it would put the working directory back on the tasks' sys.path, -P or not.
    inherited = clean_pythonpath(env.get("PYTHONPATH"))
    env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + inherited if inherited else "")
    env[SWEEP_DIR_ID] = folder_id(fd)
    submission = {"executor": "local", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "tasks": {}}
    for i in indices:
        submission["tasks"][str(i)] = {
            "job_id": None,
            "stdout": str(log_dir / f"{i}_log.out"),
            "stderr": str(log_dir / f"{i}_log.err"),
        }
    for logs in submission["tasks"].values():  # each log a regular file of one link, before anything is recorded
        for stream in ("stdout", "stderr"):
            open_file(logs[stream], "ab", root=sweep_dir, create_dirs=True).close()
    _record_submission(sweep_dir, submission)

    pending = list(indices)
    running: dict[int, subprocess.Popen] = {}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        codes.stopped_by = signum
        for proc in running.values():
            proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while pending or running:
            while pending and len(running) < parallel and not stopping:
                if sweep_dir_replaced(sweep_dir, fd):
                    codes.refused = _replaced(sweep_dir, len(pending))
                    pending.clear()
                    break
                i = pending.pop(0)
                if task_status(sweep["tasks"][i]) in ("running", "completed"):
                    # another driver (a second --resume) runs it or has run it: not ours to start, not a failure
                    codes.elsewhere.add(i)
                    codes[i] = 0
                    if not quiet:
                        print(f"[{len(codes)}/{len(indices)}] task {printable(sweep['tasks'][i]['name'])}: done elsewhere "
                              "(another process ran or runs it)", flush=True)
                    continue
                logs = submission["tasks"][str(i)]
                with (open_file(logs["stdout"], "ab", root=sweep_dir, create_dirs=True) as out,
                      open_file(logs["stderr"], "ab", root=sweep_dir, create_dirs=True) as err):
                    running[i] = subprocess.Popen(
                        # -P: the working directory (maybe a downloaded sweep directory) is not put on sys.path
                        [sys.executable, "-P", "-u", "-m", "torchrl_reg.sweep.task", str(sweep_dir), str(i),
                         *([] if recipe is None else [str(recipe)])],
                        stdout=out,
                        stderr=err,
                        env=env,
                        # Its own session: the terminal's Ctrl-C reaches only this loop, which asks
                        # each task to checkpoint instead of killing it mid-write.
                        start_new_session=True,
                    )
                    carry_nice_into_session(running[i].pid)
            time.sleep(0.2)
            for i, proc in list(running.items()):
                if proc.poll() is not None:
                    codes[i] = proc.returncode
                    del running[i]
                    if proc.returncode not in (0, EXIT_INTERRUPTED) and _done_elsewhere(sweep["tasks"][i]):
                        # refused because another driver held its run directory (RunDirLocked), which completed it
                        # or runs it still: not a failure
                        codes.elsewhere.add(i)
                        codes[i] = 0
                    if not quiet:
                        word = ("done elsewhere (another process ran or runs it)" if i in codes.elsewhere else
                                {0: "completed", EXIT_INTERRUPTED: "interrupted"}.get(proc.returncode, f"failed (exit {proc.returncode})"))
                        task = sweep["tasks"][i]
                        print(f"[{len(codes)}/{len(indices)}] task {printable(task['name'])}: {word}", flush=True)
            if stopping and not running:
                break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return codes


#: The status of a task whose run directory holds another task's run (its config.yaml is not the task's config).
MISMATCH = "config mismatch"


def _flat_config(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat_config(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def _may_differ() -> set[str]:
    """The keys a run's own config.yaml may hold another value of than its sweep task's config: where it runs, and
    what a resume may change (the schemas' ``resumable_keys``: budget, logging, checkpoint intervals)."""
    from torchrl_reg.configs.schemas import PlanningConfig, RecipeConfig
    from torchrl_reg.run.rundir import resume_rules

    return {"run_dir"} | set(resume_rules(RecipeConfig)[0]) | set(resume_rules(PlanningConfig)[0])


def config_mismatch(task: dict[str, Any]) -> str | None:
    """What the run directory's own record (its ``config.yaml``, written by the run itself) says it ran, where that is
    not the task's config in sweep.json, one line (``seed: 1 in config.yaml, 0 in sweep.json``); None when they agree
    or the run has written no config.yaml yet. Two task directories swapped (or another run copied into one) are
    found here: a task is labelled and counted by what its run recorded, never by sweep.json alone."""
    run_dir = Path(task["run_dir"])
    if lstat_file(run_dir / "config.yaml") is None:
        return None
    from omegaconf import OmegaConf

    try:
        own = OmegaConf.to_container(load_yaml_config(run_dir / "config.yaml"), resolve=False)
    except FileRefused:
        raise
    except Exception as err:  # noqa: BLE001 - YAML, OmegaConf and decoding raise many types
        return f"its config.yaml cannot be read ({type(err).__name__}: {' '.join(str(err).split())[:120]})"
    ran, recorded, skip = _flat_config(own if isinstance(own, dict) else {}), _flat_config(task["config"]), _may_differ()
    differ = [k for k in sorted(set(ran) & set(recorded)) if k not in skip and ran[k] != recorded[k]
              and not (isinstance(ran[k], float) and isinstance(recorded[k], float) and ran[k] != ran[k] and recorded[k] != recorded[k])]
    if not differ:
        return None
    shown_keys = "; ".join(f"{shown(k, 60)}: {shown(repr(ran[k]), 60)} in config.yaml, {shown(repr(recorded[k]), 60)} in "
                           "sweep.json" for k in differ[:3])
    more = f" (and {len(differ) - 3} more)" if len(differ) > 3 else ""
    return f"its run directory holds the run of another config ({shown_keys}{more}): left out of every number"


def _replaced(sweep_dir: Path, left: int) -> str:
    return (f"the sweep directory {printable(sweep_dir)} was replaced while the sweep ran (moved away, or a link or "
            f"another folder put in its place): {left} tasks not started, nothing written there")


def _done_elsewhere(task: dict[str, Any]) -> bool:
    """Whether a task whose process of ours failed is run or was completed by another process: its run directory
    is held by a live process, or its run completed (a second driver's ``--resume`` started it first)."""
    try:
        return task_status(task) in ("running", "completed")
    except (OSError, ValueError):
        return False


def task_status(task: dict[str, Any]) -> str:
    """``running`` (a live process holds its run directory's lock), ``config mismatch`` (its run directory's own
    config.yaml is not the task's config: :func:`config_mismatch`), ``completed``, ``interrupted``,
    ``started`` (has a checkpoint, no final metrics) or ``not started``."""
    run_dir = Path(task["run_dir"])
    if run_dir_holder(run_dir) is not None:
        return "running"
    if config_mismatch(task) is not None:
        return MISMATCH
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        try:
            data = read_json(metrics, "metrics")  # a FIFO or a device is refused (FileRefused), never waited on
        except FileRefused:
            raise
        except ValueError:
            data = None
        status = data.get("status", "unknown") if isinstance(data, dict) else "unknown"
        if status in ("completed", "interrupted"):
            return status
    if has_checkpoint(run_dir):
        return "started"
    return "not started"


def slurm_queue(job_ids: Sequence[str]) -> dict[str, str]:
    """State (``PENDING``, ``RUNNING``, ...) of every array task of ``job_ids`` still known to squeue."""
    if not job_ids:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(sorted(set(job_ids)))],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


def sweep_status(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per task: index, name, run dir, status, its latest job id, queue state and log paths, and
    ``mismatch``: what its run recorded where that is not the task's config (:func:`config_mismatch`), else None."""
    sweep = read_sweep_file(sweep_dir)
    latest: dict[int, dict[str, Any]] = {}
    for submission in sweep["submissions"]:
        for i, info in submission["tasks"].items():
            latest[int(i)] = {**info, "executor": submission["executor"]}
    queue = slurm_queue(
        [s["array_job_id"] for s in sweep["submissions"] if s["executor"] == "slurm"]
    )
    rows = []
    for task in sweep["tasks"]:
        info = latest.get(task["index"], {})
        rows.append(
            {
                "index": task["index"],
                "name": task["name"],
                "run_dir": task["run_dir"],
                "status": task_status(task),
                "mismatch": config_mismatch(task),
                "job_id": info.get("job_id"),
                "queue": queue.get(str(info.get("job_id"))),
                "stdout": info.get("stdout"),
                "stderr": info.get("stderr"),
            }
        )
    return rows


def unfinished_tasks(sweep_dir: str | Path) -> tuple[list[int], list[int]]:
    """``(to_resubmit, still_queued)``: tasks not completed, split by whether SLURM still holds them or a
    live process still runs them (a task whose local driver was killed goes on running)."""
    to_resubmit, queued = [], []
    for row in sweep_status(sweep_dir):
        if row["status"] in ("completed", MISMATCH):  # a mismatch is not run again over another task's run
            continue
        (queued if row["queue"] is not None or row["status"] == "running" else to_resubmit).append(row["index"])
    return to_resubmit, queued
