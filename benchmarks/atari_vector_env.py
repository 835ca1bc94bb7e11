"""Atari collection speed: the per-env wrappers against ale-py's C++ vector env.

Env steps/s of collection only: TorchRL's ``Collector`` (the recipes' :func:`~torchrl_reg.data.make_collector`)
with a uniformly random policy on the env the recipe builds (:func:`~torchrl_reg.envs.make_env` of
``env=atari``): ``env.backend=wrappers`` (a ``SyncVectorEnv`` of ``AtariPreprocessing`` copies, in this process)
and ``env.backend=vector`` (:class:`~torchrl_reg.envs.atari_vector.DopamineAtariVectorEnv`, one C++ worker
thread per CPU the process may use), at each ``--envs`` count. Each measurement collects for ``--seconds``
after one warm-up batch; backends and env counts are interleaved in every repeat, so that load changes on a
shared machine hit them alike, and the median of ``--repeats`` is reported.

The one-core column pins the process (and the vector env's threads) to ``--core``. The two-core column
(``--core`` and ``--second-core``) is measured only when the second core is idle: its busy share is read from
``/proc/stat`` over one second first, and above ``--idle-below`` the JSON says it was not measured and why.

    python -m benchmarks.atari_vector_env --envs 1 8 64 --seconds 3 --repeats 2

Writes ``benchmarks/results/atari/atari_vector_env.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import ale_py
import torch
from omegaconf import OmegaConf
from torchrl.envs.utils import RandomPolicy

from torchrl_reg.configs import CollectorConfig, EnvConfig
from torchrl_reg.data import make_collector
from torchrl_reg.envs import make_env

RESULTS = Path(__file__).parent / "results" / "atari"
BACKENDS = ("wrappers", "vector")
BATCH_STEPS = 8  # agent steps of every env per collected batch (the warm-up is one batch)


def core_busy(core: int, seconds: float = 1.0) -> float:
    """Share of the last ``seconds`` that ``core`` spent not idle (``/proc/stat``: user to steal over all)."""

    def sample() -> tuple[int, int]:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{core} "):
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + values[4]  # idle, iowait
                return sum(values) - idle, sum(values)
        raise ValueError(f"no cpu{core} in /proc/stat")

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(total1 - total0, 1)


def steps_per_s(game: str, backend: str, num_envs: int, seconds: float) -> float:
    """Env steps/s of a Collector with a random policy on the recipe's Atari env, after one warm-up batch."""
    env_cfg = OmegaConf.merge(
        OmegaConf.structured(EnvConfig),
        OmegaConf.load(Path(__file__).parents[1] / "recipes" / "conf" / "protocol" / "ale.yaml").env,
        {"name": game, "backend": backend},
    )
    env = make_env(env_cfg, num_envs=num_envs, seed=0)
    frames_per_batch = num_envs * BATCH_STEPS
    collector = make_collector(env, RandomPolicy(env.action_spec), CollectorConfig(
        total_frames=-1, num_envs=num_envs, frames_per_batch=frames_per_batch))
    batches = iter(collector)
    next(batches)
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(batches)
        frames += frames_per_batch
    rate = frames / (time.perf_counter() - start)
    collector.shutdown()
    env.close()
    return rate


def measure(args: argparse.Namespace, cores: set[int]) -> dict[str, Any]:
    """Every backend at every env count on ``cores``, interleaved, ``--repeats`` times."""
    os.sched_setaffinity(0, cores)  # the vector env sizes its thread pool from this affinity
    rates: dict[str, dict[int, list[float]]] = {b: {n: [] for n in args.envs} for b in BACKENDS}
    for repeat in range(args.repeats):
        for n in args.envs:
            for backend in BACKENDS[repeat % 2:] + BACKENDS[: repeat % 2]:
                rates[backend][n].append(steps_per_s(args.game, backend, n, args.seconds))
                print(f"cores {sorted(cores)} {backend:8s} {n:3d} envs: {rates[backend][n][-1]:7.0f} steps/s", flush=True)
    return {
        "cores": sorted(cores),
        "env_steps_per_s_median": {b: {str(n): statistics.median(r) for n, r in by_n.items()} for b, by_n in rates.items()},
        "env_steps_per_s_repeats": {b: {str(n): r for n, r in by_n.items()} for b, by_n in rates.items()},
        "speedup_vector_over_wrappers": {
            str(n): statistics.median(rates["vector"][n]) / statistics.median(rates["wrappers"][n]) for n in args.envs
        },
        "load_average_after": os.getloadavg(),
    }


def plot(columns: dict[str, dict[str, Any]], path: Path, game: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 4), squeeze=False)
    for ax, (name, column) in zip(axes[0], columns.items()):
        envs = list(column["env_steps_per_s_median"]["wrappers"])
        for i, backend in enumerate(BACKENDS):
            xs = [j + (i - 0.5) * 0.38 for j in range(len(envs))]
            ax.bar(xs, [column["env_steps_per_s_median"][backend][n] for n in envs], 0.38, label=f"env.backend={backend}")
            for x, n in zip(xs, envs):
                ax.scatter([x] * len(column["env_steps_per_s_repeats"][backend][n]),
                           column["env_steps_per_s_repeats"][backend][n], color="black", s=8, zorder=3)
        ax.set_xticks(range(len(envs)), [f"{n} envs" for n in envs])
        ax.set_yscale("log")
        ax.set_ylabel("env steps/s (collection only, random policy)")
        ax.set_title(f"{game}, {name} (cores {column['cores']})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=3.0, help="collection time of each measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--core", type=int, default=1, help="the one-core column's core")
    parser.add_argument("--second-core", type=int, default=0, help="added for the two-core column")
    parser.add_argument("--idle-below", type=float, default=0.2, help="the second core counts as idle below this busy share")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    launched = {"affinity": sorted(os.sched_getaffinity(0)), "nice": os.nice(0), "load_average_before": os.getloadavg()}
    columns = {"one core": measure(args, {args.core})}
    busy = core_busy(args.second_core)
    if busy < args.idle_below:
        columns["two cores"] = measure(args, {args.core, args.second_core})
        two_cores = {"measured": True, "second_core_busy_share_before": busy}
    else:
        two_cores = {
            "measured": False,
            "why": f"core {args.second_core} was {busy:.0%} busy over 1 s before the two-core column (/proc/stat; "
                   f">= {args.idle_below:.0%} counts as busy): timings there would measure that other work",
        }
    payload = {
        "command": "python -m benchmarks.atari_vector_env " + " ".join(sys.argv[1:] if argv is None else argv),
        "game": args.game, "seconds_per_measurement": args.seconds, "repeats": args.repeats,
        "env": "recipes/conf/protocol/ale.yaml (Dopamine protocol), seed 0; policy: uniformly random",
        "collector": f"torchrl Collector via make_collector, frames_per_batch = {BATCH_STEPS} x num_envs",
        "torch": torch.__version__, "ale_py": ale_py.__version__, "torch_threads": 1,
        "machine": f"{platform.machine()} {platform.processor()}, {os.cpu_count()} CPUs",
        "launched": launched, "two_cores": two_cores, "columns": columns,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "atari_vector_env.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(columns, args.out / "atari_vector_env.png", args.game)
    print(json.dumps({k: v["speedup_vector_over_wrappers"] for k, v in columns.items()}, indent=2), two_cores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
