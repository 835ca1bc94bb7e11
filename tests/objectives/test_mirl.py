"""MIRLLoss against an independent per-sample computation, and its prior / beta updates.

Reference targets are written from the MIRL paper's equations (ICLR 2019, Eq. 13 and Algorithm 1) with plain Python floats (explicit
sums and exponentials) from separately-held online and target weights: they share no code with
the loss or ``torchrl_reg.functional``.
"""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import Categorical, LazyTensorStorage, OneHot, PrioritizedSampler, TensorDictReplayBuffer
from torchrl.modules import QValueActor
from torchrl.objectives import HardUpdate, SoftUpdate

from torchrl_reg import functional as F
from torchrl_reg.objectives.mirl import VARIANTS, MIRLLoss
from torchrl_reg.objectives.munchausen import MunchausenDQNLoss

N_OBS, N_ACT, B = 3, 4, 6
GAMMA = 0.9


def make_actor(seed: int = 0, spec=None) -> QValueActor:
    torch.manual_seed(seed)
    return QValueActor(nn.Linear(N_OBS, N_ACT), in_keys=["observation"], spec=spec or Categorical(N_ACT))


def perturb_target(loss) -> None:
    g = torch.Generator().manual_seed(123)
    for p in loss.target_value_network_params.values(True, True):
        p.data.add_(torch.randn(p.shape, generator=g))


def weights(params) -> tuple[list[list[float]], list[float]]:
    flat = dict(params.items(True, True))
    w = next(v for k, v in flat.items() if k[-1] == "weight")
    b = next(v for k, v in flat.items() if k[-1] == "bias")
    return w.detach().double().tolist(), b.detach().double().tolist()


def q_values(wb, obs) -> list[float]:
    w, b = wb
    return [sum(wi * oi for wi, oi in zip(row, obs)) + bi for row, bi in zip(w, b)]


def make_batch(seed: int = 0, one_hot: bool = False, steps: torch.Tensor | None = None) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    action = torch.randint(N_ACT, (B,), generator=g)
    terminated = torch.tensor([True, False, False, False, False, False]).unsqueeze(-1)
    done = terminated.clone()
    done[1] = True  # truncated: done but not terminated, still bootstraps
    td = TensorDict(
        {
            "observation": torch.randn(B, N_OBS, generator=g),
            "action": torch.nn.functional.one_hot(action, N_ACT) if one_hot else action,
            ("next", "observation"): torch.randn(B, N_OBS, generator=g),
            ("next", "reward"): torch.randn(B, 1, generator=g),
            ("next", "done"): done,
            ("next", "terminated"): terminated,
        },
        [B],
    )
    if steps is not None:
        td["steps_to_next_obs"] = steps.view(B, 1)
    return td


def reference_losses(loss: MIRLLoss, td: TensorDict, rho: list[float], beta: float) -> list[float]:
    """(q(s,a) - [r + gamma^n (1 - term) (1/beta) ln sum_a' rho(a') exp(beta q_target(s', a'))])^2."""
    online, target = weights(loss.value_network_params), weights(loss.target_value_network_params)
    out = []
    for i in range(B):
        a = int(td["action"][i].argmax()) if td["action"].ndim == 2 else int(td["action"][i])
        pred = q_values(online, td["observation"][i].tolist())[a]
        q_next = q_values(target, td["next", "observation"][i].tolist())
        v_next = math.log(sum(p * math.exp(beta * q) for p, q in zip(rho, q_next))) / beta
        n = int(td["steps_to_next_obs"][i]) if "steps_to_next_obs" in td.keys() else 1
        discount = 0.0 if bool(td["next", "terminated"][i]) else GAMMA**n
        y = float(td["next", "reward"][i]) + discount * v_next
        out.append((pred - y) ** 2)
    return out


def make_loss(rho=None, beta: float = 0.7, **kwargs) -> MIRLLoss:
    loss = MIRLLoss(make_actor(), beta=beta, prior=rho, reduction="none", **kwargs)
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    return loss


