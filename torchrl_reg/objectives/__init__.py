"""TorchRL loss modules of regularized RL, and the gradient step they share (:mod:`.update`)."""
from __future__ import annotations

from torchrl_reg.objectives.common import RegularizedDQNLossBase, RegularizedLossBase
from torchrl_reg.objectives.graph_update import CudaGraphUpdate, host_syncs
from torchrl_reg.objectives.implicit_q import ImplicitQLoss
from torchrl_reg.objectives.iqn import IQNLoss, MunchausenIQNLoss
from torchrl_reg.objectives.mdac import MDACLoss
from torchrl_reg.objectives.mirl import MIRLLoss
from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss, TsallisMunchausenDQNLoss
from torchrl_reg.objectives.protocols import FusableLoss, InputChecks, protocol_gaps
from torchrl_reg.objectives.soft_q import SoftQLearningLoss, SoftQLoss, SVGDPolicyLoss, TemperatureSchedule
from torchrl_reg.objectives.update import FusedAdamUpdate, make_update, total_loss
from torchrl_reg.objectives.virel import DiscreteVIRELLoss, VIRELLoss

__all__ = [
    "AdvantageLearningLoss",
    "CudaGraphUpdate",
    "DiscreteVIRELLoss",
    "FusableLoss",
    "FusedAdamUpdate",
    "IQNLoss",
    "ImplicitQLoss",
    "InputChecks",
    "MDACLoss",
    "MIRLLoss",
    "MunchausenDQNLoss",
    "MunchausenIQNLoss",
    "SVGDPolicyLoss",
    "SoftQLearningLoss",
    "SoftQLoss",
    "TemperatureSchedule",
    "TsallisMunchausenDQNLoss",
    "RegularizedDQNLossBase",
    "RegularizedLossBase",
    "host_syncs",
    "make_update",
    "protocol_gaps",
    "total_loss",
    "VIRELLoss",
]
