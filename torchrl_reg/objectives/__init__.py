"""TorchRL loss modules of regularized RL."""
from __future__ import annotations

from torchrl_reg.objectives.implicit_q import ImplicitQLoss
from torchrl_reg.objectives.iqn import IQNLoss, MunchausenIQNLoss
from torchrl_reg.objectives.mirl import MIRLLoss
from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss

__all__ = [
    "AdvantageLearningLoss",
    "IQNLoss",
    "ImplicitQLoss",
    "MIRLLoss",
    "MunchausenDQNLoss",
    "MunchausenIQNLoss",
]