@pytest.mark.parametrize("one_hot", [False, True])
def test_target_matches_independent_computation(one_hot):
    rho = [0.1, 0.2, 0.3, 0.4]
    spec = OneHot(N_ACT) if one_hot else Categorical(N_ACT)
    loss = MIRLLoss(make_actor(spec=spec), beta=0.7, prior=torch.tensor(rho), reduction="none")
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    td = make_batch(one_hot=one_hot)
    expected = reference_losses(loss, td, rho, 0.7)
    out = loss(td)
    torch.testing.assert_close(out["loss"].double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    # Priority written in place: the squared TD error.
    torch.testing.assert_close(td["td_error"].squeeze(-1).double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)


def test_n_step_discount_from_steps_to_next_obs():
    rho = [0.25, 0.25, 0.25, 0.25]
    loss = make_loss(torch.tensor(rho), beta=2.0)
    td = make_batch(steps=torch.tensor([1, 3, 2, 1, 3, 2]))
    expected = reference_losses(loss, td, rho, 2.0)
    torch.testing.assert_close(loss(td)["loss"].double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)


def test_uniform_fixed_prior_is_soft_dqn_with_tau_one_over_beta_up_to_log_num_actions():
    """Uniform rho, fixed beta: the Soft-DQN target (MunchausenDQNLoss with alpha = 0, tau = 1/beta)
    minus gamma (1 - terminated) ln|A| / beta, i.e. Soft-DQN on rewards shifted by that amount."""
    beta = 3.0
    mirl = MIRLLoss(make_actor(), beta=beta, beta_schedule="fixed", learn_prior=False, reduction="none")
    soft = MunchausenDQNLoss(make_actor(), alpha=0.0, tau=1 / beta, loss_function="l2", reduction="none")
    for loss in (mirl, soft):
        loss.make_value_estimator(gamma=GAMMA)
    soft.target_value_network_params.update_(mirl.target_value_network_params)
    td = make_batch()
    shift = GAMMA * (~td["next", "terminated"]).float() * math.log(N_ACT) / beta
    shifted = td.clone()
    shifted["next", "reward"] = td["next", "reward"] - shift
    torch.testing.assert_close(mirl(td)["loss"], soft(shifted)["loss"], rtol=1e-5, atol=1e-6)
    # The same relation on the pure functions of torchrl_reg.functional.
    q_next = torch.randn(B, N_ACT)
    torch.testing.assert_close(
        F.prior_soft_q_target(td["next", "reward"].squeeze(-1), torch.full((B,), GAMMA), q_next, mirl.prior.rho, beta=beta),
        F.soft_q_target(td["next", "reward"].squeeze(-1), torch.full((B,), GAMMA), q_next, tau=1 / beta)
        - GAMMA * math.log(N_ACT) / beta,
    )


def test_gradients_reach_online_params_only_and_target_updaters_work():
    loss = MIRLLoss(make_actor(), beta=1.0)
    loss.make_value_estimator(gamma=GAMMA)
    perturb_target(loss)
    loss(make_batch())["loss"].backward()
    assert all(p.grad is not None for p in loss.value_network_params.values(True, True))
    assert all(not p.requires_grad for p in loss.target_value_network_params.values(True, True))
    HardUpdate(loss, value_network_update_interval=0).step()
    for online, target in zip(loss.value_network_params.values(True, True), loss.target_value_network_params.values(True, True)):
        assert torch.equal(online.data, target.data)
    SoftUpdate(loss, tau=0.5).step()


def test_nested_keys_reduction_and_priority_weights():
    loss = MIRLLoss(make_actor(), beta=1.0, reduction="mean")
    loss.make_value_estimator(gamma=GAMMA)
    loss.set_keys(reward=("agent", "reward"), priority="prio")
    td = make_batch()
    td["next", "agent", "reward"] = td["next", "reward"]
    del td["next", "reward"]
    td["priority_weight"] = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    out = loss(td)
    assert "prio" in td.keys()
    unweighted = MIRLLoss(make_actor(), beta=1.0, reduction="none")
    unweighted.make_value_estimator(gamma=GAMMA)
    unweighted.set_keys(reward=("agent", "reward"))
    per_sample = unweighted(td.exclude("priority_weight"))["loss"]
    # TorchRL's weighted mean: sum(w * l) / sum(w).
    torch.testing.assert_close(out["loss"], per_sample[1])


def test_prioritized_replay_buffer_round_trip():
    loss = MIRLLoss(make_actor(), beta=1.0)
    loss.make_value_estimator(gamma=GAMMA)
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(100), sampler=PrioritizedSampler(100, alpha=0.6, beta=0.4), batch_size=4
    )
    rb.extend(make_batch())
    sample = rb.sample()
    loss(sample)
    rb.update_tensordict_priority(sample)


