"""Episode tracking, schedules, checkpoints, CSV truncation, evaluation, config checks, stop flag."""
from __future__ import annotations

import os
import random
import signal
import warnings

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from torchrl_reg.configs import BufferConfig, EnvConfig, RecipeConfig, ValueBasedConfig, structured
from torchrl_reg.configs.checks import validate_recipe_config, validate_value_based_config
from torchrl_reg.data import make_replay_buffer, sample_minibatches
from torchrl_reg.modules import linear_schedule
from torchrl_reg.run import (
    clear_stop,
    evaluate,
    install_stop_signal_handlers,
    load_checkpoint,
    request_stop,
    request_stop_at,
    save_checkpoint,
    stop_requested,
    truncate_csv_logs,
)
from torchrl_reg.run.checkpoint import rng_state, set_rng_state
from torchrl_reg.run.episodes import EpisodeTracker, mean_last


def test_episode_tracker_matches_naive_loop():
    rng = np.random.default_rng(0)
    num_envs, steps, batches = 3, 5, 4
    tracker = EpisodeTracker(num_envs)
    naive_running = [0.0] * num_envs
    naive_returns, naive_frames = [], []
    frames = 0
    for _ in range(batches):
        reward = rng.integers(-2, 3, size=(num_envs, steps)).astype(np.float32)
        done = rng.random((num_envs, steps)) < 0.3
        data = TensorDict(
            {"next": {"reward": torch.from_numpy(reward)[..., None], "done": torch.from_numpy(done)[..., None]}},
            [num_envs, steps],
        )
        tracker.update(data, frames)
        for t in range(steps):
            for i in range(num_envs):
                naive_running[i] += reward[i, t]
                if done[i, t]:
                    naive_returns.append(naive_running[i])
                    naive_frames.append(frames + (t + 1) * num_envs)
                    naive_running[i] = 0.0
        frames += num_envs * steps
    assert tracker.returns == naive_returns
    assert tracker.end_frames == naive_frames
    assert tracker.running_return.tolist() == naive_running
    clone = EpisodeTracker(num_envs)
    clone.load_state_dict(tracker.state_dict())
    assert clone.returns == tracker.returns and clone.lengths == tracker.lengths


def test_mean_last_and_linear_schedule():
    assert mean_last([1.0, 2.0, 3.0, 4.0], 2) == 3.5
    assert np.isnan(mean_last([], 100))
    # CleanRL: epsilon 1 -> 0.05 over 250k steps.
    assert linear_schedule(1.0, 0.05, 250_000, 0) == 1.0
    assert linear_schedule(1.0, 0.05, 250_000, 125_000) == pytest.approx(0.525)
    assert linear_schedule(1.0, 0.05, 250_000, 10**6) == 0.05
    assert linear_schedule(1.0, 0.05, 0, 3) == 0.05


def test_checkpoint_atomic_and_rng_round_trip(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    save_checkpoint(path, {"rng": state, "x": torch.arange(3)})
    assert path.exists() and not (tmp_path / "checkpoint.pt.tmp").exists()
    loaded = load_checkpoint(path)
    set_rng_state(loaded["rng"])
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert again[0] == expected[0] and again[1] == expected[1]
    torch.testing.assert_close(again[2], expected[2])


def test_truncate_csv_logs(tmp_path):
    d = tmp_path / "csv" / "scalars" / "train"
    d.mkdir(parents=True)
    (d / "loss.csv").write_text("100,1.0\n200,2.0\n300,3.0\n")
    truncate_csv_logs(tmp_path, 200)
    assert (d / "loss.csv").read_text() == "100,1.0\n200,2.0\n"


def test_uniform_minibatches_one_call_and_prioritized_one_at_a_time():
    data = TensorDict({"observation": torch.arange(50.0)[:, None], "td_error": torch.ones(50, 1)}, [50])
    buffer = make_replay_buffer(BufferConfig(size=50, batch_size=8))
    buffer.extend(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the deliberate 4 x 8 draw must not warn about batch sizes
        batches = list(sample_minibatches(buffer, 4))
    assert len(batches) == 4 and all(b.shape == torch.Size([8]) for b in batches)
    prioritized = make_replay_buffer(BufferConfig(size=50, batch_size=8, prioritized=True))
    prioritized.extend(data)
    for batch in sample_minibatches(prioritized, 3):
        assert "priority_weight" in batch.keys() and batch.shape == torch.Size([8])
        batch.set("td_error", torch.zeros(8, 1))
        prioritized.update_tensordict_priority(batch)


def test_evaluate_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    always_left = lambda obs: torch.zeros(obs.shape[0], dtype=torch.long)  # noqa: E731
    a = evaluate(EnvConfig(), always_left, episodes=3, seed=7, epsilon=0.5, max_steps=500)
    b = evaluate(EnvConfig(), always_left, episodes=3, seed=7, epsilon=0.5, max_steps=500)
    assert a == b and len(a) == 3 and all(r >= 1 for r in a)
    assert torch.equal(before, torch.get_rng_state())
    capped = evaluate(EnvConfig(), always_left, episodes=2, seed=7, max_steps=3)
    assert capped == [3.0, 3.0]


def test_structured_refuses_unknown_and_ill_typed_keys():
    with pytest.raises(ValueError, match=r"'optim.learning_rate'.*Accepted keys.*'lr'"):
        structured({"optim": {"learning_rate": 1e-3}}, RecipeConfig)
    with pytest.raises(ValueError, match="collector.num_envs"):
        structured({"collector": {"num_envs": "many"}}, RecipeConfig)
    cfg = structured({"seed": 3}, RecipeConfig)
    validate_recipe_config(cfg)
    assert cfg.seed == 3 and cfg.env.name == "CartPole-v1"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"collector": {"frames_per_batch": 100, "num_envs": 16}}, "multiple of collector.num_envs=16"),
        ({"optim": {"lr": -1.0}}, r"optim.lr must be a finite number in \(0.0, inf\]"),
        ({"env": {"sticky_action_prob": 1.5}}, r"env.sticky_action_prob must be a finite number in \[0.0, 1.0\]"),
        ({"logger": {"backend": "mlflow"}}, "logger.backend must be one of"),
        ({"optim": {"target_update_interval": 505}}, "multiple of optim.frames_per_update=10"),
        ({"collector": {"init_random_frames": -320}}, r"collector.init_random_frames must be an integer >= 0, got collector.init_random_frames=-320"),
        ({"collector": {"init_random_frames": 100}}, "collector.init_random_frames must be a multiple of collector.frames_per_batch=320, got collector.init_random_frames=100"),
    ],
)
def test_range_checks_name_value_and_range(override, message):
    with pytest.raises(ValueError, match=message):
        validate_value_based_config(structured(override, ValueBasedConfig))


