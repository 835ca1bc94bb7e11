"""torchrl_reg: regularized reinforcement learning for TorchRL."""
from __future__ import annotations

from torchrl_reg import functional, modules, objectives, tabular, value

__version__ = "0.1.0"

__all__ = ["functional", "modules", "objectives", "tabular", "value", "__version__"]
