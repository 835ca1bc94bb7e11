"""MIRL equations of ``torchrl_reg.functional`` against hand-worked numbers and naive float64 code."""
from __future__ import annotations

import math

import pytest
import torch

from torchrl_reg import functional as F
from torchrl_reg.objectives import MIRLLoss
from torchrl_reg.validation import check_prior


def naive_prior_soft_value(q, rho, beta):
    """(1/beta) ln sum rho exp(beta q), literally, in float64."""
    q, rho = q.double(), rho.double()
    return torch.log((rho * torch.exp(beta * q)).sum(-1)) / beta


def test_prior_soft_value_by_hand():
    q = torch.tensor([1.0, 2.0])
    rho = torch.tensor([0.25, 0.75])
    expected = 0.5 * math.log(0.25 * math.exp(2.0) + 0.75 * math.exp(4.0))
    assert F.prior_soft_value(q, rho, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_prior_soft_value_matches_naive_on_random_batch():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(64, 5, generator=g)
    rho = torch.rand(5, generator=g)
    rho = rho / rho.sum()
    for beta in (0.1, 1.0, 7.0):
        torch.testing.assert_close(
            F.prior_soft_value(q, rho, beta).double(), naive_prior_soft_value(q, rho, beta), rtol=1e-5, atol=1e-5
        )


def test_uniform_prior_is_soft_value_minus_log_num_actions_over_beta():
    g = torch.Generator().manual_seed(1)
    q = 3 * torch.randn(32, 6, generator=g)
    uniform = torch.full((6,), 1 / 6)
    for beta in (0.05, 1.0, 30.0):
        tau = 1.0 / beta
        torch.testing.assert_close(
            F.prior_soft_value(q, uniform, beta), F.soft_value(q, tau) - math.log(6) * tau, rtol=1e-5, atol=1e-5
        )


def test_uniform_prior_target_is_soft_dqn_target_shifted():
    g = torch.Generator().manual_seed(2)
    r = torch.randn(16, generator=g)
    discount = 0.99 * (torch.rand(16, generator=g) > 0.3).float()
    q_t = torch.randn(16, 3, generator=g)
    beta = 4.0
    mirl = F.prior_soft_q_target(r, discount, q_t, torch.full((3,), 1 / 3), beta=beta)
    soft = F.soft_q_target(r, discount, q_t, tau=1 / beta)
    torch.testing.assert_close(mirl, soft - discount * math.log(3) / beta)


def test_prior_soft_value_limits():
    # float64: beta -> 0 resolves differences of order 1/beta, beyond float32 precision.
    q = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    rho = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    # beta -> inf: the max over the support of rho (the hard Bellman backup).
    assert F.prior_soft_value(q, rho, 1e5).item() == pytest.approx(2.0, abs=1e-4)
    # beta -> 0: the rho-average of q.
    assert F.prior_soft_value(q, rho, 1e-5).item() == pytest.approx((q * rho).sum().item(), abs=1e-4)


def test_zero_prior_mass_excludes_action():
    q = torch.tensor([[5.0, 1.0, 2.0]])
    rho = torch.tensor([0.0, 0.5, 0.5])
    expected = math.log(0.5 * math.e + 0.5 * math.e**2)
    assert F.prior_soft_value(q, rho, 1.0).item() == pytest.approx(expected, rel=1e-6)
    pi = F.prior_boltzmann_policy(q, rho, 1.0)
    assert pi[0, 0].item() == 0.0 and torch.isfinite(F.kl_to_prior(q, rho, 1.0)).all()


@pytest.mark.parametrize("beta", [1e-3, 1.0, 1e4])
def test_finite_in_float32_for_large_q(beta):
    q = torch.tensor([[1e4, -1e4, 1e4 - 1e-2, 0.0]])
    rho = torch.tensor([0.1, 0.2, 0.3, 0.4])
    for value in (
        F.prior_soft_value(q, rho, beta),
        F.prior_log_policy(q, rho, beta),
        F.prior_boltzmann_policy(q, rho, beta),
        F.kl_to_prior(q, rho, beta),
    ):
        assert torch.isfinite(value).all()


def test_policy_is_rho_times_exp_beta_q_normalized():
    q = torch.tensor([[1.0, 0.0, -1.0]])
    rho = torch.tensor([0.1, 0.3, 0.6])
    beta = 1.5
    unnormalized = [0.1 * math.exp(1.5), 0.3, 0.6 * math.exp(-1.5)]
    expected = torch.tensor([[u / sum(unnormalized) for u in unnormalized]])
    torch.testing.assert_close(F.prior_boltzmann_policy(q, rho, beta), expected)
    torch.testing.assert_close(F.prior_log_policy(q, rho, beta), expected.log())
    # Uniform prior: the Boltzmann policy of soft Q-learning with tau = 1 / beta.
    torch.testing.assert_close(
        F.prior_boltzmann_policy(q, torch.full((3,), 1 / 3), beta), F.boltzmann_policy(q, 1 / beta)
    )


def test_kl_to_prior_by_hand():
    q = torch.tensor([[math.log(3.0), 0.0]])
    rho = torch.tensor([0.5, 0.5])
    # pi = (3/4, 1/4): KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert F.kl_to_prior(q, rho, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # Constant q: pi = rho, no information.
    assert F.kl_to_prior(torch.zeros(1, 2), torch.tensor([0.2, 0.8]), 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_prior_update_one_step_by_hand():
    rho = torch.tensor([0.5, 0.25, 0.25])
    pi = torch.tensor([0.0, 0.0, 1.0])
    torch.testing.assert_close(F.prior_update(rho, pi, 0.2), torch.tensor([0.4, 0.2, 0.4]))


def test_prior_update_equals_sequential_updates_of_every_action():
    g = torch.Generator().manual_seed(3)
    pis = torch.softmax(torch.randn(50, 4, generator=g), -1)
    rho = torch.tensor([0.7, 0.1, 0.1, 0.1])
    expected = rho.double()
    for pi in pis.double():
        expected = (1 - 0.05) * expected + 0.05 * pi
    torch.testing.assert_close(F.prior_update(rho, pis, 0.05).double(), expected, rtol=1e-6, atol=1e-7)


def test_prior_update_stays_normalized_over_long_runs():
    g = torch.Generator().manual_seed(4)
    rho = torch.full((7,), 1 / 7)
    for _ in range(2000):
        rho = F.prior_update(rho, torch.softmax(3 * torch.randn(5, 7, generator=g), -1), 0.3)
        assert (rho >= 0).all()
    assert rho.double().sum().item() == pytest.approx(1.0, abs=1e-6)


def test_prior_update_converges_to_action_marginal_of_fixed_policy():
    # Fixed policy over 3 states; the stream visits them with frequencies nu = (2, 1, 3) / 6.
    policy = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.0, 0.3, 0.7]])
    stream = torch.tensor([0, 0, 1, 2, 2, 2]).repeat(2000)
    nu = torch.tensor([2.0, 1.0, 3.0]) / 6
    marginal = nu @ policy
    rho = F.prior_update(torch.tensor([1.0, 0.0, 0.0]), policy[stream], 1e-3)
    torch.testing.assert_close(rho, marginal, atol=4e-3, rtol=0)


