"""Env presets and the Atari preprocessing, checked against independent computations (networks: tests/modules/test_q_networks.py)."""
from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

from torchrl_reg.configs import EnvConfig
from torchrl_reg.envs import (
    check_discrete_action_spec,
    get_env_state,
    make_env,
    make_single_env,
    num_actions,
    set_env_state,
)
from torchrl_reg.envs.atari import AtariPreprocessing, _area_resize_matrix

ATARI = EnvConfig(family="atari", name="Pong", sticky_action_prob=0.25, frame_skip=4, frame_stack=4, max_episode_steps=27000)


def test_area_resize_matches_block_average():
    # 210 -> 84 is a factor 2.5: duplicating every pixel (420 px) then averaging blocks of 5 is
    # the exact area average, computed without any overlap arithmetic.
    rng = np.random.default_rng(0)
    col = rng.random(210)
    expected = np.repeat(col, 2).reshape(84, 5).mean(1)
    np.testing.assert_allclose(_area_resize_matrix(210, 84) @ col, expected, rtol=1e-6)
    # 160 -> 84: a factor 40/21; duplicating 21 times and averaging blocks of 40.
    row = rng.random(160)
    expected = np.repeat(row, 21).reshape(84, 40).mean(1)
    np.testing.assert_allclose(_area_resize_matrix(160, 84) @ row, expected, rtol=1e-5)


def test_atari_frame_skip_max_pools_last_two_frames_and_sums_rewards():
    env = AtariPreprocessing("ALE/Pong-v5", sticky_action_prob=0.0, frame_skip=4)
    raw = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    env.reset(seed=3)
    raw.reset(seed=3)
    for _ in range(60):
        obs, reward, *_ = env.step(2)
        frames, total = [], 0.0
        for _ in range(4):
            f, r, *_ = raw.step(2)
            frames.append(f)
            total += r
        pooled = np.maximum(frames[-1], frames[-2]).astype(np.float64)
        exact = _area_resize_matrix(210, 84).astype(np.float64) @ pooled @ _area_resize_matrix(160, 84).T.astype(np.float64)
        # Rounded exactly, except within float32 error of a tie (x.5), where either neighbour is right.
        clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-3
        np.testing.assert_array_equal(obs[clear], np.rint(exact[clear]))
        assert np.abs(obs - exact).max() <= 0.5 + 1e-3
        assert reward == total
    raw.close()
    env.close()


def test_atari_resize_is_a_hook_on_the_max_pooled_frame():
    seen = []

    class Blank(AtariPreprocessing):  # a user's own resize
        def resize(self, frame):
            seen.append(frame.copy())
            return np.zeros((self.screen_size, self.screen_size), dtype=np.uint8)

    env = Blank("ALE/Pong-v5", sticky_action_prob=0.0, frame_skip=4)
    raw = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    obs, _ = env.reset(seed=3)
    first, _ = raw.reset(seed=3)
    assert not obs.any() and seen[0].dtype == np.float32
    np.testing.assert_array_equal(seen[0], first)
    for _ in range(5):
        assert not env.step(2)[0].any()
        frames = [raw.step(2)[0] for _ in range(4)]
        np.testing.assert_array_equal(seen[-1], np.maximum(frames[-1], frames[-2]))
    # the default resize of any frame: the area average, as blocks of a 2 x 21 times finer grid (float64)
    frame = np.random.default_rng(0).integers(0, 256, (210, 160)).astype(np.float32)
    fine = np.repeat(np.repeat(frame.astype(np.float64), 2, axis=0), 21, axis=1)  # 420 x 3360
    exact = fine.reshape(84, 5, 84, 40).mean(axis=(1, 3))
    assert np.abs(AtariPreprocessing.resize(env, frame) - exact).max() <= 0.5 + 1e-3
    raw.close()
    env.close()


def test_atari_preset_shapes_and_pickle_round_trip_continues_identically():
    env = make_single_env(ATARI)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    for t in range(30):
        env.step(t % 6)
    clone = pickle.loads(pickle.dumps(env))
    for t in range(100):  # sticky actions draw from the emulator RNG: it must be restored too
        a = env.step(t % 6)
        b = clone.step(t % 6)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]


def test_minatar_preset_full_action_set_channels_first():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = make_single_env(EnvConfig(family="minatar", name="SpaceInvaders", sticky_action_prob=0.1))
    # v0 is deliberate (full action set): gymnasium's "out of date, upgrade to v1" advice is silenced
    assert not [w for w in caught if "out of date" in str(w.message)]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 10, 10) and obs.dtype == np.uint8
    assert env.action_space.n == 6  # full action set (v0)
    assert env.unwrapped.game.sticky_action_prob == 0.1


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="MinAtar game"):
        make_single_env(EnvConfig(family="minatar", name="Pacman"))
    with pytest.raises(ValueError, match="ALE game"):
        make_single_env(EnvConfig(family="atari", name="NoSuchGame"))
    with pytest.raises(ValueError, match="registered gymnasium id"):
        make_single_env(EnvConfig(name="NoSuchEnv-v9"))
    with pytest.raises(ValueError, match="env.family"):
        make_single_env(EnvConfig(family="robotics"))


def test_vector_env_batch_spec_and_state_round_trip():
    env = make_env(EnvConfig(), num_envs=3, seed=5)
    assert env.batch_size == torch.Size([3]) and num_actions(env) == 2
    check_discrete_action_spec(env)
    td = env.reset()
    state = get_env_state(env)
    actions = torch.tensor([0, 1, 1])
    first = env.step(td.set("action", actions))["next", "observation"].clone()
    set_env_state(env, state)
    again = env.step(td.set("action", actions))["next", "observation"]
    torch.testing.assert_close(first, again)


def test_non_discrete_action_space_is_refused():
    env = make_env(EnvConfig(name="Pendulum-v1"), num_envs=1)
    with pytest.raises(ValueError, match="discrete action space.*Bounded"):
        check_discrete_action_spec(env)


