from __future__ import annotations

import copy
import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Categorical, OneHot
from torchrl.modules import QValueActor
from torchrl.objectives import HardUpdate, SoftUpdate
from torchrl.objectives.utils import ValueEstimators

from torchrl_reg.modules.iqn import ImplicitQuantileNetwork
from torchrl_reg.functional import quantile_huber_loss
from torchrl_reg.objectives.iqn import IQNLoss, MunchausenIQNLoss

N, N_PRIME, K = 3, 4, 5  # distinct so that a fixed fraction set can be looked up by its size
B, OBS, A = 6, 4, 3
GAMMA = 0.9


# ---------------------------------------------------------------- quantile Huber


def test_quantile_huber_hand_computed():
    theta = torch.tensor([0.0, 1.0], requires_grad=True)
    target = torch.tensor([0.5, 3.0])
    fractions = torch.tensor([0.25, 0.75])
    # delta_ij = target_j - theta_i: (0.5, -0.5 | 3.0, 2.0); Huber(k=1): .125, .125 | 2.5, 1.5
    # weights |tau_i - 1{delta<0}|: .25, .25 | .25, .75 -> (0.0625 + 1.75) / 2
    loss = quantile_huber_loss(theta, target, fractions, kappa=1.0)
    torch.testing.assert_close(loss, torch.tensor(0.90625))
    loss.backward()
    # d/dtheta_0 = 0.5 * (0.25 * -0.5 + 0.25 * -1); d/dtheta_1 = 0.5 * (0.25 * 0.5 + 0.75 * -1)
    torch.testing.assert_close(theta.grad, torch.tensor([-0.1875, -0.3125]))
    # kappa = 2: Huber .125, .125 | 4.0, 2.0 -> (0.0625 + 2.5) / 2 / kappa
    loss2 = quantile_huber_loss(theta.detach(), target, fractions, kappa=2.0)
    torch.testing.assert_close(loss2, torch.tensor(0.640625))


def test_quantile_huber_batched_and_shared_fractions():
    theta = torch.randn(5, 3)
    target = torch.randn(5, 4)
    fractions = torch.rand(3)
    batched = quantile_huber_loss(theta, target, fractions.expand(5, 3))
    shared = quantile_huber_loss(theta, target, fractions)
    assert batched.shape == (5,)
    torch.testing.assert_close(batched, shared)
    for b in range(5):
        torch.testing.assert_close(batched[b], quantile_huber_loss(theta[b], target[b], fractions))
    with pytest.raises(ValueError, match="kappa must be a finite number > 0"):  # the loss owns kappa
        IQNLoss.check_arguments({"kappa": 0.0})


# ---------------------------------------------------------------- helpers


def _make_actor(seed: int = 0, action_spec=None) -> QValueActor:
    torch.manual_seed(seed)
    net = ImplicitQuantileNetwork.mlp(OBS, A, num_cells=(8,), embedding_dim=6, num_policy_quantiles=K)
    return QValueActor(net, in_keys=["observation"], spec=action_spec or Categorical(A))


def _data(seed: int = 1, terminated=None, truncated=None, steps=None, one_hot=False) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    term = torch.zeros(B, 1, dtype=torch.bool) if terminated is None else terminated.reshape(B, 1)
    trunc = torch.zeros(B, 1, dtype=torch.bool) if truncated is None else truncated.reshape(B, 1)
    action = torch.randint(0, A, (B,), generator=g)
    td = TensorDict(
        {
            "observation": torch.randn(B, OBS, generator=g),
            "action": torch.nn.functional.one_hot(action, A) if one_hot else action,
            "next": {
                "observation": torch.randn(B, OBS, generator=g),
                "reward": torch.randn(B, 1, generator=g),
                "done": term | trunc,
                "terminated": term,
                "truncated": trunc,
            },
        },
        [B],
    )
    if steps is not None:
        td["steps_to_next_obs"] = steps
    return td


class _Fixed:
    """Deterministic fraction sets, looked up by their size (N, N', K differ)."""

    def __init__(self, seed: int = 7):
        g = torch.Generator().manual_seed(seed)
        self.sets = {n: torch.rand(2 * B, n, generator=g) for n in (N, N_PRIME, K)}

    def __call__(self, batch, n, device):
        return self.sets[n][:batch]


def _fixed(loss):
    fixed = _Fixed()
    loss._fractions = fixed
    return fixed


