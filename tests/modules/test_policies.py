"""Tests of torchrl_reg.modules.policies (IQ paper, Section 4 and the Gaussian ablation of Section 6)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector
from torchrl.data import Bounded, Categorical, OneHot, Unbounded
from torchrl.envs import DoubleToFloat, GymEnv, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_reg.modules.policies import (
    FactorizedCategorical,
    ScaledLogits,
    bin_grid,
    categorical_policy,
    multicategorical_policy,
    policy_logit_tau,
    tanh_normal_policy,
)


def _box(low, high) -> Bounded:
    low, high = torch.tensor(low), torch.tensor(high)
    return Bounded(low=low, high=high, shape=low.shape)


def test_bin_grid_includes_both_bounds_and_is_uniform():
    grid = bin_grid(torch.tensor([-1.0, -0.4, 0.0]), torch.tensor([1.0, 2.5, 0.007]), 11)
    assert grid.shape == (3, 11)
    # The bounds exactly, not up to rounding.
    assert torch.equal(grid[:, 0], torch.tensor([-1.0, -0.4, 0.0]))
    assert torch.equal(grid[:, -1], torch.tensor([1.0, 2.5, 0.007]))
    # [-1, 1] in 11 values: -1, -0.8, ..., 0.8, 1 (worked out by hand).
    torch.testing.assert_close(grid[0], torch.tensor([-1.0 + 0.2 * k for k in range(11)]), atol=1e-6, rtol=0)
    steps = grid.diff(dim=-1)
    torch.testing.assert_close(steps, ((grid[:, -1:] - grid[:, :1]) / 10).expand_as(steps), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("num_bins", [2, 3, 11, 51])
def test_grid_actions_map_back_to_their_bins_exactly(num_bins):
    low = torch.tensor([-1.0, -0.4, -3.3, 0.0])
    high = torch.tensor([1.0, 2.5, 7.1, 0.007])
    dist = FactorizedCategorical(torch.zeros(4, num_bins), low, high)
    index = torch.arange(num_bins).expand(4, num_bins).T  # [n, d]: every bin of every dimension
    actions = dist.action(index)
    assert torch.equal(actions, dist.bins.T)
    assert torch.equal(dist.index(actions), index)
    assert torch.equal(dist.action(dist.index(actions)), actions)


def test_log_prob_is_the_sum_of_per_dimension_log_softmax():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 4)
    dist = FactorizedCategorical(logits, -torch.ones(3), torch.ones(3))
    index = torch.randint(4, (5, 3))
    expected = torch.zeros(5)
    for b in range(5):
        for j in range(3):
            row = logits[b, j]
            expected[b] += math.log(math.exp(row[index[b, j]]) / sum(math.exp(x) for x in row.tolist()))
    torch.testing.assert_close(dist.log_prob(dist.action(index)), expected)


def test_joint_distribution_is_normalized_and_entropy_is_exact():
    torch.manual_seed(1)
    logits = torch.randn(3, 4, dtype=torch.float64)
    dist = FactorizedCategorical(logits, -torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    joint = torch.tensor(list(itertools.product(range(4), repeat=3)))  # all 4**3 joint actions
    log_p = dist.log_prob(dist.action(joint))
    torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(dist.entropy(), -(log_p.exp() * log_p).sum())


def test_sampling_frequencies_and_per_dimension_argmax_mode():
    torch.manual_seed(2)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.5, 1.0]])
    dist = FactorizedCategorical(logits, torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 4.0]))
    samples = dist.sample((40000,))
    assert samples.shape == (40000, 2)
    grid = dist.bins
    for j in range(2):
        freq = torch.stack([(samples[:, j] == grid[j, k]).float().mean() for k in range(3)])
        assert freq.sum() == 1.0  # every sample lies on the grid
        torch.testing.assert_close(freq, torch.softmax(logits[j], -1), atol=0.01, rtol=0)
    assert torch.equal(dist.mode, torch.tensor([-1.0, 4.0]))
    assert torch.equal(dist.deterministic_sample, dist.mode)


def test_off_grid_action_scores_its_nearest_bin():
    dist = FactorizedCategorical(torch.randn(1, 5), torch.tensor([-1.0]), torch.tensor([1.0]))
    assert dist.index(torch.tensor([0.26])).item() == 3  # 0.26 is nearest to 0.5 (bins -1, -0.5, 0, 0.5, 1)
    assert dist.index(torch.tensor([1.7])).item() == 4  # outside the Box: clamped to the bound


def test_multicategorical_actor_modes_and_shapes():
    torch.manual_seed(3)
    policy = multicategorical_policy(5, _box([-1.0, -2.0, 0.0], [1.0, 2.0, 1.0]), num_bins=7, num_cells=(16,))
    td = TensorDict({"observation": torch.randn(8, 5)}, [8])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = policy(td.clone())
    logits = out["logits"]
    assert logits.shape == (8, 3, 7)
    grid = bin_grid(torch.tensor([-1.0, -2.0, 0.0]), torch.tensor([1.0, 2.0, 1.0]), 7)
    expected = grid.expand(8, 3, 7).gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1)
    assert torch.equal(out["action"], expected)
    with set_exploration_type(ExplorationType.RANDOM):
        sampled = policy(td.clone())["action"]
    assert ((sampled.unsqueeze(-1) == grid).sum(-1) == 1).all()


def test_multicategorical_head_is_linear_in_dims_times_bins():
    policy = multicategorical_policy(4, _box([-1.0] * 17, [1.0] * 17), num_bins=11, num_cells=(256, 256))
    head = [m for m in policy.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert head.out_features == 17 * 11 and head.in_features == 256


@pytest.mark.parametrize(
    "spec, match",
    [
        (Unbounded(shape=(2,)), "finite action bounds"),
        (Bounded(low=-3.4e38, high=3.4e38, shape=(2,)), "finite action bounds"),
        (OneHot(4), "Box"),
        (Categorical(4), "Box"),
        (Bounded(low=-1.0, high=1.0, shape=(2, 3)), r"shape \[d\]"),
    ],
)
def test_multicategorical_rejects_non_box_or_unbounded_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        multicategorical_policy(3, spec)


@pytest.mark.parametrize("num_bins", [1, 0, 2.5, True])
def test_multicategorical_rejects_fewer_than_two_bins(num_bins):
    with pytest.raises(ValueError, match="num_bins"):
        multicategorical_policy(3, _box([-1.0], [1.0]), num_bins=num_bins)


def test_tanh_normal_log_prob_has_the_log_det_correction():
    torch.manual_seed(4)
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    policy = tanh_normal_policy(3, _box(low.tolist(), high.tolist()), num_cells=(8,))
    dist = policy.get_dist(TensorDict({"observation": torch.randn(6, 3)}, [6]))
    loc, scale = dist.loc.detach(), dist.scale.detach()
    u = loc + scale * torch.randn(6, 2).clamp(-2, 2)
    action = low + (high - low) * (torch.tanh(u) + 1) / 2
    # Change of variables worked out by hand: da/du = (high - low) / 2 * (1 - tanh(u)^2).
    log_normal = (-0.5 * ((u - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_det = torch.log((high - low) / 2 * (1 - torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(dist.log_prob(action), log_normal - log_det, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("spec", [OneHot(3), Categorical(3)])
def test_categorical_policy_log_prob_is_log_softmax(spec):
    torch.manual_seed(5)
    policy = categorical_policy(4, spec, num_cells=(8,))
    td = policy(TensorDict({"observation": torch.randn(5, 4)}, [5]))
    index = td["action"].argmax(-1) if isinstance(spec, OneHot) else td["action"]
    expected = torch.log_softmax(td["logits"], -1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(policy.get_dist(td).log_prob(td["action"]), expected)


def test_categorical_policy_rejects_box_specs():
    with pytest.raises(ValueError, match="OneHot or Categorical"):
        categorical_policy(3, _box([-1.0], [1.0]))


def _collect(env, policy, frames: int):
    collector = Collector(env, policy, frames_per_batch=frames, total_frames=frames)
    batch = next(iter(collector))
    collector.shutdown()
    return batch


def test_multicategorical_and_gaussian_policies_run_in_a_collector_on_pendulum():
    env = GymEnv("Pendulum-v1")
    obs_dim = env.observation_spec["observation"].shape[-1]
    policy = multicategorical_policy(obs_dim, env.action_spec, num_bins=11, num_cells=(32,))
    batch = _collect(env, policy, 64)
    grid = bin_grid(torch.tensor([-2.0]), torch.tensor([2.0]), 11)
    assert batch["action"].shape == (64, 1)
    assert ((batch["action"].unsqueeze(-1) == grid).sum(-1) == 1).all()
    assert batch["next", "reward"].shape == (64, 1)
    gaussian = _collect(GymEnv("Pendulum-v1"), tanh_normal_policy(obs_dim, env.action_spec, num_cells=(32,)), 64)
    assert gaussian["action"].abs().max() <= 2.0


def test_categorical_policy_runs_in_a_collector_on_cartpole():
    env = GymEnv("CartPole-v1")
    batch = _collect(env, categorical_policy(4, env.action_spec, num_cells=(32,)), 64)
    assert batch["action"].shape == (64, 2) and (batch["action"].sum(-1) == 1).all()


@pytest.mark.slow
def test_multicategorical_policy_on_humanoid_17_dims():
    env = TransformedEnv(GymEnv("Humanoid-v5"), DoubleToFloat())
    obs_dim = env.observation_spec["observation"].shape[-1]
    policy = multicategorical_policy(obs_dim, env.action_spec, num_bins=11)
    batch = _collect(env, policy, 32)
    assert batch["action"].shape == (32, 17) and batch["logits"].shape == (32, 17, 11)
    low, high = env.action_spec.space.low, env.action_spec.space.high
    assert ((batch["action"].unsqueeze(-1) == bin_grid(low, high, 11)).sum(-1) == 1).all()
    assert torch.isfinite(policy.get_dist(batch).log_prob(batch["action"])).all()


def _network_outputs(policy, obs: torch.Tensor) -> torch.Tensor:
    """``F``: the policy's network outputs before any division by tau (its first module, run by hand)."""
    net = policy.module[0].module
    return (net[0] if isinstance(net[-1], ScaledLogits) else net)(obs)


