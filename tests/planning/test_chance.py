"""Searches with chance nodes against exact values: a synthetic tree with chance after every action, slippery
FrozenLake, and a problem where a determinized model provably misleads (strategy fusion).

Each check splits a search's values in two parts. The *deterministic part*: given the outcome counts the search
drew, its values are the backup's recursion with the arrival-weighted mean at chance edges; an independent float64
recursion over the tree's counts (and the problem's own rewards) must agree to 1e-10. The *sampled part*: those
counts are samples of the outcome probabilities, so the search's values differ from the exact ones
(:mod:`torchrl_reg.planning.exact`) by at most an interval derived below (:func:`_interval`), not tuned to any run.
"""
from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest

import torch

from torchrl_reg.planning import ALGORITHMS, BatchedTreeSearch, FrozenLakeSimulator, KNOBS, RandomRollout, UCB1Score, make_search, parts
from torchrl_reg.planning.backups import Backup, BellmanBackup, MeanBackup, SoftmaxBackup
from torchrl_reg.planning.exact import chance_tree_values, finite_horizon_q
from torchrl_reg.planning.simulators import ChanceTree
from torchrl_reg.planning.tensor_simulators import TensorChanceTree

TAU, ALPHA = 0.3, 0.3
DELTA = 1e-3  # the probability that a sampled part falls outside its interval, all edges and sample sizes together


def _knobs(algorithm: str, **extra) -> dict:
    knobs = {**dict(tau=TAU, alpha=ALPHA, beta_0=1.0, eps=1.0, c=math.sqrt(2.0), p=2.0), **extra}
    assert set(KNOBS[algorithm]) <= set(knobs), f"give the chance tests a value of {algorithm}'s knobs"
    return {k: v for k, v in knobs.items() if k in KNOBS[algorithm]}


def _ucb1(algorithm: str) -> bool:
    """Whether the row's tree policy is UCB1 (it tries its worst actions only some log n times)."""
    return isinstance(parts(algorithm)[0], UCB1Score)


def _backup(algorithm: str):
    """The algorithm's backup (the table's): the checks read its statistic (``values``), whether it averages returns
    (``reads_return``: UCT's mean) and its node rule (``exact_values``, under the visit shares where it reads a policy)."""
    return parts(algorithm, **_knobs(algorithm))[1]


def _zero_leaf(sim):
    """A leaf evaluation of 0: UCT's first return through a new node is then 0, which the recursion below adds."""
    return 0.0, None


# -- exact values, independently ------------------------------------------------------------------------------


def _enumerate_chance_tree_q(tree: ChanceTree, node: int, tau: float | None) -> np.ndarray:
    """Root action values by plain recursion over nodes and outcomes (no levels, no arrays): Bellman or soft."""
    q = np.zeros(tree.num_actions)
    for a in range(tree.num_actions):
        for o in range(tree.outcomes):
            child = node * tree.fan + a * tree.outcomes + o + 1
            value = 0.0
            if child < tree.first_leaf:
                below = _enumerate_chance_tree_q(tree, child, tau)
                value = below.max() if tau is None else tau * math.log(sum(math.exp(x / tau) for x in below))
            q[a] += tree.probs[node, a, o] * (tree.edge_reward[child] + (tree.leaf_value[child - tree.first_leaf] if child >= tree.first_leaf else 0.0) + value)
    return q


@pytest.mark.parametrize("backup, tau", [("bellman", None), ("soft", 0.3), ("soft", 2.0)])
def test_chance_tree_recursion_matches_plain_recursion(backup, tau):
    tree = ChanceTree(2, 3, 3, seed=4)
    q, value = chance_tree_values(tree, BellmanBackup() if backup == "bellman" else SoftmaxBackup(tau=tau))
    np.testing.assert_allclose(q[0], _enumerate_chance_tree_q(tree, 0, tau), rtol=0, atol=1e-12)
    np.testing.assert_allclose(q[5], _enumerate_chance_tree_q(tree, 5, tau), rtol=0, atol=1e-12)


