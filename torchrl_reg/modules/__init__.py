"""Networks, policies and exploration modules."""
from __future__ import annotations

from torchrl_reg.modules.critics import state_action_value_network, state_value_network
from torchrl_reg.modules.exploration import AnnealedEpsilonGreedy, BoltzmannExploration, linear_schedule
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork, make_iqn_network
from torchrl_reg.modules.mirl import ActionPrior, PriorEGreedyModule
from torchrl_reg.modules.policies import categorical_policy, multicategorical_policy, tanh_normal_policy
from torchrl_reg.modules.q_networks import NETWORK_KINDS, MLPQNet, QNetwork, make_q_network
from torchrl_reg.modules.soft_q import AmortizedSampler, svgd_sampler_actor
from torchrl_reg.modules.torsos import MinAtarTorso, NatureCNNTorso

__all__ = [
    "ActionPrior",
    "AmortizedSampler",
    "AnnealedEpsilonGreedy",
    "BoltzmannExploration",
    "linear_schedule",
    "ImplicitQuantileNetwork",
    "MLPQNet",
    "MinAtarTorso",
    "NETWORK_KINDS",
    "NatureCNNTorso",
    "PriorEGreedyModule",
    "QNetwork",
    "categorical_policy",
    "make_iqn_network",
    "make_q_network",
    "multicategorical_policy",
    "state_action_value_network",
    "state_value_network",
    "svgd_sampler_actor",
    "tanh_normal_policy",
]
