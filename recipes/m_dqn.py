"""Munchausen-DQN, Soft-DQN, advantage learning and DQN on classic control, MinAtar and Atari.

    python recipes/m_dqn.py                                  # M-DQN on CartPole-v1, CleanRL's schedule
    python recipes/m_dqn.py loss=dqn env=acrobot seed=3      # DQN baseline on Acrobot-v1
    python recipes/m_dqn.py env=minatar env.name=SpaceInvaders loss=soft_dqn
    python recipes/m_dqn.py env=atari env.name=Breakout buffer=prioritized

Losses (``loss=``): ``m_dqn`` (:class:`~torchrl_reg.objectives.munchausen.MunchausenDQNLoss`),
``soft_dqn`` (the same with alpha=0), ``al`` / ``pal``
(:class:`~torchrl_reg.objectives.munchausen.AdvantageLearningLoss`) and ``dqn`` (TorchRL's
``DQNLoss``). Paper: Vieillard, Pietquin, Geist, "Munchausen Reinforcement Learning", NeurIPS 2020
(arXiv:2007.14430), Eq. (2) (the M-DQN target); advantage learning: Bellemare, Ostrovski, Guez,
Thomas, Munos, "Increasing the Action Gap: New Operators for Reinforcement Learning", AAAI 2016
(arXiv:1512.04860).

The loop is :func:`torchrl_reg.loops.value_based.train` (epsilon-greedy collection from
``num_envs`` envs, one gradient step per ``frames_per_update`` frames, target copy every
``target_update_interval`` frames); this file declares the config and registers the losses. The
run-directory contract (config.yaml, CSV logs, checkpoint.pt, metrics.json, learning_curve.png,
resume, stop signals) is :mod:`torchrl_reg.recipe_utils`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import hydra
from omegaconf import DictConfig
from torchrl.modules import QValueActor

from torchrl_reg.loops import register_loss, value_based
from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss
from torchrl_reg.recipe_utils import (
    LOSS_FUNCTIONS,
    STABLE_TAU,
    ValueBasedConfig,
    ValueBasedLossConfig,
    check_choice,
    check_group_choice,
    check_config,
    check_ordered,
    check_range,
    check_unused,
    default_of,
    exit_if_interrupted,
    recipe_schema,
    report_summary,
)

LOSSES = ("m_dqn", "soft_dqn", "al", "pal", "dqn")
# The loss keys each loss reads (besides name); a value given to any other is refused.
LOSS_KEYS = {
    "m_dqn": ("alpha", "tau", "clip_value_min", "clip_value_max", "loss_function", "gamma"),
    "soft_dqn": ("alpha", "tau", "clip_value_min", "clip_value_max", "loss_function", "gamma"),
    "al": ("alpha", "loss_function", "gamma"),
    "pal": ("alpha", "loss_function", "gamma"),
    "dqn": ("loss_function", "gamma"),
}


@dataclass
class LossConfig(ValueBasedLossConfig):
    """``name`` picks the loss; ``alpha``/``tau``/clip bounds are the paper's symbols (defaults:
    :class:`MunchausenDQNLoss`'s, the official M-DQN values)."""

    name: str = "m_dqn"
    alpha: float = default_of(MunchausenDQNLoss, "alpha")
    tau: float = default_of(MunchausenDQNLoss, "tau")
    clip_value_min: float = default_of(MunchausenDQNLoss, "clip_value_min")
    clip_value_max: float = default_of(MunchausenDQNLoss, "clip_value_max")
    loss_function: str = default_of(MunchausenDQNLoss, "loss_function")


MDQNConfig = recipe_schema("m_dqn", ValueBasedConfig, loss=LossConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = check_config(cfg, MDQNConfig)
    loss = cfg.loss
    check_choice("loss.name", loss.name, LOSSES)
    check_choice("loss.loss_function", loss.loss_function, LOSS_FUNCTIONS)
    if loss.name != "dqn":
        check_range("loss.alpha", loss.alpha, 0.0, 1.0)
    if loss.name in ("m_dqn", "soft_dqn"):
        check_range("loss.tau", loss.tau, *STABLE_TAU)
        check_range("loss.clip_value_min", loss.clip_value_min)
        check_range("loss.clip_value_max", loss.clip_value_max)
        check_ordered("loss.clip_value_min", loss.clip_value_min, "loss.clip_value_max", loss.clip_value_max)
    if loss.name == "soft_dqn" and loss.alpha != 0.0:
        raise ValueError(f"loss=soft_dqn is M-DQN with alpha=0, got loss.alpha={loss.alpha}; use loss=m_dqn")
    check_unused("loss", loss, LossConfig(), LOSS_KEYS[loss.name], f"loss.name={loss.name!r}")
    return cfg


def munchausen_from_config(cfg: DictConfig, actor: QValueActor) -> MunchausenDQNLoss:
    """M-DQN (and Soft-DQN, its alpha=0 case), gamma in the value estimator."""
    loss = MunchausenDQNLoss(
        actor,
        alpha=cfg.loss.alpha,
        tau=cfg.loss.tau,
        clip_value_min=cfg.loss.clip_value_min,
        clip_value_max=cfg.loss.clip_value_max,
        loss_function=cfg.loss.loss_function,
        delay_value=True,
        action_space=actor.spec,
        check_finite=True,  # a NaN/inf observation or reward stops the run, naming the key and index
    )
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return loss


def advantage_learning_from_config(cfg: DictConfig, actor: QValueActor, *, persistent: bool) -> AdvantageLearningLoss:
    """(Persistent) advantage learning, gamma in the value estimator."""
    loss = AdvantageLearningLoss(
        actor,
        alpha=cfg.loss.alpha,
        persistent=persistent,
        loss_function=cfg.loss.loss_function,
        delay_value=True,
        action_space=actor.spec,
        check_finite=True,
    )
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return loss


register_loss("m_dqn", MunchausenDQNLoss, munchausen_from_config)
register_loss("soft_dqn", MunchausenDQNLoss, munchausen_from_config)
register_loss("al", AdvantageLearningLoss, partial(advantage_learning_from_config, persistent=False))
register_loss("pal", AdvantageLearningLoss, partial(advantage_learning_from_config, persistent=True))


def train(cfg: DictConfig | dict) -> dict[str, Any]:
    """Train one agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."""
    return value_based.train(validate(cfg))


@hydra.main(config_path="conf", config_name="m_dqn", version_base=None)
def main(cfg: DictConfig) -> None:
    check_group_choice("loss", LOSSES)  # another recipe's loss group composes too (shared conf/loss/)
    metrics = train(cfg)
    report_summary(metrics)
    exit_if_interrupted(metrics)  # exit status 75 after a stop: the run is not finished


if __name__ == "__main__":
    main()