@pytest.mark.parametrize("tau", [0.01, 0.7])
def test_scaled_multicategorical_is_softmax_of_outputs_over_tau(tau):
    """[IQ] Section 3.3: pi = softmax(F / tau), i.e. tau ln pi^j = F^j - tau logsumexp(F^j / tau), per dimension."""
    torch.manual_seed(2)
    policy = multicategorical_policy(3, _box([-1.0, 0.0], [1.0, 2.0]), num_bins=5, num_cells=(8,), tau=tau).double()
    assert policy_logit_tau(policy) == tau
    obs = torch.randn(4, 3, dtype=torch.float64)
    td = policy(TensorDict({"observation": obs}, [4]))
    outputs = _network_outputs(policy, obs).detach()
    torch.testing.assert_close(td["logits"], outputs / tau)
    dist = policy.get_dist(td)
    # Written out: F^j(a^j) - tau * log(sum_b exp(F^j(b) / tau)), summed over the two dimensions.
    index = dist.index(td["action"])
    f_a = outputs.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    lse = tau * torch.log(torch.exp((outputs - outputs.max(-1, keepdim=True).values) / tau).sum(-1))
    lse = lse + outputs.max(-1).values
    torch.testing.assert_close(tau * dist.log_prob(td["action"]), (f_a - lse).sum(-1))


