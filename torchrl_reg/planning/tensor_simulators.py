"""Simulators of a batch of states as pure tensor functions, for :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`.

A tensor simulator is a model, not an environment: ``step(state, action)`` maps a batch of states
``[B, *state_shape]`` and actions ``[B]`` to ``(next_state, reward [B], done [B])`` without
changing anything, so saving a state is keeping the tensor and restoring it is using it again (the
recurrent function of mctx's search). ``step`` must accept any state it returned, including one
after the episode ended: the search steps all B rows together and ignores the finished ones.

* :class:`TensorDChain` - the D-chain of Painter et al. (NeurIPS 2023, arXiv:2404.07732, Sec. 5).
* :class:`TensorSyntheticTree` - one or B synthetic trees of Xiao et al. (NeurIPS 2019, Sec. 5),
  the same numbers as :class:`~torchrl_reg.planning.simulators.SyntheticTree`, so the exact
  values of :mod:`torchrl_reg.planning.exact` apply to each.
* :class:`TensorChanceTree` - a :class:`~torchrl_reg.planning.simulators.ChanceTree` (chance after every
  action), its outcomes drawn by the same rule from a stream of uniforms.
* :class:`TensorFrozenLake` - gymnasium's ``FrozenLake-v1`` transition table as tensors, the
  moves of :class:`~torchrl_reg.planning.simulators.FrozenLakeSimulator` for B cells at once.

MinAtar and ALE, which step one state at a time, are tensor simulators through
:mod:`~torchrl_reg.planning.snapshot_simulators` (states are handles into a store of snapshots).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from torchrl_reg.planning.simulators import ChanceTree, DChain, FrozenLakeSimulator, SyntheticTree, check_frozenlake_env

__all__ = [
    "TensorSimulator", "TensorDChain", "TensorSyntheticTree", "TensorChanceTree", "TensorFrozenLake", "TENSOR_MODELS",
    "check_index_states", "check_model_attributes", "check_search_simulator",
]

#: Each single-tree simulator's model for the batched search, by class name (:func:`check_search_simulator`).
TENSOR_MODELS = {
    "DChain": "TensorDChain", "SyntheticTree": "TensorSyntheticTree", "ChanceTree": "TensorChanceTree",
    "FrozenLakeSimulator": "TensorFrozenLake", "MinAtarSimulator": "BatchedMinAtar", "ALESimulator": "BatchedALE",
}


@runtime_checkable
class TensorSimulator(Protocol):
    """What the batched search needs: ``num_actions``, ``root(batch_size)`` and a pure ``step``.

    ``observation(state)`` (the network's input for a batch of states) is needed by network leaves only.
    ``check_states(state)``, where given, refuses a tensor that is not a batch of the model's states (shape,
    dtype, range); the batched search calls it on its roots before anything runs.
    Optional flags: ``deterministic`` (one next state per (state, action), default True; False makes every edge
    of the batched search a chance node, ``step`` drawing a fresh outcome at each call), ``deterministic_rewards``
    (one reward too, default False: with it and deterministic transitions the search steps each edge once and
    replays it, and ``step`` must accept any subset of the rows' states), ``max_outcomes`` (with chance: the most
    next states one (state, action) can have, the search's outcome slots per edge) and ``state_key(state)``
    (with chance: ``[B, K]`` keys that are equal exactly when the states are the same, default the state itself).
    """

    num_actions: int

    def root(self, batch_size: int) -> torch.Tensor: ...

    def step(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


def check_search_simulator(simulator: object, *, batched: bool, owner: str) -> None:
    """Refuse a model of the other search loop before anything runs: ``batched`` (``owner`` is
    :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`) needs a :class:`TensorSimulator`, the single-tree
    :class:`~torchrl_reg.planning.search.TreeSearch` a :class:`~torchrl_reg.planning.simulators.Simulator`; the error
    names the other loop's version of the model (:data:`TENSOR_MODELS`)."""
    name = type(simulator).__name__
    if batched and not isinstance(simulator, TensorSimulator):
        single = all(callable(getattr(simulator, method, None)) for method in ("save", "restore", "step"))
        fix = (f"pass its tensor model ({TENSOR_MODELS[name]})" if name in TENSOR_MODELS else "pass a TensorSimulator")
        what = "a single-tree Simulator (save, restore, step(action))" if single else "not one"
        raise TypeError(
            f"{owner} needs a TensorSimulator (num_actions, root(batch_size), a pure step(states, actions)); {name} is "
            f"{what}: {fix}" + (", or search it with TreeSearch (make_search(..., batched=False))" if single else "")
        )
    if not batched and isinstance(simulator, TensorSimulator) and not callable(getattr(simulator, "save", None)):
        single = {tensor: one for one, tensor in TENSOR_MODELS.items()}.get(name)
        fix = f", or pass its single-tree simulator ({single})" if single else ""
        raise TypeError(
            f"{owner} steps one Simulator (save, restore, step(action)); {name} is a TensorSimulator, the batched "
            f"search's model of a batch of states: search it with BatchedTreeSearch (make_search(..., batched=True)){fix}"
        )


def check_model_attributes(owner: str, model: object, kind: str, attributes: Sequence[str], fix: str = "") -> None:
    """Refuse ``model`` (what a tensor model's constructor copies into tables: ``kind``, e.g. a ``ChanceTree``) when
    it lacks one of ``attributes``: the error names ``owner``, what it takes, the attributes missing and ``fix``
    (the tensor model of what was passed), where reading them failed with an ``AttributeError`` deep in the copy."""
    missing = [name for name in attributes if not hasattr(model, name)]
    if missing:
        raise TypeError(
            f"{owner} takes a {kind} (it reads {list(attributes)}); got a {type(model).__name__}, which has no "
            f"{missing}" + (f": {fix}" if fix else "")
        )


def _tensor_model_of(model: object) -> str:
    """The tensor model that takes ``model`` (a single-tree simulator's), in words, for a refusal's fix."""
    name = type(model).__name__
    twin = TENSOR_MODELS.get(name)
    if twin is None:
        return ""
    taken = f"{twin}([{name}(...)])" if twin == "TensorSyntheticTree" else f"{twin}({name}(...))"
    return f"its tensor model is {twin}: {taken}"


def check_index_states(owner: object, state: object, columns: Sequence[tuple[str, int, int]]) -> None:
    """Refuse ``state`` unless it is an int64 tensor ``[B, len(columns)]`` whose column ``j`` lies in ``[low_j, high_j]``
    (``columns``: ``(name, low, high)``); the error names ``owner``'s expected shape and ranges and the bad value."""
    name = type(owner).__name__
    shown = ", ".join(f"{what} in {low}..{high}" for what, low, high in columns)
    expected = f"{name} states are int64 tensors of shape [B, {len(columns)}] ({shown})"
    if not isinstance(state, torch.Tensor):
        raise TypeError(f"{expected}; got {type(state).__name__}")
    if state.dim() != 2 or state.shape[1] != len(columns) or state.shape[0] < 1:
        raise ValueError(f"{expected}; got shape {tuple(state.shape)}")
    if state.dtype != torch.long:
        raise ValueError(f"{expected}; got dtype {state.dtype}")
    for j, (what, low, high) in enumerate(columns):
        bad = (state[:, j] < low) | (state[:, j] > high)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise ValueError(f"{expected}; row {row} has {what}={int(state[row, j])}")


class TensorDChain:
    """D-chain states ``[B, 1]`` (the chain position); actions ``DOWN = 0``, ``RIGHT = 1`` as in :class:`DChain`.

    ``down`` at ``i`` pays ``(D - i - 1) / D`` and ends; ``right`` pays 0 and moves on, except at
    ``D - 1`` where it pays ``final_reward`` and ends.
    """

    DOWN = DChain.DOWN
    RIGHT = DChain.RIGHT
    num_actions = 2
    deterministic_rewards = True

    def __init__(self, length: int = 10, final_reward: float = 1.0, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        DChain(length, final_reward)  # the same argument checks
        self.length = length
        self.final_reward = float(final_reward)
        self.dtype = dtype
        self.device = torch.device(device)

    def root(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, 1, dtype=torch.long, device=self.device)

    def observation(self, state: torch.Tensor) -> torch.Tensor:
        """The chain position ``[B, 1]``, what :class:`DChain` observes."""
        return state

    def check_states(self, state: torch.Tensor) -> None:
        """Refuse anything but chain positions ``[B, 1]`` (int64) in ``0 .. D - 1``."""
        check_index_states(self, state, [("position", 0, self.length - 1)])

    def step(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d, i = self.length, state[:, 0]
        down = action == self.DOWN
        last = i >= d - 1
        reward = torch.where(down, (d - 1 - i).to(self.dtype) / d, last.to(self.dtype) * self.final_reward)
        done = down | last
        return torch.where(done, i, i + 1).unsqueeze(-1), reward, done


#: What :class:`TensorSyntheticTree` and :class:`TensorChanceTree` read of the trees they copy.
_SYNTHETIC_TREE = ("num_actions", "depth", "noise_std", "first_leaf", "edge_reward", "leaf_value")
_CHANCE_TREE = ("num_actions", "outcomes", "depth", "fan", "internal", "cumulative", "step_reward")


class TensorSyntheticTree:
    """Synthetic k-ary trees as lookup tables; a state ``[B, 3]`` is (instance, node id, level).

    Args:
        trees: the instances (their edge rewards and leaf values are copied). One instance is
            shared by every search of the batch; otherwise ``root(B)`` needs ``B == len(trees)``
            and search ``b`` runs in ``trees[b]``.
        seed: seeds the Gaussian evaluation noise of the leaves (``noise_std`` of the instances,
            which must agree).
    """

    def __init__(self, trees: Sequence[SyntheticTree], *, seed: int = 0, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        if not isinstance(trees, Sequence):
            check_model_attributes("TensorSyntheticTree", trees, "sequence of SyntheticTree", ["__len__", "__getitem__"],
                                   "pass the instances as a list, TensorSyntheticTree([tree])")
        trees = list(trees)
        if not trees:
            raise ValueError("TensorSyntheticTree: trees must hold at least one SyntheticTree")
        for tree in trees:
            check_model_attributes("TensorSyntheticTree", tree, "SyntheticTree", _SYNTHETIC_TREE, _tensor_model_of(tree))
        shapes = {(t.num_actions, t.depth, t.noise_std) for t in trees}
        if len(shapes) > 1:
            raise ValueError(f"the trees must share branching, depth and noise_std, got (branching, depth, noise_std) in {sorted(shapes)}")
        first = trees[0]
        self.num_actions = first.num_actions
        self.depth = first.depth
        self.noise_std = first.noise_std
        self.first_leaf = first.first_leaf
        self.instances = len(trees)
        self.device = torch.device(device)
        self.edge_reward = torch.as_tensor(np.stack([t.edge_reward for t in trees]), dtype=dtype, device=self.device)
        # leaf values laid out at their node ids so one gather serves edges and leaves
        leaf = torch.zeros_like(self.edge_reward)
        leaf[:, self.first_leaf :] = torch.as_tensor(np.stack([t.leaf_value for t in trees]), dtype=dtype, device=self.device)
        self.leaf_value = leaf
        # what stepping into each node pays (the leaf value is paid on the step into the leaf), flat over
        # (instance, node): one take per step
        self.reward_table = (self.edge_reward + leaf).view(-1)
        self.nodes_per_instance = self.edge_reward.shape[1]
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        # noisy leaves pay a new draw at every visit: the search must step them again
        self.deterministic_rewards = not self.noise_std

    def root(self, batch_size: int) -> torch.Tensor:
        if self.instances > 1 and batch_size != self.instances:
            raise ValueError(f"{self.instances} tree instances need batch_size={self.instances}, got {batch_size}")
        state = torch.zeros(batch_size, 3, dtype=torch.long, device=self.device)
        state[:, 0] = torch.arange(batch_size, device=self.device) % self.instances
        return state

    def observation(self, state: torch.Tensor) -> torch.Tensor:
        """The node id ``[B, 1]``, what :class:`SyntheticTree` observes."""
        return state[:, 1:2]

    def check_states(self, state: torch.Tensor) -> None:
        """Refuse anything but (instance, node id, level) rows ``[B, 3]`` (int64) of these trees, each node at its level."""
        k = self.num_actions
        check_index_states(self, state, [
            ("instance", 0, self.instances - 1), ("node", 0, self.nodes_per_instance - 1), ("level", 0, self.depth),
        ])
        # node ids of level l are (k^l - 1) / (k - 1) .. (k^(l+1) - 1) / (k - 1) - 1 (breadth first)
        first = (k ** state[:, 2] - 1) // (k - 1)
        wrong = (state[:, 1] < first) | (state[:, 1] >= first + k ** state[:, 2])
        if bool(wrong.any()):
            row = int(wrong.nonzero()[0, 0])
            raise ValueError(f"TensorSyntheticTree: row {row} has node {int(state[row, 1])}, which is not on level {int(state[row, 2])}")

    def step(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inst, node, level = state.unbind(-1)
        # a finished row (level == depth) stays put: its outputs are ignored by the search
        moving = level < self.depth
        node = torch.where(moving, torch.add(action + 1, node, alpha=self.num_actions), node)
        level = level + moving
        done = level >= self.depth
        where = node if self.instances == 1 else torch.add(node, inst, alpha=self.nodes_per_instance)
        reward = self.reward_table.take(where)
        if self.noise_std:
            noise = torch.randn(reward.shape, generator=self.generator, dtype=reward.dtype, device=reward.device)
            reward = reward + torch.where(done, self.noise_std * noise, 0.0)
        return torch.stack((inst, node, level), -1), reward, done


class TensorChanceTree:
    """A :class:`~torchrl_reg.planning.simulators.ChanceTree` as tables; a state ``[B, 2]`` is (node id, level).

    ``step`` draws one uniform per row from ``uniform`` (``n -> [n]`` in [0, 1)) or a generator seeded with ``seed``
    and takes the first outcome whose cumulative probability exceeds it (the last one for a uniform at or above their
    float sum): ChanceTree's rule on the same cumulative sums, so that fed ChanceTree's uniforms it draws its outcomes.
    A finished row (at a leaf) stays put. Stochastic (``deterministic = False``), at most ``outcomes`` next states per
    (state, action) (``max_outcomes``).
    """

    deterministic = False

    def __init__(
        self, tree: ChanceTree, *, seed: int = 0, uniform: Callable[[int], torch.Tensor] | None = None,
        dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
    ):
        check_model_attributes("TensorChanceTree", tree, "ChanceTree", _CHANCE_TREE, _tensor_model_of(tree))
        self.num_actions = tree.num_actions
        self.outcomes = self.max_outcomes = tree.outcomes
        self.depth = tree.depth
        self.fan = tree.fan
        self.nodes = tree.internal + tree.fan**tree.depth
        self.device = torch.device(device)
        self.cumulative = torch.as_tensor(tree.cumulative, dtype=torch.float64, device=self.device)
        self.step_reward = torch.as_tensor(tree.step_reward, dtype=dtype, device=self.device)
        self.internal = tree.internal
        if uniform is None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
            uniform = lambda n: torch.rand(n, generator=generator, dtype=torch.float64, device=self.device)  # noqa: E731
        self.uniform = uniform

    def root(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, 2, dtype=torch.long, device=self.device)

    def observation(self, state: torch.Tensor) -> torch.Tensor:
        """The node id ``[B, 1]``, what :class:`~torchrl_reg.planning.simulators.ChanceTree` observes."""
        return state[:, :1]

    def check_states(self, state: torch.Tensor) -> None:
        """Refuse anything but (node id, level) rows ``[B, 2]`` (int64) of the tree."""
        check_index_states(self, state, [("node", 0, self.nodes - 1), ("level", 0, self.depth)])

    def step(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        node, level = state.unbind(-1)
        moving = level < self.depth
        at = node.clamp_max(self.internal - 1)  # a finished row reads any row: it stays put
        outcome = torch.zeros_like(node)
        if self.outcomes > 1:
            u = self.uniform(node.shape[0]).to(self.cumulative.device).unsqueeze(-1)
            outcome = (self.cumulative[at, action] <= u).sum(-1).clamp_max(self.outcomes - 1)
        child = torch.where(moving, node * self.fan + action * self.outcomes + outcome + 1, node)
        level = level + moving
        return torch.stack((child, level), -1), self.step_reward.take(child), level >= self.depth


class TensorFrozenLake:
    """gymnasium ``FrozenLake-v1`` as tensors: states ``[B, 1]`` are cells, moves come from the env's table ``P``.

    ``P[cell][action]`` (what the env's ``step`` samples from, and what
    :class:`~torchrl_reg.planning.simulators.FrozenLakeSimulator` reads) becomes ``[cells, A, M]``
    tensors of outcome probabilities, next cells, rewards and ends, padded to the most outcomes
    ``M`` with probability 0. A slippery map draws its outcome by inverse CDF, the first outcome
    whose cumulative probability exceeds a uniform (FrozenLakeSimulator's rule), from ``uniform``
    (``n -> [n]`` in [0, 1)) or a generator seeded with ``seed``; such a simulator is stochastic
    (``deterministic = False``: the batched search keeps chance nodes, at most ``max_outcomes = M``
    next cells per edge). Holes and the goal step to themselves and end, as in ``P``.
    """

    def __init__(
        self,
        env: Any,
        *,
        seed: int = 0,
        uniform: Callable[[int], torch.Tensor] | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ):
        check_frozenlake_env(env, type(self).__name__)
        single = FrozenLakeSimulator(env)
        table = single.transitions
        self.num_actions = len(table[0])
        self.device = torch.device(device)
        cells = len(table)
        most = max(len(outcomes) for moves in table.values() for outcomes in moves.values())
        prob = np.zeros((cells, self.num_actions, most))
        nxt = np.tile(np.arange(cells)[:, None, None], (1, self.num_actions, most))
        reward = np.zeros((cells, self.num_actions, most))
        done = np.zeros((cells, self.num_actions, most), dtype=bool)
        count = np.zeros((cells, self.num_actions), dtype=np.int64)
        for cell, moves in table.items():
            for action, outcomes in moves.items():
                count[cell, action] = len(outcomes)
                for i, (p, to, r, end) in enumerate(outcomes):
                    prob[cell, action, i], nxt[cell, action, i], reward[cell, action, i], done[cell, action, i] = p, to, r, end
        self.deterministic = most == 1
        self.max_outcomes = most
        self.deterministic_rewards = True  # each outcome's reward is fixed (P's)
        self.prob = torch.as_tensor(prob, dtype=torch.float64, device=self.device)
        # cumulative probabilities summed in the order FrozenLakeSimulator adds them
        self.cumulative = self.prob.cumsum(-1)
        self.last_outcome = torch.as_tensor(count - 1, device=self.device)
        self.next_cell = torch.as_tensor(nxt, device=self.device)
        self.reward = torch.as_tensor(reward, dtype=dtype, device=self.device)
        self.done = torch.as_tensor(done, device=self.device)
        self.start = int(np.asarray(single.env.initial_state_distrib).argmax())
        if uniform is None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
            uniform = lambda n: torch.rand(n, generator=generator, dtype=torch.float64, device=self.device)  # noqa: E731
        self.uniform = uniform

    def root(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` copies of the start cell."""
        return torch.full((batch_size, 1), self.start, dtype=torch.long, device=self.device)

    def observation(self, state: torch.Tensor) -> torch.Tensor:
        """The cell ``[B, 1]``, what :class:`FrozenLakeSimulator` observes."""
        return state

    def check_states(self, state: torch.Tensor) -> None:
        """Refuse anything but cells ``[B, 1]`` (int64) of the map."""
        check_index_states(self, state, [("cell", 0, self.next_cell.shape[0] - 1)])

    def step(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cell = state[:, 0]
        if self.deterministic:
            outcome = torch.zeros_like(cell)
        else:
            below = self.cumulative[cell, action] <= self.uniform(cell.shape[0]).to(self.cumulative.device).unsqueeze(-1)
            # a uniform at or above the float sum of the probabilities takes the last outcome, as FrozenLakeSimulator does
            outcome = torch.minimum(below.sum(-1), self.last_outcome[cell, action])
        at = (cell, action, outcome)
        return self.next_cell[at].unsqueeze(-1), self.reward[at], self.done[at]
