"""VIREL on Pendulum-v1 (20k steps) beside SAC, and VIREL's temperature estimators: returns and eps_w.

The runs come from the product's sweep, one sweep per method, all on the same budget
(protocol/control/pendulum.yaml: 20k steps, 2x64 MLPs, batch 128, one update per step after 1k), e.g.::

    nice -n 19 taskset -c 0 python -m torchrl_reg.sweep recipes/virel.py env=pendulum loss=virel seed=1,2 \
        logger.progress_bar=false --executor local --parallel 2 --dir D/pendulum_practical
    ... loss=virel_em seed=1,2 --dir D/pendulum_em;  recipes/sac.py env=pendulum seed=1,2 --dir D/pendulum_sac
    ... loss=virel loss.temperature_estimator=batch,ema seed=0 --dir D/pendulum_estimators

(each sweep's exact command is read from its ``sweep.json`` into the results), then::

    python benchmarks/virel_pendulum.py D/pendulum_practical D/pendulum_em D/pendulum_sac D/pendulum_estimators ...

(``--keep results/virel/pendulum.json`` adds a run to the committed summaries without the run
directories of the others: their runs are kept as summarized there, a new run of the same method and
seed replaces one, and the commands that summarized them are listed under ``earlier_commands``)

reads every run directory below the given folders (a run still going, or stopped, is summarized up
to its last evaluation and marked so) and writes

* ``results/virel/pendulum.{json,png}``: practical VIREL (the official replay-4096 estimator), the
  EM variant (the paper's E/M steps as written) and SAC, evaluation return and the temperature (VIREL's eps_w, SAC's alpha)
  against environment steps, every seed;
* ``results/virel/pendulum_estimators.{json,png}``: practical VIREL with each temperature estimator
  (``replay`` 4096, ``batch``, ``ema``) on the seeds all three have.
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
from pathlib import Path

import yaml

from torchrl_reg.run.metrics import read_metric

RESULTS = Path(__file__).parent / "results" / "virel"
MAIN_METHODS = ("virel_practical", "virel_em", "sac")
ESTIMATORS = ("virel_practical", "virel_practical_batch", "virel_practical_ema")
COLORS = {"virel_practical": "tab:blue", "virel_em": "tab:red", "sac": "k",
          "virel_practical_batch": "tab:green", "virel_practical_ema": "tab:orange"}


def read_csv(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [(int(float(r[0])), float(r[1])) for r in csv.reader(f) if r and r[0] != "step"]


def label(config: dict) -> str:
    """``sac``, or ``virel_<variant>`` with ``_<estimator>`` unless it is the official replay estimator."""
    loss = config["loss"]
    if "variant" not in loss:
        return "sac"
    estimator = loss["temperature_estimator"]
    return f"virel_{loss['variant']}" + ("" if estimator == "replay" else f"_{estimator}")


def find_runs(roots: list[Path]) -> list[Path]:
    """Every run directory (``config.yaml`` next to ``csv/``) at or below ``roots``."""
    runs = []
    for root in roots:
        candidates = [root] if (root / "config.yaml").exists() else sorted(p.parent for p in root.rglob("config.yaml"))
        runs += [p for p in candidates if (p / "csv").is_dir()]
    return runs


def sweep_command(run: Path) -> str | None:
    sweep = run.parent / "sweep.json"
    return json.loads(sweep.read_text())["command"] if sweep.exists() else None


def summarize_run(run: Path) -> dict:
    config = yaml.safe_load((run / "config.yaml").read_text())
    scalars = run / "csv" / "scalars"
    evals = read_csv(scalars / "eval" / "return.csv")
    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    name = label(config)
    temperature = read_csv(scalars / "train" / ("alpha.csv" if name == "sac" else "temperature.csv"))
    return {
        "method": name, "seed": config["seed"], "run_dir": str(run), "sweep_command": sweep_command(run),
        "status": metrics.get("status", "running"), "completed": metrics.get("status") == "completed",
        "last_eval_frame": evals[-1][0] if evals else None, "last_eval_return": evals[-1][1] if evals else None,
        "final_return": read_metric(metrics, "train_return_mean"), "wall_time_s": metrics.get("wall_time_s"),
        "eval": evals, "temperature": temperature,
    }


def kept_runs(earlier: dict, have: set[tuple[str, int]]) -> list[dict]:
    """The runs of an earlier summary whose (method, seed) is not in ``have``, each once; their keys are
    added to ``have`` (so that a run in two summaries is kept from the first)."""
    kept = []
    for entry in earlier["summary"].values():
        for run in entry["seeds"]:
            key = (run["method"], run["seed"])
            if key not in have:
                have.add(key)
                kept.append(run)
    return kept


def by_method(rows: list[dict], methods: tuple[str, ...], seeds: set[int] | None = None) -> dict:
    summary = {}
    for method in methods:
        runs = sorted((r for r in rows if r["method"] == method and (seeds is None or r["seed"] in seeds)), key=lambda r: r["seed"])
        if not runs:
            continue
        done = [r["last_eval_return"] for r in runs if r["completed"]]
        summary[method] = {
            "completed_seeds": [r["seed"] for r in runs if r["completed"]],
            # The score benchmarks/results.yaml reads: the evaluation return at 20k of each finished run.
            "completed_last_eval": done,
            "mean_last_eval_completed": sum(done) / len(done) if done else None,
            "seeds": runs,
        }
    return summary


def plot(summary: dict, title: str, path: Path, colors: dict[str, str] = COLORS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for method, entry in summary.items():
        for i, run in enumerate(entry["seeds"]):
            style = "-" if run["completed"] else ":"
            first = i == 0
            if run["eval"]:
                axes[0].plot(*zip(*run["eval"]), style, color=colors[method], alpha=0.8, label=method if first else None)
            if run["temperature"]:
                name = f"{method} (alpha)" if method == "sac" else f"{method} eps_w"
                axes[1].plot(*zip(*run["temperature"]), style, color=colors[method], alpha=0.8, label=name if first else None)
    axes[0].set_title(f"{title}: evaluation return (deterministic policy)", fontsize=10)
    axes[1].set_title("temperature: VIREL's eps_w (Bellman error), SAC's alpha", fontsize=10)
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("environment steps (dotted: run not finished)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", type=Path, nargs="+", help="sweep or run directories")
    parser.add_argument(
        "--keep", type=Path, action="append", default=[], metavar="JSON",
        help="a summary this script wrote before (results/virel/pendulum.json): keep its runs, as summarized "
             "there, whose method and seed no run below the roots has (their run directories may be gone); "
             "its command, and those it kept runs from, go to earlier_commands",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG files go (default: %(default)s)")
    args = parser.parse_args(argv)
    rows = [summarize_run(run) for run in find_runs(args.roots)]
    earlier_commands, have = [], {(r["method"], r["seed"]) for r in rows}
    for path in args.keep:
        earlier = json.loads(path.read_text())
        for command in [*earlier.get("earlier_commands", []), earlier["command"]]:
            if command not in earlier_commands:
                earlier_commands.append(command)
        rows += kept_runs(earlier, have)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/virel_pendulum.py " + " ".join(sys.argv[1:] if argv is None else argv)
    main_summary = by_method(rows, MAIN_METHODS)
    # The estimators compare on the seeds every estimator has.
    seed_sets = [{r["seed"] for r in rows if r["method"] == m} for m in ESTIMATORS]
    common = set.intersection(*seed_sets) if all(seed_sets) else set()
    estimator_summary = by_method(rows, ESTIMATORS, common)
    for name, summary, title in (("pendulum", main_summary, "Pendulum-v1"),
                                 ("pendulum_estimators", estimator_summary, "Pendulum-v1, practical VIREL by estimator")):
        payload = {"command": command, "platform": platform.platform(), "summary": summary}
        if earlier_commands:
            payload["earlier_commands"] = earlier_commands  # the commands that summarized the kept runs
        (args.out / f"{name}.json").write_text(json.dumps(payload, indent=1))
        plot(summary, title, args.out / f"{name}.png")
        for method, entry in summary.items():
            print(name, method, [(r["seed"], r["last_eval_frame"], round(r["last_eval_return"], 1), r["status"])
                                 for r in entry["seeds"] if r["eval"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
