"""The replay buffer of a recipe run (TorchRL ``TensorDictReplayBuffer``) and how a loop samples it."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import LazyMemmapStorage, LazyTensorStorage, PrioritizedSampler, RandomSampler, TensorDictReplayBuffer

from torchrl_reg.data.frame_stack import frame_stack_replay_buffer

__all__ = ["TRANSITION_KEYS", "ToDevice", "make_replay_buffer", "sample_minibatches"]

#: What a one-step Q-learning loss reads; everything else the collector produces is not stored.
TRANSITION_KEYS: tuple = (
    "observation",
    "action",
    ("next", "observation"),
    ("next", "reward"),
    ("next", "done"),
    ("next", "terminated"),
    ("next", "truncated"),
)


def make_replay_buffer(
    cfg: Any,
    *,
    device: torch.device | str = "cpu",
    scratch_dir: str | Path | None = None,
    frame_stack: int = 1,
    num_envs: int = 1,
) -> TensorDictReplayBuffer:
    """Uniform or prioritized replay of ``cfg.size`` transitions (a ``BufferConfig``).

    Prioritized replay (Schaul et al. 2016) reads the priority from ``"td_error"``, the key TorchRL
    losses write in place; ``priority_beta`` is the importance-sampling exponent.
    ``cfg.storage="memmap"`` keeps the transitions in memory-mapped files under ``scratch_dir``.
    ``cfg.dedup_frames`` with ``frame_stack > 1`` stores each frame once
    (:class:`~torchrl_reg.data.FrameStackStorage`; batches are ``[num_envs, T]`` collector data
    flattened with ``reshape(-1)``, stacks padded with zeros as the recipes' Atari envs do).
    """
    target_device = torch.device(device)
    if cfg.storage == "memmap" and target_device.type != "cpu":
        # Memory maps live in host memory (TorchRL refuses another device): store on the CPU and
        # move each sampled batch to the accelerator.
        buffer = make_replay_buffer(
            cfg, device="cpu", scratch_dir=scratch_dir, frame_stack=frame_stack, num_envs=num_envs
        )
        buffer.append_transform(ToDevice(target_device))
        return buffer
    sampler = PrioritizedSampler(cfg.size, alpha=cfg.priority_alpha, beta=cfg.priority_beta) if cfg.prioritized else None
    if cfg.dedup_frames and frame_stack > 1:
        return frame_stack_replay_buffer(
            cfg.size,
            batch_size=cfg.batch_size,
            sampler=sampler,
            frame_stack=frame_stack,
            num_envs=num_envs,
            padding="zeros",
            storage=cfg.storage,
            scratch_dir=None if scratch_dir is None else str(scratch_dir),
            device=device,
        )
    if cfg.storage == "memmap":
        storage = LazyMemmapStorage(cfg.size, scratch_dir=None if scratch_dir is None else str(scratch_dir), device=device)
    else:
        storage = LazyTensorStorage(cfg.size, device=device)
    return TensorDictReplayBuffer(
        storage=storage, sampler=sampler or RandomSampler(), batch_size=cfg.batch_size, priority_key="td_error"
    )


class ToDevice:
    """Replay-buffer transform moving a sampled batch to ``device`` (memory-mapped storage on an accelerator run)."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        return batch.to(self.device, non_blocking=True)

    def __repr__(self) -> str:
        return f"ToDevice({self.device})"


def sample_minibatches(buffer: TensorDictReplayBuffer, num: int) -> Iterator[TensorDictBase]:
    """The ``num`` minibatches of one iteration's ``num`` updates, drawn lazily as the loop asks.

    Uniform replay draws all of them in one call: the buffer does not change between these
    updates, so this is the distribution of ``num`` separate calls without ``num`` times the
    overhead. Prioritized replay draws one at a time, after the previous update has written its
    priorities back (``buffer.update_tensordict_priority``).
    """
    if num <= 0:
        return
    if isinstance(buffer.sampler, PrioritizedSampler):
        for _ in range(num):
            yield buffer.sample()
        return
    batch_size = buffer.batch_size
    with warnings.catch_warnings():
        # Drawing num batches at once is deliberate, not the size conflict TorchRL warns about.
        warnings.filterwarnings("ignore", message="Got conflicting batch_sizes", category=UserWarning)
        batches = buffer.sample(batch_size * num)
    batches = batches.reshape(num, batch_size)
    # Indexing (not unbind) gives each minibatch the same strides, so a compiled update is reused.
    for k in range(num):
        yield batches[k]
