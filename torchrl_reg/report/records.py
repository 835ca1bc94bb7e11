"""Run records: one finished run in one JSON file, the form in which results are committed.

A run directory holds checkpoints, logs and plots (megabytes); a run record keeps what a report
reads from it (tens of kilobytes), so that results can live in git under ``benchmarks/results/``
and be summarized again by ``python -m torchrl_reg.report`` without the runs::

    {"method": "m_dqn", "env": "CartPole-v1", "seed": 0,
     "recipe": "recipes/m_dqn.py", "overrides": ["env=cartpole", "loss=m_dqn", "seed=0"],
     "command": "python -m torchrl_reg.sweep benchmarks/learning_classic.yaml ...",
     "metrics": {"status": "completed", "train_return_mean": 497.4, "final_eval_return": 500.0, "eval_frames": [...], ...},
     "curves": {"train/episode_return": {"frames": [...], "values": [...]}}}

``method``, ``env``, ``seed`` and ``metrics`` are required; any other key (the machine, the
commit, a note) is kept as it is. ``python -m torchrl_reg.report SWEEP_DIR --records DIR`` writes
one record per completed run of a sweep (:func:`torchrl_reg.report.runs.write_records`, which turns runs
into records: this module only knows the format, so it imports nothing of the report).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torchrl_reg.run.files import read_json

__all__ = ["REQUIRED_KEYS", "is_record", "read_record"]

REQUIRED_KEYS = ("method", "env", "seed", "metrics")


def is_record(data: Any) -> bool:
    """Whether parsed JSON is a run record (every required key, metrics a mapping)."""
    return isinstance(data, dict) and all(k in data for k in REQUIRED_KEYS) and isinstance(data["metrics"], dict)


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The record stored in ``path``, or None for any other JSON file (a summary, a report). A file that is not
    valid JSON, not a regular file, too large or nested too deep raises ``ValueError`` naming it
    (:func:`~torchrl_reg.run.files.read_json`)."""
    data = read_json(path, "record")
    return data if is_record(data) else None
