"""Greedy (or epsilon-greedy) evaluation episodes on fresh env copies, and the evaluation policy of an actor."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_reg.envs.make import make_single_env

__all__ = ["deterministic_actor", "evaluate"]


def deterministic_actor(policy: Callable[[TensorDictBase], TensorDictBase]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Observation batch -> action batch of a TorchRL actor in its deterministic mode (what the
    actor-critic loop evaluates: the mode of a stochastic policy, e.g. the tanh of a Gaussian mean)."""

    @torch.no_grad()
    def act(obs: torch.Tensor) -> torch.Tensor:
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            return policy(TensorDict({"observation": obs}, batch_size=obs.shape[:1]))["action"]

    return act


@torch.no_grad()
def evaluate(
    env_cfg: Any,
    act: Callable[[torch.Tensor], torch.Tensor],
    *,
    episodes: int,
    seed: int,
    epsilon: float = 0.0,
    max_steps: int = 27_000,
    device: torch.device | str = "cpu",
) -> list[float]:
    """Raw returns of ``episodes`` episodes played by ``act`` (observation batch -> action batch).

    Each episode runs on its own env copy (seeded ``seed + i``), all advanced together so that
    ``act`` sees one batch per step (discrete or Box actions). With probability ``epsilon`` an
    action is replaced by a uniformly random one (Dopamine evaluates Atari agents with epsilon 0.001). Episodes still
    running after ``max_steps`` steps are cut there. Nothing here touches the global RNGs, so an
    evaluation does not change the training run it is part of.
    """
    envs = [make_single_env(env_cfg) for _ in range(episodes)]
    rng = np.random.default_rng(seed)
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    returns = np.zeros(episodes, dtype=np.float64)
    active = list(range(episodes))
    for _ in range(max_steps):
        if not active:
            break
        batch = np.stack([obs[i] for i in active])
        if np.issubdtype(batch.dtype, np.floating):
            batch = batch.astype(np.float32)
        actions = act(torch.as_tensor(batch, device=device)).cpu().numpy()
        if epsilon > 0:
            explore = rng.random(len(active)) < epsilon
            for k in np.flatnonzero(explore):
                space = envs[active[k]].action_space
                if isinstance(space, gym.spaces.Discrete):
                    actions[k] = rng.integers(space.n)
                else:
                    actions[k] = rng.uniform(space.low, space.high).astype(space.dtype)
        still = []
        for k, i in enumerate(active):
            # Discrete actions go to gymnasium as python ints, Box actions as arrays.
            action = actions[k].item() if actions[k].ndim == 0 else actions[k]
            obs[i], reward, terminated, truncated, _ = envs[i].step(action)
            returns[i] += float(reward)
            if not (terminated or truncated):
                still.append(i)
        active = still
    for env in envs:
        env.close()
    return returns.tolist()
