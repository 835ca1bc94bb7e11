"""Munchausen-DQN, Soft-DQN, MVI(q), advantage learning and DQN on classic control, MinAtar and Atari.

    python recipes/m_dqn.py                                  # M-DQN on CartPole-v1, CleanRL's schedule
    python recipes/m_dqn.py loss=dqn env=acrobot seed=3      # DQN baseline on Acrobot-v1
    python recipes/m_dqn.py env=minatar env.name=SpaceInvaders loss=soft_dqn
    python recipes/m_dqn.py env=atari env.name=Breakout buffer=prioritized

Losses (``loss=``): ``m_dqn`` (:class:`~torchrl_reg.objectives.munchausen.MunchausenDQNLoss`),
``soft_dqn`` (the same with alpha=0), ``mvi_q``
(:class:`~torchrl_reg.objectives.munchausen.TsallisMunchausenDQNLoss`, M-DQN with the Tsallis KL, ``loss.q=2``:
sparsemax), ``al`` / ``pal`` (:class:`~torchrl_reg.objectives.munchausen.AdvantageLearningLoss`) and ``dqn``
(TorchRL's ``DQNLoss``). Paper: Vieillard, Pietquin, Geist, "Munchausen Reinforcement Learning", NeurIPS 2020
(arXiv:2007.14430), Eq. (2) (the M-DQN target); MVI(q): Zhu, Chen, Schlegel, White, "General Munchausen
Reinforcement Learning with Tsallis Kullback-Leibler Divergence", NeurIPS 2023 (arXiv:2301.11476), Sec. 4;
advantage learning: Bellemare, Ostrovski, Guez, Thomas, Munos, "Increasing the Action Gap: New Operators for
Reinforcement Learning", AAAI 2016 (arXiv:1512.04860).

The loop is :func:`torchrl_reg.loops.value_based.train` (epsilon-greedy collection from
``num_envs`` envs, one gradient step per ``frames_per_update`` frames, target copy every
``target_update_interval`` frames); this file declares the config and registers the losses. The
run-directory contract (config.yaml, CSV logs, checkpoint.pt, metrics.json, learning_curve.png,
resume, stop signals) is :mod:`torchrl_reg.run`'s.
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from omegaconf import DictConfig
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss

from torchrl_reg.configs import ValueBasedLossConfig, arguments_of, default_of, recipe_schema
from torchrl_reg.loops import recipe_entry, register_loss
from torchrl_reg.loops.value_based import dqn_from_config
from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss, TsallisMunchausenDQNLoss
from torchrl_reg.validation import ReadOnlyIf

MUNCHAUSEN = ("m_dqn", "soft_dqn", "mvi_q")


@dataclass
class LossConfig(ValueBasedLossConfig):
    """``name`` picks the loss; ``alpha``/``tau``/clip bounds are the paper's symbols (defaults:
    :class:`MunchausenDQNLoss`'s, the official M-DQN values)."""

    #: m_dqn, soft_dqn (alpha=0), mvi_q (M-DQN with the Tsallis KL), al, pal or dqn (TorchRL's DQNLoss)
    name: str = "m_dqn"
    #: weight of the Munchausen / advantage term (0: no term)
    alpha: float = default_of(MunchausenDQNLoss, "alpha")
    #: entropy temperature (the softmax policy's)
    tau: float = default_of(MunchausenDQNLoss, "tau")
    #: lower clip of the Munchausen term tau ln pi
    clip_value_min: float = default_of(MunchausenDQNLoss, "clip_value_min")
    #: upper clip of the Munchausen term tau ln pi
    clip_value_max: float = default_of(MunchausenDQNLoss, "clip_value_max")
    #: entropic index of MVI(q)'s Tsallis policy: 2 (sparsemax) or 1 (softmax, M-DQN)
    q: float = default_of(TsallisMunchausenDQNLoss, "q")
    #: regression loss of the critic: l2, l1 or smooth_l1 (Huber)
    loss_function: str = default_of(MunchausenDQNLoss, "loss_function")

    # DQN reads neither alpha nor tau, advantage learning no tau, only MVI(q) q: a value given to them is refused.
    read_only_if: ClassVar[ReadOnlyIf] = {
        "alpha": ("name", (*MUNCHAUSEN, "al", "pal")),
        **{key: ("name", MUNCHAUSEN) for key in ("tau", "clip_value_min", "clip_value_max")},
        "q": ("name", ("mvi_q",)),
    }


MDQNConfig = recipe_schema("m_dqn", loss=LossConfig)


def check_soft_dqn(cfg: DictConfig) -> None:
    """Soft-DQN is M-DQN with alpha = 0 (the schema, the loss's argument checks and the update mode are
    :func:`~torchrl_reg.loops.recipe_entry`'s)."""
    if cfg.loss.name == "soft_dqn" and cfg.loss.alpha != 0.0:
        raise ValueError(f"loss=soft_dqn is M-DQN with alpha=0, got loss.alpha={cfg.loss.alpha}; use loss=m_dqn")


def from_config(
    cfg: DictConfig, actor: QValueActor, *, loss_class: type, **fixed: Any
) -> MunchausenDQNLoss | AdvantageLearningLoss:
    """``loss_class`` over ``actor`` with the config's values of its arguments (:func:`arguments_of`:
    alpha, tau and clip bounds for M-DQN, q too for MVI(q), alpha for AL) and ``fixed`` ones, gamma in the value
    estimator."""
    loss = loss_class(
        actor,
        **arguments_of(loss_class, cfg.loss),
        **fixed,
        delay_value=True,
        action_space=actor.spec,
        check_finite=True,  # a NaN/inf observation or reward stops the run, naming the key and index
    )
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return loss


for _name in ("m_dqn", "soft_dqn"):  # Soft-DQN is M-DQN with alpha = 0
    register_loss(_name, MunchausenDQNLoss, partial(from_config, loss_class=MunchausenDQNLoss), family="value_based")
register_loss(
    "mvi_q", TsallisMunchausenDQNLoss, partial(from_config, loss_class=TsallisMunchausenDQNLoss), family="value_based"
)
for _name, _persistent in (("al", False), ("pal", True)):
    register_loss(
        _name, AdvantageLearningLoss, partial(from_config, loss_class=AdvantageLearningLoss, persistent=_persistent),
        family="value_based",
    )
register_loss("dqn", DQNLoss, dqn_from_config, family="value_based", fused_update=False)  # TorchRL's, the baseline


validate, train, main = recipe_entry("m_dqn", MDQNConfig, check_soft_dqn)

if __name__ == "__main__":
    main()
