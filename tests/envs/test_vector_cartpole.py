"""VectorCartPole against gymnasium's CartPole-v1 (the reference it re-implements), copy by copy.

Each copy is put in the state of its own ``gym.make("CartPole-v1")`` env and both are stepped
with the same random actions: observations, rewards, ``terminated`` and ``truncated`` (the
TimeLimit wrapper's 500 steps) must agree at every step, through the masked resets TorchRL uses.
"""
from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

from torchrl_reg.configs import EnvConfig
from torchrl_reg.envs import VectorCartPole, get_env_state, make_env, make_vector_env, set_env_state


def _reference(n: int, seed: int) -> list[gym.Env]:
    envs = [gym.make("CartPole-v1") for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    return envs


def test_transitions_equal_gymnasium_cartpole_v1():
    n, rng = 6, np.random.default_rng(0)
    ref = _reference(n, seed=10)
    venv = VectorCartPole(n)
    venv.reset(seed=0)
    venv.state[:] = np.stack([env.unwrapped.state for env in ref])
    terminations = truncations = 0
    for _ in range(1500):
        actions = rng.integers(0, 2, size=n)
        obs, reward, terminated, truncated, _ = venv.step(actions)
        for i, env in enumerate(ref):
            obs_i, reward_i, terminated_i, truncated_i, _ = env.step(int(actions[i]))
            assert obs[i].dtype == np.float32 and obs_i.dtype == np.float32
            np.testing.assert_allclose(obs[i], obs_i, rtol=1e-6, atol=1e-6)
            assert (reward[i], bool(terminated[i]), bool(truncated[i])) == (reward_i, terminated_i, truncated_i)
        done = terminated | truncated
        terminations += int(terminated.sum())
        truncations += int((truncated & ~terminated).sum())
        if done.any():
            venv.reset(options={"reset_mask": done})
            for i in np.flatnonzero(done):
                ref[i].reset()
                venv.state[i] = ref[i].unwrapped.state  # continue from the reference's new start
    assert terminations > 50


def test_time_limit_truncates_at_500_steps():
    venv = VectorCartPole(2)
    venv.reset(seed=1)
    for t in range(1, 501):
        venv.state[:] = 0.0  # balanced: never terminates
        _, _, terminated, truncated, _ = venv.step(np.array([0, 1]))
        assert not terminated.any()
        assert truncated.all() == (t == 500)


def test_reset_mask_draws_from_cartpole_reset_distribution_only_for_masked_copies():
    venv = VectorCartPole(1000)
    obs, _ = venv.reset(seed=3)
    assert obs.shape == (1000, 4) and np.all(np.abs(obs) <= 0.05)
    venv.step(np.ones(1000, dtype=np.int64))
    before = venv.state.copy()
    mask = np.arange(1000) % 2 == 0
    obs, _ = venv.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(venv.state[~mask], before[~mask])
    assert np.all(np.abs(obs[mask]) <= 0.05) and not np.array_equal(obs[mask], before[mask].astype(np.float32))
    assert (venv.elapsed_steps[mask] == 0).all() and (venv.elapsed_steps[~mask] == 1).all()
    with pytest.raises(ValueError, match=r"reset_mask must have shape \(1000,\)"):
        venv.reset(options={"reset_mask": np.ones(3, dtype=bool)})


def test_native_vector_is_the_cartpole_default_and_can_be_turned_off():
    assert isinstance(make_vector_env(EnvConfig(), 4), VectorCartPole)
    assert isinstance(make_vector_env(EnvConfig(native_vector=False), 4), gym.vector.SyncVectorEnv)
    assert isinstance(make_vector_env(EnvConfig(name="Acrobot-v1"), 4), gym.vector.SyncVectorEnv)
    assert make_vector_env(EnvConfig(name="CartPole-v0"), 2).max_episode_steps == 200
    assert make_vector_env(EnvConfig(max_episode_steps=50), 2).max_episode_steps == 50


def test_torchrl_env_state_round_trip_replays_steps_and_resets():
    """Checkpoint/resume: after ``set_env_state`` the same actions give the same observations,
    including the copies reset on the way (their start states come from the restored generator)."""
    env = make_env(EnvConfig(), num_envs=5, seed=7)
    td = env.reset()
    g = torch.Generator().manual_seed(0)
    actions = [torch.randint(0, 2, (5,), generator=g) for _ in range(120)]

    def roll(td):
        observations, resets = [], 0
        for a in actions:
            out, td = env.step_and_maybe_reset(td.clone().set("action", a))
            observations.append(td["observation"].clone())
            resets += int(out["next", "done"].sum())
        return torch.stack(observations), resets

    state = get_env_state(env)
    first, resets = roll(td)
    set_env_state(env, state)
    again, _ = roll(td)
    assert resets > 0
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    clone = pickle.loads(pickle.dumps(env._env))
    np.testing.assert_array_equal(clone.state, env._env.state)
    with pytest.raises(ValueError, match="native_vector"):
        set_env_state(make_env(EnvConfig(native_vector=False), num_envs=5), state)
