from __future__ import annotations

import pytest
import torch

from torchrl_reg.tabular.algorithms import regularized_optimum
from torchrl_reg.tabular.mdp import FiniteMDP, deceptive_chain, garnet, mirl_grid_world


def _two_state_kernel() -> torch.Tensor:
    return torch.tensor([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.25, 0.75]]])


class TestFiniteMDP:
    def test_stores_float64_and_shapes(self):
        mdp = FiniteMDP(_two_state_kernel().float(), torch.zeros(2, 2), 0.9)
        assert mdp.transitions.dtype == torch.float64 and mdp.rewards.dtype == torch.float64
        assert (mdp.num_states, mdp.num_actions, mdp.gamma) == (2, 2, 0.9)
        assert torch.equal(mdp.initial_distribution, torch.tensor([0.5, 0.5], dtype=torch.float64))
        # float32 round-off is removed: rows sum to 1 in float64.
        assert torch.allclose(mdp.transitions.sum(-1), torch.ones(2, 2, dtype=torch.float64), atol=1e-15, rtol=0)

    def test_expected_next_and_policy_kernel(self):
        mdp = FiniteMDP(_two_state_kernel(), torch.zeros(2, 2), 0.9)
        v = torch.tensor([1.0, 3.0], dtype=torch.float64)
        # (P v)(s, a) by hand.
        assert torch.equal(mdp.expected_next(v), torch.tensor([[2.0, 1.0], [3.0, 2.5]], dtype=torch.float64))
        policy = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
        expected = torch.tensor([[0.5, 0.5], [0.125, 0.875]], dtype=torch.float64)
        assert torch.equal(mdp.policy_transitions(policy), expected)

    @pytest.mark.parametrize(
        "transitions, rewards, gamma, match",
        [
            (torch.ones(2, 2) / 2, torch.zeros(2, 2), 0.9, r"shape \[S, A, S\]"),
            (torch.ones(2, 2, 3) / 3, torch.zeros(2, 2), 0.9, r"shape \[S, A, S\]"),
            (_two_state_kernel(), torch.zeros(2, 3), 0.9, r"rewards must have shape \[S, A\] = \(2, 2\)"),
            (torch.tensor([[[1.5, -0.5]], [[0.0, 1.0]]]), torch.zeros(2, 1), 0.9, r"P\[0, 0, 1\] = -0.5"),
            (torch.tensor([[[0.5, 0.4]], [[0.0, 1.0]]]), torch.zeros(2, 1), 0.9, r"sum\(P\[0, 0, :\]\) = 0.9"),
            (_two_state_kernel(), torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), 0.9, "rewards must be finite"),
            (_two_state_kernel(), torch.zeros(2, 2), 1.0, r"gamma must be in \[0, 1\), got gamma=1.0"),
            (_two_state_kernel(), torch.zeros(2, 2), -0.1, r"gamma must be in \[0, 1\), got gamma=-0.1"),
        ],
    )
    def test_rejects_bad_input(self, transitions, rewards, gamma, match):
        with pytest.raises(ValueError, match=match):
            FiniteMDP(transitions, rewards, gamma)

    def test_rejects_bad_initial_distribution(self):
        with pytest.raises(ValueError, match="initial_distribution must be a probability vector"):
            FiniteMDP(_two_state_kernel(), torch.zeros(2, 2), 0.9, initial_distribution=torch.tensor([0.7, 0.7]))
        with pytest.raises(ValueError, match=r"initial_distribution must have shape \[S\] = \[2\]"):
            FiniteMDP(_two_state_kernel(), torch.zeros(2, 2), 0.9, initial_distribution=torch.ones(3) / 3)


