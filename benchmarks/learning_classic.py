"""Learning benchmark on classic control: DQN vs M-DQN vs Soft-DQN, CleanRL's DQN schedule (500k steps).

One (method, env, seed) per invocation, so that a sweep (SLURM array, shell loop) can run them in
parallel; each writes benchmarks/results/learning_classic/<env>_<method>_seed<seed>.json.
``--summarize`` aggregates every result file into summary.json, summary.md (mean of the last 100
training episodes +- std over seeds) and learning_classic.png.

    python benchmarks/learning_classic.py --method m_dqn --env cartpole --seed 0
    for s in 0 1 2 3 4; do for m in dqn m_dqn soft_dqn; do for e in cartpole acrobot; do
        python benchmarks/learning_classic.py --method $m --env $e --seed $s; done; done; done
    python benchmarks/learning_classic.py --summarize

Published anchor (CleanRL DQN, 3 seeds): CartPole-v1 488.69 +- 16.11, Acrobot-v1 -91.54 +- 7.20.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "learning_classic"
METHODS = ("dqn", "m_dqn", "soft_dqn")
ENVS = ("cartpole", "acrobot")
ANCHOR = {"cartpole": (488.69, 16.11), "acrobot": (-91.54, 7.20)}


def run(method: str, env: str, seed: int, frames: int | None, overrides: list[str]) -> dict:
    sys.path.insert(0, str(ROOT))
    from recipes import m_dqn
    from torchrl_reg.recipe_utils import compose_config

    run_dir = ROOT / "runs" / "learning_classic" / f"{env}_{method}_seed{seed}"
    args = [f"env={env}", f"loss={method}", f"seed={seed}", f"run_dir={run_dir}", *overrides]
    if frames is not None:
        args.append(f"collector.total_frames={frames}")
    metrics = m_dqn.train(compose_config(ROOT / "recipes" / "conf", "m_dqn", args))
    curve = run_dir / "csv" / "scalars" / "train" / "episode_return.csv"
    rows = curve.read_text().split() if curve.exists() else []  # no episode finished yet: empty curve
    result = {
        "method": method,
        "env": env,
        "seed": seed,
        "command": "python benchmarks/learning_classic.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "recipe_overrides": args,
        "curve_frames": [int(r.split(",")[0]) for r in rows],
        "curve_returns": [float(r.split(",")[1]) for r in rows],
        "machine": machine_info(),
        **{k: metrics[k] for k in ("status", "frames", "final_return", "episodes", "eval_frames", "eval_returns",
                                    "wall_time_s", "steps_per_s")},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{env}_{method}_seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{method} {env} seed {seed}: final return {result['final_return']:.2f} ({result['wall_time_s']:.0f}s)")
    return result


def machine_info() -> dict:
    """Where a result was measured: host, CPU count, Python and torch versions, git commit."""
    import os
    import platform
    import subprocess

    import torch

    commit = os.environ.get("GIT_COMMIT")
    if commit is None:
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            commit = None
    return {
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "git_commit": commit or None,
    }


def summarize() -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    results = [json.loads(p.read_text()) for p in sorted(OUT.glob("*_seed*.json"))]
    table = {}
    for env in ENVS:
        for method in METHODS:
            finals = [r["final_return"] for r in results if r["env"] == env and r["method"] == method
                      and r["status"] == "completed"]
            if finals:
                table[f"{env}/{method}"] = {
                    "seeds": len(finals), "mean": float(np.mean(finals)), "std": float(np.std(finals)),
                    "final_returns": finals,
                }
    lines = ["| env | method | seeds | last-100 training return (mean +- std) |", "| --- | --- | --- | --- |"]
    for key, row in table.items():
        env, method = key.split("/")
        lines.append(f"| {env} | {method} | {row['seeds']} | {row['mean']:.2f} +- {row['std']:.2f} |")
    for env, (mean, std) in ANCHOR.items():
        lines.append(f"| {env} | CleanRL DQN (published) | 3 | {mean:.2f} +- {std:.2f} |")
    (OUT / "summary.md").write_text("\n".join(lines) + "\n")
    (OUT / "summary.json").write_text(json.dumps({"table": table, "anchor": ANCHOR}, indent=2) + "\n")
    plot(results, OUT / "learning_classic.png")
    print("\n".join(lines))
    return table


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ENVS), figsize=(6 * len(ENVS), 4), dpi=100)
    colors = {"dqn": "tab:gray", "m_dqn": "tab:blue", "soft_dqn": "tab:green"}
    for ax, env in zip(axes, ENVS):
        for method in METHODS:
            runs = [r for r in results if r["env"] == env and r["method"] == method]
            if not runs:
                continue
            n = min(len(r["curve_returns"]) for r in runs)
            curves = np.array([r["curve_returns"][:n] for r in runs])
            x = runs[0]["curve_frames"][:n]
            mean, std = curves.mean(0), curves.std(0)
            ax.plot(x, mean, color=colors[method], label=f"{method} ({len(runs)} seeds)")
            ax.fill_between(x, mean - std, mean + std, color=colors[method], alpha=0.2)
        if env in ANCHOR:
            ax.axhline(ANCHOR[env][0], color="k", ls="--", lw=0.8, label="CleanRL DQN final (published)")
        ax.set_title({"cartpole": "CartPole-v1", "acrobot": "Acrobot-v1"}[env])
        ax.set_xlabel("environment steps")
        ax.set_ylabel("training episode return (10k-step means)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=METHODS)
    p.add_argument("--env", choices=ENVS)
    p.add_argument("--seed", type=int)
    p.add_argument("--frames", type=int, default=None, help="override the preset's 500k steps (smoke tests)")
    p.add_argument("--summarize", action="store_true")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for the recipe")
    args = p.parse_args()
    if args.summarize:
        summarize()
        return
    if args.method is None or args.env is None or args.seed is None:
        p.error("--method, --env and --seed are required unless --summarize is given")
    run(args.method, args.env, args.seed, args.frames, args.overrides)


if __name__ == "__main__":
    main()
