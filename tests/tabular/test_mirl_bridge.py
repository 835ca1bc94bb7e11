"""Deep <-> tabular bridge for MIRL: MIRLLoss, fitted exactly, reproduces the oracle's MIRL scheme.

Same set-up as ``test_bridge.py`` (tabular network, every transition of the MDP weighted by
``P(s'|s, a)``, the l2 loss fitted to convergence between hard target updates), driven by
:func:`torchrl_reg.tabular.mirl.mirl_value_iteration` ([MIRL] Algorithm 1, tabular):

    pi_i      ∝ rho_i exp(beta_i Q_i)
    rho_{i+1} = (1 - alpha_rho) rho_i + alpha_rho sum_s nu(s) pi_i(.|s)
    Q_{i+1}   = T^{rho_{i+1}}_{soft, beta_i} Q_i,      beta_i = c * i

The deep side computes ``pi_i`` with ``loss.prior`` from its own q-values, takes beta from the
loss's linear schedule, and regresses on its own target. The prior update in expectation over
``nu`` is the oracle's (the deep update is per collected state); that the deep per-state update
is the oracle's update with ``nu`` a point mass is checked separately.
"""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives import HardUpdate

from tests.tabular.test_bridge import GAMMA, _full_batch, _online_q, _tabular_actor
from torchrl_reg.objectives.mirl import MIRLLoss
from torchrl_reg.tabular.mdp import garnet, mirl_grid_world
from torchrl_reg.tabular.mirl import linear_beta_schedule, mirl_prior_update, mirl_value_iteration

F64 = torch.float64
NUM_ITERATIONS = 12


def _fit(loss: MIRLLoss, batch: TensorDict) -> None:
    params = list(loss.value_network_params.values(True, True))
    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=50, tolerance_grad=1e-12, tolerance_change=0.0, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        value = loss(batch)["loss"]
        value.backward()
        return value

    optimizer.step(closure)


@pytest.mark.parametrize(
    "make_mdp",
    [lambda: garnet(6, 3, 2, gamma=GAMMA, seed=0), lambda: garnet(6, 3, 2, gamma=GAMMA, seed=1),
     lambda: mirl_grid_world(3, gamma=GAMMA)],
    ids=["garnet0", "garnet1", "grid3x3"],
)
def test_mirl_loss_reproduces_tabular_mirl_scheme(make_mdp):
    mdp = make_mdp()
    c, prior_lr = 0.5, 0.5
    loss = MIRLLoss(
        _tabular_actor(mdp, seed=0), beta=c, beta_schedule="linear", beta_slope=c, beta_max=1e6,
        loss_function="l2", reduction="sum",
    ).double()
    loss.make_value_estimator(gamma=mdp.gamma)
    # The uniform prior was built in float32 (1/3 rounded); restart it from the exact float64 one.
    loss.prior.set_rho(torch.full((mdp.num_actions,), 1.0 / mdp.num_actions, dtype=F64))
    updater = HardUpdate(loss, value_network_update_interval=0)
    batch = _full_batch(mdp)
    uniform_states = torch.full((mdp.num_states,), 1.0 / mdp.num_states, dtype=F64)
    q0 = _online_q(loss)
    exact = mirl_value_iteration(
        mdp, beta=linear_beta_schedule(c), num_iterations=NUM_ITERATIONS, prior_lr=prior_lr, q_lr=1.0, q0=q0,
        state_weighting="uniform",
    )
    for i in range(NUM_ITERATIONS):
        updater.step()
        assert float(loss.prior.beta) == pytest.approx(exact.betas[i].item(), rel=1e-12)
        pi = loss.prior.policy(_online_q(loss))
        torch.testing.assert_close(pi, exact.policies[i], atol=1e-9, rtol=0)
        loss.prior.set_rho(mirl_prior_update(loss.prior.rho, pi, uniform_states, prior_lr))
        _fit(loss, batch)
        torch.testing.assert_close(_online_q(loss), exact.q[i], atol=1e-9, rtol=0)
        torch.testing.assert_close(loss.prior.rho, exact.priors[i], atol=1e-12, rtol=0)
        loss.update_beta(None)
    # The prior moved away from uniform: the bridge exercised a non-trivial rho.
    assert (exact.priors[-1] - 1 / mdp.num_actions).abs().max() > 0.05


def test_per_state_prior_update_is_the_oracle_update_with_a_point_mass():
    mdp = garnet(5, 3, 2, gamma=GAMMA, seed=2)
    loss = MIRLLoss(_tabular_actor(mdp, seed=1), beta=2.0, prior_lr=0.3).double()
    rho = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
    loss.prior.set_rho(rho)
    eye = torch.eye(mdp.num_states, dtype=F64)
    for s in [3, 0, 4, 4, 1]:
        q = _online_q(loss)
        expected = mirl_prior_update(rho, loss.prior.policy(q), eye[s], 0.3)
        rho = loss.update_prior(TensorDict({"observation": eye[s : s + 1]}, [1])).clone()
        torch.testing.assert_close(rho, expected, atol=1e-12, rtol=0)
