"""VIREL: an actor-critic whose temperature is the critic's Bellman error, on Box-action envs.

    python recipes/virel.py                                   # Pendulum-v1, 20k steps, minutes on a CPU
    python recipes/virel.py env=hopper                        # the official MuJoCo settings
    python recipes/virel.py loss=virel_em                     # the slides' E/M steps as written
    python recipes/virel.py loss.temperature_estimator=ema    # no separate temperature batch

Paper: Fellows, Mahajan, Rudner, Whiteson, "VIREL: A Variational Inference Framework for
Reinforcement Learning", NeurIPS 2019, arXiv 1811.01132, with
:class:`~torchrl_reg.objectives.VIRELLoss` (variants ``practical``, the official code, and ``em``;
equations in its docstring). The loop is :func:`torchrl_reg.loops.actor_critic.train`. The one step
of its own, :class:`ReplayTemperature`, estimates the temperature ``eps = c/p mean|y - Q|^p`` on a
separate replay batch of ``loss.temperature_batch_size`` transitions before every update (the
official code: 4096), once the buffer holds that many; until then the temperature stays at
``loss.initial_temperature`` (the official code's 1). ``loss.temperature_estimator=batch|ema``
estimates it on the training batch instead (no extra batch; cost in ``benchmarks/virel_estimator_cost.py``).

Presets: ``virel_preset/<env>.yaml`` on top of ``control_preset/<env>.yaml``. Pendulum keeps the
shared Pendulum budget (20k steps, 2x64, batch 128) so that it compares with ``recipes/sac.py
env=pendulum``; HalfCheetah and Hopper use the official code's settings (300x300 networks, batch 128,
Adam 3e-4, Polyak 1e-3, ``beta_scale`` 4e-3 from its README's Walker2d example, i.e. ``c = 0.008``
with ``p = 2``: its temperature is ``beta_scale * MSE``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from torchrl.data import ReplayBuffer
from torchrl.envs import EnvBase
from torchrl.modules import ProbabilisticActor

from torchrl_reg.loops import LoopHooks, actor_critic, register_loss
from torchrl_reg.modules.critics import state_action_value_network
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.objectives import VIRELLoss
from torchrl_reg.objectives.virel import VARIANTS, check_temperature_options
from torchrl_reg.recipe_utils import (
    LOSS_FUNCTIONS,
    ActorCriticConfig,
    ActorCriticLossConfig,
    check_choice,
    check_positive_int,
    default_of,
    exit_if_interrupted,
    register_schema,
    structured,
    summary_line,
    validate_actor_critic_config,
)


@dataclass
class VIRELLossConfig(ActorCriticLossConfig):
    """:class:`VIRELLoss` settings (its defaults) plus ``temperature_batch_size``, the separate replay
    batch of the ``"replay"`` estimator (the official code's 4096)."""

    variant: str = default_of(VIRELLoss, "variant")
    c: float = default_of(VIRELLoss, "c")
    p: int = default_of(VIRELLoss, "p")
    num_qvalue_nets: int = default_of(VIRELLoss, "num_qvalue_nets")
    temperature_estimator: str = default_of(VIRELLoss, "temperature_estimator")
    temperature_batch_size: int = 4096
    temperature_ema: float = default_of(VIRELLoss, "temperature_ema")
    initial_temperature: float = default_of(VIRELLoss, "initial_temperature")
    loss_function: str = default_of(VIRELLoss, "loss_function")


@dataclass
class VIRELConfig(ActorCriticConfig):
    loss: VIRELLossConfig = field(default_factory=VIRELLossConfig)


register_schema("virel", VIRELConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built or written."""
    cfg = structured(cfg, VIRELConfig)
    validate_actor_critic_config(cfg)
    loss = cfg.loss
    try:
        check_temperature_options(loss.c, loss.p, loss.temperature_estimator, loss.temperature_ema, loss.initial_temperature)
    except ValueError as err:
        raise ValueError(f"loss.{err}") from None
    check_choice("loss.variant", loss.variant, VARIANTS)
    check_choice("loss.loss_function", loss.loss_function, LOSS_FUNCTIONS)
    check_choice("loss.num_qvalue_nets", loss.num_qvalue_nets, (1, 2))
    check_positive_int("loss.temperature_batch_size", loss.temperature_batch_size)
    if loss.temperature_estimator == "replay" and loss.temperature_batch_size > cfg.buffer.size:
        raise ValueError(
            f"loss.temperature_batch_size={loss.temperature_batch_size} is larger than the replay buffer "
            f"(buffer.size={cfg.buffer.size}): the temperature batch must fit in the buffer"
        )
    return cfg


def from_config(cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[ProbabilisticActor, VIRELLoss]:
    """The tanh-Gaussian actor and :class:`VIRELLoss` over it and ``loss.num_qvalue_nets`` critics, gamma set."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    action_spec = env.action_spec_unbatched
    hidden = list(cfg.network.hidden)
    actor = tanh_normal_policy(obs_dim, action_spec, num_cells=hidden).to(device)
    qvalue = state_action_value_network(obs_dim, action_spec.shape[-1], num_cells=hidden).to(device)
    settings = {k: cfg.loss[k] for k in ("variant", "c", "p", "num_qvalue_nets", "temperature_estimator",
                                         "temperature_ema", "initial_temperature", "loss_function")}
    # check_finite: a NaN/inf observation or reward stops the run naming the key and index (one sync per update).
    loss = VIRELLoss(actor, qvalue, **settings, check_finite=True).to(device)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return actor, loss


class ReplayTemperature(LoopHooks):
    """The ``"replay"`` estimator: before every update, the temperature on a separate uniform replay
    batch of ``batch_size`` transitions, once the buffer holds that many (NaN Bellman errors raise
    there, before the update and before any checkpoint)."""

    def __init__(self, loss: VIRELLoss, batch_size: int):
        self.loss, self.batch_size, self.replay_buffer = loss, batch_size, None

    def attach(self, replay_buffer: ReplayBuffer) -> None:
        self.replay_buffer = replay_buffer

    def before_update(self, batch: TensorDictBase) -> None:
        if len(self.replay_buffer) >= self.batch_size:
            self.loss.update_temperature(self.replay_buffer.sample(self.batch_size))

    def final_metrics(self) -> dict[str, Any]:
        return {"final_temperature": self.loss.temperature.item()}


def hooks(cfg: DictConfig, loss: VIRELLoss) -> LoopHooks:
    """:class:`ReplayTemperature` for the ``"replay"`` estimator; the others live in the loss's forward."""
    if cfg.loss.temperature_estimator == "replay":
        return ReplayTemperature(loss, cfg.loss.temperature_batch_size)
    return LoopHooks()


register_loss("virel", VIRELLoss, from_config, hooks=hooks)


def train(cfg: DictConfig | dict) -> dict[str, Any]:
    """Train one agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."""
    cfg = validate(cfg)
    return actor_critic.train(
        cfg, loss="virel", name=f"virel_{cfg.loss.variant}", metrics={"temperature": cfg.loss.temperature_estimator}
    )


@hydra.main(config_path="conf", config_name="virel", version_base=None)
def main(cfg: DictConfig) -> None:
    metrics = train(cfg)
    print(summary_line(metrics))
    exit_if_interrupted(metrics)  # exit status 75 after a stop: the run is not finished


if __name__ == "__main__":
    main()
