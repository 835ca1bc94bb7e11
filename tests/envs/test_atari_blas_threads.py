"""The Atari preset env steps as fast with numpy's BLAS thread pool at its default
size (one thread per core: what a user who sets no thread variable gets) as with one BLAS thread.

The frame resize was a numpy matmul: with a multi-threaded BLAS every frame paid a thread wake-up,
and on a busy machine up to ~200x the one-thread time (a user saw 174 against 2,127 env steps/s).
Both settings are timed in this one process, interleaved, so the load of the machine cancels out
of their ratio; the threshold (0.5) is far below the 1.0 of a pool-independent resize and far above
the ~0.01 of the matmul with two BLAS threads on one busy core.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from torchrl_reg.configs import EnvConfig
from torchrl_reg.envs import make_single_env

ATARI = EnvConfig(family="atari", name="Breakout", sticky_action_prob=0.25, frame_skip=4, frame_stack=4,
                  max_episode_steps=27000)


def _steps_per_s(env, rng: np.random.Generator, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def test_atari_env_steps_per_s_do_not_depend_on_the_blas_thread_pool():
    env = make_single_env(ATARI)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    # The default pool has one thread per core; at least two, so that a test pinned to one core
    # (taskset) still runs the multi-threaded case a user's workstation runs.
    default_threads = max(2, os.cpu_count() or 1)
    default, one = [], []
    for _ in range(5):
        with threadpool_limits(limits=default_threads, user_api="blas"):
            default.append(_steps_per_s(env, rng, 30))
        with threadpool_limits(limits=1, user_api="blas"):
            one.append(_steps_per_s(env, rng, 30))
    env.close()
    ratio = statistics.median(default) / statistics.median(one)
    assert ratio > 0.5, (
        f"Atari env steps/s with {default_threads} BLAS threads: {statistics.median(default):.0f}, with one: "
        f"{statistics.median(one):.0f} (ratio {ratio:.2f}): the frame pipeline depends on the BLAS thread pool"
    )
