"""CartPole as one numpy program over ``num_envs`` copies (:class:`VectorCartPole`)."""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["VectorCartPole"]


class VectorCartPole(gym.vector.VectorEnv):
    """``num_envs`` copies of gymnasium's ``CartPole-v1`` stepped as one numpy array program.

    The dynamics, termination, reward, reset distribution and time limit are those of
    ``gym.make("CartPole-v1")`` (Barto, Sutton & Anderson 1983; Euler integration, state in
    float64, observations in float32, ``truncated`` once an episode reaches ``max_episode_steps``);
    ``tests/envs/test_vector_cartpole.py`` checks transitions against that env. Unlike
    gymnasium's own ``CartPoleVectorEnv`` (next-step autoreset only) there is no autoreset
    (``AutoresetMode.DISABLED``): ``reset(options={"reset_mask": mask})`` resets the masked copies,
    which is how TorchRL's ``GymWrapper`` resets finished copies. One ``np_random`` generator
    draws every reset (``reset(seed=s)`` seeds it), where a ``SyncVectorEnv`` seeds copy ``i``
    with ``s + i``: same distribution, other draws. 128 copies step in ~0.1 ms instead of ~3 ms.
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.DISABLED}
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(self, num_envs: int, max_episode_steps: int | None = 500):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be a positive integer, got num_envs={num_envs!r}")
        self.num_envs = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.autoreset_mode = gym.vector.AutoresetMode.DISABLED
        high = np.array(
            [self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf],
            dtype=np.float32,
        )
        self.single_action_space = gym.spaces.Discrete(2)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.state = np.zeros((self.num_envs, 4), dtype=np.float64)
        self.elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must have shape ({self.num_envs},), got shape {mask.shape}")
        self.state[mask] = self.np_random.uniform(low=-0.05, high=0.05, size=(int(mask.sum()), 4))
        self.elapsed_steps[mask] = 0
        return self.state.astype(np.float32), {}

    def step(self, actions):
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(np.asarray(actions) == 1, self.force_mag, -self.force_mag)
        costheta, sintheta = np.cos(theta), np.sin(theta)
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        temp = (force + polemass_length * np.square(theta_dot) * sintheta) / total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        self.state = np.stack(
            [x + self.tau * x_dot, x_dot + self.tau * xacc, theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc],
            axis=1,
        )
        x, theta = self.state[:, 0], self.state[:, 2]
        terminated = (x < -self.x_threshold) | (x > self.x_threshold)
        terminated |= (theta < -self.theta_threshold_radians) | (theta > self.theta_threshold_radians)
        self.elapsed_steps += 1
        if self.max_episode_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:
            truncated = self.elapsed_steps >= self.max_episode_steps
        reward = np.ones(self.num_envs, dtype=np.float64)  # as SyncVectorEnv returns CartPole's rewards
        return self.state.astype(np.float32), reward, terminated, truncated, {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "num_envs": self.num_envs,
            "max_episode_steps": self.max_episode_steps,
            "state": self.state.copy(),
            "elapsed_steps": self.elapsed_steps.copy(),
            "np_random": None if self._np_random is None else self._np_random.bit_generator.state,
        }

    def __setstate__(self, saved: dict[str, Any]) -> None:
        self.__init__(saved["num_envs"], saved["max_episode_steps"])
        self.load_state(saved)

    def load_state(self, saved: dict[str, Any]) -> None:
        """Restore what ``__getstate__`` saved (the simulation and the reset generator) in place."""
        if saved["num_envs"] != self.num_envs:
            raise ValueError(f"checkpoint holds {saved['num_envs']} envs, this run has collector.num_envs={self.num_envs}")
        self.state = saved["state"].copy()
        self.elapsed_steps = saved["elapsed_steps"].copy()
        if saved["np_random"] is not None:
            if self._np_random is None:
                self._np_random = np.random.default_rng()
            self._np_random.bit_generator.state = saved["np_random"]
