"""Batched Monte-Carlo tree search: B independent trees in preallocated tensors, searched in lockstep.

The layout follows DeepMind's mctx (``mctx/_src/tree.py``, ``search.py``): a tree is a set of
arrays with a leading batch dimension, and one loop of simulate, expand, evaluate and back up runs
over all B trees with tensor operations. Python loops run over simulations and depth levels only,
never over trees or nodes; the tensors' device is the search's device. Unlike mctx the backup is
passed in as well as the tree policy: the parts of :mod:`~torchrl_reg.planning.algorithms` (the table
of every row of the algorithm table), the same objects :class:`~torchrl_reg.planning.search.TreeSearch` takes,
through their row forms (``select_rows``, ``update_rows``): the search fills their records
(:mod:`~torchrl_reg.planning.records`, tensors ``[R]`` and ``[R, A]`` with one row per tree) and writes what they return.

The hot path addresses nodes and edges by flat ids into ``[B N]`` and ``[B N A]`` views (one
``take``/``index_select``/``index_put_`` per statistic and level, no row indices), draws the tree
policy with per-visit-count constants gathered from a table (:meth:`E2WScore.count_table`), adds a
whole path's visit counts and reward sums with one scatter each, and backs values up level by level
(each level depends on the one below). Python loops run over simulations, depth levels and rollout
steps only; the B trees descend in lockstep, so a step costs as many levels as its deepest path.
On one CPU thread eager PyTorch spends some 7-12 us per operation whatever B, and a step is some
430-710 operations (``python -m benchmarks.planning batched-profile``), so B = 1 is far slower than
:class:`~torchrl_reg.planning.search.TreeSearch` on plain floats and the batched search pays from
B in the hundreds; one descent level under ``torch.compile`` measured 1.5x faster than eager on
CPU (``--compile``; RESULTS.md has the figures).

Transitions may be stochastic (``deterministic = False``: a slippery FrozenLake, a
:class:`~torchrl_reg.planning.tensor_simulators.TensorChanceTree`, MinAtar's sampled model): every edge is then a
chance node. Each visit steps the model, which draws a fresh outcome, and the edge's children are keyed by the
state drawn (the simulator's ``state_key(state)``, by default the state tensor itself, compared exactly); a state
not drawn before on the edge becomes a new child in the edge's next free outcome slot. Decision nodes back up with
the algorithm's backup, chance edges with the arrival-count-weighted mean of their children
(:func:`~torchrl_reg.planning.backups.chance_mean_rows`), the rules of :class:`~torchrl_reg.planning.search.TreeSearch`,
which at ``B = 1`` this search reproduces draw for draw when both read the same uniforms (the tree policy's, the
rollouts' and the model's outcomes'). Rewards may be noisy: an edge's reward is the mean of the rewards observed on
it. A simulator that says its transitions and rewards are deterministic (``deterministic_rewards = True`` and not
``deterministic = False``: the MinAtar and ALE handle stores, the D-chain, FrozenLake, a noiseless synthetic tree) is
stepped once per simulation, on the untried edge that ends the path: the tree keeps each node's state and each
edge's reward, and a descent reads them instead of stepping the model again (the same numbers; a MinAtar search steps
the emulator ~2.3x less). Any other simulator is stepped at every level, as its rewards and outcomes may differ from
visit to visit.

References:

* [MENTS] Xiao, Huang, Mei, Schuurmans, Muller. Maximum Entropy Monte-Carlo Planning. NeurIPS 2019, Sec. 4.
* [DENTS] Painter, Baioumy, Hawes, Lacerda. Monte Carlo Tree Search with Boltzmann Exploration.
  NeurIPS 2023, arXiv:2404.07732, Sec. 4.
* [UCT] Kocsis, Szepesvari. Bandit based Monte-Carlo Planning. ECML 2006.
* [SMZ] Antonoglou, Schrittwieser, Ozair, Hubert, Silver. Planning in Stochastic Environments with a Learned Model.
  ICLR 2022 (decision and chance nodes in one batched tree; ``mctx.stochastic_muzero_policy``).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import torch

from torchrl_reg.planning.algorithms import RECOMMENDATIONS, Policy, algorithm_of
from torchrl_reg.planning.backups import Backup, chance_mean_rows
from torchrl_reg.planning.records import EdgeStats, NodeStats
from torchrl_reg.planning.evaluators import (
    RandomRollout, check_evaluator, evaluator_result_refusal, evaluator_rng_state, load_evaluator_rng_state,
)
from torchrl_reg.planning.tensor_simulators import TensorSimulator, check_search_simulator
from torchrl_reg.validation import check_count, select_device

__all__ = ["BatchedTree", "BatchedTreeSearch", "TensorEvaluator", "TreeViews"]
# (simulator, states [B, *S], gamma) -> (values [B], initial action values [B, A] or None)
TensorEvaluator = Callable[[TensorSimulator, torch.Tensor, float], "tuple[torch.Tensor, torch.Tensor | None]"]


@dataclass
class BatchedTree:
    """The statistics of B trees with ``N`` node slots over ``A`` actions.

    Node ``0`` is each tree's root; tree ``b`` holds nodes ``0 .. size[b] - 1`` in the order they
    were added (the numbering of :class:`~torchrl_reg.planning.tree.SearchTree`). Slots from
    ``size[b]`` on are free; the last slot ``N - 1`` is a scratch node (marked terminal) that
    trees which have already stopped read and write, so updates need no masks. A search of ``n``
    simulations adds at most one node per simulation: ``N = n + 2``.

    Node tensors ``[B, N]``: ``arrivals`` (times the node was reached from its parent edge, int64), ``value`` (the backup's value: soft, Bellman, or mean return; a new
    node's evaluation), ``bellman`` (``max`` of ``q_bellman`` over tried actions; it and
    ``q_bellman`` are kept only by a Bellman backup or a ``"bellman_value"`` recommendation), ``entropy``
    (DENTS's subtree entropy ``H_V``, 0 for the other backups), ``leaf_value`` (the evaluation when
    the node was added, 0 for terminal nodes), ``total`` (``sum_a N(s, a)``, int64), ``terminal``
    (bool). ``size`` ``[B]`` (int64).

    Edge tensors ``[B, N, A]``: ``visits`` (``N(s, a)``, int64), ``reward_sum`` (rewards observed on
    the edge), ``q`` (the softmax or mean backup's action value), ``q_bellman`` (mean reward +
    ``gamma`` ``bellman(child)``), ``entropy_q`` (``H_Q(s, a)``), ``child`` (node id, -1 until
    expanded, int64; deterministic transitions). Untried actions hold their initial value in ``q`` and ``q_bellman``.

    Outcome slots ``[B, N, A, M]``: ``outcomes`` (int64), the node ids of a chance edge's children in the order they
    were first drawn, -1 in a free slot; ``M`` is the search's outcome capacity per edge (``max_outcomes``; 0 for
    deterministic transitions, whose edges have one ``child``). A chance edge's child statistics (``child`` stays -1)
    are averaged over its slots by arrivals. ``key`` ``[B, N, K]``: each node's state key (the simulator's
    ``state_key``, by default the state flattened; ``K = 0`` for deterministic transitions), which tells a chance edge's
    outcomes apart.
    """

    arrivals: torch.Tensor
    value: torch.Tensor
    bellman: torch.Tensor
    entropy: torch.Tensor
    leaf_value: torch.Tensor
    total: torch.Tensor
    terminal: torch.Tensor
    size: torch.Tensor
    visits: torch.Tensor
    reward_sum: torch.Tensor
    q: torch.Tensor
    q_bellman: torch.Tensor
    entropy_q: torch.Tensor
    child: torch.Tensor
    outcomes: torch.Tensor
    key: torch.Tensor

    @classmethod
    def empty(
        cls, batch_size: int, slots: int, num_actions: int, *, dtype: torch.dtype, device: torch.device, max_outcomes: int = 0,
        key_size: int = 0, key_dtype: torch.dtype = torch.long,
    ) -> BatchedTree:
        node = (batch_size, slots)
        edge = (batch_size, slots, num_actions)
        zeros = dict(dtype=dtype, device=device)
        return cls(
            arrivals=torch.zeros(node, dtype=torch.long, device=device),
            value=torch.zeros(node, **zeros),
            bellman=torch.zeros(node, **zeros),
            entropy=torch.zeros(node, **zeros),
            leaf_value=torch.zeros(node, **zeros),
            total=torch.zeros(node, dtype=torch.long, device=device),
            terminal=torch.zeros(node, dtype=torch.bool, device=device),
            size=torch.zeros(batch_size, dtype=torch.long, device=device),
            visits=torch.zeros(edge, dtype=torch.long, device=device),
            reward_sum=torch.zeros(edge, **zeros),
            q=torch.zeros(edge, **zeros),
            q_bellman=torch.zeros(edge, **zeros),
            entropy_q=torch.zeros(edge, **zeros),
            child=torch.full(edge, -1, dtype=torch.long, device=device),
            outcomes=torch.full(edge + (max_outcomes,), -1, dtype=torch.long, device=device),
            key=torch.zeros(node + (key_size,), dtype=key_dtype, device=device),
        )

    def tree(self, b: int) -> dict[str, torch.Tensor]:
        """Tree ``b``'s statistics over its own nodes (``[size, ...]``): to inspect or compare one search."""
        n = int(self.size[b])
        return {f.name: getattr(self, f.name)[b, :n] for f in fields(self) if f.name != "size"}