def _perturb(module: torch.nn.Module, scale: float = 0.5, seed: int = 11):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def _naive_quantiles(net, obs, fractions):
    """Z_tau(s, .) written out layer by layer: [B, n, A]."""
    psi = net.torso(obs)
    out = torch.empty(obs.shape[0], fractions.shape[-1], A)
    for b in range(obs.shape[0]):
        for i in range(fractions.shape[-1]):
            tau = fractions[b, i]
            cos = torch.stack([torch.cos(math.pi * j * tau) for j in range(1, net.embedding.embedding_dim + 1)])
            phi = torch.relu(net.embedding.linear(cos))
            out[b, i] = net.head(psi[b] * phi)
    return out


def _naive_loss(online, target, data, fixed, *, munchausen, alpha=0.9, tau=0.03, lo=-1.0, hi=0.0, kappa=1.0):
    """Independent per-transition M-IQN / IQN loss with explicit loops and log_softmax."""
    obs, nobs = data["observation"], data["next", "observation"]
    act = data["action"]
    r = data["next", "reward"].reshape(-1)
    term = data["next", "terminated"].reshape(-1).float()
    steps = data.get("steps_to_next_obs", torch.ones(B)).reshape(-1).float()
    with torch.no_grad():
        q_s = _naive_quantiles(target, obs, fixed.sets[K][:B]).mean(1)
        q_next = _naive_quantiles(target, nobs, fixed.sets[K][B : 2 * B] if munchausen else fixed.sets[K][:B]).mean(1)
        theta_next = _naive_quantiles(target, nobs, fixed.sets[N_PRIME][:B])
    theta = _naive_quantiles(online, obs, fixed.sets[N][:B])
    losses = []
    for b in range(B):
        targets = []
        for j in range(N_PRIME):
            if munchausen:
                log_pi_s = torch.log_softmax(q_s[b] / tau, -1)
                bonus = alpha * min(max(tau * log_pi_s[act[b]].item(), lo), hi)
                pi_next = torch.softmax(q_next[b] / tau, -1)
                log_pi_next = torch.log_softmax(q_next[b] / tau, -1)
                boot = sum(pi_next[c] * (theta_next[b, j, c] - tau * log_pi_next[c]) for c in range(A))
            else:
                bonus = 0.0
                boot = theta_next[b, j, q_next[b].argmax()]
            targets.append(r[b] + bonus + GAMMA ** steps[b] * (1 - term[b]) * boot)
        total = 0.0
        for i in range(N):
            for j in range(N_PRIME):
                d = targets[j] - theta[b, i, act[b]]
                h = 0.5 * d**2 if abs(d) <= kappa else kappa * (abs(d) - 0.5 * kappa)
                total = total + abs(fixed.sets[N][b, i] - float(d < 0)) * h / kappa
        losses.append(total / N_PRIME)
    return torch.stack(losses)


def _loss(cls, actor, **kw):
    loss = cls(actor, num_quantiles=N, num_target_quantiles=N_PRIME, num_policy_quantiles=K, **kw)
    loss.make_value_estimator(gamma=GAMMA)
    return loss


# ---------------------------------------------------------------- targets against a naive computation


