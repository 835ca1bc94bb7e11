"""The search tree as preallocated arrays: node ``i``'s statistics are row ``i`` of each array.

Each simulation adds at most one node, so a search of ``n`` simulations allocates ``n + 1`` rows
once and never grows. Edge statistics are ``(nodes, num_actions)`` arrays indexed by
``(node, action)``; with deterministic transitions an edge has one child (``child[node, action]``),
with stochastic ones the children of an edge are kept in a dict keyed by the simulator's
``state_key`` (the only per-edge Python objects, and only for stochastic simulators).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["SearchTree"]


class SearchTree:
    """Node and edge statistics of one search.

    Node arrays (``capacity``): ``value`` (the backup's value: soft for MENTS, the evaluation for
    a fresh leaf), ``bellman`` (Bellman value), ``entropy`` (DENTS's subtree entropy ``H_V``),
    ``leaf_value`` (the evaluator's estimate), ``total`` (``sum_a N(s, a)``), ``arrivals`` (times
    the node was reached from its parent edge), ``terminal``.

    Edge arrays (``capacity, num_actions``): ``visits`` (``N(s, a)``), ``reward_sum``, ``q`` (the
    backup's action value), ``q_bellman``, ``entropy_q`` (``H_Q``), ``child`` (-1 until expanded).
    """

    def __init__(self, num_actions: int, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got capacity={capacity}")
        k = num_actions
        self.num_actions = k
        self.capacity = capacity
        self.size = 0
        self.value = np.zeros(capacity)
        self.bellman = np.zeros(capacity)
        self.entropy = np.zeros(capacity)
        self.leaf_value = np.zeros(capacity)
        self.total = np.zeros(capacity, dtype=np.int64)
        self.arrivals = np.zeros(capacity, dtype=np.int64)
        self.terminal = np.zeros(capacity, dtype=bool)
        self.visits = np.zeros((capacity, k), dtype=np.int64)
        self.reward_sum = np.zeros((capacity, k))
        self.q = np.zeros((capacity, k))
        self.q_bellman = np.zeros((capacity, k))
        self.entropy_q = np.zeros((capacity, k))
        self.child = np.full((capacity, k), -1, dtype=np.int64)
        self.outcomes: dict[tuple[int, int], dict[Hashable, int]] = {}

    def add_node(self, value: float, terminal: bool, q_init: Sequence[float] | float) -> int:
        """Append a node whose evaluation is ``value``; its untried actions start at ``q_init``."""
        i = self.size
        if i == self.capacity:
            raise RuntimeError(f"the tree is full ({self.capacity} nodes); allocate one node per simulation plus the root")
        self.size = i + 1
        self.value[i] = value
        self.bellman[i] = value
        self.leaf_value[i] = value
        self.terminal[i] = terminal
        self.q[i] = q_init
        self.q_bellman[i] = q_init
        return i
