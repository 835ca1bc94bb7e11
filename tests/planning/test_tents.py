"""TENTS (Dam, D'Eramo, Peters, Pajarinen, "Convex Regularization in Monte-Carlo Tree Search", ICML 2021,
arXiv:2007.00391): its Tsallis-entropy backup and E3W-over-sparsemax tree policy, checked against values computed
independently here (the regularized value as the maximum over the simplex, found by the KKT conditions on every
support, never by the library's sort rule) on hand-worked rows, the D-chain, a synthetic tree and a chance tree, and
the batched search against the single-tree one draw for draw with chance nodes."""
from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch

from torchrl_reg.planning import (
    ChanceTree,
    DChain,
    NodeStats,
    RandomRollout,
    SyntheticTree,
    TsallisBackup,
    TsallisScore,
    make_search,
)
from torchrl_reg.planning.backups import tsallis_value
from torchrl_reg.planning.tensor_simulators import TensorChanceTree


def _simplex_max(q, tau: float) -> tuple[float, np.ndarray]:
    """``max_{pi in simplex} <pi, q> + tau / 2 (1 - ||pi||^2)`` and its maximizer: the objective is strictly concave, so
    its maximizer is the one point where the KKT conditions hold, on some support S: ``pi_a = q_a / tau - theta`` on S
    with ``theta = (sum_S q / tau - 1) / |S|``, every ``pi_a > 0`` on S and ``q_b / tau <= theta`` off S."""
    z = np.asarray(q, dtype=np.float64) / tau
    k = len(z)
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            s = list(support)
            theta = (z[s].sum() - 1.0) / size
            pi = np.zeros(k)
            pi[s] = z[s] - theta
            off = [b for b in range(k) if b not in support]
            if (pi[s] > 0).all() and (z[off] <= theta + 1e-15).all():
                return float(pi @ (z * tau) + tau / 2 * (1.0 - pi @ pi)), pi
    raise AssertionError(f"no KKT point for {q}")


def test_the_backup_and_the_policy_by_hand():
    # q = [1, 0.5, -1] at tau = 1: the support is the first two (theta = (1 + 0.5 - 1) / 2 = 0.25 and -1 < 0.25),
    # sparsemax = [0.75, 0.25, 0] and V = <pi, q> + (1 - ||pi||^2) / 2 = 0.875 + (1 - 0.625) / 2 = 1.0625
    q = [1.0, 0.5, -1.0]
    assert tsallis_value(q, 1.0) == 1.0625 and float(TsallisBackup(tau=1.0).exact_values(np.array(q))) == 1.0625
    assert _simplex_max(q, 1.0)[0] == pytest.approx(1.0625, abs=1e-15)
    # E3W: with N(s) = 1 and eps = 0.1, lambda = 0.1 * 3 / log 2 and the rest goes to sparsemax
    lam = 0.3 / math.log(2.0)
    expected = [(1 - lam) * 0.75 + lam / 3, (1 - lam) * 0.25 + lam / 3, lam / 3]
    score = TsallisScore(tau=1.0, eps=0.1)
    assert score.probs(NodeStats(q=q, total=1.0)) == pytest.approx(expected, abs=1e-15)
    rows = score.probs_rows(NodeStats(q=torch.tensor([q], dtype=torch.float64), total=torch.tensor([1])))
    assert rows[0].tolist() == pytest.approx(expected, abs=1e-15)
    # an edge update: the node's row with the edge's new value, as the softmax backup reads it
    from torchrl_reg.planning import EdgeStats

    edge = EdgeStats(action=2, n=1, reward=0.0, mean_reward=0.0, gamma=1.0, v_next=0.9, q=np.array(q))
    result = TsallisBackup(tau=1.0).update(edge)
    assert result.q == 0.9 and result.value == pytest.approx(_simplex_max([1.0, 0.5, 0.9], 1.0)[0], abs=1e-15)


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0, 4.0])
def test_the_value_and_the_policy_are_the_simplex_maximum_and_its_maximizer(tau):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(50, 4))
    values = TsallisBackup(tau=tau).exact_values(rows)
    batched = TsallisBackup(tau=tau).exact_values(torch.as_tensor(rows))
    score = TsallisScore(tau=tau, eps=0.0)  # no exploration: the policy is sparsemax itself
    for row, value, row_value in zip(rows, values, batched.tolist()):
        expected, maximizer = _simplex_max(row, tau)
        assert value == pytest.approx(expected, abs=1e-12) and row_value == pytest.approx(expected, abs=1e-12)
        assert tsallis_value(row.tolist(), tau) == pytest.approx(expected, abs=1e-12)
        assert score.probs(NodeStats(q=row.tolist(), total=5.0)) == pytest.approx(maximizer.tolist(), abs=1e-12)
        # between the max and the max plus tau / 2 (the Tsallis entropy's range)
        assert row.max() - 1e-12 <= value <= row.max() + tau / 2 + 1e-12


