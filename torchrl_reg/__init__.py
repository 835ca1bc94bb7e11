"""torchrl_reg: regularized reinforcement learning for TorchRL."""
from __future__ import annotations

# First, before any third-party import: an entry point (python -m torchrl_reg.sweep, ...) imports nothing
# from the working directory.
from torchrl_reg.cli import isolate_entry_point

isolate_entry_point()

from torchrl_reg import functional, modules, objectives, tabular, value

__version__ = "0.1.0"

__all__ = ["functional", "modules", "objectives", "tabular", "value", "__version__"]
