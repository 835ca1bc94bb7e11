"""Networks, policies and exploration modules."""
from __future__ import annotations

from torchrl_reg.modules.critics import state_action_value_network, state_value_network
from torchrl_reg.modules.exploration import AnnealedEpsilonGreedy, BoltzmannExploration
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork
from torchrl_reg.modules.mirl import ActionPrior, PriorEGreedyModule
from torchrl_reg.modules.policies import categorical_policy, multicategorical_policy, tanh_normal_policy
from torchrl_reg.modules.soft_q import AmortizedSampler, svgd_sampler_actor

__all__ = [
    "ActionPrior",
    "AmortizedSampler",
    "AnnealedEpsilonGreedy",
    "BoltzmannExploration",
    "ImplicitQuantileNetwork",
    "PriorEGreedyModule",
    "categorical_policy",
    "multicategorical_policy",
    "state_action_value_network",
    "state_value_network",
    "svgd_sampler_actor",
    "tanh_normal_policy",
]
