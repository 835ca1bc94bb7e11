"""The exact VIREL iteration ([VIREL] arXiv 1811.01132, Sections 3-4) against the exact optimum q*."""
from __future__ import annotations

import math

import pytest
import torch

from torchrl_reg.tabular import FiniteMDP, garnet, regularized_optimum, soft_value_iteration
from torchrl_reg.tabular.virel import virel_iteration

GAMMA = 0.9


def _sup(x: torch.Tensor) -> torch.Tensor:
    return x.abs().amax((-1, -2))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("p, c", [(1, 0.1), (1, 1.0), (2, 0.1), (2, 10.0)])
@pytest.mark.parametrize("evaluation, num_iterations, atol", [("exact", 12, 1e-12), ("one_step", 300, 1e-9)])
def test_virel_temperature_vanishes_and_policy_becomes_greedy_optimal(seed, p, c, evaluation, num_iterations, atol):
    mdp = garnet(20, 4, 3, gamma=GAMMA, seed=seed)
    optimum = regularized_optimum(mdp)
    result = virel_iteration(mdp, c=c, p=p, num_iterations=num_iterations, evaluation=evaluation)
    # Fixed point q*: the Bellman error, hence the temperature, goes to 0.
    assert _sup(result.q[-1] - optimum.q) < atol
    assert result.temperatures[0] > 0 and result.temperatures[-1] < 1e-9
    # Desideratum 2: while the error is positive the policy is stochastic.
    assert (result.policies[0] < 1 - 1e-6).all(-1).any()
    # Desideratum 1: at the end it is deterministic and greedy with respect to q* (an optimal policy).
    final = result.policies[-1]
    assert (final.max(-1).values > 1 - 1e-12).all()
    assert torch.equal(final.argmax(-1), optimum.q.argmax(-1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_virel_observed_rates(seed):
    """One-step evaluation converges linearly at value iteration's rate gamma; exact
    evaluation reaches q* exactly in a few iterations, like policy iteration."""
    mdp = garnet(20, 4, 3, gamma=GAMMA, seed=seed)
    q_star = regularized_optimum(mdp).q
    one_step = virel_iteration(mdp, c=1.0, p=2, num_iterations=250, evaluation="one_step")
    errors = _sup(one_step.q - q_star)
    tail = errors[100:][errors[100:] > 1e-9]
    ratios = tail[1:] / tail[:-1]
    # Observed on Garnets: the error ratio settles at gamma itself (the rate of value iteration).
    assert len(ratios) > 20 and ((ratios - GAMMA).abs() < 1e-3).all()
    exact = virel_iteration(mdp, c=1.0, p=2, num_iterations=8, evaluation="exact")
    assert _sup(exact.q[-1] - q_star) < 1e-12


def test_virel_first_iterations_by_hand():
    """One state, two actions, r = (1, 0), gamma = 1/2, q0 = 0, c = 2, p = 2, one-step evaluation."""
    mdp = FiniteMDP(torch.ones(1, 2, 1), torch.tensor([[1.0, 0.0]]), 0.5)
    result = virel_iteration(mdp, c=2.0, p=2, num_iterations=2, evaluation="one_step")
    # eps_0 = c/p * mean(|T*q0 - q0|^2) = mean(1, 0) = 1/2; q0 = 0 so pi_1 is uniform; q_1 = r.
    assert result.temperatures[0].item() == pytest.approx(0.5, abs=1e-15)
    assert torch.allclose(result.policies[0], torch.tensor([[0.5, 0.5]], dtype=torch.float64), atol=0, rtol=0)
    assert torch.allclose(result.q[0], torch.tensor([[1.0, 0.0]], dtype=torch.float64), atol=1e-15, rtol=0)
    # eps_1: policy softmax(q_1 / 1/2) = (e^2, 1) / (e^2 + 1); its value under q_1 is e^2 / (e^2 + 1),
    # the residual is gamma * that value at both actions, and eps_1 = its square.
    value = math.exp(2) / (math.exp(2) + 1)
    eps_1 = (0.5 * value) ** 2
    assert result.temperatures[1].item() == pytest.approx(eps_1, rel=1e-14)
    pi_2 = torch.softmax(torch.tensor([1.0, 0.0], dtype=torch.float64) / eps_1, -1)
    assert torch.allclose(result.policies[1][0], pi_2, atol=1e-15, rtol=0)
    expected_q2 = torch.tensor([1.0, 0.0], dtype=torch.float64) + 0.5 * (pi_2 * torch.tensor([1.0, 0.0])).sum()
    assert torch.allclose(result.q[1][0], expected_q2, atol=1e-15, rtol=0)


@pytest.mark.parametrize("tau", [0.05, 0.3])
def test_soft_vi_at_fixed_temperature_stays_biased_where_virel_does_not(tau):
    mdp = garnet(20, 4, 3, gamma=GAMMA, seed=0)
    q_star = regularized_optimum(mdp).q
    soft = soft_value_iteration(mdp, tau=tau, num_iterations=400)
    soft_optimum = regularized_optimum(mdp, entropy_coef=tau)
    assert _sup(soft.q[-1] - soft_optimum.q) < 1e-12
    # The entropy bonus of every future step stays in the soft fixed point: at least tau * H(pi) > 0.
    assert _sup(soft.q[-1] - q_star) > tau * 0.1
    assert (soft.policies[-1].max(-1).values < 1 - 1e-6).any()
    virel = virel_iteration(mdp, c=1.0, p=2, num_iterations=400, evaluation="one_step")
    assert _sup(virel.q[-1] - q_star) < 1e-12


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"c": 0.0}, "c must be a finite number > 0"),
        ({"c": -1.0}, "c must be a finite number > 0"),
        ({"c": float("nan")}, "c must be a finite number > 0"),
        ({"p": 3}, "p must be 1 or 2"),
        ({"p": 1.5}, "p must be 1 or 2"),
        ({"evaluation": "partial"}, "evaluation must be one of"),
        ({"temperature0": -0.1}, "temperature0 must be a finite number >= 0"),
        ({"num_iterations": 0}, "num_iterations must be an integer >= 1"),
    ],
)
def test_virel_iteration_refuses_bad_input(kwargs, match):
    mdp = garnet(5, 2, 2, seed=0)
    arguments = {"c": 1.0, "p": 2, "num_iterations": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        virel_iteration(mdp, **arguments)