def test_chance_tree_values_by_hand():
    # one decision, two actions, two outcomes: Q(a) = sum_o p(o|a) (edge reward + leaf value) of the children
    tree = ChanceTree(2, 2, 1, seed=0)
    pay = tree.edge_reward[1:] + tree.leaf_value
    by_hand = np.array([tree.probs[0, 0] @ pay[:2], tree.probs[0, 1] @ pay[2:]])
    q, value = chance_tree_values(tree, SoftmaxBackup(tau=0.5))
    np.testing.assert_allclose(q[0], by_hand, rtol=0, atol=1e-15)
    assert value[0] == pytest.approx(0.5 * math.log(math.exp(by_hand[0] / 0.5) + math.exp(by_hand[1] / 0.5)), abs=1e-15)
    policy = np.array([[0.25, 0.75]])
    assert chance_tree_values(tree, MeanBackup(), policy=policy)[1][0] == pytest.approx(0.25 * by_hand[0] + 0.75 * by_hand[1], abs=1e-15)
    with pytest.raises(ValueError, match=r"MeanBackup\(\) takes a mean under a policy: pass the policy"):
        chance_tree_values(tree, MeanBackup())
    with pytest.raises(TypeError, match="backup must be a Backup"):
        chance_tree_values(tree, "max")


def test_frozenlake_dynamic_programming_by_hand():
    # 4x4 slippery: from cell 14 (left of the goal) every action slips to one of three moves with probability 1/3;
    # 'right' (2) reaches the goal directly with 1/3, 'down' (1) too (slipping right), 'up' (3) too; 'left' (0) never
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    q = finite_horizon_q(env.unwrapped.P, 2)
    np.testing.assert_allclose(q[0, 14], [0.0, 1 / 3, 1 / 3, 1 / 3], rtol=0, atol=1e-15)
    # one step left: only cell 14 is next to the goal (11, above it, is a hole)
    one = q[0].max(-1)
    assert one[14] == pytest.approx(1 / 3, abs=1e-15) and np.count_nonzero(one) == 1
    # two steps left, 'down' from 14 lands on 13 (slipping left), 14 (down is a wall) or the goal (slipping right),
    # 1/3 each: 1/3 (0 + 1/3 + 1), and 'left' lands on 14 (slipping down), 13 or 10: 1/3 * 1/3
    np.testing.assert_allclose(q[1, 14], [1 / 9, 4 / 9, 4 / 9, 1 / 3 + 0.0], rtol=0, atol=1e-15)


# -- the checker ------------------------------------------------------------------------------------------------


@dataclass
class _Problem:
    """A stochastic problem as the checker reads it: the root's key, each (key, action)'s outcomes ``{next key: (p,
    reward, terminal)}``, the exact ``Q*(key, a)`` and ``V*(key)`` under the backup checked, and an a-priori bound on
    the return from a key (every return lies in ``[0, bound]``), and the range of the expected return from a key
    under any policy (expectimin, expectimax)."""

    root: object
    outcomes: Callable[[object, int], dict]
    exact_q: Callable[[object, int], float] | None  # None for UCT's mean: the checker computes it over the tree
    exact_v: Callable[[object], float] | None
    max_return: Callable[[object], float]
    value_range: Callable[[object], tuple[float, float]] | None = None


def _interval(n: int, support: int, spread: float, num_simulations: int, num_actions: int) -> float:
    """How far the arrival-weighted mean of ``g`` over ``n`` sampled outcomes may stray from its expectation.

    With ``p_hat`` the outcome frequencies after ``n`` iid draws from ``p`` over ``support`` outcomes,
    ``P(||p_hat - p||_1 >= eps) <= (2^support - 2) exp(-n eps^2 / 2)`` (Weissman, Ordentlich, Seroussi, Verdu,
    Weinberger, Inequalities for the L1 deviation of the empirical distribution, HP Labs HPL-2003-97, Theorem 2.1), and
    ``|sum (p_hat - p) g| <= ||p_hat - p||_1 spread / 2`` for any ``g`` within a range of width ``spread``. The outcomes
    of an edge's successive visits are iid whatever the search did before, so the bound holds for every sample size
    ``n <= num_simulations`` of every edge (at most ``(num_simulations + 1) num_actions`` edges) with probability
    ``1 - DELTA`` together (union bound).
    """
    if support < 2:
        return 0.0
    events = (2.0**support - 2.0) * num_simulations * (num_simulations + 1) * num_actions / DELTA
    return 0.5 * spread * math.sqrt(2.0 * math.log(events) / n)


