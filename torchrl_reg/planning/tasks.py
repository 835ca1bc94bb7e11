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

**The model a planner plans in** (:data:`MODELS`) matters where the task is stochastic (MinAtar's spawns,
sticky actions); on the deterministic D-chain and FrozenLake every model is the task itself:

* ``sampled`` - fresh outcomes at every chance visit: the search steps a copy of the env whose random stream
  goes on across simulations (``include_rng=False``), and the searches key an edge's outcomes by the state they lead
  to (chance nodes; the batched search's MinAtar model is :class:`~torchrl_reg.planning.snapshot_simulators.BatchedMinAtar`
  with ``model="sampled"``).
* ``determinized`` - one sampled future per move: the root is the env's state with a fresh stream
  (:func:`~torchrl_reg.planning.snapshot_simulators.planner_rng` of the planner's seed and the move), replayed
  by every simulation, so an action always leads to one next state (Xiao et al., NeurIPS 2019, Sec. 5 searched
  Atari this way).
* ``ensemble`` - K determinized futures per move (``planner.futures``), each with its own fresh stream
  (:func:`~torchrl_reg.planning.snapshot_simulators.planner_rng` row ``k`` of future ``k``; future 0 is the
  determinized model's), searched apart with ``N / K`` of the move's ``N`` simulations each, the roots combined
  by :func:`~torchrl_reg.planning.ensemble.combine_futures`.
* ``oracle`` - a diagnostic, not a planner: the root carries a copy of the env's own stream, so the model's future
  is the real one for the same actions. No agent can read its env's stream; it measures what the model costs.

:func:`model_simulator` is the simulator a ``TreeSearch`` plans in at one move; :func:`make_tensor_task` and
:func:`tensor_roots` give the batched search its model of the tasks in :data:`TENSOR_TASKS` and the roots of
several episodes' envs at once (the D-chain position and the FrozenLake cell as tensors, MinAtar's games as
handles of :class:`~torchrl_reg.planning.snapshot_simulators.BatchedMinAtar`). :func:`check_model` says which
model each loop plans in on which task, and why not where it does not.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from torchrl_reg.planning.simulators import ALESimulator, DChain, FrozenLakeSimulator, MinAtarSimulator, Simulator, minatar_module
from torchrl_reg.planning.snapshot_simulators import BatchedMinAtar, Seed, planner_rng
from torchrl_reg.planning.tensor_simulators import TensorDChain, TensorFrozenLake, TensorSimulator

__all__ = [
    "MODELS", "TASKS", "TENSOR_TASKS", "batched_models", "check_model", "make_task", "make_tensor_task", "minatar_module", "model_simulator",
    "tensor_roots",
]

#: The task names :func:`make_task` builds.
TASKS = ("dchain", "frozenlake", "minatar", "atari")
#: The tasks :func:`make_tensor_task` models for the batched search.
TENSOR_TASKS = ("dchain", "frozenlake", "minatar")
#: The models a planner plans in (module docstring).
MODELS = ("sampled", "determinized", "ensemble", "oracle")
#: The tasks whose env draws at random (the model matters there).
STOCHASTIC_TASKS = ("minatar", "atari")


def batched_models(task: str, model: str) -> bool:
    """Whether :class:`~torchrl_reg.planning.batched.BatchedTreeSearch` plans in ``model`` on ``task`` (:func:`check_model`)."""
    try:
        check_model(task, model, batched=True)
    except ValueError:
        return False
    return True


def check_model(task: str, model: str, *, batched: bool) -> None:
    """Refuse a ``model`` (one of :data:`MODELS`) that the loop (``batched``: :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`,
    else :class:`~torchrl_reg.planning.search.TreeSearch`) cannot plan in on ``task``, saying why."""
    if model not in MODELS:
        raise ValueError(f"the model must be one of {MODELS}, got {model!r}")
    if task not in TASKS:
        raise ValueError(f"task name must be one of {list(TASKS)}, got {task!r}")
    if batched and task not in TENSOR_TASKS:
        raise ValueError(f"the batched search models the tasks {list(TENSOR_TASKS)}, got task name {task!r}")
    if task not in STOCHASTIC_TASKS:
        return  # the task itself: every model is exact
    if task == "atari" and model != "sampled":
        raise ValueError(f"the {model} model of atari is not built (ALE's snapshot store has no task here): use the sampled model")


def model_simulator(sim: Simulator, model: str, seed: Seed, future: int = 0) -> Simulator:
    """The simulator a :class:`~torchrl_reg.planning.search.TreeSearch` plans in at one move of the episode whose env is
    ``sim`` (from :func:`make_task`), under ``model`` (module docstring). ``sampled``, and any model of a
    deterministic env: ``sim`` itself (the search restores its state after each simulation). ``determinized`` and
    ``oracle`` on MinAtar: a copy of the env's game at its current state with the stream
    :func:`~torchrl_reg.planning.snapshot_simulators.planner_rng` ``(seed, future)`` (``ensemble``: its future
    ``future``), or a copy of its own stream, saved with the state (``include_rng=True``) so that every simulation
    replays it."""
    if model not in MODELS:
        raise ValueError(f"the model must be one of {MODELS}, got {model!r}")
    if model == "sampled" or getattr(sim, "deterministic", False):
        return sim
    if not isinstance(sim, MinAtarSimulator):
        raise ValueError(f"the {model} model is built for MinAtar (and the deterministic tasks), got {type(sim).__name__}")
    real = sim.env
    if model in ("determinized", "ensemble"):
        rng = planner_rng(seed, future)
    else:
        if real.env.random is not real.random:
            raise ValueError("the oracle model needs the real game and its sticky actions on one stream (minatar.Environment.seed)")
        rng = copy.deepcopy(real.random)
    # the real stream is mapped to the model's: deepcopy never copies it
    return MinAtarSimulator(copy.deepcopy(real, {id(real.random): rng, id(real.env.random): rng}), include_rng=True)


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


def make_tensor_task(cfg: Any, sim: Simulator, seed: int, model: str = "sampled") -> TensorSimulator:
    """The batched search's model of task ``cfg`` (one of :data:`TENSOR_TASKS`), ``sim`` one of its episodes'
    envs from :func:`make_task` (FrozenLake's transition table is read from it); ``seed`` seeds MinAtar's
    :meth:`~torchrl_reg.planning.snapshot_simulators.BatchedMinAtar.root` (the roots of a loop come from
    :func:`tensor_roots`); ``model`` (one of :data:`MODELS`, as :func:`check_model` allows it) defaults to the
    planning recipe's ``planner.model``, ``sampled``: fresh outcomes at every chance visit."""
    check_model(cfg.name, model, batched=True)
    if cfg.name == "dchain":
        return TensorDChain(cfg.length, cfg.final_reward)
    if cfg.name == "frozenlake":
        return TensorFrozenLake(sim.env)
    # an ensemble's futures are determinized roots, K rows per episode (tensor_roots)
    store = "determinized" if model == "ensemble" else model
    return BatchedMinAtar(cfg.game, sticky_action_prob=cfg.sticky_action_prob, seed=seed, model=store)


def tensor_roots(model: TensorSimulator, sims: Sequence[Simulator], seed: Sequence[int]) -> torch.Tensor:
    """The states ``[len(sims), *S]`` of ``model`` (from :func:`make_tensor_task`) where the episodes' envs ``sims``
    are now. MinAtar's roots copy the games with fresh streams from ``seed`` (e.g. (group seed, move)), or their own
    under the oracle model: the store of earlier roots is cleared."""
    if isinstance(model, TensorDChain):
        return torch.tensor([[sim.state] for sim in sims], dtype=torch.long, device=model.device)
    if isinstance(model, TensorFrozenLake):
        return torch.tensor([[int(sim.env.s)] for sim in sims], dtype=torch.long, device=model.device)
    return model.roots(sims, seed)