def test_unscaled_policies_have_no_logit_tau_and_the_same_parameter_names():
    spec = _box([-1.0], [1.0])
    plain = multicategorical_policy(2, spec, num_cells=(4,))
    assert policy_logit_tau(plain) is None and policy_logit_tau(categorical_policy(2, OneHot(3), num_cells=(4,))) is None
    assert not any(isinstance(m, ScaledLogits) for m in plain.modules())
    scaled = multicategorical_policy(2, spec, num_cells=(4,), tau=0.1)
    assert len(list(plain.parameters())) == len(list(scaled.parameters()))


@pytest.mark.parametrize("spec", [OneHot(3), Categorical(3)])
def test_scaled_categorical_policy_is_softmax_of_outputs_over_tau(spec):
    torch.manual_seed(6)
    tau = 0.05
    policy = categorical_policy(4, spec, num_cells=(8,), tau=tau)
    obs = torch.randn(5, 4)
    td = policy(TensorDict({"observation": obs}, [5]))
    outputs = _network_outputs(policy, obs).detach()
    index = td["action"].argmax(-1) if isinstance(spec, OneHot) else td["action"]
    expected = torch.log_softmax(outputs / tau, -1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(policy.get_dist(td).log_prob(td["action"]), expected)


@pytest.mark.parametrize("tau", [0.0, -0.01, float("inf")])
def test_scaled_policies_reject_a_bad_tau(tau):
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        multicategorical_policy(2, _box([-1.0], [1.0]), num_cells=(4,), tau=tau)
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        categorical_policy(2, OneHot(3), num_cells=(4,), tau=tau)


def test_entropy_per_dimension_is_each_marginal_entropy():
    logits = torch.tensor([[[0.0, 0.0, 0.0], [math.log(2.0), 0.0, -1e9]]])  # uniform; (2/3, 1/3, 0)
    dist = FactorizedCategorical(logits, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]))
    expected = torch.tensor([[math.log(3.0), -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)]])
    torch.testing.assert_close(dist.entropy_per_dimension(), expected)
    torch.testing.assert_close(dist.entropy(), expected.sum(-1))