def _check_search(search, problem: _Problem, backup: Backup, num_simulations: int) -> tuple[float, float]:
    """Check every edge of ``search.tree`` (a TreeSearch's): the deterministic part to 1e-10, the sampled part within
    its interval; the root's errors and intervals ``[A]`` each.

    The interval of an edge: with ``e(s, a) = Q_search(s, a) - Q*(s, a)`` and ``g_o = r_o + V*(o)``,
    ``e(s, a) = sum_o p_hat_o (V_search(o) - V*(o)) + sum_o (p_hat_o - p_o) g_o`` (+ UCT's first returns, below), so
    ``|e(s, a)| <= sum_o p_hat_o |V_search(o) - V*(o)| + _interval(...)``. A node's value error is at most its
    actions' largest ``|e|`` (max and log-sum-exp are 1-Lipschitz in the max norm) and, for UCT's mean under its own
    visit shares ``w``, ``sum_a w_a |e(o, a)|``. UCT's mean of returns counts a new node's first return as its leaf
    value 0 instead of ``V(o)``: ``Q_search = sum_o p_hat_o (r_o + V_search(o)) - sum_o V_search(o) / n``, at most
    ``sum_o max_return(o) / n`` away.
    """
    tree = search.tree
    k = tree.num_actions
    stored = getattr(tree, backup.values)
    root_errors, root_bounds = np.zeros(k), np.zeros(k)
    exact_q = problem.exact_q
    if exact_q is None:  # UCT's mean under its own visit shares, with the true probabilities: over the tree itself
        assert backup.exact_reads_policy
        exact_at: dict[int, np.ndarray] = {}

        def exact_mean(node: int, key) -> float:
            q = np.zeros(k)
            for a in range(k):
                drawn = tree.outcomes[(node, a)]
                for nxt, (p, r, terminal) in problem.outcomes(key, a).items():
                    assert terminal or nxt in drawn, f"outcome {nxt} of {key} never drawn: its mean needs its visit shares"
                    q[a] += p * (r + (0.0 if terminal else exact_mean(drawn[nxt], nxt)))
            exact_at[node] = q
            return float(backup.exact_values(q, tree.visits[node] / float(tree.total[node])))

        exact_mean(0, problem.root)

    def visit(node: int, key, is_root: bool) -> tuple[float, float]:
        """(V of node recomputed from the counts, how far the search's V of node may be from the exact one)."""
        exact = exact_at[node] if problem.exact_q is None else [exact_q(key, a) for a in range(k)]
        assert (tree.visits[node] > 0).all(), f"node {node} has an untried action: the check needs every edge tried"
        q_emp, bounds = np.zeros(k), np.zeros(k)
        for a in range(k):
            n = int(tree.visits[node, a])
            truth = problem.outcomes(key, a)
            drawn = tree.outcomes[(node, a)]
            assert set(drawn) <= set(truth), (key, a, set(drawn) - set(truth))
            total, below, offset = 0.0, 0.0, 0.0
            for nxt, child in drawn.items():
                p, r, terminal = truth[nxt]
                arrivals = int(tree.arrivals[child])
                v_child, b_child = (0.0, 0.0) if terminal else visit(child, nxt, False)
                if backup.reads_return:
                    # UCT: the mean of the returns, the first arrival's return below the child being the leaf value 0
                    total += arrivals * r + (arrivals - 1) * v_child
                    offset += 0.0 if terminal else problem.max_return(nxt) / n
                else:
                    total += arrivals * (r + v_child)
                below += arrivals / n * b_child
            q_emp[a] = total / n
            if backup.exact_reads_policy:  # g = r + V under the search's own visit shares: only its range is known a priori
                lo_hi = {nxt: (0.0, 0.0) if terminal else problem.value_range(nxt) for nxt, (_, _, terminal) in truth.items()}
                spread = max(r + lo_hi[nxt][1] for nxt, (_, r, _) in truth.items()) - min(r + lo_hi[nxt][0] for nxt, (_, r, _) in truth.items())
            else:
                g = [r + (0.0 if terminal else problem.exact_v(nxt)) for nxt, (_, r, terminal) in truth.items()]
                spread = max(g) - min(g)
            bounds[a] = _interval(n, len(truth), spread, num_simulations, k) + below + offset
            error = abs(stored[node, a] - exact[a])
            assert error <= bounds[a], (key, a, stored[node, a], exact[a], bounds[a])
            if is_root:
                root_errors[a], root_bounds[a] = error, bounds[a]
        np.testing.assert_allclose(stored[node], q_emp, rtol=0, atol=1e-10, err_msg=f"node {node}")
        if not backup.exact_reads_policy:
            return float(backup.exact_values(q_emp)), float(bounds.max())
        shares = tree.visits[node] / float(tree.total[node])
        # UCT's mean is linear in the values; a power mean is 1-Lipschitz in the max norm
        bound = float(shares @ bounds) if backup.reads_return else float(bounds.max())
        return float(backup.exact_values(q_emp, shares)), bound

    visit(0, problem.root, True)
    return root_errors, root_bounds


