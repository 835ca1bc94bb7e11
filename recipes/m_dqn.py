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

import os

# The Atari frame resize is a small numpy matmul: a multi-threaded BLAS makes it up to ~50x slower
# on a busy 2-core machine (see recipes/m_iqn.py). Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from tensordict.nn import TensorDictSequential  # noqa: E402
from torchrl.modules import QValueActor  # noqa: E402
from torchrl.objectives import DQNLoss, HardUpdate  # noqa: E402

from torchrl_reg.modules.exploration import AnnealedEpsilonGreedy  # noqa: E402
from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss  # noqa: E402
from torchrl_reg.objectives.update import make_update  # noqa: E402
from torchrl_reg.recipe_utils.loggers import report_summary  # noqa: E402
from torchrl_reg.recipe_utils import (  # noqa: E402
    TRANSITION_KEYS,
    ValueBasedConfig,
    RecipeRun,
    check_choice,
    check_discrete_action_spec,
    check_range,
    install_stop_signal_handlers,
    linear_schedule,
    make_collector,
    make_env,
    make_q_network,
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
class MDQNConfig(ValueBasedConfig):
    loss: LossConfig = field(default_factory=LossConfig)


register_schema("m_dqn", MDQNConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = structured(cfg, MDQNConfig)
    validate_value_based_config(cfg)
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
    replay_buffer = make_replay_buffer(
        cfg.buffer,
        device=device,
        scratch_dir=run_dir / "replay",
        frame_stack=cfg.env.frame_stack,
        num_envs=cfg.collector.num_envs,
    )
    collector = make_collector(env, policy, cfg.collector, device=device)
    update = make_update(loss_module, optimizer, max_grad_norm=cfg.optim.max_grad_norm, compile=cfg.compile)

    @torch.no_grad()
    def greedy(obs: torch.Tensor) -> torch.Tensor:
        return q_net(obs).argmax(-1)

    # Counters, episode returns, evaluation, logs, checkpoints, resume and stop requests.
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
    # Read once: an OmegaConf attribute lookup costs more than a small tensor op.
    prioritized, schedule = cfg.buffer.prioritized, cfg.exploration
    for data in collector:
        batch_frames = run.observe(data)  # non-finite rewards refused, raw returns tracked, then clipped
        replay_buffer.extend(data.select(*TRANSITION_KEYS).reshape(-1))
        # Closed form (CleanRL's schedule): EGreedyModule.step loops in Python once per frame.
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


@hydra.main(config_path="conf", config_name="m_dqn", version_base=None)
def main(cfg: DictConfig) -> None:
    report_summary(train(cfg))


if __name__ == "__main__":
    main()
