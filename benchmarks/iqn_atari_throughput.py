"""Throughput of the Atari M-IQN (or M-DQN) recipe: environment steps/s and updates/s (paper settings).

Runs of ``recipes/m_iqn.py env=atari`` (``--recipe m_dqn``: ``recipes/m_dqn.py env=atari``) in this process: (a) collection only (learning never starts)
gives the env steps/s of the collector, policy and frame-deduplicated buffer, ``--repeats`` times;
(b) the same with updates every 4 steps (N = N' = 64, K = 32, batch 32) gives the overall steps/s,
and the updates/s follow from the time left once (a)'s collection time is taken out.

numpy's BLAS thread pool is set to one thread per core of the machine (``os.cpu_count()``, what a
process that no one pinned or limited gets), whatever the affinity the benchmark runs under, so
that a frame pipeline that depends on that pool shows it even when pinned to one core. With
``--before`` every repeat of (a) also runs the earlier frame resize (a numpy
matmul, on that BLAS pool, in place of ``AtariPreprocessing.resize``), interleaved with today's, so both are timed
under the same load.

    taskset -c 0 python -m benchmarks.iqn_atari_throughput --frames 1000 --update-frames 200 --repeats 3 --before

``--backends wrappers vector`` times the Atari backends (``env.backend``: per-env ALE wrappers, ale-py's
C++ vector env) interleaved, (a) and (b) for each, and writes
``results/atari/recipe_throughput_<recipe>_<device>.json`` instead::

    taskset -c 1 python -m benchmarks.iqn_atari_throughput --recipe m_dqn --backends wrappers vector

Needs threadpoolctl (the test extras).
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from torchrl_reg.configs import compose_config
from torchrl_reg.envs import AtariPreprocessing

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "iqn"


def run(args: argparse.Namespace, overrides: list[str]) -> dict:
    """One run of the recipe ``args.recipe`` (default ``m_iqn``) on Atari in a temporary run dir; its metrics."""
    recipe = getattr(args, "recipe", "m_iqn")
    train = importlib.import_module(f"recipes.{recipe}").train
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose_config(ROOT / "recipes" / "conf", recipe, [
            "env=atari", f"env.name={args.game}", f"device={args.device}", "buffer.size=100000",
            "eval.episodes=0", "checkpoint.interval=0", "logger.progress_bar=false", f"run_dir={run_dir}",
            *args.overrides, *overrides,
        ])
        return train(cfg)


@functools.cache
def area_matrices(height: int, width: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(size, height)`` and ``(width, size)`` float32 matrices of an area resize, derived here on their own:
    each of ``n`` input pixels cut into ``size`` equal parts, output pixel ``i`` the mean of parts ``i n`` to
    ``(i + 1) n - 1``."""

    def area(n: int) -> np.ndarray:
        return np.repeat(np.eye(n, dtype=np.float32), size, axis=0).reshape(size, n, n).mean(1)

    return area(height), np.ascontiguousarray(area(width).T)


def matmul_resize(self: AtariPreprocessing, frame: np.ndarray) -> np.ndarray:
    """The earlier resize: ``rows @ frame @ cols``, a numpy (BLAS) matmul, its matrices built once per frame size."""
    rows, cols = area_matrices(*frame.shape, self.screen_size)
    return np.rint(rows @ frame @ cols).astype(np.uint8)


@contextmanager
def resize(kind: str) -> Iterator[None]:
    """``"gather"``: today's resize; ``"matmul"``: the earlier one, in place of the public hook
    :meth:`AtariPreprocessing.resize` for the duration (the recipe builds its envs itself)."""
    if kind == "gather":
        yield
        return
    with patch.object(AtariPreprocessing, "resize", matmul_resize):
        yield


