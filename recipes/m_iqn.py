"""Munchausen-IQN and IQN on classic control, MinAtar and Atari.

    python recipes/m_iqn.py                                   # M-IQN on CartPole-v1 (a few minutes on 2 cores)
    python recipes/m_iqn.py loss=iqn seed=3                   # IQN baseline
    python recipes/m_iqn.py env=minatar env.name=breakout     # Revisiting Rainbow's MinAtar set-up
    python recipes/m_iqn.py env=atari env.name=Breakout       # the paper's Atari set-up (N=N'=64, K=32)

Losses (``loss=``): ``m_iqn`` (:class:`~torchrl_reg.objectives.iqn.MunchausenIQNLoss`) and ``iqn``
(:class:`~torchrl_reg.objectives.iqn.IQNLoss`), on
:class:`~torchrl_reg.modules.iqn.ImplicitQuantileNetwork` (Nature CNN, MinAtar conv or MLP torso).
Paper: ``shared/papers/munchausen-rl-slides.txt``, slide "Case study: IQN"; IQN: Dabney et al. 2018.

The loop below is the whole algorithm: collect ``frames_per_batch`` frames from ``num_envs``
vectorized envs with an epsilon-greedy policy on the mean of ``K`` quantiles, store them (Atari:
each frame once, :class:`~torchrl_reg.data.FrameStackStorage`), do one gradient step per
``frames_per_update`` frames and copy the target network every ``target_update_interval`` frames.
The parts are built by :mod:`torchrl_reg.recipe_utils`, and :class:`~torchrl_reg.recipe_utils.RecipeRun`
keeps the run-directory contract (config.yaml, CSV logs, checkpoint.pt, metrics.json,
learning_curve.png, resume, stop signals), as in the other recipes.
"""
from __future__ import annotations

import os

# The Atari frame resize is a small numpy matmul: a multi-threaded BLAS makes it up to ~50x slower
# on a busy 2-core machine (measured: 32 vs 1490 env steps/s). Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from tensordict.nn import TensorDictSequential  # noqa: E402
from torchrl.modules import QValueActor  # noqa: E402
from torchrl.objectives import HardUpdate  # noqa: E402

from torchrl_reg.modules.exploration import AnnealedEpsilonGreedy  # noqa: E402
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork, MinAtarTorso  # noqa: E402
from torchrl_reg.objectives.iqn import IQNLoss, MunchausenIQNLoss  # noqa: E402
from torchrl_reg.objectives.update import make_update  # noqa: E402
from torchrl_reg.recipe_utils.loggers import report_summary  # noqa: E402
from torchrl_reg.recipe_utils import (  # noqa: E402
    TRANSITION_KEYS,
    ValueBasedConfig,
    RecipeRun,
    check_choice,
    check_discrete_action_spec,
    check_positive_int,
    check_range,
    install_stop_signal_handlers,
    linear_schedule,
    make_collector,
    make_env,
    make_replay_buffer,
    num_actions,
    register_schema,
    resolve_run_dir,
    sample_minibatches,
    seed_everything,
    select_device,
    structured,
    validate_value_based_config,
)

LOSSES = ("m_iqn", "iqn")


@dataclass
class IQNLossConfig:
    """``name`` picks the loss; the other fields are the papers' symbols (see the loss classes)."""

    name: str = "m_iqn"
    alpha: float = 0.9
    tau: float = 0.03
    clip_value_min: float = -1.0
    clip_value_max: float = 0.0
    kappa: float = 1.0
    num_quantiles: int = 32
    num_target_quantiles: int = 32
    num_policy_quantiles: int = 32
    embedding_dim: int = 64
    independent_fractions: bool = True
    gamma: float = 0.99


@dataclass
class MIQNConfig(ValueBasedConfig):
    loss: IQNLossConfig = field(default_factory=IQNLossConfig)


