"""FrameStackStorage against the plain stacked layout, on real ALE data (ALE ships its ROMs)."""
from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, PrioritizedSampler, TensorDictReplayBuffer
from torchrl.envs import GymWrapper, MultiStepTransform

from torchrl_reg.configs import EnvConfig
from torchrl_reg.data import FrameStackStorage, frame_stack_replay_buffer
from torchrl_reg.envs import AtariPreprocessing, make_env

KEYS = ("observation", "action", ("next", "observation"), ("next", "reward"), ("next", "done"),
        ("next", "terminated"), ("next", "truncated"))


def _atari_cfg(max_episode_steps: int) -> EnvConfig:
    # The recipes' Atari pipeline: Dopamine preprocessing, 4-frame stack padded with zeros.
    return EnvConfig(family="atari", name="Breakout", sticky_action_prob=0.25, frame_skip=4, frame_stack=4,
                     max_episode_steps=max_episode_steps)


def _collect(env, frames_per_batch: int, total: int, traj_ids: bool = False) -> list:
    torch.manual_seed(0)
    collector = Collector(env, None, frames_per_batch=frames_per_batch, total_frames=total, track_traj_ids=traj_ids)
    batches = [d.clone() for d in collector]
    collector.shutdown()
    return batches


@pytest.fixture(scope="module")
def two_env_batches():
    """Breakout, 2 vectorized envs, 600 steps; episodes cut at 45 steps or ended by the game."""
    env = make_env(_atari_cfg(45), num_envs=2, seed=0)
    return _collect(env, 100, 600)


@pytest.fixture(scope="module")
def one_env_batches():
    env = make_env(_atari_cfg(40), num_envs=1, seed=1)
    return [d.reshape(-1) for d in _collect(env, 50, 400, traj_ids=True)]


def _assert_same(a: TensorDict, b: TensorDict) -> None:
    skip = ("index", "priority_weight")
    assert set(a.exclude(*skip).keys(True, True)) == set(b.exclude(*skip).keys(True, True))
    for key in b.exclude(*skip).keys(True, True):
        assert torch.equal(a[key], b[key]), key


def _pair(capacity: int, transform=None, sampler=None, **kwargs):
    dedup = frame_stack_replay_buffer(capacity, batch_size=16, transform=transform, sampler=sampler, **kwargs)
    naive = TensorDictReplayBuffer(storage=LazyTensorStorage(capacity), batch_size=16,
                                   transform=None if transform is None else MultiStepTransform(transform.n_steps, transform.gamma))
    return dedup, naive


def test_stacks_equal_env_output_across_episodes_and_wrap_around(two_env_batches):
    dedup, naive = _pair(120, num_envs=2, padding="zeros")
    episode_ends = 0
    for data in two_env_batches:
        flat = data.select(*KEYS).reshape(-1)  # env-major: [env 0 steps, env 1 steps]
        dedup.extend(flat)
        naive.extend(flat)
        episode_ends += int(flat["next", "done"].sum())
        _assert_same(dedup[:], naive[:])
    assert episode_ends >= 10  # many episode boundaries went through the buffer
    assert sum(d.numel() for d in two_env_batches) > 4 * 120  # the ring wrapped several times
    # the first steps of an episode are padded with zeros, as FrameStackObservation does
    starts = naive[:]["observation"][:, 0].flatten(1).amax(-1) == 0
    assert starts.any()


def test_n_step_transform_and_prioritized_sampling(one_env_batches):
    dedup, naive = _pair(150, transform=MultiStepTransform(3, 0.99),
                         sampler=PrioritizedSampler(150, alpha=0.6, beta=0.4), padding="zeros")
    for data in one_env_batches:
        dedup.extend(data.select(*KEYS, ("collector", "traj_ids")))
        naive.extend(data.select(*KEYS, ("collector", "traj_ids")))
    stored = dedup[:]
    _assert_same(stored, naive[:])
    assert (stored["steps_to_next_obs"] < 3).any() and (stored["steps_to_next_obs"] == 3).any()
    for _ in range(3):
        batch = dedup.sample()
        _assert_same(batch, naive[batch["index"]])
        batch["td_error"] = torch.rand(16)
        dedup.update_tensordict_priority(batch)
    assert "priority_weight" in batch.keys()


def test_same_padding_and_padding_mismatch():
    def make():
        env = gym.wrappers.FrameStackObservation(AtariPreprocessing("ALE/Breakout-v5"), 4, padding_type="reset")
        env = GymWrapper(gym.wrappers.TimeLimit(env, 30), categorical_action_encoding=True)
        env.set_seed(3)
        return env

    batches = _collect(make(), 40, 120)
    dedup, naive = _pair(100, padding="same", traj_key=None)
    for data in batches:
        dedup.extend(data.select(*KEYS))
        naive.extend(data.select(*KEYS))
    _assert_same(dedup[:], naive[:])
    # the first episode may have been caught mid-way (real frames kept); the next one must be padded
    wrong = frame_stack_replay_buffer(100, padding="zeros", traj_key=None)
    with pytest.raises(ValueError, match="padding='zeros'"):
        wrong.extend(batches[0].select(*KEYS))


