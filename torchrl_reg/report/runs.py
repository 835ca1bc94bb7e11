"""Find the runs of one or more sweeps (or loose run directories) and read what the report needs.

A run directory follows the recipe contract (``torchrl_reg.recipe_utils``): ``config.yaml``,
``metrics.json`` (``status``, ``final_return``, ``eval_frames``, ``eval_returns``, ...) and CSV
scalars under ``csv/scalars/<name>.csv`` as ``step,value`` rows. A sweep directory adds
``sweep.json``, which lists every task that should exist, so runs that never started are found
too, with the scheduler log files of their last submission.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Run", "collect_runs", "method_labels", "read_curve"]

# Config keys that never distinguish methods: where a run lives, how it logs, which seed it used.
IGNORED_PREFIXES = ("run_dir", "seed", "device", "logger.", "num_threads", "compile")


@dataclass
class Run:
    """One expected run: where it is, what it ran, how it ended."""

    run_dir: Path
    recipe: str
    config: dict[str, Any]
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    queue: str | None = None

    def value(self, dotted: str) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out


def _read_metrics(run_dir: Path) -> tuple[str, dict[str, Any]]:
    path = run_dir / "metrics.json"
    if path.is_file():
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError:
            return "unreadable metrics.json", {}
        return str(metrics.get("status", "unknown")), metrics
    if (run_dir / "checkpoint.pt").is_file():
        return "started", {}
    return "not started", {}


def _read_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return container if isinstance(container, dict) else None


def _runs_of_sweep(sweep_dir: Path) -> list[Run]:
    from torchrl_reg.sweep.launch import sweep_status

    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    recipe = Path(sweep["recipe"]).stem
    rows = {row["index"]: row for row in sweep_status(sweep_dir)}
    runs = []
    for task in sweep["tasks"]:
        run_dir = Path(task["run_dir"])
        status, metrics = _read_metrics(run_dir)
        row = rows[task["index"]]
        logs = [p for p in (row["stdout"], row["stderr"]) if p]
        runs.append(Run(run_dir, recipe, task["config"], status, metrics, logs, row["queue"]))
    return runs


def collect_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Every run under ``paths``: sweep directories, run directories, or folders holding either."""
    runs: list[Run] = []
    seen: set[Path] = set()
    for p in paths:
        root = Path(p).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"{p} is not a directory")
        sweeps = [root] if (root / "sweep.json").is_file() else sorted(x.parent for x in root.rglob("sweep.json"))
        for sweep_dir in sweeps:
            for run in _runs_of_sweep(sweep_dir):
                if run.run_dir not in seen:
                    seen.add(run.run_dir)
                    runs.append(run)
        candidates = [root] if (root / "config.yaml").is_file() else sorted(x.parent for x in root.rglob("config.yaml"))
        for run_dir in candidates:
            if run_dir in seen or (run_dir / "sweep.json").is_file():
                continue
            config = _read_config(run_dir)
            if config is None:
                continue
            seen.add(run_dir)
            status, metrics = _read_metrics(run_dir)
            runs.append(Run(run_dir, "run", config, status, metrics))
        if not sweeps and not candidates:
            raise FileNotFoundError(f"{p} holds no sweep.json and no run directory (config.yaml)")
    return runs


def method_labels(runs: Sequence[Run], env_key: str, method_keys: Sequence[str] | None = None) -> list[str]:
    """A method label per run: the recipe and the config values that differ between runs on one env.

    Without ``method_keys``, a key names the method when it takes different values among the runs
    of one environment (seeds, run directories and logging excluded), so env presets that change
    budgets between environments do not split a method.
    """
    flat = [_flatten(r.config) for r in runs]
    if method_keys is None:
        varying: set[str] = set()
        by_env: dict[Any, list[int]] = {}
        for i, r in enumerate(runs):
            by_env.setdefault(r.value(env_key), []).append(i)
        for indices in by_env.values():
            keys = set().union(*(flat[i].keys() for i in indices))
            for k in keys:
                if k == env_key or k.startswith(IGNORED_PREFIXES):
                    continue
                if len({json.dumps(flat[i].get(k), default=str) for i in indices}) > 1:
                    varying.add(k)
        method_keys = sorted(varying)
    several_recipes = len({r.recipe for r in runs}) > 1
    labels = []
    for r, f in zip(runs, flat):
        parts = [f"{k}={f.get(k)}" for k in method_keys]
        if several_recipes or not parts:
            parts.insert(0, r.recipe)
        labels.append(",".join(parts))
    return labels


def read_curve(run: Run, curve: str) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, values)`` of a run: ``curve="eval"`` reads the evaluations in ``metrics.json``,
    anything else is a CSV scalar name such as ``train/episode_return``."""
    if curve == "eval":
        frames = np.asarray(run.metrics.get("eval_frames", []), dtype=np.float64)
        values = np.asarray(run.metrics.get("eval_returns", []), dtype=np.float64)
        return frames, values
    path = run.run_dir / "csv" / "scalars" / f"{curve}.csv"
    if not path.is_file():
        return np.zeros(0), np.zeros(0)
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    frames = np.asarray([float(r[0]) for r in rows], dtype=np.float64)
    values = np.asarray([float(r[1]) for r in rows], dtype=np.float64)
    keep = np.isfinite(values)
    return frames[keep], values[keep]


def final_score(run: Run, metric: str) -> float:
    """The run's final score: ``metrics.json[metric]``, or the last evaluation for ``metric="last_eval"``."""
    if metric == "last_eval":
        returns = run.metrics.get("eval_returns") or []
        return float(returns[-1]) if returns else math.nan
    value = run.metrics.get(metric)
    return float(value) if isinstance(value, (int, float)) else math.nan
