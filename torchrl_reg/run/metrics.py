"""``metrics.json`` (written atomically), its return metrics and the one line that sums up a run's final metrics.

A training run's metrics.json holds two returns (every field: docs/recipes.rst):

* ``final_eval_return``: the mean return of its last greedy evaluation (``eval.episodes`` episodes at
  ``eval_frames[-1]``; ``null`` without one);
* ``train_return_mean``: the mean return of its last 100 training episodes, those of the exploring policy
  (``null`` before the first one ends).

Run directories written before these names hold the latter as ``final_return``: :func:`read_metric` reads
either name from either file.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torchrl_reg.run.episodes import mean_last
from torchrl_reg.run.files import write_atomic

__all__ = ["RENAMED_METRICS", "read_metric", "report_summary", "return_metrics", "summary_line", "write_json"]

#: metrics.json's earlier names of today's fields: ``final_return`` held what ``train_return_mean`` holds.
RENAMED_METRICS = {"final_return": "train_return_mean"}


def return_metrics(train_returns: Sequence[float], eval_returns: Sequence[float]) -> dict[str, float]:
    """``final_eval_return`` (the last greedy evaluation) and ``train_return_mean`` (the mean of the last 100
    training episodes) of a run, NaN where there is none (written as ``null``)."""
    return {
        "final_eval_return": float(eval_returns[-1]) if len(eval_returns) else math.nan,
        "train_return_mean": mean_last(train_returns, 100),
    }


def read_metric(metrics: Mapping[str, Any], name: str) -> Any:
    """``metrics[name]``, also from a metrics.json (or run record) of either naming: ``train_return_mean`` reads
    an earlier file's ``final_return`` and ``final_return`` a newer file's ``train_return_mean``;
    ``final_eval_return`` of an earlier file is its last evaluation (``eval_returns[-1]``). ``None`` if absent."""
    if name in metrics:
        return metrics[name]
    for old, new in RENAMED_METRICS.items():
        if name in (old, new):
            return metrics.get(new if name == old else old)
    if name == "final_eval_return":
        returns = metrics.get("eval_returns") or []
        return returns[-1] if returns else None
    return None


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Write ``obj`` as indented, strict JSON atomically (temp file + ``os.replace``, no symlink followed).

    A value with no number (NaN or infinite: ``train_return_mean`` of a run with no finished episode) is written as
    ``null``: Python's ``NaN`` token is not JSON, and ``jq``, JavaScript or a strict parser refuse the whole file.
    Other objects (numpy or 0-d torch scalars) are written as their ``float``.
    """
    plain = json.loads(json.dumps(obj, default=float))  # every number a Python float or int
    write_atomic(path, json.dumps(_finite_or_null(plain), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(item) for item in value]
    return value


def summary_line(metrics: Mapping[str, Any]) -> str:
    """One line of a run's final metrics, what a recipe's command line prints at the end: a training run's last
    greedy evaluation and the mean of its last 100 training episodes, a planning run's mean return."""
    rates = f"{metrics['steps_per_s']:.0f} steps/s"
    if "updates_per_s" in metrics:
        rates += f", {metrics['updates_per_s']:.0f} updates/s"
    # A planning run (loops/planning.py) counts moves and has no collector: its episodes end at its move cap.
    planning = "moves" in metrics
    count = f"{metrics['moves']} moves" if planning else f"{metrics['frames']} frames"
    if planning:
        episodes = metrics.get("episodes", 0)
        outcomes = [f"mean return {metrics['mean_return']:.1f} over {episodes} episodes" if episodes else "no finished episode"]
    else:
        final_eval = _number(read_metric(metrics, "final_eval_return"))
        outcomes = [] if math.isnan(final_eval) else [f"final greedy evaluation {final_eval:.1f}"]
        train_mean = _number(read_metric(metrics, "train_return_mean"))
        if metrics.get("episodes", 1) == 0 or math.isnan(train_mean):
            outcomes.append("no finished training episode (raise collector.total_frames)")
        else:
            last = min(int(metrics.get("episodes", 100)), 100)
            outcomes.append(f"training return {train_mean:.1f} (mean of the last {last} episodes)")
    return f"{metrics['status']}: {count} in {metrics['wall_time_s']:.0f}s ({rates}), {', '.join(outcomes)} -> {metrics['run_dir']}"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def report_summary(metrics: Mapping[str, Any]) -> str:
    """Log :func:`summary_line` at INFO (under Hydra: on the console and in the run's ``<recipe>.log``,
    which would otherwise stay empty) and return it."""
    line = summary_line(metrics)
    logging.getLogger("torchrl_reg.recipes").info(line)
    return line
