"""TorchRL loss modules of regularized RL."""
from __future__ import annotations

from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss

__all__ = ["AdvantageLearningLoss", "MunchausenDQNLoss"]
