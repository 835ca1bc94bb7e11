"""Searches against exact values: synthetic trees, the E2W softmax bandit, the D-chain."""
from __future__ import annotations

import itertools
import random
import math

import numpy as np
import pytest
import torch

from torchrl_reg.planning.scores import mixed_boltzmann_probs
from torchrl_reg.planning import (
    ALGORITHMS,
    KNOBS,
    DChain,
    RandomRollout,
    SyntheticTree,
    dchain_flip_temperature,
    dchain_soft_q,
    make_search,
    parts,
    synthetic_tree_q,
)


def _brute_force_root_q(tree: SyntheticTree, tau: float | None) -> np.ndarray:
    """Root action values by enumerating every path (independent of the level recursion)."""
    k, d = tree.num_actions, tree.depth
    q = np.zeros(k)
    for first in range(k):
        returns = []
        for rest in itertools.product(range(k), repeat=d - 1):
            node, total = 0, 0.0
            for a in (first, *rest):
                node = node * k + a + 1
                total += tree.edge_reward[node]
            returns.append(total + tree.leaf_value[node - tree.first_leaf])
        returns = np.array(returns)
        if tau is None:
            q[first] = returns.max()
        else:
            top = returns.max()
            q[first] = top + tau * math.log(np.exp((returns - top) / tau).sum())
    return q


@pytest.mark.parametrize("tau", [None, 0.2, 1.0])
def test_synthetic_tree_recursion_matches_path_enumeration(tau):
    tree = SyntheticTree(3, 4, seed=3)
    np.testing.assert_allclose(synthetic_tree_q(tree, tau).ravel(), _brute_force_root_q(tree, tau), rtol=0, atol=1e-12)


#: the rows whose node value is a function of the node's values alone (not of a policy, as UCT's mean): every row of
#: the table that backs up so is checked here, with its knobs at 0.3 (temperatures) and uniform exploration
NODE_RULE_ALGORITHMS = [a for a in ALGORITHMS if not parts(a)[1].exact_reads_policy]


@pytest.mark.parametrize("algorithm", NODE_RULE_ALGORITHMS)
def test_noiseless_backups_are_exact_once_every_edge_is_tried(algorithm):
    # 3-ary, depth 3: 39 nodes; with no noise every backed-up value is exact once all edges are tried
    tree = SyntheticTree(3, 3, seed=1, noise_std=0.0)
    knobs = {k: v for k, v in dict(tau=0.3, alpha=0.3, eps=1.0).items() if k in KNOBS[algorithm]}
    search = make_search(algorithm, tree, **knobs, seed=0, evaluator=RandomRollout(max_steps=5))
    search.search(2000)
    assert (search.tree.visits[: search.tree.size][~search.tree.terminal[: search.tree.size]] > 0).all()
    backup = search.backup  # its node rule: exact_values, checked against independent numbers in each part's tests
    expected = synthetic_tree_q(tree, backup=backup).ravel()
    np.testing.assert_allclose(getattr(search.tree, backup.values)[0], expected, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_ments_root_soft_value_converges_with_noise():
    tree = SyntheticTree(3, 3, seed=2, noise_std=0.5)
    tau = 0.3
    q = synthetic_tree_q(tree, tau).ravel()
    exact = tau * math.log(np.exp(q / tau).sum())
    errors = {}
    for n in (100, 10000):
        runs = []
        for seed in range(5):
            tree.reseed_noise(seed)
            search = make_search("ments", tree, tau=tau, eps=0.5, seed=seed, evaluator=RandomRollout(max_steps=5, seed=seed))
            search.search(n)
            runs.append(search.root_value() - exact)
        errors[n] = float(np.sqrt(np.mean(np.square(runs))))
    assert errors[10000] < 0.05
    assert errors[10000] < errors[100] / 3


@pytest.mark.slow
def test_e2w_softmax_bandit_error_falls_as_one_over_t():
    """E2W on a Gaussian softmax bandit: t * MSE tends to the constants of the MENTS analysis.

    Delta method with N_a ~ t pi*(a): the soft value V = F_tau(q) has t * MSE -> sigma^2, and the
    exponentiated value U = sum_a exp(q_a / tau) has t * MSE -> sigma^2 / tau^2 U^2, the constant of
    Xiao et al. (NeurIPS 2019), Theorem on E2W. 2000 seeded independent bandits; deterministic.
    """
    runs, r, tau, sigma, eps = 2000, torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64), 0.5, 0.5, 0.1
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(runs, 3, dtype=torch.float64)
    sums = torch.zeros(runs, 3, dtype=torch.float64)
    u_star = float(torch.exp(r / tau).sum())
    v_star = tau * math.log(u_star)
    rows = torch.arange(runs)
    mse = {}
    for t in range(1, 2001):
        q = torch.where(counts > 0, sums / counts.clamp_min(1.0), torch.zeros_like(sums))
        probs = mixed_boltzmann_probs(q, counts.sum(-1), tau, eps)
        a = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
        counts[rows, a] += 1
        sums[rows, a] += r[a] + sigma * torch.randn(runs, generator=gen, dtype=torch.float64)
        if t in (200, 2000):
            q = sums / counts.clamp_min(1.0)
            u_hat = torch.exp(q / tau).sum(-1)
            mse[t] = (float(((tau * torch.log(u_hat) - v_star) ** 2).mean()), float(((u_hat - u_star) ** 2).mean()))
    for t, (mse_v, mse_u) in mse.items():
        assert 0.85 < t * mse_v / sigma**2 < 1.2, (t, t * mse_v)
        assert 0.85 < t * mse_u / (sigma**2 / tau**2 * u_star**2) < 1.2, (t, t * mse_u)
    assert 8.0 < mse[200][0] / mse[2000][0] < 12.5


