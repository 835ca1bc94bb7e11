"""Tree policies and backups against values worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from torchrl_reg.planning import BoltzmannScore, DENTSScore, E2WScore, UCB1Score
from torchrl_reg.planning.backups import bellman_value, policy_entropy, softmax_value
from torchrl_reg.planning.records import NodeStats
from torchrl_reg.planning.scores import exploration_weight


def _node(q, visits, total, **extra):
    data = {"q_value": torch.tensor(q, dtype=torch.float64), "visits": torch.tensor(visits), "total_visits": torch.tensor(float(total))}
    data.update({k: torch.tensor(v, dtype=torch.float64) for k, v in extra.items()})
    return TensorDict(data, batch_size=[])


def test_e2w_by_hand():
    # q = tau * [0, log 3]: softmax = [1/4, 3/4]; N(s) = e^4 - 1 so lambda = 0.2 * 2 / 4 = 0.1
    tau, total = 0.5, math.e**4 - 1
    score = E2WScore(tau=tau, eps=0.2)
    probs = score(_node([0.0, tau * math.log(3.0)], [3, 5], total))["score"]
    expected = [0.9 * 0.25 + 0.05, 0.9 * 0.75 + 0.05]
    torch.testing.assert_close(probs, torch.tensor(expected, dtype=torch.float64))
    assert score.probs(NodeStats(q=[0.0, tau * math.log(3.0)], total=total)) == pytest.approx(expected, abs=1e-12)


def test_e2w_weight_is_uniform_before_any_visit_and_clipped():
    assert exploration_weight(0.5, 4, 0.0) == 1.0
    assert exploration_weight(0.5, 4, 5.0) == 1.0  # 2 / log 6 > 1
    assert exploration_weight(0.5, 4, 1000.0) == pytest.approx(2.0 / math.log(1001.0))
    assert exploration_weight(0.0, 4, 0.0) == 0.0


def test_batched_forward_matches_the_hot_path():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    h = torch.rand(5, 4, generator=gen, dtype=torch.float64)
    visits = torch.randint(1, 20, (5, 4), generator=gen)
    total = visits.sum(-1).double()
    node = TensorDict({"q_value": q, "visits": visits, "total_visits": total, "entropy": h}, batch_size=[5])
    for score in (E2WScore(tau=0.3, eps=0.1), BoltzmannScore(alpha=2.0, eps=0.05), DENTSScore(alpha=0.5, beta_0=2.0, eps=0.1)):
        batched = score(node.clone())["score"]
        for i in range(5):
            row = score.probs(NodeStats(q[i].tolist(), float(total[i]), visits[i].tolist(), h[i].tolist()))
            assert row == pytest.approx(batched[i].tolist(), abs=1e-12)


def test_dents_adds_the_decayed_entropy_bonus():
    # beta(3) = 2 / sqrt(4) = 1; values = q + h = [1, 1 + log 2]: softmax at alpha = 1 is [1/3, 2/3]; eps = 0
    score = DENTSScore(alpha=1.0, beta_0=2.0, eps=0.0)
    probs = score(_node([0.5, 1.0], [1, 2], 3, entropy=[0.5, math.log(2.0)]))["score"]
    torch.testing.assert_close(probs, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))


def test_ucb1_by_hand():
    score = UCB1Score(c=2.0)
    out = score(_node([0.5, 0.2, 0.0], [4, 1, 0], 5))["score"]
    expected = [0.5 + 2.0 * math.sqrt(math.log(5) / 4), 0.2 + 2.0 * math.sqrt(math.log(5) / 1), math.inf]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64))
    assert score.select(NodeStats(q=[0.5, 0.2, 0.0], total=5, visits=[4, 1, 0]), 0.99) == 2  # the only unvisited action
    # 0.2 + 2 sqrt(log 8) beats 0.5 + sqrt(log 8)
    assert score.select(NodeStats(q=[0.5, 0.2, 0.0], total=8, visits=[4, 1, 3]), 0.0) == 1


def test_backups_by_hand():
    assert softmax_value([0.0, math.log(3.0)], 1.0) == pytest.approx(math.log(4.0))
    assert softmax_value([1000.0, 1000.0], 0.01) == pytest.approx(1000.0 + 0.01 * math.log(2.0))
    assert bellman_value([5.0, 1.0, 2.0], [0, 1, 3]) == 2.0  # the untried action's 5 does not count
    assert bellman_value([5.0], [0]) is None
    assert policy_entropy([0.5, 0.5, 0.0]) == pytest.approx(math.log(2.0))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: E2WScore(tau=0.0, eps=0.1), r"tau must be a finite number in \(0.0, inf\], got tau=0.0"),
        (lambda: E2WScore(tau=-1.0, eps=0.1), "tau must be"),
        (lambda: E2WScore(tau=1.0, eps=-0.1), r"eps must be a finite number in \[0.0, inf\], got eps=-0.1"),
        (lambda: BoltzmannScore(alpha=0.0, eps=0.1), "alpha must be"),
        (lambda: DENTSScore(alpha=1.0, beta_0=-1.0, eps=0.1), "beta_0 must be"),
        (lambda: UCB1Score(c=float("nan")), "c must be"),
    ],
)
def test_bad_parameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_row_selection_matches_the_single_node_draws():
    # the batched search's select_rows draws, row by row, what select draws for the same uniform
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(200, 4, generator=gen, dtype=torch.float64)
    h = torch.rand(200, 4, generator=gen, dtype=torch.float64)
    visits = torch.randint(0, 4, (200, 4), generator=gen)
    total = visits.sum(-1)
    u = torch.rand(200, generator=gen, dtype=torch.float64)
    policies = (E2WScore(tau=0.3, eps=0.1), BoltzmannScore(alpha=2.0, eps=0.05), DENTSScore(alpha=0.5, beta_0=2.0, eps=0.1), UCB1Score(c=1.5))
    for score in policies:
        # each policy is given only the statistics it reads (the engines' rule): the others are None
        given = {name: stat for name, stat in (("visits", visits), ("entropy_q", h)) if name in score.reads}
        rows = score.select_rows(NodeStats(q, total, **given), u)
        one = [NodeStats(q[i].tolist(), float(total[i]), **{k: v[i].tolist() for k, v in given.items()}) for i in range(200)]
        expected = [score.select(node, float(u[i])) for i, node in enumerate(one)]
        assert rows.tolist() == expected, type(score).__name__
        # the batched search's lookup table of the per-count terms gives the same draws
        table = score.count_table(4, int(total.max()), dtype=torch.float64, device=torch.device("cpu"))
        assert score.select_rows(NodeStats(q, total, **given, counts=table[total]), u).tolist() == expected, type(score).__name__