def _chance_tree_problem(tree: ChanceTree, backup: Backup, policy: np.ndarray | None = None) -> _Problem:
    q, value = chance_tree_values(tree, backup, policy=policy)

    def outcomes(node, a):
        children = node * tree.fan + a * tree.outcomes + 1 + np.arange(tree.outcomes)
        return {int(c): (float(tree.probs[node, a, o]), float(tree.step_reward[c]), bool(c >= tree.first_leaf)) for o, c in enumerate(children)}

    def max_return(node):
        level = 0
        while node > 0:
            node, level = (node - 1) // tree.fan, level + 1
        return (tree.depth - level) / tree.depth + 1.0  # edge rewards below 1 / depth each, a leaf value below 1

    # the expected return under any policy lies between the expectimin and the expectimax values
    highest = chance_tree_values(tree, BellmanBackup())[1]
    lowest = -chance_tree_values(_negated(tree), BellmanBackup())[1]
    return _Problem(0, outcomes, lambda node, a: float(q[node, a]), lambda node: float(value[node]), max_return,
                    lambda node: (float(lowest[node]), float(highest[node])))


def _negated(tree: ChanceTree) -> ChanceTree:
    """``tree`` with every reward negated (its expectimax is minus the expectimin of ``tree``)."""
    negated = copy.copy(tree)
    negated.step_reward = -tree.step_reward
    return negated


def _visit_shares(search, tree: ChanceTree) -> np.ndarray:
    """UCT's policy at every decision node of ``tree``: the search's visit shares (every node must be in its tree)."""
    shares = np.zeros((tree.internal, tree.num_actions))
    found = {0: 0}
    for (node, _), children in search.tree.outcomes.items():
        found.update(children)
    for key, node in found.items():
        if key < tree.internal:
            shares[key] = search.tree.visits[node] / search.tree.total[node]
    assert (shares.sum(-1) > 0).all(), "UCT's mean is taken under its visit shares: every decision node must be visited"
    return shares


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_search_converges_to_the_exact_values_of_a_chance_tree(algorithm):
    tree = ChanceTree(2, 3, 2, seed=0)
    n = 6000
    search = make_search(algorithm, tree, **_knobs(algorithm), seed=1, evaluator=_zero_leaf)
    search.search(n)
    backup = _backup(algorithm)
    policy = _visit_shares(search, tree) if backup.exact_reads_policy else None
    problem = _chance_tree_problem(tree, backup, policy)
    _, intervals = _check_search(search, problem, backup, n)
    # informative where the search looked most: the recommended root action's interval is below half the gap between
    # the root's exact action values (0.41 to 0.44), so the check alone ranks that action
    best = int(np.argmax(search.tree.visits[0]))
    gap = abs(problem.exact_q(0, 0) - problem.exact_q(0, 1))
    assert intervals[best] < 0.5 * gap, (intervals, gap)