def _exact_q(sim, state, tau: float) -> list[float]:
    """The Tsallis-regularized action values of a deterministic simulator at ``state``, by recursion over its steps."""
    q = []
    for action in range(sim.num_actions):
        sim.restore(state)
        reward, done = sim.step(action)
        if done:
            q.append(reward)
        else:
            below = sim.save()
            q.append(reward + _simplex_max(_exact_q(sim, below, tau), tau)[0])
    return q


@pytest.mark.parametrize("final_reward", [0.5, 1.0])
def test_the_root_values_on_the_dchain_are_exact_once_every_edge_is_tried(final_reward):
    chain, tau = DChain(5, final_reward), 0.2
    root = chain.save()
    exact = _exact_q(chain, root, tau)
    chain.restore(root)
    search = make_search("tents", chain, tau=tau, eps=1.0, seed=0, evaluator=RandomRollout(max_steps=10))
    action = search.search(3000)
    np.testing.assert_allclose(search.tree.q[0], exact, rtol=0, atol=1e-12)
    assert action == int(np.argmax(exact))


def test_the_root_values_of_a_noiseless_synthetic_tree_are_exact():
    # 3-ary, depth 3: the exact values by level recursion over the tree's arrays, with the simplex maximum at each node
    tree, tau = SyntheticTree(3, 3, seed=1, noise_std=0.0), 0.3
    k, values = tree.num_actions, tree.leaf_value.copy()
    for level in range(tree.depth, 0, -1):
        start = (k**level - 1) // (k - 1)
        q = (tree.edge_reward[start : start + k**level] + values).reshape(-1, k)
        values = np.array([_simplex_max(row, tau)[0] for row in q])
    search = make_search("tents", tree, tau=tau, eps=1.0, seed=0, evaluator=RandomRollout(max_steps=5))
    search.search(2000)
    np.testing.assert_allclose(search.tree.q[0], q[0], rtol=0, atol=1e-12)


def _chance_exact(tree: ChanceTree, node: int, tau: float) -> np.ndarray:
    """Q of a decision node of a chance tree: the probability-weighted outcomes, the simplex maximum below."""
    q = np.zeros(tree.num_actions)
    for a in range(tree.num_actions):
        for o in range(tree.outcomes):
            child = node * tree.fan + a * tree.outcomes + 1 + o
            below = 0.0 if child >= tree.first_leaf else _simplex_max(_chance_exact(tree, child, tau), tau)[0]
            q[a] += tree.probs[node, a, o] * (tree.step_reward[child] + below)
    return q


def _empirical(search, node: int, tau: float) -> np.ndarray:
    """Q of a node of the search's tree from the outcome counts drawn: mean reward plus the arrival-weighted values
    of its children, the simplex maximum of their rows (every action tried: no initial value enters)."""
    tree = search.tree
    q = np.zeros(tree.num_actions)
    for a in range(tree.num_actions):
        children = list(tree.outcomes[(node, a)].values())
        arrivals = np.array([tree.arrivals[c] for c in children], dtype=np.float64)
        below = [0.0 if tree.terminal[c] else _simplex_max(_empirical(search, c, tau), tau)[0] for c in children]
        q[a] = tree.reward_sum[node, a] / tree.visits[node, a] + arrivals @ below / arrivals.sum()
    return q


