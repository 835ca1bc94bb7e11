"""Throughput of the Atari M-IQN recipe: environment steps/s and updates/s (paper settings).

Two runs of ``recipes/m_iqn.py env=atari``: (a) collection only (learning never starts) gives the
env steps/s of the collector, policy and frame-deduplicated buffer; (b) the same with updates
every 4 steps (N = N' = 64, K = 32, batch 32) gives the overall steps/s, and the updates/s follow
from the time left once (a)'s collection time is taken out.

    python -m benchmarks.iqn_atari_throughput --frames 2000 --update-frames 400
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

from recipes.m_iqn import train
from torchrl_reg.recipe_utils import compose_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "iqn"


def run(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose_config(ROOT / "recipes" / "conf", "m_iqn", [
            "env=atari", f"env.name={ARGS.game}", f"device={ARGS.device}", "buffer.size=100000",
            "eval.episodes=0", "checkpoint.interval=0", "logger.progress_bar=false", f"run_dir={run_dir}",
            *ARGS.overrides, *overrides,
        ])
        return train(cfg)


def main() -> None:
    collect = run([f"collector.total_frames={ARGS.frames}", f"optim.learning_starts={ARGS.frames}"])
    starts = 1000
    total = starts + ARGS.update_frames
    learn = run([f"collector.total_frames={total}", f"optim.learning_starts={starts}"])
    env_steps_per_s = collect["steps_per_s"]
    update_time = learn["wall_time_s"] - total / env_steps_per_s
    results = {
        "env_steps_per_s_collection_only": env_steps_per_s,
        "steps_per_s_with_updates": learn["steps_per_s"],
        "updates": learn["updates"],
        "updates_per_s": learn["updates"] / update_time if update_time > 0 else float("nan"),
        "device": str(ARGS.device) if ARGS.device == "cpu" else torch.cuda.get_device_name(),
        "overrides": ARGS.overrides,
        "game": ARGS.game,
    }
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": "python " + " ".join(sys.argv), "torch": torch.__version__,
               "machine": f"{platform.machine()} {platform.processor()}", "results": results}
    (RESULTS / f"atari_throughput_{ARGS.device}.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--update-frames", type=int, default=400)
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the recipe (e.g. compile=false)")
    ARGS = parser.parse_args()
    main()