class _Horizon:
    """A simulator ended after ``steps`` steps: the finite horizon of a task's episodes (its state carries the steps left)."""

    def __init__(self, sim, steps: int):
        self.sim, self.steps, self.left = sim, steps, steps
        self.num_actions, self.deterministic = sim.num_actions, sim.deterministic

    def save(self):
        return self.sim.save(), self.left

    def restore(self, state):
        inner, self.left = state
        self.sim.restore(inner)

    def step(self, action):
        reward, done = self.sim.step(action)
        self.left -= 1
        return reward, done or self.left == 0

    def observation(self):
        return self.sim.observation()

    def state_key(self):
        return self.sim.state_key(), self.left


def _frozenlake_problem(env, backup: Backup, steps: int) -> _Problem:
    table = env.unwrapped.P
    if backup.exact_reads_policy:  # UCT: the expected return under any policy lies between the expectimin and the expectimax
        highest = finite_horizon_q(table, steps).max(-1)
        negated = {s: {a: [(p, nxt, -r, done) for p, nxt, r, done in moves] for a, moves in row.items()} for s, row in table.items()}
        lowest = -finite_horizon_q(negated, steps).max(-1)
        return _Problem((14, steps), _lake_outcomes(table), None, None, lambda key: 1.0,
                        lambda key: (float(lowest[key[1] - 1, key[0]]), float(highest[key[1] - 1, key[0]])))
    q = finite_horizon_q(table, steps, backup=backup)

    def exact_v(key):
        cell, left = key
        row = q[left - 1, cell]
        return float(backup.exact_values(row))

    return _Problem((14, steps), _lake_outcomes(table), lambda key, a: float(q[key[1] - 1, key[0], a]), exact_v, lambda key: 1.0)


def _lake_outcomes(table):
    """A lake's outcomes ``{(next cell, steps left): (p, reward, end)}`` of (cell, steps left) and an action, by next state."""

    def outcomes(key, a):
        (cell, left), merged = key, {}
        for p, nxt, r, done in table[cell][a]:
            prob = merged.get((nxt, left - 1), (0.0,))[0]
            merged[(nxt, left - 1)] = (prob + p, float(r), bool(done) or left == 1)
        return merged

    return outcomes


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_search_converges_to_slippery_frozenlakes_dynamic_programming(algorithm):
    # the 4x4 slippery lake from cell 14 (left of the goal) with two steps left, as an episode two steps before its end
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    lake = FrozenLakeSimulator(env, seed=3)
    lake.restore((14, False))
    n = 8000
    search = make_search(algorithm, _Horizon(lake, 2), **_knobs(algorithm), seed=2, evaluator=_zero_leaf)
    search.search(n)
    _, intervals = _check_search(search, _frozenlake_problem(env, _backup(algorithm), 2), _backup(algorithm), n)
    # informative: UCB1 (UCT, Power-UCT) by design tries its worst root action only some log n times, so only its most
    # visited one's
    informative = intervals[[int(np.argmax(search.tree.visits[0]))]] if _ucb1(algorithm) else intervals
    assert informative.max() < 0.3, intervals


