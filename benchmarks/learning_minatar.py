"""Learning on MinAtar: DQN, M-DQN, IQN and M-IQN with the Revisiting Rainbow settings.

One run per invocation, one JSON per run (so the grid can be completed in parts, e.g. as a SLURM
array); ``--summarize`` reads every JSON and writes the mean and 95% confidence interval
(Student t over seeds) of the final return per method and game, plus a PNG.

    python benchmarks/learning_minatar.py --method m_iqn --game breakout --seed 0 --steps 1000000
    python benchmarks/learning_minatar.py --summarize

The issue's grid is 4 methods x {breakout, space_invaders, asterix} x 3 seeds at 1M steps.
DQN and M-DQN run ``recipes/m_dqn.py`` (``loss=dqn`` / ``loss=m_dqn``), IQN and M-IQN
``recipes/m_iqn.py``, each with its MinAtar preset. Revisiting Rainbow (10M steps, figures
only) found M-DQN > DQN on these games and M-IQN ~ IQN.

DQN is shared with the MIRL benchmark (``benchmarks/learning_minatar_mirl.py``): ``mirl.py
loss=dqn`` trains exactly what ``m_dqn.py loss=dqn`` trains (same preset, same random streams;
``tests/recipes/test_mirl.py::test_dqn_baseline_trains_exactly_as_in_the_m_dqn_recipe``), so
``--summarize`` counts its 1M-step DQN runs (``results/mirl/minatar/<Game>-dqn-seed<S>.json``;
their greedy evaluations come every 250k steps instead of every 100k) for the (game, seed)
pairs this script has not run itself. Only runs of ``--steps`` steps are summarized.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "learning_minatar"
METHODS = {"dqn": ("m_dqn", "dqn"), "m_dqn": ("m_dqn", "m_dqn"), "iqn": ("m_iqn", "iqn"), "m_iqn": ("m_iqn", "m_iqn")}
GAMES = {"breakout": "Breakout", "space_invaders": "SpaceInvaders", "asterix": "Asterix", "seaquest": "Seaquest",
         "freeway": "Freeway"}


def run(method: str, game: str, seed: int, steps: int, eval_episodes: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from torchrl_reg.recipe_utils import compose_config

    recipe, loss = METHODS[method]
    module = __import__(f"recipes.{recipe}", fromlist=["train"])
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose_config(
            ROOT / "recipes" / "conf",
            recipe,
            [
                "env=minatar",
                f"env.name={GAMES[game]}",
                f"loss={loss}",
                f"seed={seed}",
                f"collector.total_frames={steps}",
                f"eval.interval={max(steps // 10, 1)}",
                f"eval.episodes={eval_episodes}",
                f"checkpoint.interval={steps}",
                f"run_dir={run_dir}",
                "logger.progress_bar=false",
            ],
        )
        metrics = module.train(cfg)
    metrics.pop("run_dir")
    return {"method": method, "game": game, "seed": seed, "steps": steps, **metrics}


def t_quantile(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) if n > 1 else math.nan


MIRL_RESULTS = Path(__file__).parent / "results" / "mirl" / "minatar"


def shared_dqn_runs(steps: int) -> list[dict]:
    """The MIRL benchmark's DQN runs of ``steps`` steps, in this script's record format."""
    runs = []
    for game, name in GAMES.items():
        for path in sorted(MIRL_RESULTS.glob(f"{name}-dqn-seed*.json")):
            result = json.loads(path.read_text())
            metrics = result["metrics"]
            if metrics["frames"] < steps or metrics.get("status") != "completed":
                continue
            keep = ("frames", "updates", "wall_time_s", "steps_per_s", "final_return", "episodes", "eval_frames", "eval_returns")
            runs.append({"method": "dqn", "game": game, "seed": result["seed"], "steps": steps,
                         **{k: metrics[k] for k in keep}, "source": f"benchmarks/results/mirl/minatar/{path.name}",
                         "command": result["command"]})
    return runs


def summarize(steps: int = 1_000_000) -> dict:
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*-seed*.json"))]
    runs = [r for r in runs if r["steps"] == steps]
    own = {(r["method"], r["game"], r["seed"]) for r in runs}
    runs += [r for r in shared_dqn_runs(steps) if (r["method"], r["game"], r["seed"]) not in own]
    table: dict = {}
    for r in runs:
        table.setdefault(r["game"], {}).setdefault(r["method"], []).append(r)
    summary = {}
    for game, methods in table.items():
        for method, rs in methods.items():
            finals = [r["eval_returns"][-1] if r["eval_returns"] else r["final_return"] for r in rs]
            n = len(finals)
            mean = statistics.fmean(finals)
            half = t_quantile(n) * statistics.stdev(finals) / math.sqrt(n) if n > 1 else math.nan
            summary.setdefault(game, {})[method] = {
                "n_seeds": n,
                "steps": sorted({r["steps"] for r in rs}),
                "final_eval_return_mean": mean,
                "ci95_half_width": half,
                "steps_per_s_mean": statistics.fmean(r["steps_per_s"] for r in rs),
                "final_training_return_mean": statistics.fmean(r["final_return"] for r in rs),
                "seeds": sorted(r["seed"] for r in rs),
                "shared_from_mirl_benchmark": sorted(r["seed"] for r in rs if "source" in r),
            }
    (RESULTS / "summary.json").write_text(json.dumps({"command": "python " + " ".join(sys.argv), "summary": summary}, indent=2))
    plot(table, summary, RESULTS / "summary.png")
    return summary


def plot(table: dict, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = sorted(table)
    fig, axes = plt.subplots(1, max(len(games), 1), figsize=(4.5 * max(len(games), 1), 3.5), squeeze=False)
    for ax, game in zip(axes[0], games):
        for method in sorted(table[game]):
            for i, r in enumerate(table[game][method]):
                ax.plot(r["eval_frames"], r["eval_returns"], color=f"C{list(METHODS).index(method)}", alpha=0.6,
                        label=f"{method} (n={summary[game][method]['n_seeds']})" if i == 0 else None)
        ax.set_title(f"MinAtar {game}")
        ax.set_xlabel("agent steps")
        ax.set_ylabel("greedy evaluation return")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=list(METHODS))
    parser.add_argument("--game", choices=list(GAMES), default="breakout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.summarize:
        print(json.dumps(summarize(args.steps), indent=2))
        return
    if args.method is None:
        parser.error("--method is required unless --summarize is given")
    result = run(args.method, args.game, args.seed, args.steps, args.eval_episodes)
    result["command"] = "python " + " ".join(sys.argv)
    out = RESULTS / f"{args.method}-{args.game}-seed{args.seed}.json"
    out.write_text(json.dumps(result, indent=2))
    print(out, json.dumps({k: result[k] for k in ("final_return", "eval_returns", "steps_per_s", "wall_time_s")}))


if __name__ == "__main__":
    main()
