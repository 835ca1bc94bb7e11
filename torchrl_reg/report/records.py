"""Run records: one finished run in one JSON file, the form in which results are committed.

A run directory holds checkpoints, logs and plots (megabytes); a run record keeps what a report
reads from it (tens of kilobytes), so that results can live in git under ``benchmarks/results/``
and be summarized again by ``python -m torchrl_reg.report`` without the runs::

    {"method": "m_dqn", "env": "CartPole-v1", "seed": 0,
     "recipe": "recipes/m_dqn.py", "overrides": ["env=cartpole", "loss=m_dqn", "seed=0"],
     "command": "python -m torchrl_reg.sweep benchmarks/learning_classic.yaml ...",
     "metrics": {"status": "completed", "final_return": 497.4, "eval_frames": [...], ...},
     "curves": {"train/episode_return": {"frames": [...], "values": [...]}}}

``method``, ``env``, ``seed`` and ``metrics`` are required; any other key (the machine, the
commit, a note) is kept as it is. ``python -m torchrl_reg.report SWEEP_DIR --records DIR`` writes
one record per completed run of a sweep.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["REQUIRED_KEYS", "is_record", "read_record", "write_records"]

REQUIRED_KEYS = ("method", "env", "seed", "metrics")


def is_record(data: Any) -> bool:
    """Whether parsed JSON is a run record (every required key, metrics a mapping)."""
    return isinstance(data, dict) and all(k in data for k in REQUIRED_KEYS) and isinstance(data["metrics"], dict)


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The record stored in ``path``, or None for any other JSON file (a summary, a report)."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    return data if is_record(data) else None


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_")


def write_records(runs: Sequence[Any], labels: Sequence[str], out_dir: str | Path, env_key: str = "env.name") -> list[Path]:
    """One record per completed run in ``out_dir`` (``<method>_<env>_seed<seed>.json``); returns the paths.

    ``runs`` are :class:`torchrl_reg.report.runs.Run` objects and ``labels`` their method labels.
    Every CSV scalar under ``train/`` and ``eval/`` of the run goes into ``curves``.
    """
    from torchrl_reg.report.runs import read_curve

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for run, label in zip(runs, labels):
        if run.status != "completed":
            continue
        env, seed = run.value(env_key), run.value("seed")
        curves = {}
        scalars = run.run_dir / "csv" / "scalars"
        for csv in sorted(scalars.rglob("*.csv")) if scalars.is_dir() else []:
            name = csv.relative_to(scalars).with_suffix("").as_posix()
            frames, values = read_curve(run, name)
            curves[name] = {"frames": frames.astype(int).tolist(), "values": values.tolist()}
        record = {
            "method": label,
            "env": env,
            "seed": seed,
            "recipe": run.recipe_path,
            "overrides": list(run.overrides),
            "command": run.command,
            "config": run.config,
            "metrics": {k: v for k, v in run.metrics.items() if k != "run_dir"},
            "curves": curves,
        }
        path = out / f"{_slug(label)}_{_slug(env)}_seed{seed}.json"
        if path in written:
            raise ValueError(f"two runs would both be written to {path}: give them distinct method labels")
        path.write_text(json.dumps(record, indent=1, default=float) + "\n")
        written.append(path)
    return written
