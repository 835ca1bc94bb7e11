"""The tasks a planner acts in: each built as a :class:`~torchrl_reg.planning.simulators.Simulator` from a task config.

:func:`make_task` builds the env of one episode, seeded, at its initial state; the search of
every move starts from the state the episode is in (the env is its own model, restored after
each simulation). Tasks (:data:`TASKS`):

* ``dchain`` - the D-chain of Painter et al. (NeurIPS 2023, arXiv:2404.07732, Sec. 5), ``length``
  states, ``final_reward`` at its end; success is the optimal return, ``max((D - 1) / D, R_f)``.
* ``frozenlake`` - gymnasium ``FrozenLake-v1`` on ``map_name``, deterministic moves; success is
  reaching the goal (return 1).
* ``minatar`` - MinAtar's ``game`` (full action set, ``sticky_action_prob``); no success return.
* ``atari`` - ALE's ``game`` (minimal action set, ``frame_skip``, ``sticky_action_prob``: applied per
  frame by :class:`~torchrl_reg.planning.simulators.ALESimulator` from its stream seeded by the episode's
  seed, on an emulator whose own sticky actions are off); no success return.

In MinAtar and ALE the search does not see the env's random stream (``include_rng=False``): it
must not foresee the real step's spawns and sticky actions.

:func:`make_tensor_task` and :func:`tensor_roots` give the batched search
(:class:`~torchrl_reg.planning.batched.BatchedTreeSearch`) its model of the tasks in
:data:`TENSOR_TASKS` and the roots of several episodes' envs at once: the D-chain position and the
FrozenLake cell as tensors, MinAtar's games as handles of
:class:`~torchrl_reg.planning.snapshot_simulators.BatchedMinAtar` with fresh streams (a
determinization, as the single-tree search's ``include_rng=False`` keeps the real stream out).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from torchrl_reg.planning.simulators import ALESimulator, DChain, FrozenLakeSimulator, MinAtarSimulator, Simulator, minatar_module
from torchrl_reg.planning.snapshot_simulators import BatchedMinAtar
from torchrl_reg.planning.tensor_simulators import TensorDChain, TensorFrozenLake, TensorSimulator

__all__ = ["TASKS", "TENSOR_TASKS", "make_task", "make_tensor_task", "minatar_module", "tensor_roots"]

#: The task names :func:`make_task` builds.
TASKS = ("dchain", "frozenlake", "minatar", "atari")
#: The tasks :func:`make_tensor_task` models for the batched search.
TENSOR_TASKS = ("dchain", "frozenlake", "minatar")


def make_task(cfg: Any, seed: int) -> tuple[Simulator, float | None]:
    """The env of one episode as a simulator, and the return that counts as success (``None``: no such return).

    ``cfg`` has ``name`` (one of :data:`TASKS`) and the keys that task reads (module docstring);
    ``seed`` seeds the env's own random stream (FrozenLake's reset, MinAtar's spawns, ALE's sticky actions).
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
    ale.setFloat("repeat_action_probability", 0.0)  # the simulator applies sticky actions itself (ALESimulator)
    ale.loadROM(roms.get_rom_path(cfg.game.lower()))
    return ALESimulator(ale, cfg.frame_skip, sticky_action_prob=cfg.sticky_action_prob, include_rng=False, seed=seed), None


def make_tensor_task(cfg: Any, sim: Simulator, seed: int) -> TensorSimulator:
    """The batched search's model of task ``cfg`` (one of :data:`TENSOR_TASKS`), ``sim`` one of its episodes'
    envs from :func:`make_task` (FrozenLake's transition table is read from it); ``seed`` seeds MinAtar's
    :meth:`~torchrl_reg.planning.snapshot_simulators.BatchedMinAtar.root` (the roots of a loop come from
    :func:`tensor_roots`)."""
    if cfg.name not in TENSOR_TASKS:
        raise ValueError(f"the batched search models the tasks {list(TENSOR_TASKS)}, got task name {cfg.name!r}")
    if cfg.name == "dchain":
        return TensorDChain(cfg.length, cfg.final_reward)
    if cfg.name == "frozenlake":
        return TensorFrozenLake(sim.env)
    return BatchedMinAtar(cfg.game, sticky_action_prob=cfg.sticky_action_prob, seed=seed)


def tensor_roots(model: TensorSimulator, sims: Sequence[Simulator], seed: Sequence[int]) -> torch.Tensor:
    """The states ``[len(sims), *S]`` of ``model`` (from :func:`make_tensor_task`) where the episodes' envs ``sims``
    are now. MinAtar's roots copy the games with fresh streams from ``seed`` (e.g. (group seed, move)): the
    store of earlier roots is cleared."""
    if isinstance(model, TensorDChain):
        return torch.tensor([[sim.state] for sim in sims], dtype=torch.long, device=model.device)
    if isinstance(model, TensorFrozenLake):
        return torch.tensor([[int(sim.env.s)] for sim in sims], dtype=torch.long, device=model.device)
    return model.roots(sims, seed)