class _BetAfterGo:
    """The strategy-fusion problem. At the root, SAFE (0) pays ``SAFE_REWARD`` and ends; GO (1) pays 0 and leads to a
    decision node where the agent bets on a fair coin that is flipped *after* the bet: bet ``b`` pays 1 if the coin
    shows ``b``, else 0, and ends (the outcome is the coin: state 2 + coin). ``include_rng=True`` saves the coin's
    stream with the state, so that every simulation of a search sees the same coin: one sampled future per move, the
    determinized model."""

    num_actions = 2
    deterministic = False
    SAFE, GO = 0, 1
    SAFE_REWARD = 0.65

    def __init__(self, seed: int, include_rng: bool):
        self.rng, self.include_rng, self.state = random.Random(seed), include_rng, 0

    def save(self):
        return (self.state, self.rng.getstate()) if self.include_rng else (self.state, None)

    def restore(self, saved):
        self.state = saved[0]
        if self.include_rng:
            self.rng.setstate(saved[1])

    def step(self, action):
        if self.state == 0:
            if action == self.SAFE:
                self.state = -1
                return self.SAFE_REWARD, True
            self.state = 1
            return 0.0, False
        coin = int(self.rng.random() < 0.5)
        self.state = 2 + coin
        return float(action == coin), True

    def observation(self):
        return np.array([self.state])

    def state_key(self):
        return self.state


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_determinized_model_bets_on_the_future_it_drew_and_chance_nodes_do_not(algorithm):
    """Strategy fusion (Cowling, Powley, Whitehouse, Information Set Monte Carlo Tree Search, IEEE TCIAIG 2012).

    Exact values: SAFE is worth 0.65. GO is worth what the bet is worth before the coin is flipped: 1/2 for either bet,
    so ``V(GO) = 1/2`` (Bellman, and UCT's mean, which concentrates on a best action), ``1/2 + tau log 2 = 0.5693``
    (soft, tau = 0.1) - below 0.65: SAFE is right for all four searches.

    In one sampled future the coin is fixed, say to ``c``: bet ``c`` pays 1 and the other 0, so the determinized tree
    is deterministic with ``Q(GO) = max(1, 0) = 1`` (Bellman; UCB1's mean tends to it), ``tau log(e^(1/tau) + 1) > 1``
    (soft): above 0.65 whichever way the coin fell. Every determinized search therefore prefers GO, in every future it
    may draw: it fuses the strategies "bet heads if heads" and "bet tails if tails" into one plan, though the bet must
    be placed before the coin is seen. The chance-node search keys the coin's outcomes under each bet and averages
    them by arrival counts, so its ``Q(GO)`` tends to the exact value and it plays SAFE. 1000 simulations leave each
    bet's mean within a few hundredths of 1/2, far inside the margins (0.15 Bellman and mean, 0.08 soft).
    """
    knobs = _knobs(algorithm, **({"tau": 0.1} if "tau" in KNOBS[algorithm] else {}))
    for seed in range(3):
        determinized = make_search(algorithm, _BetAfterGo(seed, include_rng=True), **knobs, seed=seed)
        assert determinized.search(1000) == _BetAfterGo.GO, (algorithm, seed)
        sampled = make_search(algorithm, _BetAfterGo(seed, include_rng=False), **knobs, seed=seed)
        assert sampled.search(1000) == _BetAfterGo.SAFE, (algorithm, seed)
        for search, coins in ((sampled, 2), (determinized, 1)):  # the outcomes the bet node keeps: both sides, or one
            bet = search.tree.outcomes[(0, _BetAfterGo.GO)][1]
            assert len(search.tree.outcomes[(bet, 0)]) == coins


# -- the batched search's chance nodes ----------------------------------------------------------------------------


def _uniforms(seed: int):
    """The draws of ``random.Random(seed)`` as tensors: the stream a single-tree part reads."""
    rng = random.Random(seed)
    return lambda n: torch.tensor([rng.random() for _ in range(n)], dtype=torch.float64)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_chance_tree_is_searched_as_the_single_tree_search_does_draw_for_draw(algorithm):
    # the tree policy, the rollouts and the outcomes read three streams, the same in both loops
    tree = ChanceTree(2, 3, 3, seed=1)
    knobs = _knobs(algorithm, eps=0.5)
    old = make_search(algorithm, tree, **knobs, seed=5, evaluator=RandomRollout(max_steps=5, seed=7))
    tree.reseed(11)  # after the simulator check's test steps
    old_action = old.search(150)
    sim = TensorChanceTree(tree, uniform=_uniforms(11))
    new = make_search(algorithm, sim, **knobs, batched=True, evaluator=RandomRollout(max_steps=5, uniform=_uniforms(7)))
    new.uniform = _uniforms(5)
    assert int(new.search(sim.root(1), 150)[0]) == old_action
    mine, theirs = new.tree.tree(0), old.tree
    n = theirs.size
    assert mine["visits"].shape[0] == n and max(len(c) for c in theirs.outcomes.values()) == 3
    for name in ("visits", "total", "arrivals"):
        np.testing.assert_array_equal(mine[name].numpy(), getattr(theirs, name)[:n], err_msg=name)
    for (node, action), children in theirs.outcomes.items():
        assert mine["outcomes"][node, action].tolist() == list(children.values()) + [-1] * (3 - len(children))
        assert [int(mine["key"][c, 0]) for c in children.values()] == list(children)  # the key: (node id, level)
    backup = new.backup  # the statistics the backup keeps: its search values, the node values, Bellman ones, DENTS's entropy
    names = (backup.values, "value") + (("bellman",) if backup.on_bellman else ()) + (("entropy", "entropy_q") if backup.entropy else ())
    for name in names:
        np.testing.assert_allclose(mine[name].numpy(), getattr(theirs, name)[:n], rtol=0, atol=1e-12, err_msg=name)


