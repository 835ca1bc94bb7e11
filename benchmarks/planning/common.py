"""What the planning studies share: where results go and how they are written (with their command and provenance), the MinAtar recipe config, knob overrides, paired differences."""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from torchrl_reg.planning import KNOB_DEFAULTS
from torchrl_reg.report.stats import aggregate_mean, stratified_bootstrap_ci


OUT = Path(__file__).resolve().parents[1] / "results" / "planning"


#: the searches the planning studies compare, in the order of their committed results: an algorithm added to the
#: table (:data:`torchrl_reg.planning.ALGORITHMS`) joins a study only where the study names it
COMPARED = ("ments", "bts", "dents", "uct")

COLORS = {"ments": "tab:red", "dents": "tab:green", "bts": "tab:blue", "uct": "tab:gray"}


def write_result(name: str, data: dict, out: Path = OUT, argv: list[str] | None = None) -> None:
    """``data`` with the command that made it (``argv``: the arguments, default the command line's) to ``out/name.json``."""
    out.mkdir(parents=True, exist_ok=True)
    cores = sorted(os.sched_getaffinity(0))  # the cores this process may run on, as taskset set them
    pin = f"taskset -c {','.join(map(str, cores))} " if len(cores) < os.cpu_count() else ""
    args = sys.argv[1:] if argv is None else argv
    data["command"] = f"OMP_NUM_THREADS=1 {pin}python " + " ".join(["-m", "benchmarks.planning", *map(shlex.quote, args)])
    (out / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(f"wrote {out / name}.json")


def minatar_config(game: str, checkpoint: str, algorithm: str, knobs: list[str], *, simulations: int, episodes: int,
                    seed: int, max_steps: int, run_dir: str, extra: tuple[str, ...] = ()):
    """The config of ``recipes/tree_search.py``'s minatar preset for one network and one search, as a user composes it."""
    from recipes import tree_search
    from torchrl_reg.configs import compose_config

    return compose_config(
        Path(tree_search.__file__).parent / "conf",
        "tree_search",
        [
            "tree_search_preset=minatar",
            f"task.game={game}",
            f"task.max_steps={max_steps}",
            f"evaluator.checkpoint='{checkpoint}'",  # quoted: a sweep's task directory names hold '='
            f"planner.algorithm={algorithm}",
            *knobs,
            f"planner.simulations={simulations}",
            f"episodes={episodes}",
            f"seed={seed}",  # the same episodes (env seeds) for every algorithm and network
            f"run_dir='{run_dir}'",
            *extra,
        ],
    )


FAIR_STATISTICS = (
    "Paired differences: episode i of every method on a network starts from the same env seed (seed + i), so each "
    "comparison A - B takes return_A - return_B episode by episode. 'mean' is the mean of the paired differences "
    "(every network has the same number of episodes: the mean of the per-network means); 'ci95' its 95% percentile "
    "interval under a stratified bootstrap (torchrl_reg.report.stats.stratified_bootstrap_ci, statistic "
    "aggregate_mean) that resamples the pairs within each network: the interval is conditional on these networks "
    "(the episodes' noise, not the spread between training seeds, which 3 networks cannot measure). per_network: the "
    "same for each network alone. verdict: 'above' when the interval is above 0, 'below' when under 0, else "
    "'not resolved'."
)


def knob_overrides(algorithm: str, knobs: dict[str, float]) -> list[str]:
    """Every planner knob of the config: the algorithm's from ``knobs`` (the rest of its own at their defaults), the
    others' unset (null; the preset sets MENTS's)."""
    return [f"planner.{k}={knobs[k] if k in knobs else 'null'}" for k in KNOB_DEFAULTS]


def provenance() -> dict:
    """The code, library and machine a result came from."""
    root = Path(__file__).resolve().parents[2]

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    return {
        "code_commit": git("rev-parse", "HEAD") or None,
        # tracked files that differ from the commit (a result of uncommitted code says so)
        "code_changed_files": git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "torch": torch.__version__,
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, pinned to "
                   f"{sorted(os.sched_getaffinity(0))}, {torch.get_num_threads()} torch thread(s)",
    }


def paired(a: list[list[float]], b: list[list[float]], reps: int) -> dict:
    """Paired differences ``a - b`` per network (lists of episode returns, episode i against episode i): FAIR_STATISTICS."""
    diffs = [np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64) for x, y in zip(a, b, strict=True)]
    mean, low, high = stratified_bootstrap_ci(diffs, aggregate_mean, reps=reps, seed=0)
    per_network = [stratified_bootstrap_ci([d], aggregate_mean, reps=reps, seed=0) for d in diffs]
    return {
        "mean": mean, "ci95": [low, high], "pairs": int(sum(d.size for d in diffs)),
        "verdict": "above" if low > 0 else "below" if high < 0 else "not resolved",
        "per_network": [{"mean": m, "ci95": [lo, hi]} for m, lo, hi in per_network],
    }


def to_dict(node) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)
