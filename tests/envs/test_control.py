"""Continuous control: the mujoco env family, Box-action evaluation, config checks."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from torchrl_reg.configs import ActorCriticConfig, EnvConfig, structured
from torchrl_reg.configs.checks import validate_actor_critic_config
from torchrl_reg.envs import MujocoFloat32, make_env, make_single_env
from torchrl_reg.run import evaluate


def test_mujoco_family_gives_float32_observations_and_box_actions():
    env = make_env(EnvConfig(family="mujoco", name="Hopper-v5"), num_envs=2, seed=0)
    td = env.reset()
    assert td["observation"].dtype == torch.float32 and td["observation"].shape == (2, 11)
    spec = env.action_spec_unbatched
    assert spec.shape == (3,) and torch.equal(spec.space.low, -torch.ones(3))


def test_mujoco_pickle_continues_the_same_trajectory():
    env = MujocoFloat32("Hopper-v5")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(7):
        env.step(rng.uniform(-1, 1, 3).astype(np.float32))
    copy = pickle.loads(pickle.dumps(env))
    for _ in range(30):
        action = rng.uniform(-1, 1, 3).astype(np.float32)
        a, b = env.step(action), copy.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        if a[2] or a[3]:
            break
    # The env RNG is restored too: the next reset draws the same initial state.
    assert np.array_equal(env.reset()[0], copy.reset()[0])


def test_evaluate_with_box_actions_matches_a_plain_loop():
    cfg = EnvConfig(name="Pendulum-v1")
    push = lambda obs: torch.full((obs.shape[0], 1), 0.5)  # noqa: E731
    returns = evaluate(cfg, push, episodes=2, seed=3, max_steps=20)
    expected = []
    for i in range(2):
        env = make_single_env(cfg)
        env.reset(seed=3 + i)
        expected.append(sum(float(env.step(np.array([0.5], dtype=np.float32))[1]) for _ in range(20)))
    assert returns == pytest.approx(expected, rel=1e-6)
    noisy = evaluate(cfg, push, episodes=2, seed=3, epsilon=1.0, max_steps=20)
    assert noisy == evaluate(cfg, push, episodes=2, seed=3, epsilon=1.0, max_steps=20) != returns


def test_control_config_checks():
    # Actor-critic schemas carry no Q-learning keys: Polyak targets after every update, no epsilon-greedy.
    for q_learning_key in ({"optim": {"target_update_interval": 10}}, {"exploration": {"eps_end": 0.1}}):
        with pytest.raises(ValueError, match="target_update_interval|exploration"):
            structured({"env": {"name": "Pendulum-v1"}, **q_learning_key}, ActorCriticConfig)
    cfg = structured({"env": {"family": "minatar", "name": "Breakout"}}, ActorCriticConfig)
    with pytest.raises(ValueError, match="env.family"):
        validate_actor_critic_config(cfg)

