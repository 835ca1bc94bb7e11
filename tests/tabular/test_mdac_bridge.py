"""Deep <-> tabular bridge for MDAC: ``MDACLoss`` on exact tabular data gives the tabular iterate.

Tabular networks (one-hot states, float64): critics ``Q(s, a) = W[s, a]`` (both twins and their targets set
to ``q_k``) and a categorical actor with logits ``q_k / alpha``, i.e. ``pi_{k+1} = softmax(q_k / alpha)``. The
actor has a finite support, so the loss takes the exact expectation over ``a' ~ pi_{k+1}(.|s')``; averaging its
target over ``s' ~ P(.|s, a)`` must then give :func:`~torchrl_reg.tabular.mdac.bounded_advantage_learning`'s
``q_{k+1}`` to float64 precision, for every bounding function, shared by both log-density terms or one per term.
"""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Categorical
from torchrl.modules import ProbabilisticActor

from torchrl_reg.objectives import MDACLoss
from torchrl_reg.tabular.mdac import bounded_advantage_learning
from torchrl_reg.tabular.mdp import FiniteMDP, garnet

F64 = torch.float64
# TorchRL's TD0Estimator stores gamma as a float32 buffer: 0.875 is exact in float32.
GAMMA = 0.875


class _TabularQ(nn.Module):
    def __init__(self, num_states: int, num_actions: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(num_states, num_actions, dtype=F64))

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return (observation @ self.table).gather(-1, action.long().unsqueeze(-1))


class _TabularLogits(nn.Module):
    def __init__(self, num_states: int, num_actions: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(num_states, num_actions, dtype=F64))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return observation @ self.table


def _loss(mdp: FiniteMDP, *, beta: float, alpha: float, **bounds) -> MDACLoss:
    num_states, num_actions = mdp.rewards.shape
    actor = ProbabilisticActor(
        TensorDictModule(_TabularLogits(num_states, num_actions), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"],
        distribution_class=torch.distributions.Categorical,
        spec=Categorical(num_actions),
    )
    critic = TensorDictModule(
        _TabularQ(num_states, num_actions), in_keys=["observation", "action"], out_keys=["state_action_value"]
    )
    loss = MDACLoss(actor, critic, beta=beta, **bounds, alpha_init=alpha, fixed_alpha=True)
    loss.make_value_estimator(gamma=GAMMA)
    return loss


def _full_batch(mdp: FiniteMDP) -> TensorDict:
    s, a, s_next = (mdp.transitions > 0).nonzero(as_tuple=True)
    eye = torch.eye(mdp.num_states, dtype=F64)
    no = torch.zeros(s.shape[0], 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": eye[s],
            "action": a,
            ("next", "observation"): eye[s_next],
            ("next", "reward"): mdp.rewards[s, a].unsqueeze(-1),
            ("next", "done"): no,
            ("next", "terminated"): no,
        },
        [s.shape[0]],
    ), (s, a, s_next)


def _set_tables(loss: MDACLoss, q: torch.Tensor, alpha: float) -> None:
    with torch.no_grad():
        for params in (loss.qvalue_network_params, loss.target_qvalue_network_params):
            params.apply(lambda p: p.data.copy_(q.expand_as(p)))
        loss.actor_network_params.apply(lambda p: p.data.copy_(q / alpha))


#: The bounding functions, shared by both terms or per term, as MDACLoss and the tabular scheme both take them.
BOUNDS = [
    {"bound": "tanh"},
    {"bound": "tanh", "bound_scale": 1.0},
    {"bound": "clip", "bound_scale": 1.0},
    {"bound": "none"},
    {"bound_successor": "none"},  # bounds only the current term
    {"bound_current": "none"},  # bounds only the successor term
    {"bound_current": "clip", "bound_current_scale": 1.0, "bound_successor_scale": 2.0},
]


@pytest.mark.parametrize("bounds", BOUNDS, ids=lambda b: "-".join(f"{k}={v}" for k, v in b.items()))
def test_deep_target_on_exact_data_is_the_tabular_iterate(bounds):
    mdp = garnet(8, 3, 3, gamma=GAMMA, seed=4)
    beta, alpha = 0.75, 0.5
    q = torch.randn(mdp.rewards.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    tabular = bounded_advantage_learning(mdp, beta=beta, alpha=alpha, num_iterations=6, q0=q, **bounds)
    loss = _loss(mdp, beta=beta, alpha=alpha, **bounds)
    batch, (s, a, s_next) = _full_batch(mdp)
    weights = mdp.transitions[s, a, s_next]
    for k in range(tabular.num_iterations):
        _set_tables(loss, q, alpha)
        target = loss.target(batch.clone())
        expected = torch.zeros_like(q).index_put_((s, a), weights * target, accumulate=True)
        torch.testing.assert_close(expected, tabular.q[k], rtol=0, atol=1e-12)
        q = tabular.q[k]


def test_exact_actor_and_temperature_terms_on_tabular_data():
    # With the exact expectation the actor loss is sum_a pi (alpha ln pi - Q) and the entropy is exact.
    mdp = garnet(5, 3, 2, gamma=GAMMA, seed=2)
    alpha = 0.5
    loss = _loss(mdp, beta=0.5, alpha=alpha)
    q = torch.randn(mdp.rewards.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    _set_tables(loss, q, alpha)
    batch, (s, _, _) = _full_batch(mdp)
    out = loss.__class__.loss_and_outputs(loss, batch, loss._loss_params())[2]
    pi = torch.softmax(q / alpha, -1)
    log_pi = torch.log_softmax(q / alpha, -1)
    actor = (pi * (alpha * log_pi - q)).sum(-1)[s]
    entropy = -(pi * log_pi).sum(-1)[s]
    torch.testing.assert_close(out["loss_actor"], actor.mean(), rtol=0, atol=1e-12)
    torch.testing.assert_close(out["entropy"], entropy.mean(), rtol=0, atol=1e-12)

