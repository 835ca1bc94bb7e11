"""SoftTD0Estimator: registered by name, n-step aware, terminal vs truncated."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import Categorical
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss
from torchrl.objectives.utils import build_value_estimator

from torchrl_reg.value import RegValueEstimators, SoftTD0Estimator


def make_actor() -> QValueActor:
    net = nn.Linear(2, 3)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        net.bias.zero_()
    return QValueActor(net, in_keys=["observation"], spec=Categorical(3))


def batch() -> TensorDict:
    return TensorDict(
        {
            "observation": torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]),
            "action": torch.tensor([0, 1, 2]),
            ("next", "observation"): torch.tensor([[1.0, 2.0], [0.0, 0.0], [1.0, 1.0]]),
            ("next", "reward"): torch.tensor([[1.0], [2.0], [-1.0]]),
            ("next", "done"): torch.tensor([[False], [True], [True]]),
            ("next", "terminated"): torch.tensor([[False], [False], [True]]),
            "steps_to_next_obs": torch.tensor([[1], [2], [1]]),
        },
        [3],
    )


def soft_v(qs, tau):
    return tau * math.log(sum(math.exp(q / tau) for q in qs))


def test_value_estimate_by_hand():
    est = SoftTD0Estimator(gamma=0.5, tau=0.5, value_network=make_actor())
    target = est.value_estimate(batch()).squeeze(-1)
    # next q-values: [1, 2, 3], [0, 0, 0], [1, 1, 2]
    expected = [
        1.0 + 0.5 * soft_v([1, 2, 3], 0.5),
        2.0 + 0.5**2 * soft_v([0, 0, 0], 0.5),  # truncated: still bootstraps, 2 steps
        -1.0,  # terminated: reward only
    ]
    assert target.tolist() == pytest.approx(expected, abs=1e-5)


def test_forward_writes_advantage():
    est = SoftTD0Estimator(gamma=0.5, tau=0.5, value_network=make_actor())
    td = est(batch())
    q_taken = [0.0, 0.0, 2.0]  # q(s, a) of the taken actions: W s for s = (0,0), (1,0), (0,2)
    assert (td["value_target"] - td["advantage"]).squeeze(-1).tolist() == pytest.approx(q_taken, abs=1e-6)


def test_registered_by_name_and_plugs_into_dqn_loss():
    loss = DQNLoss(make_actor(), action_space="categorical", loss_function="l2", reduction="none", delay_value=False)
    est = build_value_estimator(loss, "softtd0", gamma=0.5, tau=0.5)
    assert isinstance(est, SoftTD0Estimator)
    assert build_value_estimator(loss, RegValueEstimators.SoftTD0, tau=2.0).tau == 2.0
    loss.make_value_estimator(SoftTD0Estimator, gamma=0.5, tau=0.5, value_network=loss.value_network)
    td = batch()
    out = loss(td)["loss"].detach()
    targets = [1.0 + 0.5 * soft_v([1, 2, 3], 0.5), 2.0 + 0.25 * soft_v([0, 0, 0], 0.5), -1.0]
    expected = [(q - t) ** 2 for q, t in zip([0.0, 0.0, 2.0], targets)]
    assert out.tolist() == pytest.approx(expected, abs=1e-4)


def test_bad_tau():
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        SoftTD0Estimator(gamma=0.9, tau=0.0, value_network=make_actor())
