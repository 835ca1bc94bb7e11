"""Munchausen-IQN and IQN on classic control, MinAtar and Atari.

    python recipes/m_iqn.py                                   # M-IQN on CartPole-v1 (a few minutes on 2 cores)
    python recipes/m_iqn.py loss=iqn seed=3                   # IQN baseline
    python recipes/m_iqn.py env=minatar env.name=breakout     # Revisiting Rainbow's MinAtar set-up
    python recipes/m_iqn.py env=atari env.name=Breakout       # the paper's Atari set-up (N=N'=64, K=32)

Losses (``loss=``): ``m_iqn`` (:class:`~torchrl_reg.objectives.iqn.MunchausenIQNLoss`) and ``iqn``
(:class:`~torchrl_reg.objectives.iqn.IQNLoss`), on
:class:`~torchrl_reg.modules.iqn.ImplicitQuantileNetwork` (``network.kind``: Nature CNN, MinAtar
conv or MLP torso, :func:`~torchrl_reg.modules.iqn.make_iqn_network`). Papers: Vieillard,
Pietquin, Geist, "Munchausen Reinforcement Learning", NeurIPS 2020 (arXiv:2007.14430), Sec. 4
(M-IQN); Dabney, Ostrovski, Silver, Munos, "Implicit Quantile Networks for Distributional
Reinforcement Learning", ICML 2018 (arXiv:1806.06923).

The loop is :func:`torchrl_reg.loops.value_based.train` (epsilon-greedy on the mean of ``K``
quantiles; Atari: each frame stored once, :class:`~torchrl_reg.data.FrameStackStorage`); this file
declares the config and registers the losses with their network.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import hydra
from omegaconf import DictConfig
from torchrl.modules import QValueActor

from torchrl_reg.loops import register_loss, value_based
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork, make_iqn_network
from torchrl_reg.objectives.iqn import IQNLoss, MunchausenIQNLoss
from torchrl_reg.recipe_utils import (
    STABLE_TAU,
    ValueBasedConfig,
    ValueBasedLossConfig,
    check_choice,
    check_group_choice,
    check_config,
    check_ordered,
    check_positive_int,
    check_range,
    check_unused,
    default_of,
    exit_if_interrupted,
    recipe_schema,
    report_summary,
)

LOSSES = ("m_iqn", "iqn")


@dataclass
class IQNLossConfig(ValueBasedLossConfig):
    """``name`` picks the loss; the other fields are the papers' symbols, defaults those of the loss
    classes (the network's for ``embedding_dim``); each env preset sets N, N', K."""

    name: str = "m_iqn"
    alpha: float = default_of(MunchausenIQNLoss, "alpha")
    tau: float = default_of(MunchausenIQNLoss, "tau")
    clip_value_min: float = default_of(MunchausenIQNLoss, "clip_value_min")
    clip_value_max: float = default_of(MunchausenIQNLoss, "clip_value_max")
    kappa: float = default_of(IQNLoss, "kappa")
    num_quantiles: int = default_of(IQNLoss, "num_quantiles")
    num_target_quantiles: int = default_of(IQNLoss, "num_target_quantiles")
    num_policy_quantiles: int = default_of(IQNLoss, "num_policy_quantiles")
    embedding_dim: int = default_of(ImplicitQuantileNetwork, "embedding_dim")
    independent_fractions: bool = default_of(IQNLoss, "independent_fractions")


MIQNConfig = recipe_schema("m_iqn", ValueBasedConfig, loss=IQNLossConfig)
# What M-IQN adds to IQN: plain IQN reads none of these.
_MUNCHAUSEN_KEYS = ("alpha", "tau", "clip_value_min", "clip_value_max")


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Schema (unknown keys, types) and range checks, all before anything is built."""
    cfg = check_config(cfg, MIQNConfig)
    loss = cfg.loss
    check_choice("loss.name", loss.name, LOSSES)
    check_range("loss.kappa", loss.kappa, 0.0, low_inclusive=False)
    for name in ("num_quantiles", "num_target_quantiles", "num_policy_quantiles", "embedding_dim"):
        check_positive_int(f"loss.{name}", loss[name])
    if loss.name == "m_iqn":
        check_range("loss.alpha", loss.alpha, 0.0, 1.0)
        check_range("loss.tau", loss.tau, *STABLE_TAU)
        check_range("loss.clip_value_min", loss.clip_value_min)
        check_range("loss.clip_value_max", loss.clip_value_max)
        check_ordered("loss.clip_value_min", loss.clip_value_min, "loss.clip_value_max", loss.clip_value_max)
    used = [f.name for f in fields(IQNLossConfig) if loss.name == "m_iqn" or f.name not in _MUNCHAUSEN_KEYS]
    check_unused("loss", loss, IQNLossConfig(), used, f"loss.name={loss.name!r}")
    return cfg


def network(cfg: DictConfig, obs_shape: tuple[int, ...], n_actions: int) -> ImplicitQuantileNetwork:
    """The IQN of ``network.kind``: Atari (Nature CNN, 512 hidden), MinAtar (conv, no hidden) or MLP."""
    return make_iqn_network(
        cfg.network.kind,
        obs_shape,
        n_actions,
        hidden=cfg.network.hidden,
        embedding_dim=cfg.loss.embedding_dim,
        num_policy_quantiles=cfg.loss.num_policy_quantiles,
    )


def _quantile_settings(loss: DictConfig, actor: QValueActor) -> dict[str, Any]:
    return dict(
        num_quantiles=loss.num_quantiles,
        num_target_quantiles=loss.num_target_quantiles,
        num_policy_quantiles=loss.num_policy_quantiles,
        kappa=loss.kappa,
        independent_fractions=loss.independent_fractions,
        action_space=actor.spec,
        check_finite=True,  # a NaN/inf observation or reward stops the run, naming the key and index
    )


def iqn_from_config(cfg: DictConfig, actor: QValueActor) -> IQNLoss:
    """IQN, gamma in the value estimator."""
    return IQNLoss(actor, **_quantile_settings(cfg.loss, actor)).make_value_estimator(gamma=cfg.loss.gamma)


def m_iqn_from_config(cfg: DictConfig, actor: QValueActor) -> MunchausenIQNLoss:
    """M-IQN, gamma in the value estimator."""
    loss = cfg.loss
    return MunchausenIQNLoss(
        actor,
        alpha=loss.alpha,
        tau=loss.tau,
        clip_value_min=loss.clip_value_min,
        clip_value_max=loss.clip_value_max,
        **_quantile_settings(loss, actor),
    ).make_value_estimator(gamma=loss.gamma)


register_loss("m_iqn", MunchausenIQNLoss, m_iqn_from_config, network=network)
register_loss("iqn", IQNLoss, iqn_from_config, network=network)


def train(cfg: DictConfig | dict) -> dict[str, Any]:
    """Train one agent; returns the final metrics (also written to ``<run_dir>/metrics.json``)."""
    return value_based.train(validate(cfg))


@hydra.main(config_path="conf", config_name="m_iqn", version_base=None)
def main(cfg: DictConfig) -> None:
    check_group_choice("loss", LOSSES)  # another recipe's loss group composes too (shared conf/loss/)
    metrics = train(cfg)
    report_summary(metrics)
    exit_if_interrupted(metrics)  # exit status 75 after a stop: the run is not finished


if __name__ == "__main__":
    main()
