"""VIREL on Pendulum-v1 (20k steps) beside SAC: returns, and the temperature eps_w over training.

Runs ``recipes/virel.py env=pendulum`` (variants ``practical`` and ``em``, the official replay
temperature estimator) and ``recipes/sac.py env=pendulum`` on the same budget (control_preset/pendulum:
20k steps, 2x64 MLPs, batch 128, one update per step after 1k), one process per run, then writes the
summary JSON and a picture: evaluation return (mean of the seeds, each seed thin) and VIREL's logged
temperature (SAC's alpha for comparison) against environment steps.

    taskset -c 0 python benchmarks/virel_pendulum.py --seeds 0 1 2            # runs, then summarizes
    python benchmarks/virel_pendulum.py --summarize --seeds 0                # from the run directories
                                                                             # (unfinished runs: up to their last evaluation)
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "virel"
RUNS = Path(__file__).resolve().parents[1] / "runs" / "virel_pendulum"
METHODS = {
    "virel_practical": ("virel", ["loss=virel"]),
    "virel_em": ("virel", ["loss=virel_em"]),
    "sac": ("sac", []),
}


def run_dir(method: str, seed: int) -> Path:
    return RUNS / f"{method}-seed{seed}"


def launch(method: str, seed: int) -> None:
    recipe, overrides = METHODS[method]
    command = [
        sys.executable, f"recipes/{recipe}.py", "env=pendulum", f"seed={seed}", "num_threads=1",
        f"run_dir={run_dir(method, seed)}", "logger.progress_bar=false", *overrides,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", RL_WARNINGS="False")
    subprocess.run(command, check=True, env=env, cwd=Path(__file__).resolve().parents[1])


def read_csv(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [(int(float(r[0])), float(r[1])) for r in csv.reader(f) if r and r[0] != "step"]


def summarize(seeds: list[int]) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, curves = {}, {}
    for method in METHODS:
        rows = []
        for seed in seeds:
            directory = run_dir(method, seed)
            scalars = directory / "csv" / "scalars"
            evals = read_csv(scalars / "eval" / "return.csv")
            if not evals:
                continue
            # A run still going (or stopped) is summarized up to its last evaluation, and marked so.
            metrics_path = directory / "metrics.json"
            metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
            temperature = read_csv(scalars / "train" / ("alpha.csv" if method == "sac" else "temperature.csv"))
            rows.append({
                "seed": seed, "completed": metrics.get("status") == "completed", "status": metrics.get("status", "running"), "last_eval_frame": evals[-1][0], "last_eval_return": evals[-1][1],
                "eval": evals, "final_return": metrics.get("final_return"), "wall_time_s": metrics.get("wall_time_s"),
                "temperature_first_last": [temperature[0], temperature[-1]] if temperature else None,
            })
            curves.setdefault(method, []).append((evals, temperature))
        if rows:
            summary[method] = {"seeds": rows}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    colors = {"virel_practical": "tab:blue", "virel_em": "tab:red", "sac": "k"}
    for method, runs in curves.items():
        for i, (evals, temperature) in enumerate(runs):
            label = method if i == 0 else None
            if evals:
                axes[0].plot(*zip(*evals), color=colors[method], alpha=0.8, label=label)
            if temperature:
                axes[1].plot(*zip(*temperature), color=colors[method], alpha=0.8,
                             label=(f"{method} (alpha)" if method == "sac" else f"{method} eps_w") if i == 0 else None)
    axes[0].set_title("Pendulum-v1: evaluation return (deterministic policy)")
    axes[1].set_title("temperature: VIREL's eps_w (Bellman error), SAC's alpha")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("environment steps")
        ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "pendulum.png", dpi=110)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--summarize", action="store_true", help="only summarize existing runs")
    args = parser.parse_args()
    start = time.time()
    if not args.summarize:
        for seed in args.seeds:
            for method in args.methods:
                if not (run_dir(method, seed) / "metrics.json").exists():
                    launch(method, seed)
                print(f"{method} seed {seed} done ({time.time() - start:.0f}s)", flush=True)
    summary = summarize(args.seeds)
    payload = {
        "command": "taskset -c 0 python benchmarks/virel_pendulum.py " + " ".join(sys.argv[1:]),
        "platform": platform.platform(),
        "summary": summary,
    }
    (RESULTS / "pendulum.json").write_text(json.dumps(payload, indent=2))
    for method, row in summary.items():
        print(method, [(r["seed"], r["last_eval_frame"], round(r["last_eval_return"], 1), r["completed"]) for r in row["seeds"]])


if __name__ == "__main__":
    main()
