"""Environments: the env families a recipe runs on, built and vectorized for TorchRL, and their state as plain data.

* :mod:`~torchrl_reg.envs.ids`: the gymnasium id an ``EnvConfig`` names (:data:`ENV_FAMILIES`);
* :mod:`~torchrl_reg.envs.make`: :func:`make_env` (the TorchRL env of a run), :func:`make_single_env`,
  :func:`make_vector_env`;
* the env classes: :class:`AtariPreprocessing` (:mod:`~torchrl_reg.envs.atari`), :class:`MinAtarChannelsFirst`
  and :class:`MujocoFloat32` (:mod:`~torchrl_reg.envs.wrappers`), :class:`VectorCartPole`
  (:mod:`~torchrl_reg.envs.cartpole`), :class:`MultiGoalEnv` (:mod:`~torchrl_reg.envs.multigoal`);
* :mod:`~torchrl_reg.envs.specs`: action-space checks, :func:`num_actions`;
* :mod:`~torchrl_reg.envs.state`: :func:`get_env_state` / :func:`set_env_state`, what a checkpoint keeps of the envs.

Environments defined here are registered with gymnasium on import (TorchRL wraps them with ``GymEnv``):
``MultiGoal-v0``, the multi-goal point mass of soft Q-learning (30-step episodes).
"""
from __future__ import annotations

import gymnasium as gym

from torchrl_reg.envs.atari import AtariPreprocessing
from torchrl_reg.envs.cartpole import VectorCartPole
from torchrl_reg.envs.ids import ENV_FAMILIES, MINATAR_GAMES, gym_env_id
from torchrl_reg.envs.make import NATIVE_VECTOR_ENVS, make_env, make_single_env, make_vector_env
from torchrl_reg.envs.multigoal import MultiGoalEnv
from torchrl_reg.envs.specs import check_action_space, check_box_action_spec, check_discrete_action_spec, num_actions
from torchrl_reg.envs.state import get_env_state, set_env_state
from torchrl_reg.envs.wrappers import MinAtarChannelsFirst, MujocoFloat32

__all__ = [
    "ENV_FAMILIES",
    "MINATAR_GAMES",
    "NATIVE_VECTOR_ENVS",
    "AtariPreprocessing",
    "MinAtarChannelsFirst",
    "MujocoFloat32",
    "MultiGoalEnv",
    "VectorCartPole",
    "check_action_space",
    "check_box_action_spec",
    "check_discrete_action_spec",
    "get_env_state",
    "gym_env_id",
    "make_env",
    "make_single_env",
    "make_vector_env",
    "num_actions",
    "set_env_state",
]

if "MultiGoal-v0" not in gym.registry:
    gym.register(id="MultiGoal-v0", entry_point="torchrl_reg.envs.multigoal:MultiGoalEnv", max_episode_steps=30)
