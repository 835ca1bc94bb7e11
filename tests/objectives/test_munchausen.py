"""MunchausenDQNLoss / AdvantageLearningLoss against an independent per-sample computation.

The reference targets below are written from the paper's equations with plain Python floats
(explicit softmax, explicit sums), using separately-held online and target weights, so they
share no code with the losses or ``torchrl_reg.functional``.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Bounded, Categorical, LazyTensorStorage, OneHot, PrioritizedSampler, TensorDictReplayBuffer
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss, HardUpdate, SoftUpdate

from torchrl_reg.objectives import AdvantageLearningLoss, MunchausenDQNLoss, TsallisMunchausenDQNLoss
from torchrl_reg.value import SoftTD0Estimator

N_OBS, N_ACT, B = 3, 4, 6
GAMMA = 0.9


def make_actor(seed: int = 0, spec=None) -> QValueActor:
    torch.manual_seed(seed)
    net = nn.Linear(N_OBS, N_ACT)
    return QValueActor(net, in_keys=["observation"], spec=spec if spec is not None else Categorical(N_ACT))


def perturb_target(loss) -> None:
    """Make the target network clearly different from the online one."""
    g = torch.Generator().manual_seed(123)
    for p in loss.target_value_network_params.values(True, True):
        p.data.add_(torch.randn(p.shape, generator=g))


def weights(params) -> tuple[list[list[float]], list[float]]:
    w = params["module", "0", "module", "weight"] if ("module", "0", "module", "weight") in params.keys(True, True) else None
    if w is None:
        flat = dict(params.items(True, True))
        w = next(v for k, v in flat.items() if k[-1] == "weight")
        b = next(v for k, v in flat.items() if k[-1] == "bias")
    else:
        b = params["module", "0", "module", "bias"]
    return w.detach().double().tolist(), b.detach().double().tolist()


def q_values(wb, obs: list[float]) -> list[float]:
    w, b = wb
    return [sum(wi * oi for wi, oi in zip(row, obs)) + bi for row, bi in zip(w, b)]


def softmax(q: list[float], tau: float) -> list[float]:
    m = max(q)
    e = [math.exp((x - m) / tau) for x in q]
    return [x / sum(e) for x in e]


def make_batch(seed: int = 0, one_hot: bool = False) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    action = torch.randint(N_ACT, (B,), generator=g)
    terminated = torch.tensor([True, False, False, False, False, False]).unsqueeze(-1)
    # sample 1 is truncated: done but not terminated, so it still bootstraps
    done = terminated.clone()
    done[1] = True
    td = TensorDict(
        {
            "observation": torch.randn(B, N_OBS, generator=g),
            "action": torch.nn.functional.one_hot(action, N_ACT) if one_hot else action,
            ("next", "observation"): torch.randn(B, N_OBS, generator=g),
            ("next", "reward"): torch.randn(B, 1, generator=g),
            ("next", "done"): done,
            ("next", "terminated"): terminated,
            ("next", "truncated"): done & ~terminated,
        },
        [B],
    )
    return td


def reference_munchausen(loss, td, *, alpha, tau, l0=-1.0, u=0.0, gamma=GAMMA, steps=None, bonus_net="target"):
    online = weights(loss.value_network_params)
    target = weights(loss.target_value_network_params)
    out = []
    for i in range(td.shape[0]):
        s = td["observation"][i].double().tolist()
        s_next = td["next", "observation"][i].double().tolist()
        a = int(td["action"][i].argmax()) if td["action"].ndim == 2 else int(td["action"][i])
        r = float(td["next", "reward"][i])
        term = bool(td["next", "terminated"][i])
        q_s_bonus = q_values(target if bonus_net == "target" else online, s)
        pi_s = softmax(q_s_bonus, tau)
        bonus = alpha * min(max(tau * math.log(pi_s[a]), l0), u)
        q_next = q_values(target, s_next)
        pi_next = softmax(q_next, tau)
        soft_v = sum(p * (q - tau * math.log(p)) for p, q in zip(pi_next, q_next))
        n = 1 if steps is None else int(steps[i])
        target_i = r + bonus + (0.0 if term else gamma**n * soft_v)
        pred = q_values(online, s)[a]
        out.append((pred, target_i))
    return out


@pytest.mark.parametrize("one_hot", [False, True])
def test_munchausen_target_matches_independent_computation(one_hot):
    spec = OneHot(N_ACT) if one_hot else Categorical(N_ACT)
    loss = MunchausenDQNLoss(make_actor(spec=spec), alpha=0.9, tau=0.3, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    td = make_batch(one_hot=one_hot)
    out = loss(td)
    ref = reference_munchausen(loss, td, alpha=0.9, tau=0.3)
    expected = torch.tensor([(p - t) ** 2 for p, t in ref], dtype=torch.float32)
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-5)
    # priorities are written in place, one per sample
    torch.testing.assert_close(td["td_error"].squeeze(-1), expected, rtol=1e-5, atol=1e-5)
    # the test discriminates: an online-network bonus (a public-port bug) gives other numbers
    wrong = reference_munchausen(loss, td, alpha=0.9, tau=0.3, bonus_net="online")
    assert max(abs(t - w) for (_, t), (_, w) in zip(ref, wrong)) > 1e-2


def test_action_values_are_the_networks_under_the_given_parameters_and_a_subclass_may_call_it_its_way():
    loss = MunchausenDQNLoss(make_actor(), alpha=0.9, tau=0.3, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    td = make_batch()
    for params in (loss.value_network_params, loss.target_value_network_params):
        expected = [q_values(weights(params), s) for s in td["observation"].double().tolist()]
        torch.testing.assert_close(loss.action_values(td, params), torch.tensor(expected, dtype=torch.float32))

    class ThroughToModule(MunchausenDQNLoss):  # the plain TorchRL way: swap the parameters in, call the module
        calls: list[bool] = []

        def action_values(self, inputs, params):
            self.calls.append(params is self.target_value_network_params)
            with params.to_module(self.value_network, preserve_module_state=False):
                return self.value_network[0](inputs).get(self.tensor_keys.action_value)

    other = ThroughToModule(make_actor(), alpha=0.9, tau=0.3, loss_function="l2", reduction="none")
    other.make_value_estimator(gamma=GAMMA)
    other.load_state_dict(loss.state_dict())
    mine, theirs = loss(td.clone()), other(td.clone())
    # called once online (s_t) and once on the target network (s_t and s_{t+n}), with the very same numbers
    assert ThroughToModule.calls == [False, True]
    assert torch.equal(mine["loss"], theirs["loss"])


def test_clip_bounds_and_diagnostics():
    tau = 0.5
    loss = MunchausenDQNLoss(make_actor(), alpha=0.7, tau=tau, clip_value_min=-0.4, clip_value_max=-0.1, loss_function="l2")
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    td = make_batch(seed=3)
    out = loss(td)
    target = weights(loss.target_value_network_params)
    raw, bonuses, entropies = [], [], []
    for i in range(B):
        q = q_values(target, td["observation"][i].double().tolist())
        pi = softmax(q, tau)
        lp = tau * math.log(pi[int(td["action"][i])])
        raw.append(lp)
        bonuses.append(0.7 * min(max(lp, -0.4), -0.1))
        entropies.append(-sum(p * math.log(p) for p in pi))
    ref = reference_munchausen(loss, td, alpha=0.7, tau=tau, l0=-0.4, u=-0.1)
    assert out["loss"].item() == pytest.approx(sum((p - t) ** 2 for p, t in ref) / B, rel=1e-5)
    assert out["munchausen_bonus"].item() == pytest.approx(sum(bonuses) / B, rel=1e-5)
    assert out["clip_fraction"].item() == pytest.approx(sum(not -0.4 <= x <= -0.1 for x in raw) / B)
    assert out["entropy"].item() == pytest.approx(sum(entropies) / B, rel=1e-5)
    for key in ("munchausen_bonus", "clip_fraction", "entropy", "action_gap", "td_error", "q_value"):
        assert not out[key].requires_grad


def test_n_step_discount_from_steps_to_next_obs():
    loss = MunchausenDQNLoss(make_actor(), alpha=0.9, tau=0.3, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    td = make_batch(seed=1)
    steps = torch.tensor([1, 3, 2, 3, 1, 2])
    td["steps_to_next_obs"] = steps.unsqueeze(-1)
    ref = reference_munchausen(loss, td, alpha=0.9, tau=0.3, steps=steps.tolist())
    expected = torch.tensor([(p - t) ** 2 for p, t in ref], dtype=torch.float32)
    torch.testing.assert_close(loss(td)["loss"].detach(), expected, rtol=1e-5, atol=1e-5)


def test_multistep_transform_end_to_end():
    """TorchRL's MultiStep writes the n-step reward sum and steps_to_next_obs the loss consumes."""
    from torchrl.envs import GymEnv
    from torchrl.data import MultiStep

    env = GymEnv("CartPole-v1")
    env.set_seed(0)
    torch.manual_seed(0)
    rollout = env.rollout(40, break_when_any_done=False)
    gamma, n = 0.9, 3
    transformed = MultiStep(gamma=gamma, n_steps=n)(rollout.unsqueeze(0).clone()).squeeze(0)
    actor = QValueActor(nn.Linear(4, 2), in_keys=["observation"], spec=env.action_spec)
    loss = MunchausenDQNLoss(actor, alpha=0.9, tau=0.3, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=gamma)
    perturb_target(loss)
    out = loss(transformed.clone())
    online = weights(loss.value_network_params)
    target = weights(loss.target_value_network_params)
    rewards = rollout["next", "reward"].squeeze(-1).tolist()
    terms = rollout["next", "terminated"].squeeze(-1).tolist()
    for t in range(10):  # first steps: no episode end within the window in CartPole
        assert not any(terms[t : t + n])
        r_n = sum(gamma**k * rewards[t + k] for k in range(n))
        a = int(rollout["action"][t].argmax())
        s = rollout["observation"][t].double().tolist()
        s_n = rollout["next", "observation"][t + n - 1].double().tolist()
        pi_s = softmax(q_values(target, s), 0.3)
        q_n = q_values(target, s_n)
        pi_n = softmax(q_n, 0.3)
        v_n = sum(p * (q - 0.3 * math.log(p)) for p, q in zip(pi_n, q_n))
        expected_target = r_n + 0.9 * max(0.3 * math.log(pi_s[a]), -1.0) + gamma**n * v_n
        pred = q_values(online, s)[a]
        assert out["loss"][t].item() == pytest.approx((pred - expected_target) ** 2, rel=1e-4, abs=1e-5)