class TreeViews:
    """Flat views of a :class:`BatchedTree` and the index tensors one search reuses at every step.

    Nodes are addressed by flat ids ``b N + i`` into ``[B N]`` views and edges by ``(b N + i) A + a``
    into ``[B N A]`` views, so every read or write of one node or edge per tree is a single
    ``take``/``index_select``/``index_put_`` without row indices. ``next`` holds each edge's child as
    a flat id, the tree's scratch node for an untried edge: the scratch nodes are marked terminal,
    so a descent stops at an untried edge by the same test that stops it at a terminal node.
    """

    def __init__(self, tree: BatchedTree, count_table: torch.Tensor, search_values: torch.Tensor):
        batch, slots, k = tree.q.shape
        device = tree.q.device
        self.num_actions = k
        self.edges_per_tree = slots * k
        self.offsets = torch.arange(batch, device=device) * slots  # the roots' flat ids
        self.scratch = self.offsets + slots - 1
        self.scratch_edge = self.scratch * k
        self.everyone = torch.ones(batch, dtype=torch.bool, device=device)
        self.next = self.scratch.repeat_interleave(slots * k)
        tree.terminal[:, -1] = True
        self.counts = count_table
        self.node = {name: getattr(tree, name).view(-1) for name in ("arrivals", "value", "bellman", "entropy", "leaf_value", "total", "terminal")}
        self.edge = {name: getattr(tree, name).view(-1) for name in ("visits", "reward_sum", "q", "q_bellman", "entropy_q", "child")}
        self.rows = {name: getattr(tree, name).view(-1, k) for name in ("visits", "q", "q_bellman", "entropy_q")}
        self.search_values = search_values.view(-1, k)
        # with deterministic rewards: each node's state (flat ids, as the node views) and each edge's reward
        self.states: torch.Tensor | None = None
        self.rewards: torch.Tensor | None = None
        # with chance: each edge's outcome slots (node ids, -1 free) and each node's state key [B N, K]
        self.outcomes: torch.Tensor | None = tree.outcomes.view(batch * slots * k, -1) if tree.outcomes.shape[-1] else None
        self.keys: torch.Tensor | None = tree.key.view(batch * slots, -1) if self.outcomes is not None else None

    def children(self, edge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A chance edge's children: flat ids ``[R, M]`` (the tree's scratch node in a free slot) and whether the slot is used."""
        slots = self.outcomes.index_select(0, edge)
        used = slots >= 0
        tree_of = torch.div(edge, self.edges_per_tree, rounding_mode="floor")
        return torch.where(used, slots + self.offsets.index_select(0, tree_of).unsqueeze(-1), self.scratch.index_select(0, tree_of).unsqueeze(-1)), used

    def next_state(self, name: str, level: _Level) -> torch.Tensor:
        """The next states' node statistic ``name`` at one level of the paths: the child's, or a chance edge's children's
        averaged by their arrivals (:func:`~torchrl_reg.planning.backups.chance_mean_rows`)."""
        if self.outcomes is None:
            return self.node[name].take(level.child)
        flat, used = self.children(level.edge)
        return chance_mean_rows(self.node[name].take(flat), torch.where(used, self.node["arrivals"].take(flat), 0))


class _Level(NamedTuple):
    """One level of one simulation's B paths, ``[B]`` each: the node and edge (flat ids, the scratch node and edge
    where a tree's path has ended), the edge's child after the expansion (flat id), the action, the edge's visit count
    and mean reward after this simulation, the reward, and whether the tree was still in its tree at that level."""

    node: torch.Tensor
    edge: torch.Tensor
    child: torch.Tensor
    action: torch.Tensor
    visits: torch.Tensor
    reward: torch.Tensor
    mean_reward: torch.Tensor
    active: torch.Tensor




def _uniforms(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Callable[[int], torch.Tensor]:
    return lambda n: torch.rand(n, generator=gen, dtype=dtype, device=device)


def _search_device(device: Any, simulator: TensorSimulator) -> torch.device:
    """The search's device, refused (naming the value and the fix) unless this machine has it and the simulator's
    tensors (its ``device``, where it has one) live there too."""
    try:
        found = select_device(device if isinstance(device, str) else str(device))
    except ValueError as err:
        raise ValueError(f"BatchedTreeSearch(device={device!r}): {err}") from None
    if found.type == "cuda" and found.index is not None and found.index >= torch.cuda.device_count():
        raise ValueError(
            f"BatchedTreeSearch(device={device!r}): this machine has {torch.cuda.device_count()} CUDA device(s); use "
            "device='cuda' (the current one) or an index below that"
        )
    own = getattr(simulator, "device", None)
    if own is not None:
        own = torch.device(own)
        if own.type != found.type or (own.index is not None and found.index is not None and own.index != found.index):
            raise ValueError(
                f"BatchedTreeSearch(device={device!r}) cannot search {type(simulator).__name__}, whose tensors are on "
                f"{own}: build both on one device ({type(simulator).__name__}(..., device={str(found)!r}) or "
                f"make_search(..., device={str(own)!r}))"
            )
    return found


class BatchedTreeSearch:
    """One search over B trees at once (the algorithms are the parts of :mod:`~torchrl_reg.planning.algorithms`).

    Args:
        simulator: a :class:`~torchrl_reg.planning.tensor_simulators.TensorSimulator`.
        tree_policy: the tree policy, one of the score modules (its ``select_rows`` is called once per
            depth level for all B trees); ``policy=``, its deprecated name, warns.
        backup: :class:`~torchrl_reg.planning.backups.SoftmaxBackup`, :class:`~torchrl_reg.planning.backups.BellmanBackup`
            or :class:`~torchrl_reg.planning.backups.MeanBackup` (its ``update_rows`` is called once per depth level
            with an :class:`~torchrl_reg.planning.records.EdgeStats` of tensors and returns what changes, which the
            search writes).
        evaluator: leaf evaluation ``(simulator, states, gamma) -> (values, q_init or None)``, one
            call per simulation for all new leaves; default a random rollout.
        recommend: ``"search_value"`` (argmax of the backup's values over tried root actions),
            ``"bellman_value"`` or ``"most_visited"``.
        gamma: discount inside the tree (and of the evaluator's rollouts).
        q_init: the initial value of untried actions when the evaluator gives none.
        seed: seeds the tree policy's uniforms (``uniform`` replaces them: ``n -> [n]`` in [0, 1)).
        max_outcomes: with stochastic transitions, the outcome slots per edge (``M``). ``None``: the simulator's own
            ``max_outcomes`` (the most next states one (state, action) can have) where it has one, else the
            simulations of the search (one new outcome per visit at most: never full). A smaller capacity saves memory
            (``B N A M`` int64); an edge that draws a new outcome when its slots are full stops the search with a
            ``RuntimeError`` naming the edge, never merges the outcome into another.
    """

    def __init__(
        self,
        simulator: TensorSimulator,
        *,
        tree_policy: Policy | None = None,
        backup: Backup,
        evaluator: TensorEvaluator | None = None,
        recommend: str = "search_value",
        gamma: float = 1.0,
        q_init: float = 0.0,
        seed: int = 0,
        uniform: Callable[[int], torch.Tensor] | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        max_outcomes: int | None = None,
        policy: Policy | None = None,
    ):
        if policy is not None:
            warnings.warn("BatchedTreeSearch(policy=) is deprecated: pass tree_policy=, as TreeSearch takes it", DeprecationWarning, stacklevel=2)
            if tree_policy is not None:
                raise TypeError("BatchedTreeSearch got tree_policy= and policy= (its deprecated name): pass tree_policy= only")
            tree_policy = policy
        if tree_policy is None:
            raise TypeError("BatchedTreeSearch needs tree_policy=, a score module of torchrl_reg.planning.algorithms's table")
        policy = tree_policy
        check_search_simulator(simulator, batched=True, owner="BatchedTreeSearch")
        if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
            raise ValueError(f"gamma must be a number in [0, 1], got gamma={gamma!r}")
        check_evaluator(evaluator, batched=True, owner="BatchedTreeSearch", gamma=gamma, num_actions=simulator.num_actions)
        device = _search_device(device, simulator)
        algorithm_of(policy, backup, recommend)
        if max_outcomes is None:
            max_outcomes = getattr(simulator, "max_outcomes", None)
        if max_outcomes is not None:
            max_outcomes = check_count("max_outcomes", max_outcomes)
        if not math.isfinite(q_init):
            raise ValueError(f"q_init must be finite, got q_init={q_init}")
        self.simulator = simulator
        self.tree_policy = self.policy = policy
        self.backup = backup
        self.device = device
        self.dtype = dtype
        self.evaluator = evaluator if evaluator is not None else RandomRollout(gamma=gamma, seed=seed)
        self.recommend = recommend
        self.gamma = float(gamma)
        self.q_init = float(q_init)
        # the tree policy's generator (None where ``uniform`` replaces it: then the caller's stream)
        self._generator = None if uniform is not None else torch.Generator(device=self.device).manual_seed(seed)
        self.uniform = uniform if uniform is not None else _uniforms(self._generator, dtype, self.device)
        self._own_uniform = self.uniform if uniform is None else None
        self.chance = not getattr(simulator, "deterministic", True)
        self.max_outcomes = max_outcomes
        self.tree: BatchedTree | None = None
        # Bellman values cost a row max per level: kept only when searched on or recommended from
        self._track_bellman = backup.on_bellman or recommend == "bellman_value"
        self._reads_visits = "visits" in policy.reads
        self._reads_entropy = "entropy_q" in policy.reads

    def search(self, root: torch.Tensor, num_simulations: int) -> torch.Tensor:
        """Run ``num_simulations`` simulations in each of the B trees rooted at ``root`` ``[B, *S]``; the recommended actions ``[B]``.

        ``root`` is checked first: a tensor ``[B, *S]`` (B >= 1), and where the simulator has ``check_states``, a batch
        of its states (shape, dtype, range: a D-chain position outside the chain is refused, not searched).
        """
        num_simulations = check_count("num_simulations", num_simulations)
        if not isinstance(root, torch.Tensor) or root.dim() < 2 or root.shape[0] < 1:
            shape = tuple(root.shape) if isinstance(root, torch.Tensor) else type(root).__name__
            raise ValueError(f"root must be a batch of states [B, *state_shape] with B >= 1 (e.g. simulator.root(B)), got {shape}")
        check_states = getattr(self.simulator, "check_states", None)
        if check_states is not None:
            check_states(root)
        batch, k = root.shape[0], self.simulator.num_actions
        capacity, key = 0, root[:, :0]
        if self.chance:
            capacity, key = self.max_outcomes or num_simulations, self._key(root)
        tree = BatchedTree.empty(
            batch, num_simulations + 2, k, dtype=self.dtype, device=self.device, max_outcomes=capacity, key_size=key.shape[1],
            key_dtype=key.dtype,
        )
        self.tree = tree
        table = self.policy.count_table(k, num_simulations + 1, dtype=self.dtype, device=self.device)
        w = TreeViews(tree, table, self.backup.search_values(tree))
        if not self.chance and getattr(self.simulator, "deterministic_rewards", False):
            w.states = root.new_zeros((batch * tree.q.shape[1],) + tuple(root.shape[1:]))
            w.rewards = torch.zeros(batch * tree.q.shape[1] * k, dtype=self.dtype, device=self.device)
        # the root: slot 0 of every tree (a root "edge" is not needed: nothing points at the root)
        self._add_nodes(w, root, w.everyone, ~w.everyone)
        for _ in range(num_simulations):
            self._simulate(w, root)
        final = self.backup.final_values(tree)
        if final is not None:
            tree.value.copy_(final)
        return self.recommended_action()

    def _add_nodes(self, w: TreeViews, state: torch.Tensor, added: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Write new nodes at slot ``size`` of the trees in ``added`` (the others write to their scratch node); their flat ids."""
        tree = self.tree
        evaluate = added & ~done
        value = torch.zeros(added.shape, dtype=self.dtype, device=self.device)
        q_init: torch.Tensor | None = None
        if bool(evaluate.any()):
            result = self.evaluator(self.simulator, state, self.gamma)
            try:
                value, given = result
                finite = bool(torch.isfinite(value).all())
            except (TypeError, ValueError):  # not a pair, or values that are no tensor: refused, naming the search
                raise evaluator_result_refusal("BatchedTreeSearch", result, batched=True) from None
            if not finite:
                _check_finite("the leaf evaluation", value, evaluate)
            value = torch.where(evaluate, value.to(self.dtype), 0.0)
            if given is not None:
                if tuple(given.shape) != (*added.shape, w.num_actions):  # torch.where would broadcast [B, 1]
                    raise ValueError(
                        f"the evaluator's initial action values have shape {list(given.shape)}; a search of "
                        f"{added.shape[0]} trees over {w.num_actions} actions needs one per action, shape "
                        f"{[*added.shape, w.num_actions]}"
                    )
                if not bool(torch.isfinite(given).all()):
                    _check_finite("the evaluator's initial action values", given, evaluate.unsqueeze(-1))
                q_init = torch.where(evaluate.unsqueeze(-1), given.to(self.dtype), self.q_init)
        slot = torch.where(added, w.offsets + tree.size, w.scratch)
        if w.states is not None:
            w.states.index_copy_(0, slot, state)
        if w.keys is not None:
            w.keys.index_copy_(0, slot, self._key(state))
        for name in ("value", "bellman", "leaf_value"):
            w.node[name].index_put_((slot,), value)
        # the scratch nodes stay terminal
        w.node["terminal"].index_put_((slot,), torch.where(added, done, True))
        for name in ("q", "q_bellman") if self._track_bellman else ("q",):
            if q_init is None:
                w.rows[name].index_fill_(0, slot, self.q_init)
            else:
                w.rows[name].index_copy_(0, slot, q_init)
        tree.size += added
        return slot

    def _key(self, state: torch.Tensor) -> torch.Tensor:
        """The keys ``[B, K]`` chance outcomes are told apart by: the simulator's ``state_key(state)``, else the state itself."""
        state_key = getattr(self.simulator, "state_key", None)
        return state_key(state) if state_key is not None else state.reshape(state.shape[0], -1)

    def _outcome(self, w: TreeViews, edge: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The child (flat id) of chance edges ``edge`` ``[B]`` whose key is ``state``'s, the tree's scratch node where
        the state was not drawn on the edge before (compared exactly, key column by key column)."""
        flat, used = w.children(edge)
        key = self._key(state)
        same = used & (w.keys.index_select(0, flat.view(-1)).view(flat.shape + key.shape[1:]) == key.unsqueeze(1)).all(-1)
        found = same.any(-1)
        return torch.where(found, flat.gather(1, same.long().argmax(-1, keepdim=True)).squeeze(1), w.scratch)

    def _add_outcomes(self, w: TreeViews, edge: torch.Tensor, expand: torch.Tensor, slot: torch.Tensor) -> None:
        """File the new nodes ``slot`` of the trees in ``expand`` in the next free outcome slot of their edges; a full
        edge is refused (:class:`BatchedTreeSearch`'s ``max_outcomes``)."""
        used = (w.outcomes.index_select(0, edge) >= 0).sum(-1)
        capacity = w.outcomes.shape[1]
        full = expand & (used >= capacity)
        if bool(full.any()):
            b = int(full.nonzero()[0, 0])
            node, action = divmod(int(edge[b]) - b * w.edges_per_tree, w.num_actions)
            raise RuntimeError(
                f"tree {b}: the chance edge (node {node}, action {action}) drew a new outcome but its {capacity} outcome "
                f"slots are full (max_outcomes={capacity}); the search stops rather than merge two outcomes: raise "
                "max_outcomes, or leave it None (as many slots as simulations: never full)"
            )
        # the trees that expanded nothing write to their scratch edge, whose slots are never read as children
        w.outcomes.index_put_((edge, used.clamp_max(capacity - 1)), slot - w.offsets)

    def _select(self, w: TreeViews, node: torch.Tensor) -> torch.Tensor:
        """The tree policy's action at flat nodes ``node`` ``[B]``, reading only the statistics it needs."""
        total = w.node["total"].take(node)
        stats = NodeStats(
            w.search_values.index_select(0, node),
            total,
            w.rows["visits"].index_select(0, node) if self._reads_visits else None,
            w.rows["entropy_q"].index_select(0, node) if self._reads_entropy else None,
            w.counts.index_select(0, total),
        )
        return self.policy.select_rows(stats, self.uniform(node.shape[0]))

    def _simulate(self, w: TreeViews, root: torch.Tensor) -> None:
        sim, k = self.simulator, w.num_actions
        node, state, active = w.offsets, root, w.everyone
        nodes, edges, children, rewards, actives, states, dones = [], [], [], [], [], [], []
        # descend: one tree-policy draw and one model step per level for all B trees. A tree that has
        # left its tree keeps stepping through its scratch node (or the terminal node it stopped at):
        # those levels are masked out of the backup, so the loop needs no per-tree branching.
        while True:
            action = self._select(w, node)
            edge = torch.add(action, node, alpha=k)
            if w.states is None:
                state, reward, done = sim.step(state, action)
            else:
                state, reward, done = self._replay(w, state, action, edge, active)
            nodes.append(node)
            edges.append(edge)
            rewards.append(reward)
            actives.append(active)
            states.append(state)
            dones.append(done)
            # the child: the edge's one, or at a chance edge the one whose state was drawn (scratch: a new outcome)
            node = self._outcome(w, edge, state) if self.chance else w.next.take(edge)
            children.append(node)
            active = active & ~w.node["terminal"].take(node)
            if not bool(active.any()):
                break
        active = torch.stack(actives)
        reward = torch.stack(rewards)
        if not bool(torch.isfinite(reward).all()):
            bad = (active & ~torch.isfinite(reward)).any(0)
            if bool(bad.any()):
                raise ValueError(f"the simulator returned a non-finite reward in tree {int(bad.nonzero()[0, 0])}; a tree search needs finite rewards")
        # each path's last level: where its tree stopped (active levels are a prefix of the levels)
        last = (active.sum(0) - 1).unsqueeze(0)
        edge = torch.stack(edges)
        child = torch.stack(children)
        leaf_edge = edge.gather(0, last).squeeze(0)
        expand = child.gather(0, last).squeeze(0) == w.scratch
        leaf_state = torch.stack(states).gather(0, _rows_like(last, state).expand((1,) + state.shape)).squeeze(0)
        slot = self._add_nodes(w, leaf_state, expand, torch.stack(dones).gather(0, last).squeeze(0))
        # the trees that stopped at a terminal node they had write their new "child" to their scratch edge
        leaf_edge = torch.where(expand, leaf_edge, w.scratch_edge)
        if self.chance:
            self._add_outcomes(w, leaf_edge, expand, slot)
        else:
            w.next.index_put_((leaf_edge,), slot)
            w.edge["child"].index_put_((leaf_edge,), slot - w.offsets)
        child.scatter_(0, last, torch.where(expand, slot, child.gather(0, last).squeeze(0)).unsqueeze(0))
        self._backup(w, torch.stack(nodes), edge, child, reward, active)

    def _replay(self, w: TreeViews, state: torch.Tensor, action: torch.Tensor, edge: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One descent level with deterministic rewards: a tried edge's child state, reward and end as the tree
        kept them; the simulator steps only the trees whose edge is untried (their path's last level), and the
        edge keeps its reward. The trees out of their tree get their scratch node's (masked by the search)."""
        child = w.next.take(edge)
        new = active & (child == w.scratch)
        nxt = w.states.index_select(0, child)
        reward = w.rewards.take(edge)
        done = w.node["terminal"].take(child)
        if bool(new.any()):
            rows = new.nonzero().squeeze(-1)
            stepped, paid, ended = self.simulator.step(state.index_select(0, rows), action.index_select(0, rows))
            paid = paid.to(dtype=reward.dtype, device=reward.device)
            w.rewards.index_put_((edge.index_select(0, rows),), paid)
            nxt = nxt.index_copy(0, rows, stepped)
            reward = reward.index_copy(0, rows, paid)
            done = done.index_copy(0, rows, ended.to(done.device))
        return nxt, reward, done

    def _backup(self, w: TreeViews, node: torch.Tensor, edge: torch.Tensor, child: torch.Tensor, reward: torch.Tensor, active: torch.Tensor) -> None:
        """Back up the ``[L, B]`` paths (``child``: each level's child, flat ids): visit and arrival counts and reward sums
        of all levels at once, then the values level by level upwards."""
        gamma, backup = self.gamma, self.backup
        edge = torch.where(active, edge, w.scratch_edge)
        node = torch.where(active, node, w.scratch)
        child = torch.where(active, child, w.scratch)
        # a path visits a node at most once: only the scratch entries collide (the counts add 0 there, so
        # the scratch node's count stays inside the policy's count table; its other statistics are garbage)
        ones = active.view(-1).long()
        w.node["total"].index_put_((node.view(-1),), ones, accumulate=True)
        w.edge["visits"].index_put_((edge.view(-1),), ones, accumulate=True)
        w.node["arrivals"].index_put_((child.view(-1),), ones, accumulate=True)
        w.edge["reward_sum"].index_put_((edge.view(-1),), reward.view(-1), accumulate=True)
        visits = w.edge["visits"].take(edge)
        mean_reward = w.edge["reward_sum"].take(edge) / visits.to(reward.dtype)
        action = torch.sub(edge, node, alpha=w.num_actions)
        # each level's rows, split once (one operation per statistic, not one per statistic and level)
        levels = [_Level(*rows) for rows in zip(*(t.unbind(0) for t in (node, edge, child, action, visits, reward, mean_reward, active)))]
        reads = backup.reads_rows
        ret = None
        if "ret" in reads:
            # the return starts at the evaluation of the node each path ended in
            last = (active.sum(0) - 1).unsqueeze(0)
            ret = w.node["leaf_value"].take(child.gather(0, last).squeeze(0))
        for level in reversed(levels):
            bellman_rows = self._back_up_bellman(w, level) if self._track_bellman else None
            at, through = level.node, level.edge
            total = w.node["total"].take(at) if "total" in reads else None
            stats = EdgeStats(
                level.action, level.visits, level.reward, level.mean_reward, gamma, level.active,
                v_next=w.next_state("value", level) if "v_next" in reads else None,
                h_next=w.next_state("entropy", level) if "h_next" in reads else None,
                ret=ret,
                q_edge=w.edge["q"].take(through) if "q_edge" in reads else None,
                q=w.rows["q"].index_select(0, at) if "q" in reads else None,
                visits=w.rows["visits"].index_select(0, at) if "visits" in reads else None,
                total=total,
                q_bellman=bellman_rows,
                bellman=w.node["bellman"].take(at) if "bellman" in reads else None,
                entropy_q=w.rows["entropy_q"].index_select(0, at) if "entropy_q" in reads else None,
                counts=None if total is None else w.counts.index_select(0, total),
            )
            # the backup returns what changes; the search writes it
            result = backup.update_rows(stats, self.policy)
            if result.q is not None:
                w.edge["q"].index_put_((through,), result.q)
            if result.value is not None:
                w.node["value"].index_put_((at,), result.value)
            if result.entropy_q is not None:
                w.edge["entropy_q"].index_put_((through,), result.entropy_q)
            if result.entropy is not None:
                w.node["entropy"].index_put_((at,), result.entropy)
            if result.ret is not None:
                ret = result.ret

    def _back_up_bellman(self, w: TreeViews, level: _Level) -> torch.Tensor:
        """``Q_B(s, a) = mean r + gamma V_B(s')`` and ``V_B(s) = max`` over tried actions at one level; the nodes' ``Q_B`` rows."""
        node, edge = level.node, level.edge
        w.edge["q_bellman"].index_put_((edge,), torch.add(level.mean_reward, w.next_state("bellman", level), alpha=self.gamma))
        rows = w.rows["q_bellman"].index_select(0, node)
        tried = w.rows["visits"].index_select(0, node) > 0
        w.node["bellman"].index_put_((node,), torch.where(tried, rows, -math.inf).amax(-1))
        return rows

    # -- recommendations ----------------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        """The search's random streams as plain data (the tree policy's generator and the evaluator's: a checkpoint's
        between two searches); :meth:`load_rng_state` restores them. Refused where ``uniform`` replaces the generator."""
        return {"tree_policy": self._own_generator().get_state(), "evaluator": evaluator_rng_state(self.evaluator)}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self._own_generator().set_state(state["tree_policy"])
        load_evaluator_rng_state(self.evaluator, state["evaluator"])

    def _own_generator(self) -> torch.Generator:
        """The tree policy's generator; refused where a caller's ``uniform`` draws instead (its state is the caller's)."""
        if self.uniform is not self._own_uniform:
            raise TypeError("BatchedTreeSearch(uniform=...) draws from the caller's stream: it has no state of its own")
        return self._generator

    def root_values(self, kind: str | None = None) -> torch.Tensor:
        """Root action values ``[B, A]`` used by ``kind`` (default: this search's recommendation); untried actions are -inf."""
        kind = kind or self.recommend
        if kind not in RECOMMENDATIONS:
            raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got {kind!r}")
        tree = self._require_tree()
        if kind == "bellman_value" and not self._track_bellman:
            raise ValueError(
                f"this {self.backup!r} search kept no Bellman values; build it with recommend='bellman_value'"
            )
        visits = tree.visits[:, 0]
        if kind == "most_visited":
            return visits.to(self.dtype)
        q = tree.q_bellman[:, 0] if kind == "bellman_value" else self.backup.search_values(tree)[:, 0]
        return torch.where(visits > 0, q, -math.inf)

    def recommended_action(self, kind: str | None = None) -> torch.Tensor:
        """Argmax of :meth:`root_values` per tree (lowest index on ties), ``[B]``."""
        return self.root_values(kind).argmax(-1)

    def root_value(self) -> torch.Tensor:
        """Each root's value under this search's backup (soft value for MENTS, mean return for UCT), ``[B]``."""
        return self._require_tree().value[:, 0]

    def _require_tree(self) -> BatchedTree:
        if self.tree is None:
            raise RuntimeError("no search has run yet; call search() first")
        return self.tree


def _rows_like(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask`` ``[B]`` shaped to broadcast against ``like`` ``[B, *S]``."""
    return mask.reshape(mask.shape + (1,) * (like.dim() - 1))


def _check_finite(what: str, values: torch.Tensor, where: torch.Tensor) -> None:
    bad = where & ~torch.isfinite(values)
    if bool(bad.any()):
        index = bad.nonzero()[0].tolist()
        raise ValueError(f"{what} is not finite at {index}: {values[tuple(index)].item()}; a tree search needs finite values")