@pytest.mark.parametrize("munchausen", [True, False])
def test_loss_matches_independent_computation(munchausen):
    actor = _make_actor()
    target_net = copy.deepcopy(actor.module[0].module)  # the target params are a copy taken at construction
    cls = MunchausenIQNLoss if munchausen else IQNLoss
    loss = _loss(cls, actor, reduction="none")
    fixed = _fixed(loss)
    _perturb(actor)  # online now differs from target
    online_net = actor.module[0].module
    term = torch.tensor([0, 1, 0, 0, 1, 0], dtype=torch.bool)
    trunc = torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.bool)
    data = _data(terminated=term, truncated=trunc, steps=torch.tensor([1, 1, 2, 3, 1, 1]))
    out = loss(data)
    expected = _naive_loss(online_net, target_net, data, fixed, munchausen=munchausen)
    torch.testing.assert_close(out["loss"], expected.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(data["td_error"].reshape(-1), expected.detach(), rtol=1e-5, atol=1e-5)


def test_munchausen_clip_bounds_and_alpha_zero():
    actor = _make_actor()
    target_net = copy.deepcopy(actor.module[0].module)
    loss = _loss(MunchausenIQNLoss, actor, reduction="none", alpha=0.5, tau=0.3, clip_value_min=-0.2, clip_value_max=0.5)
    fixed = _fixed(loss)
    data = _data(seed=4)
    expected = _naive_loss(actor.module[0].module, target_net, data, fixed, munchausen=True, alpha=0.5, tau=0.3, lo=-0.2, hi=0.5)
    torch.testing.assert_close(loss(data)["loss"], expected.detach(), rtol=1e-5, atol=1e-5)
    soft = _loss(MunchausenIQNLoss, actor, reduction="none", alpha=0.0, tau=0.3)
    _fixed(soft)
    expected = _naive_loss(actor.module[0].module, target_net, data, fixed, munchausen=True, alpha=0.0, tau=0.3)
    out = soft(data)
    torch.testing.assert_close(out["loss"], expected.detach(), rtol=1e-5, atol=1e-5)
    assert (out["munchausen_bonus"] == 0).all()  # per sample under reduction="none"


def test_munchausen_bonus_comes_from_the_target_network():
    actor = _make_actor()
    loss = _loss(MunchausenIQNLoss, actor)
    _fixed(loss)
    data = _data()
    before = loss(data.clone())
    _perturb(actor, scale=3.0)  # online only
    after = loss(data.clone())
    for key in ("munchausen_bonus", "entropy", "clip_fraction"):
        torch.testing.assert_close(after[key], before[key])
    assert not torch.allclose(after["q_value"], before["q_value"])
    with torch.no_grad():
        for p in loss.target_value_network_params.values(True, True):
            p.add_(1.0)
    moved = loss(data.clone())
    assert not torch.allclose(moved["munchausen_bonus"], before["munchausen_bonus"])


@pytest.mark.parametrize("cls", [IQNLoss, MunchausenIQNLoss])
def test_gradients_only_reach_online_parameters(cls):
    actor = _make_actor()
    loss = _loss(cls, actor)
    optim = torch.optim.Adam(loss.parameters(), lr=0.1)
    target_before = loss.target_value_network_params.clone()
    loss(_data())["loss"].backward()
    online = list(loss.value_network_params.values(True, True))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in online)
    for p in loss.target_value_network_params.values(True, True):
        assert p.grad is None and not p.requires_grad
    optim.step()
    assert (loss.target_value_network_params == target_before).all()
    assert not (loss.value_network_params.data == target_before).all()


def test_target_updaters():
    actor = _make_actor()
    loss = _loss(MunchausenIQNLoss, actor)
    hard = HardUpdate(loss, value_network_update_interval=1)
    _perturb(actor)
    assert not (loss.target_value_network_params == loss.value_network_params.data).all()
    hard.step()  # TorchRL's HardUpdate copies on the (interval + 1)-th call
    hard.step()
    assert (loss.target_value_network_params == loss.value_network_params.data).all()
    loss2 = _loss(IQNLoss, _make_actor())
    soft = SoftUpdate(loss2, tau=0.5)
    old = loss2.target_value_network_params.clone()
    _perturb(loss2.value_network)
    soft.step()
    expected = old.apply(lambda t, o: 0.5 * t + 0.5 * o, loss2.value_network_params.data)
    diff = (loss2.target_value_network_params - expected).abs()
    assert max(t.max().item() for t in diff.values(True, True)) < 1e-6


# ---------------------------------------------------------------- conventions


def test_terminated_cuts_bootstrap_truncated_does_not():
    actor = _make_actor()
    loss = _loss(MunchausenIQNLoss, actor, reduction="none")
    _fixed(loss)
    ends = torch.tensor([0, 1, 0, 0, 0, 0], dtype=torch.bool)
    base = loss(_data())["loss"]
    terminated = loss(_data(terminated=ends))["loss"]
    truncated = loss(_data(truncated=ends))["loss"]
    torch.testing.assert_close(truncated, base)
    assert not torch.allclose(terminated[1], base[1])
    torch.testing.assert_close(terminated[ends.logical_not()], base[ends.logical_not()])


def test_one_hot_actions_match_categorical():
    cat = _loss(MunchausenIQNLoss, _make_actor(), reduction="none")
    hot = _loss(MunchausenIQNLoss, _make_actor(action_spec=OneHot(A)), reduction="none")
    _fixed(cat), _fixed(hot)
    torch.testing.assert_close(cat(_data())["loss"], hot(_data(one_hot=True))["loss"])


