"""Tests of ImplicitQLoss against independent computations of Eq. (1)-(2) of the IQ paper."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Bounded, OneHot
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import SoftUpdate
from torchrl.objectives.utils import ValueEstimators

from torchrl_reg.functional import boltzmann_policy, soft_value
from torchrl_reg.modules.policies import (
    FactorizedCategorical,
    categorical_policy,
    multicategorical_policy,
    tanh_normal_policy,
)
from torchrl_reg.objectives.implicit_q import ImplicitQLoss
from torchrl_reg.tabular.algorithms import implicit_q_dp
from torchrl_reg.tabular.mdp import garnet

OBS, D, N, B = 3, 2, 4, 6
LOW, HIGH = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 3.0])


def _policy_net() -> nn.Module:
    return nn.Sequential(nn.Linear(OBS, 16), nn.Tanh(), nn.Linear(16, D * N), nn.Unflatten(-1, (D, N)))


def _value_net() -> nn.Module:
    return nn.Sequential(nn.Linear(OBS, 16), nn.Tanh(), nn.Linear(16, 1))


def _actor(net: nn.Module) -> ProbabilisticActor:
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["logits"])
    return ProbabilisticActor(
        module,
        in_keys=["logits"],
        distribution_class=FactorizedCategorical,
        distribution_kwargs={"low": LOW, "high": HIGH},
    )


def _perturb(net: nn.Module) -> nn.Module:
    net = copy.deepcopy(net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def _setup(seed: int = 0, **kwargs):
    """A loss whose target networks differ from the online ones, and plain copies of all four nets."""
    torch.manual_seed(seed)
    pnet, vnet = _policy_net(), _value_net()
    loss = ImplicitQLoss(_actor(pnet), ValueOperator(vnet, in_keys=["observation"]), **kwargs)
    pnet_bar, vnet_bar = _perturb(pnet), _perturb(vnet)
    loss.target_policy_network_params.data.update_(TensorDict.from_module(_actor(pnet_bar)).data)
    loss.target_value_network_params.data.update_(
        TensorDict.from_module(ValueOperator(vnet_bar, in_keys=["observation"])).data
    )
    return loss, pnet, vnet, pnet_bar, vnet_bar


def _batch(seed: int = 1, steps: bool = False) -> tuple[TensorDict, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(N, (B, D), generator=g)
    # Grid written out by hand: low + (high - low) * i / (n - 1).
    action = LOW + (HIGH - LOW) * index / (N - 1)
    terminated = torch.tensor([0, 1, 0, 0, 1, 0], dtype=torch.bool).unsqueeze(-1)
    truncated = torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.bool).unsqueeze(-1)  # bootstraps
    data = TensorDict(
        {
            "observation": torch.randn(B, OBS, generator=g),
            "action": action,
            "next": {
                "observation": torch.randn(B, OBS, generator=g),
                "reward": torch.randn(B, 1, generator=g),
                "terminated": terminated,
                "done": terminated | truncated,
            },
        },
        [B],
    )
    if steps:
        data["steps_to_next_obs"] = torch.tensor([1, 2, 3, 1, 2, 3]).unsqueeze(-1)
    return data, index


def _log_pi(net: nn.Module, obs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(net(obs), -1).gather(-1, index.unsqueeze(-1)).squeeze(-1).sum(-1)


def _reference(data, index, pnet, vnet, pnet_bar, vnet_bar, *, tau, alpha, gamma, bootstrap="target", clip=None):
    """Eq. (2), term by term, from the plain networks (``clip=(l0, u)``: M-DQN's clip of tau ln pi)."""
    obs, next_obs = data["observation"], data["next", "observation"]
    r = data["next", "reward"].squeeze(-1)
    not_terminal = (~data["next", "terminated"]).squeeze(-1).float()
    steps = data.get("steps_to_next_obs", torch.ones(B, 1)).squeeze(-1)
    with torch.no_grad():
        scaled = tau * _log_pi(pnet_bar, obs, index)
        if clip is not None:
            scaled = torch.minimum(torch.maximum(scaled, torch.tensor(clip[0])), torch.tensor(clip[1]))
        munchausen = alpha * scaled
    next_v = (vnet_bar if bootstrap == "target" else vnet)(next_obs).squeeze(-1)
    if bootstrap == "target":
        next_v = next_v.detach()
    y = r + munchausen + gamma**steps * not_terminal * next_v
    q = tau * _log_pi(pnet, obs, index) + vnet(obs).squeeze(-1)
    return y, q


def _check_loss_and_gradients(loss, data, y, q, pnet, vnet):
    """The loss is mean((y - q)^2) of the reference target and implicit Q, with the same gradients; returns its output."""
    expected = ((y - q) ** 2).mean()
    params = list(pnet.parameters()) + list(vnet.parameters())
    expected_grads = torch.autograd.grad(expected, params)
    out = loss(data)
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    for p, g in zip(params, expected_grads):
        torch.testing.assert_close(p.grad, g)
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.9])
@pytest.mark.parametrize("bootstrap", ["target", "online"])
@pytest.mark.parametrize("steps", [False, True])
def test_loss_and_gradients_match_eq2_computed_by_hand(alpha, bootstrap, steps):
    tau, gamma = 0.3, 0.9
    loss, pnet, vnet, pnet_bar, vnet_bar = _setup(tau=tau, alpha=alpha, bootstrap=bootstrap)
    loss.make_value_estimator(gamma=gamma)
    data, index = _batch(steps=steps)
    y, q = _reference(data, index, pnet, vnet, pnet_bar, vnet_bar, tau=tau, alpha=alpha, gamma=gamma, bootstrap=bootstrap)
    out = _check_loss_and_gradients(loss, data, y, q, pnet, vnet)
    torch.testing.assert_close(data["td_error"], (y - q).detach().pow(2).unsqueeze(-1))
    torch.testing.assert_close(out["implicit_q"], q.mean().detach())
    torch.testing.assert_close(out["state_value"], vnet(data["observation"]).mean().detach())
    torch.testing.assert_close(out["log_pi"], _log_pi(pnet, data["observation"], index).mean().detach())


