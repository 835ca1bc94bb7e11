"""The collector of a recipe run (TorchRL ``Collector``, single process, over a vectorized env)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchrl.collectors import Collector
from torchrl.envs import EnvBase

__all__ = ["make_collector"]


def make_collector(
    env: EnvBase,
    policy: Callable,
    cfg: Any,
    *,
    device: torch.device | str = "cpu",
    total_frames: int | None = None,
) -> Collector:
    """A single-process TorchRL ``Collector`` over the (vectorized, CPU) ``env``.

    ``cfg`` is a ``CollectorConfig``. The policy runs and the
    batches are stored on ``device``. Trajectory ids are not tracked (Q-learning does not use
    them, and they cost time at every step). The first ``cfg.init_random_frames`` frames take uniformly
    random actions; the count survives a resume (the collector's frame counter is checkpointed).
    """
    device = torch.device(device)
    on_accelerator = device.type != "cpu"
    collector = Collector(
        env,
        policy,
        frames_per_batch=cfg.frames_per_batch,
        total_frames=cfg.total_frames if total_frames is None else total_frames,
        init_random_frames=cfg.init_random_frames,
        policy_device=device if on_accelerator else None,
        storing_device=device if on_accelerator else None,
        track_traj_ids=False,
        trust_policy=True,
        auto_register_policy_transforms=False,
    )
    # TorchRL 0.14.1 keeps the output keys of a policy with a spec as a set, and updates its carrier with them
    # whenever the policy returns another tensordict (always, once the policy runs on another device than
    # the env): tensordict's unravel_key_list refuses a set (a TypeError). Seen on an H200 with SQL's sampler
    # (benchmarks/results/gpu); tests/run/test_loop_parts.py reproduces it on the CPU.
    if isinstance(getattr(collector, "_policy_output_keys", None), set):
        collector._policy_output_keys = sorted(collector._policy_output_keys, key=str)
    return collector
