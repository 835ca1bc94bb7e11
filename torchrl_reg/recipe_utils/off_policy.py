"""The replay-buffer training loop shared by the actor-critic style recipes (``iq.py``, ``sac.py``).

A recipe builds its env, its exploration policy and its loss, writes its own one-step ``update``
(the algorithm), and hands them to :func:`run_off_policy`, which does what every off-policy
recipe does around it and keeps the run-directory contract of :mod:`torchrl_reg.recipe_utils`:
collect ``frames_per_batch`` frames, store them, do one ``update`` per ``optim.frames_per_update``
frames collected after ``optim.learning_starts``, evaluate, log, checkpoint, resume, stop on request.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_reg.recipe_utils.checkpoint import (
    CHECKPOINT_NAME,
    collector_state,
    load_checkpoint,
    load_collector_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from torchrl_reg.recipe_utils.config import check_choice, validate_recipe_config
from torchrl_reg.recipe_utils.data import TRANSITION_KEYS, make_collector, make_replay_buffer, sample_minibatches
from torchrl_reg.recipe_utils.evaluation import evaluate
from torchrl_reg.recipe_utils.loggers import (
    EpisodeTracker,
    ProgressBar,
    make_logger,
    mean_last,
    plot_learning_curve,
    truncate_csv_logs,
    write_json,
)
from torchrl_reg.recipe_utils.stop import clear_stop, stop_requested

__all__ = ["CONTROL_FAMILIES", "check_control_config", "crossed", "deterministic_actor", "run_off_policy"]

#: Env families with Box actions (``classic`` for Pendulum-v1).
CONTROL_FAMILIES = ("classic", "mujoco")


def check_control_config(cfg: DictConfig) -> None:
    """The shared checks of :func:`validate_recipe_config` plus those of Polyak-averaged control recipes."""
    validate_recipe_config(cfg)
    check_choice("env.family", cfg.env.family, CONTROL_FAMILIES)
    check_choice("network.kind", cfg.network.kind, ("mlp",))
    if cfg.optim.target_update_interval != cfg.optim.frames_per_update:
        raise ValueError(
            "the target networks are Polyak-averaged after every update: optim.target_update_interval "
            f"must equal optim.frames_per_update={cfg.optim.frames_per_update}, "
            f"got optim.target_update_interval={cfg.optim.target_update_interval}"
        )


def deterministic_actor(policy: Callable[[TensorDictBase], TensorDictBase]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Observation batch -> action batch of a TorchRL actor in its deterministic mode (for evaluation)."""

    @torch.no_grad()
    def act(obs: torch.Tensor) -> torch.Tensor:
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            return policy(TensorDict({"observation": obs}, batch_size=obs.shape[:1]))["action"]

    return act


def crossed(interval: int, frames: int, batch_frames: int) -> bool:
    """Whether the last batch crossed a multiple of ``interval`` frames (0: never)."""
    return interval > 0 and frames // interval > (frames - batch_frames) // interval


