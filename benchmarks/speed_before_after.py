"""Per-seed CPU time of a recipe run, this checkout against another one (the code before a speed change), on one
pinned core: the same command in each checkout, alternating which runs first, ``--pairs`` pairs per run.

Each run is its own process (``python recipes/<recipe>.py ...`` with the checkout's ``PYTHONPATH``), its preset
unchanged (networks, batch, update-to-data ratio, envs, replay, exploration, evaluation protocol, ``compile``) but
for the frame budget (``--frames``: with a budget below the preset's evaluation interval the run's one evaluation is
its final one) and no progress bar. Timed: the CPU time of the process and its children (``wait4``: torch.compile's
compiler processes included) and its wall time. ``--cold`` gives every run an empty torch.compile cache
(``TORCHINDUCTOR_CACHE_DIR``), the time a user waits on a first run; otherwise each checkout runs once untimed
first, so that its timed runs find its compiled graphs in the cache, as the seeds of a sweep do.
The ratio reported is before / after (above 1: the new code is faster), per pair, with the final returns of both.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 0 python -m benchmarks.speed_before_after \\
        --before /path/to/checkout/of/the/old/commit --runs m_dqn_breakout dqn_breakout --frames 30000 --pairs 3

Results: ``benchmarks/results/<--out>/speed_before_after.json`` (the commands, both commits, every run) and
``speed_before_after.png``.
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
from typing import Any

from benchmarks.common import finish_plot
from benchmarks.e2e_cartpole import run_measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"

#: name -> (recipe, overrides). ``m_dqn_cartpole`` is the README's CartPole main job (``python recipes/m_dqn.py``).
RUNS: dict[str, tuple[str, list[str]]] = {
    "m_dqn_breakout": ("m_dqn", ["env=minatar", "env.name=Breakout", "loss=m_dqn"]),
    "dqn_breakout": ("m_dqn", ["env=minatar", "env.name=Breakout", "loss=dqn"]),
    "m_iqn_breakout": ("m_iqn", ["env=minatar", "env.name=Breakout", "loss=m_iqn"]),
    "iqn_breakout": ("m_iqn", ["env=minatar", "env.name=Breakout", "loss=iqn"]),
    "mdac_halfcheetah": ("mdac", ["env=halfcheetah"]),
    "sac_halfcheetah": ("sac", ["env=halfcheetah"]),
    "m_dqn_cartpole": ("m_dqn", []),
}


def commit_of(checkout: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True).stdout.strip()


def run_once(checkout: Path, name: str, frames: int | None, seed: int, cold: bool, extra: list[str]) -> dict[str, Any]:
    recipe, overrides = RUNS[name]
    overrides = [*overrides, *extra]
    with tempfile.TemporaryDirectory() as tmp:
        budget = [] if frames is None else [f"collector.total_frames={frames}"]
        cmd = [sys.executable, f"recipes/{recipe}.py", *overrides, *budget, f"seed={seed}", "logger.progress_bar=false",
               f"hydra.run.dir={tmp}/run"]
        env = dict(os.environ, PYTHONPATH=str(checkout))
        if cold:
            env["TORCHINDUCTOR_CACHE_DIR"] = f"{tmp}/inductor"
        wall, cpu, rss = run_measured(cmd, env, cwd=checkout)
        metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    shown = " ".join(shlex.quote(c) for c in cmd[1:] if not c.startswith("hydra.run.dir"))
    return {"command": f"python {shown}", "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss, "frames": metrics["frames"],
            "updates": metrics["updates"], "final_eval_return": metrics.get("final_eval_return"),
            "train_return_mean": metrics.get("train_return_mean"), "cold_cache": cold}


def summarize(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [p["before"]["cpu_s"] / p["after"]["cpu_s"] for p in pairs]
    walls = [p["before"]["wall_s"] / p["after"]["wall_s"] for p in pairs]
    return {"cpu_speedup_median": statistics.median(ratios), "cpu_speedup_min": min(ratios), "cpu_speedup_max": max(ratios),
            "cpu_speedups": ratios, "wall_speedup_median": statistics.median(walls),
            "before_cpu_s": [p["before"]["cpu_s"] for p in pairs], "after_cpu_s": [p["after"]["cpu_s"] for p in pairs]}


def plot(results: dict[str, Any], targets: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 3, 4))
    for i, name in enumerate(names):
        s = results[name]["summary"]
        ax.scatter([i] * len(s["cpu_speedups"]), s["cpu_speedups"], color="tab:blue", zorder=3,
                   label="one before/after pair" if i == 0 else None)
        ax.bar(i, s["cpu_speedup_median"], color="tab:blue", alpha=0.35, label="median" if i == 0 else None)
        if name in targets:
            ax.hlines(targets[name], i - 0.4, i + 0.4, color="tab:red", ls="--", label="target" if i == 0 else None)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(range(len(names)), [f"{n}\n{results[n]['frames']} frames" for n in names], fontsize=8)
    finish_plot(fig, ax, path, ylabel="CPU time before / after (higher: faster)",
                title="per-run CPU time, one pinned core, alternating pairs")


#: The speed targets (before / after CPU time), by run; CartPole's is on a cold compile cache, 1 / 0.75.
TARGETS = {"m_dqn_breakout": 1.5, "dqn_breakout": 1.5, "m_iqn_breakout": 1.3, "iqn_breakout": 1.3,
           "mdac_halfcheetah": 1.2, "sac_halfcheetah": 1.2, "m_dqn_cartpole": 1 / 0.75}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code before the change")
    parser.add_argument("--runs", nargs="+", default=["m_dqn_breakout"], choices=list(RUNS))
    parser.add_argument("--frames", type=int, default=None, help="frame budget (default: the preset's)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold", action="store_true", help="an empty torch.compile cache for every run")
    parser.add_argument("--warmup-frames", type=int, default=2048,
                        help="frame budget of the untimed run that warms each checkout's compile cache (past learning_starts)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more overrides of both sides' runs, stated in the record (e.g. optim.learning_starts=1000: "
                             "a short budget whose time is mostly updates, as a long run's is)")
    parser.add_argument("--out", default="speed_before_after", help="folder under benchmarks/results")
    args = parser.parse_args()
    out = RESULTS / args.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / "speed_before_after.json"
    record = json.loads(path.read_text()) if path.exists() else {"results": {}}
    checkouts = {"before": args.before.resolve(), "after": ROOT}
    command = "python -m benchmarks.speed_before_after " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for name in args.runs:
        if not args.cold:  # warm each checkout's compile cache, untimed
            for side in ("before", "after"):
                run_once(checkouts[side], name, args.warmup_frames, args.seed, cold=False, extra=args.set)
        pairs = []
        for k in range(args.pairs):
            order = ("before", "after") if k % 2 == 0 else ("after", "before")
            pair = {}
            for side in order:
                pair[side] = run_once(checkouts[side], name, args.frames, args.seed, args.cold, args.set)
                print(name, k, side, json.dumps({key: pair[side][key] for key in ("cpu_s", "wall_s", "final_eval_return")}),
                      flush=True)
            pair["first"] = order[0]
            pairs.append(pair)
        record["results"][name] = {"frames": pairs[0]["after"]["frames"], "cold_cache": args.cold, "pairs": pairs,
                                   "summary": summarize(pairs), "benchmark_command": command, "overrides": args.set,
                                   "before_commit": commit_of(checkouts["before"]), "after_commit": commit_of(ROOT),
                                   "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        print(name, json.dumps(record["results"][name]["summary"]), flush=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
        plot(record["results"], TARGETS, out / "speed_before_after.png")


if __name__ == "__main__":
    main()
