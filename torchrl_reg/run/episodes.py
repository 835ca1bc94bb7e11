"""Training episodes' returns and lengths, summed from the collected batches."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from torchrl_reg.validation import check_numbers

__all__ = ["EpisodeTracker", "mean_last"]


class EpisodeTracker:
    """Returns and lengths of training episodes, summed from collected batches of shape ``[num_envs, T]``.

    Doing this on the collected batch (T small loops over a ``[num_envs]`` tensor) instead of with a
    ``RewardSum`` transform keeps the per-step env overhead down. ``done`` ends an episode
    (terminated or truncated). The reward read is the raw env reward, before any clipping.
    """

    def __init__(self, num_envs: int):
        self.running_return = torch.zeros(num_envs, dtype=torch.float64)
        self.running_length = torch.zeros(num_envs, dtype=torch.int64)
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.end_frames: list[int] = []

    def update(self, data: TensorDictBase, frames_before: int) -> list[float]:
        """Add a batch collected after ``frames_before`` frames; returns the episodes it completed."""
        # Bookkeeping on the CPU whatever the collector's storing device (one copy per batch).
        reward = data.get(("next", "reward")).reshape(data.shape[0], data.shape[1]).cpu()
        done = data.get(("next", "done")).reshape(data.shape[0], data.shape[1]).cpu()
        num_envs, steps = done.shape
        finished: list[float] = []
        if not bool(done.any()):
            self.running_return += reward.sum(1, dtype=torch.float64)
            self.running_length += steps
            return finished
        for t in range(steps):
            self.running_return += reward[:, t]
            self.running_length += 1
            ended = done[:, t]
            if bool(ended.any()):
                idx = ended.nonzero().squeeze(-1)
                frame = frames_before + (t + 1) * num_envs
                for i in idx.tolist():
                    finished.append(float(self.running_return[i]))
                    self.returns.append(finished[-1])
                    self.lengths.append(int(self.running_length[i]))
                    self.end_frames.append(frame)
                self.running_return[idx] = 0.0
                self.running_length[idx] = 0
        return finished

    def state_dict(self) -> dict[str, Any]:
        return {
            "running_return": self.running_return.clone(),
            "running_length": self.running_length.clone(),
            "returns": torch.tensor(self.returns, dtype=torch.float64),
            "lengths": torch.tensor(self.lengths, dtype=torch.int64),
            "end_frames": torch.tensor(self.end_frames, dtype=torch.int64),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s entries, each checked as :meth:`update` makes it (``ValueError`` naming the
        entry): finite returns, episodes of at least one frame ending at frames that do not decrease, one running
        return and length per env."""
        num_envs = len(self.running_return)
        check_numbers("tracker.running_return", state["running_return"], length=num_envs)
        check_numbers("tracker.running_length", state["running_length"], 0, integer=True, length=num_envs)
        episodes = len(check_numbers("tracker.returns", state["returns"]))
        check_numbers("tracker.lengths", state["lengths"], 1, integer=True, length=episodes)
        ends = check_numbers("tracker.end_frames", state["end_frames"], 1, integer=True, length=episodes)
        if any(later < earlier for earlier, later in zip(ends, ends[1:])):
            raise ValueError(f"tracker.end_frames must not decrease (episodes end in the order they are played), got {ends}")
        self.running_return = state["running_return"].clone()
        self.running_length = state["running_length"].clone()
        self.returns = state["returns"].tolist()
        self.lengths = state["lengths"].tolist()
        self.end_frames = state["end_frames"].tolist()


def mean_last(values: Sequence[float], n: int = 100) -> float:
    """Mean of the last ``n`` values (NaN when there are none): the usual 'final return'."""
    tail = list(values)[-n:]
    return float(sum(tail) / len(tail)) if tail else math.nan
