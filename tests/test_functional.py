"""Functional core against numbers worked out by hand (scalar ``math``, not torch)."""
from __future__ import annotations

import math

import pytest
import torch

from torchrl_reg import functional as F
from torchrl_reg.objectives import ImplicitQLoss, MunchausenDQNLoss, MunchausenIQNLoss, SoftQLoss
from torchrl_reg.validation import check_beta, check_tau

Q = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
# tau = 1: log sum exp(1, 2, 3) = 3 + ln(1 + e^-1 + e^-2)
LSE_1 = 3 + math.log(1 + math.exp(-1) + math.exp(-2))
# tau = 0.5: 0.5 * log sum exp(2, 4, 6) = 0.5 * (6 + ln(1 + e^-2 + e^-4))
LSE_HALF = 0.5 * (6 + math.log(1 + math.exp(-2) + math.exp(-4)))


def test_soft_value_by_hand():
    assert F.soft_value(Q, 1.0).item() == pytest.approx(LSE_1, abs=1e-12)
    assert F.soft_value(Q, 0.5).item() == pytest.approx(LSE_HALF, abs=1e-12)


def test_scaled_log_policy_by_hand():
    expected = [1 - LSE_1, 2 - LSE_1, 3 - LSE_1]
    assert F.scaled_log_policy(Q, 1.0)[0].tolist() == pytest.approx(expected, abs=1e-12)
    # tau ln pi = q - V_tau
    expected_half = [1 - LSE_HALF, 2 - LSE_HALF, 3 - LSE_HALF]
    assert F.scaled_log_policy(Q, 0.5)[0].tolist() == pytest.approx(expected_half, abs=1e-12)


def test_soft_value_is_expectation_of_q_minus_tau_log_pi():
    # sum_a pi (q - tau ln pi), with pi computed naively
    for tau in (0.3, 1.0, 2.0):
        w = [math.exp(q / tau) for q in (1.0, 2.0, 3.0)]
        pi = [x / sum(w) for x in w]
        expected = sum(p * (q - tau * math.log(p)) for p, q in zip(pi, (1.0, 2.0, 3.0)))
        assert F.soft_value(Q, tau).item() == pytest.approx(expected, abs=1e-12)


def test_boltzmann_policy_and_entropy_by_hand():
    w = [math.exp(q) for q in (1.0, 2.0, 3.0)]
    pi = [x / sum(w) for x in w]
    assert F.boltzmann_policy(Q, 1.0)[0].tolist() == pytest.approx(pi, abs=1e-12)
    assert F.policy_entropy(Q, 1.0).item() == pytest.approx(-sum(p * math.log(p) for p in pi), abs=1e-12)


def test_munchausen_bonus_by_hand():
    a = torch.tensor([0])
    # tau ln pi(a=0) = 1 - LSE_1 = -2.4076 -> clipped to l0 = -1 -> 0.9 * -1
    assert F.munchausen_bonus(Q, a, alpha=0.9, tau=1.0).item() == pytest.approx(-0.9)
    a = torch.tensor([2])
    assert F.munchausen_bonus(Q, a, alpha=0.9, tau=1.0).item() == pytest.approx(0.9 * (3 - LSE_1), abs=1e-12)
    # a wider clip keeps the raw value
    a = torch.tensor([0])
    bonus = F.munchausen_bonus(Q, a, alpha=0.5, tau=1.0, clip_value_min=-10.0, clip_value_max=1.0)
    assert bonus.item() == pytest.approx(0.5 * (1 - LSE_1), abs=1e-12)


def test_munchausen_and_soft_targets_by_hand():
    r, discount = torch.tensor([0.5]), torch.tensor([0.9])
    q_t = torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64)
    v_t = 3 + math.log(1 + math.exp(-2) + math.exp(-3))
    a = torch.tensor([2])
    target = F.munchausen_target(r, discount, Q, a, q_t, alpha=0.9, tau=1.0)
    assert target.item() == pytest.approx(0.5 + 0.9 * (3 - LSE_1) + 0.9 * v_t, abs=1e-6)
    assert F.soft_q_target(r, discount, q_t, tau=1.0).item() == pytest.approx(0.5 + 0.9 * v_t, abs=1e-6)
    # alpha = 0 is Soft-DQN
    target0 = F.munchausen_target(r, discount, Q, a, q_t, alpha=0.0, tau=1.0)
    assert target0.item() == pytest.approx(0.5 + 0.9 * v_t, abs=1e-6)


