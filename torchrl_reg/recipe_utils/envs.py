"""Environment presets: classic control, MinAtar and Atari, vectorized and wrapped for TorchRL.

Every env is a gymnasium vector env of ``num_envs`` copies (one process: the per-step TensorDict
overhead is paid once for all copies) with ``AutoresetMode.DISABLED``: a ``SyncVectorEnv`` of
single envs, or for CartPole one numpy-vectorized :class:`VectorCartPole`, wrapped in
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
  ``SyncVectorEnv`` of :class:`AtariPreprocessing` copies; ``vector``, ale-py's C++ ``AtariVectorEnv`` set to
  the same protocol (:class:`~torchrl_reg.envs.atari_vector.DopamineAtariVectorEnv`: where it still differs,
  and why its runs cannot resume from a checkpoint). Evaluation episodes always use the wrappers.
* ``mujoco``: gymnasium MuJoCo ids (``HalfCheetah-v5``, ``Humanoid-v5``), observations cast to
  float32; its state keeps the exact simulation state (:class:`MujocoFloat32`).

:func:`get_env_state` / :func:`set_env_state` save and restore every sub-env as plain data
(tensors, numbers, tagged tuples; :mod:`torchrl_reg.recipe_utils.plain_state`) that a
``torch.load(weights_only=True)`` checkpoint can hold: no pickle is ever written or read.
"""
from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torchrl.data import Bounded, Categorical, OneHot
from torchrl.envs import EnvBase, GymWrapper

import torchrl_reg.envs  # noqa: F401  (registers MultiGoal-v0 with gymnasium, for env.name)
from torchrl_reg.recipe_utils.config import ENV_FAMILIES
from torchrl_reg.recipe_utils.plain_state import decode, encode, object_state, restore_attributes
from torchrl_reg.validation import check_choice

__all__ = [
    "AtariPreprocessing",
    "MinAtarChannelsFirst",
    "MujocoFloat32",
    "gym_env_id",
    "make_single_env",
    "make_vector_env",
    "NATIVE_VECTOR_ENVS",
    "VectorCartPole",
    "make_env",
    "check_action_space",
    "check_box_action_spec",
    "check_discrete_action_spec",
    "num_actions",
    "get_env_state",
    "set_env_state",
]

MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")


