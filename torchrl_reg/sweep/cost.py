"""A sweep's cost estimated from measured throughput, for ``python -m torchrl_reg.sweep SPEC --dry-run``.

A sweep spec names a table of measurements (``throughput: throughput.yaml``, relative to the spec), each a
number in a committed benchmark JSON::

    - recipe: m_iqn                 # the recipe (script name) and env family (env.family) it applies to
      env: atari
      device: GPU                   # GPU: the estimate is in GPU-hours; CPU: in core-hours
      units: 1                      # GPUs or CPU cores the measurement ran on
      json: results/gpu/gpu_check_cuda.json     # relative to the table
      steps_per_s: results.m_iqn_breakout_with_updates.steps_per_s
      frames: results.m_iqn_breakout_with_updates.frames
      without_updates: {steps: 1000, steps_per_s: results.m_iqn_breakout_collection.env_steps_per_s}
      measured: M-IQN on Breakout, 1 env, eager, NVIDIA H200, torch 2.11

A value is a dotted path into the JSON (``frames`` may be a number); a list is entered by the ``name`` of
one of its items. Rates are agent
steps per second: the recipes' ``collector.total_frames`` counts agent steps over all envs, and one agent
step is ``env.frame_skip`` emulator frames (the Munchausen paper's 200M frames are 50M agent steps at frame
skip 4). ``without_updates``: the measured run's first ``steps`` steps made no update (``learning_starts``)
and ran at the collection-only rate given; the estimate then uses the rate of the steps with updates,
``(frames - steps) / (frames / steps_per_s - steps / collection_steps_per_s)``, the rate of nearly all of a
long run. A task's cost is ``total_frames / rate`` hours times ``units``; evaluation episodes are not counted.
A task whose recipe and env family have no measurement gets no number, and the listing says so.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrl_reg.sweep.spec import SweepError, Task

__all__ = ["Measurement", "MethodEstimate", "TaskCost", "cost_summary", "estimate_cost", "load_throughput"]

ENTRY_KEYS = ("recipe", "env", "device", "units", "json", "steps_per_s", "frames", "without_updates", "measured")
DEVICES = ("GPU", "CPU")


@dataclass(frozen=True)
class Measurement:
    """One measured rate: agent steps per second with updates, of ``recipe`` on the env family ``env``."""

    recipe: str
    env: str
    device: str
    units: int
    source: str
    steps_per_s: float
    measured: str

    @property
    def unit_hours(self) -> str:
        return "GPU-hours" if self.device == "GPU" else "core-hours"

    def hours(self, steps: int) -> float:
        """GPU-hours or core-hours of ``steps`` agent steps."""
        return steps / self.steps_per_s / 3600 * self.units

    def describe(self) -> str:
        unit = "GPU" if self.device == "GPU" else "core"
        return f"{self.device} {_fmt(self.steps_per_s)} steps/s on {self.units} {unit}{'s' if self.units > 1 else ''} " \
               f"({self.measured}; {self.source})"


def _fmt(x: float) -> str:
    """Three significant figures, thousands separated: 0.373, 61.1, 37,231."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _lookup(data: Any, path: str, where: str) -> float:
    value = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and any(isinstance(v, dict) and v.get("name") == part for v in value):
            value = next(v for v in value if isinstance(v, dict) and v.get("name") == part)
        else:
            raise SweepError(f"{where}: {path!r} names nothing in the JSON (no {part!r})")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SweepError(f"{where}: {path!r} is {value!r}, not a positive number")
    return float(value)


def _measurement(entry: Any, table: Path, i: int) -> Measurement:
    where = f"{table} entry {i}"
    if not isinstance(entry, dict):
        raise SweepError(f"{where}: expected a mapping with the keys {', '.join(ENTRY_KEYS)}, got {entry!r}")
    unknown = [k for k in entry if k not in ENTRY_KEYS]
    missing = [k for k in ENTRY_KEYS if k not in entry and k not in ("frames", "without_updates")]
    if unknown or missing:
        raise SweepError(f"{where}: unknown keys {unknown}, missing keys {missing} (accepted: {', '.join(ENTRY_KEYS)})")
    if entry["device"] not in DEVICES:
        raise SweepError(f"{where}: device={entry['device']!r}, accepted: {', '.join(DEVICES)}")
    units = entry["units"]
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise SweepError(f"{where}: units={units!r} must be an integer >= 1 (the GPUs or cores measured on)")
    path = table.parent / str(entry["json"])
    if not path.is_file():
        raise SweepError(f"{where}: json={entry['json']!r}: {path} does not exist")
    data = json.loads(path.read_text())
    rate = _lookup(data, entry["steps_per_s"], where)
    slow = entry.get("without_updates")
    if slow is not None:
        if not isinstance(slow, dict) or sorted(slow) != ["steps", "steps_per_s"] or "frames" not in entry:
            raise SweepError(f"{where}: without_updates takes {{steps: N, steps_per_s: PATH}}, with frames: PATH beside it")
        frames = entry["frames"] if isinstance(entry["frames"], int) else _lookup(data, entry["frames"], where)
        starts = slow["steps"]
        if isinstance(starts, bool) or not isinstance(starts, int) or not 0 <= starts < frames:
            raise SweepError(f"{where}: without_updates.steps={starts!r} must be an integer in [0, frames={frames:g})")
        update_seconds = frames / rate - starts / _lookup(data, slow["steps_per_s"], where)
        if update_seconds <= 0:
            raise SweepError(f"{where}: the steps without updates take the whole measured run: no rate with updates")
        rate = (frames - starts) / update_seconds
    return Measurement(str(entry["recipe"]), str(entry["env"]), entry["device"], units, str(path), rate,
                       str(entry["measured"]))