def test_dchain_flip_temperature_is_the_root_of_the_closed_form():
    # D = 10, R_f = 0.5, x = exp(1 / (D tau)): MENTS flips where (x^9 - 1)/(x - 1) + x^5 = x^9, i.e.
    # x^10 - 2 x^9 - x^6 + x^5 + 1 = 0 (multiplied by x - 1); its root above 1 gives tau = 1 / (10 log x)
    roots = np.roots([1, -2, 0, 0, -1, 1, 0, 0, 0, 0, 1])
    real = sorted(z.real for z in roots if abs(z.imag) < 1e-9 and z.real > 1 + 1e-9)
    tau_flip = 1.0 / (10.0 * math.log(real[0]))
    assert dchain_flip_temperature(DChain(10, 0.5)) == pytest.approx(tau_flip, rel=1e-9)
    assert tau_flip == pytest.approx(0.1386, abs=1e-4)
    with pytest.raises(ValueError, match="never flips"):
        dchain_flip_temperature(DChain(10, 1.0))


def test_dchain_closed_form_soft_values():
    down, right = dchain_soft_q(DChain(4, 0.5), tau=1.0)
    # returns after 'right' from state 0: down at 1 (2/4), at 2 (1/4), at 3 (0), right at the end (0.5)
    assert down == 0.75
    assert right == pytest.approx(math.log(math.exp(0.5) + math.exp(0.25) + 1.0 + math.exp(0.5)))


