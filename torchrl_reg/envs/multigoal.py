"""The multi-goal point mass of soft Q-learning, as a gymnasium env registered as ``MultiGoal-v0``.

[SQL] Haarnoja, Tang, Abbeel, Levine, "Reinforcement Learning with Deep Energy-Based Policies",
ICML 2017, arXiv:1702.08165, Section 5.1 ("Didactic Example: Multi-Goal Environment"): a 2-D point
mass starts near the origin and is rewarded for reaching any of four goals, so the optimal
maximum-entropy policy is multimodal. The dynamics and reward follow the reference implementation:

* position ``s`` in ``[-7, 7]^2``, start ``s_0 ~ N(0, 0.1^2 I)``;
* action ``a`` in ``[-1, 1]^2`` (clipped), ``s' = clip(s + a, -7, 7)``;
* reward ``r = -30 ||a||^2 - min_g ||s' - g||^2`` at the new position, goals ``(+-5, 0), (0, +-5)``;
  ``+10`` and termination once ``s'`` is within distance 1 of a goal;
* episodes are truncated after 30 steps (the registered ``max_episode_steps``).

In TorchRL: ``GymEnv("MultiGoal-v0")`` (importing :mod:`torchrl_reg.envs` registers it), or a
recipe's ``env=multigoal`` (family ``classic``).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["GOALS", "MultiGoalEnv", "goal_index"]

GOALS = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
GOAL_RADIUS = 1.0
GOAL_REWARD = 10.0
ACTION_COST = 30.0
DISTANCE_COST = 1.0
POSITION_BOUND = 7.0
INIT_STD = 0.1


def goal_index(position: np.ndarray) -> np.ndarray:
    """Index of the goal within distance 1 of each position ``[..., 2]`` (-1 where none)."""
    distances = np.linalg.norm(np.asarray(position)[..., None, :] - GOALS, axis=-1)
    return np.where(distances.min(-1) < GOAL_RADIUS, distances.argmin(-1), -1)


class MultiGoalEnv(gym.Env):
    """The multi-goal environment of [SQL] Section 5.1 (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-POSITION_BOUND, POSITION_BOUND, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.position = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.position = INIT_STD * self.np_random.standard_normal(2)
        return self.position.astype(np.float32), {}

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self.position = np.clip(self.position + action, -POSITION_BOUND, POSITION_BOUND)
        squared_distances = ((self.position - GOALS) ** 2).sum(-1)
        reward = -ACTION_COST * float(action @ action) - DISTANCE_COST * float(squared_distances.min())
        terminated = bool(np.sqrt(squared_distances.min()) < GOAL_RADIUS)
        if terminated:
            reward += GOAL_REWARD
        return self.position.astype(np.float32), reward, terminated, False, {}
