"""The memory-mapped replay storage's folder (``buffer.storage=memmap``): made from the locked run directory's
descriptor and handed to TorchRL by that descriptor, so its files stay in the folder that was checked when ``replay``
is swapped for a link before TorchRL creates them; a storage that cannot fit is refused before any file is made."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from torchrl.envs import GymEnv

from torchrl_reg.configs.schemas import BufferConfig
from torchrl_reg.data import make_replay_buffer
from torchrl_reg.run.recipe_run import replay_scratch_dir
from torchrl_reg.run.rundir import StorageRefused, lock_run_dir, release_run_dir


def _cfg(size: int, total_frames: int = 1000):
    buffer = OmegaConf.merge(OmegaConf.structured(BufferConfig), {"storage": "memmap", "size": size, "batch_size": 4})
    return OmegaConf.create({"buffer": buffer, "env": {"frame_stack": 1}, "collector": {"total_frames": total_frames}})


@pytest.fixture
def locked(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock_run_dir(run_dir)
    yield run_dir
    release_run_dir(run_dir)


def test_replay_files_stay_in_the_checked_folder_when_replay_is_swapped_for_a_link(locked, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    env = GymEnv("CartPole-v1")
    cfg = _cfg(100)
    scratch = replay_scratch_dir(cfg, locked, env)
    assert scratch.startswith("/proc/self/fd/") and (locked / "replay").is_dir()
    (locked / "replay").rename(locked / "replay.moved")  # right after the check, before TorchRL's first file
    (locked / "replay").symlink_to(outside)
    buffer = make_replay_buffer(cfg.buffer, scratch_dir=scratch)
    buffer.extend(env.rollout(5))
    assert len(buffer) == 5 and not any(outside.rglob("*"))
    assert any((locked / "replay.moved").rglob("*.memmap"))


def test_a_memmap_storage_larger_than_the_filesystem_is_refused_before_any_file(locked):
    env = GymEnv("CartPole-v1")
    with pytest.raises(StorageRefused, match=r"buffer.storage=memmap .* more than the whole filesystem .*buffer.size=10000"
                                             r"00000000\). Lower buffer.size, use buffer.storage=tensor"):
        replay_scratch_dir(_cfg(10**12), locked, env)
    assert sorted(p.name for p in locked.iterdir()) == ["run.lock"]


def test_another_storage_makes_no_folder(locked):
    cfg = _cfg(100)
    cfg.buffer.storage = "tensor"
    assert replay_scratch_dir(cfg, locked, GymEnv("CartPole-v1")) is None
    assert not (locked / "replay").exists()