@pytest.mark.parametrize("scale, expected", [(0.9, DChain.DOWN), (1.1, DChain.RIGHT)])
def test_ments_flips_at_the_exact_temperature(scale, expected):
    chain = DChain(10, 0.5)
    tau = scale * dchain_flip_temperature(chain)
    search = make_search("ments", chain, tau=tau, eps=1.0, seed=0, evaluator=RandomRollout(max_steps=20))
    assert search.search(3000) == expected
    np.testing.assert_allclose(search.tree.q[0], dchain_soft_q(chain, tau), rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("final_reward, best", [(0.5, DChain.DOWN), (1.0, DChain.RIGHT)])
def test_dchain_ments_misleads_where_dents_and_bts_do_not(final_reward, best):
    for seed in range(3):
        chain = DChain(10, final_reward)
        common = dict(eps=1.0, seed=seed, evaluator=RandomRollout(max_steps=20, seed=seed))
        ments = make_search("ments", chain, tau=1.0, **common).search(5000)
        assert ments == DChain.RIGHT  # wrong for R_f = 0.5: the entropy of the long chain outweighs 0.9 - 0.8
        assert make_search("dents", chain, alpha=1.0, beta_0=1.0, **common).search(5000) == best, ("dents", seed)
        assert make_search("bts", chain, alpha=1.0, **common).search(5000) == best, ("bts", seed)


class _CoinFlip:
    """Root: action 0 flips a fair coin to state 1 or 2, action 1 ends with reward 0.3; states 1, 2 have
    two actions ending with rewards (1, 0) and (0.2, 0.4). Exact soft value of (root, 0) at tau:
    0.5 tau log(e^(1/tau) + 1) + 0.5 tau log(e^(0.2/tau) + e^(0.4/tau))."""

    num_actions = 2
    deterministic = False
    REWARDS = {1: (1.0, 0.0), 2: (0.2, 0.4)}

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.state = 0

    def save(self):
        return self.state

    def restore(self, state):
        self.state = state

    def step(self, action):
        if self.state == 0:
            if action == 1:
                self.state = -1
                return 0.3, True
            self.state = 1 + (self.rng.random() < 0.5)
            return 0.0, False
        reward, self.state = self.REWARDS[self.state][action], -1
        return reward, True

    def observation(self):
        return np.array([self.state])

    def state_key(self):
        return self.state


def test_stochastic_transitions_average_children_by_visit_counts():
    tau = 0.5
    search = make_search("ments", _CoinFlip(0), tau=tau, eps=1.0, seed=0, evaluator=RandomRollout(max_steps=3))
    search.search(4000)
    tree = search.tree
    children = tree.outcomes[(0, 0)]
    n1, n2 = (int(tree.arrivals[children[s]]) for s in (1, 2))
    v1 = tau * math.log(math.exp(1.0 / tau) + 1.0)
    v2 = tau * math.log(math.exp(0.2 / tau) + math.exp(0.4 / tau))
    assert n1 + n2 == tree.visits[0, 0]
    assert tree.q[0, 0] == pytest.approx((n1 * v1 + n2 * v2) / (n1 + n2), abs=1e-12)
    assert tree.q[0, 0] == pytest.approx(0.5 * v1 + 0.5 * v2, abs=0.03)
    assert tree.q[0, 1] == pytest.approx(0.3, abs=1e-12)


def test_ments_search_with_a_bellman_recommendation_is_right_on_the_dchain():
    # E2W exploration with soft backups, but the recommendation read from Bellman values ([DENTS] Sec. 4)
    chain = DChain(10, 0.5)
    search = make_search("ments", chain, tau=1.0, eps=1.0, recommend="bellman_value", seed=0, evaluator=RandomRollout(max_steps=20))
    assert search.search(3000) == DChain.DOWN
    np.testing.assert_allclose(search.tree.q_bellman[0], [0.9, 0.8], rtol=0, atol=1e-12)
    plain = make_search("ments", chain, tau=1.0, seed=0)
    plain.search(10)
    with pytest.raises(ValueError, match="kept no Bellman values"):
        plain.recommended_action("bellman_value")


def test_uct_root_value_follows_the_mean_backup_to_the_optimal_value():
    # UCT's node value is the mean of the returns through it; as UCB1 concentrates on the best path it tends
    # to the Bellman value (it used to stay at the root's first evaluation, a random rollout's return)
    tree = SyntheticTree(2, 2, seed=0, noise_std=0.0)
    exact = float(synthetic_tree_q(tree, None).max())
    search = make_search("uct", tree, c=0.3, seed=0, evaluator=RandomRollout(max_steps=3))
    errors = []
    for n in (100, 4000):
        search.search(n)
        t = search.tree
        assert search.root_value() == pytest.approx(float(t.visits[0] @ t.q[0]) / n, abs=1e-12)
        errors.append(exact - search.root_value())
    assert 0 < errors[1] < errors[0] / 5
    assert errors[1] < 0.01