def test_state_dict_saves_prior_and_beta():
    loss = MIRLLoss(make_actor(), beta=1.0, prior_lr=0.5, beta_lr=0.5)
    loss.make_value_estimator(gamma=GAMMA)
    loss.update_prior(make_batch())
    loss.update_beta(torch.tensor(0.25))
    state = loss.state_dict()
    assert {"prior.rho", "prior.beta", "num_beta_updates"} <= set(state)
    other = MIRLLoss(make_actor(seed=5), beta=1.0)
    other.make_value_estimator(gamma=GAMMA)
    other.load_state_dict(state)
    torch.testing.assert_close(other.prior.rho, loss.prior.rho)
    assert other.prior.beta.item() == pytest.approx(0.5 * 1.0 + 0.5 / 0.25)
    assert int(other.num_beta_updates) == 1


def test_diagnostics():
    loss = make_loss(torch.tensor([0.1, 0.2, 0.3, 0.4]), beta=0.7)
    batch = make_batch()
    out = loss(batch)  # reduction="none": one value per sample
    assert out.batch_size == batch.batch_size
    torch.testing.assert_close(out["beta"], torch.full(batch.batch_size, 0.7))
    expected_entropy = -sum(p * math.log(p) for p in (0.1, 0.2, 0.3, 0.4))
    torch.testing.assert_close(out["prior_entropy"], torch.full(batch.batch_size, expected_entropy))
    assert (out["kl_to_prior"] >= 0).all()
    for key in ("beta", "prior_entropy", "policy_entropy", "kl_to_prior", "td_error", "q_value", "action_gap"):
        assert not out[key].requires_grad


# -- prior update ------------------------------------------------------------------------------


def _fixed_q_network_batch(n_states: int, seed: int = 0, beta: float = 1.5):
    """A fixed set of states, their q-values under the loss's online network, and the loss."""
    loss = MIRLLoss(make_actor(seed), beta=beta, prior_lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    states = 2 * torch.randn(n_states, N_OBS, generator=g)
    online = weights(loss.value_network_params)
    q = torch.tensor([q_values(online, s.tolist()) for s in states], dtype=torch.float64)
    return loss, states, q


def test_update_prior_stays_normalized_and_uses_online_network_without_action_values():
    loss, states, q = _fixed_q_network_batch(5)
    batch = TensorDict({"observation": states}, [5])
    with_q = TensorDict({"observation": states, "action_value": q.float()}, [5])
    other, _, _ = _fixed_q_network_batch(5)
    rho = loss.update_prior(batch).clone()
    torch.testing.assert_close(other.update_prior(with_q), rho)
    assert (rho > 0).all() and rho.double().sum().item() == pytest.approx(1.0, abs=1e-6)
    # One batch = Algorithm 1's prior update for each state in turn, with pi from the prior at the batch start.
    expected = torch.full((N_ACT,), 1 / N_ACT, dtype=torch.float64)
    pis = [[0.25 * math.exp(1.5 * x) for x in row] for row in q.tolist()]
    for row in pis:
        expected = (1 - 2e-3) * expected + 2e-3 * torch.tensor([x / sum(row) for x in row], dtype=torch.float64)
    torch.testing.assert_close(rho.double(), expected, rtol=1e-5, atol=1e-7)


def test_update_prior_takes_collector_batches_in_time_order():
    """A [num_envs, T] batch is used as s_(0,0), s_(1,0), s_(0,1), s_(1,1), ... (time-major)."""
    q = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [0.0, 3.0]], [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])
    loss = MIRLLoss(nn.Linear(N_OBS, 2), action_space="categorical", num_actions=2, beta=1.0, prior_lr=0.5)
    rho = loss.update_prior(TensorDict({"action_value": q}, [2, 3])).double()
    expected = [0.5, 0.5]
    for t in range(3):
        # pi from the prior at the start of the batch (uniform): softmax(q)
        for e in range(2):
            pi = [math.exp(x) / sum(math.exp(y) for y in q[e, t].tolist()) for x in q[e, t].tolist()]
            expected = [0.5 * r + 0.5 * p for r, p in zip(expected, pi)]
    torch.testing.assert_close(rho, torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-7)


