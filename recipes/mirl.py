"""MIRL, soft Q-learning (SQL), SQL with MIRL's exploration (SQL_m) and DQN on classic control, MinAtar, Atari.

    python recipes/mirl.py                                   # MIRL on CartPole-v1
    python recipes/mirl.py loss=sql seed=3                   # SQL baseline (uniform prior, fixed beta)
    python recipes/mirl.py env=minatar env.name=Breakout loss=mirl collector.total_frames=1000000
    python recipes/mirl.py env=atari env.name=Seaquest loss=dqn

Losses (``loss=``): ``mirl``, ``sql``, ``sql_m`` (:class:`~torchrl_reg.objectives.mirl.MIRLLoss`
configured by :data:`~torchrl_reg.objectives.mirl.VARIANTS`) and ``dqn`` (TorchRL's ``DQNLoss``).
Paper: Grau-Moya, Leibfried, Vrancx, "Soft Q-Learning with Mutual-Information Regularization",
ICLR 2019 (OpenReview HyEtjoCqFX), Algorithm 1 and the behaviour policy of Section 4.

The loop is :func:`torchrl_reg.loops.value_based.train`; Algorithm 1's own steps are
:class:`MIRLHooks`: the behaviour policy (argmax of ``pi ∝ rho exp(beta q)``, with probability
epsilon an action sampled from ``rho``), the prior update with every collected state (line 5) and
the beta update after every gradient step (line 8). The checkpoint holds the prior and beta (loss
buffers); ``metrics.json`` adds the final ``prior`` and ``beta``.
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import TensorSpec
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss

from torchrl_reg.configs import ValueBasedLossConfig, arguments_of, default_of, recipe_schema
from torchrl_reg.loops import ValueBasedHooks, recipe_entry, register_loss
from torchrl_reg.loops.value_based import dqn_from_config
from torchrl_reg.modules.mirl import PriorEGreedyModule
from torchrl_reg.objectives.mirl import VARIANTS, MIRLLoss
from torchrl_reg.validation import ReadOnlyIf


@dataclass
class MIRLLossConfig(ValueBasedLossConfig):
    """``name`` picks the method; the rest are :class:`MIRLLoss` arguments, with its defaults except
    ``beta`` (ignored by ``dqn``).

    ``beta`` starts at 33.3 = 1 / 0.03, Soft-DQN's temperature in the Munchausen paper.
    ``beta_schedule`` ``None`` takes the method's own (MIRL adaptive, SQL and SQL_m fixed).
    """

    #: mirl, sql, sql_m (the paper's variants) or dqn
    name: str = "mirl"
    #: initial inverse temperature beta
    beta: float = 33.3
    #: adaptive (the paper's), linear or fixed (null: the variant's own)
    beta_schedule: Optional[str] = None
    #: step size of the adaptive beta update
    beta_lr: float = default_of(MIRLLoss, "beta_lr")
    #: beta's increase per update (linear schedule)
    beta_slope: float = default_of(MIRLLoss, "beta_slope")
    #: lower bound of beta
    beta_min: float = default_of(MIRLLoss, "beta_min")
    #: upper bound of beta
    beta_max: float = default_of(MIRLLoss, "beta_max")
    #: step size of the learned action prior
    prior_lr: float = default_of(MIRLLoss, "prior_lr")
    #: regression loss of the critic: l2, l1 or smooth_l1 (Huber)
    loss_function: str = default_of(MIRLLoss, "loss_function")

    # DQN reads no MIRL key; SQL's prior is fixed (uniform), so only MIRL and SQL_m read its rate.
    read_only_if: ClassVar[ReadOnlyIf] = {
        **{key: ("name", tuple(VARIANTS)) for key in ("beta", "beta_schedule", "beta_lr", "beta_slope", "beta_min",
                                                      "beta_max")},
        "prior_lr": ("name", tuple(name for name, variant in VARIANTS.items() if variant["learn_prior"])),
    }


MIRLRecipeConfig = recipe_schema("mirl", loss=MIRLLossConfig)


def beta_schedule(loss: DictConfig) -> str:
    """``loss.beta_schedule``, or the variant's own when it is null (:data:`VARIANTS`)."""
    return VARIANTS[loss.name]["beta_schedule"] if loss.beta_schedule is None else loss.beta_schedule


def from_config(cfg: DictConfig, actor: QValueActor) -> MIRLLoss:
    """The variant ``loss.name`` of :class:`MIRLLoss`, gamma in the value estimator."""
    settings = arguments_of(MIRLLoss, cfg.loss)  # beta and its schedule, prior_lr, loss_function
    if settings["beta_schedule"] is None:  # the variant's own schedule
        del settings["beta_schedule"]
    module = MIRLLoss.from_variant(
        cfg.loss.name,
        actor,
        **settings,
        action_space=actor.spec,
        check_finite=True,  # a NaN/inf observation or reward stops the run, naming the key and index
    )
    module.make_value_estimator(gamma=cfg.loss.gamma)
    return module


class MIRLHooks(ValueBasedHooks):
    """Algorithm 1's steps around the value-based loop, all on the loss's prior ``rho`` and ``beta``."""

    def __init__(self, loss: MIRLLoss):
        self.loss = loss

    def exploration(self, action_spec: TensorSpec, cfg: DictConfig) -> TensorDictModuleBase:
        # Behaviour policy: argmax pi, or with probability epsilon a sample of rho.
        return PriorEGreedyModule(
            action_spec, cfg.eps_init, cfg.eps_end, max(cfg.annealing_frames, 1), prior=self.loss.prior
        )

    def greedy_action(self, q: torch.Tensor) -> torch.Tensor:
        return self.loss.prior.greedy_action(q)

    def after_collect(self, data: TensorDictBase) -> None:
        self.loss.update_prior(data)  # line 5: every collected state, all actions

    def after_update(self, out: TensorDictBase) -> None:
        self.loss.update_beta(out)  # line 8: beta <- (1 - a_beta) beta + a_beta / L

    def final_metrics(self) -> dict[str, Any]:
        return {"prior": self.loss.prior.rho.tolist(), "beta": float(self.loss.prior.beta)}


for _variant in VARIANTS:
    register_loss(
        _variant, MIRLLoss, from_config, family="value_based", hooks=lambda cfg, loss: MIRLHooks(loss),
        values=lambda cfg: {"beta_schedule": beta_schedule(cfg.loss)},
    )
register_loss("dqn", DQNLoss, dqn_from_config, family="value_based", fused_update=False)  # TorchRL's, the baseline


validate, train, main = recipe_entry("mirl", MIRLRecipeConfig)

if __name__ == "__main__":
    main()
