"""The power-mean backup of Power-UCT (Dam et al., IJCAI 2020), a part of both engines: its exact value, the same
numbers in the single-tree and the batched search draw for draw, and its refusals."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from torchrl_reg.planning import (
    BatchedTreeSearch,
    RandomRollout,
    SyntheticTree,
    TensorSyntheticTree,
    UCB1Score,
)
from torchrl_reg.planning.backups import MeanBackup, PowerMeanBackup
from torchrl_reg.planning.search import TreeSearch


def _uniforms(seed: int):
    rng = random.Random(seed)
    return lambda n: torch.tensor([rng.random() for _ in range(n)], dtype=torch.float64)


def test_the_exact_value_is_the_power_mean_under_the_policy():
    q, policy = np.array([1.0, 4.0]), np.array([0.5, 0.5])
    assert PowerMeanBackup(p=2.0).exact_values(q, policy) == pytest.approx(math.sqrt(0.5 * 1 + 0.5 * 16), abs=1e-15)
    assert PowerMeanBackup(p=1.0).exact_values(q, policy) == MeanBackup().exact_values(q, policy) == 2.5
    assert PowerMeanBackup(p=200.0).exact_values(q, policy) == pytest.approx(4.0, rel=1e-2)  # p -> inf: the max
    rows = PowerMeanBackup(p=3.0).exact_values(torch.tensor([[1.0, 4.0], [-1.0, 2.0]]), torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    assert rows.tolist() == pytest.approx([(0.5 + 32.0) ** (1 / 3), 4.0 ** (1 / 3)])  # a negative value counts as 0


def test_one_tree_of_both_engines_backs_up_the_same_power_means_draw_for_draw():
    tree = SyntheticTree(3, 3, seed=1, noise_std=0.0)
    old = TreeSearch(tree, tree_policy=UCB1Score(c=math.sqrt(2.0)), backup=PowerMeanBackup(p=2.0), recommend="most_visited",
                     seed=5, evaluator=RandomRollout(max_steps=5, seed=7))
    old_action = old.search(60)
    sim = TensorSyntheticTree([tree])
    new = BatchedTreeSearch(sim, tree_policy=UCB1Score(c=math.sqrt(2.0)), backup=PowerMeanBackup(p=2.0), recommend="most_visited",
                            uniform=_uniforms(5), evaluator=RandomRollout(max_steps=5, uniform=_uniforms(7)))
    assert int(new.search(sim.root(1), 60)[0]) == old_action
    mine, theirs = new.tree.tree(0), old.tree
    n = theirs.size
    np.testing.assert_array_equal(mine["visits"].numpy(), theirs.visits[:n])
    for name in ("q", "value"):
        np.testing.assert_allclose(mine[name].numpy(), getattr(theirs, name)[:n], rtol=0, atol=1e-12, err_msg=name)
    # the root's value is the power mean of its action values under its visit shares
    visits = theirs.visits[0]
    assert theirs.value[0] == pytest.approx(float(((visits / visits.sum()) @ theirs.q[0] ** 2) ** 0.5), abs=1e-12)


def test_a_power_below_one_and_a_policy_other_than_ucb1_are_refused():
    from torchrl_reg.planning import E2WScore, TensorDChain

    for p in (0.5, float("inf"), True):
        with pytest.raises(ValueError, match=r"p must be a finite number"):
            PowerMeanBackup(p=p)
    with pytest.raises(ValueError, match=r"E2WScore with PowerMeanBackup\(p=2.0\) is no row of the algorithm table .*power_uct: UCB1Score with PowerMeanBackup"):
        BatchedTreeSearch(TensorDChain(3), tree_policy=E2WScore(tau=1.0, eps=0.1), backup=PowerMeanBackup(p=2.0))


@pytest.mark.parametrize("batched", [False, True])
def test_power_uct_backs_up_the_power_mean_of_a_two_step_chain(batched):
    # DChain(2, final_reward=1): at the root down pays 1/2 and ends, right pays 0 into node 1, where down pays 0 and
    # right pays 1 (both end). Once every edge is tried, V(1) = (N(1, right) / N(1))^(1/p) (0^p = 0, 1^p = 1) and the
    # root's value is the power mean of (1/2, V(1)) under its visit shares
    from torchrl_reg.planning import DChain, TensorDChain, make_search

    p = 3.0
    chain = TensorDChain(2, final_reward=1.0) if batched else DChain(2, final_reward=1.0)
    search = make_search("power_uct", chain, p=p, seed=0, batched=batched)
    if batched:
        search.search(chain.root(1), 40)
        tree = search.tree.tree(0)
        visits, child = tree["visits"].numpy(), tree["child"].numpy()
    else:
        search.search(40)
        visits, child = search.tree.visits, search.tree.child
    root, node = visits[0], visits[child[0, 1]]
    assert (root > 0).all() and (node > 0).all()
    v1 = (node[1] / node.sum()) ** (1 / p)
    v0 = ((root[0] * 0.5**p + root[1] * v1**p) / root.sum()) ** (1 / p)
    assert float(search.root_value()[0] if batched else search.root_value()) == pytest.approx(v0, abs=1e-12)
    assert PowerMeanBackup(p=p).exact_values(np.array([0.5, v1]), root / root.sum()) == pytest.approx(v0, abs=1e-15)
