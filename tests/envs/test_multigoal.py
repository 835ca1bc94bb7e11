"""MultiGoal-v0 against its definition worked out by hand, and run by a real TorchRL collector."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torchrl.collectors import Collector
from torchrl.envs import GymEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

import torchrl_reg.envs  # noqa: F401  (registers MultiGoal-v0)
from torchrl_reg.envs.multigoal import goal_index
from torchrl_reg.modules.soft_q import svgd_sampler_actor


def _env_at(position) -> gym.Env:
    env = gym.make("MultiGoal-v0")
    env.reset(seed=0)
    env.unwrapped.position = np.array(position, dtype=np.float64)
    return env


def test_step_reward_by_hand():
    # From (1, 2) with a = (0.5, -0.25): s' = (1.5, 1.75); ||a||^2 = 0.3125; nearest goal (0, 5):
    # 1.5^2 + 3.25^2 = 12.8125. r = -30 * 0.3125 - 12.8125 = -22.1875.
    env = _env_at([1.0, 2.0])
    obs, reward, terminated, truncated, _ = env.step(np.array([0.5, -0.25], dtype=np.float32))
    assert obs.dtype == np.float32 and np.allclose(obs, [1.5, 1.75])
    assert reward == pytest.approx(-22.1875)
    assert not terminated and not truncated


def test_actions_and_positions_are_clipped():
    # a = (3, -0.5) is clipped to (1, -0.5): ||a||^2 = 1.25; s' = clip((7.5, -1.5)) = (7, -1.5);
    # nearest goal (5, 0): 4 + 2.25 = 6.25. r = -37.5 - 6.25.
    env = _env_at([6.5, -1.0])
    obs, reward, terminated, _, _ = env.step(np.array([3.0, -0.5], dtype=np.float32))
    assert np.allclose(obs, [7.0, -1.5])
    assert reward == pytest.approx(-43.75)
    assert not terminated


def test_reaching_a_goal_pays_ten_and_terminates():
    # From (-4.5, 0.5), a = (-0.2, 0): s' = (-4.7, 0.5), distance to (-5, 0) = sqrt(0.34) < 1.
    env = _env_at([-4.5, 0.5])
    _, reward, terminated, _, _ = env.step(np.array([-0.2, 0.0], dtype=np.float32))
    assert terminated
    assert reward == pytest.approx(-30 * 0.04 - 0.34 + 10)
    assert goal_index(np.array([[-4.7, 0.5], [0.0, 4.2], [0.0, 0.0]])).tolist() == [1, 2, -1]


def test_episodes_are_truncated_after_30_steps_and_start_near_the_origin():
    env = gym.make("MultiGoal-v0")
    starts = np.stack([env.reset(seed=s)[0] for s in range(2000)])
    assert abs(starts.mean()) < 0.01 and starts.std() == pytest.approx(0.1, rel=0.05)
    env.reset(seed=0)
    for step in range(1, 31):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated
        assert truncated == (step == 30)


def test_svgd_sampler_runs_in_a_torchrl_collector():
    torch.manual_seed(0)
    env = GymEnv("MultiGoal-v0")
    env.set_seed(0)
    actor = svgd_sampler_actor(2, env.action_spec, num_cells=[16])
    collector = Collector(env, actor, frames_per_batch=40, total_frames=80)
    batches = list(collector)
    collector.shutdown()
    assert len(batches) == 2
    data = batches[0]
    assert data["action"].shape == (40, 2) and (data["action"].abs() <= 1).all()
    # Rewards recomputed from the stored transitions (position after the move, nearest goal).
    goals = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
    next_obs = data["next", "observation"]
    expected = -30 * data["action"].pow(2).sum(-1) - (next_obs.unsqueeze(-2) - goals).pow(2).sum(-1).min(-1).values
    expected = expected + 10 * data["next", "terminated"].squeeze(-1).float()
    assert torch.allclose(data["next", "reward"].squeeze(-1), expected, atol=1e-4)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(5, actor)
    assert math.isfinite(rollout["next", "reward"].sum().item())
