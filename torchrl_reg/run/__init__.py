"""The run lifecycle: everything a training loop does around its algorithm, one idea per module.

* :mod:`~torchrl_reg.run.process`: :func:`open_process` (lock the run directory, stop signals, threads, seeds) and
  :func:`start_process` (the same and the device);
* :mod:`~torchrl_reg.run.rundir`: the run directory, its lock, and the checks of a resume against the stored config;
* :mod:`~torchrl_reg.run.checkpoint`: atomic, checksummed, plain-data checkpoints (the envs' part: :mod:`torchrl_reg.envs.state`);
* :mod:`~torchrl_reg.run.files`: every file of a run or sweep directory read and written through it: no link followed,
  regular files only, reads and parsing bounded, whole files written by rename, a full disk named;
* :mod:`~torchrl_reg.run.stop`: the cooperative stop flag and the signals that set it;
* :mod:`~torchrl_reg.run.evaluation`: greedy evaluation episodes;
* :mod:`~torchrl_reg.run.logs` (TorchRL logger, CSV files), :mod:`~torchrl_reg.run.episodes` (training returns),
  :mod:`~torchrl_reg.run.progress` (progress bar), :mod:`~torchrl_reg.run.plots` (``learning_curve.png``),
  :mod:`~torchrl_reg.run.metrics` (``metrics.json``, the summary line);
* :mod:`~torchrl_reg.run.contract`: :class:`Run`, the run-directory contract around any loop, whatever it counts
  (open and lock, resume to a :class:`RunState`, checkpoint it, running metrics, stop requests, the final
  ``metrics.json``, the curve and the lock's release);
* :mod:`~torchrl_reg.run.recipe_run`: :class:`RecipeRun`, the :class:`Run` of a replay-based loop (counters,
  reward checks, episode returns, collector and replay buffer in the checkpoint, evaluation, logs).

The loops are in :mod:`torchrl_reg.loops`, the config schemas in :mod:`torchrl_reg.configs`, envs in
:mod:`torchrl_reg.envs`, collector and replay buffer in :mod:`torchrl_reg.data`.

Contract every recipe keeps (other tools, e.g. ``slurm/``, rely on it):

* A recipe is ``recipes/<name>.py`` with a plain ``train(cfg) -> dict``, callable programmatically,
  returning the final metrics, and ``main()``, its ``@hydra.main`` on ``conf/<name>/<name>.yaml`` (or ``conf/<name>.yaml``); both come
  from :func:`torchrl_reg.loops.recipe_entry` (its ``validate``, then its family's loop).
* Its config schema is a dataclass inheriting its family's schema (:class:`~torchrl_reg.configs.ValueBasedConfig` or
  :class:`~torchrl_reg.configs.ActorCriticConfig`, both :class:`~torchrl_reg.configs.RecipeConfig`; the planning recipe,
  which trains nothing, :class:`~torchrl_reg.configs.PlanningConfig`, with episodes in place
  of frames; every one a :class:`~torchrl_reg.configs.RunConfig`), registered with
  :func:`~torchrl_reg.configs.register_schema` and listed first in ``recipes/conf/<name>/<name>.yaml``'s (or ``recipes/conf/<name>.yaml``'s) defaults; groups
  ``env``, ``loss``, ``collector``, ``buffer``, ``optim``, ``logger`` compose on top of it, so
  unknown keys and ill-typed values are refused by Hydra. ``train`` also accepts a plain dict
  (checked by :func:`~torchrl_reg.configs.structured`) and runs every range check before building anything.
* The run directory is Hydra's output directory (or ``cfg.run_dir`` when given). It holds the
  resolved ``config.yaml``, the CSV logs (``csv/scalars/**.csv``, rows ``step,value``),
  ``checkpoint.pt`` (and the one before it, ``checkpoint.prev.pt``), ``metrics.json`` (``status: running`` while it runs, final at the end),
  ``learning_curve.png`` and, while a run uses it, ``run.lock``.
* :func:`~torchrl_reg.run.rundir.open_run_dir` (in :func:`open_process`) locks the directory before anything in it is
  touched: one writer at a time, a second is refused naming the first (pid, host); the lock of
  a killed run is detected as stale and taken over.
* If the directory holds a checkpoint at start, the run resumes from it: the explicit step
  :meth:`Run.start` (-> :meth:`Run.resume`) that every loop calls before its first
  batch, which then writes ``config.yaml``; without one, CSV rows of an attempt killed before its
  first checkpoint are dropped and the log starts clean, and a directory holding an earlier run's
  logs or final metrics but no checkpoint is refused (:class:`~torchrl_reg.run.rundir.EarlierRunRefused`).
  Checkpoints are written atomically (temp file + ``os.replace``), with the SHA-256 of their
  contents, every ``checkpoint.interval`` frames, at the end, and when a stop is requested; a
  checkpoint that fails its checksum or cannot be read is named and the previous one is used instead; one whose
  records declare more than the run's state can hold, or whose values the run would never make, is refused.
* :func:`request_stop` / :func:`stop_requested`, and :func:`install_stop_signal_handlers`
  (SIGTERM, SIGHUP, SIGINT, SIGUSR1 and SIGUSR2 set the flag); :func:`request_stop_at` stops at a given
  frame count (the planning loop: a number of finished episodes). The loop polls it (:meth:`Run.stop_due`) once
  per collector batch (episode, group of episodes), writes a checkpoint, clears the flag (:func:`clear_stop`) and ``train`` returns
  ``metrics["status"] == "interrupted"``; a normal end gives ``"completed"``. A stop requested
  before ``train`` starts stops it at its first batch. From the command line an interrupted run
  exits with status :data:`EXIT_INTERRUPTED` (75) once its checkpoint is written; one that cannot be resumed
  (``env.backend='vector'``, ``metrics["resumable"]`` false) exits with :data:`EXIT_NOT_RESUMABLE` (1), and
  the sweep's task does not requeue it.
* A checkpoint holds everything needed to continue exactly: networks, target networks,
  optimizer, loss buffers, replay buffer contents, collector carrier and env state (every
  gymnasium env's attributes, ALE's own serialized emulator state), RNG states (torch, numpy,
  python, envs), exploration schedule, counters, episode and evaluation history, all as tensors
  and plain containers: it is loaded with ``torch.load(weights_only=True)`` and nothing in it is
  unpickled, so a crafted checkpoint is refused instead of run, and no class path is stored, so a
  checkpoint still loads after the code that wrote it moved to other modules. On CPU with a fixed seed, a run
  that is stopped or killed and resumed gives the same metrics as the uninterrupted run, and
  nothing is logged twice (CSV rows after the checkpoint's frame count are dropped on resume).
* ``metrics.json`` holds at least ``status``, ``frames``, ``wall_time_s``, ``steps_per_s``,
  ``final_eval_return`` (the last greedy evaluation's mean return), ``train_return_mean`` (mean of the last 100
  training episodes, raw env reward; ``final_return`` in run directories written before that name: read either
  with :func:`read_metric`), ``episodes``, ``eval_frames`` and ``eval_returns`` (every field: docs/recipes.rst).
"""
from __future__ import annotations

