"""Munchausen-DQN, Soft-DQN, advantage learning and DQN on classic control, MinAtar and Atari.

    python recipes/m_dqn.py                                  # M-DQN on CartPole-v1, CleanRL's schedule
    python recipes/m_dqn.py loss=dqn env=acrobot seed=3      # DQN baseline on Acrobot-v1
    python recipes/m_dqn.py env=minatar env.name=SpaceInvaders loss=soft_dqn
    python recipes/m_dqn.py env=atari env.name=Breakout buffer=prioritized

Losses (``loss=``): ``m_dqn`` (:class:`~torchrl_reg.objectives.munchausen.MunchausenDQNLoss`),
``soft_dqn`` (the same with alpha=0), ``al`` / ``pal``
(:class:`~torchrl_reg.objectives.munchausen.AdvantageLearningLoss`) and ``dqn`` (TorchRL's
``DQNLoss``). Paper: ``shared/papers/munchausen-rl-slides.txt``, slide "Case study: DQN".

The loop below is the whole algorithm: collect ``frames_per_batch`` frames from ``num_envs``
vectorized envs with an epsilon-greedy policy, store them, then do one gradient step per
``frames_per_update`` collected frames (the update-to-data ratio of the one-env original) and
copy the target network every ``target_update_interval`` frames. Everything it needs is built
by :mod:`torchrl_reg.recipe_utils`; the run directory contract (config.yaml, CSV logs,
checkpoint.pt, metrics.json, learning_curve.png, resume, stop signals) is documented there.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tensordict.nn import TensorDictSequential
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss, HardUpdate

from torchrl_reg.modules.exploration import AnnealedEpsilonGreedy
from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss
from torchrl_reg.recipe_utils import (
    CHECKPOINT_NAME,
    TRANSITION_KEYS,
    EpisodeTracker,
    ProgressBar,
    RecipeConfig,
    check_choice,
    check_discrete_action_spec,
    check_range,
    clear_stop,
    collector_state,
    evaluate,
    install_stop_signal_handlers,
    linear_schedule,
    load_checkpoint,
    load_collector_state,
    load_replay_buffer_state,
    make_collector,
    make_env,
    make_logger,
    make_q_network,
    make_replay_buffer,
    mean_last,
    num_actions,
    plot_learning_curve,
    register_schema,
    replay_buffer_state,
    resolve_run_dir,
    rng_state,
    sample_minibatches,
    save_checkpoint,
    seed_everything,
    select_device,
    set_rng_state,
    stop_requested,
    structured,
    truncate_csv_logs,
    validate_recipe_config,
    write_json,
)

LOSSES = ("m_dqn", "soft_dqn", "al", "pal", "dqn")
LOSS_FUNCTIONS = ("l2", "smooth_l1", "l1")


@dataclass
class LossConfig:
    """``name`` picks the loss; ``alpha``/``tau``/clip bounds are the paper's symbols ([MRL], "Case study: DQN")."""

    name: str = "m_dqn"
    alpha: float = 0.9
    tau: float = 0.03
    clip_value_min: float = -1.0
    clip_value_max: float = 0.0
    loss_function: str = "smooth_l1"
    gamma: float = 0.99


@dataclass
class MDQNConfig(RecipeConfig):
    loss: LossConfig = field(default_factory=LossConfig)