@pytest.mark.parametrize("alpha", [0.0, 0.9])
def test_clipped_munchausen_term_matches_targets_computed_by_hand(alpha):
    tau, gamma, clip = 0.3, 0.9, (-0.9, -0.6)
    loss, pnet, vnet, pnet_bar, vnet_bar = _setup(tau=tau, alpha=alpha, clip_value_min=clip[0], clip_value_max=clip[1])
    loss.make_value_estimator(gamma=gamma)
    data, index = _batch()
    y, q = _reference(data, index, pnet, vnet, pnet_bar, vnet_bar, tau=tau, alpha=alpha, gamma=gamma, clip=clip)
    scaled = tau * _log_pi(pnet_bar, data["observation"], index).detach()
    outside = ((scaled < clip[0]) | (scaled > clip[1])).float()
    assert 0 < outside.mean() < 1  # the bounds bite on some samples, not all: both branches are exercised
    out = _check_loss_and_gradients(loss, data, y, q, pnet, vnet)
    torch.testing.assert_close(out["clip_fraction"], outside.mean())
    torch.testing.assert_close(out["munchausen_bonus"], (alpha * scaled.clamp(*clip)).mean())


def test_without_clip_the_bonus_is_eq2_and_nothing_is_clipped():
    tau, alpha = 0.3, 0.9
    loss, pnet, _, pnet_bar, _ = _setup(tau=tau, alpha=alpha)
    loss.make_value_estimator(gamma=0.9)
    data, index = _batch()
    out = loss(data)
    expected = alpha * tau * _log_pi(pnet_bar, data["observation"], index).detach()
    torch.testing.assert_close(out["munchausen_bonus"], expected.mean())
    assert out["clip_fraction"].item() == 0.0


def test_the_target_networks_are_really_used():
    # With targets equal to the online nets, the loss would differ: guards against a
    # target that is silently the online network.
    loss, pnet, vnet, pnet_bar, vnet_bar = _setup(tau=0.3, alpha=0.9)
    data, index = _batch()
    y_online, q = _reference(data, index, pnet, vnet, pnet, vnet, tau=0.3, alpha=0.9, gamma=0.99)
    assert not torch.allclose(loss(data)["loss"], ((y_online - q) ** 2).mean())


def test_terminated_cuts_the_bootstrap_and_truncated_does_not():
    loss, pnet, vnet, pnet_bar, vnet_bar = _setup(tau=0.3, alpha=0.0)
    loss.make_value_estimator(gamma=0.5)
    data, index = _batch()
    loss(data)
    q = (0.3 * _log_pi(pnet, data["observation"], index) + vnet(data["observation"]).squeeze(-1)).detach()
    r = data["next", "reward"].squeeze(-1)
    v_next = vnet_bar(data["next", "observation"]).squeeze(-1).detach()
    expected_y = torch.where(data["next", "terminated"].squeeze(-1), r, r + 0.5 * v_next)
    torch.testing.assert_close(data["td_error"], (expected_y - q).pow(2).unsqueeze(-1))
    assert data["next", "done"][2] and not data["next", "terminated"][2]


