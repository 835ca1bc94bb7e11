"""Atari through ale-py's C++ vector env, set to Dopamine's protocol (the recipes' ``env.backend=vector``).

``ale_py.vector_env.AtariVectorEnv`` (ale-py >= 0.11, the ALE authors' replacement for EnvPool) steps
``num_envs`` emulators on C++ worker threads with the preprocessing inside. Its defaults are not the
protocol the recipes train on (Machado et al., "Revisiting the Arcade Learning Environment", JAIR 61,
2018, as Dopamine implements it: :class:`~torchrl_reg.envs.atari.AtariPreprocessing`), so
:class:`DopamineAtariVectorEnv` sets every option:

=========================  =====================  =========================================================
option                     ale-py default         here (the wrappers' protocol)
=========================  =====================  =========================================================
repeat_action_probability  0.0                    ``sticky_action_prob`` (0.25), applied by ALE at every frame
noop_max                   30 (random no-ops)     0: no no-op starts
use_fire_reset             True                   False: no FIRE pressed at reset
reward_clipping            True                   False: raw rewards (the loop clips them for learning only)
episodic_life              False                  False: a life loss is not terminal
life_loss_info             False                  False: nor reported as a termination
frameskip, maxpool         4, True                ``frame_skip``, max of the last two frames
grayscale, img size        True, 84x84            True, ``screen_size`` x ``screen_size`` (INTER_AREA)
stack_num                  4                      ``frame_stack``, zero-padded at reset, newest last
max frames per episode     108,000                ``max_episode_steps * frame_skip`` (null: 2**30)
autoreset                  next step              none (see below)
full_action_space          False                  False: the minimal action set
=========================  =====================  =========================================================

Where it still differs from the wrappers (``tests/envs/test_atari_vector_env.py`` measures it):

* **Resize rounding**: both resize by pixel-area averaging (OpenCV's ``INTER_AREA`` here,
  :func:`~torchrl_reg.envs.atari._area_resize` there), rounded to uint8 after float sums in another
  order: a pixel may differ by 1 (Pong's frames agree exactly; Breakout's, in 400 random steps, on 2 in
  100,000 pixels). Rewards, terminations and truncations are the same, resets included.
* **The observation that ends an episode** (game over, or the time limit): ale-py stops the frame skip
  before copying the last frame, so the max-pool holds earlier frames of the skip (the previous step's
  pooled frame after a game over on the first frame); the wrappers pool the last frame with itself, as
  Dopamine does. A game over's next observation is never bootstrapped from; a time-limit truncation's is.
* **Time limit**: a step that both ends the game and reaches the limit is ``terminated`` and not
  ``truncated`` here; gymnasium's ``TimeLimit`` marks it both (``done`` and ``terminated`` agree).
* **frame_skip=1** (not the protocol): ale-py pools the frame with a zero frame, so it does not pool; the
  wrappers (and Dopamine) pool every frame with the episode's first one.
* **Seeds**: sub-env ``i`` of ``reset(seed=s)`` gets the emulator seed that gymnasium's ``AtariEnv`` derives
  from ``s + i`` (:func:`ale_seed`), with its top bit cleared because ``AtariVectorEnv`` ignores negative
  seeds: for half of the seeds the emulators start as the wrappers' do, for the other half on other seeds.

**No autoreset.** ale-py resets a finished env on the next ``step`` instead of stepping it (its
``NEXT_STEP`` mode; it has no ``DISABLED`` mode). TorchRL's ``GymWrapper`` wants ``DISABLED`` (it resets
finished envs itself, with ``reset(options={"reset_mask": ...})``, which ale-py supports), so this class
says ``DISABLED`` and refuses a ``step`` while an env is still finished: the silent autoreset never runs.

**No exact resume.** ale-py 0.12's vector interface (``ALEVectorInterface``: ``reset``, ``send``, ``recv``)
exposes no way to save or restore an emulator's state, which is what makes a checkpoint of the wrappers
continue the same trajectories (``cloneState``). So a run with ``env.backend=vector`` refuses to resume
from a checkpoint (:func:`~torchrl_reg.run.rundir.open_run_dir`, before anything is written) rather
than go on from freshly reset games: its checkpoints hold the networks, replay and counters, never
emulators, and :func:`~torchrl_reg.envs.state.set_env_state` refuses them too. Checkpointing only at
episode boundaries was not an option: with several envs, their episodes never end together.
"""
from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from ale_py.vector_env import AtariVectorEnv

