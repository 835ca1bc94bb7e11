"""Tabular MIRL (Grau-Moya, Leibfried, Vrancx, ICLR 2019): building blocks by hand,
the optimal prior for a fixed policy, convergence of the alternating scheme, beta -> infinity is VI."""
from __future__ import annotations

import math

import pytest
import torch

from torchrl_reg.tabular.algorithms import regularized_optimum, soft_bellman_operator, value_iteration
from torchrl_reg.tabular.mdp import FiniteMDP, garnet, mirl_grid_world
from torchrl_reg.tabular.mirl import (
    action_marginal,
    discounted_state_visitation,
    linear_beta_schedule,
    mirl_policy,
    mirl_prior_update,
    mirl_soft_backup,
    mirl_value_iteration,
    optimal_prior,
    prior_soft_value,
    stationary_state_distribution,
)

F64 = torch.float64


def _random_policy(mdp: FiniteMDP, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(scale * torch.randn(mdp.num_states, mdp.num_actions, generator=generator, dtype=F64), -1)


class TestBuildingBlocks:
    def test_prior_soft_value_and_policy_by_hand(self):
        q = torch.tensor([[1.0, 2.0]], dtype=F64)
        prior = torch.tensor([0.25, 0.75], dtype=F64)
        beta = 2.0
        z = 0.25 * math.exp(2.0) + 0.75 * math.exp(4.0)
        assert prior_soft_value(q, prior, beta).item() == pytest.approx(math.log(z) / 2, abs=1e-14)
        expected = torch.tensor([[0.25 * math.exp(2.0) / z, 0.75 * math.exp(4.0) / z]], dtype=F64)
        assert torch.allclose(mirl_policy(q, prior, beta), expected, atol=1e-15, rtol=0)

    def test_soft_backup_matches_loops(self):
        mdp = garnet(5, 3, 2, seed=0)
        q = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
        prior = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
        beta = 0.7
        expected = torch.empty(5, 3, dtype=F64)
        for s in range(5):
            for a in range(3):
                total = mdp.rewards[s, a].item()
                for s_next in range(5):
                    inner = sum(prior[b].item() * math.exp(beta * q[s_next, b].item()) for b in range(3))
                    total += mdp.gamma * mdp.transitions[s, a, s_next].item() * math.log(inner) / beta
                expected[s, a] = total
        assert torch.allclose(mirl_soft_backup(mdp, q, prior, beta), expected, atol=1e-13, rtol=0)

    def test_uniform_prior_is_soft_q_iteration_minus_a_constant(self):
        # (1/beta) log sum (1/|A|) exp(beta q) = soft_value(q, 1/beta) - ln|A| / beta.
        mdp = garnet(6, 4, 3, seed=2)
        q = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
        beta = 3.0
        uniform = torch.full((4,), 0.25, dtype=F64)
        expected = soft_bellman_operator(mdp, q, 1 / beta) - mdp.gamma * math.log(4) / beta
        assert torch.allclose(mirl_soft_backup(mdp, q, uniform, beta), expected, atol=1e-13, rtol=0)

    def test_prior_update_by_hand(self):
        prior = torch.tensor([0.5, 0.5], dtype=F64)
        policy = torch.tensor([[1.0, 0.0], [0.2, 0.8]], dtype=F64)
        weights = torch.tensor([0.25, 0.75], dtype=F64)
        # marginal = 0.25 * [1, 0] + 0.75 * [0.2, 0.8] = [0.4, 0.6]; 0.9 * [0.5, 0.5] + 0.1 * [0.4, 0.6].
        updated = mirl_prior_update(prior, policy, weights, prior_lr=0.1)
        assert torch.allclose(updated, torch.tensor([0.49, 0.51], dtype=F64), atol=1e-15, rtol=0)
        assert torch.allclose(action_marginal(policy, weights), torch.tensor([0.4, 0.6], dtype=F64), atol=1e-15, rtol=0)

    def test_linear_beta_schedule(self):
        schedule = linear_beta_schedule(0.5)
        assert [schedule(i) for i in (1, 2, 10)] == [0.5, 1.0, 5.0]

    @pytest.mark.parametrize(
        "call, match",
        [
            (lambda m: mirl_value_iteration(m, beta=0.0, num_iterations=1), r"beta must be a finite number > 0, got beta=0.0"),
            (lambda m: mirl_value_iteration(m, beta=1.0, num_iterations=1, prior_lr=0.0), r"prior_lr must lie in \(0, 1\], got prior_lr=0.0"),
            (lambda m: mirl_value_iteration(m, beta=1.0, num_iterations=1, q_lr=1.5), r"q_lr must lie in \(0, 1\], got q_lr=1.5"),
            (lambda m: mirl_value_iteration(m, beta=1.0, num_iterations=0), "num_iterations must be an integer >= 1"),
            (lambda m: mirl_value_iteration(m, beta=1.0, num_iterations=1, state_weighting="replay"), "state_weighting must be"),
            (lambda m: mirl_value_iteration(m, beta=1.0, num_iterations=1, prior0=torch.ones(3)), r"prior must have shape \[A\] = \[2\]"),
            (lambda m: mirl_value_iteration(m, beta=1.0, num_iterations=1, prior0=torch.ones(2)), "prior must be a distribution"),
            (lambda m: mirl_value_iteration(m, beta=linear_beta_schedule(-1.0), num_iterations=1), "beta"),
        ],
    )
    def test_rejects_bad_arguments(self, call, match):
        with pytest.raises(ValueError, match=match):
            call(garnet(4, 2, 2, seed=0))


class TestStateDistributions:
    def test_discounted_visitation_is_the_discounted_series(self):
        mdp = garnet(7, 3, 3, gamma=0.8, seed=4)
        policy = _random_policy(mdp, 0)
        p_pi = torch.einsum("sa,sat->st", policy, mdp.transitions)
        nu, series = mdp.initial_distribution.clone(), torch.zeros(7, dtype=F64)
        for t in range(400):
            series += (1 - 0.8) * 0.8**t * nu
            nu = nu @ p_pi
        assert torch.allclose(discounted_state_visitation(mdp, policy), series, atol=1e-14, rtol=0)

    def test_stationary_distribution_and_gamma_to_one(self):
        mdp = mirl_grid_world(4, gamma=0.9)
        policy = _random_policy(mdp, 1)
        mu = stationary_state_distribution(mdp, policy)
        p_pi = torch.einsum("sa,sat->st", policy, mdp.transitions)
        assert torch.allclose(mu @ p_pi, mu, atol=1e-14, rtol=0) and mu.sum().item() == pytest.approx(1.0, abs=1e-14)
        # The gamma -> 1 weighting: the discounted visitation tends to mu.
        almost_undiscounted = FiniteMDP(mdp.transitions, mdp.rewards, 0.99999, mdp.initial_distribution)
        assert torch.allclose(discounted_state_visitation(almost_undiscounted, policy), mu, atol=1e-3, rtol=0)

    def test_stationary_distribution_must_be_unique(self):
        two_absorbing = FiniteMDP(torch.eye(2).unsqueeze(1), torch.zeros(2, 1), 0.9)
        with pytest.raises(ValueError, match="no unique stationary distribution"):
            stationary_state_distribution(two_absorbing, torch.ones(2, 1, dtype=F64))


def _objective(mdp: FiniteMDP, policy: torch.Tensor, prior: torch.Tensor, beta: float) -> torch.Tensor:
    """E[sum_t gamma^t (r - (1/beta) log pi(a_t|s_t) / rho(a_t))] from the initial distribution, by a
    direct linear solve (written independently of the code under test)."""
    p_pi = torch.einsum("sa,sat->st", policy, mdp.transitions)
    per_step = (policy * (mdp.rewards - (policy.log() - prior.log()) / beta)).sum(-1)
    v = torch.linalg.solve(torch.eye(mdp.num_states, dtype=F64) - mdp.gamma * p_pi, per_step)
    return mdp.initial_distribution @ v


@pytest.mark.parametrize("mdp_factory", [lambda: garnet(8, 4, 3, gamma=0.9, seed=5), lambda: mirl_grid_world(3, gamma=0.95)])
@pytest.mark.parametrize("beta", [0.5, 5.0])
def test_optimal_prior_for_a_fixed_policy(mdp_factory, beta):
    # The optimal action prior for a fixed policy (MIRL, ICLR 2019): the discounted-visitation
    # action marginal maximizes the regularized objective over priors, whatever beta.
    mdp = mdp_factory()
    policy = _random_policy(mdp, 2, scale=2.0)
    best = optimal_prior(mdp, policy)
    assert best.sum().item() == pytest.approx(1.0, abs=1e-14)
    logits = best.log().clone().requires_grad_(True)
    _objective(mdp, policy, torch.softmax(logits, -1), beta).backward()
    assert logits.grad.abs().max() < 1e-12  # stationary point on the simplex
    value = _objective(mdp, policy, best, beta)
    generator = torch.Generator().manual_seed(3)
    for _ in range(20):
        other = torch.softmax(best.log() + 0.5 * torch.randn(mdp.num_actions, generator=generator, dtype=F64), -1)
        assert _objective(mdp, policy, other, beta) < value


class TestAlternatingScheme:
    @pytest.mark.parametrize("state_weighting", ["visitation", "stationary"])
    def test_converges_on_the_grid_world(self, state_weighting):
        mdp = mirl_grid_world(4, gamma=0.9)
        beta = 2.0
        result = mirl_value_iteration(mdp, beta=beta, num_iterations=400, prior_lr=0.5, state_weighting=state_weighting)
        q, prior = result.q[-1], result.priors[-1]
        assert (result.q[-1] - result.q[-2]).abs().max() < 1e-12
        assert (result.priors[-1] - result.priors[-2]).abs().max() < 1e-12
        # The limit is a fixed point of both steps: Q = T^rho Q and rho = marginal of pi(Q, rho).
        assert torch.allclose(mirl_soft_backup(mdp, q, prior, beta), q, atol=1e-11, rtol=0)
        policy = mirl_policy(q, prior, beta)
        weights = (
            discounted_state_visitation(mdp, policy)
            if state_weighting == "visitation"
            else stationary_state_distribution(mdp, policy)
        )
        assert torch.allclose(prior, action_marginal(policy, weights), atol=1e-11, rtol=0)
        if state_weighting == "visitation":
            assert torch.allclose(prior, optimal_prior(mdp, policy), atol=1e-11, rtol=0)
        # The goal is bottom-right: the prior learns that only "right" and "down" are useful.
        up, right, down, left, stay = prior.tolist()
        assert right + down > 0.99

    def test_fixed_huge_beta_is_value_iteration(self):
        mdp = garnet(10, 3, 3, gamma=0.9, seed=6)
        result = mirl_value_iteration(mdp, beta=1e10, num_iterations=40)
        vi = value_iteration(mdp, num_iterations=40)
        assert torch.allclose(result.q, vi.q, atol=1e-7, rtol=0)

    @pytest.mark.parametrize("name", ["garnet", "grid"])
    def test_beta_to_infinity_recovers_the_optimum(self, name):
        # For a fixed prior rho, T^rho_beta <= T (so Q_beta <= q*) and
        # T^rho_beta Q >= T_pi* Q - gamma ln(1/rho(a*)) / beta, so
        # 0 <= q* - Q_beta <= gamma max_s min_{a* optimal} ln(1/rho(a*)) / ((1 - gamma) beta).
        mdp = garnet(10, 3, 3, gamma=0.9, seed=6) if name == "garnet" else mirl_grid_world(4, gamma=0.9)
        optimum = regularized_optimum(mdp)
        optimal_actions = optimum.q >= optimum.values.unsqueeze(-1) - 1e-9
        errors = []
        for beta in (10.0, 100.0, 1000.0):
            result = mirl_value_iteration(mdp, beta=beta, num_iterations=300, prior_lr=0.5)
            prior = result.priors[-1]
            assert (result.q[-1] - result.q[-2]).abs().max() < 1e-12
            cost = torch.where(optimal_actions, -prior.log(), torch.inf).min(-1).values.max()
            bound = mdp.gamma * cost / ((1 - mdp.gamma) * beta)
            gap = optimum.q - result.q[-1]
            assert gap.min() >= -1e-10 and gap.max() <= bound + 1e-10
            errors.append(gap.max().item())
        assert errors[2] < errors[1] < errors[0] and errors[2] < 1e-2

    def test_linear_beta_schedule_approaches_value_iteration(self):
        mdp = mirl_grid_world(4, gamma=0.9)
        q_star = regularized_optimum(mdp).q
        result = mirl_value_iteration(mdp, beta=linear_beta_schedule(1.0), num_iterations=400, prior_lr=0.5)
        assert torch.equal(result.betas[:3], torch.tensor([1.0, 2.0, 3.0], dtype=F64))
        errors = [(result.q[k] - q_star).abs().max().item() for k in (24, 99, 399)]
        assert errors[2] < errors[1] < errors[0] and errors[2] < 0.02