def test_implicit_q_is_exactly_the_softmax_relation():
    tau = 0.05
    loss, pnet, vnet, _, _ = _setup(tau=tau)
    obs = torch.randn(5, OBS)
    joint = torch.tensor(list(itertools.product(range(N), repeat=D)))  # all N**D joint actions
    actions = LOW + (HIGH - LOW) * joint / (N - 1)
    td = TensorDict(
        {"observation": obs.unsqueeze(1).expand(5, len(joint), OBS), "action": actions.expand(5, *actions.shape)},
        [5, len(joint)],
    )
    q = loss.implicit_q(td).detach()
    # pi(a|s) as the product of the per-dimension softmaxes, computed from the plain net.
    probs = torch.softmax(pnet(obs), -1).detach()
    pi = torch.ones(5, len(joint))
    for j in range(D):
        pi = pi * probs[:, j, joint[:, j]]
    torch.testing.assert_close(boltzmann_policy(q, tau), pi)
    torch.testing.assert_close(soft_value(q, tau), vnet(obs).squeeze(-1).detach())


def test_implicit_q_softmax_relation_with_a_categorical_policy():
    tau = 0.2
    torch.manual_seed(3)
    policy = categorical_policy(OBS, OneHot(5), num_cells=(8,))
    vnet = _value_net()
    loss = ImplicitQLoss(policy, ValueOperator(vnet, in_keys=["observation"]), tau=tau, alpha=0.0)
    obs = torch.randn(4, OBS)
    td = TensorDict({"observation": obs.unsqueeze(1).expand(4, 5, OBS), "action": torch.eye(5).expand(4, 5, 5)}, [4, 5])
    q = loss.implicit_q(td).detach()
    logits = policy(TensorDict({"observation": obs}, [4]))["logits"].detach()
    torch.testing.assert_close(boltzmann_policy(q, tau), torch.softmax(logits, -1))
    torch.testing.assert_close(soft_value(q, tau), vnet(obs).squeeze(-1).detach())


@pytest.mark.parametrize("make_policy", ["multicategorical", "categorical"])
def test_both_parametrizations_give_the_softmax_relation(make_policy):
    """softmax(F) and the scaled softmax(F / tau) of [IQ] Section 3.3 both give pi = softmax(Q / tau) and
    V = tau logsumexp(Q / tau) exactly, with pi computed by hand from the network outputs F."""
    tau = 0.05
    joint = torch.tensor(list(itertools.product(range(N), repeat=D)))
    actions = LOW + (HIGH - LOW) * joint / (N - 1)
    for scaled in (False, True):
        torch.manual_seed(4)
        if make_policy == "multicategorical":
            policy = multicategorical_policy(OBS, Bounded(LOW, HIGH, shape=(D,)), num_bins=N, num_cells=(8,), tau=tau if scaled else None)
            num_actions, action = len(joint), actions
        else:
            policy = categorical_policy(OBS, OneHot(5), num_cells=(8,), tau=tau if scaled else None)
            num_actions, action = 5, torch.eye(5)
        vnet = _value_net()
        loss = ImplicitQLoss(policy, ValueOperator(vnet, in_keys=["observation"]), tau=tau, alpha=0.0)
        obs = torch.randn(3, OBS)
        td = TensorDict(
            {"observation": obs.unsqueeze(1).expand(3, num_actions, OBS), "action": action.expand(3, *action.shape)},
            [3, num_actions],
        )
        q = loss.implicit_q(td).detach()
        net = policy.module[0].module
        outputs = (net[0] if scaled else net)(obs).detach()  # F, before any division by tau
        probs = torch.softmax(outputs / tau if scaled else outputs, -1)
        if make_policy == "multicategorical":
            pi = torch.ones(3, num_actions)
            for j in range(D):
                pi = pi * probs[:, j, joint[:, j]]
        else:
            pi = probs
        torch.testing.assert_close(boltzmann_policy(q, tau), pi)
        torch.testing.assert_close(soft_value(q, tau), vnet(obs).squeeze(-1).detach())


