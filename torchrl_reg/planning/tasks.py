"""The tasks a planner acts in: each built as a :class:`~torchrl_reg.planning.simulators.Simulator` from a task config.

:func:`make_task` builds the env of one episode, seeded, at its initial state; the search of
every move starts from the state the episode is in (the env is its own model, restored after
each simulation). Tasks (:data:`TASKS`):

* ``dchain`` - the D-chain of Painter et al. (NeurIPS 2023, arXiv:2404.07732, Sec. 5), ``length``
  states, ``final_reward`` at its end; success is the optimal return, ``max((D - 1) / D, R_f)``.
* ``frozenlake`` - gymnasium ``FrozenLake-v1`` on ``map_name``, deterministic moves; success is
  reaching the goal (return 1).
* ``minatar`` - MinAtar's ``game`` (full action set, ``sticky_action_prob``); no success return.
* ``atari`` - ALE's ``game`` (minimal action set, ``frame_skip``, ``sticky_action_prob``); no
  success return.

In MinAtar and ALE the search does not see the env's random stream (``include_rng=False``): it
must not foresee the real step's spawns and sticky actions.
"""
from __future__ import annotations

from typing import Any

from torchrl_reg.planning.simulators import ALESimulator, DChain, FrozenLakeSimulator, MinAtarSimulator, Simulator

__all__ = ["TASKS", "make_task", "minatar_module"]

#: The task names :func:`make_task` builds.
TASKS = ("dchain", "frozenlake", "minatar", "atari")


def minatar_module(game: str) -> str:
    """MinAtar's module name of ``game`` (``"SpaceInvaders"`` or ``"space_invaders"`` -> ``"space_invaders"``)."""
    key = game.lower().replace("_", "")
    return "space_invaders" if key == "spaceinvaders" else key


def make_task(cfg: Any, seed: int) -> tuple[Simulator, float | None]:
    """The env of one episode as a simulator, and the return that counts as success (``None``: no such return).

    ``cfg`` has ``name`` (one of :data:`TASKS`) and the keys that task reads (module docstring);
    ``seed`` seeds the env's own random stream (FrozenLake's reset, MinAtar's spawns, ALE's).
    """
    if cfg.name not in TASKS:
        raise ValueError(f"task name must be one of {list(TASKS)}, got {cfg.name!r}")
    if cfg.name == "dchain":
        return DChain(cfg.length, cfg.final_reward), max((cfg.length - 1) / cfg.length, cfg.final_reward)
    if cfg.name == "frozenlake":
        import gymnasium as gym

        env = gym.make("FrozenLake-v1", map_name=cfg.map_name, is_slippery=False)
        env.reset(seed=seed)
        return FrozenLakeSimulator(env), 1.0
    if cfg.name == "minatar":
        import minatar

        env = minatar.Environment(minatar_module(cfg.game), sticky_action_prob=cfg.sticky_action_prob)
        env.seed(seed)
        env.reset()
        return MinAtarSimulator(env, include_rng=False), None
    from ale_py import ALEInterface, roms

    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", cfg.sticky_action_prob)
    ale.loadROM(roms.get_rom_path(cfg.game.lower()))
    return ALESimulator(ale, cfg.frame_skip, include_rng=False), None