@pytest.mark.parametrize("scale_lb", [0.1, 0.05, math.exp(-5), math.exp(-20)])
def test_tanh_normal_std_floor_is_scale_lb_also_below_softplus_own_minimum(scale_lb):
    """TorchRL's biased softplus adds 0.01 of its own: a floor below it is the mapping's minimum, so that the std
    reaches scale_lb itself (ln sigma >= -20 for exp(-20)); at 0.01 and above the mapping is TorchRL's default."""
    from tensordict.nn import NormalParamExtractor

    policy = tanh_normal_policy(3, Bounded(-1.0, 1.0, shape=(2,)), num_cells=(4,), scale_lb=scale_lb)
    extractor = policy.module[0].module[-1]
    outputs = torch.tensor([[0.0, 0.0, -1000.0, 50.0]], dtype=torch.float64)
    _, scale = extractor(outputs)
    assert scale[0, 0].item() == pytest.approx(scale_lb, rel=1e-12)
    if scale_lb >= 0.01:  # bit for bit the policy of TorchRL's default mapping
        torch.testing.assert_close(scale, NormalParamExtractor(scale_lb=scale_lb)(outputs)[1], rtol=0, atol=0)


@pytest.mark.parametrize("scale_lb", [0.0, 1.0, -0.5, float("nan")])
def test_tanh_normal_std_floor_outside_zero_one_is_refused(scale_lb):
    with pytest.raises(ValueError, match=r"scale_lb must lie in \(0, 1\)"):
        tanh_normal_policy(3, Bounded(-1.0, 1.0, shape=(2,)), num_cells=(4,), scale_lb=scale_lb)