from torchrl_reg.run.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    UntrustedCheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from torchrl_reg.run.contract import Run, RunState
from torchrl_reg.run.evaluation import deterministic_actor, evaluate
from torchrl_reg.run.logs import truncate_csv_logs
from torchrl_reg.run.metrics import read_metric, report_summary
from torchrl_reg.run.process import open_process, start_process
from torchrl_reg.run.recipe_run import RecipeRun, crossed
from torchrl_reg.run.rundir import RunDirLocked
from torchrl_reg.run.stop import (
    EXIT_INTERRUPTED,
    EXIT_NOT_RESUMABLE,
    clear_stop,
    exit_if_interrupted,
    install_stop_signal_handlers,
    request_stop,
    request_stop_at,
    stop_requested,
)

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_RESUMABLE",
    "RecipeRun",
    "Run",
    "RunDirLocked",
    "RunState",
    "UntrustedCheckpointError",
    "clear_stop",
    "crossed",
    "deterministic_actor",
    "evaluate",
    "exit_if_interrupted",
    "install_stop_signal_handlers",
    "load_checkpoint",
    "open_process",
    "read_checkpoint",
    "read_metric",
    "report_summary",
    "request_stop",
    "request_stop_at",
    "save_checkpoint",
    "start_process",
    "stop_requested",
    "truncate_csv_logs",
]