def test_alpha_zero_is_soft_dqn():
    """alpha=0 equals TorchRL's DQNLoss with the soft TD(0) estimator (a different code path)."""
    m = MunchausenDQNLoss(make_actor(), alpha=0.0, tau=0.2, loss_function="l2", reduction="none")
    m.make_value_estimator(gamma=GAMMA)
    perturb_target(m)
    dqn = DQNLoss(make_actor(), action_space="categorical", loss_function="l2", reduction="none")
    dqn.make_value_estimator(SoftTD0Estimator, gamma=GAMMA, tau=0.2, value_network=dqn.value_network)
    dqn.value_network_params.update(m.value_network_params.data)
    dqn.target_value_network_params.update(m.target_value_network_params)
    td = make_batch(seed=2)
    torch.testing.assert_close(m(td.clone())["loss"], dqn(td.clone())["loss"], rtol=1e-5, atol=1e-6)


def test_tau_to_zero_approaches_advantage_learning():
    al = AdvantageLearningLoss(make_actor(), alpha=0.9, loss_function="l2", reduction="none")
    al.make_value_estimator(gamma=GAMMA)
    perturb_target(al)
    td = make_batch(seed=4)
    expected = al(td.clone())["loss"]
    gaps = []
    for tau in (1.0, 0.3, 0.1, 1e-4):
        m = MunchausenDQNLoss(make_actor(), alpha=0.9, tau=tau, clip_value_min=-1e6, loss_function="l2", reduction="none")
        m.make_value_estimator(gamma=GAMMA)
        m.value_network_params.update(al.value_network_params.data)
        m.target_value_network_params.update(al.target_value_network_params)
        gaps.append((m(td.clone())["loss"] - expected).abs().max().item())
    assert gaps[0] > gaps[1] > gaps[2] >= gaps[3]
    assert gaps[3] < 1e-5