def _stream_batch(states: torch.Tensor, q: torch.Tensor, repeats: int) -> TensorDict:
    """The state stream 0, 1, 1, 2, 3, 3, 3, 3 (frequencies nu = (1, 2, 1, 4) / 8), repeated, with the
    acting network's q-values stored as a collector stores them."""
    stream = torch.tensor([0, 1, 1, 2, 3, 3, 3, 3]).repeat(repeats)
    return TensorDict({"observation": states[stream], "action_value": q[stream].float()}, [len(stream)])


NU = [1 / 8, 2 / 8, 1 / 8, 4 / 8]


def test_sql_m_prior_converges_to_action_marginal_of_fixed_policy():
    """prior_in_backup=False: pi = softmax(beta q) is a fixed policy, rho -> sum_s nu(s) pi(.|s)."""
    _, states, q = _fixed_q_network_batch(4)
    loss = MIRLLoss.from_variant("sql_m", make_actor(0), beta=1.5, prior_lr=2e-3)
    batch = _stream_batch(states, q, repeats=25)
    for _ in range(60):  # 12000 states: (1 - 2e-3) ** 12000 ~ 4e-11 of the initial prior remains
        loss.update_prior(batch)
    pi = [[math.exp(1.5 * x) / sum(math.exp(1.5 * y) for y in row) for x in row] for row in q.tolist()]
    marginal = [sum(NU[s] * pi[s][a] for s in range(4)) for a in range(N_ACT)]
    torch.testing.assert_close(loss.prior.rho.double(), torch.tensor(marginal, dtype=torch.float64), atol=5e-3, rtol=0)


def test_mirl_prior_converges_to_self_consistent_marginal():
    """MIRL: pi depends on rho; the fixed point is rho* = sum_s nu(s) rho* exp(beta q) / Z(s)
    (a Blahut-Arimoto iteration, solved independently here in float64). At beta = 6 it keeps
    three actions (about 0.21, 0.39, 0.40) and drops one, unlike the SQL marginal."""
    loss, states, q = _fixed_q_network_batch(4, beta=6.0)
    batch = _stream_batch(states, q, repeats=25)
    for _ in range(150):
        loss.update_prior(batch)
    q_rows = q.tolist()
    rho = [1 / N_ACT] * N_ACT
    for _ in range(5000):
        new = [0.0] * N_ACT
        for s, row in enumerate(q_rows):
            unnormalized = [rho[a] * math.exp(6.0 * row[a]) for a in range(N_ACT)]
            for a in range(N_ACT):
                new[a] += NU[s] * unnormalized[a] / sum(unnormalized)
        rho = new
    assert sorted(rho)[1] > 0.2  # an interior fixed point, not a collapse onto one action
    torch.testing.assert_close(loss.prior.rho.double(), torch.tensor(rho, dtype=torch.float64), atol=5e-3, rtol=0)


