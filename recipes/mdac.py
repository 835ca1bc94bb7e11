"""MDAC (Mirror Descent Actor Critic) and its unbounded ablation (a naive M-SAC) on MuJoCo and Pendulum.

    python recipes/mdac.py                                # MDAC on HalfCheetah-v5 (beta 0.9, f = tanh(x/10))
    python recipes/mdac.py env=hopper seed=3
    python recipes/mdac.py loss=mdac_unbounded            # f = identity: the naive instantiation of MDVI
    python recipes/mdac.py loss.bound=clip                # f = clip(x/10, -1, 1)
    python recipes/mdac.py loss=mdac_bound_current_only   # ablation: f on the current term only (successor: identity)
    python recipes/mdac.py loss=mdac_bound_successor_only # ablation: f on the successor term only
    python recipes/mdac.py policy.scale_lb=0.0067         # the policy's std floor (default 0.1, TorchRL's SAC's)
    python recipes/mdac.py env=pendulum                   # Pendulum-v1, minutes on a CPU

Paper: Iwaki, "Mirror Descent Actor Critic via Bounded Advantage Learning" (arXiv:2502.03854, 2025).
SAC's tanh-Gaussian actor, twin critics with Polyak targets (rate ``loss.polyak``) and its temperature
tuned towards ``-dim(A)``, with the critics' target of MDVI in its Munchausen form, ``r + beta
f(alpha ln pi(a|s)) + gamma [min Q(s', a') - f(alpha ln pi(a'|s'))]``, each log-density term through the
bounding function ``f`` (:class:`~torchrl_reg.objectives.MDACLoss`; ``loss.bound_current`` /
``loss.bound_successor`` and their ``_scale`` bound one term each). Not from the paper (whose body could not be
read): beta 0.9, the scale 10 of ``tanh(x/10)`` and the network sizes (SAC's 2x256). The presets are SAC's
(``protocol/control/<family>.yaml``, shared with ``recipes/sac.py`` and ``recipes/iq.py``, so the three compare
on the same budget, evaluation and logs). The loop is :func:`torchrl_reg.loops.actor_critic.train`; the
three terms touch disjoint parameters and are stepped by one Adam (fused into one compiled graph with
``compile=true``). The loss logs ``train/clip_fraction`` (share of log-density terms past the bound's linear
range) and ``train/scaled_log_pi_min`` / ``_max`` (the range of ``alpha ln pi`` entering the target).
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from omegaconf import DictConfig
from torchrl.envs import EnvBase
from torchrl.modules import ProbabilisticActor

from torchrl_reg.configs import ActorCriticLossConfig, GaussianPolicyConfig, arguments_of, default_of, recipe_schema
from torchrl_reg.loops import actor_critic, recipe_entry, register_loss
from torchrl_reg.objectives import MDACLoss
from torchrl_reg.envs.specs import action_spec_of
from torchrl_reg.objectives.mdac import check_target_entropy, resolve_bounds
from torchrl_reg.validation import ReadOnlyIf


@dataclass
class MDACLossConfig(ActorCriticLossConfig):
    """:class:`MDACLoss`'s settings, its defaults: ``beta`` (Munchausen coefficient), ``bound`` /
    ``bound_scale`` (the bounding function of both log-density terms), ``bound_current`` / ``bound_successor``
    and their ``_scale`` (one term's, null: the shared one), SAC's temperature (``alpha_init``, ``fixed_alpha``,
    ``target_entropy``: ``None`` is ``-dim(A)``), ``num_qvalue_nets`` and the critics' ``loss_function``."""

    name: str = "mdac"
    #: Munchausen coefficient of the bounded log-policy term on the replayed action (0.9: not from the paper)
    beta: float = default_of(MDACLoss, "beta")
    #: bounding function of both log-density terms: tanh, clip, or none (naive M-SAC)
    bound: str = default_of(MDACLoss, "bound")
    #: c of the bounded choices: tanh(x / c) or clip(x / c, -1, 1) (10: not from the paper)
    bound_scale: float = default_of(MDACLoss, "bound_scale")
    #: bound of the current (Munchausen) term alone: tanh, clip, none (null: loss.bound)
    bound_current: Optional[str] = default_of(MDACLoss, "bound_current")
    #: its c (null: loss.bound_scale)
    bound_current_scale: Optional[float] = default_of(MDACLoss, "bound_current_scale")
    #: bound of the successor (next-state entropy) term alone: tanh, clip, none (null: loss.bound)
    bound_successor: Optional[str] = default_of(MDACLoss, "bound_successor")
    #: its c (null: loss.bound_scale)
    bound_successor_scale: Optional[float] = default_of(MDACLoss, "bound_successor_scale")
    #: initial entropy coefficient alpha
    alpha_init: float = default_of(MDACLoss, "alpha_init")
    #: keep alpha at alpha_init (false: tune it towards target_entropy)
    fixed_alpha: bool = default_of(MDACLoss, "fixed_alpha")
    #: entropy alpha is tuned to (null: -dim(action))
    target_entropy: Optional[float] = None
    #: critics (the min of them in the target)
    num_qvalue_nets: int = default_of(MDACLoss, "num_qvalue_nets")
    #: the critics' regression loss
    loss_function: str = default_of(MDACLoss, "loss_function")

    # A fixed temperature has no target entropy. A scale no term reads (the identity has none) is refused by
    # MDACLoss's own checks (run on the config by its validation), which see the per-term keys together.
    read_only_if: ClassVar[ReadOnlyIf] = {"target_entropy": ("fixed_alpha", lambda fixed: not fixed)}


MDACConfig = recipe_schema("mdac", loss=MDACLossConfig, policy=GaussianPolicyConfig)


def target_entropy(loss: DictConfig) -> float | str:
    """The loss's ``target_entropy`` from the config's: null is the loss's ``"auto"``, -dim(A) (a config value
    is a float or null, never a string)."""
    return "auto" if loss.target_entropy is None else loss.target_entropy


def method_name(loss: DictConfig) -> str:
    """The run's ``"loss"`` in ``metrics.json``: ``mdac``; ``mdac_unbounded`` for the identity on both terms (the
    paper's ablation); ``mdac_bound_current_only`` / ``mdac_bound_successor_only`` when one term is the identity."""
    bounds = resolve_bounds(loss)
    unbounded = {term for term, (bound, _) in bounds.items() if bound == "none"}
    if unbounded == {"current", "successor"}:
        return "mdac_unbounded"
    if unbounded:
        return "mdac_bound_current_only" if "successor" in unbounded else "mdac_bound_successor_only"
    return "mdac"


def from_config(cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[ProbabilisticActor, MDACLoss]:
    """The tanh-Gaussian actor and :class:`MDACLoss` over it and ``loss.num_qvalue_nets`` critics, gamma set."""
    actor, qvalue = actor_critic.actor_and_qvalue(cfg, env, device, scale_lb=cfg.policy.scale_lb)
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


def rules(cfg: DictConfig) -> None:
    """``loss.target_entropy`` at most the largest entropy on the env's action box (the loss checks it again on its
    actor's spec), before anything is built."""
    if cfg.loss.target_entropy is not None:
        check_target_entropy(cfg.loss.target_entropy, action_spec_of(cfg.env), prefix="loss.")


validate, train, main = recipe_entry("mdac", MDACConfig, rules)

if __name__ == "__main__":
    main()
