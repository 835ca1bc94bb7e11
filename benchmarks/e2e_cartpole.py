"""End-to-end speed on CartPole-v1 with CleanRL's DQN schedule: recipes/m_dqn.py vs the plain-PyTorch
single-file baseline (benchmarks/baseline_dqn.py), same algorithm, schedule and frame budget.

Each seed runs both programs back to back (alternating which goes first), each in its own
process, and records the wall-clock of the whole process (start-up, imports and torch.compile
included), its CPU time, its peak resident memory (``ru_maxrss`` of the process, or of the largest
of the processes it waited for, such as torch.compile's workers), steps/s and the final return
(mean of the last 100 training episodes).
The recipe runs without its periodic greedy evaluation (the baseline has none); its
checkpoints, CSV logs and plot are kept. Results: benchmarks/results/e2e_cartpole/*.json + .png.

    python benchmarks/e2e_cartpole.py --target m_dqn --frames 500000 --seeds 1 2
    python benchmarks/e2e_cartpole.py --summarize
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from torchrl_reg.run.metrics import read_metric

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "e2e_cartpole"


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float, float]:
    """Run ``cmd`` in ``cwd`` to completion; its wall-clock (s), CPU time (s) and peak RSS (MiB), from its own
    ``wait4`` resource usage (per process: ``RUSAGE_CHILDREN`` would give the maximum RSS over every
    run so far)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux: ru_maxrss in KiB


