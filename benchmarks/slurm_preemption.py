"""Preemption on a real SLURM cluster: what an interruption costs, and that it changes nothing.

One sweep of the m_dqn recipe (CartPole and MinAtar Breakout presets, small frame budgets), each
config twice (``logger.project`` is unused by the CSV logger). Halfway through, one twin of each
env is interrupted: CartPole with ``scontrol requeue`` (SLURM sends SIGTERM and requeues the job),
MinAtar with the SIGUSR2 that ``#SBATCH --signal`` sends before a time limit (the task requeues
itself). Measured from the task logs: stop latency (signal -> checkpoint written and training
returned), time spent requeued, restart cost (process start -> training resumed), checkpoint size,
and the whole run's extra wall time over its uninterrupted twin. Checked: final metrics and CSV
logs equal to the twin's.

Needs a SLURM cluster with at least 2 CPU slots (``slurm/local_cluster.sh start``).

    python benchmarks/slurm_preemption.py --frames 9600
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from torchrl_reg.sweep.task import read_sweep_file

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "slurm_preemption"
STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d{3})"


def _time(stamp: str) -> float:
    return datetime.strptime(stamp.replace(",", "."), "%Y-%m-%d %H:%M:%S.%f").timestamp()


def _events(log: str) -> list[tuple[float, str]]:
    """(time, event) for process starts, training starts/resumes and training returns."""
    patterns = [
        (rf"submitit INFO \({STAMP}\) - Starting with JobEnvironment", "process start"),
        (rf"\[torchrl_reg.sweep {STAMP}\] task \d+ .*: (starting|resuming from its checkpoint)", "train start"),
        (rf"\[torchrl_reg.sweep {STAMP}\] task \d+ returned status='(\w+)'", "train return"),
    ]
    events = []
    for line in log.splitlines():
        for pattern, kind in patterns:
            m = re.search(pattern, line)
            if m:
                detail = m.group(2) if m.lastindex and m.lastindex > 1 else ""
                events.append((_time(m.group(1)), f"{kind}:{detail}" if detail else kind))
    return sorted(events)


def _last_step(csv_path: Path) -> int:
    rows = [r for r in csv_path.read_text().split("\n")[:-1] if r] if csv_path.exists() else []
    return int(rows[-1].split(",")[0]) if rows else -1


def _queue(array: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-j", array, "-o", "%i %A"], capture_output=True, text=True).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines()}


def _step_pids(job_id: str) -> list[int]:
    out = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True, check=True).stdout
    return [int(r.split()[0]) for r in out.splitlines()[1:] if len(r.split()) >= 3 and r.split()[2] != "batch"]


def _comparable(run_dir: Path) -> tuple[dict, dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics = {k: v for k, v in metrics.items() if k not in ("wall_time_s", "steps_per_s", "run_dir")}
    root = run_dir / "csv" / "scalars"
    return metrics, {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.csv"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=9600, help="frames per run (a multiple of the CartPole preset batch, 1280 frames since 2e810e8; 640 before)")
    parser.add_argument("--dir", help="sweep directory (default: a temporary one)")
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/slurm_preemption.py", *sys.argv[1:]])
    sweep_dir = Path(args.dir or tempfile.mkdtemp(prefix="slurm_preemption_")) / "sweep"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    half = args.frames // 2
    overrides = [
        "env=cartpole,minatar",
        "logger.project=uninterrupted,interrupted",
        f"collector.total_frames={args.frames}",
        # torch.compile (on in the CartPole preset) would add its compile time to every restart.
        "compile=false",
        "logger.progress_bar=false",
        "logger.interval=320",
        "checkpoint.interval=3200",
        "eval.interval=0",
        "eval.episodes=2",
        "eval.max_steps=1000",
        "optim.learning_starts=1000",
    ]
    t_submit = time.time()
    sub = subprocess.run(
        [sys.executable, "-m", "torchrl_reg.sweep", "recipes/m_dqn.py", *overrides, "--executor", "slurm",
         "--dir", str(sweep_dir), "--slurm.cpus_per_task=1", "--slurm.time_min=30"],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )
    submit_s = time.time() - t_submit
    print(sub.stdout.strip(), flush=True)
    sweep = read_sweep_file(sweep_dir)  # run directories resolved (stored relative to the sweep)
    array = sweep["submissions"][0]["array_job_id"]
    tasks = {t["index"]: t for t in sweep["tasks"]}
    run_dirs = {i: Path(t["run_dir"]) for i, t in tasks.items()}
    # index: 0 cartpole/uninterrupted, 1 cartpole/interrupted, 2 minatar/uninterrupted, 3 minatar/interrupted
    how = {1: "scontrol requeue (SIGTERM)", 3: "SIGUSR2 (time-limit signal)"}
    signalled: dict[int, float] = {}
    pending = {1, 3}
    while _queue(array):
        for i in sorted(pending):
            if _last_step(run_dirs[i] / "csv" / "scalars" / "train" / "epsilon.csv") >= half:
                if i == 1:
                    subprocess.run(["scontrol", "requeue", f"{array}_{i}"], check=True)
                else:
                    for pid in _step_pids(_queue(array)[f"{array}_{i}"]):
                        os.kill(pid, signal.SIGUSR2)
                signalled[i] = time.time()
                pending.discard(i)
                print(f"interrupted task {i} ({tasks[i]['name']}) with {how[i]}", flush=True)
        time.sleep(0.1)
    wall_total = time.time() - t_submit

    logs = {int(i): Path(info["stdout"]).read_text() for i, info in sweep["submissions"][0]["tasks"].items()}
    results = {}
    for i, task in tasks.items():
        events = _events(logs[i])
        metrics, csvs = _comparable(run_dirs[i])
        starts = [t for t, e in events if e == "process start"]
        returns = [(t, e) for t, e in events if e.startswith("train return")]
        row = {
            "task": task["name"],
            "status": metrics["status"],
            "frames": metrics["frames"],
            "checkpoint_mb": (run_dirs[i] / "checkpoint.pt").stat().st_size / 1e6,
            "segments": [[s, r[0]] for s, r in zip(starts, returns)],
            "wall_s": returns[-1][0] - starts[0] if returns else None,
        }
        if i in signalled:
            t_sig = signalled[i]
            t_stop = next(t for t, e in returns if e.endswith("interrupted"))
            t_restart = next(t for t in starts if t > t_stop)
            t_resume = next(t for t, e in events if e.startswith("train start:resuming"))
            twin_metrics, twin_csvs = _comparable(run_dirs[i - 1])
            row.update(
                interrupted_by=how[i],
                signal_time=t_sig,
                stop_latency_s=t_stop - t_sig,
                requeued_s=t_restart - t_stop,
                restart_to_resume_s=t_resume - t_restart,
                equal_to_uninterrupted_twin=metrics == twin_metrics and csvs == twin_csvs,
                frames_at_stop=half,
            )
        results[i] = row
    for i in signalled:
        results[i]["extra_wall_s_vs_twin"] = results[i]["wall_s"] - results[i - 1]["wall_s"]

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "command": command,
        "frames": args.frames,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared; local one-node SLURM (slurm/local_cluster.sh)",
        "submit_s": submit_s,
        "wall_total_s": wall_total,
        "tasks": results,
    }
    (RESULTS / "slurm_preemption.json").write_text(json.dumps(out, indent=1) + "\n")
    _plot(results, signalled, t_submit, RESULTS / "slurm_preemption.png")
    for i, r in results.items():
        line = f"{r['task']}: {r['status']} {r['frames']} frames, wall {r['wall_s']:.1f} s, checkpoint {r['checkpoint_mb']:.1f} MB"
        if i in signalled:
            line += (
                f"; {r['interrupted_by']}: stop {r['stop_latency_s']:.2f} s, requeued {r['requeued_s']:.1f} s, "
                f"restart->resume {r['restart_to_resume_s']:.1f} s, +{r['extra_wall_s_vs_twin']:.1f} s vs twin, "
                f"equal to twin: {r['equal_to_uninterrupted_twin']}"
            )
        print(line)
    print(f"results in {RESULTS}")


def _plot(results: dict, signalled: dict, t0: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    for row, (i, r) in enumerate(sorted(results.items())):
        for k, (start, end) in enumerate(r["segments"]):
            ax.barh(row, end - start, left=start - t0, color="tab:blue" if k == 0 else "tab:green", height=0.5)
        if i in signalled:
            ax.plot([signalled[i] - t0] * 2, [row - 0.35, row + 0.35], color="tab:red", lw=2)
    ax.set_yticks(range(len(results)))
    ax.set_yticklabels([r["task"] for _, r in sorted(results.items())], fontsize=8)
    ax.set_xlabel("seconds since submission")
    ax.set_title("process lifetimes (blue: first run, green: after requeue; red: interruption)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
