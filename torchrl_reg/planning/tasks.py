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

**The model a planner plans in** is one of :data:`~torchrl_reg.planning.models.MODELS` (its objects say what
each model draws from and how many futures it searches: :mod:`torchrl_reg.planning.models`); it matters where the
task is stochastic (MinAtar's spawns, sticky actions). On the deterministic D-chain and FrozenLake every model is the
task itself.

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

from torchrl_reg.planning.models import MODELS, OWN, PLANNER, Model, get_model
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
#: The tasks whose env draws at random (the model matters there).
STOCHASTIC_TASKS = ("minatar", "atari")


def batched_models(task: str, model: str | Model) -> bool:
    """Whether :class:`~torchrl_reg.planning.batched.BatchedTreeSearch` plans in ``model`` on ``task`` (:func:`check_model`)."""
    return _refusal(task, get_model(model), batched=True) is None


def check_model(task: str, model: str | Model, *, batched: bool) -> None:
    """Refuse a ``model`` (one of :data:`~torchrl_reg.planning.models.MODELS`) that the loop (``batched``:
    :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`, else :class:`~torchrl_reg.planning.search.TreeSearch`)
    cannot plan in on ``task``, saying why."""
    refusal = _refusal(task, get_model(model), batched=batched)
    if refusal is not None:
        raise ValueError(refusal)


def _refusal(task: str, model: Model, *, batched: bool) -> str | None:
    """Why the loop cannot plan in ``model`` on ``task`` (:func:`check_model`), or ``None``."""
    if task not in TASKS:
        return f"task name must be one of {list(TASKS)}, got {task!r}"
    if batched and task not in TENSOR_TASKS:
        return f"the batched search models the tasks {list(TENSOR_TASKS)}, got task name {task!r}"
    if task == "atari" and model.snapshot_stream:
        return f"the {model.name} model of atari is not built (ALE's snapshot store has no task here): use the sampled model"
    return None


def model_simulator(sim: Simulator, model: str | Model, seed: Seed, future: int = 0) -> Simulator:
    """The simulator a :class:`~torchrl_reg.planning.search.TreeSearch` plans in at one move of the episode whose env is
    ``sim`` (from :func:`make_task`), under ``model`` (:mod:`~torchrl_reg.planning.models`). A model whose states
    carry no stream (``sampled``), and any model of a deterministic env: ``sim`` itself (the search restores its state
    after each simulation). Otherwise, on MinAtar: a copy of the env's game at its current state with the model's
    stream, :func:`~torchrl_reg.planning.snapshot_simulators.planner_rng` ``(seed, future)`` (future ``future`` of a
    model of many) or a copy of the env's own, saved with the state (``include_rng=True``) so that every simulation
    replays it."""
    model = get_model(model)
    if not model.snapshot_stream or getattr(sim, "deterministic", False):
        return sim
    if not isinstance(sim, MinAtarSimulator):
        raise ValueError(f"the {model.name} model is built for MinAtar (and the deterministic tasks), got {type(sim).__name__}")
    real = sim.env
    if model.stream == PLANNER:
        rng = planner_rng(seed, future)
    else:
        assert model.stream == OWN, model
        if real.env.random is not real.random:
            raise ValueError(f"the {model.name} model needs the real game and its sticky actions on one stream (minatar.Environment.seed)")
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


def make_tensor_task(cfg: Any, sim: Simulator, seed: int, model: str | Model = "sampled") -> TensorSimulator:
    """The batched search's model of task ``cfg`` (one of :data:`TENSOR_TASKS`), ``sim`` one of its episodes'
    envs from :func:`make_task` (FrozenLake's transition table is read from it); ``seed`` seeds MinAtar's
    :meth:`~torchrl_reg.planning.snapshot_simulators.BatchedMinAtar.root` (the roots of a loop come from
    :func:`tensor_roots`); ``model`` (one of :data:`~torchrl_reg.planning.models.MODELS`) defaults to the
    planning recipe's ``planner.model``, ``sampled``: fresh outcomes at every chance visit."""
    model = get_model(model)
    if cfg.name not in TENSOR_TASKS:
        raise ValueError(f"the batched search models the tasks {list(TENSOR_TASKS)}, got task name {cfg.name!r}")
    if cfg.name == "dchain":
        return TensorDChain(cfg.length, cfg.final_reward)
    if cfg.name == "frozenlake":
        return TensorFrozenLake(sim.env)
    # a model of many futures has K rows per episode (tensor_roots), each a root of its own stream
    return BatchedMinAtar(cfg.game, sticky_action_prob=cfg.sticky_action_prob, seed=seed, model=model)


def tensor_roots(model: TensorSimulator, sims: Sequence[Simulator], seed: Sequence[int]) -> torch.Tensor:
    """The states ``[len(sims), *S]`` of ``model`` (from :func:`make_tensor_task`) where the episodes' envs ``sims``
    are now. MinAtar's roots copy the games with fresh streams from ``seed`` (e.g. (group seed, move)), or their own
    under the oracle model: the store of earlier roots is cleared."""
    if isinstance(model, TensorDChain):
        return torch.tensor([[sim.state] for sim in sims], dtype=torch.long, device=model.device)
    if isinstance(model, TensorFrozenLake):
        return torch.tensor([[int(sim.env.s)] for sim in sims], dtype=torch.long, device=model.device)
    return model.roots(sims, seed)