def test_stop_flag_signals_and_frame_target():
    clear_stop()
    previous = install_stop_signal_handlers()
    try:
        assert not stop_requested()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop_requested()
        clear_stop()
        request_stop_at(100)
        assert not stop_requested(99) and stop_requested(100)
        clear_stop()
        request_stop()
        assert stop_requested(0)
    finally:
        clear_stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_memmap_replay_on_an_accelerator_stores_on_cpu_and_moves_batches(tmp_path):
    """TorchRL refuses memory maps on another device: storage stays on the CPU, samples move.
    ("meta" stands in for an accelerator here; the GPU path was run on an H100.)"""
    from torchrl_reg.data import ToDevice

    for dedup, frame_stack in ((False, 1), (True, 4)):
        cfg = structured({"buffer": {"size": 64, "batch_size": 8, "storage": "memmap", "dedup_frames": dedup}},
                         RecipeConfig).buffer
        rb = make_replay_buffer(cfg, device="meta", scratch_dir=tmp_path / f"rb{dedup}", frame_stack=frame_stack)
        assert any(isinstance(getattr(t, "func", None), ToDevice) or "ToDevice" in repr(t) for t in rb._transform)
        obs = torch.zeros(2, 10, frame_stack, 3, 3, dtype=torch.uint8)
        data = TensorDict(
            {"observation": obs, "action": torch.zeros(2, 10, dtype=torch.long),
             "next": {"observation": obs.clone(), "reward": torch.zeros(2, 10, 1), "done": torch.zeros(2, 10, 1, dtype=torch.bool),
                      "terminated": torch.zeros(2, 10, 1, dtype=torch.bool), "truncated": torch.zeros(2, 10, 1, dtype=torch.bool)}},
            [2, 10],
        )
        rb.extend(data.reshape(-1))
        batch = rb.sample()
        assert batch["observation"].device.type == "meta"


def test_init_random_frames_act_uniformly_then_hand_over_to_the_policy():
    """Pendulum (actions in [-2, 2]) with a policy that always outputs 0: the first two 50-frame
    batches carry uniformly random actions, the third only the policy's zeros."""
    from tensordict.nn import TensorDictModule

    from torchrl_reg.configs import CollectorConfig
    from torchrl_reg.data import make_collector
    from torchrl_reg.envs import make_env

    torch.manual_seed(0)
    env = make_env(EnvConfig(family="classic", name="Pendulum-v1"), num_envs=1, seed=0)
    zeros = TensorDictModule(lambda obs: torch.zeros(*obs.shape[:-1], 1), in_keys=["observation"], out_keys=["action"])
    cfg = CollectorConfig(total_frames=150, num_envs=1, frames_per_batch=50, init_random_frames=100)
    actions = [data["action"].reshape(-1) for data in make_collector(env, zeros, cfg)]
    random = torch.cat(actions[:2])
    assert random.shape == (100,) and bool((random.abs() <= 2.0).all())
    assert bool((random != 0).all()) and random.min() < -1.0 and random.max() > 1.0  # spread over the box
    assert bool((actions[2] == 0).all())