class _BatchedTreeView:
    """Tree ``b`` of a BatchedTreeSearch read as the checker reads a TreeSearch's tree (outcomes keyed by node id)."""

    def __init__(self, search, b: int):
        one = search.tree.tree(b)
        for name in ("visits", "q", "q_bellman", "arrivals", "total"):
            setattr(self, name, one[name].numpy())
        self.num_actions = self.visits.shape[1]
        self.outcomes = {}
        slots = one["outcomes"].numpy()
        keys = one["key"][:, 0].tolist()
        for node in range(slots.shape[0]):
            for action in range(self.num_actions):
                children = [c for c in slots[node, action] if c >= 0]
                if children:
                    self.outcomes[(node, action)] = {keys[c]: int(c) for c in children}


@pytest.mark.slow  # 15-25 s each on one core
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_batched_tree_converges_to_the_exact_values_of_a_chance_tree(algorithm):
    # fewer simulations than the single-tree check (a batched step costs some hundred tensor operations): looser intervals
    tree = ChanceTree(2, 3, 2, seed=0)
    n = 2000
    sim = TensorChanceTree(tree, seed=4)
    search = make_search(algorithm, sim, **_knobs(algorithm), seed=1, batched=True,
                         evaluator=lambda _, state, gamma: (torch.zeros(state.shape[0], dtype=torch.float64), None))
    search.search(sim.root(4), n)
    backup = _backup(algorithm)
    for b in range(4):
        view = _BatchedTreeView(search, b)
        checked = type("Search", (), {"tree": view})()
        policy = _visit_shares(checked, tree) if backup.exact_reads_policy else None
        problem = _chance_tree_problem(tree, backup, policy)
        _, intervals = _check_search(checked, problem, backup, n)
        best = int(np.argmax(view.visits[0]))
        assert intervals[best] < abs(problem.exact_q(0, 0) - problem.exact_q(0, 1)), (b, intervals)


def test_a_full_outcome_slot_row_stops_the_search_and_names_the_edge():
    sim = TensorChanceTree(ChanceTree(2, 3, 2, seed=0))
    assert sim.max_outcomes == 3
    search = make_search("uct", sim, batched=True)
    search.search(sim.root(2), 200)
    assert int((search.tree.outcomes >= 0).sum(-1).max()) == 3  # the simulator's bound: never full
    small = BatchedTreeSearch(sim, tree_policy=search.tree_policy, backup=search.backup, max_outcomes=2)
    with pytest.raises(RuntimeError, match=r"tree \d: the chance edge \(node \d+, action \d\) drew a new outcome but its 2 outcome slots "
                                           r"are full \(max_outcomes=2\); the search stops rather than merge two outcomes"):
        small.search(sim.root(2), 200)
    with pytest.raises(ValueError, match="max_outcomes"):
        BatchedTreeSearch(sim, tree_policy=search.tree_policy, backup=search.backup, max_outcomes=0)


