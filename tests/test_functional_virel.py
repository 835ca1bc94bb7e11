"""VIREL's functional pieces ([VIREL] arXiv 1811.01132, Section 3) against numbers worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from torchrl_reg import functional as F
from torchrl_reg.objectives import DiscreteVIRELLoss, VIRELLoss

F64 = torch.float64


def test_bellman_error_temperature_by_hand():
    td = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=F64)
    # p = 2: c/2 * mean(1, 4, 0.25, 0) = c/2 * 1.3125; p = 1: c * mean(1, 2, 0.5, 0) = c * 0.875
    assert F.bellman_error_temperature(td, c=0.5, p=2).item() == pytest.approx(0.25 * 1.3125, abs=1e-15)
    assert F.bellman_error_temperature(td, c=3.0, p=1).item() == pytest.approx(3 * 0.875, abs=1e-15)
    weights = torch.tensor([1.0, 0.0, 3.0, 0.0], dtype=F64)
    # weighted: (1 * 1 + 3 * 0.25) / 4 = 0.4375
    assert F.bellman_error_temperature(td, c=2.0, p=2, weights=weights).item() == pytest.approx(0.4375, abs=1e-15)


def test_boltzmann_pieces_by_hand():
    q = torch.tensor([[1.0, 2.0, 4.0]], dtype=F64)
    w = [math.exp(x / 0.5) for x in (1.0, 2.0, 4.0)]
    pi = [x / sum(w) for x in w]
    assert F.boltzmann_policy_at_temperature(q, 0.5)[0].tolist() == pytest.approx(pi, abs=1e-15)
    value = sum(p * x for p, x in zip(pi, (1.0, 2.0, 4.0)))
    assert F.boltzmann_expected_value(q, 0.5).item() == pytest.approx(value, abs=1e-14)
    target = F.boltzmann_evaluation_target(
        torch.tensor([0.3], dtype=F64), torch.tensor([0.9], dtype=F64), q, temperature=torch.tensor(0.5)
    )
    assert target.item() == pytest.approx(0.3 + 0.9 * value, abs=1e-14)


def test_zero_temperature_is_the_greedy_limit_with_shared_ties():
    q = torch.tensor([[1.0, 3.0, 3.0, -1e4]], dtype=torch.float32)
    for temperature in (0.0, torch.tensor(0.0)):
        assert F.boltzmann_policy_at_temperature(q, temperature)[0].tolist() == [0.0, 0.5, 0.5, 0.0]
        assert F.boltzmann_expected_value(q, temperature).item() == 3.0
    # A tiny positive temperature is finite too (no NaN from 0/0 or inf - inf).
    assert torch.isfinite(F.boltzmann_policy_at_temperature(q, 1e-30)).all()


# The functions trust their callers (rlax style): c, p and the temperature are refused once, by the losses
# that take them from a user (and, for the config, through the same check with the key's name).
@pytest.mark.parametrize("loss", [VIRELLoss, DiscreteVIRELLoss])
@pytest.mark.parametrize("c", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_c_is_refused_by_the_losses(loss, c):
    with pytest.raises(ValueError, match=r"loss\.c must be a finite number > 0"):
        loss.check_arguments({"c": c}, prefix="loss.")


@pytest.mark.parametrize("p", [0, 3, 1.5, True, "2"])
def test_bad_p_is_refused_by_the_losses(p):
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        VIRELLoss.check_arguments({"p": p})


@pytest.mark.parametrize("temperature", [-0.1, float("nan"), float("inf")])
def test_bad_initial_temperature_is_refused_by_the_losses(temperature):
    with pytest.raises(ValueError, match="initial_temperature must be a finite number >= 0"):
        DiscreteVIRELLoss.check_arguments({"initial_temperature": temperature})