def run_one(impl: str, target: str, seed: int, frames: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if impl == "baseline":
            out_json = Path(tmp) / "result.json"
            cmd = [sys.executable, "benchmarks/baseline_dqn.py", "--target", target, "--seed", str(seed),
                   "--total-timesteps", str(frames), "--json", str(out_json)]
        else:
            cmd = [sys.executable, "recipes/m_dqn.py", f"loss={target}", f"seed={seed}",
                   f"collector.total_frames={frames}", f"hydra.run.dir={tmp}/run", "eval.interval=0", "eval.episodes=0",
                   "logger.progress_bar=false", *extra]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        wall, cpu, peak_rss_mib = run_measured(cmd, env)
        if impl == "baseline":
            inner = json.loads(out_json.read_text())
            returns, steps = inner["returns"], inner["return_steps"]
            inner_wall, final = inner["wall_time_s"], inner["final_return"]
        else:
            inner = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
            rows = (Path(tmp) / "run" / "csv" / "scalars" / "train" / "episode_return.csv").read_text().split()
            steps = [int(r.split(",")[0]) for r in rows]
            returns = [float(r.split(",")[1]) for r in rows]
            inner_wall, final = inner["wall_time_s"], read_metric(inner, "train_return_mean")
            frames = inner["frames"]
    command = " ".join(shlex.quote(c) for c in cmd).replace(sys.executable, "python")
    return {
        "impl": impl, "target": target, "seed": seed, "frames": frames, "command": command,
        "wall_time_s": wall, "cpu_time_s": cpu, "peak_rss_mib": peak_rss_mib, "inner_wall_time_s": inner_wall,
        "steps_per_s": frames / wall, "final_return": final,
        "curve_frames": steps, "curve_returns": returns,
    }


def summarize(out: Path) -> dict:
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("run_*.json"))]
    pairs = {}
    for r in runs:
        pairs.setdefault((r["target"], r["seed"], r["frames_budget"]), {})[r["impl"]] = r
    rows = []
    for (target, seed, budget), p in sorted(pairs.items()):
        if set(p) != {"baseline", "recipe"}:
            continue
        b, r = p["baseline"], p["recipe"]
        rows.append({
            "target": target, "seed": seed, "frames": budget,
            "baseline_wall_s": b["wall_time_s"], "recipe_wall_s": r["wall_time_s"],
            "wall_ratio": r["wall_time_s"] / b["wall_time_s"],
            "baseline_cpu_s": b["cpu_time_s"], "recipe_cpu_s": r["cpu_time_s"],
            "cpu_ratio": r["cpu_time_s"] / b["cpu_time_s"],
            # Runs recorded before peak RSS was measured have none.
            "baseline_peak_rss_mib": b.get("peak_rss_mib"), "recipe_peak_rss_mib": r.get("peak_rss_mib"),
            "baseline_final_return": b["final_return"], "recipe_final_return": r["final_return"],
        })
    summary = {
        "pairs": rows,
        "median_wall_ratio": statistics.median(x["wall_ratio"] for x in rows) if rows else None,
        "median_cpu_ratio": statistics.median(x["cpu_ratio"] for x in rows) if rows else None,
        "commands": sorted({r["command"] for r in runs}),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(runs, rows, out / "e2e_cartpole.png")
    for x in rows:
        rss = "" if x["recipe_peak_rss_mib"] is None else (
            f"; peak RSS baseline {x['baseline_peak_rss_mib']:.0f} MiB, recipe {x['recipe_peak_rss_mib']:.0f} MiB")
        print(f"{x['target']} seed {x['seed']} {x['frames']} frames: baseline {x['baseline_wall_s']:.0f}s "
              f"(return {x['baseline_final_return']:.1f}), recipe {x['recipe_wall_s']:.0f}s "
              f"(return {x['recipe_final_return']:.1f}); wall ratio {x['wall_ratio']:.2f}, cpu ratio {x['cpu_ratio']:.2f}{rss}")
    return summary


def plot(runs: list[dict], rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=100)
    colors = {"baseline": "tab:gray", "recipe": "tab:blue"}
    for r in runs:
        ret = np.asarray(r["curve_returns"], dtype=float)
        if r["impl"] == "baseline" and len(ret):  # per episode: smooth over 100 episodes
            ret = np.convolve(ret, np.ones(100) / 100, mode="full")[: len(ret)] * 100 / np.minimum(np.arange(1, len(ret) + 1), 100)
        ax1.plot(r["curve_frames"], ret, color=colors[r["impl"]], alpha=0.8, lw=1,
                 label=f"{r['impl']} {r['target']} seed {r['seed']}")
    ax1.set_xlabel("environment steps")
    ax1.set_ylabel("training episode return (mean of recent episodes)")
    ax1.set_title("CartPole-v1, CleanRL DQN schedule")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    labels = [f"{x['target']}\nseed {x['seed']}" for x in rows]
    xs = np.arange(len(rows))
    ax2.bar(xs - 0.2, [x["baseline_wall_s"] for x in rows], 0.4, color=colors["baseline"], label="plain PyTorch baseline")
    ax2.bar(xs + 0.2, [x["recipe_wall_s"] for x in rows], 0.4, color=colors["recipe"], label="recipes/m_dqn.py")
    for i, x in enumerate(rows):
        ax2.text(i + 0.2, x["recipe_wall_s"], f"{x['wall_ratio']:.2f}x wall\n{x['cpu_ratio']:.2f}x CPU", ha="center", va="bottom", fontsize=8)
    ax2.set_xticks(xs, labels)
    ax2.set_ylabel("wall-clock of the whole run (s)")
    ax2.set_title("same schedule, back-to-back runs (2 shared cores)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=("dqn", "m_dqn"), default="m_dqn")
    p.add_argument("--frames", type=int, default=500_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--summarize", action="store_true", help="only rebuild summary.json and the PNG")
    p.add_argument("recipe_overrides", nargs="*", help="extra Hydra overrides for the recipe")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.summarize:
        invocation = "python benchmarks/e2e_cartpole.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        for i, seed in enumerate(args.seeds):
            order = ("baseline", "recipe") if i % 2 == 0 else ("recipe", "baseline")
            for impl in order:
                result = run_one(impl, args.target, seed, args.frames, args.recipe_overrides)
                result["frames_budget"] = args.frames
                result["benchmark_command"] = invocation
                result["git_commit"] = commit
                name = f"run_{args.target}_{args.frames}_seed{seed}_{impl}.json"
                (OUT / name).write_text(json.dumps(result) + "\n")
                print(f"{impl} {args.target} seed {seed}: {result['wall_time_s']:.1f}s wall, "
                      f"{result['cpu_time_s']:.1f}s cpu, peak RSS {result['peak_rss_mib']:.0f} MiB, "
                      f"final return {result['final_return']:.1f}", flush=True)
    summarize(OUT)


if __name__ == "__main__":
    main()