class TestGarnet:
    def test_structure(self):
        mdp = garnet(12, 3, 4, gamma=0.95, seed=7, reward_range=(0.0, 2.0))
        assert mdp.transitions.shape == (12, 3, 12) and mdp.gamma == 0.95
        assert ((mdp.transitions > 0).sum(-1) == 4).all()
        assert torch.allclose(mdp.transitions.sum(-1), torch.ones(12, 3, dtype=torch.float64), atol=1e-14, rtol=0)
        assert mdp.rewards.min() >= 0.0 and mdp.rewards.max() <= 2.0

    def test_seeded(self):
        a, b, c = garnet(8, 2, 3, seed=1), garnet(8, 2, 3, seed=1), garnet(8, 2, 3, seed=2)
        assert torch.equal(a.transitions, b.transitions) and torch.equal(a.rewards, b.rewards)
        assert not torch.equal(a.transitions, c.transitions)

    def test_deterministic_when_branching_is_one(self):
        mdp = garnet(5, 2, 1, seed=0)
        assert torch.equal(mdp.transitions.max(-1).values, torch.ones(5, 2, dtype=torch.float64))

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(num_states=4, num_actions=2, branching=5), r"branching must be in \[1, num_states=4\], got branching=5"),
            (dict(num_states=0, num_actions=2, branching=1), r"num_states must be an integer >= 1, got num_states=0"),
            (dict(num_states=4, num_actions=2, branching=2, reward_range=(1.0, 0.0)), "low <= high"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            garnet(**kwargs)


class TestMirlGridWorld:
    def test_dynamics_by_hand(self):
        # 3x3 grid, goal (2, 2): states are the 8 other cells in row-major order.
        mdp = mirl_grid_world(3, gamma=0.9)
        up, right, down, left, stay = range(5)
        assert (mdp.num_states, mdp.num_actions) == (8, 5)
        cell_21 = 7  # row-major: (0, 0) .. (0, 2) are 0 .. 2, (1, 0) .. (1, 2) are 3 .. 5, (2, 0) is 6
        assert mdp.rewards[cell_21, right] == 9.0
        assert torch.allclose(mdp.transitions[cell_21, right], torch.full((8,), 1 / 8, dtype=torch.float64))
        assert mdp.rewards[0, up] == -1.0 and mdp.transitions[0, up, 0] == 1.0  # wall: stay in place
        assert mdp.transitions[0, right, 1] == 1.0 and mdp.transitions[0, down, 3] == 1.0
        assert mdp.rewards[cell_21, left] == -1.0 and mdp.transitions[cell_21, left, 6] == 1.0
        assert mdp.transitions[4, stay, 4] == 1.0
        assert torch.equal(mirl_grid_world(3, include_stay=False).rewards, mdp.rewards[:, :4])

    @pytest.mark.parametrize("size, goal", [(4, None), (5, (1, 2))])
    def test_optimal_values_by_hand(self, size, goal):
        # Walking straight to the goal is optimal: from Manhattan distance d,
        # V(d) = -(1 - g^(d-1)) / (1 - g) + g^(d-1) (9 + g Vbar) with Vbar the mean over restarts,
        # which is linear in Vbar and solved by hand below.
        gamma = 0.9
        mdp = mirl_grid_world(size, goal=goal, gamma=gamma)
        goal = (size - 1, size - 1) if goal is None else goal
        dist = torch.tensor(
            [abs(i - goal[0]) + abs(j - goal[1]) for i in range(size) for j in range(size) if (i, j) != goal],
            dtype=torch.float64,
        )
        a_d = -(1 - gamma ** (dist - 1)) / (1 - gamma) + 9 * gamma ** (dist - 1)
        b_d = gamma**dist
        v_bar = a_d.mean() / (1 - b_d.mean())
        expected = a_d + b_d * v_bar
        optimum = regularized_optimum(mdp)
        assert torch.allclose(optimum.values, expected, atol=1e-12, rtol=0)

    def test_rejects_bad_goal(self):
        with pytest.raises(ValueError, match=r"goal must be a \(row, column\) cell with entries in \[0, 2\]"):
            mirl_grid_world(3, goal=(3, 0))


class TestDeceptiveChain:
    def test_advancing_optimal_when_goal_is_worth_it(self):
        # Advance: gamma^(N-1) * goal / (1 - gamma) = 0.9^5 / 0.1 = 5.9049 > lure forever 0.1 / 0.1.
        mdp = deceptive_chain(6, gamma=0.9, lure_reward=0.1, goal_reward=1.0)
        optimum = regularized_optimum(mdp)
        assert optimum.values[0].item() == pytest.approx(0.9**5 / 0.1, abs=1e-12)
        assert torch.equal(optimum.policy[:, 1], torch.ones(6, dtype=torch.float64))
        # Greedy on immediate reward takes the lure everywhere but the last state.
        assert (mdp.rewards[:-1, 0] > mdp.rewards[:-1, 1]).all()

    def test_lure_optimal_when_goal_too_far(self):
        # From state 0 advancing is worth 0.9^9 / 0.1 = 3.87 < 0.7 / 0.1 = 7: take the lure forever.
        mdp = deceptive_chain(10, gamma=0.9, lure_reward=0.7, goal_reward=1.0)
        optimum = regularized_optimum(mdp)
        assert optimum.values[0].item() == pytest.approx(7.0, abs=1e-12)
        assert optimum.policy[0, 0] == 1.0 and optimum.policy[-1, 1] == 1.0

    def test_slip(self):
        mdp = deceptive_chain(4, slip=0.25)
        assert mdp.transitions[1, 1, 2] == 0.75 and mdp.transitions[1, 1, 0] == 0.25
        with pytest.raises(ValueError, match=r"slip must be in \[0, 1\), got slip=1.0"):
            deceptive_chain(4, slip=1.0)
