"""Soft Q-learning's pure functions against hand computations and closed-form integrals.

The exact soft value of a separable quadratic ``Q(a) = c - sum_k alpha_k (a_k - m_k)^2`` on a Box is
``V = c + tau sum_k ln int_{low_k}^{high_k} exp(-alpha_k (x - m_k)^2 / tau) dx`` with each integral
``sqrt(pi tau / alpha) / 2 * (erf(sqrt(alpha/tau)(high - m)) - erf(sqrt(alpha/tau)(low - m)))``,
computed here with ``math.erf`` in float64, independently of the code under test.
"""
from __future__ import annotations

import math

import pytest
import torch

from torchrl_reg.functional import importance_sampled_soft_value, median_bandwidth, rbf_kernel, svgd_direction
from torchrl_reg.modules.soft_q import defensive_mixture_proposal, log_abs_det_squash, uniform_proposal
from torchrl_reg.objectives import SoftQLoss

F64 = torch.float64
CENTERS = [0.3, -0.6, 0.1]
CURVATURES = [2.0, 4.0, 1.0]
OFFSET = 1.5


def _quadratic_q(actions: torch.Tensor, dims: int) -> torch.Tensor:
    centers = torch.tensor(CENTERS[:dims], dtype=actions.dtype)
    curvatures = torch.tensor(CURVATURES[:dims], dtype=actions.dtype)
    return OFFSET - (curvatures * (actions - centers).pow(2)).sum(-1)


def _exact_soft_value(tau: float, dims: int, low: float = -1.0, high: float = 1.0) -> float:
    total = OFFSET
    for m, alpha in zip(CENTERS[:dims], CURVATURES[:dims]):
        s = math.sqrt(alpha / tau)
        integral = math.sqrt(math.pi * tau / alpha) / 2 * (math.erf(s * (high - m)) - math.erf(s * (low - m)))
        total += tau * math.log(integral)
    return total


def test_importance_sampled_soft_value_by_hand():
    # q = [0, ln 3], q(a) = 1/2 each: tau=1 -> ln mean(2 * [1, 3]) = ln 4; tau=0.5 -> 0.5 ln mean(2 * [1, 9]).
    q = torch.tensor([0.0, math.log(3.0)], dtype=F64)
    log_q = torch.full((2,), -math.log(2.0), dtype=F64)
    assert importance_sampled_soft_value(q, log_q, 1.0).item() == pytest.approx(math.log(4.0), abs=1e-12)
    assert importance_sampled_soft_value(q, log_q, 0.5).item() == pytest.approx(0.5 * math.log(10.0), abs=1e-12)


def test_importance_sampled_soft_value_is_finite_for_large_values():
    q = torch.tensor([[1e4, 1e4 - 1.0, -1e4]])
    value = importance_sampled_soft_value(q, torch.zeros(1, 3), 1e-3)
    assert torch.isfinite(value).all()
    assert value.item() == pytest.approx(1e4 - 1e-3 * math.log(3.0), rel=1e-6)


def test_bad_tau_is_refused_by_the_loss_not_the_function():
    """rlax style: the function trusts its caller; SoftQLoss owns tau (and the recipe checks it through it)."""
    with pytest.raises(ValueError, match=r"loss\.tau must be a finite number in \[0.0001, 10.0\], got loss\.tau=0.0"):
        SoftQLoss.check_arguments({"tau": 0.0}, prefix="loss.")


@pytest.mark.parametrize("dims,tau", [(1, 1.0), (2, 0.5), (3, 0.2)])
def test_uniform_soft_value_matches_erf_integral(dims, tau):
    torch.manual_seed(0)
    low, high = -torch.ones(dims, dtype=F64), torch.ones(dims, dtype=F64)
    actions, log_q = uniform_proposal(low, high, (), 400_000)
    assert log_q[0].item() == pytest.approx(-dims * math.log(2.0))
    value = importance_sampled_soft_value(_quadratic_q(actions, dims), log_q, tau)
    assert value.item() == pytest.approx(_exact_soft_value(tau, dims), abs=0.01 * tau + 1e-3)


