"""Shared building blocks of the training loops (:mod:`torchrl_reg.loops`) and recipes (``recipes/<name>.py``).

The training loops live in :mod:`torchrl_reg.loops` (one per family, CleanRL-style: read them top
to bottom); this package only builds the parts, one idea per module: config schemas and checks
(``config``), env presets (``envs``; networks are in :mod:`torchrl_reg.modules`), collector and replay buffer (``data``), process set-up
(``runtime``), evaluation (``evaluation``), loggers (``loggers``), checkpoints (``checkpoint``),
stop requests (``stop``), and :class:`RecipeRun` (``run``), the bookkeeping around a replay-based
loop (counters, reward checks, episode returns, evaluation, logs, checkpoints, resume, stop, final
metrics).

Contract every recipe keeps (other tools, e.g. ``slurm/``, rely on it):

* A recipe is ``recipes/<name>.py`` with a plain ``train(cfg) -> dict``, callable programmatically,
  returning the final metrics, and ``main()``, its ``@hydra.main`` on ``conf/<name>.yaml``; both come
  from :func:`torchrl_reg.loops.recipe_entry` (its ``validate``, then its family's loop).
* Its config schema is a dataclass inheriting its family's schema (:class:`ValueBasedConfig` or
  :class:`ActorCriticConfig`, both :class:`RecipeConfig`), registered with
  :func:`register_schema` and listed first in ``recipes/conf/<name>.yaml``'s defaults; groups
  ``env``, ``loss``, ``collector``, ``buffer``, ``optim``, ``logger`` compose on top of it, so
  unknown keys and ill-typed values are refused by Hydra. ``train`` also accepts a plain dict
  (checked by :func:`structured`) and runs every range check before building anything.
* The run directory is Hydra's output directory (or ``cfg.run_dir`` when given). It holds the
  resolved ``config.yaml``, the CSV logs (``csv/scalars/**.csv``, rows ``step,value``),
  ``checkpoint.pt`` (and the one before it, ``checkpoint.prev.pt``), ``metrics.json`` (``status: running`` while it runs, final at the end),
  ``learning_curve.png`` and, while a run uses it, ``run.lock``.
* :func:`open_run_dir` (in :func:`start_process`) locks the directory before anything in it is
  touched: one writer at a time, a second is refused naming the first (pid, host); the lock of
  a killed run is detected as stale and taken over.
* If the directory holds a checkpoint at start, the run resumes from it: the explicit step
  :meth:`RecipeRun.start` (-> :meth:`RecipeRun.resume`) that every loop calls before its first
  batch, which then writes ``config.yaml``; without one, CSV rows of an attempt killed before its
  first checkpoint are dropped and the log starts clean, and a directory holding an earlier run's
  logs or final metrics but no checkpoint is refused (:class:`~torchrl_reg.recipe_utils.rundir.EarlierRunRefused`).
  Checkpoints are written atomically (temp file + ``os.replace``), with the SHA-256 of their
  contents, every ``checkpoint.interval`` frames, at the end, and when a stop is requested; a
  checkpoint that fails its checksum or cannot be read is named and the previous one is used instead.
* :func:`request_stop` / :func:`stop_requested`, and :func:`install_stop_signal_handlers`
  (SIGTERM, SIGHUP, SIGINT, SIGUSR1 and SIGUSR2 set the flag); :func:`request_stop_at` stops at a given
  frame count. The loop polls ``stop_requested(frames)`` once per collector batch, writes a
  checkpoint, clears the flag (:func:`clear_stop`) and ``train`` returns
  ``metrics["status"] == "interrupted"``; a normal end gives ``"completed"``. A stop requested
  before ``train`` starts stops it at its first batch. From the command line an interrupted run
  exits with status :data:`EXIT_INTERRUPTED` (75) once its checkpoint is written.
* A checkpoint holds everything needed to continue exactly: networks, target networks,
  optimizer, loss buffers, replay buffer contents, collector carrier and env state (every
  gymnasium env's attributes, ALE's own serialized emulator state), RNG states (torch, numpy,
  python, envs), exploration schedule, counters, episode and evaluation history, all as tensors
  and plain containers: it is loaded with ``torch.load(weights_only=True)`` and nothing in it is
  unpickled, so a crafted checkpoint is refused instead of run. On CPU with a fixed seed, a run
  that is stopped or killed and resumed gives the same metrics as the uninterrupted run, and
  nothing is logged twice (CSV rows after the checkpoint's frame count are dropped on resume).
* ``metrics.json`` holds at least ``status``, ``frames``, ``wall_time_s``, ``steps_per_s``,
  ``final_return`` (mean of the last 100 training episodes, raw env reward), ``episodes``,
  ``eval_frames`` and ``eval_returns``.
"""
from __future__ import annotations