def reference_al(loss, td, *, alpha, persistent):
    online = weights(loss.value_network_params)
    target = weights(loss.target_value_network_params)
    out = []
    for i in range(td.shape[0]):
        a = int(td["action"][i])
        q_s = q_values(target, td["observation"][i].double().tolist())
        q_n = q_values(target, td["next", "observation"][i].double().tolist())
        term = bool(td["next", "terminated"][i])
        r = float(td["next", "reward"][i])
        bellman = r + (0.0 if term else GAMMA * max(q_n))
        t = bellman + alpha * (q_s[a] - max(q_s))
        if persistent:
            t = max(t, bellman - (0.0 if term else alpha * (max(q_n) - q_n[a])))
        out.append((q_values(online, td["observation"][i].double().tolist())[a] - t) ** 2)
    return torch.tensor(out, dtype=torch.float32)


@pytest.mark.parametrize("persistent", [False, True])
def test_advantage_learning_matches_independent_computation(persistent):
    loss = AdvantageLearningLoss(make_actor(), alpha=0.9, persistent=persistent, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    td = make_batch(seed=5)
    torch.testing.assert_close(loss(td)["loss"].detach(), reference_al(loss, td, alpha=0.9, persistent=persistent), rtol=1e-5, atol=1e-5)


def test_alpha_zero_advantage_learning_is_dqn():
    al = AdvantageLearningLoss(make_actor(), alpha=0.0, loss_function="l2", reduction="none")
    al.make_value_estimator(gamma=GAMMA)
    perturb_target(al)
    dqn = DQNLoss(make_actor(), action_space="categorical", loss_function="l2", reduction="none")
    dqn.make_value_estimator(gamma=GAMMA)
    dqn.value_network_params.update(al.value_network_params.data)
    dqn.target_value_network_params.update(al.target_value_network_params)
    td = make_batch(seed=6)
    torch.testing.assert_close(al(td.clone())["loss"], dqn(td.clone())["loss"], rtol=1e-5, atol=1e-6)


def test_gradients_only_on_online_params_and_target_updates():
    loss = MunchausenDQNLoss(make_actor(), loss_function="l2")
    loss.make_value_estimator(gamma=GAMMA)
    updater = HardUpdate(loss, value_network_update_interval=2)
    perturb_target(loss)
    target_before = loss.target_value_network_params.clone()
    optim = torch.optim.SGD(loss.parameters(), lr=0.1)
    out = loss(make_batch())
    out["loss"].backward()
    for p in loss.value_network_params.values(True, True):
        assert p.grad is not None and p.grad.abs().sum() > 0
    for p in loss.target_value_network_params.values(True, True):
        assert p.grad is None and not p.requires_grad
    optim.step()
    assert (loss.target_value_network_params == target_before).all()
    assert not (loss.value_network_params.data == target_before).all()
    # TorchRL's HardUpdate copies on the (interval + 1)-th call of step()
    for _ in range(2):
        updater.step()
        assert (loss.target_value_network_params == target_before).all()
    updater.step()
    assert (loss.target_value_network_params == loss.value_network_params.data).all()


def test_soft_update_moves_target_towards_online():
    loss = MunchausenDQNLoss(make_actor(), loss_function="l2")
    loss.make_value_estimator(gamma=GAMMA)
    updater = SoftUpdate(loss, eps=0.75)
    perturb_target(loss)
    before = loss.target_value_network_params.clone()
    updater.step()
    expected = before.apply(lambda t, o: 0.75 * t + 0.25 * o, loss.value_network_params.data)
    assert all(torch.allclose(a, b) for a, b in zip(loss.target_value_network_params.values(True, True), expected.values(True, True)))


def test_delay_value_false_uses_online_params_detached():
    loss = MunchausenDQNLoss(make_actor(), delay_value=False, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=GAMMA)
    td = make_batch()
    out = loss(td)
    ref = reference_munchausen(loss, td, alpha=0.9, tau=0.03)
    torch.testing.assert_close(out["loss"].detach(), torch.tensor([(p - t) ** 2 for p, t in ref], dtype=torch.float32), rtol=1e-4, atol=1e-5)


def test_set_keys_with_nested_keys():
    torch.manual_seed(0)
    # a plain TensorDictModule writing the action values is enough for the loss
    actor = TensorDictModule(nn.Linear(N_OBS, N_ACT), in_keys=[("agent", "obs")], out_keys=[("agent", "q")])
    loss = MunchausenDQNLoss(actor, alpha=0.9, tau=0.3, loss_function="l2", reduction="none", action_space="categorical")
    loss.set_keys(
        action=("agent", "act"),
        action_value=("agent", "q"),
        reward=("agent", "rew"),
        terminated=("agent", "term"),
        done=("agent", "done"),
        priority=("agent", "prio"),
    )
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    flat = make_batch(seed=7)
    td = TensorDict(
        {
            ("agent", "obs"): flat["observation"],
            ("agent", "act"): flat["action"],
            ("next", "agent", "obs"): flat["next", "observation"],
            ("next", "agent", "rew"): flat["next", "reward"],
            ("next", "agent", "term"): flat["next", "terminated"],
            ("next", "agent", "done"): flat["next", "done"],
        },
        [B],
    )
    out = loss(td)
    ref = reference_munchausen(loss, flat, alpha=0.9, tau=0.3)
    expected = torch.tensor([(p - t) ** 2 for p, t in ref], dtype=torch.float32)
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-5)
    assert ("agent", "prio") in td.keys(True)
    assert ("next", "agent", "rew") in loss.in_keys and ("agent", "act") in loss.in_keys