def run_off_policy(
    cfg: DictConfig,
    *,
    run_dir: Path,
    env: EnvBase,
    policy: Callable,
    update: Callable[[TensorDictBase], TensorDictBase],
    act: Callable[[torch.Tensor], torch.Tensor],
    stateful: Mapping[str, Any],
    device: torch.device,
    title: str,
    extra_metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train with ``update`` on replayed transitions collected by ``policy``; returns the final metrics.

    Args:
        cfg: a validated :class:`~torchrl_reg.recipe_utils.config.RecipeConfig` (collector, buffer,
            optim schedule, eval, checkpoint and logger groups are read here).
        run_dir: the run directory (config, CSV logs, checkpoint, metrics, learning curve).
        env: the TorchRL env from :func:`~torchrl_reg.recipe_utils.envs.make_env`.
        policy: the exploration policy run by the collector.
        update: one gradient step (and target-network update) on a minibatch; returns the loss
            module's output, detached, whose scalars are averaged and logged as ``train/<key>``.
        act: the evaluation policy, observation batch -> action batch.
        stateful: everything else that changes during training and has ``state_dict`` /
            ``load_state_dict`` (loss module, optimizer, policy), saved in the checkpoint.
        device: where the policy runs and the batches are stored.
        title: the learning-curve title.
        extra_metrics: added to the returned metrics and ``metrics.json`` (e.g. the method's name).
    """
    replay_buffer = make_replay_buffer(cfg.buffer, device=device, scratch_dir=run_dir / "replay")
    collector = make_collector(env, policy, cfg.collector, device=device)
    logger = make_logger(cfg.logger, run_dir, exp_name=run_dir.name)
    tracker = EpisodeTracker(cfg.collector.num_envs)

    # Everything below that changes during training is in the checkpoint.
    frames = updates = 0
    eval_frames: list[int] = []
    eval_returns: list[float] = []
    logged_episodes = 0
    stats: dict[str, torch.Tensor] = {}
    stats_count = 0
    elapsed_before = update_time_before = 0.0
    update_time = 0.0
    checkpoint_path = run_dir / CHECKPOINT_NAME

    def checkpoint() -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "frames": frames,
                "updates": updates,
                **{name: obj.state_dict() for name, obj in stateful.items()},
                "replay_buffer": replay_buffer.state_dict(),
                "collector": collector_state(collector),
                "tracker": tracker.state_dict(),
                "rng": rng_state(),
                "eval_frames": eval_frames,
                "eval_returns": eval_returns,
                "logged_episodes": logged_episodes,
                "stats": stats,
                "stats_count": stats_count,
                "elapsed": elapsed_before + time.perf_counter() - t_start,
                "update_time": update_time_before + update_time,
            },
        )

    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, map_location=device)
        frames, updates = state["frames"], state["updates"]
        for name, obj in stateful.items():
            obj.load_state_dict(state[name])
        replay_buffer.load_state_dict(state["replay_buffer"])
        load_collector_state(collector, state["collector"])
        tracker.load_state_dict(state["tracker"])
        set_rng_state(state["rng"])
        eval_frames, eval_returns = list(state["eval_frames"]), list(state["eval_returns"])
        logged_episodes, stats, stats_count = state["logged_episodes"], state["stats"], state["stats_count"]
        elapsed_before, update_time_before = state["elapsed"], state["update_time"]
        truncate_csv_logs(run_dir, frames)

    def run_eval() -> None:
        returns = evaluate(
            cfg.env,
            act,
            episodes=cfg.eval.episodes,
            seed=cfg.seed + 1_000_000,
            epsilon=cfg.eval.epsilon,
            max_steps=cfg.eval.max_steps,
            device=device,
        )
        eval_frames.append(frames)
        eval_returns.append(sum(returns) / len(returns))
        if logger is not None:
            logger.log_scalar("eval/return", eval_returns[-1], step=frames)

    pbar = ProgressBar(cfg.collector.total_frames, initial=frames, enabled=cfg.logger.progress_bar)
    t_start = time.perf_counter()
    status = "completed"
    for data in collector:
        batch_frames = data.numel()
        reward = data.get(("next", "reward"))
        if not bool(torch.isfinite(reward).all()):
            bad = reward[~torch.isfinite(reward)][0].item()
            raise ValueError(
                f"env {cfg.env.name!r} returned a non-finite reward ({bad}) within frames "
                f"{frames}-{frames + batch_frames}; rewards must be finite numbers"
            )
        tracker.update(data, frames)
        if cfg.env.reward_clip is not None:
            reward.clamp_(-cfg.env.reward_clip, cfg.env.reward_clip)
        replay_buffer.extend(data.select(*TRANSITION_KEYS).reshape(-1))
        frames += batch_frames

        num_updates = max(frames - cfg.optim.learning_starts, 0) // cfg.optim.frames_per_update - updates
        if num_updates > 0:
            t_update = time.perf_counter()
            for batch in sample_minibatches(replay_buffer, num_updates):
                out = update(batch)
                if cfg.buffer.prioritized:
                    replay_buffer.update_tensordict_priority(batch)
                updates += 1
                for key, value in out.items():
                    stats[key] = stats.get(key, 0.0) + value
                stats_count += 1
            update_time += time.perf_counter() - t_update

        if crossed(cfg.eval.interval, frames, batch_frames):
            run_eval()
        if crossed(cfg.logger.interval, frames, batch_frames) and logger is not None:
            new_returns = tracker.returns[logged_episodes:]
            if new_returns:
                logger.log_scalar("train/episode_return", sum(new_returns) / len(new_returns), step=frames)
            logged_episodes = len(tracker.returns)
            for key, total in stats.items():
                logger.log_scalar(f"train/{key}", float(total) / stats_count, step=frames)
            stats, stats_count = {}, 0
        pbar.update(batch_frames, ret=mean_last(tracker.returns))
        if stop_requested(frames):
            status = "interrupted"
            checkpoint()
            clear_stop()
            break
        if crossed(cfg.checkpoint.interval, frames, batch_frames):
            checkpoint()
    pbar.close()
    if status == "completed" and (not eval_frames or eval_frames[-1] != frames) and cfg.eval.episodes > 0:
        run_eval()
    if status == "completed":
        checkpoint()
    collector.shutdown()
    wall_time = elapsed_before + time.perf_counter() - t_start
    total_update_time = update_time_before + update_time
    metrics = {
        "status": status,
        "frames": frames,
        "updates": updates,
        "wall_time_s": wall_time,
        "steps_per_s": frames / wall_time if wall_time > 0 else math.nan,
        "updates_per_s": updates / total_update_time if total_update_time > 0 else math.nan,
        "final_return": mean_last(tracker.returns, 100),
        "episodes": len(tracker.returns),
        "eval_frames": eval_frames,
        "eval_returns": eval_returns,
        "env": cfg.env.name,
        "seed": cfg.seed,
        "run_dir": str(run_dir),
        **(extra_metrics or {}),
    }
    write_json(run_dir / "metrics.json", metrics)
    plot_learning_curve(
        run_dir / "learning_curve.png", tracker.end_frames, tracker.returns, eval_frames, eval_returns, title=title
    )
    return metrics