def _area_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Row-stochastic ``(n_out, n_in)`` matrix averaging input pixels by overlap (OpenCV's INTER_AREA)."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), dtype=np.float32)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            w[i, j] = min(hi, j + 1) - max(lo, j)
    return w / scale


def _area_resize_taps(n_in: int, n_out: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`_area_resize_matrix` as a few taps per output pixel: tap ``k`` of every output pixel is one
    pair (input indices ``(n_out,)``, weights ``(n_out, 1)``); a pixel with fewer taps has weight 0 on
    index 0. 210 -> 84 and 160 -> 84 need 3 taps each."""
    matrix = _area_resize_matrix(n_in, n_out)
    taps = int((matrix > 0).sum(1).max())
    index = np.zeros((taps, n_out), dtype=np.intp)
    weight = np.zeros((taps, n_out, 1), dtype=np.float32)
    for i, row in enumerate(matrix):
        nonzero = np.flatnonzero(row)
        index[: len(nonzero), i] = nonzero
        weight[: len(nonzero), i, 0] = row[nonzero]
    return list(zip(index, weight))


def _weighted_rows(x: np.ndarray, taps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``sum_k weight_k * x[index_k]``: each output row a weighted sum of a few rows of ``x``."""
    (index, weight), *rest = taps
    out = x[index] * weight
    for index, weight in rest:
        out += x[index] * weight
    return out


def _area_resize(frame: np.ndarray, rows: list[tuple[np.ndarray, np.ndarray]], cols: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Area resize of a ``(H, W)`` float32 frame with the taps of :func:`_area_resize_taps`, rounded to uint8.

    Weighted sums of gathered rows, then of gathered columns: elementwise numpy, no BLAS. As a
    matmul (``rows @ frame @ cols``) the resize ran on numpy's BLAS thread pool, whose threads
    (one per core unless ``OPENBLAS_NUM_THREADS`` is set before numpy loads, which a recipe cannot
    ensure) made a frame up to ~200x slower on a busy machine (measured: 63 ms with two BLAS threads
    sharing one core, against 0.27 ms with one thread).
    """
    resized_rows = np.ascontiguousarray(_weighted_rows(frame, rows).T)  # columns as rows: contiguous gathers
    return np.rint(_weighted_rows(resized_rows, cols).T).astype(np.uint8)


class AtariPreprocessing(gym.Wrapper):
    """ALE v5 env with Dopamine's preprocessing (Machado et al. 2018 protocol).

    Frame skip ``frame_skip`` with the max of the last two raw frames (removes flicker), rewards
    summed over the skipped frames, grayscale, area resize to ``screen_size`` x ``screen_size``.
    Sticky actions are ALE's own (``repeat_action_probability``), applied at every raw frame.

    :meth:`plain_state` saves the emulator with its RNG (``cloneState(include_rng=True)``, serialized
    by ALE itself into a uint8 tensor), because the ALE object has no state of its own that
    Python can copy; this is what lets a checkpoint resume an Atari run exactly.
    """

    def __init__(self, env_id: str, *, sticky_action_prob: float = 0.25, frame_skip: int = 4, screen_size: int = 84):
        import ale_py

        gym.register_envs(ale_py)
        self._kwargs = dict(
            env_id=env_id, sticky_action_prob=sticky_action_prob, frame_skip=frame_skip, screen_size=screen_size
        )
        env = gym.make(
            env_id,
            frameskip=1,
            repeat_action_probability=sticky_action_prob,
            full_action_space=False,
            obs_type="grayscale",
            max_num_frames_per_episode=None,
            disable_env_checker=True,
        )
        super().__init__(env)
        self.frame_skip = frame_skip
        self.screen_size = screen_size
        h, w = env.observation_space.shape
        self._rows = _area_resize_taps(h, screen_size)
        self._cols = _area_resize_taps(w, screen_size)
        self._buffer = np.zeros((2, h, w), dtype=np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, (screen_size, screen_size), dtype=np.uint8)

    def _observation(self) -> np.ndarray:
        frame = np.maximum(self._buffer[0], self._buffer[1]).astype(np.float32)
        return _area_resize(frame, self._rows, self._cols)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._buffer[0] = obs
        self._buffer[1] = obs
        return self._observation(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        total = 0.0
        terminated = truncated = False
        info: dict = {}
        for i in range(self.frame_skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if i >= self.frame_skip - 2:
                self._buffer[i - (self.frame_skip - 2)] = obs
            if terminated or truncated:
                # The pool then holds the last frame twice (Dopamine does the same).
                self._buffer[0] = self._buffer[1] = obs
                break
        return self._observation(), total, terminated, truncated, info

    def plain_state(self) -> dict[str, Any]:
        """The emulator (ALE's own serialization, its RNG included) as a uint8 tensor and the pooling buffer."""
        serialized = self.env.unwrapped.ale.cloneState(include_rng=True).serialize()
        return {
            "ale": torch.frombuffer(bytearray(serialized), dtype=torch.uint8),
            "buffer": torch.from_numpy(self._buffer.copy()),
        }

    def load_plain_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`plain_state`, through ALE's ``restoreState`` (no unpickling)."""
        import ale_py

        self.env.unwrapped.ale.restoreState(ale_py.ALEState(state["ale"].numpy().tobytes()))
        self._buffer[:] = state["buffer"].numpy()

    def __getstate__(self) -> dict:
        return {"kwargs": self._kwargs, "layers": _layer_states(self)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state["kwargs"])
        self.env.reset()
        _load_layer_states(self, state["layers"], "env")


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
        return {"env_id": self._env_id, "layers": _layer_states(self)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["env_id"])
        self.env.reset()
        _load_layer_states(self, state["layers"], "env")


def _minatar_id(name: str) -> str:
    game = name.split("/")[-1].split("-")[0]
    matches = [g for g in MINATAR_GAMES if g.lower() == game.replace("_", "").lower()]
    if not matches:
        raise ValueError(f"env.name must name a MinAtar game, one of {list(MINATAR_GAMES)}, got env.name={name!r}")
    return f"MinAtar/{matches[0]}-v0"


def _atari_id(name: str) -> str:
    import ale_py

    gym.register_envs(ale_py)
    env_id = name if name.startswith("ALE/") else f"ALE/{name}-v5"
    if env_id not in gym.registry:
        games = sorted(k[4:-3] for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5"))
        raise ValueError(
            f"env.name must be an ALE game such as 'Pong' or 'ALE/Pong-v5', got env.name={name!r}; "
            f"valid games: {games}"
        )
    return env_id


def gym_env_id(cfg: Any) -> str:
    """The registered gymnasium id that ``cfg`` (an ``EnvConfig``) names; ``ValueError`` naming the
    value and what is accepted when there is none. Cheap (registry look-ups, no env is built), so
    that a sweep can check every task's env before it submits anything."""
    check_choice("env.family", cfg.family, ENV_FAMILIES)
    if cfg.family == "minatar":
        env_id = _minatar_id(cfg.name)
        if env_id not in gym.registry:
            import minatar.gym

            minatar.gym.register_envs()
        return env_id
    if cfg.family == "atari":
        return _atari_id(cfg.name)
    if cfg.name not in gym.registry:
        raise ValueError(f"env.name must be a registered gymnasium id such as 'CartPole-v1', got env.name={cfg.name!r}")
    return cfg.name


def make_single_env(cfg: Any) -> gym.Env:
    """One gymnasium env for ``cfg`` (an :class:`~torchrl_reg.recipe_utils.config.EnvConfig`)."""
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


class VectorCartPole(gym.vector.VectorEnv):
    """``num_envs`` copies of gymnasium's ``CartPole-v1`` stepped as one numpy array program.

    The dynamics, termination, reward, reset distribution and time limit are those of
    ``gym.make("CartPole-v1")`` (Barto, Sutton & Anderson 1983; Euler integration, state in
    float64, observations in float32, ``truncated`` once an episode reaches ``max_episode_steps``);
    ``tests/recipe_utils/test_vector_cartpole.py`` checks transitions against that env. Unlike
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


def check_discrete_action_spec(env: EnvBase) -> None:
    """Raise ``ValueError`` unless the env has one discrete (categorical or one-hot) action."""
    spec = env.action_spec_unbatched
    if not isinstance(spec, (Categorical, OneHot)):
        raise ValueError(
            f"this recipe needs a discrete action space (Categorical or OneHot spec), "
            f"got action_spec={type(spec).__name__} with shape {tuple(spec.shape)} and dtype {spec.dtype}"
        )


def check_box_action_spec(env: EnvBase) -> None:
    """Raise ``ValueError`` unless the env's action is a bounded box of floats (what a tanh policy maps onto)."""
    spec = env.action_spec_unbatched
    if not (isinstance(spec, Bounded) and spec.dtype.is_floating_point):
        raise ValueError(
            f"this recipe needs a Box action space (bounded, continuous: a Bounded float spec), "
            f"got action_spec={type(spec).__name__} with shape {tuple(spec.shape)} and dtype {spec.dtype}"
        )


#: What each loop family needs (the ``action_space`` of its config schema) and the check of it.
ACTION_SPACE_CHECKS = {"discrete": check_discrete_action_spec, "box": check_box_action_spec}


def check_action_space(cfg: Any, kind: str) -> None:
    """Build one copy of the env of ``cfg`` (an :class:`~torchrl_reg.recipe_utils.EnvConfig`) and raise
    ``ValueError`` naming ``env.name`` unless its action space is of ``kind`` (``"discrete"`` or ``"box"``):
    what a sweep checks for every task before it submits any (a run would otherwise fail only when it starts)."""
    env = make_env(cfg, num_envs=1)
    try:
        ACTION_SPACE_CHECKS[kind](env)
    except ValueError as err:
        raise ValueError(f"env.name={cfg.name!r}: {err}") from None
    finally:
        env.close()


def num_actions(env: EnvBase) -> int:
    """Number of discrete actions of ``env``."""
    spec = env.action_spec_unbatched
    return int(spec.n if isinstance(spec, Categorical) else spec.shape[-1])


def _vector_env(env: EnvBase) -> gym.vector.VectorEnv:
    base = env.base_env if hasattr(env, "base_env") else env
    return base._env


def _descend(value: Any) -> bool:
    # MinAtar keeps its game (grids, timers, its RandomState) in plain Python objects.
    return type(value).__module__.split(".")[0] == "minatar"


def _layers(env: gym.Env) -> list[gym.Env]:
    """The wrapper chain of ``env``, outermost first, down to the unwrapped env."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _layer_states(env: gym.Env) -> list[dict[str, Any]]:
    """Per layer: its class name, and its state (its own ``plain_state()``, else its plain attributes)."""
    states = []
    for layer in _layers(env):
        own = getattr(layer, "plain_state", None)
        state = own() if callable(own) else object_state(layer, skip=("env",), descend=_descend)
        states.append({"class": type(layer).__name__, "state": state})
    return states


def _load_layer_states(env: gym.Env, states: list[dict[str, Any]], where: str) -> None:
    layers = _layers(env)
    saved = [s["class"] for s in states]
    built = [type(layer).__name__ for layer in layers]
    if saved != built:
        raise ValueError(f"{where}: the checkpoint holds an env wrapped as {saved}, this run builds {built}")
    for layer, state in zip(layers, states):
        own = getattr(layer, "load_plain_state", None)
        if callable(own):
            own(state["state"])
        else:
            restore_attributes(layer, state["state"], f"{where}.{type(layer).__name__}")


def get_env_state(env: EnvBase) -> dict[str, Any]:
    """State of every sub-env (physics, emulator, grids, RNGs, wrapper counters) of a :func:`make_env`
    env, as plain data (tensors, numbers, tagged tuples) that a weights-only checkpoint holds."""
    venv = _vector_env(env)
    if isinstance(venv, VectorCartPole):
        return {"kind": "VectorCartPole", "state": encode(venv.__getstate__())}
    if not isinstance(venv, gym.vector.SyncVectorEnv):
        # ale-py's vector env cannot save its emulators: the checkpoint says so, and set_env_state refuses it.
        return {"kind": type(venv).__name__}
    return {"kind": "SyncVectorEnv", "envs": [_layer_states(sub) for sub in venv.envs]}


def set_env_state(env: EnvBase, state: dict[str, Any]) -> None:
    """Restore, in place, the sub-envs saved by :func:`get_env_state` into an env built the same way."""
    venv = _vector_env(env)
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind == "DopamineAtariVectorEnv" or not isinstance(venv, (VectorCartPole, gym.vector.SyncVectorEnv)):
        raise ValueError(
            f"the checkpoint holds env state {kind!r} and this run steps {type(venv).__name__}: ale-py's Atari "
            "vector env (env.backend=vector) cannot save or restore its emulators, so a run on it cannot be "
            "resumed exactly; start a new run_dir (or train with env.backend=wrappers to resume exactly)"
        )
    if kind not in ("VectorCartPole", "SyncVectorEnv"):
        raise ValueError(f"not an env state written by get_env_state (kind={kind!r})")
    if (kind == "VectorCartPole") != isinstance(venv, VectorCartPole):
        raise ValueError(
            "checkpoint and run disagree on env.native_vector (one steps a numpy-vectorized "
            "CartPole, the other a SyncVectorEnv of gymnasium envs); resume with the checkpoint's setting"
        )
    if kind == "VectorCartPole":
        venv.load_state(decode(state["state"]))
        return
    if len(state["envs"]) != len(venv.envs):
        raise ValueError(f"checkpoint holds {len(state['envs'])} envs, this run has collector.num_envs={len(venv.envs)}")
    for i, (sub, layers) in enumerate(zip(venv.envs, state["envs"])):
        _load_layer_states(sub, layers, f"env {i}")
