"""The run-directory contract of one run, whatever its loop counts in: :class:`Run`.

A loop that trains on collector batches (:class:`~torchrl_reg.run.recipe_run.RecipeRun`, a :class:`Run`) and
one that plays episodes (:func:`torchrl_reg.loops.planning.plan`) keep one contract (the package docstring):
one writer per directory, a resume refused when the config changed, a resume from the last checkpoint equal to
the uninterrupted run, checkpoints written atomically with their checksum, ``metrics.json`` saying ``running``
until the end, and a stop signal acted on at the loop's next boundary with a checkpoint (exit status 75 from the
command line). :class:`Run` holds it once; what the loop keeps in its checkpoint is its :class:`RunState`::

    run = Run.open(cfg, state)        # lock (one writer), resume checks, stop signals, threads, seeds
    run.start()                       # resume to the checkpoint's state, or start a clean log; config.yaml
    while ...:                        # one unit of work: a collector batch, an episode, a group of episodes
        ...
        if run.stop_due():            # a stop request: status "interrupted", checkpoint
            break
        run.checkpoint()
    return run.finish(metrics, curve_file="returns.png", ...)   # metrics.json, the curve, the lock released
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from torchrl_reg.run.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_DIGEST_KEY,
    CheckpointError,
    has_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from torchrl_reg.run.logs import close_logger, make_logger, sync_csv_logs, truncate_csv_logs
from torchrl_reg.run.metrics import write_json
from torchrl_reg.run.plots import plot_learning_curve
from torchrl_reg.run.process import open_process, release_at_exit
from torchrl_reg.run.progress import ProgressBar
from torchrl_reg.run.rundir import config_digest, keys_added_unread, release_run_dir, released_on_error, write_config
from torchrl_reg.run.stop import clear_stop, set_loop_active, stop_requested

__all__ = ["Run", "RunState"]


def check_elapsed(elapsed: Any) -> float:
    """The elapsed seconds a checkpoint holds (``elapsed``), refused unless a finite number >= 0."""
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not 0 <= elapsed < math.inf:
        raise ValueError(f"its 'elapsed' is {elapsed!r}, where a run's elapsed seconds are a finite number >= 0")
    return float(elapsed)


class RunState(Protocol):
    """What a loop keeps in its checkpoint (the RNG states and the elapsed time are :class:`Run`'s)."""

    @property
    def step(self) -> int:
        """How far the run is, in the loop's unit: the step of its CSV rows and of
        :func:`~torchrl_reg.run.request_stop_at` (frames; finished episodes)."""

    def progress(self) -> dict[str, Any]:
        """What ``metrics.json`` says while the run goes on, ``frames`` among it: 0 until the first checkpoint,
        which is how :func:`~torchrl_reg.run.rundir.open_run_dir` tells a run killed before it (start over) from one
        whose checkpoints were deleted (refused)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as plain data (``checkpoint.pt`` holds its keys)."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, after checking every value as the state's own code checks the
        value it stands for (a ``ValueError`` naming the entry: a crafted or damaged checkpoint is refused)."""

    # Optional: ``checkpoint_bytes() -> int``, the most bytes a checkpoint of this state can hold (what the config
    # implies: its networks, optimizer, buffer capacity, with a margin); a checkpoint declaring more is refused
    # before it is inflated (:func:`~torchrl_reg.run.load_checkpoint`'s ``max_bytes``).


class Run:
    """The run directory's contract around a loop: logger, resume, checkpoints, running metrics, stop, final metrics.

    Args:
        cfg: the validated config (a :class:`~torchrl_reg.configs.RunConfig`: ``seed``, ``run_dir``,
            ``num_threads``, ``logger``).
        run_dir: the run directory, locked by this process (:meth:`open`, or
            :func:`~torchrl_reg.run.start_process`).
        state: what the loop keeps in its checkpoint (:class:`RunState`).

    Keyword Args:
        extra_metrics: added to ``metrics.json``, running and final (e.g. the env, the loss name).

    Construction makes the logger and reads no file; :meth:`start` (once, before the loop) resumes.
    """

    def __init__(self, cfg: Any, run_dir: Path, state: RunState, *, extra_metrics: Mapping[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.state = state
        self.extra_metrics = dict(extra_metrics or {})
        self.logger = make_logger(cfg.logger, self.run_dir, exp_name=self.run_dir.name)
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME
        self.status = "completed"
        self.elapsed_before = 0.0
        self.pbar: ProgressBar | None = None
        self.t_start = time.perf_counter()
        release_at_exit(self.release)  # closed when the loop's process scope ends, whether it finished or failed

    @classmethod
    def open(cls, cfg: Any, state: RunState, **kwargs: Any) -> Run:
        """The run of a validated config in its locked directory (:func:`~torchrl_reg.run.process.open_process`:
        a second writer and a resume with another config are refused; stop signals, threads, seeds)."""
        run_dir = open_process(cfg)
        with released_on_error(run_dir):
            return cls(cfg, run_dir, state, **kwargs)

    # -- start and resume ---------------------------------------------------------------------------
    def start(self, map_location: Any = "cpu") -> bool:
        """Resume the run if its directory holds a checkpoint (:meth:`resume`), else start a clean CSV log; then
        write ``metrics.json`` (running) and the resolved ``config.yaml``, and start the clock. A failure
        releases the directory. Returns whether it resumed."""
        with released_on_error(self.run_dir):
            resumed = has_checkpoint(self.run_dir)
            if resumed:
                self.resume(map_location)
            else:
                truncate_csv_logs(self.run_dir, None)
            self.write_running_metrics()
            write_config(self.run_dir, self.cfg)
        set_loop_active(True)  # from here on, Ctrl-C checkpoints and stops
        self.t_start = time.perf_counter()
        return resumed

    def resume(self, map_location: Any = "cpu") -> None:
        """Restore the state, the RNGs and the elapsed time from ``<run_dir>/checkpoint.pt`` (a damaged one: the
        previous; one of another config: refused, :func:`~torchrl_reg.run.load_checkpoint`; its records bounded by
        the state's ``checkpoint_bytes()`` when it has one), and drop the CSV rows logged after it. A value the state
        refuses (:meth:`RunState.load_state_dict`), an RNG state that does not restore or an elapsed time that is not
        a finite number >= 0 refuses the resume (:class:`~torchrl_reg.run.CheckpointError` naming the entry)."""
        bound = getattr(self.state, "checkpoint_bytes", None)
        # digested as the checkpoint was: without the keys added since that this run leaves unread
        digest = config_digest(self.cfg, keys_added_unread(self.run_dir, self.cfg))
        state = load_checkpoint(self.checkpoint_path, map_location=map_location, config_digest=digest,
                                max_bytes=None if bound is None else bound())
        try:
            self.state.load_state_dict(state)
            set_rng_state(state["rng"])
            self.elapsed_before = check_elapsed(state["elapsed"])
        except torch.OutOfMemoryError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as err:
            detail = f"no entry {err}" if isinstance(err, KeyError) else str(err)
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path} is refused: {detail}; a checkpoint this run wrote never holds that "
                "(a damaged or crafted file). Put back this run's own checkpoint, or start over in a new run directory"
            ) from err
        truncate_csv_logs(self.run_dir, self.state.step)

    # -- during the loop ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds of the whole run, its earlier attempts included."""
        return self.elapsed_before + time.perf_counter() - self.t_start

    def write_running_metrics(self) -> None:
        """``metrics.json`` of a run in progress: ``status: running`` and the state's :meth:`RunState.progress`.

        Written at the start and after every checkpoint, so that a run stopped without a word (SIGKILL, a
        crash) never leaves an earlier run's ``completed`` behind.
        """
        write_json(self.run_dir / "metrics.json", {
            "status": "running", **self.state.progress(), "seed": self.cfg.seed, "run_dir": str(self.run_dir),
            **self.extra_metrics,
        })

    def checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (the state, the RNGs, the elapsed time, the digest of the run's config),
        after the CSV rows it counts as logged are on disk; then the running ``metrics.json``."""
        if self.logger is not None:
            sync_csv_logs(self.logger)
        save_checkpoint(self.checkpoint_path, {
            **self.state.state_dict(), "rng": rng_state(), "elapsed": self.elapsed(), CONFIG_DIGEST_KEY: config_digest(self.cfg),
        })
        self.write_running_metrics()

    def log_scalar(self, key: str, value: float, step: int) -> None:
        """Log one scalar (nothing with ``logger.backend=none``)."""
        if self.logger is not None:
            self.logger.log_scalar(key, value, step=step)

    def progress_bar(self, total: int, initial: int = 0, **kwargs: Any) -> ProgressBar:
        """The run's progress bar (``logger.progress_bar``), closed by :meth:`finish`."""
        self.pbar = ProgressBar(total, initial=initial, enabled=self.cfg.logger.progress_bar, **kwargs)
        return self.pbar

    def stop_due(self) -> bool:
        """Whether a stop was requested (a signal, :func:`~torchrl_reg.run.request_stop`, or
        :func:`~torchrl_reg.run.request_stop_at` reached by the state's step); if so the run is interrupted
        (:meth:`interrupt`) and the loop breaks."""
        if not stop_requested(self.state.step):
            return False
        self.interrupt()
        return True

    def interrupt(self) -> None:
        """Act on a stop: status ``interrupted``, a checkpoint of the state, the stop flag cleared (one stop ends one run)."""
        self.status = "interrupted"
        self.checkpoint()
        clear_stop()

    # -- the end ------------------------------------------------------------------------------------
    def close(self) -> None:
        """The loop is over: the progress bar closed, Ctrl-C interrupts again."""
        if self.pbar is not None:
            self.pbar.close()
        set_loop_active(False)

    def release(self) -> None:
        """Close what the run holds open besides its directory's lock: the progress bar and the logger's files.
        :meth:`finish` calls it; after a failure, the loop's :func:`~torchrl_reg.run.process.process_scope` does.
        Idempotent."""
        if self.pbar is not None:
            self.pbar.close()
        close_logger(self.logger)

    def finish(self, metrics: Mapping[str, Any], *, curve_file: str | None = None, **curve: Any) -> dict[str, Any]:
        """The final ``metrics.json``: ``status``, ``wall_time_s``, ``steps_per_s`` (``metrics["frames"]`` per
        second), ``seed``, ``run_dir``, the extra metrics and ``metrics``; then ``<run_dir>/<curve_file>``, drawn by
        :func:`~torchrl_reg.run.plots.plot_learning_curve` with the arguments ``curve``; then the directory released.
        Returns the metrics."""
        self.close()
        wall_time = self.elapsed()
        final = {
            "status": self.status,
            "wall_time_s": wall_time,
            "steps_per_s": metrics["frames"] / wall_time if wall_time > 0 else math.nan,
            "seed": self.cfg.seed,
            "run_dir": str(self.run_dir),
            **self.extra_metrics,
            **metrics,
        }
        write_json(self.run_dir / "metrics.json", final)
        if curve_file is not None:
            plot_learning_curve(self.run_dir / curve_file, **curve)
        self.release()
        release_run_dir(self.run_dir)
        return final