__all__ = ["DopamineAtariVectorEnv", "ale_seed", "MAX_EPISODE_FRAMES"]

#: The longest episode the vector env can count, in frames (its C++ counter is an ``int``): the time
#: limit of ``max_episode_steps=null``, and a bound on ``max_episode_steps * frame_skip``.
MAX_EPISODE_FRAMES = 2**30


def ale_seed(seed: int) -> int:
    """The emulator seed gymnasium's ``AtariEnv.reset(seed=seed)`` gives ALE (``SeedSequence(seed)``'s
    second word), top bit cleared: ``AtariVectorEnv`` takes only seeds in ``[0, 2**31)``."""
    return int(np.random.SeedSequence(seed).generate_state(2)[1]) & 0x7FFFFFFF


class DopamineAtariVectorEnv(AtariVectorEnv):
    """``num_envs`` copies of ALE game ``game`` (ale-py's ROM name, e.g. ``"pong"``) with Dopamine's
    preprocessing, stepped by C++ threads, without autoreset (see the module docstring).

    ``num_threads`` ``None``: one worker thread per CPU this process may run on
    (``os.sched_getaffinity``, so ``taskset`` and SLURM's CPU allocation are respected), at most ``num_envs``.
    Observations are ``(frame_stack, screen_size, screen_size)`` uint8, or ``(screen_size, screen_size)``
    with ``frame_stack=1`` (the wrappers' shapes); rewards float64 (gymnasium's ``SyncVectorEnv``'s).
    """

    def __init__(
        self,
        game: str,
        num_envs: int,
        *,
        sticky_action_prob: float = 0.25,
        frame_skip: int = 4,
        frame_stack: int = 4,
        screen_size: int = 84,
        max_episode_steps: int | None = 27_000,
        num_threads: int | None = None,
    ):
        frames = MAX_EPISODE_FRAMES if max_episode_steps is None else max_episode_steps * frame_skip
        if not 0 < frames <= MAX_EPISODE_FRAMES:
            raise ValueError(
                f"max_episode_steps * frame_skip must be in [1, {MAX_EPISODE_FRAMES}] frames (ale-py counts an "
                f"episode's frames in a C++ int), got max_episode_steps={max_episode_steps}, frame_skip={frame_skip}"
            )
        if num_threads is None:
            num_threads = min(num_envs, len(os.sched_getaffinity(0)))
        super().__init__(
            game,
            num_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=frames,
            repeat_action_probability=sticky_action_prob,
            full_action_space=False,
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
            img_height=screen_size,
            img_width=screen_size,
            grayscale=True,
            stack_num=frame_stack,
            frameskip=frame_skip,
            maxpool=True,
            noop_max=0,
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
            use_fire_reset=False,
        )
        # What TorchRL sees: it resets finished envs itself, and step() refuses to let ale-py do it.
        self.autoreset_mode = gym.vector.AutoresetMode.DISABLED
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.game = game
        self._finished = np.ones(num_envs, dtype=bool)  # no env has been reset yet
        if frame_stack == 1:
            self._obs_shape: tuple[int, ...] = (num_envs, screen_size, screen_size)
            self.single_observation_space = gym.spaces.Box(0, 255, self._obs_shape[1:], dtype=np.uint8)
            self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        else:
            self._obs_shape = self.observation_space.shape

    def reset(self, *, seed: int | np.ndarray | None = None, options: dict[str, Any] | None = None):
        """Reset every env, or those of ``options["reset_mask"]``; an int ``seed`` seeds env ``i`` with
        :func:`ale_seed` ``(seed + i)`` (gymnasium's ``seed + i`` convention and ``AtariEnv``'s derivation)."""
        mask = None if options is None else options.get("reset_mask")
        indices = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        if isinstance(seed, (int, np.integer)):
            seed = np.array([ale_seed(int(seed) + i) for i in indices], dtype=np.int64)
        obs, info = super().reset(seed=seed, options=options)
        self._finished[indices] = False
        return obs.reshape(self._obs_shape), info

    def step(self, actions: np.ndarray):
        if self._finished.any():
            raise RuntimeError(
                f"envs {np.flatnonzero(self._finished).tolist()} ended an episode and were not reset: ale-py would "
                "reset them in place of this step (its next-step autoreset); reset them first with "
                "reset(options={'reset_mask': mask})"
            )
        obs, reward, terminated, truncated, info = super().step(np.asarray(actions, dtype=np.int64))
        self._finished = terminated | truncated
        return obs.reshape(self._obs_shape), reward.astype(np.float64), terminated, truncated, info
