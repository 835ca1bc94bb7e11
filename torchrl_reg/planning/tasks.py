"""The tasks a planner acts in: one :class:`Task` object per task name (:data:`TASK_TABLE`), which gives both engines
what they plan in.

A task builds the env of one episode, seeded, at its initial state (:meth:`Task.env`, a
:class:`~torchrl_reg.planning.simulators.Simulator`); the search of every move starts from the state the episode is in.
For a :class:`~torchrl_reg.planning.models.Model` (what the planner plans in, :mod:`torchrl_reg.planning.models`) the
same object gives the single-tree engine its simulator of a move (:meth:`Task.simulator`) and the batched engine its
tensor model (:meth:`Task.tensor_model`) and that model's roots where the episodes' envs are (:meth:`Task.roots`); the
roots' random streams are the model's own (:meth:`~torchrl_reg.planning.models.Model.root_streams`).
:meth:`Task.refusal` says which model each engine plans in on the task, and why not where it does not. Tasks:

* ``dchain`` - the D-chain of Painter et al. (NeurIPS 2023, arXiv:2404.07732, Sec. 5), ``length``
  states, ``final_reward`` at its end; success is the optimal return, ``max((D - 1) / D, R_f)``.
* ``frozenlake`` - gymnasium ``FrozenLake-v1`` on ``map_name``, deterministic moves; success is
  reaching the goal (return 1).
* ``minatar`` - MinAtar's ``game`` (full action set, ``sticky_action_prob``); no success return.
* ``atari`` - ALE's ``game`` (minimal action set, ``frame_skip``, ``sticky_action_prob``: applied per
  frame by :class:`~torchrl_reg.planning.simulators.ALESimulator` from its stream seeded by the episode's
  seed, on an emulator whose own sticky actions are off); no success return; no tensor model (the batched search
  does not plan in it), and only the sampled model.

On the deterministic D-chain and FrozenLake every model is the task itself.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from torchrl_reg.planning.models import DEFAULT_MODEL, MODELS, Model, Seed, get_model
from torchrl_reg.planning.simulators import ALESimulator, DChain, FrozenLakeSimulator, MinAtarSimulator, Simulator, minatar_module
from torchrl_reg.planning.snapshot_simulators import BatchedMinAtar
from torchrl_reg.planning.tensor_simulators import TensorDChain, TensorFrozenLake, TensorSimulator

__all__ = [
    "MODELS", "TASKS", "TASK_TABLE", "Task", "check_model", "get_task", "make_task", "make_tensor_task", "minatar_module",
]


class Task:
    """One task a planner acts in (module docstring); ``cfg`` is a task config (``name`` and the keys the task reads)."""

    #: its ``task.name``
    name: ClassVar[str]
    #: whether the batched search has a tensor model of it (:meth:`tensor_model`)
    batched: ClassVar[bool] = True

    def env(self, cfg: Any, seed: int) -> tuple[Simulator, float | None]:
        """The env of one episode as a simulator, and the return that counts as success (``None``: no such return);
        ``seed`` seeds the env's own random stream."""
        raise NotImplementedError

    def refusal(self, model: Model, *, batched: bool) -> str | None:
        """Why the engine (``batched``: :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`, else
        :class:`~torchrl_reg.planning.search.TreeSearch`) cannot plan in ``model`` on this task, or ``None``."""
        if batched and not self.batched:
            return f"the batched search models the tasks {list(TENSOR_TASKS)}, got task name {self.name!r}"
        return None

    def simulator(self, sim: Simulator, model: Model, seed: Seed, future: int = 0) -> Simulator:
        """The simulator a :class:`~torchrl_reg.planning.search.TreeSearch` plans in at one move of the episode whose
        env is ``sim`` (from :meth:`env`), under ``model``, future ``future`` of a model of many. A model whose states
        carry no stream (``sampled``), and any model of a deterministic task: ``sim`` itself (the search restores its
        state after each simulation)."""
        return sim

    def tensor_model(self, cfg: Any, sim: Simulator, seed: int, model: Model) -> TensorSimulator:
        """The batched search's model of the task under ``model``, ``sim`` one of its episodes' envs (from
        :meth:`env`); ``seed`` seeds a snapshot store's :meth:`root` (the roots of a loop come from :meth:`roots`)."""
        raise ValueError(self.refusal(model, batched=True))

    def roots(self, tensor_model: TensorSimulator, sims: Sequence[Simulator], seed: Seed) -> torch.Tensor:
        """The states ``[len(sims), *S]`` of ``tensor_model`` (from :meth:`tensor_model`) where the episodes' envs
        ``sims`` are now, their streams the model's (e.g. of seed (group seed, move))."""
        raise NotImplementedError


class DChainTask(Task):
    name = "dchain"

    def env(self, cfg: Any, seed: int) -> tuple[Simulator, float | None]:
        return DChain(cfg.length, cfg.final_reward), max((cfg.length - 1) / cfg.length, cfg.final_reward)

    def tensor_model(self, cfg: Any, sim: Simulator, seed: int, model: Model) -> TensorSimulator:
        return TensorDChain(cfg.length, cfg.final_reward)

    def roots(self, tensor_model: TensorSimulator, sims: Sequence[Simulator], seed: Seed) -> torch.Tensor:
        return torch.tensor([[sim.state] for sim in sims], dtype=torch.long, device=tensor_model.device)