def test_reduction_modes():
    td = make_batch(seed=8)
    per_sample = None
    results = {}
    for reduction in ("none", "mean", "sum"):
        loss = MunchausenDQNLoss(make_actor(), loss_function="l2", reduction=reduction)
        loss.make_value_estimator(gamma=GAMMA)
        results[reduction] = loss(td.clone())["loss"]
    per_sample = results["none"]
    assert per_sample.shape == (B,)
    torch.testing.assert_close(results["mean"], per_sample.mean())
    torch.testing.assert_close(results["sum"], per_sample.sum())


def test_priority_weights_and_prioritized_replay():
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(100), sampler=PrioritizedSampler(100, alpha=0.7, beta=0.5), batch_size=B
    )
    data = torch.cat([make_batch(seed=s) for s in range(5)])
    rb.extend(data)
    loss = MunchausenDQNLoss(make_actor(), loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=GAMMA)
    sample = rb.sample()
    weights_ = sample["priority_weight"].clone()
    per_sample = loss(sample.clone())["loss"]
    unweighted = MunchausenDQNLoss(make_actor(), loss_function="l2", reduction="none", use_prioritized_weights=False)
    unweighted.make_value_estimator(gamma=GAMMA)
    raw = unweighted(sample.clone())["loss"]
    torch.testing.assert_close(per_sample, raw * weights_)
    loss(sample)
    assert "td_error" in sample.keys()
    rb.update_tensordict_priority(sample)
    index = sample["index"]
    expected = (sample["td_error"].squeeze(-1) + rb.sampler._eps) ** 0.7
    torch.testing.assert_close(torch.as_tensor(rb.sampler._sum_tree[index]).float(), expected.float(), rtol=1e-4, atol=1e-6)


