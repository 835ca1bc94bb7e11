"""Networks, policies and exploration modules."""
from __future__ import annotations

from torchrl_reg.modules.exploration import AnnealedEpsilonGreedy, BoltzmannExploration

__all__ = ["AnnealedEpsilonGreedy", "BoltzmannExploration"]
