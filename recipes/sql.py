"""Soft Q-learning with continuous actions (an amortized SVGD sampler), on the actor-critic loop.

    python recipes/sql.py                                 # MultiGoal-v0, a few minutes on a CPU
    python recipes/sql.py env=pendulum
    python recipes/sql.py env=halfcheetah seed=3          # or env=hopper

Paper: Haarnoja, Tang, Abbeel, Levine, "Reinforcement Learning with Deep Energy-Based Policies",
ICML 2017, arXiv:1702.08165 (Algorithm 1). The critic regresses ``Q(s, a)`` on
``c r + gamma (1 - terminated) V(s')`` with the importance-sampled soft value of
:class:`~torchrl_reg.objectives.SoftQLoss`; the sampler ``a = tanh(f(s, xi))`` follows the Stein
variational gradient of :class:`~torchrl_reg.objectives.SVGDPolicyLoss`; both are summed in
:class:`~torchrl_reg.objectives.SoftQLearningLoss` and stepped by the loop's one Adam (disjoint
parameters). The loop (:func:`torchrl_reg.loops.actor_critic.train`) copies the online critic into
the target critic every ``loss.hard_update_interval`` updates with ``loss.target_update=hard`` (the
reference's 1000, set by the multigoal and MuJoCo presets) or Polyak-averages it at rate
``loss.polyak`` after every update (``loss.target_update=polyak``, the Pendulum preset).
Evaluation plays the sampler with ``xi = 0``. ``loss.tau_final`` anneals the temperature linearly
over ``loss.tau_annealing_updates`` updates (:class:`~torchrl_reg.objectives.TemperatureSchedule`).

Presets (``sql_preset/<env>.yaml``) follow the reference implementation: 2x128 ReLU MLPs, Adam 3e-4,
batch 128, 16 value particles, 16 kernel particles, ``tau = 1`` with reward scale 30 on HalfCheetah
and Hopper; on MultiGoal batch 64, 32 kernel particles, reward scale 0.1; a target copy every 1000
updates on MultiGoal, HalfCheetah and Hopper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import hydra
import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.modules import Actor

from torchrl_reg.loops import LoopHooks, actor_critic, register_loss
from torchrl_reg.modules.critics import state_action_value_network
from torchrl_reg.modules.soft_q import svgd_sampler_actor
from torchrl_reg.objectives.soft_q import SoftQLearningLoss, SoftQLoss, SVGDPolicyLoss, TemperatureSchedule
from torchrl_reg.recipe_utils import (
    LOSS_FUNCTIONS,
    ActorCriticConfig,
    ActorCriticLossConfig,
    check_choice,
    check_config,
    check_positive_int,
    check_range,
    default_of,
    exit_if_interrupted,
    recipe_schema,
    report_summary,
)

PROPOSALS = ("uniform", "mixture")
SPACES = ("squashed", "pre_tanh")


@dataclass
class SQLLossConfig(ActorCriticLossConfig):
    """SoftQLoss and SVGDPolicyLoss settings (their defaults). ``num_value_particles`` is ``M`` of the
    soft value, ``num_particles`` the sampler's ``K`` per state; ``tau_final`` (``None``: no annealing)
    is reached after ``tau_annealing_updates`` updates."""

    tau: float = default_of(SoftQLoss, "tau")
    reward_scale: float = default_of(SoftQLoss, "reward_scale")
    num_value_particles: int = default_of(SoftQLoss, "num_value_particles")
    proposal: str = default_of(SoftQLoss, "proposal")
    uniform_weight: float = default_of(SoftQLoss, "uniform_weight")
    loss_function: str = default_of(SoftQLoss, "loss_function")
    num_particles: int = default_of(SVGDPolicyLoss, "num_particles")
    fixed_ratio: float = default_of(SVGDPolicyLoss, "fixed_ratio")
    space: str = default_of(SVGDPolicyLoss, "space")
    tau_final: Optional[float] = None
    tau_annealing_updates: int = 1


SQLConfig = recipe_schema("sql", ActorCriticConfig, loss=SQLLossConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = check_config(cfg, SQLConfig)
    check_range("loss.tau", cfg.loss.tau, 0.0, low_inclusive=False)
    check_range("loss.reward_scale", cfg.loss.reward_scale, 0.0, low_inclusive=False)
    check_choice("loss.proposal", cfg.loss.proposal, PROPOSALS)
    check_choice("loss.space", cfg.loss.space, SPACES)
    check_choice("loss.loss_function", cfg.loss.loss_function, LOSS_FUNCTIONS)
    check_range("loss.uniform_weight", cfg.loss.uniform_weight, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_range("loss.fixed_ratio", cfg.loss.fixed_ratio, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    for name in ("num_value_particles", "num_particles"):
        value = cfg.loss[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"loss.{name} must be an integer >= 2, got loss.{name}={value!r}")
    # The split of the sampler's particles: >= 2 fixed (ln K_fixed of the median heuristic), >= 1 updated.
    num_fixed = round(cfg.loss.fixed_ratio * cfg.loss.num_particles)
    if not 2 <= num_fixed <= cfg.loss.num_particles - 1:
        raise ValueError(
            f"loss.num_particles={cfg.loss.num_particles} with loss.fixed_ratio={cfg.loss.fixed_ratio} gives "
            f"{num_fixed} fixed particles: at least 2 fixed and 1 updated are needed"
        )
    if cfg.loss.tau_final is not None:
        check_range("loss.tau_final", cfg.loss.tau_final, 0.0, low_inclusive=False)
    check_positive_int("loss.tau_annealing_updates", cfg.loss.tau_annealing_updates)
    return cfg


def from_config(cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[Actor, SoftQLearningLoss]:
    """The SVGD sampler and :class:`SoftQLearningLoss` over it and a ``Q(s, a)`` critic, gamma set."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    action_spec = env.action_spec_unbatched
    hidden = list(cfg.network.hidden)
    actor = svgd_sampler_actor(obs_dim, action_spec, num_cells=hidden).to(device)
    qvalue = state_action_value_network(obs_dim, action_spec.shape[-1], num_cells=hidden).to(device)
    critic = SoftQLoss(
        qvalue,
        action_spec=action_spec,
        tau=cfg.loss.tau,
        reward_scale=cfg.loss.reward_scale,
        num_value_particles=cfg.loss.num_value_particles,
        proposal=cfg.loss.proposal,
        actor=actor,
        uniform_weight=cfg.loss.uniform_weight,
        loss_function=cfg.loss.loss_function,
    )
    policy_loss = SVGDPolicyLoss(
        actor, qvalue, tau=cfg.loss.tau, num_particles=cfg.loss.num_particles,
        fixed_ratio=cfg.loss.fixed_ratio, space=cfg.loss.space,
    )
    loss = SoftQLearningLoss(critic, policy_loss).to(device)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return actor, loss