def test_uniform_soft_value_on_an_asymmetric_box():
    """The ``-sum ln(high - low)`` density generalizes ``d ln 2``: Box [0, 3] x [-1, 0.5]."""
    torch.manual_seed(1)
    low, high = torch.tensor([0.0, -1.0], dtype=F64), torch.tensor([3.0, 0.5], dtype=F64)
    actions, log_q = uniform_proposal(low, high, (), 400_000)
    assert log_q[0].item() == pytest.approx(-math.log(3.0 * 1.5))
    value = importance_sampled_soft_value(_quadratic_q(actions, 2), log_q, 0.5)
    exact = OFFSET
    for m, alpha, lo, hi in zip(CENTERS[:2], CURVATURES[:2], [0.0, -1.0], [3.0, 0.5]):
        s = math.sqrt(alpha / 0.5)
        exact += 0.5 * math.log(math.sqrt(math.pi * 0.5 / alpha) / 2 * (math.erf(s * (hi - m)) - math.erf(s * (lo - m))))
    assert value.item() == pytest.approx(exact, abs=0.01)


def test_soft_value_approaches_max_q_as_tau_goes_to_zero():
    """With 200k particles, the estimate follows the exact value down to small tau, and both approach
    max Q = OFFSET (reached at the centers, inside the Box) as ``tau ln(peak width)`` vanishes."""
    torch.manual_seed(2)
    low, high = -torch.ones(1, dtype=F64), torch.ones(1, dtype=F64)
    actions, log_q = uniform_proposal(low, high, (), 200_000)
    q = _quadratic_q(actions, 1)
    gaps = []
    for tau in (0.3, 0.1, 0.03, 0.01, 0.003):
        value = importance_sampled_soft_value(q, log_q, tau).item()
        assert value == pytest.approx(_exact_soft_value(tau, 1), abs=0.01 * tau + 1e-4)
        gaps.append(abs(value - OFFSET))
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 0.01
    # In the limit the estimator is the max over its particles.
    assert importance_sampled_soft_value(q, log_q, 1e-6).item() == pytest.approx(q.max().item(), abs=1e-4)


def _exp_soft_value_samples(proposal: str, tau: float, dims: int, repeats: int, num_particles: int):
    low, high = -torch.ones(dims, dtype=F64), torch.ones(dims, dtype=F64)
    if proposal == "uniform":
        actions, log_q = uniform_proposal(low, high, (repeats,), num_particles)
    else:
        # A sampler whose pre-tanh particles sit near the peak of exp(Q/tau) (centered on atanh(m)).
        center = torch.atanh(torch.tensor(CENTERS[:dims], dtype=F64))
        particles = center + 0.3 * torch.randn(repeats, 16, dims, dtype=F64)
        actions, log_q = defensive_mixture_proposal(particles, low, high, num_particles, uniform_weight=0.25)
    value = importance_sampled_soft_value(_quadratic_q(actions, dims), log_q, tau)
    return torch.exp((value - OFFSET) / tau)


@pytest.mark.parametrize("proposal", ["uniform", "mixture"])
def test_estimator_is_unbiased_in_exp_value(proposal):
    """mean over 20k independent 8-particle estimates of exp(V/tau) = the exact integral, within
    4 standard errors; V itself is biased low (Jensen)."""
    torch.manual_seed(3)
    tau, dims = 0.3, 2
    samples = _exp_soft_value_samples(proposal, tau, dims, 20_000, 8)
    exact = math.exp((_exact_soft_value(tau, dims) - OFFSET) / tau)
    standard_error = samples.std().item() / math.sqrt(samples.numel())
    assert abs(samples.mean().item() - exact) < 4 * standard_error
    assert (tau * torch.log(samples)).mean().item() < tau * math.log(exact)


def test_mixture_has_lower_variance_than_uniform_on_a_peaked_target():
    torch.manual_seed(4)
    uniform = _exp_soft_value_samples("uniform", 0.1, 3, 5000, 16)
    mixture = _exp_soft_value_samples("mixture", 0.1, 3, 5000, 16)
    assert mixture.var().item() < 0.2 * uniform.var().item()


def test_mixture_density_integrates_to_one():
    """E_q[1 / q(a)] = volume of the Box for any proposal density q on it: [-1, 1] x [0, 2], volume 4."""
    torch.manual_seed(5)
    low, high = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 2.0], dtype=F64)
    particles = torch.tensor([0.5, -1.0], dtype=F64) + 0.5 * torch.randn(2000, 8, 2, dtype=F64)
    _, log_q = defensive_mixture_proposal(particles, low, high, 16, uniform_weight=0.5)
    assert torch.exp(-log_q).mean().item() == pytest.approx(4.0, rel=0.02)


