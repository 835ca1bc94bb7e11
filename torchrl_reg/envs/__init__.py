"""Environments defined by torchrl_reg, registered with gymnasium on import (TorchRL wraps them with ``GymEnv``).

* ``MultiGoal-v0``: :class:`~torchrl_reg.envs.multigoal.MultiGoalEnv`, the multi-goal point mass of
  soft Q-learning (30-step episodes).
"""
from __future__ import annotations

import gymnasium as gym

from torchrl_reg.envs.multigoal import MultiGoalEnv

__all__ = ["MultiGoalEnv"]

if "MultiGoal-v0" not in gym.registry:
    gym.register(id="MultiGoal-v0", entry_point="torchrl_reg.envs.multigoal:MultiGoalEnv", max_episode_steps=30)