def test_the_smoothed_curve_says_what_it_averages_and_csv_scalars_read_back(tmp_path):
    from torchrl_reg.run.logs import read_csv_scalar
    from torchrl_reg.run.plots import moving_mean_label

    assert moving_mean_label(12, 100) == "mean of all episodes so far (12 in all, fewer than 100)"
    assert moving_mean_label(101, 100) == "mean of the last 100 episodes"
    assert moving_mean_label(4, 4) == "mean of the last 4 episodes"  # as many as the window: not "fewer"
    path = tmp_path / "csv" / "scalars" / "train"
    path.mkdir(parents=True)
    (path / "temperature.csv").write_bytes(b"160,0.5\n240,0.25\n3")  # a cut last row is not read
    assert read_csv_scalar(tmp_path, "train/temperature") == ([160, 240], [0.5, 0.25])
    assert read_csv_scalar(tmp_path, "train/entropy") == ([], [])


@pytest.mark.parametrize("kind", ["tensor", "memmap", "prioritized"])
def test_a_checkpoint_holds_the_filled_part_of_the_buffer_and_resumes_it_exactly(tmp_path, kind):
    """10 of 1,000 rows written: the checkpoint holds 10 (FrameStackStorage: tests/data/test_frame_stack.py)."""
    from torchrl.data import LazyMemmapStorage, LazyTensorStorage, PrioritizedSampler, RandomSampler, TensorDictReplayBuffer

    from torchrl_reg.run.checkpoint import (
        load_checkpoint,
        load_replay_buffer_state,
        replay_buffer_state,
        save_checkpoint,
    )

    def make():
        storage = LazyMemmapStorage(1000, scratch_dir=str(tmp_path / "mm")) if kind == "memmap" else LazyTensorStorage(1000)
        sampler = PrioritizedSampler(1000, alpha=0.6, beta=0.4) if kind == "prioritized" else RandomSampler()
        return TensorDictReplayBuffer(storage=storage, sampler=sampler, batch_size=4)

    def data(start: int, n: int) -> TensorDict:
        return TensorDict({"obs": torch.arange(start, start + n, dtype=torch.float32).unsqueeze(-1)}, [n])

    original = make()
    original.extend(data(0, 10))
    save_checkpoint(tmp_path / "ck.pt", {"replay_buffer": replay_buffer_state(original)})
    saved = load_checkpoint(tmp_path / "ck.pt")["replay_buffer"]["_storage"]["_storage"]
    assert {key: value.shape[0] for key, value in saved.items()} == {"obs": 10, "index": 10}
    restored = make()
    load_replay_buffer_state(restored, load_checkpoint(tmp_path / "ck.pt")["replay_buffer"])
    for buffer in (original, restored):  # the writes go on where they stopped, in the full capacity
        buffer.extend(data(10, 5))
    assert len(restored) == len(original) == 15 and restored._storage._storage.batch_size == (1000,)
    torch.testing.assert_close(restored[:]["obs"], original[:]["obs"])
    samples = []
    for buffer in (original, restored):
        random.seed(0), np.random.seed(0), torch.manual_seed(0)  # the prioritized sampler draws with numpy
        samples.append(buffer.sample()["obs"])
    torch.testing.assert_close(samples[1], samples[0])


def test_a_policy_with_a_spec_that_returns_a_new_tensordict_is_collected():
    """SQL's sampler (an ``Actor`` with a spec) failed on CUDA with TorchRL 0.14.1 (gpu_check, H200): the policy
    ran on a copy of the collector's carrier, and the carrier's update got its keys as a set, which tensordict's
    ``unravel_key_list`` refuses. A policy returning a new tensordict takes that path on the CPU."""
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModuleBase
    from torchrl.data import Bounded, Composite

    from torchrl_reg.configs import CollectorConfig
    from torchrl_reg.data import make_collector
    from torchrl_reg.envs import make_env

    class NewTensorDictPolicy(TensorDictModuleBase):
        in_keys, out_keys = ["observation"], ["action"]
        spec = Composite(action=Bounded(-2.0, 2.0, shape=(1,)))

        def forward(self, td):
            return TensorDict(observation=td["observation"], action=torch.full((*td.batch_size, 1), 0.5),
                              batch_size=td.batch_size)

    env = make_env(EnvConfig(family="classic", name="Pendulum-v1"), num_envs=1, seed=0)
    cfg = CollectorConfig(total_frames=20, num_envs=1, frames_per_batch=10, init_random_frames=0)
    actions = [data["action"] for data in make_collector(env, NewTensorDictPolicy(), cfg)]
    assert len(actions) == 2 and bool((torch.cat(actions) == 0.5).all())