@pytest.mark.parametrize("weight,particles", [(0.0, 16), (1.0, 16), (0.01, 16), (0.99, 16)])
def test_mixture_refuses_bad_weights(weight, particles):
    with pytest.raises(ValueError, match="uniform_weight"):
        defensive_mixture_proposal(torch.zeros(1, 4, 1), -torch.ones(1), torch.ones(1), particles, uniform_weight=weight)


def test_proposals_refuse_fewer_than_two_particles():
    with pytest.raises(ValueError, match="num_particles must be an integer >= 2"):
        uniform_proposal(-torch.ones(1), torch.ones(1), (), 1)


def test_log_abs_det_squash_matches_autograd_and_stays_finite():
    u = torch.tensor([[-8.0, 0.3], [2.0, 5.0]], dtype=F64, requires_grad=True)
    low, high = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 4.0], dtype=F64)
    a = low + (high - low) * (torch.tanh(u) + 1) / 2
    (derivative,) = torch.autograd.grad(a.sum(), u)  # a is elementwise in u: the Jacobian's diagonal
    assert torch.allclose(log_abs_det_squash(u, low, high), derivative.log().sum(-1), atol=1e-6)
    assert torch.isfinite(log_abs_det_squash(torch.full((1, 1), 50.0), -torch.ones(1), torch.ones(1))).all()


def test_median_bandwidth_by_hand():
    # Pairs (x, y): (0,0)=0, (0,2)=4, (1,0)=1, (1,2)=1, (3,0)=9, (3,2)=1 -> sorted 0,1,1,1,4,9; lower median 1.
    x = torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True)
    y = torch.tensor([[0.0], [2.0]])
    h = median_bandwidth(x, y)
    assert h.item() == pytest.approx(1.0 / math.log(3.0))
    assert not h.requires_grad
    assert median_bandwidth(torch.zeros(4, 2), torch.zeros(3, 2)).item() == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="Kx >= 2"):
        median_bandwidth(torch.zeros(1, 2), torch.zeros(3, 2))


def test_rbf_kernel_gradient_matches_autograd():
    x = torch.randn(3, 2, dtype=F64, requires_grad=True)
    y = torch.randn(4, 2, dtype=F64)
    k, grad = rbf_kernel(x, y, 0.7)
    for i in range(3):
        for j in range(4):
            (expected,) = torch.autograd.grad(k[i, j], x, retain_graph=True)
            assert torch.allclose(grad[i, j], expected[i], atol=1e-12)
            assert k[i, j].item() == pytest.approx(math.exp(-((x[i] - y[j]) ** 2).sum().item() / 0.7))


def test_svgd_direction_by_hand():
    """One fixed particle at 0 with score 1, one updated particle at 1, h = 1 (1-D):
    k = e^-1, grad_{x_j} k = -2 (0 - 1) e^-1 = 2 e^-1, so the direction is 3 e^-1."""
    direction = svgd_direction(
        torch.tensor([[0.0]], dtype=F64), torch.tensor([[1.0]], dtype=F64), torch.tensor([[1.0]], dtype=F64), 1.0
    )
    assert direction.item() == pytest.approx(3 * math.exp(-1))


def test_svgd_direction_batched_matches_loops():
    torch.manual_seed(6)
    fixed, score, updated = torch.randn(2, 3, 2, dtype=F64), torch.randn(2, 3, 2, dtype=F64), torch.randn(2, 4, 2, dtype=F64)
    h = torch.tensor([0.5, 2.0], dtype=F64)
    direction = svgd_direction(fixed, score, updated, h)
    for b in range(2):
        for i in range(4):
            total = torch.zeros(2, dtype=F64)
            for j in range(3):
                diff = fixed[b, j] - updated[b, i]
                k = math.exp(-(diff**2).sum().item() / h[b].item())
                total += k * score[b, j] - 2.0 / h[b].item() * diff * k
            assert torch.allclose(direction[b, i], total / 3, atol=1e-12)
