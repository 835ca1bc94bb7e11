"""Value estimators of regularized RL, registered with TorchRL's value-estimator registry."""
from __future__ import annotations

from torchrl_reg.value.soft import RegValueEstimators, SoftTD0Estimator

__all__ = ["RegValueEstimators", "SoftTD0Estimator"]
