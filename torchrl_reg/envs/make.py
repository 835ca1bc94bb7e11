"""Environment presets: classic control, MinAtar and Atari, vectorized and wrapped for TorchRL.

Every env is a gymnasium vector env of ``num_envs`` copies (one process: the per-step TensorDict
overhead is paid once for all copies) with ``AutoresetMode.DISABLED``: a ``SyncVectorEnv`` of
single envs, or for CartPole one numpy-vectorized :class:`~torchrl_reg.envs.cartpole.VectorCartPole`, wrapped in
TorchRL's :class:`~torchrl.envs.GymWrapper`, which then resets finished copies the TorchRL way
(the true last observation of a truncated episode is kept in ``("next", "observation")``).

Families (``EnvConfig.family``):

* ``classic``: any gymnasium id with a vector observation (``CartPole-v1``, ``Acrobot-v1``).
* ``minatar``: ``MinAtar/<Game>-v0`` (full action set), observation transposed to channels-first
  ``uint8`` (C, 10, 10); sticky actions are MinAtar's own (``sticky_action_prob``, 0.1 in
  Revisiting Rainbow). gymnasium's advice to upgrade to ``v1`` (the minimal action set) is
  silenced: the full set is deliberate.
* ``atari``: ALE v5 with the Machado et al. (2018) / Dopamine protocol: sticky actions 0.25,
  frame skip 4 with a max-pool over the last two frames, grayscale, 84x84 area resize, 4-frame
  stack, life loss not terminal, episodes capped at 27k agent steps (108k frames). Rewards are
  returned raw; the recipe clips them for learning only (``EnvConfig.reward_clip``), so that the
  logged returns are game scores. Two backends (``EnvConfig.backend``): ``wrappers`` (default), a
  ``SyncVectorEnv`` of :class:`~torchrl_reg.envs.atari.AtariPreprocessing` copies; ``vector``, ale-py's C++ ``AtariVectorEnv`` set to
  the same protocol (:class:`~torchrl_reg.envs.atari_vector.DopamineAtariVectorEnv`: where it still differs,
  and why its runs cannot resume from a checkpoint). Evaluation episodes always use the wrappers.
* ``mujoco``: gymnasium MuJoCo ids (``HalfCheetah-v5``, ``Humanoid-v5``), observations cast to
  float32; its state keeps the exact simulation state (:class:`~torchrl_reg.envs.wrappers.MujocoFloat32`).

Their state, for checkpoints: :mod:`torchrl_reg.envs.state`.
"""
from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import gymnasium as gym
import torch
from torchrl.envs import EnvBase, GymWrapper

from torchrl_reg.envs.atari import AtariPreprocessing
from torchrl_reg.envs.cartpole import VectorCartPole
from torchrl_reg.envs.ids import gym_env_id
from torchrl_reg.envs.wrappers import MinAtarChannelsFirst, MujocoFloat32

__all__ = ["NATIVE_VECTOR_ENVS", "make_env", "make_single_env", "make_vector_env"]


def make_single_env(cfg: Any) -> gym.Env:
    """One gymnasium env for ``cfg`` (an :class:`~torchrl_reg.configs.EnvConfig`)."""
    env_id = gym_env_id(cfg)
    if cfg.family in ("classic", "mujoco"):
        env = gym.make(env_id, disable_env_checker=True) if cfg.family == "classic" else MujocoFloat32(env_id)
    elif cfg.family == "minatar":
        with warnings.catch_warnings():
            # gymnasium advises v1 (MinAtar's minimal action set); the protocol wants the full set (v0)
            warnings.filterwarnings("ignore", message=r".*MinAtar/\w+-v0 is out of date", category=DeprecationWarning)
            env = gym.make(env_id, sticky_action_prob=cfg.sticky_action_prob, disable_env_checker=True)
        env = MinAtarChannelsFirst(env)
    else:
        env = AtariPreprocessing(
            env_id,
            sticky_action_prob=cfg.sticky_action_prob,
            frame_skip=cfg.frame_skip,
            screen_size=cfg.screen_size,
        )
        if cfg.frame_stack > 1:
            env = gym.wrappers.FrameStackObservation(env, cfg.frame_stack, padding_type="zero")
    if cfg.max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    return env


#: gymnasium ids with a numpy-vectorized implementation here (``EnvConfig.native_vector``).
NATIVE_VECTOR_ENVS = {"CartPole-v1": (VectorCartPole, 500), "CartPole-v0": (VectorCartPole, 200)}


def make_vector_env(cfg: Any, num_envs: int) -> gym.vector.VectorEnv:
    """``num_envs`` copies stepped in this process, without gymnasium's own autoreset.

    With ``cfg.native_vector`` and an id of :data:`NATIVE_VECTOR_ENVS`, one numpy-vectorized env
    (e.g. :class:`VectorCartPole`); Atari with ``cfg.backend="vector"``, ale-py's C++ vector env
    (:class:`~torchrl_reg.envs.atari_vector.DopamineAtariVectorEnv`); otherwise a gymnasium
    ``SyncVectorEnv`` of ``make_single_env`` copies.
    """
    if cfg.native_vector and cfg.family == "classic" and cfg.name in NATIVE_VECTOR_ENVS:
        env_cls, max_steps = NATIVE_VECTOR_ENVS[cfg.name]
        return env_cls(num_envs, max_episode_steps=max_steps if cfg.max_episode_steps is None else cfg.max_episode_steps)
    if cfg.family == "atari" and cfg.backend == "vector":
        from torchrl_reg.envs.atari_vector import DopamineAtariVectorEnv

        return DopamineAtariVectorEnv(
            gym.registry[gym_env_id(cfg)].kwargs["game"], num_envs, sticky_action_prob=cfg.sticky_action_prob,
            frame_skip=cfg.frame_skip, frame_stack=cfg.frame_stack, screen_size=cfg.screen_size,
            max_episode_steps=cfg.max_episode_steps,
        )
    return gym.vector.SyncVectorEnv(
        [partial(make_single_env, cfg)] * num_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )


def make_env(cfg: Any, *, num_envs: int, seed: int | None = None, device: torch.device | str = "cpu") -> EnvBase:
    """The TorchRL env of a recipe: batch size ``[num_envs]``, categorical actions, seeded with ``seed``.

    Copy ``i`` is seeded with ``seed + i`` (gymnasium's vector convention); a numpy-vectorized env
    (:class:`VectorCartPole`) has one generator for all copies, seeded with ``seed``.
    """
    env = GymWrapper(make_vector_env(cfg, num_envs), categorical_action_encoding=True, device=device)
    if seed is not None:
        env.set_seed(seed)
    return env
