"""Observation wrappers of the MinAtar and MuJoCo families: channels-first MinAtar grids, float32 MuJoCo
observations whose state a checkpoint keeps exactly."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from torchrl_reg.envs.state import layer_states, load_layer_states

__all__ = ["MinAtarChannelsFirst", "MujocoFloat32"]


class MinAtarChannelsFirst(gym.ObservationWrapper):
    """MinAtar's ``(10, 10, C)`` boolean grid as a channels-first ``uint8`` array (what Conv2d expects)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (c, h, w), dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(observation.transpose(2, 0, 1), dtype=np.uint8)


class MujocoFloat32(gym.ObservationWrapper):
    """A gymnasium MuJoCo env with float32 observations whose pickle continues the same trajectory.

    Gymnasium's MuJoCo envs pickle by constructor arguments only (a fresh simulation); this one's
    :meth:`plain_state` (and its pickle) also saves MuJoCo's full integration state
    (``mj_getState``: qpos, qvel, actuator state, warm start, time); :func:`get_env_state` adds
    the env's RNG and the time-limit counter, so a checkpointed run resumes bit for bit.
    """

    def __init__(self, env_id: str):
        super().__init__(gym.make(env_id, disable_env_checker=True))
        self._env_id = env_id
        space = self.env.observation_space
        self.observation_space = gym.spaces.Box(space.low, space.high, space.shape, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation.astype(np.float32)

    def _time_limit(self) -> gym.wrappers.TimeLimit | None:
        env = self.env
        while isinstance(env, gym.Wrapper):
            if isinstance(env, gym.wrappers.TimeLimit):
                return env
            env = env.env
        return None

    def plain_state(self) -> dict[str, Any]:
        """MuJoCo's full integration state (``mj_getState``) as a float64 tensor."""
        import mujoco

        sim = self.env.unwrapped
        physics = np.empty(mujoco.mj_stateSize(sim.model, mujoco.mjtState.mjSTATE_INTEGRATION))
        mujoco.mj_getState(sim.model, sim.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
        return {"physics": torch.from_numpy(physics)}

    def load_plain_state(self, state: dict[str, Any]) -> None:
        import mujoco

        sim = self.env.unwrapped
        mujoco.mj_setState(sim.model, sim.data, state["physics"].numpy(), mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(sim.model, sim.data)

    def __getstate__(self) -> dict:
        return {"env_id": self._env_id, "layers": layer_states(self)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["env_id"])
        self.env.reset()
        load_layer_states(self, state["layers"], "env")