class TemperatureAnnealing(LoopHooks):
    """Steps a :class:`TemperatureSchedule` of both losses after every update; logs ``tau`` at the end."""

    def __init__(self, schedule: TemperatureSchedule):
        self.schedule = schedule

    def after_update(self, out: TensorDictBase) -> None:
        self.schedule.step()

    def final_metrics(self) -> dict[str, Any]:
        return {"final_tau": self.schedule.tau}


def hooks(cfg: DictConfig, loss: SoftQLearningLoss) -> LoopHooks:
    """:class:`TemperatureAnnealing` when ``loss.tau_final`` is set, else none."""
    if cfg.loss.tau_final is None:
        return LoopHooks()
    schedule = TemperatureSchedule(
        loss.critic, loss.actor, tau_final=cfg.loss.tau_final, annealing_num_steps=cfg.loss.tau_annealing_updates
    )
    return TemperatureAnnealing(schedule)


register_loss("soft_q_learning", SoftQLearningLoss, from_config, hooks=hooks)


def train(cfg: DictConfig | dict) -> dict[str, Any]:
    """Train one agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."""
    return actor_critic.train(validate(cfg), loss="soft_q_learning", name="sql", metrics={"policy": "svgd"})


@hydra.main(config_path="conf", config_name="sql", version_base=None)
def main(cfg: DictConfig) -> None:
    metrics = train(cfg)
    report_summary(metrics)
    exit_if_interrupted(metrics)  # exit status 75 after a stop: the run is not finished


if __name__ == "__main__":
    main()