def test_adaptive_beta_update_by_hand():
    # (1 - 0.1) * 1 + 0.1 / 0.5
    assert F.adaptive_beta_update(1.0, 0.5, 0.1) == pytest.approx(1.1)
    # Fixed point: beta = 1 / L.
    assert F.adaptive_beta_update(4.0, 0.25, 0.3) == pytest.approx(4.0)
    assert F.adaptive_beta_update(1.0, 0.0, 0.1) == math.inf


# The functions trust their callers (rlax style): MIRLLoss owns the rates and beta and refuses them once.
@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_bad_rates_are_refused_by_the_loss(bad):
    with pytest.raises(ValueError, match=r"prior_lr must lie in \(0, 1\]"):
        MIRLLoss.check_arguments({"prior_lr": bad})
    with pytest.raises(ValueError, match=r"loss\.beta_lr must lie in \(0, 1\]"):
        MIRLLoss.check_arguments({"beta_lr": bad}, prefix="loss.")


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_beta_is_refused_by_the_loss(bad):
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        MIRLLoss.check_arguments({"beta": bad})


def test_bad_loss_for_beta_update():
    with pytest.raises(ValueError, match="finite and >= 0"):
        F.adaptive_beta_update(1.0, float("nan"), 0.1)


@pytest.mark.parametrize(
    "rho, match",
    [
        (torch.tensor([0.5, 0.6]), "probability distribution"),
        (torch.tensor([1.2, -0.2]), "probability distribution"),
        (torch.tensor([float("nan"), 1.0]), "probability distribution"),
        (torch.full((2, 2), 0.25), "1-D tensor"),
        (torch.tensor([0.5, 0.5]), "shape \\[3\\]"),
    ],
)
def test_bad_prior(rho, match):
    with pytest.raises(ValueError, match=match):
        check_prior(rho, 3 if match.startswith("shape") else None)


def test_prior_update_batched_priors():
    rho = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    pi = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(F.prior_update(rho, pi, 0.5), torch.tensor([[0.75, 0.25], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="pi must have shape"):
        F.prior_update(rho, torch.ones(2, 3, 4, 2) / 2, 0.5)


def test_prior_update_never_underflows_to_zero_or_subnormal():
    rho = torch.tensor([0.5, 0.5, 0.0])
    pi = torch.tensor([1.0, 0.0, 0.0]).expand(20000, 3)
    new = F.prior_update(rho, pi, 0.01)  # 0.5 * 0.99 ** 20000 ~ 1e-88 underflows float32
    assert new[1].item() == torch.finfo(torch.float32).tiny
    assert new[2].item() == 0.0  # excluded on purpose: stays excluded


def test_beta_held_as_a_tensor_gives_the_float_results():
    """A float32 beta buffer (MIRL's adaptive beta) read as a tensor, without a host sync, gives the
    values of the same beta read as a Python float, also in float64."""
    q = torch.tensor([[1.0, 2.0, -0.5], [0.3, 0.3, 4.0]], dtype=torch.float64)
    rho = torch.tensor([0.2, 0.5, 0.3])
    beta = torch.tensor(33.3)  # not exactly 33.3 in float32: both paths must use this value
    for fn in (F.prior_soft_value, F.prior_log_policy, F.prior_boltzmann_policy, F.kl_to_prior):
        assert torch.equal(fn(q, rho, beta), fn(q, rho, float(beta)))
