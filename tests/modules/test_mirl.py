"""ActionPrior and MIRL's behaviour policy (PriorEGreedyModule)."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential
from torchrl.data import Categorical, OneHot
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import QValueActor

from torchrl_reg.modules.mirl import ActionPrior, PriorEGreedyModule


def test_action_prior_defaults_and_state_dict_round_trip():
    prior = ActionPrior(4, beta=2.0)
    torch.testing.assert_close(prior.rho, torch.full((4,), 0.25))
    assert set(prior.state_dict()) == {"rho", "beta"}
    prior.set_rho(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    prior.set_beta(5.0)
    other = ActionPrior(4)
    other.load_state_dict(prior.state_dict())
    torch.testing.assert_close(other.rho, torch.tensor([0.1, 0.2, 0.3, 0.4]))
    assert other.beta.item() == 5.0


def test_action_prior_quantities_by_hand():
    prior = ActionPrior(2, beta=1.0, rho=torch.tensor([0.25, 0.75]))
    q = torch.tensor([[math.log(3.0), 0.0]])
    # pi ∝ (0.25 * 3, 0.75 * 1) = (1/2, 1/2); V = ln(0.75 + 0.75)
    torch.testing.assert_close(prior.policy(q), torch.tensor([[0.5, 0.5]]))
    assert prior.soft_value(q).item() == pytest.approx(math.log(1.5), rel=1e-6)
    assert prior.entropy().item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), rel=1e-6)


def test_prior_outside_backup_keeps_policy_uniform_weighted():
    """SQL_m: rho drives exploration only; pi and the backup use the uniform prior."""
    prior = ActionPrior(2, beta=1.0, rho=torch.tensor([0.25, 0.75]), prior_in_backup=False)
    q = torch.tensor([[math.log(3.0), 0.0]])
    torch.testing.assert_close(prior.policy(q), torch.tensor([[0.75, 0.25]]))
    assert prior.soft_value(q).item() == pytest.approx(math.log(0.5 * 3 + 0.5 * 1), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta": 0.0}, "beta must be a finite number > 0"),
        ({"beta": -2.0}, "beta must be a finite number > 0"),
        ({"rho": torch.tensor([0.3, 0.3, 0.3])}, "probability distribution"),
        ({"rho": torch.tensor([0.5, 0.5])}, "shape \\[3\\]"),
    ],
)
def test_action_prior_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ActionPrior(3, **kwargs)


def _actor_and_policy(spec, prior, eps):
    # A value network that ignores the observation: q = (1.0, 0.9, 0.0) everywhere.
    net = torch.nn.Linear(1, 3, bias=True)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([1.0, 0.9, 0.0]))
    actor = QValueActor(net, in_keys=["observation"], spec=spec)
    explore = PriorEGreedyModule(spec, eps_init=eps, eps_end=eps, annealing_num_steps=1, prior=prior)
    return TensorDictSequential(actor, explore)


@pytest.mark.parametrize("spec", [Categorical(3), OneHot(3)])
def test_greedy_action_is_argmax_of_prior_weighted_policy(spec):
    # argmax q = 0, but rho(1) / rho(0) = 10 outweighs exp(beta * 0.1) = e^0.2 (beta = 2).
    prior = ActionPrior(3, beta=2.0, rho=torch.tensor([0.05, 0.5, 0.45]))
    policy = _actor_and_policy(spec, prior, eps=0.0)
    td = policy(TensorDict({"observation": torch.zeros(8, 1)}, [8]))
    index = td["action"].argmax(-1) if isinstance(spec, OneHot) else td["action"]
    assert (index == 1).all()
    torch.testing.assert_close(td["chosen_action_value"], torch.full((8, 1), 0.9))
    # Uniform prior: plain argmax q.
    prior.set_rho(torch.full((3,), 1 / 3))
    td = policy(TensorDict({"observation": torch.zeros(8, 1)}, [8]))
    index = td["action"].argmax(-1) if isinstance(spec, OneHot) else td["action"]
    assert (index == 0).all()


def test_exploration_samples_from_prior_and_evaluation_is_greedy():
    torch.manual_seed(0)
    rho = torch.tensor([0.1, 0.2, 0.7])
    prior = ActionPrior(3, beta=1.0, rho=rho)
    policy = _actor_and_policy(Categorical(3), prior, eps=1.0)
    n = 20000
    actions = policy(TensorDict({"observation": torch.zeros(n, 1)}, [n]))["action"]
    freq = torch.bincount(actions, minlength=3).float() / n
    # 4 standard deviations of a binomial frequency at n = 20000 is <= 0.013.
    torch.testing.assert_close(freq, rho, atol=0.013, rtol=0)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = policy(TensorDict({"observation": torch.zeros(n, 1)}, [n]))["action"]
    # argmax(ln rho + q) = argmax(-2.30 + 1.0, -1.61 + 0.9, -0.36 + 0.0) = 2
    assert (greedy == 2).all()


def test_epsilon_mixes_greedy_and_prior_samples():
    torch.manual_seed(1)
    prior = ActionPrior(3, beta=1.0)
    policy = _actor_and_policy(Categorical(3), prior, eps=0.3)
    n = 30000
    actions = policy(TensorDict({"observation": torch.zeros(n, 1)}, [n]))["action"]
    freq = torch.bincount(actions, minlength=3).float() / n
    # P(a=0) = 0.7 + 0.3 / 3, P(a=1) = P(a=2) = 0.1
    torch.testing.assert_close(freq, torch.tensor([0.8, 0.1, 0.1]), atol=0.01, rtol=0)


def test_epsilon_annealing():
    module = PriorEGreedyModule(Categorical(2), eps_init=1.0, eps_end=0.1, annealing_num_steps=100, prior=ActionPrior(2))
    module.step(50)
    assert module.eps.item() == pytest.approx(0.55)
    module.step(1000)
    assert module.eps.item() == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps_init": 0.1, "eps_end": 0.5}, "eps_end <= eps_init"),
        ({"eps_init": 1.5}, "eps_end <= eps_init <= 1"),
        ({"annealing_num_steps": 0}, "annealing_num_steps must be >= 1"),
    ],
)
def test_behaviour_policy_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PriorEGreedyModule(Categorical(2), prior=ActionPrior(2), **kwargs)


def test_behaviour_policy_in_a_torchrl_collector():
    from torchrl.collectors import Collector
    from torchrl.envs import GymEnv

    env = GymEnv("CartPole-v1")
    spec = env.action_spec
    prior = ActionPrior(2, beta=1.0, rho=torch.tensor([0.9, 0.1]))
    actor = QValueActor(torch.nn.Linear(4, 2), in_keys=["observation"], spec=spec)
    policy = TensorDictSequential(actor, PriorEGreedyModule(spec, eps_init=1.0, eps_end=1.0, prior=prior))
    collector = Collector(env, policy, frames_per_batch=100, total_frames=300)
    counts = torch.zeros(2)
    for batch in collector:
        counts += batch["action"].float().sum(0)
        assert batch["action"].shape == (100, 2)
    collector.shutdown()
    # With eps = 1 every action comes from rho = (0.9, 0.1).
    assert counts[0] / counts.sum() > 0.8
