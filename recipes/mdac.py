"""MDAC (Mirror Descent Actor Critic) and its unbounded ablation (a naive M-SAC) on MuJoCo and Pendulum.

    python recipes/mdac.py                                # MDAC on HalfCheetah-v5 (beta 0.9, f = tanh(x/10))
    python recipes/mdac.py env=hopper seed=3
    python recipes/mdac.py loss=mdac_unbounded            # f = identity: the naive instantiation of MDVI
    python recipes/mdac.py loss.bound=clip                # f = clip(x/10, -1, 1)
    python recipes/mdac.py env=pendulum                   # Pendulum-v1, minutes on a CPU

Paper: Iwaki, "Mirror Descent Actor Critic via Bounded Advantage Learning" (arXiv:2502.03854, 2025).
SAC's tanh-Gaussian actor, twin critics with Polyak targets (rate ``loss.polyak``) and its temperature
tuned towards ``-dim(A)``, with the critics' target of MDVI in its Munchausen form, ``r + beta
f(alpha ln pi(a|s)) + gamma [min Q(s', a') - f(alpha ln pi(a'|s'))]``, each log-density term through the
bounding function ``f`` (:class:`~torchrl_reg.objectives.MDACLoss`). The presets are SAC's
(``protocol/control/<family>.yaml``, shared with ``recipes/sac.py`` and ``recipes/iq.py``, so the three compare
on the same budget, evaluation and logs). The loop is :func:`torchrl_reg.loops.actor_critic.train`; the
three terms touch disjoint parameters and are stepped by one Adam (fused into one compiled graph with
``compile=true``). The loss logs ``train/clip_fraction`` (share of log-density terms past the bound's linear
range) and ``train/scaled_log_pi_min`` / ``_max`` (the range of ``alpha ln pi`` entering the target).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from omegaconf import DictConfig
from torchrl.envs import EnvBase
from torchrl.modules import ProbabilisticActor

from torchrl_reg.configs import ActorCriticLossConfig, arguments_of, default_of, recipe_schema
from torchrl_reg.loops import actor_critic, recipe_entry, register_loss
from torchrl_reg.objectives import MDACLoss
from torchrl_reg.validation import ReadOnlyIf


@dataclass
class MDACLossConfig(ActorCriticLossConfig):
    """:class:`MDACLoss`'s settings, its defaults: ``beta`` (Munchausen coefficient), ``bound`` /
    ``bound_scale`` (the bounding function), SAC's temperature (``alpha_init``, ``fixed_alpha``,
    ``target_entropy``: ``None`` is ``-dim(A)``), ``num_qvalue_nets`` and the critics' ``loss_function``."""

    name: str = "mdac"
    beta: float = default_of(MDACLoss, "beta")
    bound: str = default_of(MDACLoss, "bound")
    bound_scale: float = default_of(MDACLoss, "bound_scale")
    alpha_init: float = default_of(MDACLoss, "alpha_init")
    fixed_alpha: bool = default_of(MDACLoss, "fixed_alpha")
    target_entropy: Optional[float] = None
    num_qvalue_nets: int = default_of(MDACLoss, "num_qvalue_nets")
    loss_function: str = default_of(MDACLoss, "loss_function")

    docs: ClassVar[dict[str, str]] = {
        "beta": "Munchausen coefficient of the bounded log-policy term on the replayed action",
        "bound": "bounding function of both log-density terms: tanh, clip, or none (naive M-SAC)",
        "bound_scale": "c of the bounded choices: tanh(x / c) or clip(x / c, -1, 1)",
        "alpha_init": "initial entropy coefficient alpha",
        "fixed_alpha": "keep alpha at alpha_init (false: tune it towards target_entropy)",
        "target_entropy": "entropy alpha is tuned to (null: -dim(action))",
        "num_qvalue_nets": "critics (the min of them in the target)",
        "loss_function": "the critics' regression loss",
    }
    # The identity has no scale; a fixed temperature has no target entropy.
    read_only_if: ClassVar[ReadOnlyIf] = {
        "bound_scale": ("bound", lambda bound: bound != "none"),
        "target_entropy": ("fixed_alpha", lambda fixed: not fixed),
    }


MDACConfig = recipe_schema("mdac", loss=MDACLossConfig)


def target_entropy(loss: DictConfig) -> float | str:
    """The loss's ``target_entropy`` from the config's: null is the loss's ``"auto"``, -dim(A) (a config value
    is a float or null, never a string)."""
    return "auto" if loss.target_entropy is None else loss.target_entropy


def method_name(loss: DictConfig) -> str:
    """``mdac``, or ``mdac_unbounded`` for the identity (the ablation): the run's ``"loss"`` in ``metrics.json``."""
    return "mdac_unbounded" if loss.bound == "none" else "mdac"


def from_config(cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[ProbabilisticActor, MDACLoss]:
    """The tanh-Gaussian actor and :class:`MDACLoss` over it and ``loss.num_qvalue_nets`` critics, gamma set."""
    actor, qvalue = actor_critic.actor_and_qvalue(cfg, env, device)
    settings = arguments_of(MDACLoss, cfg.loss) | {"target_entropy": target_entropy(cfg.loss)}
    # A NaN/inf observation or reward stops the run naming the key and index (one sync per update).
    loss = MDACLoss(actor, qvalue, **settings, check_finite=True)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return actor, loss


register_loss(
    "mdac", MDACLoss, from_config, family="actor_critic",
    label=lambda cfg: method_name(cfg.loss), metrics=lambda cfg: {"policy": "gaussian"},
    values=lambda cfg: {"target_entropy": target_entropy(cfg.loss)},
)


validate, train, main = recipe_entry("mdac", MDACConfig)

if __name__ == "__main__":
    main()
