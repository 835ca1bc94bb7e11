"""MuJoCo learning benchmark of issue 5: M-IQ, IQ and SAC (and the ablations) side by side.

One training run per invocation (so that runs can be spread over machines or a SLURM array), one
JSON per run under ``--out``; ``--summarize`` aggregates them into a table (mean +- std over seeds
of the evaluation return at each budget, next to Dopamine's SAC) and learning-curve plots.

    python benchmarks/learning_mujoco.py --method m_iq --env HalfCheetah-v5 --seed 0
    python benchmarks/learning_mujoco.py --method sac --env Hopper-v5 --seed 2 --frames 200000
    python benchmarks/learning_mujoco.py --summarize

Methods: ``m_iq`` (alpha 0.9), ``iq`` (alpha 0), ``iq_gaussian`` (M-IQ with a tanh-Gaussian
policy), ``trust_pcl`` / ``pcl`` (online-value residual ablations) from ``recipes/iq.py``, and
``sac`` from ``recipes/sac.py`` (``sac_dopamine``: the same with Dopamine's reward scale 0.1, target
entropy -dim(A)/2, target actor and 10k uniformly random warm-up actions, the protocol of the anchor numbers); all with the recipes' MuJoCo preset (SAC's hyperparameters).
Extra ``--override key=value`` arguments go to the recipe config (e.g. shorter smoke runs).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "iq" / "learning"
# Env id -> the recipes' env/preset name; Pendulum-v1 is the CPU-sized check of the same pipeline.
ENVS = {
    "HalfCheetah-v5": "halfcheetah",
    "Hopper-v5": "hopper",
    # v4: gym v2's model and reward through the new mujoco bindings (v5 no longer pays the healthy reward on
    # the terminal step): the nearest to Dopamine's gym v2 here (v2 needs mujoco-py and MuJoCo binaries
    # from GitHub, not reachable); the hopper preset with env.name=Hopper-v4.
    "Hopper-v4": "hopper",
    "Walker2d-v5": "walker2d",
    "Ant-v5": "ant",
    "Humanoid-v5": "humanoid",
    "Pendulum-v1": "pendulum",
}
METHODS = {
    "m_iq": ("iq", ["loss=m_iq"]),
    "iq": ("iq", ["loss=iq"]),
    "iq_gaussian": ("iq", ["loss=m_iq", "policy=gaussian"]),
    "trust_pcl": ("iq", ["loss=trust_pcl"]),
    "pcl": ("iq", ["loss=pcl"]),
    "sac": ("sac", []),
    # Dopamine's SAC protocol (sac.gin, where the anchors come from): rewards x0.1, target entropy
    # -dim(A)/2 (added per env in run()), bootstrap action from a target copy of the actor, uniformly
    # random actions until min_replay_history=10k transitions are stored (sac_agent.py).
    "sac_dopamine": ("sac", ["loss.reward_scale=0.1", "loss.delay_actor=true", "collector.init_random_frames=10000"]),
}
# Dopamine's SAC baselines (gym v2, 5 seeds): mean, std of the return at 100k and 200k steps.
ANCHORS = {
    "HalfCheetah-v5": {100_000: (5470.0, 548.0), 200_000: (7386.0, 284.0)},
    "Hopper-v5": {100_000: (2337.0, 1038.0), 200_000: (3035.0, 508.0)},
}
ANCHORS["Hopper-v4"] = ANCHORS["Hopper-v5"]  # the same gym v2 numbers, shown beside both versions


def _action_dim(env_id: str) -> int:
    """dim(A) of a gymnasium env, read from its action space (Dopamine's target entropy is -dim(A)/2)."""
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return env.action_space.shape[0]
    finally:
        env.close()


def _code_version() -> str:
    """The commit the run's code comes from, ``+dirty`` when tracked files differ from it."""
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    return (commit or "unknown") + ("+dirty" if dirty.strip() else "")


def run(args: argparse.Namespace) -> Path:
    sys.path.insert(0, str(REPO))
    from recipes import iq, sac
    from torchrl_reg.recipe_utils import compose_config

    recipe_name, method_overrides = METHODS[args.method]
    recipe = {"iq": iq, "sac": sac}[recipe_name]
    name = f"{args.method}_{args.env}_seed{args.seed}"
    run_dir = args.run_root / name
    overrides = [
        f"env={ENVS[args.env]}",
        f"env.name={args.env}",
        *method_overrides,
        *([f"loss.target_entropy={-0.5 * _action_dim(args.env)}"] if args.method == "sac_dopamine" else []),
        f"seed={args.seed}",
        f"collector.total_frames={args.frames}",
        f"run_dir={run_dir}",
        f"logger.progress_bar={str(args.progress_bar).lower()}",
        *args.override,
    ]
    cfg = compose_config(REPO / "recipes" / "conf", recipe_name, overrides)
    code_version = _code_version()
    metrics = recipe.train(cfg)
    result = {
        "command": "python " + " ".join(sys.argv),
        "method": args.method,
        "env": args.env,
        "seed": args.seed,
        "recipe": f"recipes/{recipe_name}.py",
        "commit": code_version,
        "overrides": overrides,
        "metrics": metrics,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(
        f"{name}: {metrics['status']}, {metrics['frames']} frames, eval {metrics['eval_returns'][-1:]} , "
        f"{metrics['steps_per_s']:.1f} steps/s, {metrics['updates_per_s']:.1f} updates/s -> {path}"
    )
    return path


def _eval_at(metrics: dict, frames: int) -> float | None:
    """Evaluation return at ``frames`` (the last evaluation at or before it), None if not reached."""
    points = [(f, r) for f, r in zip(metrics["eval_frames"], metrics["eval_returns"]) if f <= frames]
    if not points or metrics["frames"] < frames:
        return None
    return points[-1][1]


def _last_evals_mean(metrics: dict, count: int = 3) -> float | None:
    """Mean of the last ``count`` evaluations (e.g. 80k, 90k, 100k): less noisy than the last one alone
    on tasks like Hopper, where one evaluation can catch a policy between two falls."""
    returns = metrics["eval_returns"][-count:]
    return statistics.fmean(returns) if len(returns) == count else None


def summarize(args: argparse.Namespace) -> None:
    results = [json.loads(p.read_text()) for p in sorted(args.out.glob("*.json")) if p.name != "summary.json"]
    if not results:
        raise SystemExit(f"no run results (*.json) under {args.out}")
    budgets = sorted({b for a in ANCHORS.values() for b in a} | {max(r["metrics"]["frames"] for r in results)})
    table = {}
    for env in sorted({r["env"] for r in results}):
        for method in METHODS:
            runs = [r for r in results if r["env"] == env and r["method"] == method]
            if not runs:
                continue
            row = {"seeds": sorted(r["seed"] for r in runs)}
            for budget in budgets:
                values = [v for v in (_eval_at(r["metrics"], budget) for r in runs) if v is not None]
                if values:
                    std = statistics.stdev(values) if len(values) > 1 else 0.0
                    row[str(budget)] = {"mean": statistics.fmean(values), "std": std, "n": len(values)}
            row["final_per_seed"] = {str(r["seed"]): r["metrics"]["eval_returns"][-1] for r in runs}
            last3 = [v for v in (_last_evals_mean(r["metrics"]) for r in runs) if v is not None]
            if last3:
                std = statistics.stdev(last3) if len(last3) > 1 else 0.0
                row["mean_of_last_3_evals"] = {"mean": statistics.fmean(last3), "std": std, "n": len(last3)}
            row["steps_per_s"] = statistics.fmean(r["metrics"]["steps_per_s"] for r in runs)
            row["updates_per_s"] = statistics.fmean(r["metrics"]["updates_per_s"] for r in runs)
            table.setdefault(env, {})[method] = row
    summary = {"command": "python " + " ".join(sys.argv), "anchors_dopamine_sac": ANCHORS, "results": table}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    lines = ["| env | method | seeds | " + " | ".join(f"eval @ {b // 1000}k" for b in budgets) + " | last 3 evals |"]
    lines.append("|" + " --- |" * (4 + len(budgets)))
    for env, rows in table.items():
        for method, row in rows.items():
            cells = []
            for b in budgets:
                cell = row.get(str(b))
                cells.append(f"{cell['mean']:.0f} +- {cell['std']:.0f} (n={cell['n']})" if cell else "-")
            cell = row.get("mean_of_last_3_evals")
            cells.append(f"{cell['mean']:.0f} +- {cell['std']:.0f}" if cell else "-")
            lines.append(f"| {env} | {method} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
        if env in ANCHORS:
            cells = [f"{ANCHORS[env][b][0]:.0f} +- {ANCHORS[env][b][1]:.0f}" if b in ANCHORS[env] else "-" for b in budgets]
            lines.append(f"| {env} | Dopamine SAC (gym v2) | 5 | " + " | ".join(cells) + " | - |")
    print("\n".join(lines))
    plot(results, args.out / "learning_curves.png")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    envs = sorted({r["env"] for r in results})
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    colors = {method: f"C{i}" for i, method in enumerate(METHODS)}  # one colour per method on every panel
    for ax, env in zip(axes[0], envs):
        for method in METHODS:
            runs = [r["metrics"] for r in results if r["env"] == env and r["method"] == method]
            if not runs:
                continue
            frames = sorted(set.intersection(*(set(m["eval_frames"]) for m in runs)))
            curves = np.array([[dict(zip(m["eval_frames"], m["eval_returns"]))[f] for f in frames] for m in runs])
            mean, std = curves.mean(0), curves.std(0)
            ax.plot(frames, mean, color=colors[method], label=f"{method} (n={len(runs)})")
            ax.fill_between(frames, mean - std, mean + std, color=colors[method], alpha=0.2)
        for budget, (mean, std) in ANCHORS.get(env, {}).items():
            ax.errorbar([budget], [mean], yerr=[std], fmt="k*", capsize=4)
        ax.set_title(f"{env} (stars: Dopamine SAC)" if env in ANCHORS else env)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return (deterministic policy)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"-> {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=list(METHODS))
    parser.add_argument("--env", choices=list(ENVS), default="HalfCheetah-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the per-run JSONs and the summary go")
    parser.add_argument(
        "--run-root", type=Path, default=REPO / "runs" / "learning_mujoco", help="recipe run dirs (checkpoints, logs)"
    )
    parser.add_argument("--override", action="append", default=[], help="extra recipe override key=value")
    parser.add_argument("--progress-bar", action="store_true")
    parser.add_argument("--summarize", action="store_true", help="aggregate the JSONs under --out")
    args = parser.parse_args()
    if args.summarize:
        summarize(args)
    elif args.method is None:
        parser.error("--method is required unless --summarize is given")
    else:
        run(args)


if __name__ == "__main__":
    main()
