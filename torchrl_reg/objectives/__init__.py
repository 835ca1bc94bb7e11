"""TorchRL loss modules of regularized RL."""
from __future__ import annotations

from torchrl_reg.objectives.implicit_q import ImplicitQLoss
from torchrl_reg.objectives.iqn import IQNLoss, MunchausenIQNLoss
from torchrl_reg.objectives.mirl import MIRLLoss
from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss
from torchrl_reg.objectives.soft_q import SoftQLoss, SVGDPolicyLoss, TemperatureSchedule
from torchrl_reg.objectives.virel import DiscreteVIRELLoss, VIRELLoss

__all__ = [
    "AdvantageLearningLoss",
    "DiscreteVIRELLoss",
    "IQNLoss",
    "ImplicitQLoss",
    "MIRLLoss",
    "MunchausenDQNLoss",
    "MunchausenIQNLoss",
    "SVGDPolicyLoss",
    "SoftQLoss",
    "TemperatureSchedule",
    "VIRELLoss",
]
