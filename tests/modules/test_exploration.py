"""Boltzmann exploration samples softmax(q / tau); greedy under deterministic exploration."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import Categorical, OneHot
from torchrl.envs import GymEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import QValueActor

from torchrl_reg.modules import AnnealedEpsilonGreedy, BoltzmannExploration


class Constant(nn.Module):
    def __init__(self, q):
        super().__init__()
        self.register_buffer("q", torch.tensor(q))

    def forward(self, obs):
        return self.q.expand(*obs.shape[:-1], -1)


@pytest.mark.parametrize("spec", [Categorical(3), OneHot(3)])
def test_boltzmann_frequencies_match_softmax(spec):
    torch.manual_seed(0)
    q = [0.0, 0.5, 1.0]
    actor = TensorDictSequential(
        QValueActor(Constant(q), in_keys=["observation"], spec=spec), BoltzmannExploration(spec, tau=0.5)
    )
    td = actor(TensorDict({"observation": torch.zeros(20000, 1)}, [20000]))
    action = td["action"]
    index = action.argmax(-1) if action.shape[-1] == 3 and action.ndim == 2 else action
    freq = torch.bincount(index.flatten(), minlength=3).float() / index.numel()
    w = [math.exp(x / 0.5) for x in q]
    expected = [x / sum(w) for x in w]
    assert freq.tolist() == pytest.approx(expected, abs=0.015)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = actor(TensorDict({"observation": torch.zeros(50, 1)}, [50]))["action"]
    greedy_index = greedy.argmax(-1) if greedy.ndim == 2 else greedy
    assert (greedy_index == 2).all()


def test_boltzmann_in_a_real_collector():
    env = GymEnv("CartPole-v1")
    actor = TensorDictSequential(
        QValueActor(nn.Linear(4, 2), in_keys=["observation"], spec=env.action_spec),
        BoltzmannExploration(env.action_spec, tau=1.0),
    )
    collector = Collector(env, actor, frames_per_batch=32, total_frames=64, auto_register_policy_transforms=False)
    batches = [b for b in collector]
    collector.shutdown()
    assert sum(b.numel() for b in batches) == 64


def test_annealed_epsilon_greedy_schedule_and_errors():
    spec = Categorical(2)
    eg = AnnealedEpsilonGreedy(spec, eps_init=1.0, eps_end=0.1, annealing_num_steps=100)
    eg.step(50)
    assert eg.eps.item() == pytest.approx(0.55)
    eg.step(100)
    assert eg.eps.item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"eps_end must lie in \[0, 1\], got eps_end=1.5"):
        AnnealedEpsilonGreedy(spec, eps_end=1.5)
    with pytest.raises(ValueError, match="annealing_num_steps must be >= 1"):
        AnnealedEpsilonGreedy(spec, annealing_num_steps=0)
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        BoltzmannExploration(spec, tau=-1.0)


@pytest.mark.parametrize("tau", [torch.tensor(0.5), torch.tensor([0.5]), "0.5", True])
def test_boltzmann_refuses_a_tau_that_is_neither_a_number_nor_a_callable(tau):
    # A tensor may be a live buffer (loss.temperature): a float taken at construction would freeze it.
    with pytest.raises(TypeError, match="number or a callable tau.*tau=lambda: t.*float\\(t\\)"):
        BoltzmannExploration(Categorical(2), tau=tau)


def test_boltzmann_reads_a_callable_tau_at_every_call():
    temperature = torch.tensor(1e6)
    explore = BoltzmannExploration(Categorical(2), tau=lambda: temperature)
    td = TensorDict({"action_value": torch.tensor([[0.0, 1.0]]).expand(2000, 2), "action": torch.zeros(2000, dtype=torch.long)}, [2000])
    torch.manual_seed(0)
    assert 0.45 < explore(td.clone())["action"].float().mean() < 0.55  # uniform at a huge temperature
    temperature.fill_(1e-3)  # changed in place, as VIREL's buffer is
    assert explore(td.clone())["action"].float().mean() == 1.0  # greedy: softmax(q / 1e-3) puts e^-1000 on action 0


def test_boltzmann_exploration_refuses_a_box_spec_when_built():
    # it was accepted and failed at its forward with "'NoneType' object has no attribute 'shape'"
    from torchrl.data import Bounded

    with pytest.raises(ValueError) as info:
        BoltzmannExploration(Bounded(-1.0, 1.0, shape=(1,)), tau=0.1)
    assert str(info.value) == (
        "BoltzmannExploration draws one of n discrete actions and needs a Categorical or OneHot action spec; got "
        "'BoundedContinuous': a Box action (Bounded) is explored by the policy's own noise, not by this module"
    )
    with pytest.raises(ValueError, match="^BoltzmannExploration draws one of n discrete actions .* got 'categorical'"):
        BoltzmannExploration("categorical", tau=0.1)  # the module reads the spec's n: a name has none