def test_a_chance_tree_is_the_recursion_of_the_outcomes_drawn_and_near_the_exact_values():
    tree, tau = ChanceTree(2, 2, 2, seed=0), 0.3
    exact = _chance_exact(tree, 0, tau)
    search = make_search("tents", tree, tau=tau, eps=1.0, seed=1, evaluator=lambda sim: (0.0, None))
    search.search(4000)
    np.testing.assert_allclose(search.tree.q[0], _empirical(search, 0, tau), rtol=0, atol=1e-10)
    # the sampled part: ~2000 visits per root action, outcome shares within a few 0.01 of their probabilities
    np.testing.assert_allclose(search.tree.q[0], exact, rtol=0, atol=0.1)


def _uniforms(seed: int):
    rng = random.Random(seed)
    return lambda n: torch.tensor([rng.random() for _ in range(n)], dtype=torch.float64)


def test_one_chance_tree_is_searched_as_the_single_tree_search_does_draw_for_draw():
    # the tree policy, the rollouts and the outcomes read three streams, the same in both loops (B = 1)
    tree = ChanceTree(2, 3, 3, seed=1)
    old = make_search("tents", tree, tau=0.3, eps=0.5, seed=5, evaluator=RandomRollout(max_steps=5, seed=7))
    tree.reseed(11)  # after the simulator check's test steps
    old_action = old.search(150)
    sim = TensorChanceTree(tree, uniform=_uniforms(11))
    new = make_search("tents", sim, tau=0.3, eps=0.5, batched=True, evaluator=RandomRollout(max_steps=5, uniform=_uniforms(7)))
    new.uniform = _uniforms(5)
    assert int(new.search(sim.root(1), 150)[0]) == old_action
    mine, theirs = new.tree.tree(0), old.tree
    n = theirs.size
    for name in ("visits", "total", "arrivals"):
        np.testing.assert_array_equal(mine[name].numpy(), getattr(theirs, name)[:n], err_msg=name)
    for name in ("q", "value"):
        np.testing.assert_allclose(mine[name].numpy(), getattr(theirs, name)[:n], rtol=0, atol=1e-12, err_msg=name)


def test_the_parts_go_together_at_one_temperature():
    from torchrl_reg.planning import E2WScore, SoftmaxBackup, TreeSearch

    with pytest.raises(ValueError, match=r"TsallisScore with TsallisBackup\(tau=1.0\) is no row"):
        TreeSearch(DChain(3), tree_policy=TsallisScore(tau=0.5, eps=0.1), backup=TsallisBackup(tau=1.0))
    with pytest.raises(ValueError, match=r"E2WScore with TsallisBackup\(tau=1.0\) is no row"):
        TreeSearch(DChain(3), tree_policy=E2WScore(tau=1.0, eps=0.1), backup=TsallisBackup(tau=1.0))
    with pytest.raises(ValueError, match=r"tau must be a finite number in \(0.0, inf\]"):
        TsallisBackup(tau=0.0)
    assert repr(make_search("tents", DChain(3), tau=0.5).backup) == "TsallisBackup(tau=0.5)"
    assert SoftmaxBackup(tau=0.5).exact_values(np.array([0.0, 0.0])) > TsallisBackup(tau=0.5).exact_values(np.array([0.0, 0.0]))


def test_the_batched_search_runs_over_finished_paths_and_huge_values():
    # the scratch rows of paths that ended above hold whatever they hold: sparsemax keeps at least the top value
    from torchrl_reg.planning import TensorDChain

    chain = TensorDChain(10, final_reward=0.5)
    actions = make_search("tents", chain, batched=True, seed=0).search(chain.root(8), 300)
    assert set(actions.tolist()) <= {DChain.DOWN, DChain.RIGHT}
    from torchrl_reg.planning.scores import sparsemax, sparsemax_rows

    assert sparsemax([1e20, 0.0]) == sparsemax_rows(torch.tensor([[1e20, 0.0]], dtype=torch.float64))[0][0].tolist()
