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