class _TensorBetAfterGo:
    """:class:`_BetAfterGo` for the batched search: a state ``[B, 2]`` is (position, coin). Positions: 0 the root, 1 the
    bet, 2 + coin after it, 4 after SAFE (2-4 end). Sampled: the coin is drawn when the bet is placed (-1 before);
    determinized: it is drawn with the root (one future per move) and carried in the state, so the model is deterministic."""

    num_actions = 2

    def __init__(self, sampled: bool, seed: int):
        self.deterministic = not sampled
        self.generator = torch.Generator().manual_seed(seed)

    def root(self, batch_size: int) -> torch.Tensor:
        coin = torch.full((batch_size,), -1) if not self.deterministic else (torch.rand(batch_size, generator=self.generator) < 0.5).long()
        return torch.stack((torch.zeros(batch_size, dtype=torch.long), coin), -1)

    def step(self, state, action):
        position, coin = state.unbind(-1)
        if not self.deterministic:
            coin = torch.where(position == 1, (torch.rand(coin.shape, generator=self.generator) < 0.5).long(), coin)
        safe, bet = (position == 0) & (action == _BetAfterGo.SAFE), position == 1
        after = torch.where(position == 0, torch.where(safe, 4, 1), torch.where(bet, 2 + coin, position))
        reward = torch.where(safe, _BetAfterGo.SAFE_REWARD, torch.where(bet & (action == coin), 1.0, 0.0)).double()
        return torch.stack((after, coin), -1), reward, after >= 2


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_batched_search_with_chance_nodes_is_not_misled_by_strategy_fusion(algorithm):
    # the argument of test_a_determinized_model_bets_on_the_future_it_drew_and_chance_nodes_do_not, in 8 batched trees
    knobs = _knobs(algorithm, **({"tau": 0.1} if "tau" in KNOBS[algorithm] else {}))
    determinized = _TensorBetAfterGo(sampled=False, seed=0)
    roots = determinized.root(8)
    assert 0 < int(roots[:, 1].sum()) < 8  # futures of both coins
    assert make_search(algorithm, determinized, **knobs, batched=True, seed=0).search(roots, 300).tolist() == [_BetAfterGo.GO] * 8
    sampled = _TensorBetAfterGo(sampled=True, seed=0)
    search = make_search(algorithm, sampled, **knobs, batched=True, seed=0)
    assert search.search(sampled.root(8), 300).tolist() == [_BetAfterGo.SAFE] * 8
    assert int((search.tree.outcomes[:, :-1] >= 0).sum(-1).max()) == 2  # both sides of the coin under a bet


class _TensorHorizon:
    """:class:`_Horizon` for the batched search over a TensorFrozenLake: a state ``[B, 2]`` is (cell, steps left)."""

    def __init__(self, lake, steps: int):
        self.lake, self.steps = lake, steps
        self.num_actions, self.deterministic, self.max_outcomes = lake.num_actions, lake.deterministic, lake.max_outcomes

    def root(self, batch_size: int) -> torch.Tensor:
        return torch.cat((self.lake.root(batch_size), torch.full((batch_size, 1), self.steps)), -1)

    def step(self, state, action):
        cell, reward, done = self.lake.step(state[:, :1], action)
        left = state[:, 1] - 1
        return torch.cat((cell, left.unsqueeze(-1)), -1), reward, done | (left <= 0)


class _LakeTreeView(_BatchedTreeView):
    """A batched tree over (cell, steps left) states, its outcomes keyed as the checker's FrozenLake problem keys them."""

    def __init__(self, search, b: int):
        super().__init__(search, b)
        keys = search.tree.tree(b)["key"].tolist()
        self.outcomes = {edge: {tuple(keys[c]): c for c in children.values()} for edge, children in self.outcomes.items()}


@pytest.mark.slow  # ~20 s each on one core
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_batched_tree_converges_to_slippery_frozenlakes_dynamic_programming(algorithm):
    from torchrl_reg.planning import TensorFrozenLake

    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    sim = _TensorHorizon(TensorFrozenLake(env, seed=3), 2)
    n = 1500
    search = make_search(algorithm, sim, **_knobs(algorithm), seed=2, batched=True,
                         evaluator=lambda _, state, gamma: (torch.zeros(state.shape[0], dtype=torch.float64), None))
    search.search(torch.tensor([[14, 2]] * 3), n)
    for b in range(3):
        view = _LakeTreeView(search, b)
        _, intervals = _check_search(type("Search", (), {"tree": view})(), _frozenlake_problem(env, _backup(algorithm), 2), _backup(algorithm), n)
        informative = intervals[[int(np.argmax(view.visits[0]))]] if _ucb1(algorithm) else intervals
        assert informative.max() < 0.5, intervals
