"""Deep <-> tabular bridge for VIREL: DiscreteVIRELLoss, fitted exactly, reproduces virel_iteration.

Same set-up as ``test_bridge.py``: a tabular network, every transition of the MDP weighted by
``P(s'|s, a)``, the l2 loss fitted to convergence (L-BFGS) between hard target updates, so that each
fit applies the evaluation operator of the Boltzmann policy once: the ``"one_step"`` form of
:func:`torchrl_reg.tabular.virel.virel_iteration`. After each target update the loss estimates its
temperature on the full batch (``update_temperature``, the ``"replay"`` estimator) from the q-values
and the temperature it holds, as the oracle does.

With deterministic transitions the sampled Bellman error ``y - q`` is the exact residual
``T q - q``, so the deep temperature is the oracle's and the whole scheme must match. With random
transitions the sampled estimate is ``E_{s'}|y - q|^p``, larger than the oracle's ``|E y - q|^p``
(for p = 2 by the variance of the target, which does not vanish at q*): there the test hands the
loss the oracle's temperatures and checks the evaluation step alone, and checks the bias.
"""
from __future__ import annotations

import pytest
import torch
from torchrl.objectives import HardUpdate

from tests.tabular.test_bridge import GAMMA, _full_batch, _online_q, _tabular_actor
from tests.tabular.test_mirl_bridge import _fit
from torchrl_reg.objectives.virel import DiscreteVIRELLoss
from torchrl_reg.tabular.mdp import garnet
from torchrl_reg.tabular.virel import virel_iteration, virel_temperature

NUM_ITERATIONS = 12


def _make_loss(mdp, c, p, initial_temperature):
    loss = DiscreteVIRELLoss(
        _tabular_actor(mdp, seed=0), c=c, p=p, initial_temperature=initial_temperature,
        loss_function="l2", reduction="sum",
    ).double()
    loss.make_value_estimator(gamma=mdp.gamma)
    return loss


@pytest.mark.parametrize("seed", [0, 1])
# initial temperatures exact in float32, the dtype the buffer is created in.
@pytest.mark.parametrize("p, c, initial_temperature", [(2, 1.0, 1.0), (1, 0.5, 0.0), (2, 10.0, 0.375)])
def test_discrete_virel_loss_reproduces_tabular_virel_deterministic(seed, p, c, initial_temperature):
    mdp = garnet(6, 3, 1, gamma=GAMMA, seed=seed)
    loss = _make_loss(mdp, c, p, initial_temperature)
    batch = _full_batch(mdp)
    updater = HardUpdate(loss, value_network_update_interval=0)
    q0 = _online_q(loss)
    fitted, temperatures = [], []
    for _ in range(NUM_ITERATIONS):
        updater.step()
        temperatures.append(loss.update_temperature(batch).item())
        _fit(loss, batch)
        fitted.append(_online_q(loss))
    exact = virel_iteration(
        mdp, c=c, p=p, num_iterations=NUM_ITERATIONS, evaluation="one_step", q0=q0, temperature0=initial_temperature
    )
    assert torch.allclose(torch.tensor(temperatures, dtype=torch.float64), exact.temperatures, atol=1e-10, rtol=1e-9)
    assert torch.allclose(torch.stack(fitted), exact.q, atol=1e-10, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_discrete_virel_loss_evaluation_step_on_random_transitions(seed):
    mdp = garnet(6, 3, 2, gamma=GAMMA, seed=seed)
    loss = _make_loss(mdp, 1.0, 2, 0.0)
    batch = _full_batch(mdp)
    updater = HardUpdate(loss, value_network_update_interval=0)
    q0 = _online_q(loss)
    exact = virel_iteration(mdp, c=1.0, p=2, num_iterations=NUM_ITERATIONS, evaluation="one_step", q0=q0)
    previous = 0.0
    for k in range(NUM_ITERATIONS):
        updater.step()
        q_k = _online_q(loss)
        sampled = loss.update_temperature(batch).item()
        # The sampled estimate E_{s'}|y - q|^2 bounds the exact |E y - q|^2 from above.
        assert sampled >= virel_temperature(mdp, q_k, previous, c=1.0, p=2) - 1e-12
        loss.temperature.fill_(exact.temperatures[k].item())
        previous = exact.temperatures[k].item()
        _fit(loss, batch)
        assert torch.allclose(_online_q(loss), exact.q[k], atol=1e-10, rtol=0)
