"""torchrl_reg.planning.ensemble: the combined root of K determinized futures, on numbers worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchrl_reg.planning import DChain, make_search
from torchrl_reg.planning.ensemble import check_futures, combine_futures, split_simulations

INF = math.inf
# episode 0: future 0 visited (3, 1, 0), future 1 (1, 2, 1); episode 1: only action 1 tried, in both futures
VISITS = torch.tensor([[[3, 1, 0], [1, 2, 1]], [[0, 2, 0], [0, 1, 0]]])
VALUES = torch.tensor([[[1.0, 2.0, -INF], [3.0, 0.5, 4.0]], [[9.0, 5.0, 9.0], [9.0, 8.0, -INF]]], dtype=torch.float64)


def test_visits_are_summed_and_values_averaged_by_visits():
    actions, visits, values = combine_futures(VISITS, VALUES, "search_value")
    assert visits.tolist() == [[4, 3, 1], [0, 3, 0]]
    # episode 0: (3 * 1 + 1 * 3) / 4 = 1.5, (1 * 2 + 2 * 0.5) / 3 = 1, (0 * -inf: unread + 1 * 4) / 1 = 4
    # episode 1: (2 * 5 + 1 * 8) / 3 = 6; actions no future tried are -inf (their 9s are never read)
    assert values.tolist() == [[1.5, 1.0, 4.0], [-INF, 6.0, -INF]]
    assert actions.tolist() == [2, 1]  # the best combined value, though action 2 was tried once
    assert combine_futures(VISITS, VALUES, "bellman_value")[0].tolist() == [2, 1]


def test_most_visited_plays_the_most_visits_over_all_futures_lowest_index_on_ties():
    assert combine_futures(VISITS, VALUES, "most_visited")[0].tolist() == [0, 1]
    tie = torch.tensor([[[1, 2, 0], [2, 1, 3]]])  # sums 3, 3, 3: action 0
    assert combine_futures(tie, torch.zeros(1, 2, 3), "most_visited")[0].tolist() == [0]


def test_one_future_is_the_single_trees_recommendation():
    chain = DChain(10, final_reward=0.5)
    for algorithm in ("ments", "dents", "uct"):
        search = make_search(algorithm, chain, seed=3)
        action = search.search(40)
        visits = torch.as_tensor(search.tree.visits[0])[None, None]
        values = torch.as_tensor(search.root_values())[None, None]
        played, total, combined = combine_futures(visits, values, search.recommend)
        assert int(played[0]) == action and total[0].tolist() == search.tree.visits[0].tolist()
        tried = search.tree.visits[0] > 0
        assert np.allclose(combined[0].numpy()[tried], search.root_values()[tried], rtol=1e-15, atol=0)


@pytest.mark.parametrize("visits, values, recommend, match", [
    (VISITS, VALUES, "max_value", "recommend must be one of"),
    (VISITS[0], VALUES[0], "search_value", r"must both be \[B, K, A\]"),
    (VISITS.double(), VALUES, "search_value", "visits must be counts"),
    (-VISITS, VALUES, "search_value", "visits must be counts"),
    (VISITS, torch.where(VISITS > 0, math.nan, 0.0), "search_value", "not finite"),
])
def test_bad_roots_are_refused(visits, values, recommend, match):
    with pytest.raises(ValueError, match=match):
        combine_futures(visits, values, recommend)


def test_the_budget_is_the_total_per_move_split_evenly():
    assert split_simulations(50, 5) == 10 and split_simulations(50, 1) == 50 and check_futures("ensemble", 2, 200) == 100
    assert check_futures("determinized", 1, 50) == 50 and check_futures("sampled", 1, 7) == 7
    with pytest.raises(ValueError, match=r"simulations=50 is the total per move over futures=4 .* \(e.g. 48 or 52\)"):
        split_simulations(50, 4)
    with pytest.raises(ValueError, match=r"planner.futures must be an integer >= 1, got planner.futures=True"):
        check_futures("ensemble", True, 50)
    with pytest.raises(ValueError, match=r"planner.futures=2 is read by planner.model='ensemble' only"):
        check_futures("oracle", 2, 50)