def measure(args: argparse.Namespace, backends: list[str]) -> dict[str, dict]:
    """(a) ``args.repeats`` collection-only runs per backend (and per resize with ``--before``), interleaved,
    then (b) one run with updates per backend; the results of each backend."""
    kinds = ["gather", "matmul"] if args.before else ["gather"]
    collect: dict[tuple[str, str], list[float]] = {(b, k): [] for b in backends for k in kinds}
    for _ in range(args.repeats):
        for backend in backends:
            for kind in kinds:
                with resize(kind):
                    metrics = run(args, [f"env.backend={backend}", f"collector.total_frames={args.frames}",
                                         f"optim.learning_starts={args.frames}"])
                collect[backend, kind].append(metrics["steps_per_s"])
    starts = 1000
    total = starts + args.update_frames
    out = {}
    for backend in backends:
        learn = run(args, [f"env.backend={backend}", f"collector.total_frames={total}", f"optim.learning_starts={starts}"])
        env_steps_per_s = statistics.median(collect[backend, "gather"])
        update_time = learn["wall_time_s"] - total / env_steps_per_s
        results = {
            "env_steps_per_s_collection_only": env_steps_per_s,
            "env_steps_per_s_collection_only_repeats": collect[backend, "gather"],
            "steps_per_s_with_updates": learn["steps_per_s"],
            "updates": learn["updates"],
            "updates_per_s": learn["updates"] / update_time if update_time > 0 else float("nan"),
        }
        if args.before:
            before = statistics.median(collect[backend, "matmul"])
            results["before_matmul_resize"] = {
                "resize": "numpy matmul on the BLAS pool",
                "env_steps_per_s_collection_only": before,
                "env_steps_per_s_collection_only_repeats": collect[backend, "matmul"],
                "speedup_of_today": env_steps_per_s / before,
            }
        out[backend] = results
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=["m_iqn", "m_dqn"], default="m_iqn")
    parser.add_argument("--backends", nargs="+", choices=["wrappers", "vector"], default=None,
                        help="Atari backends to time interleaved (default: the recipe's, results/iqn/ as before)")
    parser.add_argument("--frames", type=int, default=1000, help="frames of each collection-only run")
    parser.add_argument("--update-frames", type=int, default=200, help="frames with updates, after 1000 without")
    parser.add_argument("--repeats", type=int, default=3, help="collection-only runs per resize")
    parser.add_argument("--before", action="store_true", help="also time the earlier resize (a BLAS matmul)")
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the recipe (e.g. compile=false)")
    args = parser.parse_args(argv)
    if args.backends is not None and args.before:
        parser.error("--before times the earlier resize of the wrappers backend; give it without --backends")
    blas_threads = os.cpu_count() or 1
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        by_backend = measure(args, args.backends or ["wrappers"])
    common = {
        "recipe": args.recipe,
        "device": str(args.device) if args.device == "cpu" else torch.cuda.get_device_name(),
        "overrides": args.overrides,
        "game": args.game,
        "blas_threads": blas_threads,
    }
    if args.backends is None:
        results = {**by_backend["wrappers"], **common}
        path = RESULTS / f"atari_throughput_{args.device}.json"
    else:
        results = {"backends": by_backend, **common}
        if {"wrappers", "vector"} <= set(by_backend):
            w, v = by_backend["wrappers"], by_backend["vector"]
            results["vector_over_wrappers"] = {
                "collection_only": v["env_steps_per_s_collection_only"] / w["env_steps_per_s_collection_only"],
                "with_updates": v["steps_per_s_with_updates"] / w["steps_per_s_with_updates"],
            }
        path = ROOT / "benchmarks" / "results" / "atari" / f"recipe_throughput_{args.recipe}_{args.device}.json"
    print(json.dumps(results, indent=2))
    affinity = sorted(os.sched_getaffinity(0))
    payload = {"command": "python -m benchmarks.iqn_atari_throughput " + " ".join(sys.argv[1:] if argv is None else argv),
               "torch": torch.__version__, "machine": f"{platform.machine()} {platform.processor()}",
               "cores_pinned": affinity, "load_average_at_end": os.getloadavg(), "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