def test_a_policy_scaled_by_another_tau_is_refused():
    policy = multicategorical_policy(OBS, Bounded(LOW, HIGH, shape=(D,)), num_bins=N, num_cells=(8,), tau=0.02)
    value = ValueOperator(_value_net(), in_keys=["observation"])
    with pytest.raises(ValueError, match=r"tau=0\.02, but the loss has tau=0\.01"):
        ImplicitQLoss(policy, value, tau=0.01)
    ImplicitQLoss(policy, value, tau=0.02)  # the same tau: accepted


def test_gradients_reach_both_networks_and_never_the_targets():
    loss, pnet, vnet, _, _ = _setup(tau=0.1, alpha=0.9)
    updater = SoftUpdate(loss, eps=0.995)  # copies the online weights into the targets
    targets_before = (loss.target_policy_network_params.clone(), loss.target_value_network_params.clone())
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    data, _ = _batch()
    loss(data)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pnet.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vnet.parameters())
    n_params = len(list(pnet.parameters())) + len(list(vnet.parameters()))
    assert len(list(loss.parameters())) == n_params  # one optimizer over both networks, targets excluded
    for target in (loss.target_policy_network_params, loss.target_value_network_params):
        assert not any(t.requires_grad for t in target.values(True, True))
    optim.step()
    assert (loss.target_policy_network_params == targets_before[0]).all()
    assert (loss.target_value_network_params == targets_before[1]).all()
    updater.step()  # Polyak: target <- 0.995 target + 0.005 online
    for before, after, online in (
        (targets_before[0], loss.target_policy_network_params, loss.policy_network_params),
        (targets_before[1], loss.target_value_network_params, loss.value_network_params),
    ):
        for key, value in after.items(True, True):
            torch.testing.assert_close(value, 0.995 * before[key] + 0.005 * online[key].data)


def test_priority_weights_and_reduction_none():
    loss, pnet, vnet, pnet_bar, vnet_bar = _setup(tau=0.3, alpha=0.9, reduction="none")
    data, index = _batch()
    data["priority_weight"] = torch.linspace(0.1, 1.0, B)
    y, q = _reference(data, index, pnet, vnet, pnet_bar, vnet_bar, tau=0.3, alpha=0.9, gamma=0.99)
    out = loss(data)
    assert out.batch_size == (B,)
    torch.testing.assert_close(out["loss"], data["priority_weight"] * (y - q).detach() ** 2)
    torch.testing.assert_close(out["implicit_q"], q.detach())
    loss.reduction = "mean"
    w = data["priority_weight"]
    # TorchRL's weighted mean (as in DQNLoss and SACLoss): sum(w * l) / sum(w).
    torch.testing.assert_close(loss(data)["loss"], (w * (y - q) ** 2).sum() / w.sum())


def test_nested_keys_through_set_keys():
    loss, pnet, vnet, pnet_bar, vnet_bar = _setup(tau=0.3, alpha=0.9)
    data, index = _batch()
    y, q = _reference(data, index, pnet, vnet, pnet_bar, vnet_bar, tau=0.3, alpha=0.9, gamma=0.99)
    nested = data.clone()
    nested["agent", "action"] = nested.pop("action")
    nested["next", "agent", "reward"] = nested["next"].pop("reward")
    loss.set_keys(action=("agent", "action"), reward=("agent", "reward"), priority=("agent", "td_error"))
    out = loss(nested)
    torch.testing.assert_close(out["loss"], ((y - q) ** 2).mean())
    torch.testing.assert_close(nested["agent", "td_error"], (y - q).detach().pow(2).unsqueeze(-1))
    assert ("agent", "action") in loss.in_keys and ("next", "agent", "reward") in loss.in_keys