def test_fixed_prior_variant_does_not_move():
    loss = MIRLLoss.from_variant("sql", make_actor())
    before = loss.prior.rho.clone()
    loss.update_prior(make_batch())
    torch.testing.assert_close(loss.prior.rho, before)
    assert VARIANTS["sql"]["beta_schedule"] == "fixed" and loss.beta_schedule == "fixed"


# -- beta update -------------------------------------------------------------------------------


def test_adaptive_beta_by_hand_reads_mean_squared_td_error():
    loss = make_loss(beta=0.7, beta_lr=0.1, beta_min=1e-3, beta_max=1e3)
    loss.loss_function = "smooth_l1"  # L of Eq. (13) is the squared TD error whatever the regression loss
    out = loss(make_batch())
    mse = sum(reference_losses(loss, make_batch(), [0.25] * 4, 0.7)) / B
    assert loss.update_beta(out) == pytest.approx(0.9 * 0.7 + 0.1 / mse, rel=1e-5)
    assert loss.prior.beta.item() == pytest.approx(0.9 * 0.7 + 0.1 / mse, rel=1e-5)


def test_beta_bounds_and_schedules():
    loss = make_loss(beta=1.0, beta_lr=0.5, beta_min=0.5, beta_max=3.0)
    assert loss.update_beta(0.0) == 3.0  # 1 / 0 clamped to beta_max
    assert loss.update_beta(1e6) == pytest.approx(max(0.5 * 3.0 + 0.5e-6, 0.5))
    assert loss.update_beta(1e6) == pytest.approx(0.75)
    assert loss.update_beta(1e6) == 0.5  # clamped to beta_min
    linear = make_loss(beta=0.5, beta_schedule="linear", beta_slope=0.25, beta_max=1.0)
    assert [linear.update_beta(None) for _ in range(3)] == [0.75, 1.0, 1.0]
    fixed = make_loss(beta=0.5, beta_schedule="fixed")
    assert fixed.update_beta(0.01) == 0.5


def test_nan_loss_is_refused_by_beta_update():
    loss = make_loss()
    with pytest.raises(ValueError, match="finite and >= 0"):
        loss.update_beta(float("nan"))


# -- bad inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prior_lr": 0.0}, r"prior_lr must lie in \(0, 1\]"),
        ({"prior_lr": 1.5}, r"prior_lr must lie in \(0, 1\]"),
        ({"beta_lr": 0.0}, r"beta_lr must lie in \(0, 1\]"),
        ({"beta_lr": -0.1}, r"beta_lr must lie in \(0, 1\]"),
        ({"beta": 0.0}, "beta must be a finite number > 0"),
        ({"beta": -1.0}, "beta must be a finite number > 0"),
        ({"beta": 1e5}, r"beta must lie in \[beta_min, beta_max\]"),
        ({"beta_min": 2.0, "beta_max": 1.0, "beta": 1.5}, "beta_min must be <= beta_max"),
        ({"beta_slope": -1.0}, "beta_slope must be a finite number >= 0"),
        ({"beta_schedule": "cosine"}, "beta_schedule must be one of"),
        ({"prior": torch.tensor([0.5, 0.5, 0.5, 0.5])}, "probability distribution"),
        ({"prior": torch.tensor([0.5, 0.5])}, r"shape \[4\]"),
        ({"loss_function": "huber"}, "loss_function must be one of"),
    ],
)
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MIRLLoss(make_actor(), **kwargs)


def test_missing_number_of_actions_and_unknown_variant():
    with pytest.raises(ValueError, match="needs the number of actions"):
        MIRLLoss(nn.Linear(N_OBS, N_ACT), action_space="categorical")
    assert MIRLLoss(nn.Linear(N_OBS, N_ACT), action_space="categorical", num_actions=N_ACT).prior.num_actions == N_ACT
    with pytest.raises(ValueError, match="variant must be one of"):
        MIRLLoss.from_variant("dqn", make_actor())
