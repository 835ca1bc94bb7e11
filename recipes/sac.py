"""SAC (TorchRL's SACLoss, automatic temperature), the baseline of the IQ recipe, same presets.

    python recipes/sac.py                                 # SAC on HalfCheetah-v5
    python recipes/sac.py env=hopper seed=3
    python recipes/sac.py env=pendulum                    # Pendulum-v1, minutes on a CPU
    python recipes/sac.py policy.scale_lb=0.0067          # the policy's std floor (default 0.1, TorchRL's SAC's)

Paper: Haarnoja, Zhou, Hartikainen, Tucker, Ha, Tan, Kumar, Zhu, Gupta, Abbeel, Levine, "Soft
Actor-Critic Algorithms and Applications" (arXiv:1812.05905, 2018), with TorchRL's
:class:`~torchrl.objectives.SACLoss`: a tanh-Gaussian actor, two Q-networks with Polyak targets
(rate ``loss.polyak``, 0.005) and a temperature tuned towards the entropy ``-dim(A)``. The presets
(``protocol/control/mujoco.yaml``: 2x256 MLPs, Adam 3e-4, batch 256, replay 1M, one update per step
after 10k steps) are those of ``recipes/iq.py``, so the two recipes compare on the same budget,
with the same logs, evaluation (deterministic policy: the tanh of the Gaussian mean) and
checkpoints. The loop is :func:`torchrl_reg.loops.actor_critic.train`: actor, critic and
temperature losses are summed and stepped by one Adam over all parameters; the three losses touch
disjoint parameters (TorchRL detaches the critic in the actor loss and the log-probabilities in
the temperature loss) and Adam is per-parameter, so this is the three-optimizer update of the
paper with one backward pass.
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.modules import ProbabilisticActor
from torchrl.objectives import SACLoss

from torchrl_reg.configs import ActorCriticLossConfig, GaussianPolicyConfig, arguments_of, default_of, recipe_schema
from torchrl_reg.loops import LoopHooks, RewardScale, actor_critic, recipe_entry, register_loss
from torchrl_reg.validation import ArgumentChecks, check_count, check_positive, check_range, optional


@dataclass
class SACLossConfig(ActorCriticLossConfig):
    """SACLoss settings (its defaults unless said); ``target_entropy`` ``None`` is TorchRL's ``"auto"`` (``-dim(A)``).

    ``reward_scale`` multiplies the rewards the loss sees (the logged returns stay unscaled);
    ``delay_actor`` samples the bootstrap action ``a' ~ pi(.|s')`` from a Polyak-averaged copy of
    the actor. Haarnoja et al. 2018b: 1, -dim(A), False (the defaults). Dopamine's MuJoCo SAC
    (``sac.gin``, the source of the published baselines) uses ``reward_scale=0.1``,
    ``target_entropy=-dim(A)/2`` and one target copy of actor and critics (``delay_actor=true``).
    ``loss_function`` is the paper's squared error (TorchRL's default is ``smooth_l1``).
    """

    name: str = "sac"
    #: initial entropy coefficient alpha (learned)
    alpha_init: float = default_of(SACLoss, "alpha_init")
    #: entropy alpha is tuned to (null: -dim(action))
    target_entropy: Optional[float] = None
    #: critics (the min of two in the target)
    num_qvalue_nets: int = default_of(SACLoss, "num_qvalue_nets")
    #: regression loss of the critic: l2, l1 or smooth_l1 (Huber)
    loss_function: str = "l2"
    #: multiplies the rewards the loss sees (Dopamine's reward_scale_factor)
    reward_scale: float = 1.0
    #: a target copy of the actor for the next actions
    delay_actor: bool = default_of(SACLoss, "delay_actor")


SACConfig = recipe_schema("sac", loss=SACLossConfig, policy=GaussianPolicyConfig)


class SACArguments(ArgumentChecks):
    """The ranges of the SAC settings this recipe passes on (TorchRL's SACLoss checks none of them): the loss's
    arguments and :class:`SACHooks`' ``reward_scale``; the registry entry checks the ``loss`` group with them."""

    argument_checks = {
        "alpha_init": check_positive,
        "num_qvalue_nets": check_count,
        "target_entropy": optional(check_range),  # null: TorchRL's "auto", -dim(A)
        "reward_scale": check_positive,
    }


def from_config(cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[ProbabilisticActor, SACLoss]:
    """The tanh-Gaussian actor and :class:`SACLoss` over it and ``loss.num_qvalue_nets`` critics, gamma set."""
    actor, qvalue = actor_critic.actor_and_qvalue(cfg, env, device, scale_lb=cfg.policy.scale_lb)
    settings = arguments_of(SACLoss, cfg.loss)  # num_qvalue_nets, loss_function, alpha_init, delay_actor, ...
    if settings["target_entropy"] is None:
        settings["target_entropy"] = "auto"
    loss = SACLoss(actor, qvalue, action_spec=env.action_spec_unbatched, **settings)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return actor, loss


class SACHooks(RewardScale):
    """:class:`RewardScale` (``loss.reward_scale``; 1 leaves the rewards as they are), and the policy's
    entropy drawn beside the return in ``learning_curve.png``."""

    def curve_scalars(self) -> dict[str, str]:
        return {"entropy": "policy entropy"}


def hooks(cfg: DictConfig, loss: SACLoss) -> LoopHooks:
    """:class:`SACHooks` at ``loss.reward_scale``."""
    return SACHooks(cfg.loss.reward_scale)


# TorchRL's SACLoss has no loss_and_outputs: the generic (compiled) update.
register_loss(
    "sac", SACLoss, from_config, family="actor_critic", hooks=hooks, metrics=lambda cfg: {"policy": "gaussian"},
    fused_update=False, checks=(SACArguments,),
)


validate, train, main = recipe_entry("sac", SACConfig)

if __name__ == "__main__":
    main()