register_schema("m_dqn", MDQNConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = structured(cfg, MDQNConfig)
    validate_recipe_config(cfg)
    loss = cfg.loss
    check_choice("loss.name", loss.name, LOSSES)
    check_choice("loss.loss_function", loss.loss_function, LOSS_FUNCTIONS)
    check_range("loss.gamma", loss.gamma, 0.0, 1.0)
    if loss.name != "dqn":
        check_range("loss.alpha", loss.alpha, 0.0, 1.0)
    if loss.name in ("m_dqn", "soft_dqn"):
        check_range("loss.tau", loss.tau, 0.0, low_inclusive=False)
        check_range("loss.clip_value_min", loss.clip_value_min)
        check_range("loss.clip_value_max", loss.clip_value_max)
        if loss.clip_value_min > loss.clip_value_max:
            raise ValueError(
                "loss.clip_value_min must be <= loss.clip_value_max, got "
                f"loss.clip_value_min={loss.clip_value_min}, loss.clip_value_max={loss.clip_value_max}"
            )
    if loss.name == "soft_dqn" and loss.alpha != 0.0:
        raise ValueError(f"loss=soft_dqn is M-DQN with alpha=0, got loss.alpha={loss.alpha}; use loss=m_dqn")
    return cfg


def make_loss(cfg: DictConfig, actor: QValueActor):
    """The loss module named by ``cfg.name``, with gamma in its value estimator (TorchRL convention)."""
    common = dict(loss_function=cfg.loss_function, delay_value=True, action_space=actor.spec)
    if cfg.name in ("m_dqn", "soft_dqn"):
        loss = MunchausenDQNLoss(
            actor,
            alpha=cfg.alpha,
            tau=cfg.tau,
            clip_value_min=cfg.clip_value_min,
            clip_value_max=cfg.clip_value_max,
            **common,
        )
    elif cfg.name in ("al", "pal"):
        loss = AdvantageLearningLoss(actor, alpha=cfg.alpha, persistent=cfg.name == "pal", **common)
    else:
        loss = DQNLoss(actor, **common)
    loss.make_value_estimator(gamma=cfg.gamma)
    return loss


def crossed(interval: int, frames: int, batch_frames: int) -> bool:
    """Whether the last batch crossed a multiple of ``interval`` frames (0: never)."""
    return interval > 0 and frames // interval > (frames - batch_frames) // interval


def train(cfg: DictConfig | dict) -> dict[str, Any]:
    """Train one agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."""
    cfg = validate(cfg)
    run_dir = resolve_run_dir(cfg.run_dir)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    install_stop_signal_handlers()
    torch.set_num_threads(cfg.num_threads)
    device = select_device(cfg.device)
    seed_everything(cfg.seed)

    env = make_env(cfg.env, num_envs=cfg.collector.num_envs, seed=cfg.seed)
    check_discrete_action_spec(env)
    obs_shape = env.observation_spec["observation"].shape[1:]
    q_net = make_q_network(cfg.network, obs_shape, num_actions(env)).to(device)
    actor = QValueActor(q_net, in_keys=["observation"], spec=env.action_spec_unbatched.to(device))
    exploration = AnnealedEpsilonGreedy(
        env.action_spec_unbatched.to(device),
        eps_init=cfg.exploration.eps_init,
        eps_end=cfg.exploration.eps_end,
        annealing_num_steps=max(cfg.exploration.annealing_frames, 1),
    ).to(device)
    policy = TensorDictSequential(actor, exploration)

    loss_module = make_loss(cfg.loss, actor).to(device)
    # Copied by hand every `target_every` updates (interval 0: each step() call copies).
    target_updater = HardUpdate(loss_module, value_network_update_interval=0)
    target_every = cfg.optim.target_update_interval // cfg.optim.frames_per_update
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
    replay_buffer = make_replay_buffer(cfg.buffer, device=device, scratch_dir=run_dir / "replay")
    collector = make_collector(env, policy, cfg.collector, device=device)
    logger = make_logger(cfg.logger, run_dir, exp_name=run_dir.name)
    tracker = EpisodeTracker(cfg.collector.num_envs)

    def update(batch):
        out = loss_module(batch)
        out["loss"].backward()
        if cfg.optim.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), cfg.optim.max_grad_norm)
        optimizer.step()
        # Last, so that torch.compile traces loss, backward and step before this graph break.
        optimizer.zero_grad(set_to_none=True)
        return out.detach()

    if cfg.compile:
        update = torch.compile(update)

    @torch.no_grad()
    def greedy(obs: torch.Tensor) -> torch.Tensor:
        return q_net(obs).argmax(-1)

    # Everything below that changes during training is in the checkpoint.
    frames = updates = 0
    eval_frames: list[int] = []
    eval_returns: list[float] = []
    logged_episodes = 0
    # Loss outputs since the last log line: kept as a list (summed when logged or checkpointed)
    # because adding every entry at every update costs more than the update's bookkeeping.
    # A resumed run carries the values of the interrupted one, stacked per key, so that its
    # logged means are bit-identical to those of an uninterrupted run.
    pending_outputs: list = []
    carried_outputs: dict[str, torch.Tensor] = {}

    def outputs_since_log() -> dict[str, torch.Tensor]:
        if not pending_outputs:
            return dict(carried_outputs)
        return {
            key: torch.cat([carried_outputs.get(key, torch.zeros(0)), torch.stack([o.get(key) for o in pending_outputs])])
            for key in pending_outputs[0].keys()
        }
    elapsed_before = 0.0
    checkpoint_path = run_dir / CHECKPOINT_NAME

    def checkpoint() -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "frames": frames,
                "updates": updates,
                "loss_module": loss_module.state_dict(),
                "policy": policy.state_dict(),
                "optimizer": optimizer.state_dict(),
                "replay_buffer": replay_buffer_state(replay_buffer),
                "collector": collector_state(collector),
                "tracker": tracker.state_dict(),
                "rng": rng_state(),
                "eval_frames": eval_frames,
                "eval_returns": eval_returns,
                "logged_episodes": logged_episodes,
                "outputs_since_log": outputs_since_log(),
                "elapsed": elapsed_before + time.perf_counter() - t_start,
            },
        )

    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, map_location=device)
        frames, updates = state["frames"], state["updates"]
        loss_module.load_state_dict(state["loss_module"])
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
        load_replay_buffer_state(replay_buffer, state["replay_buffer"])
        load_collector_state(collector, state["collector"])
        tracker.load_state_dict(state["tracker"])
        set_rng_state(state["rng"])
        eval_frames, eval_returns = list(state["eval_frames"]), list(state["eval_returns"])
        logged_episodes, carried_outputs = state["logged_episodes"], state["outputs_since_log"]
        elapsed_before = state["elapsed"]
        truncate_csv_logs(run_dir, frames)

    def run_eval() -> None:
        returns = evaluate(
            cfg.env,
            greedy,
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
        # Closed form (CleanRL's schedule): EGreedyModule.step loops in Python once per frame.
        exploration.eps.fill_(
            linear_schedule(cfg.exploration.eps_init, cfg.exploration.eps_end, cfg.exploration.annealing_frames, frames)
        )

        # One update per frames_per_update frames collected after learning_starts.
        num_updates = max(frames - cfg.optim.learning_starts, 0) // cfg.optim.frames_per_update - updates
        if num_updates > 0:
            for batch in sample_minibatches(replay_buffer, num_updates):
                out = update(batch)
                if cfg.buffer.prioritized:
                    replay_buffer.update_tensordict_priority(batch)
                updates += 1
                if updates % target_every == 0:
                    target_updater.step()
                pending_outputs.append(out)

        if crossed(cfg.eval.interval, frames, batch_frames):
            run_eval()
        if crossed(cfg.logger.interval, frames, batch_frames) and logger is not None:
            new_returns = tracker.returns[logged_episodes:]
            if new_returns:
                logger.log_scalar("train/episode_return", sum(new_returns) / len(new_returns), step=frames)
            logged_episodes = len(tracker.returns)
            for key, values in outputs_since_log().items():
                logger.log_scalar(f"train/{key}", float(values.mean()), step=frames)
            pending_outputs, carried_outputs = [], {}
            logger.log_scalar("train/epsilon", float(exploration.eps), step=frames)
        pbar.update(batch_frames, ret=mean_last(tracker.returns), eps=float(exploration.eps))
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
    metrics = {
        "status": status,
        "frames": frames,
        "updates": updates,
        "wall_time_s": wall_time,
        "steps_per_s": frames / wall_time if wall_time > 0 else math.nan,
        "final_return": mean_last(tracker.returns, 100),
        "episodes": len(tracker.returns),
        "eval_frames": eval_frames,
        "eval_returns": eval_returns,
        "loss": cfg.loss.name,
        "env": cfg.env.name,
        "seed": cfg.seed,
        "run_dir": str(run_dir),
    }
    write_json(run_dir / "metrics.json", metrics)
    plot_learning_curve(
        run_dir / "learning_curve.png",
        tracker.end_frames,
        tracker.returns,
        eval_frames,
        eval_returns,
        title=f"{cfg.loss.name} on {cfg.env.name} (seed {cfg.seed})",
    )
    return metrics


@hydra.main(config_path="conf", config_name="m_dqn", version_base=None)
def main(cfg: DictConfig) -> None:
    metrics = train(cfg)
    print(
        f"{metrics['status']}: {metrics['frames']} frames in {metrics['wall_time_s']:.0f}s "
        f"({metrics['steps_per_s']:.0f} steps/s), final return {metrics['final_return']:.1f} -> {metrics['run_dir']}"
    )


if __name__ == "__main__":
    main()
