"""Throughput of the Atari M-IQN recipe: environment steps/s and updates/s (paper settings).

Runs of ``recipes/m_iqn.py env=atari`` in this process: (a) collection only (learning never starts)
gives the env steps/s of the collector, policy and frame-deduplicated buffer, ``--repeats`` times;
(b) the same with updates every 4 steps (N = N' = 64, K = 32, batch 32) gives the overall steps/s,
and the updates/s follow from the time left once (a)'s collection time is taken out.

numpy's BLAS thread pool is set to one thread per core of the machine (``os.cpu_count()``, what a
process that no one pinned or limited gets), whatever the affinity the benchmark runs under, so
that a frame pipeline that depends on that pool shows it even when pinned to one core. With
``--before`` every repeat of (a) also runs the earlier frame resize (a numpy
matmul, on that BLAS pool), interleaved with today's, so both are timed under the same load.

    taskset -c 0 python -m benchmarks.iqn_atari_throughput --frames 1000 --update-frames 200 --repeats 3 --before

Needs threadpoolctl (the test extras).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recipes.m_iqn import train
from torchrl_reg.configs import compose_config
from torchrl_reg.envs.atari import AtariPreprocessing, _area_resize_matrix

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "iqn"


def run(args: argparse.Namespace, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose_config(ROOT / "recipes" / "conf", "m_iqn", [
            "env=atari", f"env.name={args.game}", f"device={args.device}", "buffer.size=100000",
            "eval.episodes=0", "checkpoint.interval=0", "logger.progress_bar=false", f"run_dir={run_dir}",
            *args.overrides, *overrides,
        ])
        return train(cfg)


def _matmul_observation(self: AtariPreprocessing) -> np.ndarray:
    """The earlier resize: ``rows @ frame @ cols``, a numpy (BLAS) matmul."""
    h, w = self._buffer.shape[1:]
    rows, cols = _area_resize_matrix(h, self.screen_size), _area_resize_matrix(w, self.screen_size).T.copy()
    frame = np.maximum(self._buffer[0], self._buffer[1]).astype(np.float32)
    return np.rint(rows @ frame @ cols).astype(np.uint8)


@contextmanager
def resize(kind: str) -> Iterator[None]:
    """``"gather"``: today's resize; ``"matmul"``: the earlier one, patched in for the duration."""
    if kind == "gather":
        yield
        return
    today = AtariPreprocessing._observation
    AtariPreprocessing._observation = _matmul_observation
    try:
        yield
    finally:
        AtariPreprocessing._observation = today


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000, help="frames of each collection-only run")
    parser.add_argument("--update-frames", type=int, default=200, help="frames with updates, after 1000 without")
    parser.add_argument("--repeats", type=int, default=3, help="collection-only runs per resize")
    parser.add_argument("--before", action="store_true", help="also time the earlier resize (a BLAS matmul)")
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the recipe (e.g. compile=false)")
    args = parser.parse_args(argv)
    blas_threads = os.cpu_count() or 1
    kinds = ["gather", "matmul"] if args.before else ["gather"]
    collect: dict[str, list[float]] = {kind: [] for kind in kinds}
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        for _ in range(args.repeats):
            for kind in kinds:
                with resize(kind):
                    metrics = run(args, [f"collector.total_frames={args.frames}", f"optim.learning_starts={args.frames}"])
                collect[kind].append(metrics["steps_per_s"])
        starts = 1000
        total = starts + args.update_frames
        learn = run(args, [f"collector.total_frames={total}", f"optim.learning_starts={starts}"])
    env_steps_per_s = statistics.median(collect["gather"])
    update_time = learn["wall_time_s"] - total / env_steps_per_s
    results = {
        "env_steps_per_s_collection_only": env_steps_per_s,
        "env_steps_per_s_collection_only_repeats": collect["gather"],
        "steps_per_s_with_updates": learn["steps_per_s"],
        "updates": learn["updates"],
        "updates_per_s": learn["updates"] / update_time if update_time > 0 else float("nan"),
        "device": str(args.device) if args.device == "cpu" else torch.cuda.get_device_name(),
        "overrides": args.overrides,
        "game": args.game,
        "blas_threads": blas_threads,
    }
    if args.before:
        before = statistics.median(collect["matmul"])
        results["before_issue_37"] = {
            "resize": "numpy matmul on the BLAS pool",
            "env_steps_per_s_collection_only": before,
            "env_steps_per_s_collection_only_repeats": collect["matmul"],
            "speedup_of_today": env_steps_per_s / before,
        }
    print(json.dumps(results, indent=2))
    affinity = sorted(os.sched_getaffinity(0))
    payload = {"command": "python -m benchmarks.iqn_atari_throughput " + " ".join(sys.argv[1:] if argv is None else argv),
               "torch": torch.__version__, "machine": f"{platform.machine()} {platform.processor()}",
               "cores_pinned": affinity, "load_average_at_end": os.getloadavg(), "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"atari_throughput_{args.device}.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
