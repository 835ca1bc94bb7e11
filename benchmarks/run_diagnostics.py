"""Per-seed training diagnostics of committed run records: one panel per logged curve, one line per run.

A record (``python -m torchrl_reg.report <sweep dir> --records DIR``) keeps a run's logged curves (``curves``:
``{key: {"frames": [...], "values": [...]}}``) beside its evaluation returns. This script draws the chosen curves of
every record given, so a method tabled below its baseline shows *why* per seed (temperature, entropy, the share of
bounded terms past their linear range, Q values ...), and writes the numbers it drew as JSON: for each run and key
the mean over the last ``--last`` logged points, plus the run's evaluation returns.

    python benchmarks/run_diagnostics.py benchmarks/results/mdac/mujoco100k/mdac_Hopper-v5_seed*.json \\
        --keys eval/return train/alpha train/entropy train/clip_fraction train/q_value \\
        --out benchmarks/results/mdac/hopper_diagnosis
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _label(record: dict, path: Path) -> str:
    method = record.get("method", path.stem)
    return f"{method} seed {record.get('seed', '?')}"


def summarize(records: dict[str, dict], keys: list[str], last: int) -> dict:
    """For each run, the mean of each key over its last ``last`` logged points (None where the key was not logged)."""
    out = {}
    for label, record in records.items():
        curves = record.get("curves") or {}
        row = {}
        for key in keys:
            values = [v for v in (curves.get(key) or {}).get("values", []) if v is not None and math.isfinite(v)]
            row[key] = sum(values[-last:]) / len(values[-last:]) if values else None
        row["eval_returns"] = (record.get("metrics") or {}).get("eval_returns")
        row["command"] = record.get("command")
        out[label] = row
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("records", nargs="+", help="record JSON files (torchrl_reg.report --records)")
    p.add_argument("--keys", nargs="+", required=True, help="curve keys to draw, e.g. train/alpha eval/return")
    p.add_argument("--last", type=int, default=3, help="logged points averaged in the JSON summary (default 3)")
    p.add_argument("--out", required=True, help="output path without suffix: writes OUT.png and OUT.json")
    args = p.parse_args(argv)
    if args.last < 1:
        raise SystemExit(f"--last {args.last}: the number of last logged points to average, 1 or more")
    records = {}
    for name in args.records:
        path = Path(name)
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "curves" not in record:
            raise SystemExit(f"{path}: not a run record with logged curves (no 'curves' key)")
        records[_label(record, path)] = record
    missing = sorted({k for k in args.keys for r in records.values() if k not in r["curves"]})
    if missing:
        raise SystemExit(f"--keys {missing}: not logged in every record; logged: {sorted(next(iter(records.values()))['curves'])}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(args.keys))
    rows = math.ceil(len(args.keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, args.keys):
        for label, record in records.items():
            curve = record["curves"][key]
            ax.plot(curve["frames"], curve["values"], label=label, lw=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(args.keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    envs = sorted({str(r.get("env")) for r in records.values()})
    fig.suptitle(f"per-seed diagnostics, {', '.join(envs)}", fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    summary = {"keys": args.keys, "last_points": args.last, "runs": summarize(records, args.keys, args.last),
               "records": [str(Path(r)) for r in args.records]}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
