"""Replay memory per stored Atari transition: FrameStackStorage vs the plain stacked layout.

Real ``ALE/Breakout-v5`` data from the recipes' Atari pipeline (Dopamine preprocessing, 4 x 84 x 84
uint8 stacks), stored with the recipes' transition keys in (a) TorchRL's ``LazyTensorStorage``
(both stacks kept: the naive layout) and (b) :class:`~torchrl_reg.data.FrameStackStorage` with its
default frame ring. Bytes are the allocated storage divided by its capacity; the 1M figure adds
the default ring for 1M transitions to the measured per-row bytes. Also timed: writing a
collector batch and sampling a batch of 32. Target: <= 7.5 KB per transition.

    python -m benchmarks.iqn_replay_memory --steps 4000 --capacity 3000
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

from benchmarks.common import finish_plot
from torchrl_reg.configs import EnvConfig
from torchrl_reg.data import TRANSITION_KEYS, FrameStackStorage, frame_stack_replay_buffer
from torchrl_reg.envs import make_env

RESULTS = Path(__file__).parent / "results" / "iqn"


def storage_bytes(storage) -> int:
    content = storage._storage
    return sum(t.numel() * t.element_size() for t in content.values(True, True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="agent steps collected")
    parser.add_argument("--capacity", type=int, default=3000)
    parser.add_argument("--game", default="Breakout")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = EnvConfig(family="atari", name=args.game, sticky_action_prob=0.25, frame_skip=4, frame_stack=4,
                    max_episode_steps=27_000)
    env = make_env(cfg, num_envs=1, seed=0)
    collector = Collector(env, None, frames_per_batch=100, total_frames=args.steps, track_traj_ids=False)
    dedup = frame_stack_replay_buffer(args.capacity, batch_size=32, padding="zeros")
    naive = TensorDictReplayBuffer(storage=LazyTensorStorage(args.capacity), batch_size=32)
    write = {"frame_stack": [], "naive": []}
    episodes = 0
    for data in collector:
        flat = data.select(*TRANSITION_KEYS).reshape(-1)
        episodes += int(flat["next", "done"].sum())
        for name, rb in (("frame_stack", dedup), ("naive", naive)):
            start = time.perf_counter()
            rb.extend(flat)
            write[name].append((time.perf_counter() - start) / flat.numel())
    collector.shutdown()
    sample = {}
    for name, rb in (("frame_stack", dedup), ("naive", naive)):
        times = []
        for _ in range(200):
            start = time.perf_counter()
            rb.sample()
            times.append(time.perf_counter() - start)
        sample[name] = 1e3 * statistics.median(times)
    frame_bytes = 84 * 84  # one uint8 frame
    storage: FrameStackStorage = dedup.storage
    ring = storage.frame_capacity * frame_bytes
    rows = (storage.nbytes() - ring) / args.capacity
    full = FrameStackStorage(1_000_000)
    results = {
        "naive_bytes_per_transition": storage_bytes(naive.storage) / args.capacity,
        "frame_stack_bytes_per_transition": storage.nbytes() / args.capacity,
        "frame_stack_row_bytes": rows,
        "frame_stack_frame_capacity": storage.frame_capacity,
        "frame_stack_bytes_per_transition_at_1M": rows + full.frame_capacity * frame_bytes / 1_000_000,
        "write_us_per_step": {k: 1e6 * statistics.median(v) for k, v in write.items()},
        "sample_ms_per_batch32": sample,
        "steps": args.steps,
        "capacity": args.capacity,
        "episodes_written": episodes,
        "game": args.game,
    }
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": "python " + " ".join(sys.argv), "torch": torch.__version__, "target_bytes": 7500, "results": results}
    (RESULTS / "replay_memory.json").write_text(json.dumps(payload, indent=2))
    plot(results, RESULTS / "replay_memory.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["naive stacks", f"FrameStackStorage\n(capacity {results['capacity']})", "FrameStackStorage\n(1M, default ring)"]
    values = [results["naive_bytes_per_transition"], results["frame_stack_bytes_per_transition"],
              results["frame_stack_bytes_per_transition_at_1M"]]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    bars = ax.bar(labels, [v / 1000 for v in values], color=["tab:gray", "tab:blue", "tab:blue"])
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, v / 1000, f"{v / 1000:.2f} KB", ha="center", va="bottom")
    finish_plot(fig, ax, path, ylabel="KB per stored Atari transition",
                title=f"Replay memory, {results['game']} (4x84x84 uint8 stacks)", target=7.5, target_label="target 7.5 KB")


if __name__ == "__main__":
    main()
