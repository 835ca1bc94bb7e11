"""VIREL on HalfCheetah-v5 and Hopper-v5 (100k steps) beside SAC: the return and the temperature eps_w.

Reads the committed run records (``python -m torchrl_reg.report SWEEP_DIR --records DIR``, one JSON per
run) of ``benchmarks/learning_virel.yaml`` and of our SAC runs, and draws per environment the
deterministic evaluation return and VIREL's temperature ``eps_w = c mean |T Q - Q|^p`` (the
``train/temperature`` curve, on the training batch) against environment steps, one line per seed::

    python benchmarks/virel_mujoco.py benchmarks/results/virel/mujoco100k benchmarks/results/iq/learning

writes ``results/virel/mujoco100k/eps_w_<env>.png`` and ``results/virel/mujoco100k/eps_w.json`` (per
method, environment and seed: the evaluation at 100k, eps_w at its first and last log, wall time). The
statistics (IQM, bootstrap intervals) are the report's; this script only adds the temperature figure.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).parent / "results" / "virel" / "mujoco100k"
METHODS = {"virel": "tab:blue", "virel_em": "tab:red", "sac": "k"}
ENVS = ("HalfCheetah-v5", "Hopper-v5")


def eval_curve(record: dict) -> tuple[list[int], list[float]]:
    """(frames, returns) of the deterministic evaluations: the ``eval/return`` curve of a record, or the
    ``eval_frames`` / ``eval_returns`` of its metrics (records written before curves were stored)."""
    curve = record.get("curves", {}).get("eval/return")
    if curve:
        return list(curve["frames"]), list(curve["values"])
    metrics = record["metrics"]
    return list(metrics.get("eval_frames", [])), list(metrics.get("eval_returns", []))


def load_records(roots: list[Path]) -> list[dict]:
    """Every record of METHODS on ENVS below ``roots``, sorted by method, env and seed."""
    records = []
    for root in roots:
        for path in sorted(root.glob("*.json")) if root.is_dir() else [root]:
            record = json.loads(path.read_text())
            if isinstance(record, dict) and record.get("method") in METHODS and record.get("env") in ENVS:
                records.append(record)
    return sorted(records, key=lambda r: (r["method"], r["env"], r["seed"]))


def summarize(records: list[dict]) -> dict:
    summary: dict = {}
    for r in records:
        frames, returns = eval_curve(r)
        temperature = r.get("curves", {}).get("train/temperature", {"frames": [], "values": []})
        summary.setdefault(r["env"], {}).setdefault(r["method"], []).append({
            "seed": r["seed"], "last_eval_frame": frames[-1] if frames else None,
            "last_eval": returns[-1] if returns else None,
            "eps_w_first": temperature["values"][0] if temperature["values"] else None,
            "eps_w_last": temperature["values"][-1] if temperature["values"] else None,
            "wall_time_s": r["metrics"].get("wall_time_s"), "command": r.get("command"),
        })
    return summary


def plot(records: list[dict], env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    labelled: set[tuple[str, int]] = set()
    for r in (r for r in records if r["env"] == env):
        color = METHODS[r["method"]]
        frames, returns = eval_curve(r)
        first = (r["method"], 0) not in labelled
        axes[0].plot(frames, returns, "-", color=color, alpha=0.8, label=r["method"] if first else None)
        labelled.add((r["method"], 0))
        temperature = r.get("curves", {}).get("train/temperature")
        if temperature and r["method"] != "sac":
            first = (r["method"], 1) not in labelled
            axes[1].plot(temperature["frames"], temperature["values"], "-", color=color, alpha=0.8,
                         label=f"{r['method']} eps_w" if first else None)
            labelled.add((r["method"], 1))
    axes[0].set_title(f"{env}: evaluation return (deterministic policy, 10 episodes)", fontsize=10)
    axes[1].set_title("VIREL's temperature eps_w = c mean|TQ - Q|^p (training batch)", fontsize=10)
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("environment steps (one line per seed)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", type=Path, nargs="+", help="folders of run records (JSON) or record files")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.roots if not p.exists()]
    if missing:
        parser.error(f"no such record folder or file: {', '.join(missing)}")
    records = load_records(args.roots)
    if not any(r["method"] != "sac" for r in records):
        parser.error(f"no VIREL record (method virel or virel_em on {', '.join(ENVS)}) under {', '.join(map(str, args.roots))}")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = summarize(records)
    command = "python benchmarks/virel_mujoco.py " + " ".join(sys.argv[1:] if argv is None else argv)
    (args.out / "eps_w.json").write_text(json.dumps({"command": command, "summary": summary}, indent=1))
    for env in (e for e in summary if set(summary[e]) - {"sac"}):
        plot(records, env, args.out / f"eps_w_{env}.png")
        for method, runs in summary[env].items():
            print(env, method, [(r["seed"], round(r["last_eval"], 1), r["eps_w_last"]) for r in runs])
    return 0


if __name__ == "__main__":
    sys.exit(main())
