"""``metrics.json`` (written atomically) and the one line that sums up a run's final metrics."""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torchrl_reg.run.files import write_atomic

__all__ = ["report_summary", "summary_line", "write_json"]


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Write ``obj`` as indented, strict JSON atomically (temp file + ``os.replace``, no symlink followed).

    A value with no number (NaN or infinite: ``final_return`` of a run with no finished episode) is written as
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
    """One line of a run's final metrics, what a recipe's command line prints at the end."""
    rates = f"{metrics['steps_per_s']:.0f} steps/s"
    if "updates_per_s" in metrics:
        rates += f", {metrics['updates_per_s']:.0f} updates/s"
    # A planning run (loops/planning.py) counts moves and has no collector: its episodes end at task.max_steps.
    planning = "moves" in metrics
    count = f"{metrics['moves']} moves" if planning else f"{metrics['frames']} frames"
    if metrics.get("episodes", 1) == 0 or math.isnan(metrics["final_return"]):
        outcome = "no finished episode" + ("" if planning else " (raise collector.total_frames)")
    else:
        outcome = f"final return {metrics['final_return']:.1f}"
    return (
        f"{metrics['status']}: {count} in {metrics['wall_time_s']:.0f}s ({rates}), "
        f"{outcome} -> {metrics['run_dir']}"
    )


def report_summary(metrics: Mapping[str, Any]) -> str:
    """Log :func:`summary_line` at INFO (under Hydra: on the console and in the run's ``<recipe>.log``,
    which would otherwise stay empty) and return it."""
    line = summary_line(metrics)
    logging.getLogger("torchrl_reg.recipes").info(line)
    return line