def test_advantage_learning_targets_by_hand():
    r, discount = torch.tensor([1.0]), torch.tensor([0.5])
    q_tm1 = torch.tensor([[1.0, 4.0]])
    q_t = torch.tensor([[2.0, 6.0]])
    a = torch.tensor([0])
    # AL: 1 + 0.9 * (1 - 4) + 0.5 * 6 = 1.3
    assert F.advantage_learning_target(r, discount, q_tm1, a, q_t, alpha=0.9).item() == pytest.approx(1.3)
    # PAL: max(1.3, 1 + 0.5 * 6 - 0.9 * (6 - 2) = 0.4) = 1.3
    assert F.persistent_advantage_learning_target(r, discount, q_tm1, a, q_t, alpha=0.9).item() == pytest.approx(1.3)
    # action 1 is greedy at s_t (AL correction 0) but not at s_{t+1}: AL = 4, PAL = max(4, 4 - 0) = 4
    a = torch.tensor([1])
    assert F.persistent_advantage_learning_target(r, discount, q_tm1, a, q_t, alpha=0.9).item() == pytest.approx(4.0)
    # a case where the persistent term wins: q_tm1 gap 3 at a=0, q_t gap only 1 at a=0
    q_t = torch.tensor([[5.0, 6.0]])
    a = torch.tensor([0])
    # AL = 1 - 2.7 + 3 = 1.3; persistent = 1 + 3 - 0.9 * 1 = 3.1
    assert F.persistent_advantage_learning_target(r, discount, q_tm1, a, q_t, alpha=0.9).item() == pytest.approx(3.1)
    # terminal: no bootstrap and no persistent term: max(1 - 2.7, 1) = 1
    zero = torch.tensor([0.0])
    assert F.persistent_advantage_learning_target(r, zero, q_tm1, a, q_t, alpha=0.9).item() == pytest.approx(1.0)


def test_action_gap_by_hand():
    assert F.action_gap(torch.tensor([[1.0, 5.0, 3.5]])).item() == pytest.approx(1.5)


@pytest.mark.parametrize("tau", [1e-4, 1e-3, 1e-2, 0.03, 1.0, 10.0])
@pytest.mark.parametrize("scale", [1.0, 1e2, 1e4])
def test_finite_in_float32(tau, scale):
    g = torch.Generator().manual_seed(0)
    q = (torch.randn(64, 18, generator=g) * scale).float()
    q[0] = scale  # ties
    q[1, 0] = -scale
    for out in (F.scaled_log_policy(q, tau), F.soft_value(q, tau), F.boltzmann_policy(q, tau), F.policy_entropy(q, tau)):
        assert torch.isfinite(out).all()
    log_pi = F.scaled_log_policy(q, tau)
    assert (log_pi <= 0).all()
    # the greedy action has log-policy within [-tau ln |A|, 0]
    best = log_pi.gather(-1, q.argmax(-1, keepdim=True))
    assert (best >= -tau * math.log(18) - 1e-3 * scale * 1e-3).all()
    # soft value lies between max q and max q + tau ln |A|
    v = F.soft_value(q, tau)
    q_max = q.max(-1).values
    assert (v >= q_max - 1e-6 * scale).all() and (v <= q_max + tau * math.log(18) + 1e-6 * scale).all()


def test_large_q_small_differences_survive_in_float32():
    # Two actions 1e-3 apart at magnitude 1e4, tau = 1e-3: pi = softmax([1, 0]) exactly.
    q = torch.tensor([[1e4 + 1e-3 * 0, 1e4 - 1e-3]], dtype=torch.float32)
    diff = (q[0, 0] - q[0, 1]).item()  # what float32 actually holds
    expected = -1e-3 * math.log(1 + math.exp(-diff / 1e-3))
    assert F.scaled_log_policy(q, 1e-3)[0, 0].item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_tau_is_refused_by_its_owners(tau):
    """The functions trust their callers (rlax style); each owner of a tau refuses it once."""
    for loss in (MunchausenDQNLoss, MunchausenIQNLoss, SoftQLoss):
        with pytest.raises(ValueError, match=r"loss\.tau must be a finite number in \[0.0001, 10.0\]"):
            loss.check_arguments({"tau": tau}, prefix="loss.")
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        ImplicitQLoss.check_arguments({"tau": tau})  # estimators and policies: check_tau (tests/value, tests/modules)


def test_tensor_temperatures_pass_through_the_equations_but_not_the_checks():
    """0-dim tensor temperatures (MIRL's beta buffer) go through the equations without a host sync;
    the checks that guard constructors and setters still refuse bad values given as tensors."""
    q = torch.tensor([[1.0, 2.0, 0.5]])
    torch.testing.assert_close(F.soft_value(q, torch.tensor(0.3)), F.soft_value(q, 0.3))
    with pytest.raises(ValueError, match="tau must be a finite number > 0, got tau=-1.0"):
        check_tau(torch.tensor(-1.0))
    with pytest.raises(ValueError, match="beta must be a finite number > 0, got beta=0.0"):
        check_beta(torch.tensor(0.0))


# MVI(q): the q-logarithm, the Tsallis policy and the Munchausen target with the Tsallis KL (Zhu et al., NeurIPS 2023).


