"""One Monte-Carlo tree search over one tree, on plain floats: the reference loop and the faster one for a single tree.

A simulation restores the root state, descends by the tree policy until it leaves the tree (a
new node, which is evaluated) or ends the episode, then backs the result up the path. The
algorithms are combinations of parts (the table of :mod:`~torchrl_reg.planning.algorithms`;
:func:`~torchrl_reg.planning.factory.make_search` assembles them); the batched loop
(:mod:`~torchrl_reg.planning.batched`) takes the same parts and reproduces this one draw for draw at
``B = 1``. Stochastic simulators get chance outcomes: an edge's children are keyed by the simulator's
``state_key`` and averaged by their arrival counts in the backup.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from torchrl_reg.plain_state import decode, encode
from torchrl_reg.planning.algorithms import RECOMMENDATIONS, Policy, algorithm_of
from torchrl_reg.planning.backups import Backup, bellman_value, chance_mean
from torchrl_reg.planning.records import EdgeStats, NodeStats, make_record
from torchrl_reg.planning.evaluators import (
    RandomRollout, check_evaluator, evaluator_result_refusal, evaluator_rng_state, load_evaluator_rng_state,
)
from torchrl_reg.planning.simulators import Simulator, check_simulator
from torchrl_reg.planning.tensor_simulators import check_search_simulator
from torchrl_reg.planning.tree import SearchTree
from torchrl_reg.validation import check_count

__all__ = ["TreeSearch"]

Evaluator = Callable[[Simulator], "tuple[float, Any]"]


class TreeSearch:
    """Monte-Carlo tree search over a :class:`~torchrl_reg.planning.simulators.Simulator`.

    Args:
        simulator: the model to search in; its current state is the root of every search.
        tree_policy: one of the score modules (``select`` is called once per node per simulation).
        backup: :class:`~torchrl_reg.planning.backups.SoftmaxBackup` (MENTS),
            :class:`~torchrl_reg.planning.backups.BellmanBackup` (BTS, DENTS with ``entropy=True``) or
            :class:`~torchrl_reg.planning.backups.MeanBackup` (UCT); its ``update`` is called once per edge of a path
            with an :class:`~torchrl_reg.planning.records.EdgeStats` and returns what changes, which the search writes.
        recommend: ``"search_value"`` (argmax of the backup's Q over tried actions),
            ``"bellman_value"`` or ``"most_visited"``.
        evaluator: leaf evaluation, ``(simulator) -> (value, q_init or None)``.
        gamma: discount inside the tree.
        q_init: the initial value of untried actions when the evaluator gives none.
        seed: seeds the tree policy's draws.
    """

    def __init__(
        self,
        simulator: Simulator,
        *,
        tree_policy: Policy,
        backup: Backup,
        recommend: str = "search_value",
        evaluator: Evaluator | None = None,
        gamma: float = 1.0,
        q_init: float = 0.0,
        seed: int = 0,
    ):
        check_search_simulator(simulator, batched=False, owner="TreeSearch")
        if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
            raise ValueError(f"gamma must be a number in [0, 1], got gamma={gamma!r}")
        algorithm_of(tree_policy, backup, recommend)
        self.simulator = check_simulator(simulator)
        check_evaluator(evaluator, batched=False, owner="TreeSearch", gamma=gamma, num_actions=simulator.num_actions)
        if not math.isfinite(q_init):
            raise ValueError(f"q_init must be finite, got q_init={q_init}")
        self.tree_policy = tree_policy
        self.backup = backup
        self.recommend = recommend
        self.evaluator = evaluator if evaluator is not None else RandomRollout(gamma=gamma, seed=seed)
        self.gamma = float(gamma)
        self.q_init = float(q_init)
        self.rng = random.Random(seed)
        self.tree: SearchTree | None = None
        # read once per search step instead of once per node (the hot path): what the parts read
        self._reads_visits = "visits" in tree_policy.reads
        self._reads_entropy = "entropy_q" in tree_policy.reads
        self._on_bellman = backup.on_bellman
        self._backup_reads = tuple(
            name in backup.reads for name in ("v_next", "h_next", "q_edge", "q", "visits", "total", "bellman", "entropy_q")
        )
        # Bellman values cost a row max per node: kept only when searched on or recommended from
        self._track_bellman = backup.on_bellman or recommend == "bellman_value"

    # -- the search ---------------------------------------------------------------------------
    def search(self, num_simulations: int, *, simulator: Simulator | None = None) -> int:
        """Run ``num_simulations`` simulations from the simulator's current state; return the recommended action.

        ``simulator`` replaces the search's simulator from this search on (the model of this move, e.g.
        a task's :meth:`~torchrl_reg.planning.tasks.Task.simulator`; it must have the same actions). The simulator is left
        in the root state. The tree stays in :attr:`tree` for inspection.
        """
        num_simulations = check_count("num_simulations", num_simulations)
        if simulator is not None:
            if simulator.num_actions != self.simulator.num_actions:
                raise ValueError(f"the simulator has {simulator.num_actions} actions, this search {self.simulator.num_actions}")
            self.simulator = check_simulator(simulator)
        sim = self.simulator
        root_state = sim.save()
        tree = SearchTree(sim.num_actions, num_simulations + 1)
        self.tree = tree
        value, q_init = self._evaluate()
        sim.restore(root_state)
        tree.add_node(value, False, q_init)
        self._simulate(tree, root_state, num_simulations)
        sim.restore(root_state)
        return self.recommended_action()

    def _evaluate(self) -> tuple[float, Any]:
        """The evaluator's ``(value, initial action values)`` at the simulator's state, refused unless finite."""
        result = self.evaluator(self.simulator)
        try:
            value, q_init = result
            finite = math.isfinite(value)
        except (TypeError, ValueError):  # not a pair, or a value that is no number: refused whole, naming the search
            raise evaluator_result_refusal("TreeSearch", result, batched=False) from None
        if not finite:
            raise ValueError(f"the leaf evaluation is {value}; a tree search needs finite values")
        if q_init is None:
            return value, self.q_init
        actions = self.simulator.num_actions
        if np.shape(q_init) != (actions,):  # one value would be broadcast to every action without a word
            raise ValueError(
                f"the evaluator's initial action values have shape {list(np.shape(q_init))}; a search over "
                f"{actions} actions needs one per action, shape [{actions}]"
            )
        if not np.isfinite(q_init).all():
            raise ValueError(f"the evaluator's initial action values {list(q_init)} are not all finite")
        return value, q_init

    def _simulate(self, tree: SearchTree, root_state: Any, count: int) -> None:
        """``count`` simulations from ``root_state``; the parts' methods and the tree's arrays are bound once for all
        of them (the hot path)."""
        sim = self.simulator
        restore, step, deterministic = sim.restore, sim.step, sim.deterministic
        select, uniform, evaluate, add_node = self.tree_policy.select, self.rng.random, self._evaluate, tree.add_node
        backup = self._path_backup(tree)
        # the rows of the NodeStats fields the tree policy reads; the others are None
        q_rows = tree.q_bellman if self._on_bellman else tree.q
        visit_rows = tree.visits if self._reads_visits else None
        entropy_rows = tree.entropy_q if self._reads_entropy else None
        total, child_of, child_item, terminal, isfinite = tree.total, tree.child, tree.child.item, tree.terminal, math.isfinite
        for _ in range(count):
            restore(root_state)
            path: list[tuple[int, int, float, int]] = []
            node = 0
            while True:
                # the node's record, every field in NodeStats's order, built as the tuple it is
                action = select(make_record(NodeStats, (
                    q_rows[node].tolist(),
                    float(total[node]),
                    None if visit_rows is None else visit_rows[node].tolist(),
                    None if entropy_rows is None else entropy_rows[node].tolist(),
                    None,
                )), uniform())
                reward, done = step(action)
                if not isfinite(reward):
                    raise ValueError(f"the simulator returned reward={reward} for action {action}; a tree search needs finite rewards")
                if deterministic:
                    child = child_item(node, action)  # an int (ndarray.item: no numpy scalar)
                else:
                    outcomes = tree.outcomes.setdefault((node, action), {})
                    key = sim.state_key()  # before the evaluator moves the simulator on
                    child = outcomes.get(key, -1)
                if child < 0:
                    if done:
                        child = add_node(0.0, True, 0.0)
                    else:
                        value, q_init = evaluate()
                        child = add_node(value, False, q_init)
                    if deterministic:
                        child_of[node, action] = child
                    else:
                        outcomes[key] = child
                    path.append((node, action, reward, child))
                    break
                path.append((node, action, reward, child))
                if terminal[child]:
                    break
                node = child
            backup(path)

    @staticmethod
    def _child_values(tree: SearchTree, node: int, action: int) -> tuple[float, float, float]:
        """(value, Bellman value, entropy) of a chance edge's next states, averaged by arrival counts (:func:`chance_mean`)."""
        children = list(tree.outcomes[(node, action)].values())
        counts = tree.arrivals[children]
        return chance_mean(tree.value[children], counts), chance_mean(tree.bellman[children], counts), chance_mean(tree.entropy[children], counts)

    def _path_backup(self, tree: SearchTree) -> Callable[[list[tuple[int, int, float, int]]], None]:
        """The backup of one simulation's path in ``tree``, with what it reads bound once per search (the hot path)."""
        gamma, update, policy, deterministic = self.gamma, self.backup.update, self.tree_policy, self.simulator.deterministic
        track_bellman, child_values = self._track_bellman, self._child_values
        reads_v_next, reads_h_next, reads_q_edge, reads_q, reads_visits, reads_total, reads_bellman, reads_entropy = self._backup_reads
        arrivals, total, visits, reward_sums, leaf_value = tree.arrivals, tree.total, tree.visits, tree.reward_sum, tree.leaf_value
        # ints read by ndarray.item (no numpy scalar: the hot path)
        arrivals_of, total_of, visits_of = arrivals.item, total.item, visits.item
        values, bellman, entropy, q_rows, q_bellman_rows, entropy_rows = (
            tree.value, tree.bellman, tree.entropy, tree.q, tree.q_bellman, tree.entropy_q
        )

        def backup(path: list[tuple[int, int, float, int]]) -> None:
            q_bellman = v_next = h_next = None
            ret = float(leaf_value[path[-1][3]])
            for node, action, reward, child in reversed(path):
                arrivals[child] = arrivals_of(child) + 1
                total[node] = total_of(node) + 1
                n = visits_of(node, action) + 1
                visits[node, action] = n
                reward_sum = float(reward_sums[node, action]) + reward
                reward_sums[node, action] = reward_sum
                mean_reward = reward_sum / n
                if deterministic:
                    if reads_v_next:
                        v_next = float(values[child])
                    if reads_h_next:
                        h_next = float(entropy[child])
                    if track_bellman:
                        vb_next = float(bellman[child])
                else:
                    v_next, vb_next, h_next = child_values(tree, node, action)
                if track_bellman:
                    q_bellman_rows[node, action] = mean_reward + gamma * vb_next
                    q_bellman = q_bellman_rows[node].tolist()
                    bellman[node] = node_bellman = bellman_value(q_bellman, visits[node].tolist())
                elif reads_bellman:
                    node_bellman = float(bellman[node])
                # the record, every field in EdgeStats's order, built as the tuple it is (the hot path: no argument
                # handling); the backup returns what changes and the search writes it
                q, value, returned, entropy_q, node_entropy = update(make_record(EdgeStats, (
                    action, n, reward, mean_reward, gamma, True, v_next, h_next, ret,
                    float(q_rows[node, action]) if reads_q_edge else None,
                    q_rows[node] if reads_q else None,
                    visits[node] if reads_visits else None,
                    total_of(node) if reads_total else None,
                    q_bellman,
                    node_bellman if reads_bellman else None,
                    entropy_rows[node] if reads_entropy else None,
                    None,
                )), policy)
                if q is not None:
                    q_rows[node, action] = q
                if value is not None:
                    values[node] = value
                if entropy_q is not None:
                    entropy_rows[node, action] = entropy_q
                if node_entropy is not None:
                    entropy[node] = node_entropy
                if returned is not None:
                    ret = returned

        return backup

    # -- recommendations ----------------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        """The search's random streams as plain data (the tree policy's and the evaluator's: a checkpoint's between two
        searches, :mod:`torchrl_reg.plain_state`); :meth:`load_rng_state` restores them, so that the next searches
        draw what they would have drawn."""
        return {"tree_policy": encode(self.rng.getstate()), "evaluator": evaluator_rng_state(self.evaluator)}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.setstate(decode(state["tree_policy"]))
        load_evaluator_rng_state(self.evaluator, state["evaluator"])

    def root_values(self, kind: str | None = None) -> np.ndarray:
        """Root action values used by ``kind`` (default: this search's recommendation); untried actions are -inf."""
        kind = kind or self.recommend
        tree = self._require_tree()
        if kind == "bellman_value" and not self._track_bellman:
            raise ValueError(
                f"this {self.backup!r} search kept no Bellman values; build it with recommend='bellman_value'"
            )
        visits = tree.visits[0]
        if kind == "most_visited":
            return visits.astype(float)
        q = tree.q_bellman[0] if kind == "bellman_value" else self.backup.search_values(tree)[0]
        return np.where(visits > 0, q, -np.inf)

    def recommended_action(self, kind: str | None = None) -> int:
        """Argmax of :meth:`root_values` (lowest index on ties)."""
        kind = kind or self.recommend
        if kind not in RECOMMENDATIONS:
            raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got {kind!r}")
        return int(np.argmax(self.root_values(kind)))

    def root_value(self) -> float:
        """The root's value under this search's backup: soft value (MENTS), Bellman value (BTS, DENTS) or the
        mean of the returns of all simulations (UCT)."""
        return float(self._require_tree().value[0])

    def _require_tree(self) -> SearchTree:
        if self.tree is None:
            raise RuntimeError("no search has run yet; call search() first")
        return self.tree
