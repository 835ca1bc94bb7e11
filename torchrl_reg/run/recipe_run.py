"""Bookkeeping of a replay-based recipe run, so that each loop shows only its algorithm.

:class:`RecipeRun` is a :class:`~torchrl_reg.run.contract.Run` (the run-directory contract: resume,
checkpoints, running metrics, stop requests, the final ``metrics.json``) whose state is what a replay-based
loop does around its updates: counting frames and updates, checking and clipping rewards, tracking episodes,
the collector and the replay buffer, periodic greedy evaluation, logging (training return, the loss outputs
averaged since the last log, any extra scalars), the progress bar over frames and ``learning_curve.png``. A
loop reads::

    run = RecipeRun(cfg, run_dir, collector=collector, replay_buffer=rb, greedy=greedy, device=device,
                    stateful={"loss_module": loss, "policy": policy, "optimizer": optim},
                    title="...", extra_metrics={...})
    run.start()                                   # resume from checkpoint.pt if there is one; config.yaml
    for data in collector:
        batch_frames = run.observe(data)          # frames, episodes, reward checks / clipping
        rb.extend(...)
        for batch in sample_minibatches(rb, run.updates_due()):
            out = update(batch)
            run.record(out)                       # one update done, its outputs logged later
        if run.end_batch(batch_frames, epsilon=...):   # eval, logs, progress, checkpoint, stop
            break
    return run.finish()
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer

from torchrl_reg.run.checkpoint import (
    _tensor_bytes,
    collector_state,
    load_collector_state,
    load_replay_buffer_state,
    replay_buffer_state,
)
from torchrl_reg.run.contract import Run
from torchrl_reg.run.episodes import EpisodeTracker, mean_last
from torchrl_reg.run.evaluation import evaluate
from torchrl_reg.run.files import descriptor_path
from torchrl_reg.run.logs import read_csv_scalar
from torchrl_reg.run.metrics import return_metrics
from torchrl_reg.run.rundir import StorageRefused, hold_run_subfolder
from torchrl_reg.validation import check_count, check_finite_tensors, check_numbers, check_optimizer_state

__all__ = ["RecipeRun", "check_finite_rewards", "command_line_keys", "crossed", "preset_line", "replay_scratch_dir",
           "transition_bytes"]

logger = logging.getLogger(__name__)


def crossed(interval: int, frames: int, batch_frames: int) -> bool:
    """Whether the last batch of ``batch_frames`` frames crossed a multiple of ``interval`` frames (0: never)."""
    return interval > 0 and frames // interval > (frames - batch_frames) // interval


def check_finite_rewards(data: TensorDictBase, env_name: str, frames: int) -> None:
    """Raise ``ValueError`` naming the env and the frames if a collected reward is NaN or inf."""
    reward = data.get(("next", "reward"))
    if not bool(torch.isfinite(reward).all()):
        bad = reward[~torch.isfinite(reward)][0].item()
        raise ValueError(
            f"env {env_name!r} returned a non-finite reward ({bad}) within frames "
            f"{frames}-{frames + data.numel()}; rewards must be finite numbers"
        )


#: The settings a preset fixes that matter most when ``env.name`` names an env the preset was not
#: written for (any gymnasium id runs with the env option's settings, CartPole's by default).
PRESET_KEYS = (
    "collector.num_envs", "collector.frames_per_batch", "collector.total_frames", "buffer.size",
    "buffer.batch_size", "optim.lr", "optim.learning_starts", "eval.interval", "eval.max_steps",
)


#: Logged before a compiled run's first update in a process (``compile=true``), which waits for torch.compile.
COMPILING = ("compiling the update (torch.compile, first update only: up to about a minute on a CPU, "
             "seconds once its cache is warm)")


def preset_line(cfg: Any, preset_id: str | None = None, given: Iterable[str] = ()) -> str:
    """One line naming the env and the preset settings the run uses (logged at its start), apart from those the
    command line set.

    ``preset_id`` is the gymnasium id the chosen env preset was made for (the recipe's command line reads it from
    Hydra: :func:`~torchrl_reg.configs.compose.env_preset_id`): the line
    says whether ``env.name`` is that id or inherits the preset; unknown (``None``), it says both cases.
    ``given``: the keys set on the command line (:func:`command_line_keys`), listed as such."""
    given = set(given)
    preset, command_line = [], []
    for key in PRESET_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            (command_line if key in given else preset).append(f"{key}={value}")
    if preset_id is None:
        source = "a gymnasium id without a preset of its own inherits the env group's"
    elif preset_id == cfg.env.name:
        source = f"the env preset made for {preset_id}"
    else:
        source = f"{cfg.env.name} has no preset of its own: it inherits the env preset made for {preset_id}"
    head = f"env.name={cfg.env.name} (family {cfg.env.family}) runs with"
    if command_line and not preset:
        return f"{head} these settings from the command line: {', '.join(command_line)} ({source})"
    return (f"{head} these preset settings: {', '.join(preset)} ({source}; override any on the command line)"
            + (f", and these from the command line: {', '.join(command_line)}" if command_line else ""))


def command_line_keys() -> frozenset[str]:
    """The keys the command line set (Hydra's task overrides, ``+``/``~`` dropped); none outside Hydra's command
    line (``train(cfg)``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return frozenset()
    return frozenset(override.split("=", 1)[0].lstrip("+~") for override in HydraConfig.get().overrides.task)


def transition_bytes(env: Any) -> int:
    """The bytes of one transition of ``env`` (one env copy's step, next observation included), as its specs size it."""
    step = env.fake_tensordict()  # one transition of every env copy
    return sum(v.numel() * v.element_size() for v in step.values(True, True)) // max(step.numel(), 1)


def replay_scratch_dir(cfg: Any, run_dir: Path, env: Any) -> str | None:
    """Where a run's memory-mapped replay storage (``buffer.storage=memmap``) keeps its files: ``<run_dir>/replay``,
    made from the locked run directory's held descriptor through no symlink and named by that descriptor
    (:func:`~torchrl_reg.run.rundir.hold_run_subfolder`, :func:`~torchrl_reg.run.files.descriptor_path`), so that
    TorchRL, which creates its files by path at the first ``extend``, writes into the folder that was checked even
    if ``replay`` is swapped for a link meanwhile. ``None`` for another storage (no file).

    Refused first (:class:`~torchrl_reg.run.rundir.StorageRefused`, nothing made) when the storage cannot fit: its
    files (``buffer.size`` transitions of ``env``, each at least a frame with ``buffer.dedup_frames``) larger than
    the whole filesystem, or what the run fills (``min(buffer.size, collector.total_frames)`` transitions) larger
    than its free space: a memory map that runs out of disk ends the process with SIGBUS, not an error."""
    if cfg.buffer.storage != "memmap":
        return None
    stack = cfg.env.frame_stack if cfg.buffer.get("dedup_frames") else 1
    row = max(transition_bytes(env) // (2 * stack) if stack > 1 else transition_bytes(env), 1)
    disk = os.statvfs(run_dir)
    total, free = disk.f_blocks * disk.f_frsize, disk.f_bavail * disk.f_frsize
    capacity, filled = cfg.buffer.size * row, min(cfg.buffer.size, cfg.collector.total_frames) * row
    if capacity > total or filled > free:
        what = (f"its files hold {cfg.buffer.size} transitions of at least {row} bytes, {capacity / 1e9:.3g} GB, more than "
                f"the whole filesystem ({total / 1e9:.3g} GB)" if capacity > total else
                f"the run fills {min(cfg.buffer.size, cfg.collector.total_frames)} transitions of at least {row} bytes, "
                f"{filled / 1e9:.3g} GB, and the filesystem has {free / 1e9:.3g} GB free")
        raise StorageRefused(
            f"buffer.storage=memmap keeps the replay buffer in files under {run_dir / 'replay'}: {what} (buffer.size="
            f"{cfg.buffer.size}). Lower buffer.size, use buffer.storage=tensor, or choose a run_dir on a larger disk"
        )
    return descriptor_path(hold_run_subfolder(run_dir, "replay"))


class RecipeRun(Run):
    """Counters, logs, evaluation, checkpoints and final metrics of one recipe run: a
    :class:`~torchrl_reg.run.contract.Run` whose state (:class:`~torchrl_reg.run.contract.RunState`, its step the
    frames) is its own.

    Args:
        cfg: the validated recipe config (a :class:`~torchrl_reg.configs.RecipeConfig`).
        run_dir: the run directory.

    Keyword Args:
        collector: the TorchRL collector (its carrier and env state go in the checkpoint).
        replay_buffer: the replay buffer (its contents and sampler state go in the checkpoint).
        greedy: ``observation batch -> action batch`` used by the evaluation episodes.
        device: where evaluation observations go.
        stateful: objects with ``state_dict``/``load_state_dict`` saved in the checkpoint under
            their names (loss module with its buffers, policy, optimizer, ...).
        title: title of ``learning_curve.png``.
        extra_metrics: added to ``metrics.json`` (e.g. the loss name), with the env's name.
        curve_scalars: logged training scalars drawn beside the return in ``learning_curve.png``, key ->
            axis label (read back from the CSV log, so a resumed run draws the whole run; nothing without
            the CSV backend).
        preset_id: the gymnasium id the chosen env option was made for, named in the preset line logged at the
            start (:func:`preset_line`); ``None`` when unknown (``train(cfg)``: the chosen option is not recorded).
        compiled: whether the loop compiles the update (the first update then waits for the compiler, and a log line
            says so); ``None``: ``cfg.compile``.

    Construction builds nothing and reads no file; :meth:`start` (called once, before the loop)
    resumes from the run directory's checkpoint when it has one, else drops the CSV
    rows of an earlier attempt killed before its first checkpoint (the log starts clean), and writes
    ``config.yaml``. :meth:`finish` releases the run directory's lock
    (:func:`~torchrl_reg.run.rundir.open_run_dir`).
    """

    def __init__(
        self,
        cfg: Any,
        run_dir: Path,
        *,
        collector: Collector,
        replay_buffer: ReplayBuffer,
        greedy: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        stateful: Mapping[str, Any],
        title: str,
        extra_metrics: Mapping[str, Any] | None = None,
        curve_scalars: Mapping[str, str] | None = None,
        preset_id: str | None = None,
        compiled: bool | None = None,
    ) -> None:
        super().__init__(cfg, run_dir, self, extra_metrics={"env": cfg.env.name, **(extra_metrics or {})})
        self.preset_id = preset_id
        self.collector = collector
        self.replay_buffer = replay_buffer
        self.greedy = greedy
        self.device = device
        self.stateful = dict(stateful)
        self.title = title
        self.curve_scalars = dict(curve_scalars or {})
        self.tracker = EpisodeTracker(cfg.collector.num_envs)
        self.frames = self.updates = 0
        self.eval_frames: list[int] = []
        self.eval_returns: list[float] = []
        self.logged_episodes = 0
        # Loss outputs since the last log line, kept as a list and summed only when logged or
        # checkpointed (adding every entry at every update costs more than the update's
        # bookkeeping); a resumed run carries the interrupted one's values, stacked per key, so
        # that its logged means are bit-identical to an uninterrupted run's.
        self.pending_outputs: list[TensorDictBase] = []
        self.carried_outputs: dict[str, torch.Tensor] = {}
        self.compiled = bool(cfg.get("compile")) if compiled is None else compiled
        self.announced_compile = False  # COMPILING is logged before this process's first update

    # -- start, and the state its checkpoints hold ----------------------------------------------------
    def start(self) -> bool:
        """Start the run (:meth:`Run.start <torchrl_reg.run.contract.Run.start>`: resume, ``config.yaml``), log
        the preset settings in use and start the progress bar over frames. Returns whether it resumed."""
        resumed = super().start(map_location=self.device)
        logging.getLogger("torchrl_reg.recipes").info(preset_line(self.cfg, self.preset_id, command_line_keys()))
        collector = self.cfg.collector
        if collector.total_frames % collector.frames_per_batch:
            # TorchRL collects whole batches: say how many frames the run really does (metrics["frames"]).
            whole = -(-collector.total_frames // collector.frames_per_batch) * collector.frames_per_batch
            logger.warning(
                "collector.total_frames=%d is not a multiple of collector.frames_per_batch=%d: the run collects "
                "%d frames (whole batches); metrics.json records that number as frames",
                collector.total_frames, collector.frames_per_batch, whole,
            )
        self.progress_bar(collector.total_frames, initial=self.frames)
        return resumed

    @property
    def step(self) -> int:
        """The frames collected: the step of the CSV rows and of ``request_stop_at``."""
        return self.frames

    def progress(self) -> dict[str, Any]:
        return {"frames": self.frames, "updates": self.updates}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: counters, ``stateful`` objects, replay buffer, collector and
        env state, episode and evaluation history, the loss outputs not yet logged."""
        return {
            "frames": self.frames,
            "updates": self.updates,
            **{name: obj.state_dict() for name, obj in self.stateful.items()},
            "replay_buffer": replay_buffer_state(self.replay_buffer),
            "collector": collector_state(self.collector),
            "tracker": self.tracker.state_dict(),
            "eval_frames": self.eval_frames,
            "eval_returns": self.eval_returns,
            "logged_episodes": self.logged_episodes,
            "outputs_since_log": self.outputs_since_log(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s entries, each checked as the run makes it (``ValueError`` naming the entry):
        frames a whole number of batches within ``collector.total_frames``, no more updates than those frames are
        owed, finite weights and optimizer state (where the freshly built objects' are; an optimizer's second moments >= 0 and its
        step counts whole numbers up to the run's updates), finite rewards and
        observations in the replay buffer and collector, and the episode and evaluation history in range."""
        cfg = self.cfg
        batch = cfg.collector.frames_per_batch
        whole = -(-cfg.collector.total_frames // batch) * batch  # a completed run's frames: whole batches
        frames = check_count("frames", state["frames"], 0)
        if frames % batch or frames > whole:
            raise ValueError(f"frames must be a multiple of collector.frames_per_batch={batch} in [0, {whole}], got {frames}")
        owed = max(frames - cfg.optim.learning_starts, 0) // cfg.optim.frames_per_update
        updates = check_count("updates", state["updates"], 0)
        if updates > owed:
            raise ValueError(f"updates must be at most the {owed} updates {frames} frames are owed, got {updates}")
        for name, obj in self.stateful.items():
            check_finite_tensors(name, state[name], obj.state_dict())
            if isinstance(obj, torch.optim.Optimizer):  # second moments >= 0, step counts within the run's updates
                check_optimizer_state(name, state[name], updates)
        episodes = len(check_numbers("tracker.returns", state["tracker"]["returns"]))
        check_numbers("tracker.end_frames", state["tracker"]["end_frames"], 1, frames, integer=True)
        evaluations = len(check_numbers("eval_returns", state["eval_returns"]))
        check_numbers("eval_frames", state["eval_frames"], 0, frames, integer=True, length=evaluations)
        check_count("logged_episodes", state["logged_episodes"], 0)
        if state["logged_episodes"] > episodes:
            raise ValueError(f"logged_episodes must be at most the {episodes} finished episodes, got {state['logged_episodes']}")
        self.frames, self.updates = frames, updates
        for name, obj in self.stateful.items():
            obj.load_state_dict(state[name])
        load_replay_buffer_state(self.replay_buffer, state["replay_buffer"])
        load_collector_state(self.collector, state["collector"])
        if self.collector._frames != frames:
            raise ValueError(f"collector.frames must be the run's {frames} frames, got {self.collector._frames}")
        self.tracker.load_state_dict(state["tracker"])
        self.eval_frames, self.eval_returns = list(state["eval_frames"]), list(state["eval_returns"])
        self.logged_episodes, self.carried_outputs = state["logged_episodes"], state["outputs_since_log"]

    def checkpoint_bytes(self) -> int:
        """The most bytes a checkpoint of this run can hold (its records are refused past it before they are
        inflated): four times what the config implies (every stateful object's tensors, an optimizer's twice its
        parameters for its moments, the replay buffer's capacity of transitions as the env's specs size them, the
        episode history of ``collector.total_frames`` frames), plus 256 MiB for the env states and the index."""
        tensors = 0
        for obj in self.stateful.values():
            tensors += _tensor_bytes(obj.state_dict())
            if isinstance(obj, torch.optim.Optimizer):
                tensors += 2 * sum(p.numel() * p.element_size() for group in obj.param_groups for p in group["params"])
        transition = transition_bytes(self.collector.env)
        history = 3 * 8 * self.cfg.collector.total_frames  # a return, a length and an end frame per episode at most
        return 4 * (tensors + self.cfg.buffer.size * transition + history) + (256 << 20)

    # -- the loop ---------------------------------------------------------------------------------
    def observe(self, data: TensorDictBase) -> int:
        """Account for a collected batch: checks rewards, tracks episodes (raw reward), clips the
        reward in place if ``env.reward_clip`` is set, advances the frame count; returns its frames."""
        batch_frames = data.numel()
        check_finite_rewards(data, self.cfg.env.name, self.frames)
        self.tracker.update(data, self.frames)
        if self.cfg.env.reward_clip is not None:
            data.get(("next", "reward")).clamp_(-self.cfg.env.reward_clip, self.cfg.env.reward_clip)
        self.frames += batch_frames
        return batch_frames

    def updates_due(self) -> int:
        """Updates owed after this batch: one per ``optim.frames_per_update`` frames after ``learning_starts``."""
        optim = self.cfg.optim
        due = max(max(self.frames - optim.learning_starts, 0) // optim.frames_per_update - self.updates, 0)
        if due and not self.announced_compile:
            self.announced_compile = True
            if self.compiled:  # the first update compiles: the progress bar stands still meanwhile
                log = logging.getLogger("torchrl_reg.recipes")
                self.pbar.log(log, COMPILING) if self.pbar is not None else log.info(COMPILING)
        return due

    def record(self, out: TensorDictBase) -> None:
        """Count one update and keep its outputs (detached, as :func:`torchrl_reg.objectives.make_update` returns them) for the next log."""
        self.updates += 1
        self.pending_outputs.append(out)

    def outputs_since_log(self) -> dict[str, torch.Tensor]:
        """Every loss output since the last log line, stacked per key."""
        values = {key: [value] for key, value in self.carried_outputs.items()}
        if self.pending_outputs:
            for key in self.pending_outputs[0].keys():
                values.setdefault(key, []).append(torch.stack([out.get(key) for out in self.pending_outputs]))
        return {key: torch.cat(parts) for key, parts in values.items()}

    def evaluate(self) -> None:
        """Greedy evaluation episodes (``cfg.eval``), logged under ``eval/return``."""
        cfg = self.cfg
        returns = evaluate(
            cfg.env, self.greedy, episodes=cfg.eval.episodes, seed=cfg.seed + 1_000_000,
            epsilon=cfg.eval.epsilon, max_steps=cfg.eval.max_steps, device=self.device,
        )
        self.eval_frames.append(self.frames)
        self.eval_returns.append(sum(returns) / len(returns))
        self.log_scalar("eval/return", self.eval_returns[-1], step=self.frames)

    def end_batch(self, batch_frames: int, **scalars: float) -> bool:
        """Evaluate, log (with ``scalars`` under ``train/``), advance the progress bar, checkpoint on
        schedule; on a stop request write a checkpoint and return ``True`` (the loop breaks)."""
        cfg, frames = self.cfg, self.frames
        if crossed(cfg.eval.interval, frames, batch_frames):
            self.evaluate()
        if crossed(cfg.logger.interval, frames, batch_frames) and self.logger is not None:
            new_returns = self.tracker.returns[self.logged_episodes:]
            if new_returns:
                self.logger.log_scalar("train/episode_return", sum(new_returns) / len(new_returns), step=frames)
            self.logged_episodes = len(self.tracker.returns)
            for key, values in self.outputs_since_log().items():
                self.logger.log_scalar(f"train/{key}", float(values.mean()), step=frames)
            self.pending_outputs, self.carried_outputs = [], {}
            for key, value in scalars.items():
                self.logger.log_scalar(f"train/{key}", float(value), step=frames)
        self.pbar.update(batch_frames, ret=mean_last(self.tracker.returns), **scalars)
        if self.stop_due():
            return True
        if crossed(cfg.checkpoint.interval, frames, batch_frames):
            self.checkpoint()
        return False

    def shutdown_collector(self) -> None:
        """Shut the collector down (its envs closed), once."""
        collector = getattr(self, "collector", None)  # None: the run failed while it was being constructed
        if collector is not None and not getattr(self, "_collector_shut", False):
            self._collector_shut = True
            collector.shutdown()

    def release(self) -> None:
        """:meth:`Run.release <torchrl_reg.run.contract.Run.release>` and the collector shut down (after a failure
        in the loop, its envs are closed too)."""
        try:
            self.shutdown_collector()
        finally:
            super().release()

    def finish(self, **extra_metrics: Any) -> dict[str, Any]:
        """Final evaluation and checkpoint (completed runs), ``metrics.json`` (with ``extra_metrics``)
        and ``learning_curve.png``; returns the metrics."""
        self.close()
        cfg = self.cfg
        completed = self.status == "completed"
        if completed and cfg.eval.episodes > 0 and (not self.eval_frames or self.eval_frames[-1] != self.frames):
            self.evaluate()
        if completed:
            self.checkpoint()
        self.shutdown_collector()
        metrics = {
            "frames": self.frames,
            "updates": self.updates,
            **return_metrics(self.tracker.returns, self.eval_returns),  # final_eval_return, train_return_mean
            "episodes": len(self.tracker.returns),
            "eval_frames": self.eval_frames,
            "eval_returns": self.eval_returns,
            **extra_metrics,
        }
        if not completed:
            # A stopped run says whether its checkpoint can be continued: env.backend='vector' cannot (ale-py's
            # vector env cannot save its emulators; open_run_dir refuses the resume), so no scheduler should
            # requeue it (exit_if_interrupted, the sweep's task).
            metrics["resumable"] = cfg.env.get("backend", "wrappers") != "vector"
        panels = [(label, *read_csv_scalar(self.run_dir, f"train/{key}")) for key, label in self.curve_scalars.items()]
        return super().finish(
            metrics, curve_file="learning_curve.png", train_frames=self.tracker.end_frames,
            train_returns=self.tracker.returns, eval_frames=self.eval_frames, eval_returns=self.eval_returns,
            title=self.title, panels=[p for p in panels if p[1]],
        )