def test_state_dict_round_trip():
    loss = MunchausenDQNLoss(make_actor(0), loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    state = copy.deepcopy(loss.state_dict())
    other = MunchausenDQNLoss(make_actor(1), loss_function="l2", reduction="none")
    other.make_value_estimator(gamma=GAMMA)
    other.load_state_dict(state)
    td = make_batch()
    torch.testing.assert_close(loss(td.clone())["loss"], other(td.clone())["loss"])
    assert (other.target_value_network_params == loss.target_value_network_params).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": 1.5}, r"alpha must lie in \[0, 1\], got alpha=1.5"),
        ({"alpha": -0.1}, r"alpha must lie in \[0, 1\], got alpha=-0.1"),
        ({"tau": 0.0}, r"tau must be a finite number in \[0.0001, 10.0\], got tau=0.0"),
        ({"tau": -1}, r"tau must be a finite number in \[0.0001, 10.0\], got tau=-1"),
        ({"clip_value_min": 0.5, "clip_value_max": 0.0}, "clip_value_min must be <= clip_value_max"),
        ({"reduction": "avg"}, "reduction must be one of"),
        ({"loss_function": "huber"}, "loss_function must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MunchausenDQNLoss(make_actor(), **kwargs)


def test_non_discrete_action_space_is_rejected():
    with pytest.raises(ValueError, match="discrete action"):
        MunchausenDQNLoss(nn.Linear(N_OBS, N_ACT), action_space=Bounded(-1, 1, shape=(N_ACT,)))
    with pytest.raises(ValueError, match="alpha must lie"):
        AdvantageLearningLoss(make_actor(), alpha=2.0)


# MVI(q) (TsallisMunchausenDQNLoss): Zhu, Chen, Schlegel, White, NeurIPS 2023, arXiv:2301.11476, Sec. 4.


def _tsallis_batch(seed: int = 0, num_actions: int = 4) -> tuple[QValueActor, TensorDict]:
    torch.manual_seed(seed)
    spec = Categorical(num_actions)
    actor = QValueActor(nn.Linear(3, num_actions), in_keys=["observation"], spec=spec)
    data = TensorDict({
        "observation": torch.randn(16, 3), "action": spec.rand((16,)),
        ("next", "observation"): torch.randn(16, 3), ("next", "reward"): torch.randn(16, 1),
        ("next", "done"): torch.zeros(16, 1, dtype=torch.bool), ("next", "terminated"): torch.rand(16, 1) < 0.2,
    }, [16])
    return actor, data


def test_tsallis_munchausen_at_q_one_is_munchausen_dqn_value_for_value():
    actor, data = _tsallis_batch()
    for alpha, tau in ((0.9, 0.03), (0.5, 1.0)):
        ours = TsallisMunchausenDQNLoss(actor, q=1, alpha=alpha, tau=tau)
        theirs = MunchausenDQNLoss(copy.deepcopy(actor), alpha=alpha, tau=tau)
        for loss in (ours, theirs):
            loss.make_value_estimator(gamma=0.99)
        out, expected = ours(data), theirs(data)
        assert ours.q == 1.0 and set(out.keys()) == set(expected.keys()) | {"support"}
        for key in expected.keys():
            assert torch.equal(out[key], expected[key]), key
        assert out["support"].item() == 4.0  # the Boltzmann policy leaves no action out


def test_tsallis_munchausen_at_q_two_regresses_on_the_sparsemax_target_by_hand():
    """Two actions, tau = 1: with target values (1, 0) the sparsemax policy is (1, 0) (1 + 2 (0) = 1 is not > 1) and
    tau psi_2 = max = 1; with (1, .5) it is (.75, .25), tau psi_2 = 1.25."""
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.5]]))  # q(e1) = (1, 0), q(e2) = (1, .5)
    actor = QValueActor(net, in_keys=["observation"], spec=Categorical(2))
    loss = TsallisMunchausenDQNLoss(actor, q=2, alpha=0.9, tau=1.0, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=0.5)
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    data = TensorDict({
        "observation": torch.stack([e2, e1]), "action": torch.tensor([1, 0]),
        ("next", "observation"): torch.stack([e1, e2]), ("next", "reward"): torch.tensor([[1.0], [2.0]]),
        ("next", "done"): torch.zeros(2, 1, dtype=torch.bool), ("next", "terminated"): torch.zeros(2, 1, dtype=torch.bool),
    }, [2])
    out = loss(data)
    # s = e2, a = 1: .9 (.5 - 1.25) + 1 + .5 (1) = .825, q = .5; s = e1, a = 0: .9 (1 - 1) + 2 + .5 (1.25) = 2.625, q = 1
    torch.testing.assert_close(out["loss"], torch.tensor([(0.825 - 0.5) ** 2, (2.625 - 1.0) ** 2]))
    torch.testing.assert_close(out["support"], torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(out["entropy"], torch.tensor([1 - 0.75**2 - 0.25**2, 0.0]))


@pytest.mark.parametrize("q", [3, 1.5, True, "2"])
def test_tsallis_munchausen_refuses_an_index_without_a_closed_form_policy(q):
    actor, _ = _tsallis_batch()
    with pytest.raises(ValueError, match=r"q must be one of \[1.0, 2.0\].*got q="):
        TsallisMunchausenDQNLoss(actor, q=q)


def test_tsallis_munchausen_refuses_the_boltzmann_soft_bootstrap():
    actor, _ = _tsallis_batch()
    with pytest.raises(NotImplementedError, match="does not take a SoftTD0Estimator"):
        TsallisMunchausenDQNLoss(actor).make_value_estimator("softtd0", gamma=0.99, tau=0.03)


def _independent_sparsemax(z: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection of each row of ``z`` onto the simplex, by bisection on its threshold (no sort, no
    support formula): sparsemax, the Tsallis policy at q = 2."""
    low, high = z.min(-1, keepdim=True).values - 1.0, z.max(-1, keepdim=True).values
    for _ in range(200):
        mid = (low + high) / 2
        over = (z - mid).clamp_min(0).sum(-1, keepdim=True) > 1
        low, high = torch.where(over, mid, low), torch.where(over, high, mid)
    return (z - (low + high) / 2).clamp_min(0)


def _mvi_q_by_value_iteration(mdp, *, q, alpha, tau, q0, num_iterations, clip_value_min=-1.0):
    """MVI(q) on a finite MDP written from its definition, independently of the loss and of the functions it uses:
    pi_{k+1} = exp_q(q_k / tau - psi) (softmax at q = 1; at q = 2 the projection of q_k / tau onto the simplex),
    V = <pi, q_k> + tau S_q(pi), q_{k+1} = r + alpha clip(q_k - V, l0, 0) + gamma P V."""
    iterates = []
    for _ in range(num_iterations):
        if q == 1:
            pi = torch.softmax(q0 / tau, -1)
            entropy = -(pi * torch.log(pi)).sum(-1)
        else:
            pi = _independent_sparsemax(q0 / tau)
            entropy = 1 - (pi**2).sum(-1)
        value = (pi * q0).sum(-1) + tau * entropy
        bonus = alpha * (q0 - value.unsqueeze(-1)).clamp(clip_value_min, 0.0)
        q0 = mdp.rewards + bonus + mdp.gamma * torch.einsum("sat,t->sa", mdp.transitions, value)
        iterates.append(q0)
    return torch.stack(iterates)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("q, alpha, tau", [(1, 0.9, 0.3), (2, 0.9, 0.3), (2, 0.5, 1.0)])
def test_tsallis_munchausen_loss_fitted_on_a_finite_mdp_is_mvi_q(seed, q, alpha, tau):
    """The tabular oracle: the loss on a one-hot network, fitted to convergence between hard target updates on every
    transition of a Garnet MDP (``tests/tabular/test_bridge.py``'s harness), reproduces MVI(q) iterate by iterate:
    at q = 1 the tabular M-VI of ``torchrl_reg.tabular`` (the scheme written independently in the test agrees with it
    to float64 precision), at q = 2 that value iteration with the sparsemax policy found by bisection."""
    from tests.tabular.test_bridge import GAMMA, NUM_TARGET_UPDATES, _fit_between_target_updates, _full_batch, _tabular_actor
    from torchrl_reg.tabular.algorithms import munchausen_vi
    from torchrl_reg.tabular.mdp import garnet

    mdp = garnet(6, 4, 2, gamma=GAMMA, seed=seed)
    loss = TsallisMunchausenDQNLoss(_tabular_actor(mdp, seed), q=q, alpha=alpha, tau=tau, loss_function="l2", reduction="sum")
    loss.make_value_estimator(gamma=mdp.gamma)
    q0, fitted, outputs = _fit_between_target_updates(loss, _full_batch(mdp), manual_weights=False)
    exact = _mvi_q_by_value_iteration(mdp, q=q, alpha=alpha, tau=tau, q0=q0, num_iterations=NUM_TARGET_UPDATES)
    if q == 1:
        oracle = munchausen_vi(mdp, alpha=alpha, tau=tau, num_iterations=NUM_TARGET_UPDATES, q0=q0,
                               clip_value_min=-1.0, clip_value_max=0.0)
        torch.testing.assert_close(exact, oracle.q, rtol=0, atol=1e-12)
    assert torch.allclose(torch.stack(fitted), exact, atol=1e-10, rtol=0)
    if q == 2:  # the sparse policy left actions out on the way, so the case is the one that differs from M-VI
        assert min(out["support"].min().item() for out in outputs) < mdp.num_actions