from torchrl_reg.run.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    UntrustedCheckpointError,
    has_checkpoint,
    collector_state,
    load_checkpoint,
    load_collector_state,
    load_replay_buffer_state,
    replay_buffer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from torchrl_reg.recipe_utils.config import (
    BufferConfig,
    CheckpointConfig,
    CollectorConfig,
    EnvConfig,
    EvalConfig,
    ExplorationConfig,
    LoggerConfig,
    NetworkConfig,
    OptimConfig,
    QOptimConfig,
    RecipeConfig,
    BoltzmannValueBasedConfig,
    ValueBasedConfig,
    ValueBasedLossConfig,
    ActorCriticConfig,
    ActorCriticLossConfig,
    CONTROL_FAMILIES,
    LOSS_FUNCTIONS,
    STABLE_TAU,
    check_config,
    TARGET_UPDATES,
    arguments_of,
    check_loss_config,
    default_of,
    recipe_schema,
    check_group_choice,
    compose_config,
    config_help,
    register_group_choices,
    register_schema,
    structured,
    validate_recipe_config,
    validate_actor_critic_config,
    validate_value_based_config,
)
from torchrl_reg.modules.exploration import linear_schedule
from torchrl_reg.data import TRANSITION_KEYS, make_collector, make_replay_buffer, sample_minibatches
from torchrl_reg.envs import (
    NATIVE_VECTOR_ENVS,
    VectorCartPole,
    check_action_space,
    check_box_action_spec,
    check_discrete_action_spec,
    get_env_state,
    make_env,
    make_single_env,
    make_vector_env,
    num_actions,
    set_env_state,
)
from torchrl_reg.run.evaluation import deterministic_actor, evaluate
from torchrl_reg.run.episodes import EpisodeTracker, mean_last
from torchrl_reg.run.logs import make_logger, truncate_csv_logs
from torchrl_reg.run.metrics import report_summary, summary_line, write_json
from torchrl_reg.run.plots import plot_learning_curve
from torchrl_reg.run.progress import ProgressBar
from torchrl_reg.run.recipe_run import RecipeRun, check_finite_rewards
from torchrl_reg.run.rundir import RunDirLocked, open_run_dir
from torchrl_reg.run.process import seed_everything, start_process
from torchrl_reg.run.recipe_run import crossed
from torchrl_reg.run.rundir import resolve_run_dir
from torchrl_reg.validation import select_device
from torchrl_reg.run.stop import (
    EXIT_INTERRUPTED,
    clear_stop,
    exit_if_interrupted,
    install_stop_signal_handlers,
    request_stop,
    request_stop_at,
    stop_requested,
)

__all__ = [
    "ActorCriticConfig",
    "ActorCriticLossConfig",
    "BufferConfig",
    "CONTROL_FAMILIES",
    "CHECKPOINT_NAME",
    "CheckpointError",
    "EXIT_INTERRUPTED",
    "CheckpointConfig",
    "CollectorConfig",
    "EnvConfig",
    "EpisodeTracker",
    "EvalConfig",
    "ExplorationConfig",
    "LoggerConfig",
    "NetworkConfig",
    "OptimConfig",
    "ProgressBar",
    "QOptimConfig",
    "RecipeRun",
    "RecipeConfig",
    "RunDirLocked",
    "UntrustedCheckpointError",
    "LOSS_FUNCTIONS",
    "TARGET_UPDATES",
    "STABLE_TAU",
    "TRANSITION_KEYS",
    "BoltzmannValueBasedConfig",
    "ValueBasedConfig",
    "ValueBasedLossConfig",
    "check_group_choice",
    "check_action_space",
    "check_box_action_spec",
    "check_discrete_action_spec",
    "check_finite_rewards",
    "clear_stop",
    "collector_state",
    "compose_config",
    "config_help",
    "deterministic_actor",
    "evaluate",
    "exit_if_interrupted",
    "get_env_state",
    "has_checkpoint",
    "install_stop_signal_handlers",
    "load_checkpoint",
    "load_collector_state",
    "load_replay_buffer_state",
    "linear_schedule",
    "make_collector",
    "make_env",
    "make_logger",
    "make_replay_buffer",
    "make_single_env",
    "make_vector_env",
    "NATIVE_VECTOR_ENVS",
    "VectorCartPole",
    "mean_last",
    "num_actions",
    "open_run_dir",
    "plot_learning_curve",
    "register_group_choices",
    "register_schema",
    "replay_buffer_state",
    "request_stop",
    "request_stop_at",
    "resolve_run_dir",
    "crossed",
    "check_config",
    "arguments_of",
    "check_loss_config",
    "default_of",
    "recipe_schema",
    "rng_state",
    "sample_minibatches",
    "save_checkpoint",
    "seed_everything",
    "select_device",
    "set_env_state",
    "set_rng_state",
    "start_process",
    "stop_requested",
    "structured",
    "report_summary",
    "summary_line",
    "truncate_csv_logs",
    "validate_actor_critic_config",
    "validate_recipe_config",
    "validate_value_based_config",
    "write_json",
]
