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

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from omegaconf import DictConfig
from torchrl.modules import QValueActor

from torchrl_reg.configs import ValueBasedLossConfig, arguments_of, default_of, recipe_schema
from torchrl_reg.loops import recipe_entry, register_loss
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork, make_iqn_network
from torchrl_reg.objectives.iqn import IQNLoss, MunchausenIQNLoss
from torchrl_reg.validation import ReadOnlyIf, check_count


@dataclass
class IQNLossConfig(ValueBasedLossConfig):
    """The papers' symbols, defaults those of the loss classes (the network's for ``embedding_dim``);
    each env preset sets N, N', K. ``name`` picks the loss."""

    #: threshold of the quantile Huber loss
    kappa: float = default_of(IQNLoss, "kappa")
    #: quantile fractions sampled for the online network (N)
    num_quantiles: int = default_of(IQNLoss, "num_quantiles")
    #: quantile fractions sampled for the target (N')
    num_target_quantiles: int = default_of(IQNLoss, "num_target_quantiles")
    #: quantile fractions averaged into Q for the policy (K)
    num_policy_quantiles: int = default_of(IQNLoss, "num_policy_quantiles")
    #: cosine embedding size of the quantile fraction
    embedding_dim: int = default_of(ImplicitQuantileNetwork, "embedding_dim")
    #: draw the fractions per transition (true) or once per batch
    independent_fractions: bool = default_of(IQNLoss, "independent_fractions")
    # What M-IQN adds to IQN: plain IQN reads none of these.
    #: weight of the Munchausen / advantage term (0: no term)
    alpha: float = default_of(MunchausenIQNLoss, "alpha")
    #: entropy temperature (the softmax policy's)
    tau: float = default_of(MunchausenIQNLoss, "tau")
    #: lower clip of the Munchausen term tau ln pi
    clip_value_min: float = default_of(MunchausenIQNLoss, "clip_value_min")
    #: upper clip of the Munchausen term tau ln pi
    clip_value_max: float = default_of(MunchausenIQNLoss, "clip_value_max")
    #: m_iqn (Munchausen IQN) or iqn
    name: str = "m_iqn"

    read_only_if: ClassVar[ReadOnlyIf] = {
        key: ("name", ("m_iqn",)) for key in ("alpha", "tau", "clip_value_min", "clip_value_max")
    }


MIQNConfig = recipe_schema("m_iqn", loss=IQNLossConfig)


def check_embedding(cfg: DictConfig) -> None:
    """``loss.embedding_dim``, the network's argument (:func:`make_iqn_network` builds it later)."""
    check_count("loss.embedding_dim", cfg.loss.embedding_dim)


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


def from_config(cfg: DictConfig, actor: QValueActor, *, loss_class: type) -> IQNLoss:
    """``loss_class`` (IQN or M-IQN) over ``actor`` with the config's values of its arguments (:func:`arguments_of`:
    IQN's N, N', K, kappa, independent fractions, which M-IQN passes on to IQN; M-IQN's alpha, tau and clip bounds
    too), gamma in the value estimator."""
    return loss_class(
        actor,
        **arguments_of(loss_class, cfg.loss),
        action_space=actor.spec,
        check_finite=True,  # a NaN/inf observation or reward stops the run, naming the key and index
    ).make_value_estimator(gamma=cfg.loss.gamma)


register_loss(
    "m_iqn", MunchausenIQNLoss, partial(from_config, loss_class=MunchausenIQNLoss), family="value_based", network=network
)
register_loss("iqn", IQNLoss, partial(from_config, loss_class=IQNLoss), family="value_based", network=network)


validate, train, main = recipe_entry("m_iqn", MIQNConfig, check_embedding)

if __name__ == "__main__":
    main()