def test_q_logarithm_and_q_exponential_by_hand():
    x = torch.tensor([0.5, 0.25, 0.125, 1.0], dtype=torch.float64)
    # ln_2 x = (x^-1 - 1) / (1 - 2) = 1 - 1/x
    assert F.q_logarithm(x, 2.0).tolist() == [-1.0, -3.0, -7.0, 0.0]
    torch.testing.assert_close(F.q_logarithm(x, 1.0), torch.log(x), rtol=0, atol=0)
    # pseudo-additivity at q = 2: ln_2(0.5 * 0.25) = -1 - 3 + (1 - 2)(-1)(-3) = -7
    assert F.q_logarithm(x[:1] * x[1:2], 2.0).item() == -1.0 - 3.0 - (-1.0) * (-3.0)
    # exp_2 y = [1 - y]_+^-1: the inverse of ln_2 on its range
    assert F.q_exponential(torch.tensor([-1.0, -3.0, 0.0], dtype=torch.float64), 2.0).tolist() == [0.5, 0.25, 1.0]
    torch.testing.assert_close(F.q_exponential(F.q_logarithm(x, 1.5), 1.5), x)
    torch.testing.assert_close(F.q_exponential(x, 1.0), torch.exp(x), rtol=0, atol=0)


def test_tsallis_entropy_by_hand():
    uniform = torch.full((2,), 0.5, dtype=torch.float64)
    assert F.tsallis_entropy(uniform, 2.0).item() == 0.5  # 1 - (1/4 + 1/4)
    assert F.tsallis_entropy(uniform, 1.0).item() == pytest.approx(math.log(2), abs=1e-15)
    sparse = torch.tensor([0.75, 0.25, 0.0], dtype=torch.float64)
    assert F.tsallis_entropy(sparse, 2.0).item() == 1 - 0.5625 - 0.0625
    # -<pi^q, ln_q pi> on the support is the same number
    assert -(sparse[:2] ** 2 * F.q_logarithm(sparse[:2], 2.0)).sum().item() == pytest.approx(0.375, abs=1e-15)


def test_sparsemax_policy_and_threshold_by_hand():
    q = torch.tensor([[1.0, 0.5, -3.0], [1.0, 0.5, -3.0]], dtype=torch.float64)
    # tau = 1: z = (1, .5, -3); 1 + 2(.5) = 2 > 1.5 keeps two actions, 1 + 3(-3) < -1.5 drops the third;
    # threshold (1.5 - 1) / 2 = .25, pi = (.75, .25, 0), psi = threshold + 1 = 1.25
    value, pi = F.tsallis_value_and_policy(q[:1], 1.0, 2.0)
    assert pi.tolist() == [[0.75, 0.25, 0.0]] and value.tolist() == [1.25]
    # tau = .5: z = (2, 1, -6); 1 + 2(1) = 3 is not > 3: one action, threshold 1, psi = 2, value = max q
    value, pi = F.tsallis_value_and_policy(q[:1], 0.5, 2.0)
    assert pi.tolist() == [[1.0, 0.0, 0.0]] and value.tolist() == [1.0]
    # the value is the bootstrap <pi, q> + tau S_2(pi) (1.0 + 0.5 (1 - 1) = 1.0; 0.875 + 1 (1 - .625) = 1.25)
    for tau in (0.5, 1.0, 3.0):
        value, pi = F.tsallis_value_and_policy(q + 100.0, tau, 2.0)  # and it shifts with q
        torch.testing.assert_close(value, (pi * (q + 100.0)).sum(-1) + tau * F.tsallis_entropy(pi, 2.0), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"entropic_index must be one of \(1.0, 2.0\)"):
        F.tsallis_value_and_policy(q, 1.0, 3.0)


def test_tsallis_munchausen_target_by_hand_and_at_q_one_is_m_dqns():
    q = torch.tensor([[1.0, 0.5, -3.0], [1.0, 0.5, -3.0]], dtype=torch.float64)
    r, discount, a = torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([0.9, 0.0], dtype=torch.float64), torch.tensor([1, 2])
    target = F.tsallis_munchausen_target(r, discount, q, a, q, alpha=0.9, tau=1.0, entropic_index=2.0)
    # action 1: tau ln_2 pi = q - tau psi = .5 - 1.25 = -.75, bonus .9 (-.75); bootstrap .9 (1.25)
    # action 2: -3 - 1.25 = -4.25 clipped to -1, bonus -.9; terminal, no bootstrap
    torch.testing.assert_close(target, torch.tensor([0.5 - 0.675 + 1.125, 0.5 - 0.9], dtype=torch.float64), rtol=0, atol=1e-15)
    torch.manual_seed(0)
    q_tm1, q_t = torch.randn(64, 5, dtype=torch.float64) * 3, torch.randn(64, 5, dtype=torch.float64) * 3
    r, discount, a = torch.randn(64, dtype=torch.float64), torch.rand(64, dtype=torch.float64), torch.randint(5, (64,))
    for alpha, tau in ((0.9, 0.03), (0.5, 2.0)):
        assert torch.equal(
            F.tsallis_munchausen_target(r, discount, q_tm1, a, q_t, alpha=alpha, tau=tau, entropic_index=1.0),
            F.munchausen_target(r, discount, q_tm1, a, q_t, alpha=alpha, tau=tau),
        )
