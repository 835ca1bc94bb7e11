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
