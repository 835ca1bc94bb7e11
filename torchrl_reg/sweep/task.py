"""One sweep task as it runs on a node: train, and on a stop signal checkpoint and (maybe) requeue.

Signals, chosen deliberately (submitit's defaults would interrupt training mid-step):

* SIGUSR2 is what submitit asks SLURM to send ``signal_delay_s`` before the time limit
  (``#SBATCH --signal=USR2@...``); some clusters also send it on preemption
  (``PreemptParameters=send_user_signal``). SIGUSR1 is the conventional user signal
  (``scancel --signal=USR1``). Both mean "you will be stopped, come back later": the training
  loop checkpoints at its next batch boundary, then the task requeues itself with
  ``scontrol requeue`` through submitit's own checkpoint-and-requeue logic (which also counts
  time-outs against ``max_num_timeout``).
* SIGTERM is what SLURM sends when it ends the job itself: ``scontrol requeue``, preemption, or
  ``scancel``. The loop checkpoints and the task exits without requeueing: SLURM already
  requeues the job when that is what was asked (requeue, ``PreemptMode=REQUEUE``), and a job
  that requeued itself after SIGTERM would survive the user's own ``scancel`` (a cancelled job
  can be requeued). ``python -m torchrl_reg.sweep --resume`` resubmits anything left unfinished.

submitit installs its handlers before calling the task (SIGUSR2: checkpoint and requeue inside
the handler; SIGTERM: ignored); :meth:`SweepTask.__call__` replaces them with handlers that
only set the recipe's stop flag, so the checkpoint is always written from the training loop.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torchrl_reg.sweep.spec import SweepError

__all__ = ["SweepTask", "REQUEUE_SIGNALS", "STOP_SIGNALS", "SWEEP_FILE", "read_sweep_file", "write_sweep_file"]

SWEEP_FILE = "sweep.json"
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
STOP_SIGNALS = (signal.SIGTERM, *REQUEUE_SIGNALS)


class _SignalLog:
    """Records which signals arrive while it is open, whichever Python handler runs for them.

    ``train`` installs its own handlers for SIGTERM and SIGUSR1 (they set the stop flag), so the
    task cannot learn from handlers of its own which signal stopped the loop; Python writes the
    number of every signal it handles to the wakeup file descriptor, read here.
    """

    def __enter__(self) -> "_SignalLog":
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._seen: list[int] = []
        return self

    def received(self) -> list[int]:
        try:
            self._seen.extend(os.read(self._read, 65536))
        except BlockingIOError:
            pass
        return list(self._seen)

    def __exit__(self, *exc: object) -> None:
        self.received()
        signal.set_wakeup_fd(self._previous)
        os.close(self._read)
        os.close(self._write)


def _map_paths(sweep: dict[str, Any], convert: Callable[[str], str]) -> dict[str, Any]:
    """A copy of ``sweep`` with ``convert`` applied to every path it records: each task's run
    directory (also inside its config) and the log files of every submission."""
    sweep = copy.deepcopy(sweep)
    for task in sweep.get("tasks", []):
        task["run_dir"] = convert(task["run_dir"])
        if isinstance(task.get("config"), dict) and isinstance(task["config"].get("run_dir"), str):
            task["config"]["run_dir"] = convert(task["config"]["run_dir"])
    for submission in sweep.get("submissions", []):
        for info in submission.get("tasks", {}).values():
            for key in ("stdout", "stderr"):
                if isinstance(info.get(key), str):
                    info[key] = convert(info[key])
    return sweep


def read_sweep_file(sweep_dir: str | Path) -> dict[str, Any]:
    """The contents of ``<sweep_dir>/sweep.json`` with every path absolute.

    Paths inside the sweep directory are stored relative to it (:func:`write_sweep_file`), so a
    sweep directory that was moved or copied elsewhere still finds its runs; absolute paths (sweeps
    written before, or runs outside the sweep directory) are kept as they are.
    """
    root = Path(sweep_dir).resolve()
    path = root / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not a sweep directory made by torchrl_reg.sweep")
    try:
        sweep = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SweepError(f"{path} is not valid JSON ({err}): the sweep file is damaged; restore it from a copy") from None
    missing = [k for k in ("recipe", "tasks", "submissions") if not isinstance(sweep, dict) or k not in sweep]
    if missing:
        raise SweepError(f"{path} lacks {missing}: not a sweep file written by torchrl_reg.sweep")
    return _map_paths(sweep, lambda p: str(root / p) if not Path(p).is_absolute() else p)


def write_sweep_file(sweep_dir: str | Path, sweep: dict[str, Any]) -> None:
    """Write ``<sweep_dir>/sweep.json`` atomically, paths under the sweep directory made relative to it."""
    root = Path(sweep_dir).resolve()

    def relative(p: str) -> str:
        path = Path(p)
        return path.relative_to(root).as_posix() if path.is_absolute() and path.is_relative_to(root) else p

    tmp = root / (SWEEP_FILE + ".tmp")
    tmp.write_text(json.dumps(_map_paths(sweep, relative), indent=1) + "\n")
    os.replace(tmp, root / SWEEP_FILE)


def _log(message: str) -> None:
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    print(f"[torchrl_reg.sweep {stamp}] {message}", flush=True)


class SweepTask:
    """Callable that runs task ``index`` of the sweep stored in ``sweep_dir`` (pickled by submitit).

    It holds only two small values; the task's config is read from ``sweep.json`` when it runs,
    so a requeued task runs the very config that was validated at submission.
    """

    def __init__(self, sweep_dir: str, index: int):
        self.sweep_dir = str(sweep_dir)
        self.index = int(index)

    def __repr__(self) -> str:
        return f"SweepTask({self.sweep_dir!r}, {self.index})"

    def __call__(self) -> dict[str, Any]:
        from omegaconf import OmegaConf

        from torchrl_reg.recipe_utils.checkpoint import has_checkpoint
        from torchrl_reg.recipe_utils.stop import install_stop_signal_handlers
        from torchrl_reg.sweep.spec import Recipe, Task

        started = time.time()
        # Replaces submitit's handlers (SIGUSR2: requeue from inside the handler, SIGTERM: ignored).
        install_stop_signal_handlers(STOP_SIGNALS)
        _start_resource_tracker_deaf_to_user_signals()
        with _SignalLog() as signals:
            sweep = read_sweep_file(self.sweep_dir)
            task = Task.from_json(sweep["tasks"][self.index])
            run_dir = Path(task.run_dir)
            _log(
                f"task {task.index} ({' '.join(task.overrides) or 'no overrides'}) in {run_dir}: "
                + ("resuming from its checkpoint" if has_checkpoint(run_dir) else "starting")
            )
            recipe = Recipe.from_path(sweep["recipe"])
            metrics = recipe.module().train(OmegaConf.create(task.config))
            received = signals.received()
        status = metrics.get("status")
        _log(f"task {task.index} returned status={status!r} after {time.time() - started:.0f} s")
        if status == "interrupted":
            self._after_interrupt(started, received)
        return metrics

    def checkpoint(self) -> Any:
        """For submitit's requeue: the training state is in the run directory, so resubmit as is."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)

    def _after_interrupt(self, started: float, received: list[int]) -> None:
        if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
            # Run by the local executor (or by hand): nothing requeues it; --resume continues it.
            return
        requeue_signals = [s for s in received if s in REQUEUE_SIGNALS]
        if not requeue_signals:
            _log(f"stopped by {_signal_names(received)}: checkpoint written, exiting without requeueing")
            sys.exit(-1)
        from submitit import JobEnvironment
        from submitit.core.job_environment import SignalHandler
        from submitit.core.utils import DelayedSubmission

        env = JobEnvironment()
        handler = SignalHandler(env, env.paths, DelayedSubmission.load(env.paths.submitted_pickle))
        # Time-out accounting measures the run time from the task's start, as submitit's handler does.
        handler._start_time = started
        _log(f"stopped by {_signal_names(received)}: checkpoint written, requeueing")
        # submitit's own logic, from the main loop instead of a signal handler: count a time-out
        # against max_num_timeout, dump self.checkpoint(), scontrol requeue, exit.
        try:
            handler.checkpoint_and_try_requeue(requeue_signals[-1])
        except subprocess.CalledProcessError as err:
            # e.g. a preemption that sent SIGUSR2 and already requeued the job (PreemptMode=REQUEUE)
            _log(f"scontrol requeue failed ({err}); the checkpoint is written, --resume continues the task")
            sys.exit(-1)


def _signal_names(signums: list[int]) -> str:
    names = [signal.Signals(s).name for s in dict.fromkeys(signums) if s in STOP_SIGNALS]
    return ", ".join(names) or "a stop request"


def _start_resource_tracker_deaf_to_user_signals() -> None:
    """Start multiprocessing's resource tracker now, with SIGUSR1/SIGUSR2 blocked in it.

    SLURM delivers a job's signals to every process of the step. The tracker (a helper process
    that shared-memory users such as torch start on demand) ignores SIGINT and SIGTERM but dies
    on SIGUSR1/SIGUSR2, leaking its shared memory segments; a blocked signal mask is inherited
    by the child, so the one started here survives them.
    """
    from multiprocessing import resource_tracker

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, REQUEUE_SIGNALS)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def main(argv: list[str] | None = None) -> int:
    """``python -m torchrl_reg.sweep.task SWEEP_DIR INDEX``: what the local executor runs per task."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m torchrl_reg.sweep.task SWEEP_DIR INDEX", file=sys.stderr)
        return 2
    from torchrl_reg.recipe_utils.stop import EXIT_INTERRUPTED

    metrics = SweepTask(args[0], int(args[1]))()
    return 0 if metrics.get("status") == "completed" else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
