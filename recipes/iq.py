"""IQ / M-IQ (implicit Q-values) on MuJoCo and Pendulum, and the (Trust-)PCL ablation.

    python recipes/iq.py                                  # M-IQ on HalfCheetah-v5 (tau 0.01, alpha 0.9, 11 bins)
    python recipes/iq.py env=hopper loss=iq seed=3        # IQ (alpha = 0) on Hopper-v5
    python recipes/iq.py policy=gaussian                  # Gaussian-policy ablation
    python recipes/iq.py policy=gaussian policy.scale_lb=0.0067   # its std floor (default 0.1)
    python recipes/iq.py loss=trust_pcl                   # residual ablation (online value bootstrap)
    python recipes/iq.py env=pendulum                     # Pendulum-v1, learns in minutes on a CPU
    python recipes/iq.py policy.scaled=true               # the scaled softmax softmax(F / tau) of Section 3.3
    python recipes/iq.py loss.clip_value_min=-1 loss.clip_value_max=0   # M-DQN's clip of the Munchausen term

Paper: Vieillard, Pietquin, Geist, "Implicitly Regularized RL with Implicit Q-Values", AISTATS 2022
(arXiv:2108.07041). One policy network (multicategorical, ``policy.num_bins`` values per action
dimension, bounds included; or a tanh-Gaussian) and one state-value network, trained jointly by the
single loss of Eq. (2), :class:`~torchrl_reg.objectives.implicit_q.ImplicitQLoss`, with one Adam
optimizer and Polyak target networks (rate ``loss.polyak``, SAC's 0.005) updated after every
gradient step. ``loss=`` picks M-IQ (``m_iq``: alpha 0.9), IQ (``iq``: alpha 0) or the residual
ablations of Section 6, Trust-PCL (``trust_pcl``) and PCL (``pcl``), which bootstrap on the online
value with tau 1e-4.

The loop is :func:`torchrl_reg.loops.actor_critic.train` (collect with the stochastic policy: a
fresh multicategorical policy is close to uniform over the grid; store; one update per
``optim.frames_per_update`` frames after ``optim.learning_starts``; Polyak targets; evaluation of
the deterministic policy, the per-dimension argmax). This file declares the config, registers the
loss (``implicit_q``, built with its policy and value networks by :func:`from_config`) and its
hooks (:class:`PolicyDiagnostics`): at every log line the replayed actions' ``ln pi`` (online
policy, last minibatch: minimum and quantiles; the Munchausen term is ``alpha tau ln pi``) and the
policy's entropy per action dimension (multicategorical) are logged under ``diag/``, the last values
go to the metrics as ``diagnostics``; the loss logs the fraction of clipped Munchausen terms
(``train/clip_fraction``). ``recipes/sac.py`` runs TorchRL's SAC with the same presets for
side-by-side comparisons.
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.modules import ProbabilisticActor

from torchrl_reg.configs import ActorCriticLossConfig, GaussianPolicyConfig, arguments_of, default_of, recipe_schema
from torchrl_reg.loops import LoopHooks, recipe_entry, register_loss
from torchrl_reg.modules.critics import state_value_network
from torchrl_reg.modules.policies import FactorizedCategorical, multicategorical_policy, tanh_normal_policy
from torchrl_reg.objectives.implicit_q import ImplicitQLoss
from torchrl_reg.run.recipe_run import RecipeRun, crossed
from torchrl_reg.validation import ReadOnlyIf, check_choice, check_count


@dataclass
class IQLossConfig(ActorCriticLossConfig):
    """The paper's symbols: ``tau`` (entropy), ``alpha`` (Munchausen / KL), Eq. (2); defaults are
    :class:`ImplicitQLoss`'s (M-IQ on MuJoCo).

    ``clip_value_min`` / ``clip_value_max``: both or neither; clip ``tau ln pi`` in the Munchausen
    term to these bounds as M-DQN does (``-1``, ``0``). Neither (default): Eq. (2), unclipped.
    """

    #: implicit_q (the one loss; m_iq, iq, trust_pcl and pcl are its settings)
    name: str = "implicit_q"
    #: weight of the Munchausen term (0: PCL-like IQ without it)
    alpha: float = default_of(ImplicitQLoss, "alpha")
    #: entropy temperature (the softmax policy's)
    tau: float = default_of(ImplicitQLoss, "tau")
    #: lower clip of the Munchausen term tau ln pi
    clip_value_min: Optional[float] = default_of(ImplicitQLoss, "clip_value_min")
    #: upper clip of the Munchausen term tau ln pi
    clip_value_max: Optional[float] = default_of(ImplicitQLoss, "clip_value_max")
    #: the value bootstrapped at the next state: target (target network) or online
    bootstrap: str = default_of(ImplicitQLoss, "bootstrap")
    #: regression loss of the critic: l2, l1 or smooth_l1 (Huber)
    loss_function: str = default_of(ImplicitQLoss, "loss_function")

    # IQ and PCL (alpha = 0) have no Munchausen term to clip.
    read_only_if: ClassVar[ReadOnlyIf] = {
        key: ("alpha", lambda alpha: alpha > 0) for key in ("clip_value_min", "clip_value_max")
    }


@dataclass
class PolicyConfig:
    """``multicategorical`` (``num_bins`` per dimension) or ``gaussian`` (tanh-squashed).

    ``scaled``: the multicategorical policy is ``softmax(F / loss.tau)`` (Section 3.3's scaled
    softmax, ``F`` on the Q scale) instead of ``softmax(F)`` (Section 4's formula); ``loss.tau``
    is the one temperature of both.
    """

    #: multicategorical (binned actions) or gaussian (tanh-Gaussian)
    kind: str = "multicategorical"
    #: bins per action dimension (multicategorical)
    num_bins: int = 11
    #: divide the multicategorical logits by tau
    scaled: bool = False
    #: floor of the tanh-Gaussian's std, in (0, 1): 0.1 is TorchRL's SAC's (ln sigma >= -2.3); exp(-5), exp(-20) other
    #: SACs' (gaussian)
    scale_lb: float = GaussianPolicyConfig.scale_lb

    # The std floor is the Gaussian's.
    read_only_if: ClassVar[ReadOnlyIf] = {"scale_lb": ("kind", ("gaussian",))}


IQConfig = recipe_schema("iq", loss=IQLossConfig, policy=PolicyConfig)

#: ``policy.kind`` -> ``(cfg, obs_dim, action_spec) -> policy``; both raise for a non-Box or unbounded action space.
POLICIES = {
    "multicategorical": lambda cfg, obs_dim, spec: multicategorical_policy(
        obs_dim,
        spec,
        num_bins=cfg.policy.num_bins,
        num_cells=list(cfg.network.hidden),
        tau=cfg.loss.tau if cfg.policy.scaled else None,
    ),
    "gaussian": lambda cfg, obs_dim, spec: tanh_normal_policy(
        obs_dim, spec, num_cells=list(cfg.network.hidden), scale_lb=cfg.policy.scale_lb
    ),
}


def method_name(loss: DictConfig) -> str:
    """M-IQ / IQ with the target value, Trust-PCL / PCL with the online one ([IQ] Section 6): the run's
    ``"loss"`` in ``metrics.json``."""
    if loss.bootstrap == "target":
        return "m_iq" if loss.alpha > 0 else "iq"
    return "trust_pcl" if loss.alpha > 0 else "pcl"


def check_policy(cfg: DictConfig) -> None:
    """The ``policy`` group and its one rule with the loss (the scaled softmax divides by ``loss.tau``)."""
    check_choice("policy.kind", cfg.policy.kind, list(POLICIES))
    check_count("policy.num_bins", cfg.policy.num_bins, 2)  # both bounds
    if cfg.policy.scaled and cfg.policy.kind != "multicategorical":
        raise ValueError(
            f"policy.scaled=true divides the multicategorical logits by tau; policy.kind={cfg.policy.kind!r} has no logits"
        )


def from_config(cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[ProbabilisticActor, ImplicitQLoss]:
    """The policy of ``policy.kind`` and :class:`ImplicitQLoss` over it and a state-value network, gamma set."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    policy = POLICIES[cfg.policy.kind](cfg, obs_dim, env.action_spec_unbatched).to(device)
    value = state_value_network(obs_dim, num_cells=list(cfg.network.hidden)).to(device)
    # tau, alpha, clip bounds, bootstrap, loss_function; a NaN/inf observation or reward stops the
    # run naming the key and index (one sync per update).
    loss = ImplicitQLoss(policy, value, **arguments_of(ImplicitQLoss, cfg.loss), check_finite=True)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return policy, loss


LOG_PI_QUANTILES = (0.01, 0.1, 0.5, 0.9)


@torch.no_grad()
def policy_diagnostics(policy: ProbabilisticActor, batch: TensorDictBase) -> dict[str, float]:
    """``ln pi(a|s)`` of the replayed actions of ``batch`` (minimum and :data:`LOG_PI_QUANTILES`) and,
    for the multicategorical policy, the entropy of each action dimension (batch mean; at most ``ln n``).

    Deterministic (no sampling, no random numbers drawn): logging it leaves the run's numbers unchanged.
    """
    dist = policy.get_dist(batch.select(*policy.in_keys))
    log_pi = dist.log_prob(batch.get("action")).reshape(-1).float()
    out = {"log_pi_min": log_pi.min().item()}
    quantiles = torch.quantile(log_pi, torch.tensor(LOG_PI_QUANTILES, dtype=log_pi.dtype, device=log_pi.device))
    out.update({f"log_pi_q{round(100 * q):02d}": v.item() for q, v in zip(LOG_PI_QUANTILES, quantiles)})
    if isinstance(dist, FactorizedCategorical):
        entropy = dist.entropy_per_dimension().reshape(-1, dist.logits.shape[-2]).mean(0)
        out.update({f"entropy_dim{j}": v.item() for j, v in enumerate(entropy)})
    return out


class PolicyDiagnostics(LoopHooks):
    """:func:`policy_diagnostics` of the last minibatch of a batch, logged under ``diag/`` at every log line."""

    def __init__(self, policy: ProbabilisticActor):
        self.policy = policy
        self.last_batch: TensorDictBase | None = None
        self.values: dict[str, float] = {}

    def before_update(self, batch: TensorDictBase) -> None:
        self.last_batch = batch

    def after_batch(self, run: RecipeRun, batch_frames: int) -> None:
        if self.last_batch is None or not crossed(run.cfg.logger.interval, run.frames, batch_frames):
            return
        self.values = policy_diagnostics(self.policy, self.last_batch)
        if run.logger is not None:
            for key, value in self.values.items():
                run.logger.log_scalar(f"diag/{key}", value, step=run.frames)

    def final_metrics(self) -> dict[str, Any]:
        return {"diagnostics": self.values}


register_loss(
    "implicit_q", ImplicitQLoss, from_config, family="actor_critic",
    hooks=lambda cfg, loss: PolicyDiagnostics(loss.policy_network),
    label=lambda cfg: method_name(cfg.loss), metrics=lambda cfg: {"policy": cfg.policy.kind},
)


validate, train, main = recipe_entry("iq", IQConfig, check_policy)

if __name__ == "__main__":
    main()
