"""Deep <-> tabular bridge: the deep losses, fitted exactly, reproduce the exact DP iterates.

A tabular network (one-hot states -> linear layer, no bias, float64) wrapped in TorchRL's
``QValueActor`` is trained with the real loss on a full batch holding every transition
``(s, a, s')`` of a finite MDP, each weighted by ``P(s'|s, a)``. With ``loss_function="l2"`` the
loss is then ``sum_{s,a,s'} P(s'|s,a) (q(s,a) - y(s,a,s'))^2``, whose minimizer is
``q(s,a) = E_{s'} y(s,a,s')``: one iteration of the exact scheme. Fitting it to convergence
(L-BFGS; the problem is an isotropic quadratic) between hard target updates must therefore
reproduce M-VI ([MRL] "Implicit KL regularization") for ``MunchausenDQNLoss`` and (persistent)
advantage learning for ``AdvantageLearningLoss``, iterate by iterate.
"""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import Categorical
from torchrl.modules import QValueActor
from torchrl.objectives import HardUpdate

from torchrl_reg.objectives.munchausen import AdvantageLearningLoss, MunchausenDQNLoss
from torchrl_reg.tabular.algorithms import advantage_learning, munchausen_vi
from torchrl_reg.tabular.mdp import FiniteMDP, garnet

F64 = torch.float64
NUM_TARGET_UPDATES = 15
# TorchRL's TD0Estimator stores gamma as a float32 buffer; 0.875 is exact in float32, so the
# float64 comparison is not limited by the rounding of gamma (0.9 would be off by 2.4e-8).
GAMMA = 0.875


def _full_batch(mdp: FiniteMDP) -> TensorDict:
    """Every transition with P(s'|s, a) > 0, its probability stored as the importance weight."""
    s, a, s_next = (mdp.transitions > 0).nonzero(as_tuple=True)
    eye = torch.eye(mdp.num_states, dtype=F64)
    batch = s.shape[0]
    no = torch.zeros(batch, 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": eye[s],
            "action": a,
            "priority_weight": mdp.transitions[s, a, s_next],
            ("next", "observation"): eye[s_next],
            ("next", "reward"): mdp.rewards[s, a].unsqueeze(-1),
            ("next", "done"): no,
            ("next", "terminated"): no,
        },
        [batch],
    )


def _tabular_actor(mdp: FiniteMDP, seed: int) -> QValueActor:
    torch.manual_seed(seed)
    net = nn.Linear(mdp.num_states, mdp.num_actions, bias=False, dtype=F64)
    return QValueActor(net, in_keys=["observation"], spec=Categorical(mdp.num_actions))


def _online_q(loss) -> torch.Tensor:
    """q[s, a] = W[a, s] for one-hot inputs."""
    (weight,) = loss.value_network_params.values(True, True)
    return weight.detach().T.clone()


def _fit_between_target_updates(loss, batch: TensorDict, manual_weights: bool) -> tuple[torch.Tensor, list]:
    """Hard-update the target, fit the online network to convergence, repeat.

    Returns the initial q-values and, for every target update, the fitted q-values and the loss
    output of the last evaluation. ``manual_weights`` weighs a ``reduction="none"`` loss by hand
    instead of letting the loss read ``priority_weight``.
    """
    # TorchRL's HardUpdate copies when its step counter (starting at 0) equals the interval, i.e.
    # on every (interval + 1)-th call: interval 0 copies on every call.
    updater = HardUpdate(loss, value_network_update_interval=0)
    params = list(loss.value_network_params.values(True, True))
    (target,) = loss.target_value_network_params.values(True, True)
    weights = batch.get("priority_weight")
    data = batch.exclude("priority_weight") if manual_weights else batch
    q0 = _online_q(loss)
    fitted, outputs = [], []
    for _ in range(NUM_TARGET_UPDATES):
        updater.step()
        assert torch.equal(target.data, params[0].data)
        # Stop on the gradient only: the loss changes like the square of the q error, so a
        # tolerance on its change would stop at q errors of ~1e-8.
        optimizer = torch.optim.LBFGS(
            params, lr=1.0, max_iter=50, tolerance_grad=1e-12, tolerance_change=0.0, line_search_fn="strong_wolfe"
        )

        def closure():
            optimizer.zero_grad()
            out = loss(data)
            value = (out["loss"] * weights).sum() if manual_weights else out["loss"]
            value.backward()
            return value

        optimizer.step(closure)
        fitted.append(_online_q(loss))
        outputs.append(loss(data))
    return q0, fitted, outputs


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "alpha, tau, clip_value_min, manual_weights",
    [(0.9, 0.03, -1.0, False), (0.9, 0.03, -math.inf, True), (0.5, 0.3, -1.0, True), (0.0, 0.1, -1.0, False)],
)
def test_munchausen_dqn_loss_reproduces_munchausen_vi(seed, alpha, tau, clip_value_min, manual_weights):
    mdp = garnet(6, 3, 2, gamma=GAMMA, seed=seed)
    loss = MunchausenDQNLoss(
        _tabular_actor(mdp, seed), alpha=alpha, tau=tau, clip_value_min=clip_value_min, clip_value_max=0.0,
        loss_function="l2", reduction="none" if manual_weights else "sum",
    )
    loss.make_value_estimator(gamma=mdp.gamma)
    q0, fitted, outputs = _fit_between_target_updates(loss, _full_batch(mdp), manual_weights)
    exact = munchausen_vi(
        mdp, alpha=alpha, tau=tau, num_iterations=NUM_TARGET_UPDATES, q0=q0,
        clip_value_min=clip_value_min, clip_value_max=0.0,
    )
    fitted = torch.stack(fitted)
    assert torch.allclose(fitted, exact.q, atol=1e-10, rtol=0)
    policies = torch.softmax(fitted / tau, -1)
    assert torch.allclose(policies[:-1], exact.policies[1:], atol=1e-4, rtol=0)
    if alpha > 0 and tau < 0.1 and clip_value_min == -1.0:
        # The clip is exercised, and the tabular M-VI clips identically.
        assert max(out["clip_fraction"].item() for out in outputs) > 0


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("persistent, manual_weights", [(False, False), (True, True), (True, False)])
def test_advantage_learning_loss_reproduces_advantage_learning(seed, persistent, manual_weights):
    mdp = garnet(6, 3, 2, gamma=GAMMA, seed=seed)
    loss = AdvantageLearningLoss(
        _tabular_actor(mdp, seed), alpha=0.9, persistent=persistent,
        loss_function="l2", reduction="none" if manual_weights else "sum",
    )
    loss.make_value_estimator(gamma=mdp.gamma)
    q0, fitted, _ = _fit_between_target_updates(loss, _full_batch(mdp), manual_weights)
    exact = advantage_learning(mdp, alpha=0.9, persistent=persistent, num_iterations=NUM_TARGET_UPDATES, q0=q0)
    fitted = torch.stack(fitted)
    assert torch.allclose(fitted, exact.q, atol=1e-10, rtol=0)
    greedy = torch.nn.functional.one_hot(fitted.argmax(-1), mdp.num_actions).to(F64)
    assert torch.equal(greedy[:-1], exact.policies[1:])