register_schema("m_iqn", MIQNConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = structured(cfg, MIQNConfig)
    validate_value_based_config(cfg)
    loss = cfg.loss
    check_choice("loss.name", loss.name, LOSSES)
    check_range("loss.gamma", loss.gamma, 0.0, 1.0)
    check_range("loss.kappa", loss.kappa, 0.0, low_inclusive=False)
    for name in ("num_quantiles", "num_target_quantiles", "num_policy_quantiles", "embedding_dim"):
        check_positive_int(f"loss.{name}", loss[name])
    if loss.name == "m_iqn":
        check_range("loss.alpha", loss.alpha, 0.0, 1.0)
        check_range("loss.tau", loss.tau, 0.0, low_inclusive=False)
        if loss.clip_value_min > loss.clip_value_max:
            raise ValueError(
                "loss.clip_value_min must be <= loss.clip_value_max, got "
                f"loss.clip_value_min={loss.clip_value_min}, loss.clip_value_max={loss.clip_value_max}"
            )
    if cfg.network.kind == "nature_cnn" and cfg.env.screen_size < 36:
        raise ValueError(f"network.kind='nature_cnn' needs frames of at least 36x36, got env.screen_size={cfg.env.screen_size}")
    return cfg


def make_network(cfg: DictConfig, obs_shape: tuple[int, ...], n_actions: int) -> ImplicitQuantileNetwork:
    """The IQN of ``cfg.network.kind``: Atari (Nature CNN, 512 hidden), MinAtar (conv, no hidden) or MLP."""
    kw = dict(embedding_dim=cfg.loss.embedding_dim, num_policy_quantiles=cfg.loss.num_policy_quantiles)
    if cfg.network.kind == "nature_cnn":
        if len(obs_shape) != 3:
            raise ValueError(f"network.kind='nature_cnn' needs (frames, H, W) observations, got {obs_shape}")
        return ImplicitQuantileNetwork.nature(n_actions, frame_stack=obs_shape[0], frame_size=obs_shape[1:], **kw)
    if cfg.network.kind == "minatar_conv":
        if len(obs_shape) != 3:
            raise ValueError(f"network.kind='minatar_conv' needs (C, H, W) observations, got {obs_shape}")
        return ImplicitQuantileNetwork(MinAtarTorso(*obs_shape), n_actions, hidden_sizes=(), **kw)
    if len(obs_shape) != 1:
        raise ValueError(f"network.kind='mlp' needs a flat observation, got observation shape {obs_shape}")
    return ImplicitQuantileNetwork.mlp(obs_shape[0], n_actions, num_cells=tuple(cfg.network.hidden), **kw)


def make_loss(cfg: DictConfig, actor: QValueActor) -> IQNLoss:
    """The loss named by ``cfg.name``, with gamma in its value estimator (TorchRL convention)."""
    common = dict(
        num_quantiles=cfg.num_quantiles,
        num_target_quantiles=cfg.num_target_quantiles,
        num_policy_quantiles=cfg.num_policy_quantiles,
        kappa=cfg.kappa,
        independent_fractions=cfg.independent_fractions,
        action_space=actor.spec,
    )
    if cfg.name == "m_iqn":
        loss = MunchausenIQNLoss(
            actor,
            alpha=cfg.alpha,
            tau=cfg.tau,
            clip_value_min=cfg.clip_value_min,
            clip_value_max=cfg.clip_value_max,
            **common,
        )
    else:
        loss = IQNLoss(actor, **common)
    return loss.make_value_estimator(gamma=cfg.gamma)


def train(cfg: DictConfig | dict) -> dict[str, Any]:
    """Train one agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."""
    cfg = validate(cfg)
    run_dir = resolve_run_dir(cfg.run_dir)
    install_stop_signal_handlers()
    torch.set_num_threads(cfg.num_threads)
    device = select_device(cfg.device)
    seed_everything(cfg.seed)

    env = make_env(cfg.env, num_envs=cfg.collector.num_envs, seed=cfg.seed)
    check_discrete_action_spec(env)
    obs_shape = tuple(env.observation_spec["observation"].shape[1:])
    net = make_network(cfg, obs_shape, num_actions(env)).to(device)
    actor = QValueActor(net, in_keys=["observation"], spec=env.action_spec_unbatched.to(device))
    exploration = AnnealedEpsilonGreedy(
        env.action_spec_unbatched.to(device),
        eps_init=cfg.exploration.eps_init,
        eps_end=cfg.exploration.eps_end,
        annealing_num_steps=max(cfg.exploration.annealing_frames, 1),
    ).to(device)
    policy = TensorDictSequential(actor, exploration)

    loss_module = make_loss(cfg.loss, actor).to(device)
    target_updater = HardUpdate(loss_module, value_network_update_interval=0)  # copies at every step()
    target_every = cfg.optim.target_update_interval // cfg.optim.frames_per_update
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
    replay_buffer = make_replay_buffer(
        cfg.buffer,
        device=device,
        scratch_dir=run_dir / "replay",
        frame_stack=cfg.env.frame_stack if cfg.env.family == "atari" else 1,
        num_envs=cfg.collector.num_envs,
    )
    collector = make_collector(env, policy, cfg.collector, device=device)
    update = make_update(loss_module, optimizer, max_grad_norm=cfg.optim.max_grad_norm, compile=cfg.compile)

    @torch.no_grad()
    def greedy(obs: torch.Tensor) -> torch.Tensor:
        return net(obs).argmax(-1)  # mean of K freshly sampled quantiles, as when acting

    # Counters, episode returns (raw scores), evaluation, logs, checkpoints, resume and stop requests.
    run = RecipeRun(
        cfg,
        run_dir,
        collector=collector,
        replay_buffer=replay_buffer,
        greedy=greedy,
        device=device,
        stateful={"loss_module": loss_module, "policy": policy, "optimizer": optimizer},
        title=f"{cfg.loss.name} on {cfg.env.name} (seed {cfg.seed})",
        extra_metrics={"loss": cfg.loss.name},
    )
    run.start()  # resumes from <run_dir>/checkpoint.pt if there is one
    prioritized, schedule = cfg.buffer.prioritized, cfg.exploration
    for data in collector:
        batch_frames = run.observe(data)  # non-finite rewards refused, raw returns tracked, then clipped
        replay_buffer.extend(data.select(*TRANSITION_KEYS).reshape(-1))
        # Closed form: EGreedyModule.step loops in Python once per frame.
        exploration.eps.fill_(
            linear_schedule(schedule.eps_init, schedule.eps_end, schedule.annealing_frames, run.frames)
        )
        # One update per optim.frames_per_update frames collected after optim.learning_starts.
        for batch in sample_minibatches(replay_buffer, run.updates_due()):
            out = update(batch)
            if prioritized:
                replay_buffer.update_tensordict_priority(batch)
            run.record(out)
            if run.updates % target_every == 0:
                target_updater.step()
        if run.end_batch(batch_frames, epsilon=float(exploration.eps)):
            break
    return run.finish()


@hydra.main(config_path="conf", config_name="m_iqn", version_base=None)
def main(cfg: DictConfig) -> None:
    report_summary(train(cfg))


if __name__ == "__main__":
    main()