def test_priority_written_in_place_and_weights_used():
    loss = _loss(IQNLoss, _make_actor(), reduction="none")
    _fixed(loss)
    data = _data()
    data["td_error"] = torch.zeros(B, 1)
    per_sample = loss(data)["loss"]
    torch.testing.assert_close(data["td_error"].squeeze(-1), per_sample)
    mean_loss = _loss(IQNLoss, _make_actor())
    _fixed(mean_loss)
    weighted = data.clone()
    w = torch.tensor([1.0, 0.0, 2.0, 0.5, 1.0, 0.0])
    weighted["priority_weight"] = w
    torch.testing.assert_close(mean_loss(weighted)["loss"], (per_sample * w).sum() / w.sum())
    torch.testing.assert_close(mean_loss(data.clone())["loss"], per_sample.mean())
    sum_loss = _loss(IQNLoss, _make_actor(), reduction="sum")
    _fixed(sum_loss)
    torch.testing.assert_close(sum_loss(data.clone())["loss"], per_sample.sum())


def test_multi_dim_batches():
    loss = _loss(IQNLoss, _make_actor(), reduction="none")
    data = _data().reshape(2, 3)
    out = loss(data)
    assert out["loss"].shape == (2, 3)
    assert data["td_error"].shape == (2, 3, 1)


def test_set_keys_with_nested_keys():
    net = ImplicitQuantileNetwork.mlp(OBS, A, num_cells=(8,), embedding_dim=6, num_policy_quantiles=K)
    actor = QValueActor(net, in_keys=[("agent", "obs")], spec=Categorical(A))
    loss = _loss(MunchausenIQNLoss, actor, reduction="none")
    loss.set_keys(
        action=("agent", "act"),
        reward=("agent", "rew"),
        done=("agent", "done"),
        terminated=("agent", "term"),
        priority=("agent", "prio"),
    )
    flat = _data()
    nested = TensorDict(
        {
            "agent": {"obs": flat["observation"], "act": flat["action"]},
            "next": {
                "agent": {
                    "obs": flat["next", "observation"],
                    "rew": flat["next", "reward"],
                    "done": flat["next", "done"],
                    "term": flat["next", "terminated"],
                }
            },
        },
        [B],
    )
    reference = _loss(MunchausenIQNLoss, _make_actor(), reduction="none")
    _fixed(loss), _fixed(reference)
    # same weights: copy the reference online/target params into the nested-key loss
    loss.value_network_params.data.update_(reference.value_network_params.data)
    loss.target_value_network_params.update_(reference.target_value_network_params)
    torch.testing.assert_close(loss(nested)["loss"], reference(flat)["loss"])
    assert nested["agent", "prio"].shape == (B, 1)
    assert ("next", "agent", "rew") in loss.in_keys


def test_state_dict_round_trip():
    loss = _loss(MunchausenIQNLoss, _make_actor())
    _perturb(loss.value_network)
    other = _loss(MunchausenIQNLoss, _make_actor(seed=5))
    other.load_state_dict(loss.state_dict())
    _fixed(loss), _fixed(other)
    torch.testing.assert_close(other(_data())["loss"], loss(_data())["loss"])


def test_independent_fractions_false_shares_one_draw():
    loss = _loss(MunchausenIQNLoss, _make_actor(), independent_fractions=False)
    assert loss._fractions(B, N, torch.device("cpu")).shape == (N,)
    out = loss(_data())
    assert torch.isfinite(out["loss"])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_quantiles": 0}, "num_quantiles"),
        ({"num_target_quantiles": 0}, "num_target_quantiles"),
        ({"num_policy_quantiles": -1}, "num_policy_quantiles"),
        ({"num_quantiles": 2.5}, "num_quantiles"),
        ({"kappa": 0.0}, "kappa"),
        ({"kappa": -1.0}, "kappa"),
        ({"alpha": 1.5}, r"alpha must lie in \[0, 1\]"),
        ({"tau": 0.0}, "tau"),
        ({"clip_value_min": 0.5, "clip_value_max": 0.0}, "clip_value_min"),
        ({"reduction": "avg"}, "reduction"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MunchausenIQNLoss(_make_actor(), **kwargs)


def test_network_without_quantile_head_is_rejected():
    actor = QValueActor(torch.nn.Linear(OBS, A), in_keys=["observation"], spec=Categorical(A))
    with pytest.raises(TypeError, match="ImplicitQuantileNetwork"):
        IQNLoss(actor)


def test_only_td0_estimator():
    loss = IQNLoss(_make_actor())
    with pytest.raises(NotImplementedError, match="TD0"):
        loss.make_value_estimator(ValueEstimators.TDLambda, gamma=0.9, lmbda=0.9)