def test_trajectory_caught_mid_episode(one_env_batches):
    data = torch.cat([d.select(*KEYS, ("collector", "traj_ids")) for d in one_env_batches[:3]])
    data = data[7:]  # the first kept step has real frames in its history, not padding
    dedup, naive = _pair(200, padding="zeros")
    dedup.extend(data)
    naive.extend(data)
    _assert_same(dedup[:], naive[:])


def test_memmap_dumps_and_state_dict(one_env_batches, tmp_path):
    dedup, naive = _pair(100, storage="memmap", scratch_dir=tmp_path / "scratch", padding="zeros")
    for data in one_env_batches[:4]:
        dedup.extend(data.select(*KEYS))
        naive.extend(data.select(*KEYS))
    _assert_same(dedup[:], naive[:])
    dedup.dumps(tmp_path / "dump")
    restored = frame_stack_replay_buffer(100, storage="memmap", scratch_dir=tmp_path / "other", padding="zeros")
    restored.loads(tmp_path / "dump")
    _assert_same(restored[:], naive[:])
    # writing goes on from where the dumped buffer stopped (same frame ids, same open episode)
    copy = frame_stack_replay_buffer(100, padding="zeros")
    copy.load_state_dict(dedup.state_dict())
    for rb in (restored, copy, naive):
        rb.extend(one_env_batches[4].select(*KEYS))
    _assert_same(restored[:], naive[:])
    _assert_same(copy[:], naive[:])


def test_bytes_per_transition_below_target(one_env_batches):
    size = 256
    storage = FrameStackStorage(size, padding="zeros")
    rb = TensorDictReplayBuffer(storage=storage, collate_fn=lambda b: b)
    rb.extend(one_env_batches[0].select(*KEYS))
    frame_bytes = 84 * 84
    row_bytes = (storage.nbytes() - storage.frame_capacity * frame_bytes) / size
    # at the standard 1M transitions with the default frame ring (1M + 1M/32 + 1024 frames)
    full = FrameStackStorage(1_000_000)
    per_transition = row_bytes + full.frame_capacity * frame_bytes / 1_000_000
    naive = 2 * 4 * frame_bytes
    assert per_transition <= 7500 < naive / 7


def test_out_of_order_steps_are_refused(one_env_batches):
    data = one_env_batches[0].select(*KEYS)
    shuffled = data[torch.randperm(data.numel(), generator=torch.Generator().manual_seed(0))]
    with pytest.raises(ValueError, match="consecutive|starts an episode"):
        frame_stack_replay_buffer(100, padding="zeros").extend(shuffled)


def test_frame_ring_too_small_raises():
    env = make_env(_atari_cfg(2), num_envs=1, seed=0)  # 2-step episodes: 3 frames per 2 transitions
    data = _collect(env, 60, 60)[0].select(*KEYS).reshape(-1)
    # validation reads the transitions back as they are written, so this fails at extend
    with pytest.raises(RuntimeError, match="frame_capacity"):
        frame_stack_replay_buffer(40, frame_capacity=44, padding="zeros").extend(data)
    unchecked = frame_stack_replay_buffer(40, frame_capacity=44, padding="zeros", validate=False)
    unchecked.extend(data)
    with pytest.raises(RuntimeError, match="frame_capacity"):
        unchecked[:]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_size": 0}, "max_size"),
        ({"frame_stack": 0}, "frame_stack"),
        ({"padding": "reflect"}, "padding"),
        ({"storage": "disk"}, "storage"),
        ({"num_envs": 0}, "num_envs"),
        ({"frame_capacity": 10}, "frame_capacity"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"max_size": 100, **kwargs}
    with pytest.raises(ValueError, match=match):
        FrameStackStorage(**kwargs)


def test_wrong_stack_size_and_block_count(one_env_batches):
    data = one_env_batches[0].select(*KEYS)
    with pytest.raises(ValueError, match=r"frame_stack=3"):
        frame_stack_replay_buffer(100, frame_stack=3).extend(data)
    with pytest.raises(ValueError, match="num_envs=3"):
        frame_stack_replay_buffer(100, num_envs=3, traj_key=None).extend(data[:50])


def test_a_checkpoint_holds_the_written_rows_and_frames_and_resumes_them(one_env_batches, tmp_path):
    from torchrl_reg.run.checkpoint import (
        load_checkpoint,
        load_replay_buffer_state,
        replay_buffer_state,
        save_checkpoint,
    )

    dedup, naive = _pair(1000, padding="zeros")
    for data in one_env_batches[:2]:
        dedup.extend(data.select(*KEYS))
        naive.extend(data.select(*KEYS))
    save_checkpoint(tmp_path / "ck.pt", {"replay_buffer": replay_buffer_state(dedup)})
    saved = load_checkpoint(tmp_path / "ck.pt")["replay_buffer"]["_storage"]
    storage = dedup._storage
    # rows: the transitions written; frames: each frame once (fewer than the 1000-row capacity)
    assert {v.shape[0] for v in saved["rows"]["_storage"].values()} == {len(storage._rows)}
    assert {v.shape[0] for v in saved["frames"]["_storage"].values()} == {len(storage._frames)}
    restored = frame_stack_replay_buffer(1000, padding="zeros")
    load_replay_buffer_state(restored, load_checkpoint(tmp_path / "ck.pt")["replay_buffer"])
    for rb in (restored, naive):
        rb.extend(one_env_batches[2].select(*KEYS))
    _assert_same(restored[:], naive[:])