def test_gaussian_and_categorical_policies_train_through_the_loss():
    torch.manual_seed(4)
    spec = Bounded(low=-1.0, high=1.0, shape=(D,))
    for policy in (tanh_normal_policy(OBS, spec, num_cells=(8,)), multicategorical_policy(OBS, spec, num_cells=(8,))):
        loss = ImplicitQLoss(policy, ValueOperator(_value_net(), in_keys=["observation"]))
        data, _ = _batch()
        data["action"] = policy(data.select("observation"))["action"].detach()
        out = loss(data)
        out["loss"].backward()
        assert torch.isfinite(out["loss"]) and torch.isfinite(out["entropy"])
        assert all(p.grad is not None for p in loss.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": -0.1}, "tau"),
        ({"tau": float("inf")}, "tau"),
        ({"alpha": 1.0}, r"alpha must lie in \[0, 1\)"),
        ({"alpha": -0.1}, r"alpha must lie in \[0, 1\)"),
        ({"bootstrap": "residual"}, "bootstrap"),
        ({"loss_function": "huber"}, "loss_function"),
        ({"reduction": "avg"}, "reduction"),
        ({"use_prioritized_weights": "yes"}, "use_prioritized_weights"),
        ({"clip_value_min": -1.0}, "both clip_value_min and clip_value_max"),
        ({"clip_value_max": 0.0}, "both clip_value_min and clip_value_max"),
        ({"clip_value_min": 0.0, "clip_value_max": -1.0}, "clip_value_min must be <= clip_value_max"),
    ],
)
def test_bad_hyperparameters_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImplicitQLoss(_actor(_policy_net()), ValueOperator(_value_net(), in_keys=["observation"]), **kwargs)


def test_only_td0_value_estimator():
    loss = ImplicitQLoss(_actor(_policy_net()), ValueOperator(_value_net(), in_keys=["observation"]))
    with pytest.raises(NotImplementedError, match="TD1"):
        loss.make_value_estimator(ValueEstimators.TD1)



@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.0, 0.9])
@pytest.mark.parametrize("scaled", [False, True])
def test_tabular_full_batch_fitting_follows_the_iq_dp_oracle(alpha, scaled):
    """With tabular networks and the whole MDP as one weighted batch, minimizing Eq. (2) and then
    copying the targets is one step of IQ-DP (Eq. 3): the iterates must match the tabular oracle,
    with softmax(F) and with the scaled softmax(F / tau) alike."""
    num_iterations, tau = 3, 0.5
    mdp = garnet(4, 3, branching=2, gamma=0.8, seed=5)
    num_states, num_actions = mdp.num_states, mdp.num_actions
    torch.manual_seed(5)
    policy = categorical_policy(num_states, OneHot(num_actions), num_cells=(), tau=tau if scaled else None).double()
    value = ValueOperator(nn.Linear(num_states, 1), in_keys=["observation"]).double()
    loss = ImplicitQLoss(policy, value, tau=tau, alpha=alpha)
    loss.make_value_estimator(gamma=mdp.gamma)

    # One transition per (s, a, s') weighted by P(s'|s, a): the weighted least-squares
    # minimizer of Eq. (2) is then the expectation over s' of Eq. (3).
    s, a, s_next = mdp.transitions.nonzero(as_tuple=True)
    eye = torch.eye(num_states, dtype=torch.float64)
    data = TensorDict(
        {
            "observation": eye[s],
            "action": torch.eye(num_actions, dtype=torch.float64)[a],
            "priority_weight": mdp.transitions[s, a, s_next],
            "next": {
                "observation": eye[s_next],
                "reward": mdp.rewards[s, a].unsqueeze(-1),
                "done": torch.zeros(len(s), 1, dtype=torch.bool),
                "terminated": torch.zeros(len(s), 1, dtype=torch.bool),
            },
        },
        [len(s)],
    )

    def tables():
        with torch.no_grad():
            out = policy(TensorDict({"observation": eye}, [num_states]))
            return torch.log_softmax(out["logits"], -1), value(out)["state_value"].squeeze(-1)

    log_pi_1, v_0 = tables()  # the initial (target) networks are pi_1 and V_0
    oracle = implicit_q_dp(mdp, alpha=alpha, tau=tau, num_iterations=num_iterations + 1, q0=tau * log_pi_1 + v_0.unsqueeze(-1))
    optim = torch.optim.LBFGS(
        loss.parameters(), lr=1, max_iter=100, tolerance_grad=1e-13, tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optim.zero_grad()
        out = loss(data.clone())["loss"]
        out.backward()
        return out

    for k in range(num_iterations):
        optim.step(closure)
        log_pi, v = tables()  # pi_{k+2} and V_{k+1}
        torch.testing.assert_close(log_pi.exp(), oracle.policies[k + 1], atol=1e-6, rtol=0)
        torch.testing.assert_close(v, oracle.values[k], atol=1e-6, rtol=0)
        torch.testing.assert_close(tau * log_pi + v.unsqueeze(-1), oracle.q[k], atol=1e-6, rtol=0)
        loss.target_policy_network_params.data.copy_(loss.policy_network_params.data)
        loss.target_value_network_params.data.copy_(loss.value_network_params.data)
