"""Atomic checkpoints that let a run continue exactly where it stopped.

A checkpoint is one ``torch.save`` file (``<run_dir>/checkpoint.pt``) holding only tensors,
numbers, strings, bytes and containers of them, so that it loads with
``torch.load(weights_only=True)``. The one exception is the env state: gymnasium envs (physics
state, MinAtar grids, ALE emulator snapshots, their RNGs, wrapper counters) have no tensor form,
so they are pickled into a ``bytes`` entry and unpickled by :func:`set_env_state` — only load
checkpoints you wrote yourself. The same holds for the sampler state of the replay buffer (a
prioritized sampler keeps C++ segment trees).
"""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer

from torchrl_reg.recipe_utils.envs import get_env_state, set_env_state

__all__ = [
    "CHECKPOINT_NAME",
    "save_checkpoint",
    "load_checkpoint",
    "replay_buffer_state",
    "load_replay_buffer_state",
    "rng_state",
    "set_rng_state",
    "collector_state",
    "load_collector_state",
]

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash mid-write leaves the previous checkpoint intact.

    The data is synced to disk before the rename makes it the checkpoint, and the directory after
    it, so that a machine that loses power (a preempted node) cannot keep a renamed empty file.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def replay_buffer_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """``buffer.state_dict()`` with the sampler state pickled to bytes.

    The storage (the transitions) stays tensors; a prioritized sampler's state holds TorchRL's
    C++ sum/min segment trees, which ``weights_only`` loading refuses.
    """
    state = dict(buffer.state_dict())
    state["_sampler"] = pickle.dumps(state["_sampler"])
    return state


def load_replay_buffer_state(buffer: ReplayBuffer, state: dict[str, Any]) -> None:
    """Inverse of :func:`replay_buffer_state` (the bytes must come from a trusted checkpoint)."""
    state = dict(state)
    state["_sampler"] = pickle.loads(state["_sampler"])
    buffer.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """The global RNG states: python, numpy, torch CPU and every CUDA device."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def collector_state(collector: Collector) -> dict[str, Any]:
    """Frame counters, the carried observation and the env state of a single-process ``Collector``.

    TorchRL's ``Collector.state_dict`` deliberately leaves out the running env (it is not
    serializable in general) and starts new trajectories on load; the carrier (the tensordict the
    collector keeps between steps: current observation, done flags) and the gymnasium envs are
    saved here so that the continuation is the same trajectory.
    """
    sd = collector.state_dict()
    return {
        "frames": int(sd["frames"]),
        "iter": int(sd["iter"]),
        "carrier": collector._carrier.to_dict(),
        "env": get_env_state(collector.env),
    }


def load_collector_state(collector: Collector, state: dict[str, Any]) -> None:
    """Inverse of :func:`collector_state`, on a collector built the same way."""
    collector._frames = state["frames"]
    collector._iter = state["iter"]
    carrier = TensorDict(state["carrier"], batch_size=collector._carrier.batch_size)
    collector._carrier.update(carrier)
    set_env_state(collector.env, state["env"])