class FrozenLakeTask(Task):
    name = "frozenlake"

    def env(self, cfg: Any, seed: int) -> tuple[Simulator, float | None]:
        import gymnasium as gym

        env = gym.make("FrozenLake-v1", map_name=cfg.map_name, is_slippery=False)
        env.reset(seed=seed)
        return FrozenLakeSimulator(env), 1.0

    def tensor_model(self, cfg: Any, sim: Simulator, seed: int, model: Model) -> TensorSimulator:
        return TensorFrozenLake(sim.env)  # the transition table read from the episode's env

    def roots(self, tensor_model: TensorSimulator, sims: Sequence[Simulator], seed: Seed) -> torch.Tensor:
        return torch.tensor([[int(sim.env.s)] for sim in sims], dtype=torch.long, device=tensor_model.device)


class MinAtarTask(Task):
    name = "minatar"

    def env(self, cfg: Any, seed: int) -> tuple[Simulator, float | None]:
        import minatar

        env = minatar.Environment(minatar_module(cfg.game), sticky_action_prob=cfg.sticky_action_prob)
        env.seed(seed)
        env.reset()
        return MinAtarSimulator(env, include_rng=False), None

    def simulator(self, sim: Simulator, model: Model, seed: Seed, future: int = 0) -> Simulator:
        """A copy of the env's game at its current state with the stream of the model's root (future ``future``),
        saved with the state (``include_rng=True``) so that every simulation replays it; ``sim`` itself under a model
        whose states carry no stream."""
        if not model.snapshot_stream:
            return sim
        real = sim.env
        rng = model.root_streams(seed, [real], first=future)[0]
        # the real stream is mapped to the model's: deepcopy never copies it
        return MinAtarSimulator(copy.deepcopy(real, {id(real.random): rng, id(real.env.random): rng}), include_rng=True)

    def tensor_model(self, cfg: Any, sim: Simulator, seed: int, model: Model) -> TensorSimulator:
        # a model of many futures has K rows per episode (roots), each a root of its own stream
        return BatchedMinAtar(cfg.game, sticky_action_prob=cfg.sticky_action_prob, seed=seed, model=model)

    def roots(self, tensor_model: TensorSimulator, sims: Sequence[Simulator], seed: Seed) -> torch.Tensor:
        return tensor_model.roots(sims, seed)


class AtariTask(Task):
    name = "atari"
    batched = False

    def env(self, cfg: Any, seed: int) -> tuple[Simulator, float | None]:
        from ale_py import ALEInterface, roms

        ale = ALEInterface()
        ale.setInt("random_seed", seed)
        ale.setFloat("repeat_action_probability", 0.0)  # the simulator applies sticky actions itself (ALESimulator)
        ale.loadROM(roms.get_rom_path(cfg.game.lower()))
        return ALESimulator(ale, cfg.frame_skip, sticky_action_prob=cfg.sticky_action_prob, include_rng=False, seed=seed), None

    def refusal(self, model: Model, *, batched: bool) -> str | None:
        if model.snapshot_stream:
            return f"the {model.name} model of atari is not built (ALE's snapshot store has no task here): use the sampled model"
        return super().refusal(model, batched=batched)


#: The tasks by name (module docstring).
TASK_TABLE: dict[str, Task] = {task.name: task for task in (DChainTask(), FrozenLakeTask(), MinAtarTask(), AtariTask())}
#: The task names.
TASKS = tuple(TASK_TABLE)
#: The tasks the batched search has a tensor model of.
TENSOR_TASKS = tuple(name for name, task in TASK_TABLE.items() if task.batched)


def get_task(name: str) -> Task:
    """The :class:`Task` named ``name`` (one of :data:`TASKS`)."""
    if name not in TASK_TABLE:
        raise ValueError(f"task name must be one of {list(TASKS)}, got {name!r}")
    return TASK_TABLE[name]


def check_model(task: str, model: str | Model, *, batched: bool) -> None:
    """Refuse a ``model`` (one of :data:`~torchrl_reg.planning.models.MODELS`) that the engine (``batched``:
    :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`, else :class:`~torchrl_reg.planning.search.TreeSearch`)
    cannot plan in on ``task``, saying why (:meth:`Task.refusal`)."""
    refusal = get_task(task).refusal(get_model(model), batched=batched)
    if refusal is not None:
        raise ValueError(refusal)


def make_task(cfg: Any, seed: int) -> tuple[Simulator, float | None]:
    """The env of one episode of task ``cfg`` (``cfg.name`` one of :data:`TASKS`) and its success return:
    :meth:`Task.env`."""
    return get_task(cfg.name).env(cfg, seed)


def make_tensor_task(cfg: Any, sim: Simulator, seed: int, model: str | Model = DEFAULT_MODEL) -> TensorSimulator:
    """The batched search's model of task ``cfg`` under ``model`` (default
    :data:`~torchrl_reg.planning.models.DEFAULT_MODEL`), ``sim`` one of its episodes' envs: :meth:`Task.tensor_model`,
    refused where the batched search does not plan in it."""
    task, model = get_task(cfg.name), get_model(model)
    refusal = task.refusal(model, batched=True)
    if refusal is not None:
        raise ValueError(refusal)
    return task.tensor_model(cfg, sim, seed, model)