def load_throughput(table: str | Path) -> list[Measurement]:
    """Every measurement of a throughput table, each read from its JSON; a bad entry raises :class:`SweepError`."""
    import yaml

    table = Path(table)
    entries = yaml.safe_load(table.read_text())
    if not isinstance(entries, list):
        raise SweepError(f"{table}: a throughput table is a list of measurements, got {type(entries).__name__}")
    return [_measurement(entry, table, i) for i, entry in enumerate(entries)]


@dataclass(frozen=True)
class TaskCost:
    """One task's agent steps, emulator frames and the hours at each measured rate (none if unmeasured);
    ``steps`` ``None``: a task that collects no frames (a planning run plays episodes)."""

    steps: int | None
    frame_skip: int
    hours: tuple[tuple[Measurement, float], ...]
    missing: str | None

    def __str__(self) -> str:
        if self.steps is None:
            return str(self.missing)
        frames = f" = {self.steps * self.frame_skip:,} frames at frame skip {self.frame_skip}" if self.frame_skip > 1 else ""
        cost = "; ".join(f"{m.device} {_fmt(h)} {m.unit_hours}" for m, h in self.hours) or self.missing
        return f"{self.steps:,} agent steps{frames}: {cost}"


@dataclass(frozen=True)
class MethodEstimate:
    tasks: list[TaskCost]
    measurements: list[Measurement]

    def total(self, device: str) -> float | None:
        """Hours of every task at this method's ``device`` measurement; None if it has none or a task lacks one."""
        per_task = [dict((m.device, h) for m, h in t.hours).get(device) for t in self.tasks]
        return None if not per_task or None in per_task else sum(per_task)


def estimate_cost(recipe: str, tasks: Sequence[Task], table: Path | None) -> MethodEstimate:
    """Each task's cost at every measurement of ``table`` for ``recipe`` on the task's env family."""
    measurements = load_throughput(table) if table is not None else []
    costs, used = [], []
    for task in tasks:
        if "collector" not in task.config:  # recipes/tree_search.py: episodes, no collector
            costs.append(TaskCost(None, 1, (), f"no estimate: {recipe} collects no frames (a planning run plays "
                                              "episodes); the throughput tables measure collector frames"))
            continue
        env = task.config.get("env") or {}
        family = env.get("family")
        steps = int(task.config["collector"]["total_frames"])
        found = [m for m in measurements if m.recipe == recipe and m.env == family]
        used += [m for m in found if m not in used]
        if table is None:
            missing = "no estimate: the spec names no throughput table"
        else:
            missing = f"no estimate: {Path(table).name} has no measured throughput of {recipe} on {family}"
        costs.append(TaskCost(steps, int(env.get("frame_skip") or 1), tuple((m, m.hours(steps)) for m in found), missing))
    return MethodEstimate(costs, used)


def cost_summary(estimates: Sequence[tuple[str, MethodEstimate]]) -> str:
    """Per method and in total: the tasks' hours at each measured rate, and where each rate comes from."""
    lines = ["estimated cost (agent steps / measured steps per second with updates; evaluation episodes not counted):"]
    totals: dict[str, float] = {}
    without: dict[str, list[str]] = {d: [] for d in DEVICES}
    for name, estimate in estimates:
        n = len(estimate.tasks)
        for device in DEVICES:
            m = next((m for m in estimate.measurements if m.device == device), None)
            total = estimate.total(device)
            if m is None or total is None:
                without[device].append(name)
                reason = estimate.tasks[0].missing if n and m is None else "some tasks have no measurement"
                lines.append(f"  {name}: {n} tasks, {device}: {reason}")
                continue
            totals[device] = totals.get(device, 0.0) + total
            lines.append(f"  {name}: {n} tasks, {_fmt(total)} {m.unit_hours} at {m.describe()}")
    for device in DEVICES:
        unit = "GPU-hours" if device == "GPU" else "core-hours"
        if device in totals:
            rest = f" (without {', '.join(without[device])}: not measured)" if without[device] else ""
            lines.append(f"  total {device}: {_fmt(totals[device])} {unit}{rest}")
        else:
            lines.append(f"  total {device}: no method measured")
    return "\n".join(lines)
