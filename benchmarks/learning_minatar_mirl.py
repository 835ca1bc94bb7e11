"""MinAtar learning benchmark of the MIRL recipe: DQN vs SQL vs MIRL (and SQL_m), one run per invocation.

Issue 6: Breakout, SpaceInvaders and Asterix at 1M agent steps, at least 3 seeds per method; the
MIRL paper's Atari anchor (19 games, mean human-normalized) orders DQN 356% < SQL 389% < MIRL 413%.
Each invocation trains one (game, method, seed) with ``recipes/mirl.py`` (``env=minatar``: the
Revisiting Rainbow schedule, full action set, sticky actions 0.1) and writes one JSON to
``benchmarks/results/mirl/minatar/`` with the exact command, the metrics and the learning curve.
``--summarize`` gathers every JSON there into a table (``summary.json``, printed) and a plot
(``summary.png``): the mean over seeds of the final return (last 100 training episodes).

    python benchmarks/learning_minatar_mirl.py --game Breakout --loss mirl --seed 0
    python benchmarks/learning_minatar_mirl.py --summarize

A sweep is a loop over games x losses x seeds of the first command (or a SLURM array). Other
recipe settings pass through ``--override`` (Hydra syntax), e.g. ``--override compile=true``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import shlex
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mirl" / "minatar"
GAMES = ("Breakout", "SpaceInvaders", "Asterix")
LOSSES = ("dqn", "sql", "sql_m", "mirl")


def read_curve(run_dir: Path, name: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of a scalar logged by the recipe's CSV logger (rows ``step,value``)."""
    path = next((run_dir / "csv" / "scalars").rglob(f"{name}.csv"), None)
    if path is None:
        return [], []
    with open(path) as f:
        rows = [row for row in csv.reader(f) if row]
    return [int(float(r[0])) for r in rows], [float(r[1]) for r in rows]


def run_one(args: argparse.Namespace) -> Path:
    sys.path.insert(0, str(ROOT))
    from recipes import mirl
    from torchrl_reg.recipe_utils import compose_config

    name = f"{args.game}-{args.loss}-seed{args.seed}"
    run_dir = (args.runs or ROOT / "runs" / "learning_minatar_mirl") / name
    overrides = [
        "env=minatar",
        f"env.name={args.game}",
        f"loss={args.loss}",
        f"seed={args.seed}",
        f"collector.total_frames={args.frames}",
        f"run_dir={run_dir}",
        "logger.progress_bar=false",
        *args.override,
    ]
    cfg = compose_config(ROOT / "recipes" / "conf", "mirl", overrides)
    metrics = mirl.train(cfg)
    steps, returns = read_curve(run_dir, "episode_return")
    beta_steps, betas = read_curve(run_dir, "beta")
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "game": args.game,
        "loss": args.loss,
        "seed": args.seed,
        "overrides": overrides,
        "metrics": metrics,
        "curve": {"frames": steps, "episode_return": returns},
        "beta_curve": {"frames": beta_steps, "beta": betas},
        "machine": platform.platform(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(result, indent=1))
    print(
        f"{name}: final return {metrics['final_return']:.2f}, {metrics['frames']} frames, "
        f"{metrics['steps_per_s']:.0f} steps/s -> {path}"
    )
    return path


def summarize(out: Path) -> dict:
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*-seed*.json"))]
    table: dict[str, dict[str, dict]] = {}
    for r in results:
        entry = table.setdefault(r["game"], {}).setdefault(r["loss"], {"seeds": [], "final_return": [], "frames": [], "steps_per_s": []})
        entry["seeds"].append(r["seed"])
        entry["final_return"].append(r["metrics"]["final_return"])
        entry["frames"].append(r["metrics"]["frames"])
        entry["steps_per_s"].append(r["metrics"]["steps_per_s"])
    for game, losses in table.items():
        for loss, e in losses.items():
            values = [v for v in e["final_return"] if not math.isnan(v)]
            e["mean"] = statistics.fmean(values) if values else math.nan
            e["std"] = statistics.stdev(values) if len(values) > 1 else math.nan
    summary = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "table": table}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    for game, losses in sorted(table.items()):
        row = "  ".join(
            f"{loss} {e['mean']:.2f} ± {e['std']:.2f} (n={len(e['seeds'])}, {min(e['frames'])} frames)"
            for loss, e in sorted(losses.items(), key=lambda kv: LOSSES.index(kv[0]) if kv[0] in LOSSES else 99)
        )
        print(f"{game:14s} {row}")
    _plot(results, out / "summary.png")
    return summary


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = sorted({r["game"] for r in results})
    if not games:
        return
    fig, axes = plt.subplots(1, len(games), figsize=(5 * len(games), 3.6), squeeze=False)
    for ax, game in zip(axes[0], games):
        for loss in LOSSES:
            runs = [r for r in results if r["game"] == game and r["loss"] == loss and r["curve"]["frames"]]
            for k, r in enumerate(runs):
                ax.plot(r["curve"]["frames"], r["curve"]["episode_return"], color=f"C{LOSSES.index(loss)}",
                        alpha=0.8, lw=1, label=loss if k == 0 else None)
        ax.set_title(f"MinAtar {game}")
        ax.set_xlabel("agent steps")
        ax.set_ylabel("training episode return")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--game", choices=GAMES + ("Freeway", "Seaquest"), default="Breakout")
    parser.add_argument("--loss", choices=LOSSES, default="mirl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=1_000_000, help="agent steps (collector.total_frames)")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for recipes/mirl.py")
    parser.add_argument("--runs", type=Path, default=None, help="parent of the run directories (default runs/)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--summarize", action="store_true", help="gather the result files instead of running")
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.out)
    else:
        run_one(args)


if __name__ == "__main__":
    main()
