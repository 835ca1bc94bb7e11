"""VIREL on HalfCheetah-v5 and Hopper-v5 (100k steps) beside SAC: the return and the temperature eps_w.

Reads the committed run records (``python -m torchrl_reg.report SWEEP_DIR --records DIR``, one JSON per
run) of ``benchmarks/learning_virel.yaml`` and of our SAC runs, and draws per environment the
deterministic evaluation return and VIREL's temperature ``eps_w = c mean |T Q - Q|^p`` (the
``train/temperature`` curve, on the training batch) against environment steps, one line per seed::

    python -m benchmarks.virel_mujoco benchmarks/results/virel/mujoco100k benchmarks/results/iq/learning

writes ``results/virel/mujoco100k/eps_w_<env>.png`` and ``results/virel/mujoco100k/eps_w.json`` (per
method, environment and seed: the evaluation at 100k, eps_w at its first and last log, wall time). The
statistics (IQM, bootstrap intervals) are the report's; this script only adds the temperature figure.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import virel_pendulum

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
    """The two-panel figure of benchmarks/virel_pendulum.py (return, temperature), from records."""
    summary: dict = {}
    for r in (r for r in records if r["env"] == env):
        temperature = r.get("curves", {}).get("train/temperature") if r["method"] != "sac" else None
        summary.setdefault(r["method"], {"seeds": []})["seeds"].append({
            "completed": True, "eval": list(zip(*eval_curve(r))),
            "temperature": list(zip(temperature["frames"], temperature["values"])) if temperature else [],
        })
    virel_pendulum.plot(summary, env, path, colors=METHODS)


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
    command = "python -m benchmarks.virel_mujoco " + " ".join(sys.argv[1:] if argv is None else argv)
    (args.out / "eps_w.json").write_text(json.dumps({"command": command, "summary": summary}, indent=1))
    for env in (e for e in summary if set(summary[e]) - {"sac"}):
        plot(records, env, args.out / f"eps_w_{env}.png")
        for method, runs in summary[env].items():
            print(env, method, [(r["seed"], round(r["last_eval"], 1), r["eps_w_last"]) for r in runs])
    return 0


if __name__ == "__main__":
    sys.exit(main())
